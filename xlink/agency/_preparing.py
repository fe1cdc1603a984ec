"""The preparing half of :class:`~xlink.agency.Agency`: its lists (files, or records built by
the caller) loaded, validated and tokenised with the MOU's schema, the records of a category
the MOU does not list left out, and the tokens hashed for the exchange before any partner
connects."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from datetime import UTC
from typing import TYPE_CHECKING, cast

from xlink.policy import mou_digest
from xlink.prepare import PreparedSide, StrPath, prepare_records, prepare_side
from xlink.progress import ProgressFn
from xlink.protocol.hashed import CACHE_DIR, hash_tokens
from xlink.records.model import PersonRecord
from xlink.records.validation import BadFieldPolicy

if TYPE_CHECKING:
    from xlink.agency._agency import Agency

__all__ = ["Preparing"]


class Preparing:
    """The preparing methods of :class:`~xlink.agency.Agency`, which inherits them."""

    def _agency(self) -> Agency:
        return cast("Agency", self)

    def prepare(
        self,
        files: Sequence[StrPath],
        *,
        mappings: Sequence[StrPath | None] | None = None,
        date_order: str | None = None,
        bad_field: BadFieldPolicy | str = BadFieldPolicy.DROP_FIELD,
        progress: ProgressFn | None = None,
        psi: bool = True,
    ) -> PreparedSide:
        """Load, validate and tokenise this agency's files with the MOU's schema; rejected
        rows go to ``WORKDIR/rejects/`` with line, field and reason, and so do the field
        errors of kept records (``bad_field``: as for :func:`~xlink.prepare.prepare_side`).
        With ``psi`` (the default) the records of a category the MOU does not list are left
        out (:meth:`releasable`) and the tokens hashed for the exchange (:meth:`hash_tokens`);
        the query mode, which never runs that session, passes False."""
        agency = self._agency()
        side = prepare_side(
            list(files),
            schema=agency.schema,
            mappings=mappings,
            date_order=date_order,
            bad_field=bad_field,
            rejects_dir=agency.workdir / "rejects",
            progress=progress,
            today=agency.clock().astimezone(UTC).date(),
        )
        return self._for_sessions(side, psi, progress)

    def prepare_records(
        self,
        records: Sequence[PersonRecord],
        *,
        progress: ProgressFn | None = None,
        psi: bool = True,
    ) -> PreparedSide:
        """:meth:`prepare` for records built by the caller (``xlink.records.PersonRecord``:
        from a system of the agency's own, or one traveller at a border desk to :meth:`ask`
        about), their tokens derived with the MOU's schema
        (:func:`~xlink.prepare.prepare_records`); ``psi`` as for :meth:`prepare`."""
        agency = self._agency()
        today = agency.clock().astimezone(UTC).date()
        side = prepare_records(records, schema=agency.schema, progress=progress, today=today)
        return self._for_sessions(side, psi, progress)

    def _for_sessions(
        self, side: PreparedSide, psi: bool, progress: ProgressFn | None
    ) -> PreparedSide:
        if not psi:
            return side
        return self.hash_tokens(self.releasable(side), progress=progress)

    def hash_tokens(
        self, side: PreparedSide, *, progress: ProgressFn | None = None
    ) -> PreparedSide:
        """``side`` with its tokens hashed to the group under this MOU, before any partner
        connects, on this agency's worker pool: reused from ``WORKDIR/cache/`` for the tokens
        the last exchange under this MOU already hashed (xlink-psi-v2 §4.1; the cache is
        rewritten with exactly these tokens, owner-only)."""
        agency = self._agency()
        report = None
        if progress is not None:
            report = functools.partial(progress, "hashing tokens")
        hashed = hash_tokens(
            side.tokens,
            suite_id=agency.suite_id,
            mou_digest=mou_digest(agency.mou),
            workers=agency.workers,
            cache_dir=agency.workdir / CACHE_DIR,
            progress=report,
        )
        return dataclasses.replace(side, hashed=hashed)

    def releasable(self, side: PreparedSide) -> PreparedSide:
        """``side`` without the records of a category the MOU does not list: they take no part
        in an exchange or a query table with this partner, since a match on one, released or
        not, tells the partner the person is on that list (the pair decides the same matches).
        Hashed again when a record was left out. The exchange and the query holder call it."""
        agency = self._agency()
        kept = side.only({policy.category for policy in agency.mou.categories})
        if kept is side:
            return side
        return self.hash_tokens(kept) if side.hashed is not None else kept
