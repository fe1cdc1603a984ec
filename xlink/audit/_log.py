"""The audit log: append-only, hash-chained entries in SQLite with signed checkpoints
(DESIGN §2 step 8; docs/audit.md).

Every append runs in one ``BEGIN IMMEDIATE`` transaction that reads the head, writes the entry
and, when due, its checkpoint: an entry and its checkpoint land together or not at all, and
two writers on one file serialise instead of forking the chain. No clock is read: entries and
checkpoints carry the ``now`` they are given (a closing checkpoint carries its head entry's).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

from xlink._sqlite import SqliteStore, setting_up, transaction
from xlink.audit._encoding import (
    GENESIS_HASH,
    checkpoint_message,
    decode_fields,
    encode_fields,
    entry_hash,
    from_micros,
    to_micros,
)
from xlink.audit._vocab import AuditEvent, FieldValue, check_fields
from xlink.crypto.keys import SigningKey, VerifyKey
from xlink.errors import DecryptionError

if TYPE_CHECKING:
    from xlink.audit._anchors import PublishedCheckpoint

__all__ = ["MAX_CHECKPOINT_EVERY", "AuditLog", "Checkpoint", "Entry"]

MAX_CHECKPOINT_EVERY: Final = 1_000_000

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS audit_entries (
    seq INTEGER PRIMARY KEY,
    time_us INTEGER NOT NULL,
    kind TEXT NOT NULL,
    fields TEXT NOT NULL,
    prev_hash BLOB NOT NULL,
    entry_hash BLOB NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    seq INTEGER PRIMARY KEY,
    head_hash BLOB NOT NULL,
    time_us INTEGER NOT NULL,
    prev_seq INTEGER NOT NULL,
    interval INTEGER NOT NULL,
    signature BLOB NOT NULL
) STRICT;
CREATE TRIGGER IF NOT EXISTS audit_entries_no_update BEFORE UPDATE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_entries_no_delete BEFORE DELETE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
"""
# The triggers stop accidents (an UPDATE from a maintenance script), not an attacker, who can
# drop them: that is what the hash chain and the signed checkpoints are for.

# The partner's checkpoints our receipts brought (docs/audit.md, "Partner checkpoints"): kept
# beside the chain, not in it (each is countersigned by a CHECKPOINT_RECEIVED entry), and
# self-authenticating (each carries the partner's audit key and signature).
_SPENT_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS spent_acts (token BLOB PRIMARY KEY) STRICT;
CREATE TRIGGER IF NOT EXISTS spent_acts_no_delete BEFORE DELETE ON spent_acts
BEGIN SELECT RAISE(ABORT, 'spent acts are kept'); END;
"""
# The signatures of officer acts already used (xlink.officers.authorize), outside the chain:
# each is in the chained entry of its act too; this table makes the refusal of a replay cheap.

_PARTNER_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS partner_checkpoints (
    peer TEXT NOT NULL,
    audit_key BLOB NOT NULL,
    seq INTEGER NOT NULL,
    head_hash BLOB NOT NULL,
    time_us INTEGER NOT NULL,
    prev_seq INTEGER NOT NULL,
    interval INTEGER NOT NULL,
    signature BLOB NOT NULL,
    received_us INTEGER NOT NULL,
    PRIMARY KEY (peer, audit_key, seq, head_hash, signature)
) STRICT;
CREATE TRIGGER IF NOT EXISTS partner_checkpoints_no_update BEFORE UPDATE ON partner_checkpoints
BEGIN SELECT RAISE(ABORT, 'partner checkpoints are append-only'); END;
CREATE TRIGGER IF NOT EXISTS partner_checkpoints_no_delete BEFORE DELETE ON partner_checkpoints
BEGIN SELECT RAISE(ABORT, 'partner checkpoints are append-only'); END;
"""


@dataclass(frozen=True, slots=True)
class Entry:
    """One audit entry. ``fields`` hold only vocabulary values (see :mod:`xlink.audit`)."""

    seq: int
    time: datetime
    kind: AuditEvent
    fields: Mapping[str, FieldValue]
    prev_hash: bytes
    entry_hash: bytes


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed statement that entry ``seq`` has hash ``head_hash`` (and so, by the chain, that
    entries ``1..seq`` are exactly as logged). ``prev_seq`` is the previous checkpoint's seq
    (0 for the first); ``interval`` is the log's ``checkpoint_every``. Publishing checkpoints
    to a partner is what anchors the log against truncation (docs/audit.md)."""

    seq: int
    head_hash: bytes
    time: datetime
    prev_seq: int
    interval: int
    signature: bytes

    def message(self) -> bytes:
        """The exact bytes :attr:`signature` covers."""
        return checkpoint_message(
            self.seq, self.head_hash, to_micros(self.time), self.prev_seq, self.interval
        )


class AuditLog(SqliteStore):
    """An open audit log. Create with :meth:`open`; use as a context manager or :meth:`close`."""

    __slots__ = ("_interval", "_key", "path")

    def __init__(
        self, conn: sqlite3.Connection, path: Path, key: SigningKey | None, interval: int
    ) -> None:
        self._conn = conn
        self._key = key
        self._interval = interval
        self.path = path

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        signing_key: SigningKey | None,
        checkpoint_every: int = 100,
    ) -> AuditLog:
        """Open (creating if needed) the log at ``path``.

        With ``signing_key=None`` the log is read-only (for :meth:`entries` and
        :meth:`checkpoints`): a log is never written without checkpoints. A checkpoint is
        signed on the first entry, then whenever ``checkpoint_every`` entries have passed since
        the last one, on :meth:`checkpoint` and on :meth:`close`. Raises ``ValueError`` if
        ``checkpoint_every`` is out of range or differs from the interval the log's checkpoints
        already state (verification relies on it), and ``sqlite3.Error`` if ``path`` is not a
        usable database.
        """
        if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int):
            raise ValueError("checkpoint_every must be an int")
        if not 1 <= checkpoint_every <= MAX_CHECKPOINT_EVERY:
            raise ValueError(f"checkpoint_every must be 1..{MAX_CHECKPOINT_EVERY}")
        path = Path(path)
        with setting_up(path, read_only=signing_key is None) as conn:
            if signing_key is not None:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.executescript(_SCHEMA)
                conn.executescript(_PARTNER_SCHEMA)
                conn.executescript(_SPENT_SCHEMA)
                last = conn.execute(
                    "SELECT interval FROM audit_checkpoints ORDER BY seq DESC LIMIT 1"
                ).fetchone()
                if last is not None and last[0] != checkpoint_every:
                    raise ValueError(
                        f"this log checkpoints every {last[0]} entries; "
                        f"open it with checkpoint_every={last[0]}"
                    )
        return cls(conn, path, signing_key, checkpoint_every)

    def _writable_key(self) -> SigningKey:
        if self._key is None:
            raise ValueError("this audit log was opened without a signing key: read-only")
        return self._key

    def append(self, kind: AuditEvent, fields: Mapping[str, object], *, now: datetime) -> Entry:
        """Append one entry; sign a checkpoint in the same transaction when one is due.

        Raises ``ValueError`` (before anything is written) if ``fields`` fall outside the
        vocabulary for ``kind`` or ``now`` is naive, or if the log is read-only. If anything
        fails mid-way, the transaction is rolled back and the log is as it was.
        """
        key = self._writable_key()
        checked = check_fields(kind, fields)
        time_us = to_micros(now)
        with self._transaction():
            return self._append_locked(key, kind, checked, time_us)

    def _append_locked(
        self, key: SigningKey, kind: AuditEvent, checked: dict[str, FieldValue], time_us: int
    ) -> Entry:
        """Write one checked entry (and its checkpoint when due), inside a transaction."""
        seq, prev = self._head()
        seq += 1
        digest = entry_hash(prev, seq, time_us, kind.name, checked)
        self._conn.execute(
            "INSERT INTO audit_entries (seq, time_us, kind, fields, prev_hash, entry_hash)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (seq, time_us, kind.name, encode_fields(checked), prev, digest),
        )
        last_cp = self._last_checkpoint_seq()
        if last_cp == 0 or seq - last_cp >= self._interval:
            self._sign(key, seq, digest, time_us, last_cp)
        return Entry(seq, from_micros(time_us), kind, MappingProxyType(checked), prev, digest)

    def checkpoint(self, *, now: datetime) -> Checkpoint | None:
        """Sign a checkpoint at the current head unless it already has one; return the
        checkpoint at the head (``None`` for an empty log)."""
        return self._checkpoint_head(now)[0]

    def _checkpoint_head(self, now: datetime) -> tuple[Checkpoint | None, bool]:
        """:meth:`checkpoint`, and whether it was signed in this call."""
        key = self._writable_key()
        time_us = to_micros(now)
        with self._transaction():
            seq, head = self._head()
            last_cp = self._last_checkpoint_seq()
            if seq != 0 and last_cp != seq:
                signature = self._sign(key, seq, head, time_us, last_cp)
                made = Checkpoint(
                    seq, head, from_micros(time_us), last_cp, self._interval, signature
                )
                return made, True
        return self.last_checkpoint(), False

    def publish(self, *, now: datetime) -> PublishedCheckpoint | None:
        """Sign a checkpoint at the head (:meth:`checkpoint`) and return it with this log's
        audit verify key: what a receipt carries to the partner (xlink-release-v1 §8), so that
        the partner holds our commitment to entries ``1..seq``. ``None`` for an empty log."""
        from xlink.audit._anchors import PublishedCheckpoint  # _anchors builds on this module

        key = self._writable_key()
        checkpoint, signed_now = self._checkpoint_head(now)
        if checkpoint is None:
            return None
        if signed_now:  # signed by ``key`` just now: nothing to check
            return PublishedCheckpoint.signed_now(key.verify_key, checkpoint)
        return PublishedCheckpoint(key.verify_key, checkpoint)

    def keep_partner_checkpoint(
        self,
        peer: str,
        published: PublishedCheckpoint,
        *,
        now: datetime,
        session: bytes | None = None,
        handle: bytes | None = None,
    ) -> bool:
        """Keep ``peer``'s checkpoint (from a receipt that verified: ``session`` and ``handle``
        name the release it receipted) in ``partner_checkpoints`` and countersign it in our
        chain as ``CHECKPOINT_RECEIVED`` (peer, seq, head hash, audit-key fingerprint), both in
        one transaction. Returns False, writing nothing, when that checkpoint is already kept.

        Raises :class:`~xlink.errors.DecryptionError` unless its signature verifies with the
        key it carries (nothing unverified is kept), ``ValueError`` for a ``peer`` the
        vocabulary refuses, a naive ``now`` or a read-only log.
        """
        key = self._writable_key()
        published.verify()
        cp = published.checkpoint
        fields: dict[str, object] = {
            "peer": peer,
            "seq": cp.seq,
            "digest": cp.head_hash,
            "fingerprint": published.audit_key.fingerprint(),
        }
        if session is not None:
            fields["session"] = session
        if handle is not None:
            fields["handle"] = handle
        checked = check_fields(AuditEvent.CHECKPOINT_RECEIVED, fields)
        time_us = to_micros(now)
        row = (
            peer,
            bytes(published.audit_key),
            cp.seq,
            cp.head_hash,
            to_micros(cp.time),
            cp.prev_seq,
            cp.interval,
            cp.signature,
            time_us,
        )
        with self._transaction():
            cursor = self._conn.execute(
                "INSERT OR IGNORE INTO partner_checkpoints (peer, audit_key, seq, head_hash,"
                " time_us, prev_seq, interval, signature, received_us)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            if cursor.rowcount == 0:
                return False
            self._append_locked(key, AuditEvent.CHECKPOINT_RECEIVED, checked, time_us)
        return True

    def signed_by(self, verify_key: VerifyKey) -> bool:
        """True when the latest checkpoint verifies with ``verify_key`` (or there is none): a
        log has one checkpoint key, or it cannot be verified. A log begun under another key
        (an agency's signing key, before its audit key) is to be verified with that key and
        followed by a new log, not written on (:class:`~xlink.agency.Agency` refuses it)."""
        last = self.last_checkpoint()
        if last is None:
            return True
        try:
            verify_key.verify(last.signature, last.message())
        except (DecryptionError, ValueError, OverflowError):
            return False
        return True

    def partner_checkpoints(self, peer: str) -> tuple[PublishedCheckpoint, ...]:
        """The checkpoints of ``peer``'s log kept by :meth:`keep_partner_checkpoint`, in
        ``seq`` order: what ``xlink audit export-checkpoints`` writes for the peer's auditor.
        Empty for a log written before partner checkpoints were kept."""
        from xlink.audit._anchors import PublishedCheckpoint, make_checkpoint

        try:
            rows = self._conn.execute(
                "SELECT audit_key, seq, head_hash, time_us, prev_seq, interval, signature"
                " FROM partner_checkpoints WHERE peer = ? ORDER BY seq, head_hash, signature",
                (peer,),
            ).fetchall()
        except sqlite3.OperationalError:  # an older log, opened read-only: no such table
            return ()
        return tuple(
            PublishedCheckpoint(VerifyKey(bytes(key)), make_checkpoint(*rest))
            for key, *rest in rows
        )

    def close(self) -> None:
        """Sign a closing checkpoint if the head has none (dated with the head entry's time, so
        no clock is read), then close the database. Idempotent."""
        try:
            if self._key is not None:
                with self._transaction():
                    seq, head = self._head()
                    last_cp = self._last_checkpoint_seq()
                    if seq != 0 and last_cp != seq:
                        row = self._conn.execute(
                            "SELECT time_us FROM audit_entries WHERE seq = ?", (seq,)
                        ).fetchone()
                        self._sign(self._key, seq, head, int(row[0]), last_cp)
                self._key = None
        finally:
            self._conn.close()

    def entries(
        self, after: int = 0, *, kinds: Collection[AuditEvent] | None = None
    ) -> Iterator[Entry]:
        """The entries in order, as stored (verify with :func:`~xlink.audit.verify_log`); only
        those whose ``seq`` is above ``after`` when given, and only of ``kinds`` when given
        (chosen by the database, so the others are not decoded)."""
        where, params = "seq > ?", list[object]([after])
        if kinds is not None:
            names = sorted({kind.name for kind in kinds})
            where += f" AND kind IN ({', '.join('?' * len(names))})" if names else " AND 0"
            params += names
        query = f"SELECT seq, time_us, kind, fields, prev_hash, entry_hash FROM audit_entries WHERE {where} ORDER BY seq"  # noqa: E501, S608 (placeholders only)
        rows = self._conn.execute(query, params)
        for seq, time_us, kind, fields, prev, digest in rows:
            checked = check_fields(AuditEvent[kind], decode_fields(fields), stored=True)
            fields_ro = MappingProxyType(checked)
            yield Entry(seq, from_micros(time_us), AuditEvent[kind], fields_ro, prev, digest)

    def checkpoints(self) -> Iterator[Checkpoint]:
        """The checkpoints in order of the entry they cover."""
        rows = self._conn.execute(
            "SELECT seq, head_hash, time_us, prev_seq, interval, signature"
            " FROM audit_checkpoints ORDER BY seq"
        )
        for seq, head, time_us, prev_seq, interval, signature in rows:
            yield Checkpoint(seq, head, from_micros(time_us), prev_seq, interval, signature)

    def last_checkpoint(self) -> Checkpoint | None:
        """The latest checkpoint: the thing to publish to a partner as an external anchor."""
        row = self._conn.execute(
            "SELECT seq, head_hash, time_us, prev_seq, interval, signature"
            " FROM audit_checkpoints ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        seq, head, time_us, prev_seq, interval, signature = row
        return Checkpoint(seq, head, from_micros(time_us), prev_seq, interval, signature)

    def spend_once(self, token: bytes) -> bool:
        """Record ``token`` (an officer act's signature) as used; ``False`` if it was already,
        so that no act is accepted twice. ``ValueError`` if the log is read-only."""
        self._writable_key()
        try:
            with self._transaction():
                self._conn.execute("INSERT INTO spent_acts (token) VALUES (?)", (bytes(token),))
        except sqlite3.IntegrityError:
            return False
        return True

    def head_time(self) -> datetime | None:
        """The latest time any entry states (``None`` for an empty log): the store and the
        approval queue refuse an act dated before it, so that a clock set back cannot step
        back into a retention period. The highest time, not the last entry's: a refusal logged
        at an early time must not lower it."""
        row = self._conn.execute("SELECT MAX(time_us) FROM audit_entries").fetchone()
        return None if row is None or row[0] is None else from_micros(int(row[0]))

    # -- internals ---------------------------------------------------------------------------

    def _transaction(self) -> AbstractContextManager[None]:
        return transaction(self._conn)

    def _head(self) -> tuple[int, bytes]:
        row = self._conn.execute(
            "SELECT seq, entry_hash FROM audit_entries ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return (0, GENESIS_HASH) if row is None else (int(row[0]), bytes(row[1]))

    def _last_checkpoint_seq(self) -> int:
        row = self._conn.execute("SELECT MAX(seq) FROM audit_checkpoints").fetchone()
        return 0 if row is None or row[0] is None else int(row[0])

    def _sign(self, key: SigningKey, seq: int, head: bytes, time_us: int, prev_seq: int) -> bytes:
        message = checkpoint_message(seq, head, time_us, prev_seq, self._interval)
        signature = key.sign(message)
        self._conn.execute(
            "INSERT INTO audit_checkpoints (seq, head_hash, time_us, prev_seq, interval,"
            " signature) VALUES (?, ?, ?, ?, ?, ?)",
            (seq, head, time_us, prev_seq, self._interval, signature),
        )
        return signature
