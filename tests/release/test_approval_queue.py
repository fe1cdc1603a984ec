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
        assert q.take_approved(now=T0) == ()
        q.approve(a.item_id, APPROVER, now=T0)
        taken = q.take_approved(now=T0)
        assert [(i.item_id, i.state) for i, _ in taken] == [(a.item_id, QueueState.TAKEN)]
        assert taken[0][1] == _record(1)
        assert q.take_approved(now=T0) == ()
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
            assert q.take_approved(now=T0) == ()
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
