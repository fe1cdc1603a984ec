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
from collections.abc import Collection
from datetime import datetime
from pathlib import Path

from xlink._sqlite import SqliteStore, setting_up, transaction
from xlink.audit import AuditEvent, AuditLog
from xlink.crypto.keys import SealingKey, SigningKey
from xlink.errors import PolicyDenied
from xlink.officers import OfficerRegistry
from xlink.policy.mou import Mou
from xlink.release import (
    SealedRelease,
    encode_release,
    issue_receipt,
    open_release,
    release_digest,
)
from xlink.release.record import ReleaseRecord, content_digest
from xlink.store._rows import (
    _ADDED_COLUMNS,
    _CREATED_AHEAD_US,
    _INSERT,
    _INSERT_RECEIVED,
    _RECEIVED_FROM_RELEASES,
    _RECEIVED_TABLE,
    _SCHEMA,
    CLOCK_TOLERANCE,
    MAX_CREATED_AHEAD,
    Accepted,
    DecidedMatches,
    ReceivedRelease,
    StoredRelease,
    _expires_us,
    _micros,
    _release_id,
)
from xlink.store._use import StoredUse
from xlink.store.reasons import (
    DENY_CREATED_IN_FUTURE,
    DENY_EXPIRED,
    DENY_LABEL_FAILED,
    DENY_UNKNOWN_RELEASE,
    ReleaseReplayed,
)

__all__ = [
    "CLOCK_TOLERANCE",
    "MAX_CREATED_AHEAD",
    "DecidedMatches",
    "ReceivedRelease",
    "ReleaseStore",
    "StoredRelease",
]


def _received_in(audit: AuditLog) -> list[tuple[bytes, str, bytes, None]]:
    """The releases ``audit`` says were received (``RELEASE_RECEIVED``: id and originator),
    as rows of ``received`` (each its own held release, our record not known): what an
    older store gives that table for the releases it purged before keeping their ids."""
    rows = []
    for entry in audit.entries(kinds={AuditEvent.RELEASE_RECEIVED}):
        handle, peer = entry.fields.get("handle"), entry.fields.get("peer")
        if isinstance(handle, str) and isinstance(peer, str):
            release_id = bytes.fromhex(handle)
            rows.append((release_id, peer, release_id, None))
    return rows


class ReleaseStore(StoredUse, SqliteStore):
    """Released records received under one MOU. Create with :meth:`open`; use as a context
    manager or :meth:`close`. Receiving is here; listing, reading, exporting, sharing onward
    and purging are :class:`~xlink.store._use.StoredUse`'s."""

    __slots__ = ("_audit", "_mou", "_officers", "_sealing_key", "_signing_key", "path")

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        mou: Mou,
        sealing_key: SealingKey,
        signing_key: SigningKey | None,
        audit: AuditLog,
        officers: OfficerRegistry | None,
    ) -> None:
        self._conn = conn
        self._mou = mou
        self._sealing_key = sealing_key
        self._signing_key = signing_key
        self._audit = audit
        self._officers = officers
        self.path = path

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        mou: Mou,
        sealing_key: SealingKey,
        signing_key: SigningKey | None,
        audit: AuditLog,
        officers: OfficerRegistry | None = None,
    ) -> ReleaseStore:
        """Open (creating, readable by its owner only) the store at ``path`` for the MOU party
        whose sealing key ``sealing_key`` is. ``signing_key`` signs receipts (only
        :meth:`receive` needs it). ``mou`` should come from
        :func:`~xlink.policy.accept_mou`. Every receipt, read, export, refusal, onward-sharing
        decision and purge is appended to ``audit``, which is required: nothing this store
        does goes unaudited. ``officers`` (the agency's enrolments) is what reads, exports and
        onward shares are checked against; without it they are refused (``ValueError``).

        Raises ``ValueError`` if ``sealing_key`` is not a party's key in the MOU, or
        ``signing_key`` not that party's verify key, or ``audit`` is not an open
        :class:`~xlink.audit.AuditLog`; ``DamagedDatabase`` (an ``InputError``) if ``path``
        is not a database, ``sqlite3.Error`` if it cannot otherwise be used.
        """
        party = next((p for p in mou.parties if p.sealing_key == sealing_key.public_key), None)
        if party is None:
            raise ValueError("this sealing key is not a party's key in the MOU")
        if signing_key is not None and signing_key.verify_key != party.verify_key:
            raise ValueError("signing_key is not the verify key the MOU names for this party")
        if not isinstance(audit, AuditLog):
            raise ValueError("a release store is always opened with its agency's audit log")
        path = Path(path)
        with setting_up(path) as conn:
            # Freed pages are overwritten with zeros, so a purged record's bytes do not linger
            # in the file (they are ciphertext anyway; this is defence in depth).
            conn.execute("PRAGMA secure_delete=ON")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            columns = {row[1] for row in conn.execute("PRAGMA table_info(releases)")}
            for name, kind in _ADDED_COLUMNS if columns else ():
                if name not in columns:
                    conn.execute(f"ALTER TABLE releases ADD COLUMN {name} {kind}")
            ids_kept = conn.execute("PRAGMA table_info(received)").fetchone() is not None
            conn.executescript(_SCHEMA)
            if not ids_kept:  # a new store, or one written before the received ids were kept
                logged = _received_in(audit) if columns else []
                with transaction(conn):
                    conn.execute(_RECEIVED_TABLE)
                    conn.execute(_RECEIVED_FROM_RELEASES)
                    conn.executemany(_INSERT_RECEIVED, logged)
        return cls(conn, path, mou, sealing_key, signing_key, audit, officers)

    # close(): SqliteStore's (the audit log is the caller's to close).

    @property
    def mou(self) -> Mou:
        """The MOU this store holds releases under."""
        return self._mou

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
        credit: bool = False,
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
        and audited the same way (``label-failed``), and so is a release dated more than
        :data:`MAX_CREATED_AHEAD` after ``now`` (``created-in-future``) or whose retention
        (its ``created_at`` plus ``retention_days``) ran out by ``now``
        (``retention-expired``, §7 step 12). Then, in one transaction: a release id already
        stored raises :class:`~xlink.store.ReleaseReplayed`; otherwise the sealed bytes are
        stored as received, expiring at ``created_at + retention_days``, ``RELEASE_RECEIVED`` and
        ``RECEIPT_SENT`` are audited, and the release is counted in ``expected_matches``.
        Nothing else is stored or audited if anything fails. ``ValueError`` if the store was
        opened without a signing key.

        ``own_record_id`` is our own record the release matched (local, shown to the analyst).
        A release with the same content (:func:`~xlink.release.record.content_digest`) from
        the same originator for the same own record as one already stored is a re-run's copy
        (xlink-release-v1 §10.4): it is receipted (``RECEIPT_SENT``) but not stored again.
        With ``credit`` (a reciprocal transfer's, §10.5) the release is ``credited`` to its
        originator, in the same transaction, unless the stored release (itself, or the one it
        copies) credited it before: each stored release credits once, ever, and the count
        (:meth:`credited`) outlives a purge. Without ``own_record_id`` nothing is treated as
        a copy.
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
        if reason is None and _micros(record.created_at) > received_us + _CREATED_AHEAD_US:
            reason = DENY_CREATED_IN_FUTURE
        if reason is None and _expires_us(record) <= received_us:
            # dated so far back that it could never be read: its originator would hold our
            # receipt for a release nobody may use
            reason = DENY_EXPIRED
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
        # The receipt carries our log's checkpoint, signed now: it covers every entry before
        # this release's RELEASE_RECEIVED / RECEIPT_SENT (xlink-release-v1 §8.3).
        checkpoint = self._audit.publish(now=now)
        receipt = issue_receipt(record, self._signing_key, now=now, checkpoint=checkpoint)
        expires_us = _expires_us(record)
        content = content_digest(record)
        with self._transaction():
            if self._row(record.release_id) is not None:
                raise ReleaseReplayed()
            held = None if own_record_id is None else self._held(record, content, own_record_id)
            if held is not None:
                base = {"session": record.session_id, "handle": record.release_id}
                digest = release_digest(encode_release(record))
                self._audit.append(AuditEvent.RECEIPT_SENT, {**base, "digest": digest}, now=now)
                if expected_matches is not None:
                    expected_matches._received(record.match_handles)
                self._conn.execute(
                    _INSERT_RECEIVED,
                    (record.release_id, record.originator, held, own_record_id),
                )
                return Accepted(
                    receipt,
                    record.release_id,
                    record.category,
                    stored=False,
                    credited=credit and self._credit(held, record, received_us),
                    held_id=held,
                )
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
            self._conn.execute(
                _INSERT_RECEIVED,
                (record.release_id, record.originator, record.release_id, own_record_id),
            )
            digest = release_digest(encode_release(record))
            base = {"session": record.session_id, "handle": record.release_id}
            fields = {**base, "digest": digest, "peer": record.originator}
            self._audit.append(AuditEvent.RELEASE_RECEIVED, fields, now=now)
            self._audit.append(AuditEvent.RECEIPT_SENT, {**base, "digest": digest}, now=now)
            credited = credit and self._credit(record.release_id, record, received_us)
        if expected_matches is not None:
            expected_matches._received(record.match_handles)
        return Accepted(receipt, record.release_id, record.category, stored=True, credited=credited)

    def _held(self, record: ReleaseRecord, content: bytes, own_record_id: str) -> bytes | None:
        """The release already stored with this content from this originator for this record
        of ours (one that has not credited the originator first); None if there is none."""
        row = self._conn.execute(
            "SELECT release_id FROM releases WHERE originator = ? AND content = ?"
            " AND own_record_id = ?"
            " ORDER BY EXISTS (SELECT 1 FROM credits WHERE held_id = release_id) LIMIT 1",
            (record.originator, content, own_record_id),
        ).fetchone()
        return None if row is None else bytes(row[0])

    def _credit(self, held_id: bytes, record: ReleaseRecord, at_us: int) -> bool:
        """Credit ``record``'s originator for the stored release ``held_id`` unless it was
        credited for it before (xlink-release-v1 §10.5); whether it was credited now."""
        cursor = self._conn.execute(
            "INSERT OR IGNORE INTO credits (held_id, originator, mou_id, credited_us)"
            " VALUES (?, ?, ?, ?)",
            (held_id, record.originator, record.mou_id, at_us),
        )
        return cursor.rowcount == 1

    def credited(self, originator: str) -> int:
        """How many stored releases of ``originator`` credited it under this store's MOU
        (xlink-release-v1 §10.5), over every exchange, purged ones included."""
        row = self._conn.execute(
            "SELECT count(*) FROM credits WHERE originator = ? AND mou_id = ?",
            (originator, self._mou.id),
        ).fetchone()
        return int(row[0])

    def receipt(self, release_id: bytes) -> bytes:
        """The receipt returned when ``release_id`` was stored (to send again after a lost
        one); :class:`~xlink.errors.PolicyDenied` (``unknown-release``) if not stored."""
        row = self._conn.execute(
            "SELECT receipt FROM releases WHERE release_id = ?", (_release_id(release_id),)
        ).fetchone()
        if row is None:
            raise PolicyDenied([DENY_UNKNOWN_RELEASE])
        return bytes(row[0])
