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
from xlink.release import ApprovalQueue, open_release, release_approved, release_decided

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
    assert kinds == [AuditEvent.RELEASE_SENT, AuditEvent.RELEASE_DENIED]
    mou = sample_mou(approval_required=False)
    record = open_release(batch.sealed[0], SEALING[US], mou=mou, expected_session_id=SESSION)
    assert record.match_handles == MATCHES[0].handles


def test_approval_required_needs_a_queue_and_holds_everything(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        _release(True, tmp_path)[1].close()
    with ApprovalQueue.open(tmp_path / "q.db") as queue:
        batch, log = _release(True, tmp_path, queue)
        assert not batch.sealed and len(batch.queued) == 1
        mou = sample_mou(approval_required=True)
        assert release_approved(queue, mou=mou, signing_key=SIGNING[CA], now=T0) == ()
        queue.approve(batch.queued[0].item_id, SIGNING[CA].verify_key, now=T0)
        sent = release_approved(queue, mou=mou, signing_key=SIGNING[CA], now=T0, audit=log)
        assert len(sent) == 1
        assert release_approved(queue, mou=mou, signing_key=SIGNING[CA], now=T0) == ()
        log.close()


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
