"""Reading: by an enrolled officer's signed act, for a purpose the MOU lists, within the
retention the originator signed, of a record the store holds; every read and every refusal
audited (issue 4 item 4; issue 14: officers, retention from authenticated data)."""

from __future__ import annotations

import dataclasses
import sqlite3
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest
from _store_support import (
    APPROVER,
    AUDIT_KEY,
    DAY,
    READER,
    SESSION,
    STRANGER,
    T0,
    US,
    entries_of,
    make_record,
    open_store,
    read_act,
    seal,
)

from xlink.audit import AuditEvent, AuditLog
from xlink.errors import DecryptionError, PolicyDenied
from xlink.officers import (
    DENY_OFFICER_ACT,
    DENY_OFFICER_ROLE,
    DENY_OFFICER_SIGNATURE,
    DENY_OFFICER_UNKNOWN,
    OfficerAction,
)
from xlink.release import ReleaseRejected, encode_release
from xlink.store import DENY_EXPIRED, DENY_PURPOSE_NOT_ALLOWED, DENY_UNKNOWN_RELEASE
from xlink.store.reasons import DENY_CREATED_IN_FUTURE, DENY_TIME_BEFORE_LOG


@pytest.fixture
def stored(tmp_path: Path) -> Path:
    with open_store(tmp_path / "store.db") as store:
        for n in (1, 2):
            store.receive(seal(make_record(n)), expected_session_id=SESSION, now=T0)
    return tmp_path / "store.db"


def _audit(tmp_path: Path) -> AuditLog:
    return AuditLog.open(tmp_path / "audit.db", signing_key=AUDIT_KEY)


def test_a_read_for_an_mou_purpose_opens_the_record_and_is_audited(
    stored: Path, tmp_path: Path
) -> None:
    record = make_record(1)
    act = read_act(record.release_id, T0 + DAY)
    with _audit(tmp_path) as audit:
        with open_store(stored, audit=audit) as store:
            got = store.read(record.release_id, act=act, now=T0 + DAY)
        (entry,) = entries_of(audit, AuditEvent.RECORD_READ)
    assert encode_release(got) == encode_release(record)
    assert dict(entry.fields) == {
        "handle": record.release_id.hex(),
        "session": SESSION.hex(),
        "purpose": "border-security",
        "reader": READER.fingerprint,
        "officer_sig": act.signature.hex(),
    }
    # The entry holds what an auditor needs to check the officer's signature again.
    assert act.verify()


@pytest.mark.parametrize(
    ("n", "purpose", "days", "reasons"),
    [
        (1, "marketing", 1, [DENY_PURPOSE_NOT_ALLOWED]),
        (1, "border-security", 365, [DENY_EXPIRED]),
        (1, "curiosity", 400, [DENY_PURPOSE_NOT_ALLOWED, DENY_EXPIRED]),
        (9, "border-security", 1, [DENY_UNKNOWN_RELEASE]),
    ],
    ids=["disallowed-purpose", "expired", "both", "unknown-id"],
)
def test_refused_reads_say_why_and_are_audited(
    stored: Path, tmp_path: Path, n: int, purpose: str, days: int, reasons: list[str]
) -> None:
    release_id = make_record(n).release_id
    now = T0 + days * DAY
    with _audit(tmp_path) as audit:
        with open_store(stored, audit=audit) as store, pytest.raises(PolicyDenied) as exc:
            store.read(release_id, act=read_act(release_id, now, purpose=purpose), now=now)
        assert list(exc.value.reasons) == reasons
        assert entries_of(audit, AuditEvent.RECORD_READ) == []
        (entry,) = entries_of(audit, AuditEvent.READ_DENIED)
    assert entry.fields["reason"] == reasons[0]
    assert entry.fields["handle"] == release_id.hex()
    assert entry.fields["reader"] == READER.fingerprint


def _forged_signature(release_id: bytes) -> object:
    act = read_act(release_id, T0)
    return dataclasses.replace(act, signature=bytes(64))


@pytest.mark.parametrize(
    ("make_act", "reason"),
    [
        (lambda rid: read_act(rid, T0, officer=STRANGER), DENY_OFFICER_UNKNOWN),
        (lambda rid: read_act(rid, T0, officer=APPROVER), DENY_OFFICER_ROLE),
        (lambda rid: read_act(make_record(2).release_id, T0), DENY_OFFICER_ACT),
        (lambda rid: read_act(rid, T0 - DAY), DENY_OFFICER_ACT),
        (lambda rid: read_act(rid, T0, agency="CA-RCMP"), DENY_OFFICER_ACT),
        (
            lambda rid: READER.sign_act(
                OfficerAction.EXPORT, agency=US, target=rid, detail="border-security", now=T0
            ),
            DENY_OFFICER_ACT,
        ),
        (_forged_signature, DENY_OFFICER_SIGNATURE),
    ],
    ids=[
        "not-enrolled",
        "an-approver",
        "other-release",
        "stale",
        "other-agency",
        "other-action",
        "forged-signature",
    ],
)
def test_only_an_enrolled_readers_own_act_opens_a_record(
    stored: Path, tmp_path: Path, make_act: object, reason: str
) -> None:
    release_id = make_record(1).release_id
    act = make_act(release_id)  # type: ignore[operator]
    with _audit(tmp_path) as audit:
        with open_store(stored, audit=audit) as store, pytest.raises(PolicyDenied) as exc:
            store.read(release_id, act=act, now=T0)
        assert list(exc.value.reasons) == [reason]
        assert entries_of(audit, AuditEvent.RECORD_READ) == []
        (entry,) = entries_of(audit, AuditEvent.READ_DENIED)
    assert entry.fields["reason"] == reason


def test_a_bare_fingerprint_is_not_an_officer(stored: Path) -> None:
    release_id = make_record(1).release_id
    with open_store(stored) as store, pytest.raises(PolicyDenied, match=DENY_OFFICER_ACT):
        store.read(release_id, act=READER.fingerprint, now=T0)  # type: ignore[arg-type]


def test_an_edited_expiry_column_neither_keeps_nor_drops_a_record(stored: Path) -> None:
    """Retention comes from the signed created_at and retention_days (issue 14): editing the
    file's expiry column does not keep a record readable at 400 days, nor stop purge."""
    one = make_record(1).release_id
    far = 10_000 * 86_400_000_000
    with closing(sqlite3.connect(stored)) as db, db:
        db.execute("UPDATE releases SET expires_us = expires_us + ?", (far,))
    late = T0 + 400 * DAY
    with open_store(stored) as store:
        with pytest.raises(PolicyDenied, match=DENY_EXPIRED):
            store.read(one, act=read_act(one, late), now=late)
        assert store.purge(late) == 2
        assert store.list(late) == ()


def test_a_clock_set_back_cannot_step_back_into_retention(stored: Path, tmp_path: Path) -> None:
    one = make_record(1).release_id
    late = T0 + 400 * DAY
    with _audit(tmp_path) as audit, open_store(stored, audit=audit) as store:
        with pytest.raises(PolicyDenied, match=DENY_EXPIRED):
            store.read(one, act=read_act(one, late), now=late)
        back = T0 + DAY  # inside retention again, but before what the log has seen
        for attempt in range(2):  # the first refusal, logged at `back`, must not open the way
            with pytest.raises(PolicyDenied, match=DENY_TIME_BEFORE_LOG):
                store.read(one, act=read_act(one, back + attempt * DAY / 1000), now=back)
        assert entries_of(audit, AuditEvent.RECORD_READ) == []
        assert entries_of(audit, AuditEvent.READ_DENIED)[-1].fields["reason"] == (
            DENY_TIME_BEFORE_LOG
        )


def test_an_act_is_used_once_and_only_at_its_own_time(stored: Path, tmp_path: Path) -> None:
    one = make_record(1).release_id
    act = read_act(one, T0 + DAY)
    with _audit(tmp_path) as audit, open_store(stored, audit=audit) as store:
        with pytest.raises(PolicyDenied, match=DENY_OFFICER_ACT):  # a second off
            store.read(one, act=act, now=T0 + DAY + timedelta(seconds=1))
        store.read(one, act=act, now=T0 + DAY)
        with pytest.raises(PolicyDenied, match="officer-act-replayed"):
            store.read(one, act=act, now=T0 + DAY)
        assert len(entries_of(audit, AuditEvent.RECORD_READ)) == 1


def test_a_release_dated_in_the_future_is_refused_on_receipt(tmp_path: Path) -> None:
    """A future created_at would lengthen retention: refused, audited, nothing stored."""
    future = make_record(3, created_at=T0 + 2 * DAY)
    with _audit(tmp_path) as audit:
        with open_store(tmp_path / "store.db", audit=audit) as store:
            with pytest.raises(PolicyDenied, match=DENY_CREATED_IN_FUTURE):
                store.receive(seal(future), expected_session_id=SESSION, now=T0)
            assert store.list(T0) == ()
            soon = make_record(4, created_at=T0 + DAY / 48)  # a clock 30 minutes ahead
            store.receive(seal(soon), expected_session_id=SESSION, now=T0)
        (entry,) = entries_of(audit, AuditEvent.RECEIVE_DENIED)
    assert entry.fields["reason"] == DENY_CREATED_IN_FUTURE


def test_a_release_whose_retention_ran_out_before_it_arrived_is_refused(tmp_path: Path) -> None:
    """A partner dated a release 1970: it was stored, expired on arrival, and receipted, so
    the partner held our receipt for a release nobody could read. Refused, audited, nothing
    stored; one dated a day back is taken."""
    retention = make_record(5).caveats.retention_days * DAY
    old = make_record(5, created_at=T0 - retention)
    with _audit(tmp_path) as audit:
        with open_store(tmp_path / "store.db", audit=audit) as store:
            with pytest.raises(PolicyDenied, match=DENY_EXPIRED):
                store.receive(seal(old), expected_session_id=SESSION, now=T0)
            assert store.list(T0) == ()
            late = make_record(6, created_at=T0 - DAY)  # a day back: well within retention
            store.receive(seal(late), expected_session_id=SESSION, now=T0)
            assert len(store.list(T0)) == 1
        (entry,) = entries_of(audit, AuditEvent.RECEIVE_DENIED)
        assert len(entries_of(audit, AuditEvent.RECEIPT_SENT)) == 1  # the day-old one's only
    assert entry.fields["reason"] == DENY_EXPIRED


def test_a_store_is_never_opened_without_an_audit_log(stored: Path) -> None:
    from _store_support import MOU, SEALING, SIGNING

    from xlink.store import ReleaseStore

    with pytest.raises(ValueError, match="audit log"):
        ReleaseStore.open(
            stored,
            mou=MOU,
            sealing_key=SEALING[US],
            signing_key=SIGNING[US],
            audit=None,  # type: ignore[arg-type]
        )


def test_a_row_altered_in_the_file_is_refused(stored: Path) -> None:
    one, two = make_record(1).release_id, make_record(2).release_id
    with closing(sqlite3.connect(stored)) as db, db:
        (sealed_two,) = db.execute(
            "SELECT sealed FROM releases WHERE release_id = ?", (two,)
        ).fetchone()
        db.execute("UPDATE releases SET sealed = ? WHERE release_id = ?", (sealed_two, one))
    with open_store(stored) as store, pytest.raises(ReleaseRejected, match="wrong-release"):
        store.read(one, act=read_act(one, T0), now=T0)
    with closing(sqlite3.connect(stored)) as db, db:
        db.execute("UPDATE releases SET sealed = ? WHERE release_id = ?", (b"\x00" * 200, one))
    later = T0 + timedelta(seconds=1)  # a new act: the first was spent on the refused read
    with open_store(stored) as store, pytest.raises(DecryptionError):
        store.read(one, act=read_act(one, later), now=later)
    with AuditLog.open(stored.parent / "audit.db", signing_key=None) as log:
        denied = entries_of(log, AuditEvent.READ_DENIED)
    assert [e.fields["reason"] for e in denied] == ["record-unreadable"] * 2
