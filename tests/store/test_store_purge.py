"""Retention: purge removes the expired records and only those, leaves no readable trace of
them in the file, and every purge is audited (issue 4 item 4)."""

from __future__ import annotations

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
    read_act,
    seal,
)

from xlink.audit import AuditEvent, AuditLog, verify_log
from xlink.errors import PolicyDenied
from xlink.records.model import Category
from xlink.store import PURGE_EXPIRED, PURGE_RUN


def test_purge_removes_only_expired_records_and_audits_each(tmp_path: Path) -> None:
    watchlist = make_record(1)  # 365 days
    offender = make_record(2, category=Category.SEX_OFFENDER)  # 90 days
    late = make_record(3, created_at=T0 + 100 * DAY)  # 365 days, released 100 days later
    sealed = {r.release_id: seal(r) for r in (watchlist, offender, late)}
    with AuditLog.open(tmp_path / "audit.db", signing_key=AUDIT_KEY) as audit:
        with open_store(tmp_path / "store.db", audit=audit) as store:
            store.receive(sealed[watchlist.release_id], expected_session_id=SESSION, now=T0)
            store.receive(sealed[offender.release_id], expected_session_id=SESSION, now=T0)
            store.receive(sealed[late.release_id], expected_session_id=SESSION, now=T0 + 100 * DAY)
            assert store.purge(T0 + 89 * DAY) == 0
            assert store.purge(T0 + 90 * DAY) == 1
            left = {m.release_id for m in store.list(T0 + 90 * DAY)}
            assert left == {watchlist.release_id, late.release_id}
            assert store.purge(T0 + 365 * DAY) == 1
            assert [m.release_id for m in store.list(T0 + 365 * DAY)] == [late.release_id]
            now = T0 + 365 * DAY
            with pytest.raises(PolicyDenied, match="unknown-release"):
                act = read_act(offender.release_id, now, purpose="child-protection")
                store.read(offender.release_id, act=act, now=now)
        purges = [dict(e.fields) for e in entries_of(audit, AuditEvent.PURGE)]
    assert purges == [
        {"reason": PURGE_RUN, "records": 0},
        {"reason": PURGE_EXPIRED, "handle": offender.release_id.hex(), "session": SESSION.hex()},
        {"reason": PURGE_RUN, "records": 1},
        {"reason": PURGE_EXPIRED, "handle": watchlist.release_id.hex(), "session": SESSION.hex()},
        {"reason": PURGE_RUN, "records": 1},
    ]
    assert verify_log(tmp_path / "audit.db", AUDIT_KEY.verify_key).ok


def test_purged_bytes_are_not_left_in_the_file(tmp_path: Path) -> None:
    kept, gone = make_record(1), make_record(2, category=Category.SEX_OFFENDER)
    sealed_kept, sealed_gone = seal(kept), seal(gone)
    with open_store(tmp_path / "store.db") as store:
        store.receive(sealed_kept, expected_session_id=SESSION, now=T0)
        store.receive(sealed_gone, expected_session_id=SESSION, now=T0)
        store.purge(T0 + 90 * DAY)
        raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    # A 32-byte window of the ciphertext, not just its id: secure_delete zeroed the pages.
    assert sealed_kept.data[40:72] in raw
    assert sealed_gone.data[40:72] not in raw
    # its id stays known as received (a query holder's "delivered before" is checked against
    # it), as the audit log's PURGE entry keeps it; nothing of the record does
    with open_store(tmp_path / "store.db") as store:
        got = store.received(gone.release_id, T0 + 90 * DAY)
        assert got is not None and got.held is None


def test_a_row_altered_in_the_file_is_kept_and_said_so_and_does_not_stop_the_purge(
    tmp_path: Path,
) -> None:
    import sqlite3
    from contextlib import closing

    expired, altered = make_record(1, category=Category.SEX_OFFENDER), make_record(2)
    with AuditLog.open(tmp_path / "audit.db", signing_key=AUDIT_KEY) as audit:
        with open_store(tmp_path / "store.db", audit=audit) as store:
            for record in (expired, altered):
                store.receive(seal(record), expected_session_id=SESSION, now=T0)
        with closing(sqlite3.connect(tmp_path / "store.db")) as db, db:
            db.execute(
                "UPDATE releases SET category = 'other' WHERE release_id = ?",
                (altered.release_id,),
            )
        with open_store(tmp_path / "store.db", audit=audit) as store:
            assert store.purge(T0 + 400 * DAY) == 1  # the expired one, despite the other
            assert [m.release_id for m in store.list(T0 + 400 * DAY)] == [altered.release_id]
        reasons = [e.fields["reason"] for e in entries_of(audit, AuditEvent.PURGE)]
    assert reasons == ["record-unreadable", PURGE_EXPIRED, PURGE_RUN]
