"""The approval queue: two-step, Prüm-style release (DESIGN §2 step 6; docs/release.md).

When the MOU requires approval, each release is built and kept here, unsigned, until an officer
approves or denies it. The queue is the only way out: :meth:`ApprovalQueue.take_approved` hands
back approved releases, each once, so nothing can be signed or sealed before approval. Every
enqueue, approval and denial is appended to the audit log when one is given, with ids and
handles only. Time is a parameter (``now=``); the follow-up deadline is the MOU's
``follow_up_hours`` after enqueueing.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any, Final

from xlink._sqlite import SqliteStore, connect, transaction
from xlink.audit import AuditEvent, AuditLog
from xlink.crypto.keys import VerifyKey
from xlink.errors import XlinkError
from xlink.policy.mou import Mou
from xlink.release.record import ReleaseRecord, decode_release, encode_release

__all__ = ["ApprovalQueue", "QueueError", "QueueItem", "QueueState"]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_FINGERPRINT = re.compile(r"[0-9a-f]{32}")
_REASON = re.compile(r"[a-z][a-z0-9_.-]{0,63}")

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
    state TEXT NOT NULL CHECK (state IN ('PENDING', 'APPROVED', 'DENIED', 'TAKEN')),
    approver TEXT,
    reason TEXT,
    decided_us INTEGER
) STRICT;
"""


class QueueError(XlinkError):
    """An approval-queue request that cannot be done: no such item, or not in a state that
    allows it (approving a denied item, denying one already approved...)."""


class QueueState(Enum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    DENIED = "DENIED"
    TAKEN = "TAKEN"  # approved and handed out for signing and sealing


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


_COLUMNS: Final = (
    "item_id, release_id, session_id, record_id, category, recipient, queued_us, deadline_us,"
    " state, approver, reason, decided_us"
)


class ApprovalQueue(SqliteStore):
    """An approval queue in one SQLite file. Open with :meth:`open`; a context manager."""

    __slots__ = ("_audit", "path")

    def __init__(self, conn: sqlite3.Connection, path: Path, audit: AuditLog | None) -> None:
        self._conn = conn
        self._audit = audit
        self.path = path

    @classmethod
    def open(cls, path: str | Path, *, audit: AuditLog | None = None) -> ApprovalQueue:
        """Open (creating if needed) the queue at ``path``; entries go to ``audit`` if given.
        Raises ``sqlite3.Error`` if ``path`` is not a usable database."""
        path = Path(path)
        conn = connect(path)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
        except BaseException:
            conn.close()
            raise
        return cls(conn, path, audit)

    def _log(self, kind: AuditEvent, fields: dict[str, object], now: datetime) -> None:
        if self._audit is not None:
            self._audit.append(kind, fields, now=now)

    def enqueue(
        self, record: ReleaseRecord, *, record_id: str, mou: Mou, now: datetime
    ) -> QueueItem:
        """Hold ``record`` (built from ``record_id``) for approval; the follow-up deadline is
        ``now + mou.follow_up_hours``. Audited as ``RELEASE_PENDING``. Raises ``ValueError``
        if ``record`` is not under ``mou`` or is already queued."""
        if record.mou_id != mou.id:
            raise ValueError("the release is not under this MOU")
        queued = _micros(now)
        deadline = _micros(now + timedelta(hours=mou.follow_up_hours))
        with transaction(self._conn):
            try:
                cursor = self._conn.execute(
                    "INSERT INTO release_queue (release_id, session_id, record_id, category,"
                    " recipient, mou_id, release, queued_us, deadline_us, state)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'PENDING')",
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
                    ),
                )
            except sqlite3.IntegrityError:
                raise ValueError("this release is already queued") from None
            item_id = int(cursor.lastrowid or 0)
            self._log(
                AuditEvent.RELEASE_PENDING,
                {
                    "session": record.session_id,
                    "handle": record.release_id,
                    "category": record.category.value,
                },
                now,
            )
        return self.item(item_id, now=now)

    def item(self, item_id: int, *, now: datetime) -> QueueItem:
        """One item; :class:`QueueError` if there is none with that id."""
        row = self._conn.execute(
            f"SELECT {_COLUMNS} FROM release_queue WHERE item_id = ?",  # noqa: S608
            (item_id,),
        ).fetchone()
        if row is None:
            raise QueueError(f"no queued release with id {item_id}")
        return _item(row, _micros(now))

    def pending(self, now: datetime) -> tuple[QueueItem, ...]:
        """Items awaiting a decision, earliest deadline first, each marked overdue or not."""
        now_us = _micros(now)
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM release_queue WHERE state = 'PENDING'"  # noqa: S608
            " ORDER BY deadline_us, item_id"
        ).fetchall()
        return tuple(_item(row, now_us) for row in rows)

    def items(self, now: datetime) -> tuple[QueueItem, ...]:
        """Every item, in queue order."""
        now_us = _micros(now)
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM release_queue ORDER BY item_id"  # noqa: S608
        ).fetchall()
        return tuple(_item(row, now_us) for row in rows)

    def approve(self, item_id: int, approver: str | VerifyKey, *, now: datetime) -> QueueItem:
        """Approve a pending item. ``approver`` is the officer's signing-key fingerprint (or
        verify key). Audited as ``RELEASE_APPROVED``. :class:`QueueError` unless pending."""
        who = _fingerprint(approver)
        return self._decide(item_id, QueueState.APPROVED, who, None, now)

    def deny(
        self, item_id: int, approver: str | VerifyKey, reason: str, *, now: datetime
    ) -> QueueItem:
        """Deny a pending item for ``reason`` (a code ``[a-z][a-z0-9_.-]{0,63}``, such as
        ``insufficient-grounds``): it is never released. Audited as ``RELEASE_DENIED``."""
        who = _fingerprint(approver)
        if not _REASON.fullmatch(reason):
            raise ValueError("a denial reason is a code matching [a-z][a-z0-9_.-]{0,63}")
        return self._decide(item_id, QueueState.DENIED, who, reason, now)

    def _decide(
        self, item_id: int, state: QueueState, who: str, reason: str | None, now: datetime
    ) -> QueueItem:
        with transaction(self._conn):
            item = self.item(item_id, now=now)
            if item.state is not QueueState.PENDING:
                raise QueueError(f"release {item_id} is {item.state.value}, not PENDING")
            self._conn.execute(
                "UPDATE release_queue SET state = ?, approver = ?, reason = ?, decided_us = ?"
                " WHERE item_id = ?",
                (state.value, who, reason, _micros(now), item_id),
            )
            fields: dict[str, object] = {
                "session": item.session_id,
                "handle": item.release_id,
                "approver": who,
            }
            if state is QueueState.DENIED:
                fields["reason"] = reason
                self._log(AuditEvent.RELEASE_DENIED, fields, now)
            else:
                self._log(AuditEvent.RELEASE_APPROVED, fields, now)
        return self.item(item_id, now=now)

    def take_approved(self, *, now: datetime) -> tuple[tuple[QueueItem, ReleaseRecord], ...]:
        """Hand out every approved release not handed out before, marking it ``TAKEN``: the
        only way a queued release leaves the queue, and only once."""
        with transaction(self._conn):
            rows = self._conn.execute(
                f"SELECT {_COLUMNS}, release FROM release_queue"  # noqa: S608
                " WHERE state = 'APPROVED' ORDER BY item_id"
            ).fetchall()
            self._conn.execute("UPDATE release_queue SET state = 'TAKEN' WHERE state = 'APPROVED'")
        taken = []
        for row in rows:
            item = _item(row[:-1], _micros(now))
            taken.append((_replace_state(item, QueueState.TAKEN), decode_release(row[-1])))
        return tuple(taken)


def _fingerprint(approver: str | VerifyKey) -> str:
    who = approver.fingerprint() if isinstance(approver, VerifyKey) else approver
    if not isinstance(who, str) or not _FINGERPRINT.fullmatch(who):
        raise ValueError("approver must be a key fingerprint: 32 lower-case hex digits")
    return who


def _item(row: tuple[Any, ...], now_us: int) -> QueueItem:
    item_id, release_id, session_id, record_id, category, recipient, queued, deadline = row[:8]
    state, approver, reason, decided = row[8:12]
    q_state = QueueState(state)
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
    )


def _replace_state(item: QueueItem, state: QueueState) -> QueueItem:
    return replace(item, state=state)
