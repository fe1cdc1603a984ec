"""The approval queue: nothing before approval, each once; denials audited; deadlines."""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from _officers import APPROVER as OFFICER
from _officers import READER, STRANGER, act, enrol_officers
from _release_support import CA, MOU, SESSION, SIGNING, T0, release_record

from xlink.audit import AuditEvent, AuditLog, verify_log
from xlink.crypto.rand import DeterministicRandom
from xlink.errors import DamagedDatabase, PolicyDenied
from xlink.officers import OfficerAction, OfficerKey
from xlink.release import ApprovalQueue, QueueError, QueueItem, QueueState

APPROVER = OFFICER.fingerprint


@contextlib.contextmanager
def _queue(tmp_path: Path, audit: AuditLog | None = None) -> Iterator[ApprovalQueue]:
    """CA's queue, audited to ``audit`` (or ``audit.db`` in ``tmp_path``), with OFFICER
    enrolled as an approver and READER as a reader."""
    with contextlib.ExitStack() as stack:
        if audit is None:
            audit = stack.enter_context(
                AuditLog.open(tmp_path / "audit.db", signing_key=SIGNING[CA])
            )
        officers = enrol_officers(tmp_path, agency=CA, agency_key=SIGNING[CA], audit=audit, now=T0)
        yield stack.enter_context(
            ApprovalQueue.open(tmp_path / "queue.db", audit=audit, officers=officers)
        )


def _approve(
    q: ApprovalQueue, item_id: int, *, now: datetime, officer: OfficerKey = OFFICER
) -> QueueItem:
    target = q.item(item_id, now=now).release_id
    signed = act(officer, OfficerAction.APPROVE, agency=CA, target=target, now=now)
    return q.approve(item_id, act=signed, now=now)


def _deny(q: ApprovalQueue, item_id: int, reason: str, *, now: datetime) -> QueueItem:
    target = q.item(item_id, now=now).release_id
    signed = act(OFFICER, OfficerAction.DENY, agency=CA, target=target, now=now, detail=reason)
    return q.deny(item_id, act=signed, now=now)


def _record(i: int):  # type: ignore[no-untyped-def]
    return release_record(release_id=DeterministicRandom(i)(16))


def test_nothing_leaves_before_approval_and_each_only_once(tmp_path: Path) -> None:
    with _queue(tmp_path) as q:
        a = q.enqueue(_record(1), record_id="CAWL-1", mou=MOU, now=T0)
        b = q.enqueue(_record(2), record_id="CAWL-2", mou=MOU, now=T0)
        with pytest.raises(QueueError):  # pending: cannot be handed out
            q.take(a.item_id, now=T0)
        _approve(q, a.item_id, now=T0)
        assert q.take(a.item_id, now=T0).state is QueueState.TAKEN
        with pytest.raises(QueueError):  # not yet delivered... but never pending again
            _approve(q, a.item_id, now=T0)
        sent = q.mark_sent(a.item_id, b"\x07" * 16, now=T0)
        assert sent.state is QueueState.SENT and sent.sent_release_id == b"\x07" * 16
        with pytest.raises(QueueError):  # delivered: never handed out again
            q.take(a.item_id, now=T0)
        assert [i.item_id for i in q.pending(T0)] == [b.item_id]
        with pytest.raises(QueueError):
            _approve(q, a.item_id, now=T0)
        with pytest.raises(ValueError):
            q.enqueue(_record(2), record_id="CAWL-2", mou=MOU, now=T0)


def test_denied_is_never_released_and_is_audited(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path / "audit.db", signing_key=SIGNING[CA]) as log:
        with _queue(tmp_path, log) as q:
            item = q.enqueue(_record(1), record_id="CAWL-1", mou=MOU, now=T0)
            denied = _deny(q, item.item_id, "insufficient-grounds", now=T0)
            assert denied.state is QueueState.DENIED and denied.reason == "insufficient-grounds"
            with pytest.raises(QueueError):  # denied: never handed out
                q.take(item.item_id, now=T0)
            with pytest.raises(QueueError):
                _approve(q, item.item_id, now=T0)
            with pytest.raises(ValueError):
                _deny(q, item.item_id, "Not a code!", now=T0)
            with pytest.raises(QueueError):
                _approve(q, 99, now=T0)
        entries = [e for e in log.entries() if e.kind is not AuditEvent.KEY_EVENT]
    assert [e.kind for e in entries] == [AuditEvent.RELEASE_PENDING, AuditEvent.RELEASE_DENIED]
    denial = entries[1].fields
    assert denial["reason"] == "insufficient-grounds" and denial["approver"] == APPROVER
    assert denial["session"] == SESSION.hex() and denial["handle"] == _record(1).release_id.hex()
    assert entries[0].fields["category"] == "watchlist"
    assert verify_log(tmp_path / "audit.db", SIGNING[CA].verify_key).ok


def test_approval_is_audited_with_the_approvers_key_and_signature(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path / "audit.db", signing_key=SIGNING[CA]) as log:
        with _queue(tmp_path, log) as q:
            item = q.enqueue(_record(1), record_id="CAWL-1", mou=MOU, now=T0)
            signed = act(OFFICER, OfficerAction.APPROVE, agency=CA, target=item.release_id, now=T0)
            q.approve(item.item_id, act=signed, now=T0)
        (entry,) = [e for e in log.entries() if e.kind is AuditEvent.RELEASE_APPROVED]
    assert entry.fields["approver"] == OFFICER.fingerprint
    assert entry.fields["officer_sig"] == signed.signature.hex()


def _refused(q: ApprovalQueue, item: QueueItem, signed: object) -> str:
    with pytest.raises(PolicyDenied) as exc:
        q.approve(item.item_id, act=signed, now=T0)  # type: ignore[arg-type]
    assert q.item(item.item_id, now=T0).state is QueueState.PENDING
    return exc.value.reasons[0]


def test_only_an_enrolled_approvers_own_act_approves(tmp_path: Path) -> None:
    """Issue 14: a made-up approver approved a release and the log did not change."""
    with AuditLog.open(tmp_path / "audit.db", signing_key=SIGNING[CA]) as log:
        with _queue(tmp_path, log) as q:
            item = q.enqueue(_record(1), record_id="CAWL-1", mou=MOU, now=T0)
            other = q.enqueue(_record(2), record_id="CAWL-2", mou=MOU, now=T0)
            rid = item.release_id

            def approval(officer: OfficerKey, target: bytes = rid) -> object:
                return act(officer, OfficerAction.APPROVE, agency=CA, target=target, now=T0)

            assert _refused(q, item, approval(STRANGER)) == "officer-not-enrolled"
            assert _refused(q, item, approval(READER)) == "officer-not-authorised"
            assert _refused(q, item, approval(OFFICER, other.release_id)) == "officer-act-mismatch"
            forged = dataclasses.replace(approval(OFFICER), signature=bytes(64))  # type: ignore[type-var]
            assert _refused(q, item, forged) == "officer-signature-invalid"
            assert _refused(q, item, OFFICER.fingerprint) == "officer-act-mismatch"
            _approve(q, item.item_id, now=T0)
        refusals = [e for e in log.entries() if e.kind is AuditEvent.DECISION_REFUSED]
    assert [e.fields["reason"] for e in refusals] == [
        "officer-not-enrolled",
        "officer-not-authorised",
        "officer-act-mismatch",
        "officer-signature-invalid",
        "officer-act-mismatch",
    ]
    assert refusals[0].fields["approver"] == STRANGER.fingerprint
    assert verify_log(tmp_path / "audit.db", SIGNING[CA].verify_key).ok


def test_a_revoked_approver_is_refused_whatever_time_the_act_states(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path / "audit.db", signing_key=SIGNING[CA]) as log:
        with _queue(tmp_path, log) as q:
            item = q.enqueue(_record(1), record_id="CAWL-1", mou=MOU, now=T0)
            later = T0 + timedelta(days=1)
            q._officers.revoke(OFFICER.fingerprint, agency_key=SIGNING[CA], audit=log, now=later)
            for when in (T0, later):  # a back-dated act does not slip before the revocation
                with pytest.raises(PolicyDenied):
                    _approve(q, item.item_id, now=when)
            assert q.item(item.item_id, now=later).state is QueueState.PENDING
        refusals = [
            e.fields["reason"] for e in log.entries() if e.kind is AuditEvent.DECISION_REFUSED
        ]
    # Back-dated, the act falls before the log's latest entry; at the time, it is revoked.
    assert refusals == ["time-before-log", "officer-revoked"]


def test_a_failed_audit_append_undoes_the_change(tmp_path: Path) -> None:
    with _queue(tmp_path) as q:
        item = q.enqueue(_record(1), record_id="CAWL-1", mou=MOU, now=T0)
        registry = q._officers
    read_only = AuditLog.open(tmp_path / "audit.db", signing_key=None)
    with ApprovalQueue.open(tmp_path / "queue.db", audit=read_only, officers=registry) as q:
        with pytest.raises(ValueError):
            _approve(q, item.item_id, now=T0)
        assert q.item(item.item_id, now=T0).state is QueueState.PENDING
    read_only.close()


def test_deadline_and_overdue(tmp_path: Path) -> None:
    with _queue(tmp_path) as q:
        item = q.enqueue(_record(1), record_id="CAWL-1", mou=MOU, now=T0)
        assert item.deadline == T0 + timedelta(hours=MOU.follow_up_hours)
        assert not q.pending(item.deadline)[0].overdue
        late = q.pending(item.deadline + timedelta(microseconds=1))[0]
        assert late.overdue and late.record_id == "CAWL-1" and late.category == "watchlist"
        _approve(q, item.item_id, now=item.deadline + timedelta(hours=1))
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
            _approve(q, decided.item_id, now=T0)
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
        INSERT INTO release_queue VALUES (7, x'00000000000000000000000000000007',
        x'00000000000000000000000000000001', 'CAWL-9', 'watchlist', 'US-DHS',
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
        _approve(q, 7, now=T0)
        q.take(7, now=T0)
        assert q.mark_sent(7, b"\x01" * 16, now=T0).state is QueueState.SENT


def test_a_queue_is_never_opened_without_an_audit_log(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="audit log"):
        ApprovalQueue.open(tmp_path / "queue.db", audit=None)  # type: ignore[arg-type]
    assert not (tmp_path / "queue.db").exists()


@pytest.mark.parametrize(
    ("column", "value"),
    [("queued_us", 2**63 - 1), ("session_id", b"\x01\x02\x03"), ("release_id", b"\x01")],
)
def test_a_row_altered_in_the_file_is_a_damaged_database(
    tmp_path: Path, column: str, value: object
) -> None:
    """A time past any datetime escaped ``items()`` as OverflowError, and a session not 16 bytes
    escaped ``audit_overdue()`` as the audit vocabulary's ValueError."""
    with _queue(tmp_path) as q:
        q.enqueue(_record(1), record_id="CAWL-1", mou=MOU, now=T0)
    with contextlib.closing(sqlite3.connect(tmp_path / "queue.db")) as conn, conn:
        conn.execute(f"UPDATE release_queue SET {column} = ?", (value,))
    with _queue(tmp_path) as q:
        for use in (lambda: q.items(T0), lambda: q.audit_overdue(T0 + timedelta(days=400))):
            with pytest.raises(DamagedDatabase, match="altered in the file"):
                use()
