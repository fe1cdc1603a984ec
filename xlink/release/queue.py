"""The approval queue: two-step, Prüm-style release (DESIGN §2 step 6; docs/release.md).

When the MOU requires approval, each release is built and kept here, unsigned, until an officer
approves or denies it; nothing is signed or sealed before approval. The queue is also the
originator's outbound ledger: one item per record version offered to the peer (straight-through
releases too), so an exchange run again neither queues nor sends a version twice
(:func:`~xlink.release.release_decided`). An approved item is delivered by the next exchange,
built afresh for that session (a release is bound to its session, xlink-release-v1 §10.2), and
marked ``SENT`` once the peer's receipt verifies. Every enqueue, approval, denial and overdue
item is appended to the audit log when one is given, with ids and handles only.
Time is a parameter (``now=``); the follow-up deadline is the MOU's
``follow_up_hours`` after enqueueing.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any, Final

from xlink._sqlite import SqliteStore, setting_up, transaction
from xlink.audit import AuditEvent, AuditLog
from xlink.errors import DamagedDatabase, PolicyDenied, QueueError
from xlink.identifiers import REASON_CODE
from xlink.officers import OfficerAct, OfficerAction, OfficerRegistry, authorize
from xlink.policy.mou import Mou
from xlink.release._reciprocity import ReciprocalLedger, Reciprocity
from xlink.release.record import ReleaseRecord, encode_release

__all__ = ["ApprovalQueue", "QueueError", "QueueItem", "QueueState", "Reciprocity"]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_REASON = REASON_CODE

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS release_queue (
    item_id INTEGER PRIMARY KEY,
    release_id BLOB NOT NULL UNIQUE,
    session_id BLOB NOT NULL,
    record_id TEXT NOT NULL,
    category TEXT NOT NULL,
    recipient TEXT NOT NULL,
    mou_id TEXT NOT NULL,
    release BLOB NOT NULL,
    queued_us INTEGER NOT NULL,
    deadline_us INTEGER NOT NULL,
    state TEXT NOT NULL
        CHECK (state IN ('PENDING', 'APPROVED', 'DENIED', 'TAKEN', 'SENT')),
    approver TEXT,
    reason TEXT,
    decided_us INTEGER,
    version BLOB,
    sent_release_id BLOB,
    sent_us INTEGER,
    overdue_audited INTEGER NOT NULL DEFAULT 0,
    sent_session BLOB,
    receipt BLOB,
    given_us INTEGER
) STRICT;
CREATE INDEX IF NOT EXISTS release_queue_match
    ON release_queue (mou_id, recipient, record_id, version);
CREATE INDEX IF NOT EXISTS release_queue_given
    ON release_queue (mou_id, recipient, record_id, version, given_us);
CREATE TABLE IF NOT EXISTS reciprocity (
    mou_id TEXT NOT NULL,
    recipient TEXT NOT NULL,
    given INTEGER NOT NULL,
    credited_before INTEGER NOT NULL,
    PRIMARY KEY (mou_id, recipient)
) STRICT;
"""
# ``given_us``: when the item first went to the recipient under a reciprocal MOU, written (and
# committed) before it leaves, with ``reciprocity.given`` counting, in the same transaction,
# the record versions given since the last reset: an item of a version that went before (sent
# again, or for another pair) adds nothing; ``credited_before``: the recipient's
# credits counted before that reset (xlink-release-v1 §10.5). A ledger written before them
# gains both, with no item given: the carried window starts from nothing.
_ADDED_COLUMNS: Final = (("receipt", "BLOB"), ("given_us", "INTEGER"))

# A queue written before the ledger columns existed: its rows are kept, with no version (so
# they never stand for a record version) and their states unchanged.
_MIGRATE: Final = """
ALTER TABLE release_queue RENAME TO release_queue_old;
{schema}
INSERT INTO release_queue (item_id, release_id, session_id, record_id, category, recipient,
    mou_id, release, queued_us, deadline_us, state, approver, reason, decided_us)
SELECT item_id, release_id, session_id, record_id, category, recipient, mou_id, release,
    queued_us, deadline_us, state, approver, reason, decided_us FROM release_queue_old;
DROP TABLE release_queue_old;
"""


class QueueState(Enum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    DENIED = "DENIED"
    TAKEN = "TAKEN"  # approved (or straight-through) and handed out for signing and sealing
    SENT = "SENT"  # delivered: the recipient's receipt was verified


def _micros(when: datetime) -> int:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("times must be aware datetimes")
    return (when - _EPOCH) // timedelta(microseconds=1)


def _time(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


@dataclass(frozen=True, slots=True)
class QueueItem:
    """One queued release as the originator's analyst sees it. ``record_id`` is the agency's
    own record id (local data, never sent); ``overdue`` is relative to the ``now`` the listing
    was made for."""

    item_id: int
    release_id: bytes
    session_id: bytes
    record_id: str
    category: str
    recipient: str
    queued_at: datetime
    deadline: datetime
    state: QueueState
    overdue: bool
    approver: str | None
    reason: str | None
    decided_at: datetime | None
    version: bytes | None = None
    sent_release_id: bytes | None = None
    sent_at: datetime | None = None
    sent_session: bytes | None = None


_COLUMNS: Final = (
    "item_id, release_id, session_id, record_id, category, recipient, queued_us, deadline_us,"
    " state, approver, reason, decided_us, version, sent_release_id, sent_us, sent_session"
)


class ApprovalQueue(ReciprocalLedger, SqliteStore):
    """An approval queue in one SQLite file. Open with :meth:`open`; a context manager."""

    __slots__ = ("_audit", "_officers", "path")
    _micros = staticmethod(_micros)  # (for the reciprocal window's methods)

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        audit: AuditLog,
        officers: OfficerRegistry | None,
    ) -> None:
        self._conn = conn
        self._audit = audit
        self._officers = officers
        self.path = path

    @classmethod
    def open(
        cls, path: str | Path, *, audit: AuditLog, officers: OfficerRegistry | None = None
    ) -> ApprovalQueue:
        """Open (creating if needed) the queue at ``path``. Every enqueue, approval, denial,
        refusal and overdue item goes to ``audit``, which is required. ``officers`` (the
        agency's enrolments) is what approvals and denials are checked against; without it
        they are refused (``ValueError``). Raises ``DamagedDatabase`` (an ``InputError``) if
        ``path`` is not a database, ``sqlite3.Error`` if it cannot otherwise be used."""
        if not isinstance(audit, AuditLog):
            raise ValueError("an approval queue is always opened with its agency's audit log")
        path = Path(path)
        with setting_up(path) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            columns = {row[1] for row in conn.execute("PRAGMA table_info(release_queue)")}
            if columns and "version" not in columns:
                conn.executescript("BEGIN;" + _MIGRATE.format(schema=_SCHEMA.strip()) + "COMMIT;")
            else:  # a ledger from before receipts were kept, or items given
                for name, kind in _ADDED_COLUMNS if columns else ():
                    if name not in columns:
                        conn.execute(f"ALTER TABLE release_queue ADD COLUMN {name} {kind}")
            conn.executescript(_SCHEMA)
        return cls(conn, path, audit, officers)

    def _log(self, kind: AuditEvent, fields: dict[str, object], now: datetime) -> None:
        self._audit.append(kind, fields, now=now)

    def enqueue(
        self,
        record: ReleaseRecord,
        *,
        record_id: str,
        mou: Mou,
        now: datetime,
        version: bytes | None = None,
    ) -> QueueItem:
        """Hold ``record`` (built from ``record_id``) for approval; the follow-up deadline is
        ``now + mou.follow_up_hours``. ``version`` is the record version it stands for
        (:func:`~xlink.release.record.content_digest`; see :meth:`lookup`). Audited as
        ``RELEASE_PENDING``. Raises ``ValueError`` if ``record`` is not under ``mou`` or is
        already queued."""
        item_id = self._insert(record, record_id, mou, now, version, QueueState.PENDING)
        return self.item(item_id, now=now)

    def hold_for_sending(
        self, record: ReleaseRecord, *, record_id: str, mou: Mou, now: datetime, version: bytes
    ) -> QueueItem:
        """Record a straight-through release (the MOU needs no approval) as handed out
        (``TAKEN``) until :meth:`mark_sent`: the outbound ledger keeps every release, approved
        or not, so that an exchange run again does not send a delivered record twice."""
        item_id = self._insert(record, record_id, mou, now, version, QueueState.TAKEN)
        return self.item(item_id, now=now)

    def _insert(
        self,
        record: ReleaseRecord,
        record_id: str,
        mou: Mou,
        now: datetime,
        version: bytes | None,
        state: QueueState,
    ) -> int:
        if record.mou_id != mou.id:
            raise ValueError("the release is not under this MOU")
        queued = _micros(now)
        hours = mou.follow_up_hours if state is QueueState.PENDING else 0
        deadline = _micros(now + timedelta(hours=hours))
        with transaction(self._conn):
            try:
                cursor = self._conn.execute(
                    "INSERT INTO release_queue (release_id, session_id, record_id, category,"
                    " recipient, mou_id, release, queued_us, deadline_us, state, version)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        record.release_id,
                        record.session_id,
                        record_id,
                        record.category.value,
                        record.recipient,
                        record.mou_id,
                        encode_release(record),
                        queued,
                        deadline,
                        state.value,
                        version,
                    ),
                )
            except sqlite3.IntegrityError:
                raise ValueError("this release is already queued") from None
            if state is QueueState.PENDING:  # in the same transaction: both or neither
                fields: dict[str, object] = {
                    "session": record.session_id,
                    "handle": record.release_id,
                    "category": record.category.value,
                }
                self._log(AuditEvent.RELEASE_PENDING, fields, now)
            return int(cursor.lastrowid or 0)

    def lookup(
        self, *, mou_id: str, recipient: str, record_id: str, version: bytes, now: datetime
    ) -> tuple[QueueItem, ...]:
        """Every item for this version of record ``record_id`` released to ``recipient`` under
        ``mou_id``, oldest first (more than one when the record was in several decided pairs):
        what an exchange consults before queueing or sending a decided match again (pending,
        denied and sent items are neither queued nor sent a second time; approved and
        handed-out ones are sent)."""
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM release_queue"  # noqa: S608
            " WHERE mou_id = ? AND recipient = ? AND record_id = ? AND version = ?"
            " ORDER BY item_id",
            (mou_id, recipient, record_id, version),
        ).fetchall()
        now_us = _micros(now)
        return tuple(self._item(row, now_us) for row in rows)

    def take(self, item_id: int, *, now: datetime) -> QueueItem:
        """Hand out one approved item for signing and sealing (``APPROVED`` → ``TAKEN``); a
        ``TAKEN`` item (handed out before, never receipted) is handed out again.
        :class:`QueueError` in any other state."""
        with transaction(self._conn):
            item = self.item(item_id, now=now)
            if item.state not in (QueueState.APPROVED, QueueState.TAKEN):
                raise QueueError(f"release {item_id} is {item.state.value}, not APPROVED")
            self._conn.execute(
                "UPDATE release_queue SET state = 'TAKEN' WHERE item_id = ?", (item_id,)
            )
        return self.item(item_id, now=now)

    def mark_sent(
        self,
        item_id: int,
        sent_release_id: bytes,
        *,
        now: datetime,
        session_id: bytes | None = None,
        receipt: bytes | None = None,
    ) -> QueueItem:
        """The recipient's receipt for ``sent_release_id`` (the release that carried this
        item, in session ``session_id``) was verified: ``TAKEN`` → ``SENT``, keeping the
        ``receipt`` bytes as proof of delivery (:meth:`receipt`; xlink-release-v1 §8).
        :class:`QueueError` unless ``TAKEN``."""
        with transaction(self._conn):
            item = self.item(item_id, now=now)
            if item.state is not QueueState.TAKEN:
                raise QueueError(f"release {item_id} is {item.state.value}, not TAKEN")
            self._conn.execute(
                "UPDATE release_queue SET state = 'SENT', sent_release_id = ?, sent_us = ?,"
                " sent_session = ?, receipt = ? WHERE item_id = ?",
                (sent_release_id, _micros(now), session_id, receipt, item_id),
            )
        return self.item(item_id, now=now)

    def receipt(self, item_id: int) -> bytes | None:
        """The recipient's signed receipt kept by :meth:`mark_sent` (None: not delivered, or
        delivered before receipts were kept). :class:`QueueError` if there is no such item."""
        row = self._conn.execute(
            "SELECT receipt FROM release_queue WHERE item_id = ?", (item_id,)
        ).fetchone()
        if row is None:
            raise QueueError(f"no queued release with id {item_id}")
        return None if row[0] is None else bytes(row[0])

    def audit_overdue(self, now: datetime) -> tuple[QueueItem, ...]:
        """Audit, once each, the pending items past their follow-up deadline
        (``RELEASE_OVERDUE``); return them."""
        with transaction(self._conn):
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM release_queue"  # noqa: S608
                " WHERE state = 'PENDING' AND deadline_us < ? AND overdue_audited = 0"
                " ORDER BY item_id",
                (_micros(now),),
            ).fetchall()
            items = tuple(self._item(row, _micros(now)) for row in rows)
            for item in items:
                self._conn.execute(
                    "UPDATE release_queue SET overdue_audited = 1 WHERE item_id = ?",
                    (item.item_id,),
                )
                fields: dict[str, object] = {"session": item.session_id, "handle": item.release_id}
                self._log(AuditEvent.RELEASE_OVERDUE, fields, now)
        return items

    def _item(self, row: tuple[Any, ...], now_us: int) -> QueueItem:
        try:
            return _item(row, now_us)
        except (ValueError, OverflowError, TypeError):
            raise DamagedDatabase(f"{self.path}: a row was altered in the file") from None

    def item(self, item_id: int, *, now: datetime) -> QueueItem:
        """One item; :class:`QueueError` if there is none with that id."""
        row = self._conn.execute(
            f"SELECT {_COLUMNS} FROM release_queue WHERE item_id = ?",  # noqa: S608
            (item_id,),
        ).fetchone()
        if row is None:
            raise QueueError(f"no queued release with id {item_id}")
        return self._item(row, _micros(now))

    def pending(self, now: datetime) -> tuple[QueueItem, ...]:
        """Items awaiting a decision, earliest deadline first, each marked overdue or not."""
        return self._listed("WHERE state = 'PENDING' ORDER BY deadline_us, item_id", now)

    def undelivered(self, now: datetime) -> tuple[QueueItem, ...]:
        """Items that may be sent but are not delivered yet, in queue order: ``APPROVED``
        (never handed out) and ``TAKEN`` (handed out to an exchange, never receipted: held
        back for a reciprocal partner, or sent and its receipt lost)."""
        return self._listed("WHERE state IN ('APPROVED', 'TAKEN') ORDER BY item_id", now)

    def items(self, now: datetime) -> tuple[QueueItem, ...]:
        """Every item, in queue order."""
        return self._listed("ORDER BY item_id", now)

    def _listed(self, which: str, now: datetime) -> tuple[QueueItem, ...]:
        """The items ``which`` (a constant ``WHERE``/``ORDER BY`` clause) selects."""
        now_us = _micros(now)
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM release_queue {which}"  # noqa: S608
        ).fetchall()
        return tuple(self._item(row, now_us) for row in rows)

    def approve(self, item_id: int, *, act: OfficerAct, now: datetime) -> QueueItem:
        """Approve a pending item, as an enrolled approver's signed ``act`` (an
        :attr:`~xlink.officers.OfficerAction.APPROVE` of the item's release id, detail ``""``,
        dated ``now``) asks. Audited as ``RELEASE_APPROVED`` with the officer's fingerprint and
        signature. :class:`QueueError` unless pending; :class:`~xlink.errors.PolicyDenied`
        with the officer's reason (audited as ``DECISION_REFUSED``) if the act is refused."""
        return self._decide(item_id, QueueState.APPROVED, act, now)

    def deny(self, item_id: int, *, act: OfficerAct, now: datetime) -> QueueItem:
        """Deny a pending item for the reason the approver's signed ``act`` states (a
        :attr:`~xlink.officers.OfficerAction.DENY` whose detail is a code
        ``[a-z][a-z0-9_.-]{0,63}``, such as ``insufficient-grounds``): it is never released.
        Audited as ``RELEASE_DENIED``; refused as :meth:`approve` is."""
        if not isinstance(act, OfficerAct) or not _REASON.fullmatch(act.detail):
            raise ValueError("a denial reason is a code matching [a-z][a-z0-9_.-]{0,63}")
        return self._decide(item_id, QueueState.DENIED, act, now)

    def _decide(self, item_id: int, state: QueueState, act: OfficerAct, now: datetime) -> QueueItem:
        action = OfficerAction.APPROVE if state is QueueState.APPROVED else OfficerAction.DENY
        detail = act.detail if isinstance(act, OfficerAct) else ""
        reason = detail if state is QueueState.DENIED else None
        with transaction(self._conn):
            item = self.item(item_id, now=now)
            if item.state is not QueueState.PENDING:
                raise QueueError(f"release {item_id} is {item.state.value}, not PENDING")
            try:
                who = authorize(
                    self._officers,
                    act,
                    action=action,
                    target=item.release_id,
                    detail=detail,
                    now=now,
                    audit=self._audit,
                )
            except PolicyDenied as exc:  # the audit log is its own file: the entry stays
                fields: dict[str, object] = {
                    "session": item.session_id,
                    "handle": item.release_id,
                    "reason": exc.reasons[0],
                }
                if isinstance(act, OfficerAct):
                    fields["approver"] = act.fingerprint
                self._log(AuditEvent.DECISION_REFUSED, fields, now)
                raise
            self._conn.execute(
                "UPDATE release_queue SET state = ?, approver = ?, reason = ?, decided_us = ?"
                " WHERE item_id = ?",
                (state.value, who, reason, _micros(now), item_id),
            )
            fields = {
                "session": item.session_id,
                "handle": item.release_id,
                "approver": who,
                "officer_sig": act.signature,
            }
            if state is QueueState.DENIED:
                fields["reason"] = reason
                self._log(AuditEvent.RELEASE_DENIED, fields, now)
            else:
                self._log(AuditEvent.RELEASE_APPROVED, fields, now)
        return self.item(item_id, now=now)


def _item(row: tuple[Any, ...], now_us: int) -> QueueItem:
    """A row as a :class:`QueueItem`; ``ValueError`` or ``OverflowError`` for a row no queue
    writes (an id or session not 16 bytes, a state or time out of range)."""
    item_id, release_id, session_id, record_id, category, recipient, queued, deadline = row[:8]
    state, approver, reason, decided, version, sent_release_id, sent, sent_session = row[8:16]
    q_state = QueueState(state)
    if any(
        len(bytes(v)) != 16 for v in (release_id, session_id, sent_release_id, sent_session) if v
    ):
        raise ValueError("not 16 bytes")
    return QueueItem(
        item_id=int(item_id),
        release_id=bytes(release_id),
        session_id=bytes(session_id),
        record_id=str(record_id),
        category=str(category),
        recipient=str(recipient),
        queued_at=_time(int(queued)),
        deadline=_time(int(deadline)),
        state=q_state,
        overdue=q_state is QueueState.PENDING and now_us > int(deadline),
        approver=approver,
        reason=reason,
        decided_at=None if decided is None else _time(int(decided)),
        version=None if version is None else bytes(version),
        sent_release_id=None if sent_release_id is None else bytes(sent_release_id),
        sent_at=None if sent is None else _time(int(sent)),
        sent_session=None if sent_session is None else bytes(sent_session),
    )
