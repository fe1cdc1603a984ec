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
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path

from xlink._sqlite import SqliteStore, connect, transaction
from xlink.audit import AuditEvent, AuditLog
from xlink.crypto.keys import SealingKey, SigningKey
from xlink.errors import PolicyDenied, XlinkError
from xlink.identifiers import AGENCY_ID
from xlink.officers import (
    EXPORT_TARGET,
    OfficerAct,
    OfficerAction,
    OfficerRegistry,
    authorize,
)
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
from xlink.store._rows import (
    _ADDED_COLUMNS,
    _CREATED_AHEAD_US,
    _INSERT,
    _SCHEMA,
    _SELECT,
    CLOCK_TOLERANCE,
    MAX_CREATED_AHEAD,
    Accepted,
    DecidedMatches,
    StoredRelease,
    _expires_us,
    _micros,
    _release_id,
    _Row,
    _time,
)
from xlink.store.consent import ConsentToken
from xlink.store.onward import check_onward_sharing
from xlink.store.reasons import (
    DENY_CREATED_IN_FUTURE,
    DENY_EXPIRED,
    DENY_LABEL_FAILED,
    DENY_PURPOSE_NOT_ALLOWED,
    DENY_RECORD_UNREADABLE,
    DENY_UNKNOWN_RELEASE,
    PURGE_EXPIRED,
    PURGE_RUN,
    PURGE_UNREADABLE,
    ReleaseReplayed,
)

__all__ = [
    "CLOCK_TOLERANCE",
    "MAX_CREATED_AHEAD",
    "DecidedMatches",
    "ReleaseStore",
    "StoredRelease",
]

_AGENCY_ID = AGENCY_ID


class ReleaseStore(SqliteStore):
    """Released records received under one MOU. Create with :meth:`open`; use as a context
    manager or :meth:`close`."""

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
        :class:`~xlink.audit.AuditLog`; ``sqlite3.Error`` if ``path`` is not a usable database.
        """
        party = next((p for p in mou.parties if p.sealing_key == sealing_key.public_key), None)
        if party is None:
            raise ValueError("this sealing key is not a party's key in the MOU")
        if signing_key is not None and signing_key.verify_key != party.verify_key:
            raise ValueError("signing_key is not the verify key the MOU names for this party")
        if not isinstance(audit, AuditLog):
            raise ValueError("a release store is always opened with its agency's audit log")
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
        return cls(conn, path, mou, sealing_key, signing_key, audit, officers)

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
        if reason is None and _micros(record.created_at) > received_us + _CREATED_AHEAD_US:
            reason = DENY_CREATED_IN_FUTURE
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
            if own_record_id is not None and self._holds(record.originator, content, own_record_id):
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

    def read(self, release_id: bytes, *, act: OfficerAct, now: datetime) -> ReleaseRecord:
        """Open one stored record for the purpose an enrolled officer's signed ``act`` states
        (an :attr:`~xlink.officers.OfficerAction.READ` of this release, dated ``now``).
        Audited as ``RECORD_READ`` with the officer's fingerprint and signature, or as
        ``READ_DENIED`` with the first reason.

        Raises :class:`~xlink.errors.PolicyDenied` with the reasons that apply, checked in this
        order: ``time-before-log`` (``now`` is earlier than the audit log's latest entry: a
        clock set back cannot step back into the retention period); the officer's
        (:meth:`~xlink.officers.OfficerRegistry.check`: not enrolled, revoked, expired, no
        reader role, an act for another release, purpose or time, a bad signature);
        ``unknown-release``; ``purpose-not-allowed`` (not one of the MOU's ``purposes``);
        ``retention-expired`` (``now`` at or past the record's authenticated expiry: its
        signed ``created_at`` plus its caveats' ``retention_days``, never a column of the
        file). A row altered in the file fails :func:`~xlink.release.open_release`'s checks
        (``DecryptionError``, :class:`~xlink.release.ReleaseRejected`). ``ValueError`` for a
        malformed id or a store opened without officers.
        """
        rid = _release_id(release_id)
        purpose = act.detail if isinstance(act, OfficerAct) else ""
        row = self._row(rid)
        base: dict[str, object] = {"handle": rid}
        if row is not None:
            base["session"] = row.session_id
        try:
            reader = self._officer(act, OfficerAction.READ, rid, purpose, now)
            base["reader"] = reader
            if row is None:
                raise PolicyDenied([DENY_UNKNOWN_RELEASE])
            reasons = []
            if purpose not in self._mou.purposes:
                reasons.append(DENY_PURPOSE_NOT_ALLOWED)
            try:
                record = self._open(row)
            except XlinkError:  # altered in the file: refused like a forged release, audited
                self._log(AuditEvent.READ_DENIED, {**base, "reason": DENY_RECORD_UNREADABLE}, now)
                raise
            if _micros(now) >= _expires_us(record):
                reasons.append(DENY_EXPIRED)
            if reasons:
                raise PolicyDenied(reasons)
        except PolicyDenied as exc:
            self._log(AuditEvent.READ_DENIED, {**base, "reason": exc.reasons[0]}, now)
            raise
        fields = {**base, "purpose": purpose, "officer_sig": act.signature}
        self._log(AuditEvent.RECORD_READ, fields, now)
        return record

    def export(self, *, act: OfficerAct, now: datetime) -> tuple[ReleaseRecord, ...]:
        """Every record still in retention (by its authenticated expiry), oldest first, for the
        purpose an enrolled officer's signed ``act`` states (an
        :attr:`~xlink.officers.OfficerAction.EXPORT` of :data:`~xlink.officers.EXPORT_TARGET`).
        Each record is audited as ``RECORD_READ`` and the export as ``RECORDS_EXPORTED``, all
        with the officer's fingerprint and signature; a refusal is audited as ``READ_DENIED``
        and raises :class:`~xlink.errors.PolicyDenied` (``time-before-log``, the officer's
        reasons, ``purpose-not-allowed``)."""
        purpose = act.detail if isinstance(act, OfficerAct) else ""
        base: dict[str, object] = {"handle": EXPORT_TARGET}
        try:
            reader = self._officer(act, OfficerAction.EXPORT, EXPORT_TARGET, purpose, now)
            base["reader"] = reader
            if purpose not in self._mou.purposes:
                raise PolicyDenied([DENY_PURPOSE_NOT_ALLOWED])
        except PolicyDenied as exc:
            self._log(AuditEvent.READ_DENIED, {**base, "reason": exc.reasons[0]}, now)
            raise
        now_us = _micros(now)
        rows = self._conn.execute(_SELECT + " ORDER BY received_us, release_id").fetchall()
        records = []
        for row in (_Row(*r) for r in rows):
            record = self._open(row)
            if now_us >= _expires_us(record):
                continue
            records.append(record)
        sig = act.signature
        for record in records:
            fields: dict[str, object] = {
                "handle": record.release_id,
                "session": record.session_id,
                "reader": reader,
                "purpose": purpose,
                "officer_sig": sig,
            }
            self._log(AuditEvent.RECORD_READ, fields, now)
        summary: dict[str, object] = {"records": len(records), "purpose": purpose}
        summary["reader"] = reader
        self._log(AuditEvent.RECORDS_EXPORTED, {**summary, "officer_sig": sig}, now)
        return tuple(records)

    def share_onward(
        self,
        release_id: bytes,
        *,
        third_party: str,
        consent: ConsentToken | None,
        act: OfficerAct,
        now: datetime,
    ) -> ReleaseRecord:
        """The record to hand to ``third_party``, if an enrolled officer's signed ``act`` (a
        :attr:`~xlink.officers.OfficerAction.SHARE` of this release, its detail the third
        party's id) asks for it and the caveats allow it (the third-party rule; docs/store.md,
        "Onward sharing"). Every decision is audited: ``ONWARD_SHARED`` (with the consent's
        purpose and the officer) or ``ONWARD_DENIED`` (with the first reason).

        Raises :class:`~xlink.errors.PolicyDenied`: ``time-before-log``, the officer's reasons,
        ``unknown-release``, ``retention-expired`` (authenticated expiry), then
        :func:`~xlink.store.check_onward_sharing`'s reasons (TLP RED and AMBER+STRICT never; IEP
        ``none`` never; consent required under originator control, ``contact-for-instruction``
        or TLP AMBER, and then valid, unexpired and for this release, MOU and third party).
        ``ValueError`` if ``third_party`` is not an agency id (``[A-Za-z0-9][A-Za-z0-9_.:-]*``,
        at most 64).
        """
        if not isinstance(third_party, str) or not _AGENCY_ID.fullmatch(third_party):
            raise ValueError("third_party must be an agency id")
        rid = _release_id(release_id)
        row = self._row(rid)
        base: dict[str, object] = {"handle": rid, "peer": third_party}
        if row is not None:
            base["session"] = row.session_id
        try:
            reader = self._officer(act, OfficerAction.SHARE, rid, third_party, now)
            if row is None:
                raise PolicyDenied([DENY_UNKNOWN_RELEASE])
            record = self._open(row)
            if _micros(now) >= _expires_us(record):
                raise PolicyDenied([DENY_EXPIRED])
            check_onward_sharing(
                record, mou=self._mou, third_party=third_party, consent=consent, now=now
            )
        except PolicyDenied as exc:
            self._log(AuditEvent.ONWARD_DENIED, {**base, "reason": exc.reasons[0]}, now)
            raise
        base |= {"reader": reader, "officer_sig": act.signature}
        if consent is not None:
            base["purpose"] = consent.purpose
        self._log(AuditEvent.ONWARD_SHARED, base, now)
        return record

    def purge(self, now: datetime) -> int:
        """Delete every record whose retention has ended (its authenticated expiry, the signed
        ``created_at`` plus ``retention_days``, is at or before ``now``); return how many.
        Every stored record is opened to find out, so an edited expiry column neither keeps a
        record nor removes one. Audited in the same transaction: one ``PURGE`` per record
        (``retention-expired``, with its handle and session) and one for the run
        (``retention-run``, with the count, also when it is 0). The deleted pages are zeroed
        (``secure_delete``) and the write-ahead log is checkpointed and truncated. A record
        that no longer opens (altered in the file) is kept, as evidence, and audited as
        ``PURGE`` ``record-unreadable`` on each run: it neither stops the purge of the others
        nor can be read."""
        now_us = _micros(now)
        with self._transaction():
            rows = self._conn.execute(_SELECT + " ORDER BY received_us, release_id").fetchall()
            expired = []
            for row in (_Row(*r) for r in rows):
                try:
                    record = self._open(row)
                except (XlinkError, ValueError):  # altered in the file: kept, and said so
                    kept: dict[str, object] = {"reason": PURGE_UNREADABLE}
                    if isinstance(row.release_id, bytes) and len(row.release_id) == 16:
                        kept["handle"] = row.release_id
                    self._audit.append(AuditEvent.PURGE, kept, now=now)
                    continue
                if now_us >= _expires_us(record):
                    expired.append(row)
            for row in expired:
                self._conn.execute("DELETE FROM releases WHERE release_id = ?", (row.release_id,))
                fields = {
                    "handle": row.release_id,
                    "session": row.session_id,
                    "reason": PURGE_EXPIRED,
                }
                self._audit.append(AuditEvent.PURGE, fields, now=now)
            run = {"reason": PURGE_RUN, "records": len(expired)}
            self._audit.append(AuditEvent.PURGE, run, now=now)
        if expired:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return len(expired)

    def _officer(
        self, act: OfficerAct, action: OfficerAction, target: bytes, detail: str, now: datetime
    ) -> str:
        """The officer's fingerprint if ``act`` may do ``action`` now
        (:func:`xlink.officers.authorize`); else ``PolicyDenied``."""
        return authorize(
            self._officers,
            act,
            action=action,
            target=target,
            detail=detail,
            now=now,
            audit=self._audit,
        )

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
        self._audit.append(kind, fields, now=now)

    def _transaction(self) -> AbstractContextManager[None]:
        return transaction(self._conn)
