"""The approval queue: nothing before approval, each once; denials audited; deadlines."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from _release_support import APPROVER, CA, MOU, SESSION, SIGNING, T0, release_record

from xlink.audit import AuditEvent, AuditLog, verify_log
from xlink.crypto.rand import DeterministicRandom
from xlink.release import ApprovalQueue, QueueError, QueueState


def _queue(tmp_path: Path, audit: AuditLog | None = None) -> ApprovalQueue:
    return ApprovalQueue.open(tmp_path / "queue.db", audit=audit)


def _record(i: int):  # type: ignore[no-untyped-def]
    return release_record(release_id=DeterministicRandom(i)(16))


def test_nothing_leaves_before_approval_and_each_only_once(tmp_path: Path) -> None:
    with _queue(tmp_path) as q:
        a = q.enqueue(_record(1), record_id="CAWL-1", mou=MOU, now=T0)
        b = q.enqueue(_record(2), record_id="CAWL-2", mou=MOU, now=T0)
        with pytest.raises(QueueError):  # pending: cannot be handed out
            q.take(a.item_id, now=T0)
        q.approve(a.item_id, APPROVER, now=T0)
        assert q.take(a.item_id, now=T0).state is QueueState.TAKEN
        with pytest.raises(QueueError):  # not yet delivered... but never pending again
            q.approve(a.item_id, APPROVER, now=T0)
        sent = q.mark_sent(a.item_id, b"\x07" * 16, now=T0)
        assert sent.state is QueueState.SENT and sent.sent_release_id == b"\x07" * 16
        with pytest.raises(QueueError):  # delivered: never handed out again
            q.take(a.item_id, now=T0)
        assert [i.item_id for i in q.pending(T0)] == [b.item_id]
        with pytest.raises(QueueError):
            q.approve(a.item_id, APPROVER, now=T0)
        with pytest.raises(ValueError):
            q.enqueue(_record(2), record_id="CAWL-2", mou=MOU, now=T0)


def test_denied_is_never_released_and_is_audited(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path / "audit.db", signing_key=SIGNING[CA]) as log:
        with _queue(tmp_path, log) as q:
            item = q.enqueue(_record(1), record_id="CAWL-1", mou=MOU, now=T0)
            denied = q.deny(item.item_id, APPROVER, "insufficient-grounds", now=T0)
            assert denied.state is QueueState.DENIED and denied.reason == "insufficient-grounds"
            with pytest.raises(QueueError):  # denied: never handed out
                q.take(item.item_id, now=T0)
            with pytest.raises(QueueError):
                q.approve(item.item_id, APPROVER, now=T0)
            with pytest.raises(ValueError):
                q.deny(item.item_id, APPROVER, "Not a code!", now=T0)
            with pytest.raises(QueueError):
                q.approve(99, APPROVER, now=T0)
        entries = list(log.entries())
    assert [e.kind for e in entries] == [AuditEvent.RELEASE_PENDING, AuditEvent.RELEASE_DENIED]
    denial = entries[1].fields
    assert denial["reason"] == "insufficient-grounds" and denial["approver"] == APPROVER
    assert denial["session"] == SESSION.hex() and denial["handle"] == _record(1).release_id.hex()
    assert entries[0].fields["category"] == "watchlist"
    assert verify_log(tmp_path / "audit.db", SIGNING[CA].verify_key).ok


def test_approval_is_audited_with_the_approver(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path / "audit.db", signing_key=SIGNING[CA]) as log:
        with _queue(tmp_path, log) as q:
            item = q.enqueue(_record(1), record_id="CAWL-1", mou=MOU, now=T0)
            q.approve(item.item_id, SIGNING[CA].verify_key, now=T0)
        kinds = [(e.kind, dict(e.fields)) for e in log.entries()]
    assert kinds[1][0] is AuditEvent.RELEASE_APPROVED
    assert kinds[1][1]["approver"] == SIGNING[CA].verify_key.fingerprint()


def test_a_failed_audit_append_undoes_the_change(tmp_path: Path) -> None:
    with _queue(tmp_path) as q:
        item = q.enqueue(_record(1), record_id="CAWL-1", mou=MOU, now=T0)
    AuditLog.open(tmp_path / "audit.db", signing_key=SIGNING[CA]).close()
    read_only = AuditLog.open(tmp_path / "audit.db", signing_key=None)
    with ApprovalQueue.open(tmp_path / "queue.db", audit=read_only) as q:
        with pytest.raises(ValueError):
            q.approve(item.item_id, APPROVER, now=T0)
        assert q.item(item.item_id, now=T0).state is QueueState.PENDING
    read_only.close()


def test_deadline_and_overdue(tmp_path: Path) -> None:
    with _queue(tmp_path) as q:
        item = q.enqueue(_record(1), record_id="CAWL-1", mou=MOU, now=T0)
        assert item.deadline == T0 + timedelta(hours=MOU.follow_up_hours)
        assert not q.pending(item.deadline)[0].overdue
        late = q.pending(item.deadline + timedelta(microseconds=1))[0]
        assert late.overdue and late.record_id == "CAWL-1" and late.category == "watchlist"
        q.approve(item.item_id, APPROVER, now=item.deadline + timedelta(hours=1))
        assert q.pending(T0) == ()
    with _queue(tmp_path) as q:  # persisted
        assert q.items(T0)[0].state is QueueState.APPROVED
        with pytest.raises(ValueError):
            q.pending(T0.replace(tzinfo=None))


def test_an_overdue_item_is_audited_once(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path / "audit.db", signing_key=SIGNING[CA]) as log:
        with _queue(tmp_path, log) as q:
            late = q.enqueue(_record(1), record_id="CAWL-1", mou=MOU, now=T0)
            decided = q.enqueue(_record(2), record_id="CAWL-2", mou=MOU, now=T0)
            q.approve(decided.item_id, APPROVER, now=T0)
            assert q.audit_overdue(late.deadline) == ()  # at the deadline: not yet overdue
            after = late.deadline + timedelta(minutes=1)
            assert [i.item_id for i in q.audit_overdue(after)] == [late.item_id]
            assert q.audit_overdue(after + timedelta(days=3)) == ()  # once only
        overdue = [e for e in log.entries() if e.kind is AuditEvent.RELEASE_OVERDUE]
    assert [e.fields["handle"] for e in overdue] == [late.release_id.hex()]


def test_a_queue_from_before_the_ledger_columns_is_migrated(tmp_path: Path) -> None:
    import sqlite3

    conn = sqlite3.connect(tmp_path / "queue.db")
    conn.executescript(
        """CREATE TABLE release_queue (item_id INTEGER PRIMARY KEY, release_id BLOB NOT NULL
        UNIQUE, session_id BLOB NOT NULL, record_id TEXT NOT NULL, category TEXT NOT NULL,
        recipient TEXT NOT NULL, mou_id TEXT NOT NULL, release BLOB NOT NULL, queued_us
        INTEGER NOT NULL, deadline_us INTEGER NOT NULL, state TEXT NOT NULL CHECK (state IN
        ('PENDING', 'APPROVED', 'DENIED', 'TAKEN')), approver TEXT, reason TEXT,
        decided_us INTEGER) STRICT;
        INSERT INTO release_queue VALUES (7, x'00', x'01', 'CAWL-9', 'watchlist', 'US-DHS',
        'M', x'02', 0, 1, 'PENDING', NULL, NULL, NULL);"""
    )
    conn.close()
    with _queue(tmp_path) as q:
        (item,) = q.items(T0)
        assert (item.item_id, item.record_id, item.state, item.version) == (
            7,
            "CAWL-9",
            QueueState.PENDING,
            None,
        )
        q.approve(7, APPROVER, now=T0)
        q.take(7, now=T0)
        assert q.mark_sent(7, b"\x01" * 16, now=T0).state is QueueState.SENT


def test_a_listing_without_an_audit_log_does_not_swallow_the_overdue_audit(
    tmp_path: Path,
) -> None:
    # `xlink releases pending` without --audit used to mark overdue items as audited, so no
    # exchange ever wrote their RELEASE_OVERDUE.
    with _queue(tmp_path) as q:
        late = q.enqueue(_record(1), record_id="CAWL-1", mou=MOU, now=T0)
        after = late.deadline + timedelta(minutes=1)
        assert [i.item_id for i in q.audit_overdue(after)] == [late.item_id]
    with (
        AuditLog.open(tmp_path / "audit.db", signing_key=SIGNING[CA]) as log,
        _queue(tmp_path, log) as q,
    ):
        assert [i.item_id for i in q.audit_overdue(after)] == [late.item_id]
        kinds = [e.kind for e in log.entries()]
    assert kinds.count(AuditEvent.RELEASE_OVERDUE) == 1
