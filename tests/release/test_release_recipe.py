"""release_decided: denials collected and audited, approval enforced, straight-through release."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
from _officers import approve, deny, open_queue
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


def _ledger(tmp_path: Path, name: str = "ledger") -> AbstractContextManager[ApprovalQueue]:
    """CA's outbound ledger in a directory of its own (its audit log and enrolled officers
    beside it), apart from the ``audit.db`` that :func:`_release` writes in ``tmp_path``."""
    return open_queue(tmp_path / name / "queue.db", agency=CA, agency_key=SIGNING[CA], now=T0)


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
    with _ledger(tmp_path) as queue:
        batch, log = _release(True, tmp_path, queue)
        log.close()
        assert not batch.sealed and len(batch.queued) == 1
        # The next exchange decides the same match: still pending, so not queued again.
        again, log = _release(True, tmp_path, queue)
        log.close()
        assert not again.sealed and not again.queued
        assert [f.fate for f in again.fates if f.record_id == "CAWL-1"] == [Fate.PENDING]
        assert len(queue.items(T0)) == 1
        approve(queue, batch.queued[0].item_id, agency=CA, now=T0)
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


def _released_by_ca(decision: Decision, mou: Any, log: AuditLog, schema: Any = None) -> Any:
    """CA-RCMP's releases of ``decision``'s matches of :data:`RECORDS`, straight through."""
    return release_decided(
        decision, RECORDS, mou=mou, originator=CA, signing_key=SIGNING[CA],
        handle_key=HANDLE_KEY[CA], rng=DeterministicRandom("r"), now=T0, audit=log,
        schema=schema,
    )  # fmt: skip


def test_a_match_below_the_mou_threshold_is_never_released(tmp_path: Path) -> None:
    mou = sample_mou(approval_required=False)
    weak = DecidedMatch("CAWL-1", 0, frozenset({"k"}), mou.match_threshold - 0.01, HANDLES)
    # The caller decided with a laxer threshold than the MOU allows.
    decision = Decision(SESSION, mou.match_threshold - 5, 1, (weak,))
    with AuditLog.open(tmp_path / "audit.db", signing_key=SIGNING[CA]) as log:
        batch = _released_by_ca(decision, mou, log)
        entries = list(log.entries())
    assert not batch.sealed and not batch.queued
    assert batch.denied[0].reasons == ("below-mou-threshold",)
    assert [e.kind for e in entries] == [AuditEvent.RELEASE_DENIED]
    assert entries[0].fields["reason"] == "below-mou-threshold"


def test_a_match_without_the_schemas_evidence_is_never_released(tmp_path: Path) -> None:
    """Defence in depth behind decide(): a Decision built by hand (or by a decide() that
    skipped the rule) with a match agreeing on a name alone, well above the MOU threshold, is
    denied when the schema is given, as an agency gives it; the other match goes out."""
    from xlink.linkage.schema import load_default_schema

    schema = load_default_schema()
    mou = sample_mou(approval_required=False)
    name_alone = DecidedMatch("CAWL-1", 0, frozenset({"names"}), 9.0, HANDLES)
    two_kinds = DecidedMatch("UNMATCHED", 1, frozenset({"names_dob_swapped"}), 9.0, (b"\x07" * 16,))
    decision = Decision(SESSION, 0.0, 2, (name_alone, two_kinds))
    with AuditLog.open(tmp_path / "audit.db", signing_key=SIGNING[CA]) as log:
        batch = _released_by_ca(decision, mou, log, schema)
        entries = list(log.entries())
    assert [d.record_id for d in batch.denied] == ["CAWL-1"]
    assert batch.denied[0].reasons == ("too-little-evidence",)
    assert [e.fields["reason"] for e in entries if e.kind is AuditEvent.RELEASE_DENIED] == [
        "too-little-evidence"
    ]
    assert len(batch.sealed) == 1


def test_keys_a_partner_declares_to_disagree_lift_no_pair_over_the_floor(tmp_path: Path) -> None:
    """Key presence is the partner's word, and the default schema has positive disagreement
    weights (``dob_postcode``, ``family_postcode``): a partner record sharing only
    ``family_locality``, ``dob_street`` and ``names`` with ours (-0.316, below the MOU's floor)
    that declares those two keys as well was decided at +0.422 and released (found by a
    red-team run). The floor counts a disagreement only where it lowers the score; the
    decision, both sides', is unchanged, and a pair of the same keys that disagrees on keys of
    negative weight is not affected."""
    from xlink.decide import decide
    from xlink.linkage.schema import load_default_schema
    from xlink.linkage.scoring import fellegi_sunter_score, floor_score
    from xlink.protocol.events import CandidatePair

    schema = load_default_schema()
    mou = sample_mou(approval_required=False)
    weights, disagreement = schema.weights(), schema.disagreement_weights()
    agree = frozenset({"family_locality", "dob_street", "names"})
    declared = agree | {"dob_postcode", "family_postcode"}
    assert disagreement["dob_postcode"] > 0 and disagreement["family_postcode"] > 0

    class Source:
        session_id = SESSION

        def iter_pairs(self) -> object:
            keys = frozenset(schema.key_names)
            return iter([CandidatePair("CAWL-1", 0, agree, HANDLES, keys, declared)])

    decision = decide(Source(), schema, mou.match_threshold)  # type: ignore[arg-type]
    (lifted,) = decision.matches  # decided: its disagreements raised it over the threshold
    assert fellegi_sunter_score(agree, weights, (), disagreement) < mou.match_threshold
    assert lifted.score >= mou.match_threshold
    assert floor_score(agree, weights, lifted.disagreeing_keys, disagreement) < mou.match_threshold
    with AuditLog.open(tmp_path / "audit.db", signing_key=SIGNING[CA]) as log:
        batch = _released_by_ca(decision, mou, log, schema)
    assert not batch.sealed and batch.denied[0].reasons == ("below-mou-threshold",)
    # a negative disagreement counts as before
    keys = ["names", "initial_family_dob"]
    assert floor_score(keys[:1], weights, keys[1:], disagreement) == fellegi_sunter_score(
        keys[:1], weights, keys[1:], disagreement
    )


@pytest.mark.parametrize(
    ("links", "pairs", "sent"),
    [("one-to-one", 5, 2), ("best-of-either", 5, 5), ("best-of-either", 40, 16)],
)
def test_one_record_in_many_pairs_is_sent_a_bounded_number_of_times(
    tmp_path: Path, links: str, pairs: int, sent: int
) -> None:
    """A partner that lists one of our people five times gets five decided pairs (certain
    pairs escape one-to-one) but the record sealed twice: its best pair and one more; the rest
    are denied ``too-many-pairs``, in one audit entry with their count. Best-of-either, for a
    registry of events, sends all five, but no more than 16: a partner that splits one record
    of its own into many Reveal entries was sent one release for each (and one audit entry
    per denied pair)."""
    mou = sample_mou(approval_required=False)
    copies = tuple(
        DecidedMatch("CAWL-1", ref, frozenset({"k"}), 60.0 - ref, (bytes([ref]) * 16,))
        for ref in range(pairs)
    )
    decision = Decision(SESSION, 0.0, pairs, copies, links=links)
    with AuditLog.open(tmp_path / "audit.db", signing_key=SIGNING[CA]) as log:
        batch = _released_by_ca(decision, mou, log)
        denied = [e.fields for e in log.entries() if e.kind is AuditEvent.RELEASE_DENIED]
    assert len(batch.sealed) == sent
    assert [f.fate for f in batch.fates][:sent] == [Fate.SENT] * sent  # the best pairs
    assert all(d.reasons == ("too-many-pairs",) for d in batch.denied)
    assert len(batch.denied) == pairs - sent
    if pairs == sent:
        assert denied == []
    else:
        (entry,) = denied
        assert entry["reason"] == "too-many-pairs" and entry["pairs"] == pairs - sent


def _pairs(*handles: int, links: str = "one-to-one") -> Decision:
    """CAWL-1 decided with one peer record per handle (a person listed twice by the peer)."""
    matches = tuple(
        DecidedMatch("CAWL-1", ref, frozenset({"k"}), 30.0, (bytes([h]) * 16,))
        for ref, h in enumerate(handles)
    )
    return Decision(SESSION, 23.25, len(matches), matches, links=links)


def _again(decision: Decision, queue: ApprovalQueue, approval: bool, seed: str):  # type: ignore[no-untyped-def]
    return release_decided(
        decision, RECORDS, mou=sample_mou(approval_required=approval), originator=CA,
        signing_key=SIGNING[CA], handle_key=HANDLE_KEY[CA], rng=DeterministicRandom(seed),
        now=T0, queue=queue,
    )  # fmt: skip


def test_a_record_in_two_pairs_is_delivered_to_both_whatever_their_order(
    tmp_path: Path,
) -> None:
    # Run 1 delivers pair A (receipt verified) but not pair B (refused). Run 2 lists the pairs
    # the other way round: both must be sent again (the partner keeps a copy it holds once),
    # not "delivered" to B on A's receipt.
    with _ledger(tmp_path) as queue:
        first = _again(_pairs(7, 8), queue, False, "r1")
        assert len(first.sealed) == 2
        queue.mark_sent(first.items[0], first.sealed[0].release_id, now=T0, session_id=b"1" * 16)
        second = _again(_pairs(8, 7), queue, False, "r2")
        assert [f.fate for f in second.fates] == [Fate.SENT, Fate.SENT]
        assert len(second.sealed) == 2
        for item, sealed in zip(second.items, second.sealed, strict=True):
            assert item is not None
            queue.mark_sent(item, sealed.release_id, now=T0, session_id=b"2" * 16)
        # Every item delivered, as many as pairs: nothing is sent a third time.
        third = _again(_pairs(7, 8), queue, False, "r3")
        assert [f.fate for f in third.fates] == [Fate.DELIVERED, Fate.DELIVERED]
        assert not third.sealed
        # A third pair of the same record version later (a registry of events: one-to-one
        # would send two at most): it is sent to every pair again.
        fourth = _again(_pairs(7, 8, 9, links="best-of-either"), queue, False, "r4")
        assert len(fourth.sealed) == 3


def test_one_approval_per_record_version_and_never_past_a_denial(tmp_path: Path) -> None:
    with _ledger(tmp_path) as queue:
        first = _again(_pairs(7, 8), queue, True, "r1")
        assert [f.fate for f in first.fates] == [Fate.QUEUED, Fate.QUEUED]
        (item,) = queue.items(T0)  # one queue item for the version
        assert _again(_pairs(8, 7), queue, True, "r2").sealed == ()
        approve(queue, item.item_id, agency=CA, now=T0)
        sent = _again(_pairs(7, 8), queue, True, "r3")
        assert [f.fate for f in sent.fates] == [Fate.SENT, Fate.SENT]
    with _ledger(tmp_path, "denied") as queue:
        _again(_pairs(7, 8), queue, True, "d1")
        (item,) = queue.items(T0)
        deny(queue, item.item_id, "insufficient-grounds", agency=CA, now=T0)
        after = _again(_pairs(7, 8, 9), queue, True, "d2")
        assert not after.sealed and {f.fate for f in after.fates} == {Fate.DENIED}


class _Recorded:
    """A day of claims that refuses the matches of ``refused`` peer references and records
    what it was asked and what claimed."""

    def __init__(self, refused: set[int]) -> None:
        self.refused, self.asked, self.claimed = refused, list[int](), list[int]()

    def allows(self, match: DecidedMatch) -> bool:
        self.asked.append(match.peer_ref)
        return match.peer_ref not in self.refused

    def claim(self, match: DecidedMatch) -> None:
        self.claimed.append(match.peer_ref)


def test_the_day_of_claims_is_asked_in_order_and_only_what_leaves_claims(tmp_path: Path) -> None:
    """A match the day of claims refuses is denied ``claimed-today``; a match it allows but
    that is denied for another reason (here ``too-many-pairs``, past a record's two pairs)
    claims nothing: only a record that is sent, or was delivered before, claims its tokens
    (a first version claimed at the check, for matches never released)."""
    mou = sample_mou(approval_required=False)
    matches = tuple(
        DecidedMatch("CAWL-1", ref, frozenset({"k"}), 60.0 - ref, (bytes([ref + 1]) * 16,))
        for ref in range(4)
    )
    day = _Recorded(refused={1})
    with AuditLog.open(tmp_path / "audit.db", signing_key=SIGNING[CA]) as log:
        batch = release_decided(
            Decision(SESSION, 0.0, 4, matches), RECORDS, mou=mou, originator=CA,
            signing_key=SIGNING[CA], handle_key=HANDLE_KEY[CA], rng=DeterministicRandom("r"),
            now=T0, audit=log, day_claims=day,
        )  # fmt: skip
        reasons = [e.fields["reason"] for e in log.entries() if e.kind is AuditEvent.RELEASE_DENIED]
    assert day.asked == [0, 1, 2, 3]
    assert [f.fate for f in batch.fates] == [Fate.SENT, Fate.DENIED, Fate.SENT, Fate.DENIED]
    assert reasons == ["claimed-today", "too-many-pairs"]
    assert day.claimed == [0, 2]


def test_a_match_denied_after_the_batch_was_built_leaves_the_rest_aligned(tmp_path: Path) -> None:
    """The exchange's day of claims may withdraw a release after the batch is built
    (:func:`xlink.agency._transfer.deny_after_all`): the first of two sealed releases taken
    out, the second keeps its own ledger item, the first's fate and audit entry say why."""
    from xlink.agency._transfer import deny_after_all

    matches = (
        DecidedMatch("CAWL-1", 0, frozenset({"k"}), 30.0, (b"\x01" * 16,)),
        DecidedMatch("CAWL-2", 1, frozenset({"k"}), 29.0, (b"\x02" * 16,)),
    )
    decision = Decision(SESSION, 23.25, 2, matches)
    with _ledger(tmp_path) as queue:
        log = AuditLog.open(tmp_path / "audit.db", signing_key=SIGNING[CA])
        batch = release_decided(
            decision, [person("CAWL-1"), person("CAWL-2")], mou=sample_mou(approval_required=False),
            originator=CA, signing_key=SIGNING[CA], handle_key=HANDLE_KEY[CA],
            rng=DeterministicRandom("r"), now=T0, queue=queue, audit=log,
        )  # fmt: skip
        assert len(batch.sealed) == 2 and len(set(batch.items)) == 2
        after = deny_after_all(batch, decision, [0], "claimed-today", audit=log, now=T0)
        with log:
            denied = [dict(e.fields) for e in log.entries(kinds={AuditEvent.RELEASE_DENIED})]
    assert after.sealed == batch.sealed[1:] and after.items == batch.items[1:]
    assert [f.fate for f in after.fates] == [Fate.DENIED, Fate.SENT]
    assert after.fates[0].reasons == ("claimed-today",) and after.fates[1] == batch.fates[1]
    assert [d.record_id for d in after.denied] == ["CAWL-1"]
    assert [(d["reason"], d["handle"]) for d in denied] == [("claimed-today", "01" * 16)]
