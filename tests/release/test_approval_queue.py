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
from xlink.release.transfer import RECIPROCAL_AHEAD

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


def test_the_reciprocal_window_counts_each_item_once_over_every_exchange(
    tmp_path: Path,
) -> None:
    """xlink-release-v1 §10.5: :meth:`ApprovalQueue.give` lets an item never given go only
    while we are fewer than ``RECIPROCAL_AHEAD`` ahead of the partner's credits, marks it
    given, and lets an item given before go again for nothing; the count is the ledger's,
    across openings, and a reset (audited with the counts it had) starts it again."""
    peer = MOU.peer_of(CA).agency_id
    where = {"mou_id": MOU.id, "recipient": peer}
    with _queue(tmp_path) as q:
        ids = [
            q.hold_for_sending(
                _record(i), record_id=f"CAWL-{i}", mou=MOU, now=T0, version=bytes([i]) * 32
            ).item_id
            for i in range(12)
        ]
        assert q.give(ids, **where, credited=0, now=T0) == RECIPROCAL_AHEAD
        assert q.given(ids) == frozenset(ids[:RECIPROCAL_AHEAD])
        # given before: free; the next new one waits for a credit
        assert q.give(ids[:3], **where, credited=0, now=T0) == 3
        assert q.give(ids[RECIPROCAL_AHEAD:], **where, credited=0, now=T0) == 0
        assert q.give(ids[RECIPROCAL_AHEAD:], **where, credited=2, now=T0) == 2
    with _queue(tmp_path) as q:  # another exchange, another opening: the same count
        balance = q.reciprocity(**where, credited=2)
        assert (balance.given, balance.credited, balance.ahead, balance.window) == (
            RECIPROCAL_AHEAD + 2,
            2,
            RECIPROCAL_AHEAD,
            0,
        )
        assert q.give(ids[RECIPROCAL_AHEAD + 2 :], **where, credited=2, now=T0) == 0
        assert q.reciprocity(**where, credited=5).window == 3  # more of the partner's came
        had = q.reset_reciprocity(**where, credited=2, now=T0)
        assert (had.given, had.credited) == (RECIPROCAL_AHEAD + 2, 2)
        assert q.reciprocity(**where, credited=2).ahead == 0
        assert q.give(ids[RECIPROCAL_AHEAD + 2 :], **where, credited=2, now=T0) == 2
        with pytest.raises(QueueError):  # not an item handed out to that partner
            q.give([ids[0]], mou_id=MOU.id, recipient="XX-OTHER", credited=0, now=T0)
        log = q._audit
        (reset,) = [e.fields for e in log.entries() if e.kind is AuditEvent.RECIPROCITY_RESET]
    assert (reset["peer"], reset["given"], reset["credited"]) == (peer, RECIPROCAL_AHEAD + 2, 2)


def test_a_record_version_given_before_goes_again_for_nothing_for_another_pair(
    tmp_path: Path,
) -> None:
    """The window counts record versions, not ledger items: one given for one pair (a
    partner that lists the person twice has two pairs with our record) goes for the other
    pair at no cost, as the recipient credits it no more than once for one of its records
    (found in review: two honest sides with duplicates shut both windows). Another record
    whose release says the same (a tearline of no field) is a new hit: it counts."""
    peer = MOU.peer_of(CA).agency_id
    where = {"mou_id": MOU.id, "recipient": peer}
    version = b"\x05" * 32
    with _queue(tmp_path) as q:
        first, second = (
            q.hold_for_sending(_record(i), record_id="CAWL-5", mou=MOU, now=T0, version=version)
            for i in (1, 2)
        )
        others = [
            q.hold_for_sending(
                _record(i), record_id=f"CAWL-{i}", mou=MOU, now=T0, version=bytes([i]) * 32
            ).item_id
            for i in range(10, 10 + RECIPROCAL_AHEAD)
        ]
        assert q.give([first.item_id, *others], **where, credited=0, now=T0) == RECIPROCAL_AHEAD
        assert q.reciprocity(**where, credited=0).window == 0
        assert q.given([second.item_id]) == {second.item_id}  # its content went already
        assert q.give([second.item_id], **where, credited=0, now=T0) == 1
        assert q.reciprocity(**where, credited=0).given == RECIPROCAL_AHEAD
        same = q.hold_for_sending(_record(3), record_id="CAWL-6", mou=MOU, now=T0, version=version)
        assert q.given([same.item_id]) == frozenset()
        assert q.give([same.item_id], **where, credited=0, now=T0) == 0
        assert q.give([same.item_id], **where, credited=1, now=T0) == 1


def test_a_ledger_from_before_the_window_was_carried_starts_it_from_nothing(
    tmp_path: Path,
) -> None:
    """A ledger kept before items were marked given gains the column, each item not given:
    the carried window starts from nothing."""
    peer = MOU.peer_of(CA).agency_id
    with _queue(tmp_path) as q:
        item = q.hold_for_sending(
            _record(1), record_id="CAWL-1", mou=MOU, now=T0, version=b"\x01" * 32
        )
    with sqlite3.connect(tmp_path / "queue.db") as conn:
        conn.execute("DROP INDEX release_queue_given")
        conn.execute("ALTER TABLE release_queue DROP COLUMN given_us")
        conn.execute("DROP TABLE reciprocity")
    with _queue(tmp_path) as q:
        assert q.reciprocity(mou_id=MOU.id, recipient=peer, credited=0).given == 0
        assert q.give([item.item_id], mou_id=MOU.id, recipient=peer, credited=0, now=T0) == 1
        assert q.given([item.item_id]) == {item.item_id}
