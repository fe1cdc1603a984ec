"""The recipient's store of released records: SQLite, sealed at rest, under the MOU's caveats
(DESIGN §2 step 7; docs/store.md).

A release is stored exactly as it arrived, sealed to the recipient's X25519 key: the database
holds ciphertext plus a few non-identifying index columns (release id, session id, category,
originator, received and expiry times) and the receipt that was returned. Every read opens the
sealed bytes again through :func:`xlink.release.open_release`, so a row altered in the file
is refused like a forged release. No clock is read: every call takes ``now``.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Collection, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from xlink._sqlite import SqliteStore, connect, transaction
from xlink.audit import AuditEvent, AuditLog
from xlink.crypto.keys import SealingKey, SigningKey, VerifyKey
from xlink.errors import PolicyDenied
from xlink.identifiers import AGENCY_ID, FINGERPRINT
from xlink.policy.mou import Mou
from xlink.records.model import Category
from xlink.release import (
    ReleaseRecord,
    ReleaseRejected,
    SealedRelease,
    encode_release,
    issue_receipt,
    open_release,
    release_digest,
)
from xlink.release.record import content_digest
from xlink.store.consent import ConsentToken
from xlink.store.onward import check_onward_sharing
from xlink.store.reasons import (
    DENY_EXPIRED,
    DENY_LABEL_FAILED,
    DENY_MATCH_ALREADY_RECEIVED,
    DENY_NOT_DECIDED,
    DENY_PURPOSE_NOT_ALLOWED,
    DENY_UNKNOWN_RELEASE,
    PURGE_EXPIRED,
    PURGE_RUN,
    ReleaseReplayed,
)

__all__ = ["DecidedMatches", "ReleaseStore", "StoredRelease"]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_US_PER_DAY: Final = 86_400_000_000
_FINGERPRINT = FINGERPRINT
_AGENCY_ID = AGENCY_ID

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS releases (
    release_id BLOB PRIMARY KEY,
    session_id BLOB NOT NULL,
    category TEXT NOT NULL,
    originator TEXT NOT NULL,
    received_us INTEGER NOT NULL,
    expires_us INTEGER NOT NULL,
    sealed BLOB NOT NULL,
    receipt BLOB NOT NULL,
    own_record_id TEXT,
    content BLOB
) STRICT;
CREATE INDEX IF NOT EXISTS releases_expiry ON releases (expires_us);
CREATE INDEX IF NOT EXISTS releases_content ON releases (originator, content);
"""
# Columns added after the first stores were written: added in place to an older store.
_ADDED_COLUMNS: Final = (("own_record_id", "TEXT"), ("content", "BLOB"))
_SELECT: Final = (
    "SELECT release_id, session_id, category, originator, received_us, expires_us, sealed,"
    " own_record_id FROM releases"
)
_INSERT: Final = (
    "INSERT INTO releases (release_id, session_id, category, originator, received_us,"
    " expires_us, sealed, receipt, own_record_id, content) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _micros(when: datetime) -> int:
    if not isinstance(when, datetime) or when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
    return (when - _EPOCH) // timedelta(microseconds=1)


def _time(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _release_id(value: object) -> bytes:
    if not isinstance(value, bytes) or len(value) != 16:
        raise ValueError("a release id is 16 bytes")
    return value


@dataclass(frozen=True, slots=True)
class StoredRelease:
    """What the store says about a release without opening it: metadata only, no field value.
    ``expires_at`` is ``received_at`` plus the caveats' ``retention_days``; ``expired`` is as
    of the ``now`` the listing was made for."""

    release_id: bytes
    session_id: bytes
    category: Category
    originator: str
    received_at: datetime
    expires_at: datetime
    expired: bool
    own_record_id: str | None = None


@dataclass(frozen=True, slots=True)
class Accepted:
    """A release :meth:`ReleaseStore.accept` took: the receipt to return, the release's id and
    category, and whether it was stored (False: a re-run's copy of content already held)."""

    receipt: bytes
    release_id: bytes
    category: Category
    stored: bool


class DecidedMatches:
    """What one release transfer may deliver (xlink-release-v1 §7 step 11): our own decided
    matches of the session, each named by the set of its shared PSI handles
    (:attr:`xlink.decide.DecidedMatch.handles`, which both parties hold), each taking one
    release. Give it to :meth:`ReleaseStore.receive` as ``expected_matches``: a release is
    stored only for a decided match that has none yet, and counted against it.

    ``len()`` is the number of decided matches, received or not.
    """

    __slots__ = ("_left", "_total")

    def __init__(self, matches: Iterable[Iterable[bytes]]) -> None:
        self._left: Counter[frozenset[bytes]] = Counter(frozenset(m) for m in matches)
        self._total = self._left.total()

    def __len__(self) -> int:
        return self._total

    def __repr__(self) -> str:  # the handles are opaque but need not reach logs
        return f"DecidedMatches({self._total} decided, {self._left.total()} not yet received)"

    def refusal(self, match_handles: Iterable[bytes]) -> str | None:
        """None if a release for ``match_handles`` may be stored now; otherwise the reason:
        ``not-decided`` (not exactly, as a set, the handles of one of our decided matches) or
        ``match-already-received`` (each decided match with these handles has its release)."""
        key = frozenset(match_handles)
        if key not in self._left:
            return DENY_NOT_DECIDED
        return None if self._left[key] > 0 else DENY_MATCH_ALREADY_RECEIVED

    def _received(self, match_handles: Iterable[bytes]) -> None:
        self._left[frozenset(match_handles)] -= 1


@dataclass(frozen=True, slots=True)
class _Row:
    release_id: bytes
    session_id: bytes
    category: str
    originator: str
    received_us: int
    expires_us: int
    sealed: bytes
    own_record_id: str | None = None


class ReleaseStore(SqliteStore):
    """Released records received under one MOU. Create with :meth:`open`; use as a context
    manager or :meth:`close`."""

    __slots__ = ("_audit", "_mou", "_sealing_key", "_signing_key", "path")

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        mou: Mou,
        sealing_key: SealingKey,
        signing_key: SigningKey | None,
        audit: AuditLog | None,
    ) -> None:
        self._conn = conn
        self._mou = mou
        self._sealing_key = sealing_key
        self._signing_key = signing_key
        self._audit = audit
        self.path = path

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        mou: Mou,
        sealing_key: SealingKey,
        signing_key: SigningKey | None,
        audit: AuditLog | None = None,
    ) -> ReleaseStore:
        """Open (creating, readable by its owner only) the store at ``path`` for the MOU party
        whose sealing key ``sealing_key`` is. ``signing_key`` signs receipts (only
        :meth:`receive` needs it). ``mou`` should come from
        :func:`~xlink.policy.accept_mou`. Every receipt, read, refusal, onward-sharing decision
        and purge is appended to ``audit`` when given.

        Raises ``ValueError`` if ``sealing_key`` is not a party's key in the MOU, or
        ``signing_key`` not that party's verify key; ``sqlite3.Error`` if ``path`` is not a
        usable database.
        """
        party = next((p for p in mou.parties if p.sealing_key == sealing_key.public_key), None)
        if party is None:
            raise ValueError("this sealing key is not a party's key in the MOU")
        if signing_key is not None and signing_key.verify_key != party.verify_key:
            raise ValueError("signing_key is not the verify key the MOU names for this party")
        path = Path(path)
        conn = connect(path)
        try:
            # Freed pages are overwritten with zeros, so a purged record's bytes do not linger
            # in the file (they are ciphertext anyway; this is defence in depth).
            conn.execute("PRAGMA secure_delete=ON")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            columns = {row[1] for row in conn.execute("PRAGMA table_info(releases)")}
            for name, kind in _ADDED_COLUMNS if columns else ():
                if name not in columns:
                    conn.execute(f"ALTER TABLE releases ADD COLUMN {name} {kind}")
            conn.executescript(_SCHEMA)
        except BaseException:
            conn.close()
            raise
        return cls(conn, path, mou, sealing_key, signing_key, audit)

    # close(): SqliteStore's (the audit log is the caller's to close).

    # -- receiving ------------------------------------------------------------------------

    def receive(
        self,
        sealed: bytes | SealedRelease,
        *,
        expected_session_id: bytes,
        now: datetime,
        expected_matches: DecidedMatches | None = None,
        label_handles: Collection[bytes] | None = None,
        own_record_id: str | None = None,
    ) -> bytes:
        """:meth:`accept`, returning only the signed receipt."""
        return self.accept(
            sealed,
            expected_session_id=expected_session_id,
            now=now,
            expected_matches=expected_matches,
            label_handles=label_handles,
            own_record_id=own_record_id,
        ).receipt

    def accept(
        self,
        sealed: bytes | SealedRelease,
        *,
        expected_session_id: bytes,
        now: datetime,
        expected_matches: DecidedMatches | None = None,
        label_handles: Collection[bytes] | None = None,
        own_record_id: str | None = None,
    ) -> Accepted:
        """Verify one release and store it; return the signed receipt for the originator
        (DESIGN §2 step 7; xlink-release-v1 §7, §8).

        Every check is :func:`~xlink.release.open_release`'s (signature, originator,
        recipient, MOU id and digest, session, category, fields, caveats, grading) and raises
        what it raises. With ``expected_matches`` (our decided matches of this session: what
        a release transfer must give), a release whose match handles are not, as a set, those
        of one of them (``not-decided``), or of one that already has its release
        (``match-already-received``), raises :class:`~xlink.errors.PolicyDenied` with that
        reason and is audited as ``RECEIVE_DENIED`` (release id, digest, originator, never the
        handles). With ``label_handles`` (the handles its transfer label named,
        xlink-release-v1 §10.2), a release whose match handles are not exactly those is refused
        and audited the same way (``label-failed``). Then, in one transaction: a release id
        already stored raises
        :class:`~xlink.store.ReleaseReplayed`; otherwise the sealed bytes are stored as
        received, with ``expires_at = now + retention_days``, ``RELEASE_RECEIVED`` and
        ``RECEIPT_SENT`` are audited, and the release is counted in ``expected_matches``.
        Nothing else is stored or audited if anything fails. ``ValueError`` if the store was
        opened without a signing key.

        ``own_record_id`` is our own record the release matched (local, shown to the analyst).
        A release with the same content (:func:`~xlink.release.record.content_digest`) from
        the same originator for the same own record as one already stored is a re-run's copy
        (xlink-release-v1 §10.4): it is receipted (``RECEIPT_SENT``) but not stored again.
        Without ``own_record_id`` nothing is treated as a copy.
        """
        if self._signing_key is None:
            raise ValueError("receiving needs the signing key that signs receipts")
        received_us = _micros(now)
        data = sealed.data if isinstance(sealed, SealedRelease) else bytes(sealed)
        record = open_release(
            data, self._sealing_key, mou=self._mou, expected_session_id=expected_session_id
        )
        reason = None
        if expected_matches is not None:
            reason = expected_matches.refusal(record.match_handles)
        if (
            reason is None
            and label_handles is not None
            and frozenset(label_handles) != frozenset(record.match_handles)
        ):
            reason = DENY_LABEL_FAILED
        if reason is not None:
            fields: dict[str, object] = {
                "session": record.session_id,
                "handle": record.release_id,
                "reason": reason,
                "digest": release_digest(encode_release(record)),
                "peer": record.originator,
            }
            self._log(AuditEvent.RECEIVE_DENIED, fields, now)
            raise PolicyDenied([reason])
        receipt = issue_receipt(record, self._signing_key, now=now)
        expires_us = received_us + record.caveats.retention_days * _US_PER_DAY
        content = content_digest(record)
        with self._transaction():
            if self._row(record.release_id) is not None:
                raise ReleaseReplayed()
            if own_record_id is not None and self._holds(record.originator, content, own_record_id):
                if self._audit is not None:
                    base = {"session": record.session_id, "handle": record.release_id}
                    digest = release_digest(encode_release(record))
                    self._audit.append(AuditEvent.RECEIPT_SENT, {**base, "digest": digest}, now=now)
                if expected_matches is not None:
                    expected_matches._received(record.match_handles)
                return Accepted(receipt, record.release_id, record.category, stored=False)
            self._conn.execute(
                _INSERT,
                (
                    record.release_id,
                    record.session_id,
                    record.category.value,
                    record.originator,
                    received_us,
                    expires_us,
                    data,
                    receipt,
                    own_record_id,
                    content,
                ),
            )
            if self._audit is not None:
                digest = release_digest(encode_release(record))
                base = {"session": record.session_id, "handle": record.release_id}
                fields = {**base, "digest": digest, "peer": record.originator}
                self._audit.append(AuditEvent.RELEASE_RECEIVED, fields, now=now)
                self._audit.append(AuditEvent.RECEIPT_SENT, {**base, "digest": digest}, now=now)
        if expected_matches is not None:
            expected_matches._received(record.match_handles)
        return Accepted(receipt, record.release_id, record.category, stored=True)

    def _holds(self, originator: str, content: bytes, own_record_id: str) -> bool:
        row = self._conn.execute(
            "SELECT 1 FROM releases WHERE originator = ? AND content = ?"
            " AND own_record_id = ? LIMIT 1",
            (originator, content, own_record_id),
        ).fetchone()
        return row is not None

    def receipt(self, release_id: bytes) -> bytes:
        """The receipt returned when ``release_id`` was stored (to send again after a lost
        one); :class:`~xlink.errors.PolicyDenied` (``unknown-release``) if not stored."""
        row = self._conn.execute(
            "SELECT receipt FROM releases WHERE release_id = ?", (_release_id(release_id),)
        ).fetchone()
        if row is None:
            raise PolicyDenied([DENY_UNKNOWN_RELEASE])
        return bytes(row[0])

    # -- using ----------------------------------------------------------------------------

    def list(self, now: datetime) -> tuple[StoredRelease, ...]:
        """Every stored release's metadata, oldest first; nothing is opened or audited."""
        now_us = _micros(now)
        rows = self._conn.execute(_SELECT + " ORDER BY received_us, release_id").fetchall()
        return tuple(
            StoredRelease(
                release_id=bytes(r.release_id),
                session_id=bytes(r.session_id),
                category=Category(r.category),
                originator=r.originator,
                received_at=_time(r.received_us),
                expires_at=_time(r.expires_us),
                expired=now_us >= r.expires_us,
                own_record_id=r.own_record_id,
            )
            for r in (_Row(*row) for row in rows)
        )

    def read(
        self, release_id: bytes, *, purpose: str, reader: str | VerifyKey, now: datetime
    ) -> ReleaseRecord:
        """Open one stored record for ``purpose``, read by the officer whose signing-key
        fingerprint is ``reader``. Audited as ``RECORD_READ`` (or ``READ_DENIED``).

        Raises :class:`~xlink.errors.PolicyDenied` with every reason that applies:
        ``unknown-release``; ``purpose-not-allowed`` (not one of the MOU's ``purposes``);
        ``retention-expired`` (``now`` at or past ``expires_at``). A row altered in the file
        fails :func:`~xlink.release.open_release`'s checks (``DecryptionError``,
        :class:`~xlink.release.ReleaseRejected`). ``ValueError`` for a malformed id or reader.
        """
        fingerprint = reader.fingerprint() if isinstance(reader, VerifyKey) else reader
        if not isinstance(fingerprint, str) or not _FINGERPRINT.fullmatch(fingerprint):
            raise ValueError("reader must be a key fingerprint (32 lowercase hex digits)")
        row = self._row(_release_id(release_id))
        now_us = _micros(now)
        reasons = []
        if row is None:
            reasons.append(DENY_UNKNOWN_RELEASE)
        else:
            if purpose not in self._mou.purposes:
                reasons.append(DENY_PURPOSE_NOT_ALLOWED)
            if now_us >= row.expires_us:
                reasons.append(DENY_EXPIRED)
        base: dict[str, object] = {"handle": release_id, "reader": fingerprint}
        if row is not None:
            base["session"] = row.session_id
        if reasons:
            self._log(AuditEvent.READ_DENIED, {**base, "reason": reasons[0]}, now)
            raise PolicyDenied(reasons)
        assert row is not None
        record = self._open(row)
        self._log(AuditEvent.RECORD_READ, {**base, "purpose": purpose}, now)
        return record

    def share_onward(
        self,
        release_id: bytes,
        *,
        third_party: str,
        consent: ConsentToken | None,
        now: datetime,
    ) -> ReleaseRecord:
        """The record to hand to ``third_party``, if the caveats allow it (the third-party
        rule; docs/store.md, "Onward sharing"). Every decision is audited: ``ONWARD_SHARED``
        (with the consent's purpose) or ``ONWARD_DENIED`` (with the first reason).

        Raises :class:`~xlink.errors.PolicyDenied`: ``unknown-release``,
        ``retention-expired``, then :func:`~xlink.store.check_onward_sharing`'s reasons (TLP
        RED and AMBER+STRICT never; IEP ``none`` never; consent required under originator
        control, ``contact-for-instruction`` or TLP AMBER, and then valid, unexpired and for
        this release, MOU and third party). ``ValueError`` if ``third_party`` is not an agency
        id (``[A-Za-z0-9][A-Za-z0-9_.:-]*``, at most 64).
        """
        if not isinstance(third_party, str) or not _AGENCY_ID.fullmatch(third_party):
            raise ValueError("third_party must be an agency id")
        row = self._row(_release_id(release_id))
        base: dict[str, object] = {"handle": release_id, "peer": third_party}
        if row is not None:
            base["session"] = row.session_id
        try:
            if row is None:
                raise PolicyDenied([DENY_UNKNOWN_RELEASE])
            if _micros(now) >= row.expires_us:
                raise PolicyDenied([DENY_EXPIRED])
            record = self._open(row)
            check_onward_sharing(
                record, mou=self._mou, third_party=third_party, consent=consent, now=now
            )
        except PolicyDenied as exc:
            self._log(AuditEvent.ONWARD_DENIED, {**base, "reason": exc.reasons[0]}, now)
            raise
        if consent is not None:
            base["purpose"] = consent.purpose
        self._log(AuditEvent.ONWARD_SHARED, base, now)
        return record

    def purge(self, now: datetime) -> int:
        """Delete every record whose retention has ended (``expires_at <= now``); return how
        many. Audited in the same transaction: one ``PURGE`` per record
        (``retention-expired``, with its handle and session) and one for the run
        (``retention-run``, with the count, also when it is 0). The deleted pages are
        zeroed (``secure_delete``) and the write-ahead log is checkpointed and truncated."""
        now_us = _micros(now)
        with self._transaction():
            rows = self._conn.execute(
                "SELECT release_id, session_id FROM releases WHERE expires_us <= ?"
                " ORDER BY received_us, release_id",
                (now_us,),
            ).fetchall()
            self._conn.execute("DELETE FROM releases WHERE expires_us <= ?", (now_us,))
            if self._audit is not None:
                for release_id, session_id in rows:
                    fields = {"handle": release_id, "session": session_id, "reason": PURGE_EXPIRED}
                    self._audit.append(AuditEvent.PURGE, fields, now=now)
                run = {"reason": PURGE_RUN, "records": len(rows)}
                self._audit.append(AuditEvent.PURGE, run, now=now)
        if rows:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return len(rows)

    # -- internals ------------------------------------------------------------------------

    def _row(self, release_id: bytes) -> _Row | None:
        row = self._conn.execute(_SELECT + " WHERE release_id = ?", (release_id,)).fetchone()
        return None if row is None else _Row(*row)

    def _open(self, row: _Row) -> ReleaseRecord:
        record = open_release(
            row.sealed, self._sealing_key, mou=self._mou, expected_session_id=row.session_id
        )
        if (
            record.release_id != row.release_id
            or record.category.value != row.category
            or record.originator != row.originator
        ):
            raise ReleaseRejected("wrong-release")  # the row was altered in the file
        return record

    def _log(self, kind: AuditEvent, fields: dict[str, object], now: datetime) -> None:
        if self._audit is not None:
            self._audit.append(kind, fields, now=now)

    def _transaction(self) -> AbstractContextManager[None]:
        return transaction(self._conn)
