"""release_decided: denials collected and audited, approval enforced, straight-through release."""

from __future__ import annotations

from pathlib import Path

import pytest
from _release_support import (
    CA,
    HANDLE_KEY,
    HANDLES,
    SEALING,
    SESSION,
    SIGNING,
    T0,
    US,
    person,
    sample_mou,
)

from xlink.audit import AuditEvent, AuditLog
from xlink.crypto.rand import DeterministicRandom
from xlink.decide import DecidedMatch, Decision
from xlink.records.model import Category
from xlink.release import ApprovalQueue, Fate, QueueState, open_release, release_decided

MATCHES = (
    DecidedMatch("CAWL-1", 0, frozenset({"k"}), 30.0, (b"\x01" * 16,)),
    DecidedMatch("CAOT-1", 1, frozenset({"k"}), 30.0, (b"\x02" * 16,)),
)
DECISION = Decision(SESSION, 23.25, 2, MATCHES)
RECORDS = [person("CAWL-1"), person("CAOT-1", Category.OTHER), person("UNMATCHED")]


def _release(mou_approval: bool, tmp_path: Path, queue: ApprovalQueue | None = None):  # type: ignore[no-untyped-def]
    log = AuditLog.open(tmp_path / "audit.db", signing_key=SIGNING[CA])
    batch = release_decided(
        DECISION, RECORDS, mou=sample_mou(approval_required=mou_approval), originator=CA,
        signing_key=SIGNING[CA], handle_key=HANDLE_KEY[CA], rng=DeterministicRandom("r"),
        now=T0, queue=queue, audit=log,
    )  # fmt: skip
    return batch, log


def test_straight_through_when_no_approval_is_required(tmp_path: Path) -> None:
    batch, log = _release(False, tmp_path)
    with log:
        kinds = [e.kind for e in log.entries()]
    assert [d.record_id for d in batch.denied] == ["CAOT-1"]
    assert batch.denied[0].reasons == ("category-not-allowed",)
    assert len(batch.sealed) == 1 and not batch.queued
    # Nothing is audited as sent before the peer answered (settle_receipts does that).
    assert kinds == [AuditEvent.RELEASE_DENIED]
    mou = sample_mou(approval_required=False)
    record = open_release(batch.sealed[0], SEALING[US], mou=mou, expected_session_id=SESSION)
    assert record.match_handles == MATCHES[0].handles


def test_approval_required_needs_a_queue_and_holds_everything(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        _release(True, tmp_path)[1].close()
    with ApprovalQueue.open(tmp_path / "q.db") as queue:
        batch, log = _release(True, tmp_path, queue)
        log.close()
        assert not batch.sealed and len(batch.queued) == 1
        # The next exchange decides the same match: still pending, so not queued again.
        again, log = _release(True, tmp_path, queue)
        log.close()
        assert not again.sealed and not again.queued
        assert [f.fate for f in again.fates if f.record_id == "CAWL-1"] == [Fate.PENDING]
        assert len(queue.items(T0)) == 1
        queue.approve(batch.queued[0].item_id, SIGNING[CA].verify_key, now=T0)
        # Approved: the next exchange builds it afresh for its session and sends it.
        sent, log = _release(True, tmp_path, queue)
        log.close()
        assert len(sent.sealed) == 1 and sent.items == (batch.queued[0].item_id,)
        # Until its receipt verifies it is handed out (sent again by a later exchange) ...
        assert queue.item(batch.queued[0].item_id, now=T0).state is QueueState.TAKEN
        queue.mark_sent(batch.queued[0].item_id, sent.sealed[0].release_id, now=T0)
        # ... then delivered: never sent again.
        after, log = _release(True, tmp_path, queue)
        log.close()
        assert not after.sealed
        assert [f.fate for f in after.fates if f.record_id == "CAWL-1"] == [Fate.DELIVERED]


def test_a_match_below_the_mou_threshold_is_never_released(tmp_path: Path) -> None:
    mou = sample_mou(approval_required=False)
    weak = DecidedMatch("CAWL-1", 0, frozenset({"k"}), mou.match_threshold - 0.01, HANDLES)
    # The caller decided with a laxer threshold than the MOU allows.
    decision = Decision(SESSION, mou.match_threshold - 5, 1, (weak,))
    with AuditLog.open(tmp_path / "audit.db", signing_key=SIGNING[CA]) as log:
        batch = release_decided(
            decision, RECORDS, mou=mou, originator=CA, signing_key=SIGNING[CA],
            handle_key=HANDLE_KEY[CA], rng=DeterministicRandom("r"), now=T0, audit=log,
        )  # fmt: skip
        entries = list(log.entries())
    assert not batch.sealed and not batch.queued
    assert batch.denied[0].reasons == ("below-mou-threshold",)
    assert [e.kind for e in entries] == [AuditEvent.RELEASE_DENIED]
    assert entries[0].fields["reason"] == "below-mou-threshold"
