"""Reading: a purpose the MOU lists, within retention, of a record the store holds; every read
and every refusal audited (issue 4 item 4, purpose-bound reads)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from _store_support import (
    AUDIT_KEY,
    DAY,
    SESSION,
    T0,
    entries_of,
    make_record,
    open_store,
    seal,
)

from xlink.audit import AuditEvent, AuditLog
from xlink.errors import DecryptionError, PolicyDenied
from xlink.release import ReleaseRejected, encode_release
from xlink.store import DENY_EXPIRED, DENY_PURPOSE_NOT_ALLOWED, DENY_UNKNOWN_RELEASE

READER = AUDIT_KEY.verify_key.fingerprint()


@pytest.fixture
def stored(tmp_path: Path) -> Path:
    with open_store(tmp_path / "store.db") as store:
        for n in (1, 2):
            store.receive(seal(make_record(n)), expected_session_id=SESSION, now=T0)
    return tmp_path / "store.db"


def test_a_read_for_an_mou_purpose_opens_the_record_and_is_audited(
    stored: Path, tmp_path: Path
) -> None:
    record = make_record(1)
    with AuditLog.open(tmp_path / "audit.db", signing_key=AUDIT_KEY) as audit:
        with open_store(stored, audit=audit) as store:
            got = store.read(
                record.release_id, purpose="border-security", reader=READER, now=T0 + DAY
            )
        (entry,) = entries_of(audit, AuditEvent.RECORD_READ)
    assert encode_release(got) == encode_release(record)
    assert dict(entry.fields) == {
        "handle": record.release_id.hex(),
        "session": SESSION.hex(),
        "purpose": "border-security",
        "reader": READER,
    }


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
    with AuditLog.open(tmp_path / "audit.db", signing_key=AUDIT_KEY) as audit:
        with open_store(stored, audit=audit) as store, pytest.raises(PolicyDenied) as exc:
            store.read(release_id, purpose=purpose, reader=READER, now=T0 + days * DAY)
        assert list(exc.value.reasons) == reasons
        assert entries_of(audit, AuditEvent.RECORD_READ) == []
        (entry,) = entries_of(audit, AuditEvent.READ_DENIED)
    assert entry.fields["reason"] == reasons[0]
    assert entry.fields["handle"] == release_id.hex()


def test_a_read_needs_a_reader_fingerprint(stored: Path) -> None:
    with open_store(stored) as store:
        for reader in ("Officer Smith", "AB" * 16, ""):
            with pytest.raises(ValueError, match="reader"):
                store.read(
                    make_record(1).release_id, purpose="border-security", reader=reader, now=T0
                )
        got = store.read(
            make_record(1).release_id,
            purpose="border-security",
            reader=AUDIT_KEY.verify_key,
            now=T0,
        )
    assert got.release_id == make_record(1).release_id


def test_a_row_altered_in_the_file_is_refused(stored: Path) -> None:
    one, two = make_record(1).release_id, make_record(2).release_id
    with closing(sqlite3.connect(stored)) as db, db:
        (sealed_two,) = db.execute(
            "SELECT sealed FROM releases WHERE release_id = ?", (two,)
        ).fetchone()
        db.execute("UPDATE releases SET sealed = ? WHERE release_id = ?", (sealed_two, one))
    with open_store(stored) as store, pytest.raises(ReleaseRejected, match="wrong-release"):
        store.read(one, purpose="border-security", reader=READER, now=T0)
    with closing(sqlite3.connect(stored)) as db, db:
        db.execute("UPDATE releases SET sealed = ? WHERE release_id = ?", (b"\x00" * 200, one))
    with open_store(stored) as store, pytest.raises(DecryptionError):
        store.read(one, purpose="border-security", reader=READER, now=T0)
