"""The releasing half of :class:`~xlink.agency.Agency`: decided matches into signed, sealed,
caveated releases in the outbound ledger (:func:`~xlink.release.release_decided`), and each
release labelled and audited as it leaves (xlink-release-v1 §10.2). The batch exchange and the
query holder both release through these methods."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, cast

from xlink._sqlite import Batch
from xlink.agency._claims import Claims, claims_key
from xlink.audit import AuditEvent
from xlink.decide import Decision
from xlink.policy.document import mou_digest
from xlink.records.model import PersonRecord
from xlink.release import SourceHandleKey, release_decided
from xlink.release.handles import open_source_handle_key
from xlink.release.label import OutputsOf, seal_labelled
from xlink.release.queue import Reciprocity
from xlink.release.recipe import DayClaims, ReleaseBatch
from xlink.release.seal import SealedRelease
from xlink.release.transfer import ReciprocalWindow

if TYPE_CHECKING:
    from xlink.agency._agency import Agency

__all__ = ["Releasing"]


class _LedgerWindow:
    """The reciprocal window (xlink-release-v1 §10.5) of one transfer of the ledger items
    ``ids``, in the order they are sent, carried over every exchange with the partner: each
    time it is asked, the ledger (:meth:`~xlink.release.queue.ApprovalQueue.give`) lets out
    as many more as the partner's credits allow: those in the store when the transfer began
    and this transfer's (the machine's count of them, each written to the store in the
    transfer's batch before the ledger's marks)."""

    __slots__ = ("_agency", "_before", "_ids", "_sent")

    def __init__(self, agency: Agency, ids: Sequence[int]) -> None:
        self._agency, self._ids, self._sent = agency, ids, 0
        self._before = agency.store.credited(agency.peer_id)

    def allowed(self, credited: int) -> int:
        agency = self._agency
        self._sent += agency.queue.give(
            (self._ids[i] for i in range(self._sent, len(self._ids))),
            mou_id=agency.mou.id,
            recipient=agency.peer_id,
            credited=self._before + credited,
            now=agency.clock(),
        )
        return self._sent


class Releasing:
    """The release methods of :class:`~xlink.agency.Agency`, which inherits them."""

    def _agency(self) -> Agency:
        return cast("Agency", self)

    def _handing_over(
        self, session_id: bytes, outputs_of: OutputsOf
    ) -> Callable[[SealedRelease], bytes]:
        """Label each release for the peer (spec §10.2) as the transfer takes it to send, and
        audit it then as ``RELEASE_SENT`` (before the peer answers): a release that may have
        left is audited even if the peer hangs up before answering it."""

        def encode(sealed: SealedRelease) -> bytes:
            return self.hand_over(sealed, session_id, outputs_of)

        return encode

    def day_claims(self) -> Claims:
        """Which of our records each of our tokens decided today with the partner
        (:mod:`xlink.agency._claims`): one store in the workdir, shared by the query holder
        and the batch exchanges, so one set of tokens wins one record a day in either."""
        agency = self._agency()
        key = claims_key(agency.keys.sealing_key.secret(), mou_digest(agency.mou))
        return Claims(agency.workdir / "query", agency.peer_id, key)

    def release(
        self,
        decision: Decision,
        records: Iterable[PersonRecord],
        *,
        day_claims: DayClaims | None = None,
    ) -> ReleaseBatch:
        """:func:`~xlink.release.release_decided` for ``decision`` with this agency's MOU,
        keys, outbound ledger, audit log, clock and randomness (the exchange and the query
        holder both release through it), and ``day_claims`` (a batch exchange's day of
        claims). The ledger and the audit log each commit once."""
        agency = self._agency()
        with Batch(agency.audit, agency.queue):
            return release_decided(
                decision,
                records,
                mou=agency.mou,
                originator=agency.agency_id,
                signing_key=agency.keys.signing_key,
                handle_key=self._handle_key(),
                rng=agency.rng,
                now=agency.clock(),
                queue=agency.queue,
                audit=agency.audit,
                schema=agency.schema,
                day_claims=day_claims,
            )

    def hand_over(self, sealed: SealedRelease, session_id: bytes, outputs_of: OutputsOf) -> bytes:
        """One release as it leaves: labelled for the peer with our OPRF outputs of its match
        handles (``outputs_of``: :func:`~xlink.release.label.per_pair` in an exchange,
        xlink-release-v1 §10.2; :func:`~xlink.release.label.per_handle` in a query) and audited
        ``RELEASE_SENT`` before the peer answers, so that a release that may have left is
        audited even if the peer hangs up."""
        agency = self._agency()
        frame = seal_labelled(
            sealed.data,
            sealed.match_handles,
            session_id=session_id,
            outputs_of=outputs_of,
            rng=agency.rng,
        )
        fields = {"session": session_id, "handle": sealed.release_id, "digest": sealed.digest}
        agency.audit.append(
            AuditEvent.RELEASE_SENT, {**fields, "category": sealed.category}, now=agency.clock()
        )
        return frame

    def reciprocity(self) -> Reciprocity:
        """Under a reciprocal MOU (xlink-release-v1 §10.5), what this agency counts toward
        the partner over every exchange since the last reset: our releases given to it, its
        releases that credited it, and so how far ahead of it we are
        (:class:`~xlink.release.queue.Reciprocity`)."""
        agency = self._agency()
        credited = agency.store.credited(agency.peer_id)
        return agency.queue.reciprocity(
            mou_id=agency.mou.id, recipient=agency.peer_id, credited=credited
        )

    def reset_reciprocity(self) -> Reciprocity:
        """Set what :meth:`reciprocity` counts back to nothing, audited
        (``RECIPROCITY_RESET``); returns the counts it had. For an operator whose exchanges
        with an honest partner were cut short until both windows shut (docs/release.md):
        the partner may then have up to ``RECIPROCAL_AHEAD`` more of ours for nothing."""
        agency = self._agency()
        credited = agency.store.credited(agency.peer_id)
        return agency.queue.reset_reciprocity(
            mou_id=agency.mou.id, recipient=agency.peer_id, credited=credited, now=agency.clock()
        )

    def _reciprocal_window(self, items: Sequence[int | None]) -> ReciprocalWindow:
        """The window of a reciprocal transfer of the ledger ``items``, in the order they
        are sent, carried over every exchange with the partner (:class:`_LedgerWindow`)."""
        ids = [i for i in items if i is not None]
        if len(ids) != len(items):
            raise ValueError("a release without its ledger item")
        return _LedgerWindow(self._agency(), ids)

    def _handle_key(self) -> SourceHandleKey:
        """The originator's source-handle key, made on first use and kept wrapped under our
        sealing key (:func:`~xlink.release.handles.open_source_handle_key`)."""
        agency = self._agency()
        return open_source_handle_key(agency.workdir, agency.keys.sealing_key, rng=agency.rng)
