"""The reciprocal window's counts in the outbound ledger (xlink-release-v1 §10.5): which
record versions of ours went to the partner, counted once each over every exchange, against
the partner's releases that credited it; the operator's reset. :class:`ApprovalQueue
<xlink.release.queue.ApprovalQueue>` has these methods (:class:`ReciprocalLedger`) on its
own connection and audit log; the tables are in its schema."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from xlink._sqlite import transaction
from xlink.audit import AuditEvent
from xlink.errors import QueueError
from xlink.release.transfer import RECIPROCAL_AHEAD

__all__ = ["ReciprocalLedger", "Reciprocity"]


@dataclass(frozen=True, slots=True)
class Reciprocity:
    """Under a reciprocal MOU (xlink-release-v1 §10.5), what one side counts toward its
    partner since the last reset, over every exchange: ``given``, its record versions that
    went to the partner (each once, however often and for whichever pair sent again), and
    ``credited``, the partner's stored releases that credited it (each once)."""

    given: int
    credited: int

    @property
    def ahead(self) -> int:
        """Releases of ours given beyond the partner's credited (negative: it is ahead)."""
        return self.given - self.credited

    @property
    def window(self) -> int:
        """How many new releases of ours may go before the partner gives another."""
        return max(RECIPROCAL_AHEAD - self.ahead, 0)


class ReciprocalLedger:
    """The reciprocal-window methods of :class:`~xlink.release.queue.ApprovalQueue`, which
    inherits them."""

    __slots__ = ()
    _conn: sqlite3.Connection

    if TYPE_CHECKING:  # the queue's own

        def _log(self, kind: AuditEvent, fields: dict[str, object], now: datetime) -> None: ...

        @staticmethod
        def _micros(when: datetime) -> int: ...

    def reciprocity(self, *, mou_id: str, recipient: str, credited: int) -> Reciprocity:
        """What we count toward ``recipient`` under ``mou_id`` since the last reset: our items
        given to it, and ``credited`` (its stored releases that credited it, over all time:
        :meth:`~xlink.store.ReleaseStore.credited`) less those counted before the reset."""
        row = self._conn.execute(
            "SELECT given, credited_before FROM reciprocity WHERE mou_id = ? AND recipient = ?",
            (mou_id, recipient),
        ).fetchone()
        given, before = (0, 0) if row is None else (int(row[0]), int(row[1]))
        return Reciprocity(given, max(credited - before, 0))

    def give(
        self,
        item_ids: Iterable[int],
        *,
        mou_id: str,
        recipient: str,
        credited: int,
        now: datetime,
    ) -> int:
        """How many of ``item_ids`` (handed-out items for ``recipient`` under ``mou_id``), in
        order, may go to it now, in one transaction. An item of a record version (the record
        and the content of its release, :func:`~xlink.release.record.content_digest`) that
        went to the recipient before, by this item or another, goes freely: the recipient had
        that record's content, and the pair it goes with is one both sides decided. Any other
        is marked given (``given_us``) and counted while the window allows, at most
        :data:`~xlink.release.transfer.RECIPROCAL_AHEAD` record versions of ours beyond
        ``credited`` (as :meth:`reciprocity`); the first it does not allow stops the count.
        (The content alone is not enough: records whose releases say the same, as under a
        tearline of few fields or none, are each a new hit for the recipient.)
        Inside a batch the marks are durable at its commit, which must come before any of
        them leaves. :class:`QueueError` for an item that is not such an item."""
        allowed = 0
        with transaction(self._conn):
            ahead = self.reciprocity(mou_id=mou_id, recipient=recipient, credited=credited).ahead
            newly = 0
            for item_id in item_ids:
                row = self._conn.execute(
                    "SELECT given_us, record_id, version FROM release_queue WHERE item_id = ?"
                    " AND mou_id = ? AND recipient = ? AND state IN ('TAKEN', 'SENT')",
                    (item_id, mou_id, recipient),
                ).fetchone()
                if row is None:
                    raise QueueError(f"release {item_id} is not handed out to {recipient}")
                if row[0] is None:
                    if not self._version_given(mou_id, recipient, row[1], row[2]):
                        if ahead + newly >= RECIPROCAL_AHEAD:
                            break
                        newly += 1
                    self._conn.execute(
                        "UPDATE release_queue SET given_us = ? WHERE item_id = ?",
                        (self._micros(now), item_id),
                    )
                allowed += 1
            if newly:
                self._conn.execute(
                    "INSERT INTO reciprocity (mou_id, recipient, given, credited_before)"
                    " VALUES (?, ?, ?, 0) ON CONFLICT (mou_id, recipient)"
                    " DO UPDATE SET given = given + excluded.given",
                    (mou_id, recipient, newly),
                )
        return allowed

    def _version_given(
        self, mou_id: str, recipient: str, record_id: str, version: bytes | None
    ) -> bool:
        """Whether an item of this record version went to ``recipient`` before (an item of an
        older ledger, with no version, stands for none but itself)."""
        if version is None:
            return False
        row = self._conn.execute(
            "SELECT 1 FROM release_queue WHERE mou_id = ? AND recipient = ? AND record_id = ?"
            " AND version = ? AND given_us IS NOT NULL LIMIT 1",
            (mou_id, recipient, record_id, version),
        ).fetchone()
        return row is not None

    def given(self, item_ids: Iterable[int]) -> frozenset[int]:
        """Those of ``item_ids`` whose record version went to their recipient before under a
        reciprocal MOU (:meth:`give`): sent now, they cost the window nothing."""
        ids = list(item_ids)
        found: set[int] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(
                int(row[0])
                for row in self._conn.execute(
                    f"SELECT q.item_id FROM release_queue q WHERE q.item_id IN ({marks})"  # noqa: S608
                    " AND (q.given_us IS NOT NULL OR EXISTS (SELECT 1 FROM release_queue g"
                    " WHERE g.mou_id = q.mou_id AND g.recipient = q.recipient"
                    " AND g.record_id = q.record_id AND g.version = q.version"
                    " AND g.given_us IS NOT NULL))",
                    chunk,
                )
            )
        return frozenset(found)

    def reset_reciprocity(
        self, *, mou_id: str, recipient: str, credited: int, now: datetime
    ) -> Reciprocity:
        """Set what we count toward ``recipient`` back to nothing (an operator's decision,
        after exchanges cut short left both sides' windows shut), ``credited`` being the
        recipient's credits over all time: audited as ``RECIPROCITY_RESET`` with the counts
        it had, which it returns. Items given before stay given (sent again, they cost
        nothing)."""
        with transaction(self._conn):
            had = self.reciprocity(mou_id=mou_id, recipient=recipient, credited=credited)
            self._conn.execute(
                "INSERT INTO reciprocity (mou_id, recipient, given, credited_before)"
                " VALUES (?, ?, 0, ?) ON CONFLICT (mou_id, recipient)"
                " DO UPDATE SET given = 0, credited_before = excluded.credited_before",
                (mou_id, recipient, credited),
            )
            fields: dict[str, object] = {
                "peer": recipient,
                "mou": mou_id,
                "given": had.given,
                "credited": had.credited,
            }
            self._log(AuditEvent.RECIPROCITY_RESET, fields, now)
        return had
