"""The recipient's store, as its officers use it (:class:`~xlink.store.ReleaseStore`,
docs/store.md): the stored releases listed, read, exported, shared onward and purged, every
record opened again from its sealed bytes and every use authorized by an enrolled officer's
signed act and audited."""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path

from xlink._sqlite import transaction
from xlink.audit import AuditEvent, AuditLog
from xlink.crypto.keys import SealingKey
from xlink.errors import DamagedDatabase, PolicyDenied, XlinkError
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
from xlink.release import ReleaseRecord, ReleaseRejected, open_release
from xlink.store._rows import (
    _SELECT,
    ReceivedRelease,
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
    DENY_EXPIRED,
    DENY_PURPOSE_NOT_ALLOWED,
    DENY_RECORD_UNREADABLE,
    DENY_UNKNOWN_RELEASE,
    PURGE_EXPIRED,
    PURGE_RUN,
    PURGE_UNREADABLE,
)

__all__ = ["StoredUse"]


class StoredUse:
    """What :class:`~xlink.store.ReleaseStore` does with what it holds, mixed into it (as
    :class:`~xlink.agency.Agency` mixes in its release methods)."""

    __slots__ = ()

    _conn: sqlite3.Connection
    path: Path
    _mou: Mou
    _sealing_key: SealingKey
    _audit: AuditLog
    _officers: OfficerRegistry | None

    # -- using ----------------------------------------------------------------------------

    def list(self, now: datetime) -> tuple[StoredRelease, ...]:
        """Every stored release's metadata, oldest first; nothing is opened or audited."""
        now_us = _micros(now)
        rows = self._conn.execute(_SELECT + " ORDER BY received_us, release_id").fetchall()
        return tuple(self._metadata(_Row(*row), now_us) for row in rows)

    def received(self, release_id: bytes, now: datetime) -> ReceivedRelease | None:
        """What the store keeps of a release it received and receipted, a copy of one it held
        too, after a purge as well (None: never received here); with the held release's
        metadata as of ``now`` while it is stored. Nothing is opened or audited."""
        rid = _release_id(release_id)
        found = self._conn.execute(
            "SELECT originator, held_id, own_record_id FROM received WHERE release_id = ?",
            (rid,),
        ).fetchone()
        if found is None:
            return None
        originator, held_id, own_record_id = found
        row = self._row(bytes(held_id))
        held = None if row is None else self._metadata(row, _micros(now))
        return ReceivedRelease(rid, originator, bytes(held_id), own_record_id, held)

    def _metadata(self, r: _Row, now_us: int) -> StoredRelease:
        try:
            return StoredRelease(
                release_id=bytes(r.release_id),
                session_id=bytes(r.session_id),
                category=Category(r.category),
                originator=r.originator,
                received_at=_time(r.received_us),
                expires_at=_time(r.expires_us),
                expired=now_us >= r.expires_us,
                own_record_id=r.own_record_id,
            )
        except (ValueError, OverflowError):  # a category or a time altered in the file
            raise DamagedDatabase(f"{self.path}: a row was altered in the file") from None

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
        base: dict[str, object] = {"handle": rid, **_session_of(row)}
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
        if not isinstance(third_party, str) or not AGENCY_ID.fullmatch(third_party):
            raise ValueError("third_party must be an agency id")
        rid = _release_id(release_id)
        row = self._row(rid)
        base: dict[str, object] = {"handle": rid, "peer": third_party, **_session_of(row)}
        try:
            reader = self._officer(act, OfficerAction.SHARE, rid, third_party, now)
            if row is None:
                raise PolicyDenied([DENY_UNKNOWN_RELEASE])
            try:
                record = self._open(row)
            except XlinkError:  # altered in the file: refused like a forged release, audited
                denied = {**base, "reason": DENY_RECORD_UNREADABLE}
                self._log(AuditEvent.ONWARD_DENIED, denied, now)
                raise
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
        nor can be read. A purged release's id and originator stay in ``received``
        (:meth:`received`); our record it was filed for does not."""
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
                # its id stays known as received (delivered before, xlink-query-v1 §7.4); which
                # record of ours it was filed for goes with the record
                self._conn.execute(
                    "UPDATE received SET own_record_id = NULL WHERE held_id = ?",
                    (row.release_id,),
                )
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


def _session_of(row: _Row | None) -> dict[str, object]:
    """The audit field naming a stored row's session, if it holds one: none for a missing row,
    nor for a session id altered in the file (the row is then refused when opened)."""
    if row is None or not (isinstance(row.session_id, bytes) and len(row.session_id) == 16):
        return {}
    return {"session": row.session_id}
