"""Label-free estimation (xlink.linkage.estimate) and decide(weights="estimated")."""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xlink.decide import ESTIMATED, FIXED, decide
from xlink.errors import EstimationError
from xlink.linkage.estimate import (
    MIN_DOMINATED,
    MIN_PAIRS,
    LinkageEstimate,
    dominated_pairs,
    estimate,
)
from xlink.linkage.schema import LinkageSchema, validate_schema
from xlink.linkage.scoring import one_to_one_mask
from xlink.protocol.events import CandidatePair

SCHEMA = validate_schema(
    {
        "id": "est",
        "version": 1,
        "keys": [
            {"name": "names", "version": 1, "fields": ["given_first", "family"]},
            {"name": "given_dob", "version": 1, "fields": ["given_first", "birth_date"]},
            {"name": "family_dob", "version": 1, "fields": ["family", "birth_date"]},
            {"name": "dob_postcode", "version": 1, "fields": ["birth_date", "postcode"]},
            {"name": "family_postcode", "version": 1, "fields": ["family", "postcode"]},
        ],
    }
)
KEY_FIELDS = ((0, 1), (0, 2), (1, 2), (2, 3), (1, 3))  # given, family, birth date, postcode
M = (0.9, 0.8, 0.9, 0.7)  # P(field agrees | match)
U = (0.05, 0.3, 0.02, 0.2)  # P(field agrees | non-match), among candidates


def _world(
    seed: int,
    people: int = 1500,
    overlap: float = 0.5,
    decoys: int = 2,
    m: tuple[float, ...] = M,
    u: tuple[float, ...] = U,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Candidate pairs of a known field-level model: left ``i`` and right ``i`` are the same
    person for ``i`` below ``overlap * people``; every left record also meets ``decoys``
    random right records. Each field agrees with probability M (match) or U (non-match) and
    is missing on one side 5% of the time (``m``, ``u``: other rates); a key agrees when all
    its fields do; a pair that agrees on no key is not a candidate."""
    rng = np.random.default_rng(seed)
    left, right, true = [], [], []
    for i in range(people):
        if i < overlap * people:
            left.append(i), right.append(i), true.append(True)
        for j in rng.choice(people, size=decoys, replace=False).tolist():
            if j != i:
                left.append(i), right.append(j), true.append(False)
    return _observe(rng, left, right, true, np.array(m), np.array(u))


def _observe(
    rng: np.random.Generator,
    left: list[int],
    right: list[int],
    true: list[bool],
    m: np.ndarray,
    u: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The candidate pairs among ``(left[i], right[i])``: each field agrees with probability
    ``m`` (a true pair) or ``u`` and is missing on one side 5 % of the time; a key agrees
    when all its fields do; a pair that agrees on no key is not a candidate. Returns left,
    right, agree, present and true for the candidates."""
    t = np.array(true)
    fields = rng.random((len(t), 4)) < np.where(t[:, None], m, u)
    there = rng.random((len(t), 4)) > 0.05
    agree = np.zeros(len(t), dtype=np.int64)
    present = np.zeros(len(t), dtype=np.int64)
    for k, used in enumerate(KEY_FIELDS):
        has = there[:, used].all(axis=1)
        present |= has.astype(np.int64) << k
        agree |= (has & fields[:, used].all(axis=1)).astype(np.int64) << k
    keep = agree > 0
    return np.array(left)[keep], np.array(right)[keep], agree[keep], present[keep], t[keep]


def _f1(kept: np.ndarray, true: np.ndarray, total_true: int) -> float:
    tp = int((kept & true).sum())
    precision = tp / max(int(kept.sum()), 1)
    recall = tp / total_true
    return 2 * precision * recall / (precision + recall)


def _scores(est: LinkageEstimate, agree: np.ndarray, present: np.ndarray) -> np.ndarray:
    table = {(a, p): s for a, p, s in est.scores}
    return np.array([table[(int(a), int(p) | int(a))] for a, p in zip(agree, present, strict=True)])


def test_a_known_model_is_recovered_without_labels() -> None:
    left, right, agree, present, true = _world(1)
    est = estimate(SCHEMA, left, right, agree, present)
    # the prior is the share of matches among candidates
    assert abs(est.prior - true.mean()) < 0.05
    # each field's agreement rate among matches is found (the state where its test holds)
    assert est.slots == ("birth", "family", "given", "postcode")
    for i, model_m in enumerate((M[2], M[1], M[0], M[3])):
        held = next(j for j, state in enumerate(est.states[i]) if state)
        assert abs(est.match[i][held] - model_m) < 0.08
    score = _scores(est, agree, present)
    above = score >= est.threshold
    kept = np.zeros(len(score), dtype=bool)
    kept[above] = one_to_one_mask(left[above], right[above], score[above])
    assert _f1(kept, true, int(true.sum())) > 0.95


def test_overlapping_keys_are_not_counted_twice() -> None:
    """One wrong birth date breaks three keys at once. A key-by-key model counts that error
    three times and scores "names agree, date wrong" below "family and postcode agree, given
    name wrong"; on the fields, the given name is the rarer agreement and wins."""
    left, right, agree, present, _ = _world(2)
    est = estimate(SCHEMA, left, right, agree, present)
    table = {(a, p): s for a, p, s in est.scores}
    every = 0b11111
    names_only = table[(0b00001, every)]
    family_postcode_only = table[(0b10000, every)]
    assert names_only > family_postcode_only


def test_dominated_pairs_are_strict_subsets_sharing_a_record() -> None:
    # left 0 meets right 0 on {k0,k1} and right 1 on {k0}: the second is dominated.
    # left 1 meets right 2 on {k0} and right 3 on {k1}: neither contains the other.
    # left 2 meets right 4 on {k0} and left 3 meets right 4 on {k0}: equal, not strict.
    left = [0, 0, 1, 1, 2, 3]
    right = [0, 1, 2, 3, 4, 4]
    agree = [0b11, 0b01, 0b01, 0b10, 0b01, 0b01]
    assert dominated_pairs(left, right, agree).tolist() == [False, True] + [False] * 4
    # the rule is symmetric: the same pairs seen from the other side
    assert dominated_pairs(right, left, agree).tolist() == [False, True] + [False] * 4


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.booleans())
def test_the_estimate_does_not_depend_on_pair_order_or_side(seed: int, mirror: bool) -> None:
    left, right, agree, present, _ = _world(seed % 7, people=400)
    est = estimate(SCHEMA, left, right, agree, present)
    order = np.random.default_rng(seed).permutation(len(left))
    a, b = (right, left) if mirror else (left, right)
    assert estimate(SCHEMA, a[order], b[order], agree[order], present[order]) == est


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000))
def test_the_threshold_keeps_whole_patterns_nearest_the_expected_count(seed: int) -> None:
    """The pairs of one pattern share a score and cannot be told apart, so the threshold keeps
    a pattern whole or refuses it whole, at whichever boundary keeps a count nearest the
    expected matches (the larger when two are as near; best-of-either then takes the higher
    of that and even odds). Failed when the threshold was the score of the expected-th pair,
    which kept the whole run of pairs it fell in."""
    left, right, agree, present, _ = _world(seed, people=1000, decoys=3)
    est = estimate(SCHEMA, left, right, agree, present)
    score = _scores(est, agree, present)
    kept = score[one_to_one_mask(left, right, score)]
    counts = {float(s): int((kept >= s).sum()) for s in np.unique(kept)}
    nearest = max(counts, key=lambda s: (-abs(counts[s] - est.expected_matches), counts[s]))
    assert est.threshold == nearest


def test_too_few_pairs_are_refused() -> None:
    left, right, agree, present, _ = _world(2, people=80, decoys=1)
    assert len(left) < MIN_PAIRS
    with pytest.raises(EstimationError, match="candidate pairs"):
        estimate(SCHEMA, left, right, agree, present)
    # enough pairs but nothing dominated: every record has one candidate
    n = MIN_PAIRS + 5
    with pytest.raises(EstimationError, match=f"at least {MIN_DOMINATED}"):
        estimate(SCHEMA, range(n), range(n), [1] * n, [3] * n)


def test_bad_arguments_are_caller_errors() -> None:
    with pytest.raises(ValueError, match="different lengths"):
        estimate(SCHEMA, [0, 1], [0], [1, 1], [1, 1])
    with pytest.raises(ValueError, match="link rule"):
        estimate(SCHEMA, [0], [0], [1], [1], links="many")


# -- through decide() ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    session_id: bytes
    pairs: tuple[CandidatePair, ...]

    def iter_pairs(self) -> Iterator[CandidatePair]:
        return iter(self.pairs)


def _as_source(
    left: np.ndarray, right: np.ndarray, agree: np.ndarray, present: np.ndarray
) -> _Source:
    """Columns as a session's candidate pairs: left record ``i`` is ``"L{i}"``, right record
    ``j`` the peer reference ``j``, and the masks are SCHEMA's keys."""
    names = SCHEMA.key_names

    def keys(mask: int) -> frozenset[str]:
        return frozenset(n for j, n in enumerate(names) if mask >> j & 1)

    pairs = tuple(
        CandidatePair(f"L{a}", int(b), keys(int(g)), (), keys(int(p) | int(g)), keys(int(p)))
        for a, b, g, p in zip(left, right, agree, present, strict=True)
    )
    return _Source(b"s", pairs)


def _source(seed: int, people: int = 1500) -> tuple[_Source, set[tuple[str, int]]]:
    left, right, agree, present, true = _world(seed, people=people)
    truth = {(f"L{a}", int(b)) for a, b, t in zip(left, right, true, strict=True) if t}
    return _as_source(left, right, agree, present), truth


def test_decide_with_estimated_weights_records_the_estimate() -> None:
    source, truth = _source(4)
    decision = decide(source, SCHEMA, weights=ESTIMATED)
    assert decision.weights == ESTIMATED and decision.estimate is not None
    assert decision.threshold == decision.estimate.threshold
    got = {(m.local_record_id, m.peer_ref) for m in decision.matches}
    precision = len(got & truth) / len(got)
    recall = len(got & truth) / len(truth)
    assert precision > 0.95 and recall > 0.9
    # the fixed path, for contrast, records no estimate
    fixed = decide(source, SCHEMA, weights=FIXED)
    assert fixed.weights == FIXED and fixed.estimate is None and fixed.estimate_note is None


def _listed_twice(
    seed: int, twice: int, decoys: int = 2, sharp: bool = False
) -> tuple[_Source, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_world` with its first ``twice`` matched people on the right list a second
    time, recorded alike (right record ``10_000 + i``); the source and the world's columns.
    ``sharp``: fields that tell matches from non-matches more clearly than M and U."""
    rates = {"m": (0.97, 0.95, 0.97, 0.9), "u": (0.02, 0.1, 0.01, 0.05)} if sharp else {}
    left, right, agree, present, true = _world(seed, decoys=decoys, **rates)
    again = true & (left < twice)
    left = np.concatenate([left, left[again]])
    right = np.concatenate([right, right[again] + 10_000])
    agree = np.concatenate([agree, agree[again]])
    present = np.concatenate([present, present[again]])
    return _as_source(left, right, agree, present), left, right, np.stack([agree, present])


def _weighted(certain: float | None) -> LinkageSchema:
    """SCHEMA with one bit per agreeing key and ``certain`` as its certain threshold."""
    return dataclasses.replace(
        SCHEMA,
        keys=tuple(
            dataclasses.replace(k, weight=1.0, disagreement_weight=0.0) for k in SCHEMA.keys
        ),
        threshold=1.0,
        certain_threshold=certain,
    )


def test_a_person_listed_twice_is_decided_twice_when_the_evidence_is_certain(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A list that holds one person twice, recorded alike, makes two pairs that tie for the
    other list's record: the link rule alone refuses both. A pair at or above the estimate's
    certain threshold and the schema's own (here: every key agrees) is decided beside its
    rival; a weaker tie is still refused, and so is every tie when the schema has no certain
    threshold. (This small world's estimate puts no pattern past 999:1, so its certain
    threshold is set at the full-agreement pattern's score.)"""
    import xlink.decide

    source, left, right, (agree, present) = _listed_twice(9, 300, decoys=4, sharp=True)
    real = xlink.decide._estimate
    full = 0b11111

    def at_full_agreement(*args: object) -> LinkageEstimate:
        est = real(*args)  # type: ignore[arg-type]
        table = {(a, p): s for a, p, s in est.scores}
        return dataclasses.replace(est, certain=max(est.threshold, table[(full, full)]))

    monkeypatch.setattr(xlink.decide, "_estimate", at_full_agreement)
    decision = decide(source, _weighted(certain=4.5), weights=ESTIMATED)
    est = decision.estimate
    assert est is not None
    got = {(m.local_record_id, m.peer_ref) for m in decision.matches}
    pattern = dict(
        zip(
            zip(left.tolist(), right.tolist(), strict=True),
            zip(agree.tolist(), (present | agree).tolist(), strict=True),
            strict=True,
        )
    )
    strong = [i for i in range(300) if pattern.get((i, i)) == (full, full)]
    weak = [i for i in range(300) if (i, i) in pattern and pattern[(i, i)] != (full, full)]
    assert len(strong) >= 10 and len(weak) >= 10
    for i in strong:
        assert {(f"L{i}", i), (f"L{i}", 10_000 + i)} <= got
    for i in weak:  # a tie below either certain threshold: neither
        assert (f"L{i}", i) not in got and (f"L{i}", 10_000 + i) not in got
    # with no certain threshold in the signed schema, the link rule alone decides
    bare = decide(source, _weighted(certain=None), weights=ESTIMATED)
    kept = {(m.local_record_id, m.peer_ref) for m in bare.matches}
    assert not {(f"L{i}", i) for i in strong} & kept


def test_a_partner_cannot_make_ties_escape_the_link_rule_by_listing_people_often() -> None:
    """A partner that lists our people many times raises the estimated prior, which lowers the
    estimate's certain threshold. It never falls below 999:1 at even prior odds, and a tie is
    decided only if the signed schema's own certain threshold agrees: with none, never."""
    source, *_ = _listed_twice(10, 750)  # every matched person twice
    crowded = decide(source, _weighted(certain=None), weights=ESTIMATED)
    assert crowded.estimate is not None
    assert crowded.estimate.certain >= math.log2(999) - 1e-6
    peers_of: dict[str, set[int]] = {}
    for m in crowded.matches:
        peers_of.setdefault(m.local_record_id, set()).add(m.peer_ref)
    assert all(len(p) == 1 for p in peers_of.values())  # one-to-one held for every record
    # the same decisions with a schema certain threshold no pair reaches
    out_of_reach = decide(source, _weighted(certain=99.0), weights=ESTIMATED)
    assert out_of_reach.matches == crowded.matches


def test_decide_falls_back_to_fixed_weights_and_says_why() -> None:
    source, _ = _source(5, people=60)
    decision = decide(source, SCHEMA, weights=ESTIMATED)
    assert decision.estimate is None
    assert decision.estimate_note is not None and "fixed weights" in decision.estimate_note
    assert decision.threshold == 1.0  # the schema has none: one agreeing key
    with pytest.raises(ValueError, match="unknown weights"):
        decide(source, SCHEMA, weights="guessed")


def test_both_parties_estimate_the_same_across_processes() -> None:
    """The two parties estimate in different processes, where set and dict orders follow
    different hash seeds: the estimate, the link rule chosen from it (``links="auto"``) and
    the decisions must be the same bits."""
    script = (
        "import sys; sys.path.insert(0, 'tests/linkage')\n"
        "from test_estimate import SCHEMA, _as_source, _source\n"
        "from test_link_rule import households\n"
        "from xlink.decide import decide\n"
        "source, _ = _source(6)\n"
        "d = decide(source, SCHEMA, weights='estimated')\n"
        "print(repr(d.estimate))\n"
        "print(sorted((m.local_record_id, m.peer_ref, m.score.hex()) for m in d.matches))\n"
        "events = _as_source(*households(2, events=2)[:4])\n"
        "d = decide(events, SCHEMA, weights='estimated', links='auto')\n"
        "print(d.links, d.link_choice)\n"
        "print(sorted((m.local_record_id, m.peer_ref, m.score.hex()) for m in d.matches))\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    results = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", script],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            cwd=root,
        )
        results.add(done.stdout)
    assert len(results) == 1


# -- a dishonest partner and a hostile input --------------------------------------------------


def test_a_partner_cannot_push_a_pair_past_the_floor_on_the_schemas_own_weights() -> None:
    """The estimate learns non-matches from pairs a partner's records make, so a partner can
    shift it (decoys that create dominated pairs). The caller's threshold (an MOU's
    match_threshold) is therefore a floor on the schema's own weights, which the partner
    cannot move: a pattern below it is never decided, however the estimate scores it."""
    weights = (1.0, 1.0, 1.0, 1.0, -5.0)  # family + postcode alone is worth nothing here
    weighted = dataclasses.replace(
        SCHEMA,
        keys=tuple(
            dataclasses.replace(k, weight=w, disagreement_weight=0.0)
            for k, w in zip(SCHEMA.keys, weights, strict=True)
        ),
    )
    source, _ = _source(8)
    free = decide(source, weighted, weights=ESTIMATED)
    assert any(m.fixed_score is not None and m.fixed_score < 0.5 for m in free.matches)
    bounded = decide(source, weighted, 0.5, weights=ESTIMATED)
    assert bounded.estimate is not None
    for m in bounded.matches:  # every decided pair reaches the floor on the schema's weights
        assert m.fixed_score is not None and m.fixed_score >= 0.5
        assert m.policy_score == m.fixed_score
    assert not any(m.agreeing_keys == {"family_postcode"} for m in bounded.matches)
    # a floor changes which pairs may be decided, not the estimate both sides share
    assert bounded.estimate == free.estimate


def test_every_best_pair_tied_is_refused_not_a_crash() -> None:
    # each left record meets two right records with the same strong pattern, and one weaker
    n = 150
    left = [i for i in range(n) for _ in range(3)]
    right = [r for i in range(n) for r in (3 * i, 3 * i + 1, 3 * i + 2)]
    agree = [m for _ in range(n) for m in (0b11111, 0b11111, 0b00001)]
    with pytest.raises(EstimationError, match="keeps no candidate pair"):
        estimate(SCHEMA, left, right, agree, [0b11111] * len(agree))


def test_too_many_patterns_are_refused_before_the_work() -> None:
    import xlink.linkage.estimate as E

    left, right, agree, present, _ = _world(9)
    cells = len(np.unique(np.stack([present | agree, agree], 1), axis=0)) * 16
    original = E.MAX_CELLS
    E.MAX_CELLS = cells - 1
    try:
        with pytest.raises(EstimationError, match="cells can be estimated"):
            estimate(SCHEMA, left, right, agree, present)
    finally:
        E.MAX_CELLS = original


def test_quadratic_dominance_is_refused_before_the_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """A record with ``g`` distinct agreement masks costs ``g**2`` comparisons to find its
    dominated pairs, and a partner chooses how many candidates, agreeing on what, each of our
    records gets: one record with 4,095 candidates agreeing on different subsets of the keys
    took a minute. The estimate bounds the comparisons by the pairs and refuses beyond that
    before comparing anything; decide then uses the fixed weights and says why."""
    import xlink.linkage._dominance as D
    import xlink.linkage.estimate as E

    left, right, agree, present, _ = _world(9)
    ids = np.asarray(left, dtype=np.int64)
    with pytest.raises(EstimationError, match="comparisons"):
        D.dominated_on(ids, np.asarray(agree, dtype=np.int64), budget=10)

    def no_comparing(*args: object) -> object:
        raise AssertionError("compared before refusing")

    monkeypatch.setattr(D, "_ranges", no_comparing)
    monkeypatch.setattr(E, "COMPARISONS_PER_PAIR", 0)
    monkeypatch.setattr(E, "MIN_COMPARISON_BUDGET", 10)
    with pytest.raises(EstimationError, match="comparisons to find the dominated pairs"):
        estimate(SCHEMA, left, right, agree, present)
    source, _ = _source(9)
    decision = decide(source, SCHEMA, weights=ESTIMATED)
    assert decision.estimate is None and decision.estimate_note is not None
    assert "comparisons" in decision.estimate_note


def test_a_schema_with_more_keys_than_masks_hold_falls_back() -> None:
    keys = [{"name": f"k{i}", "version": 1, "fields": ["given_first", "family"]} for i in range(63)]
    wide = validate_schema({"id": "wide", "version": 1, "keys": keys})
    pairs = tuple(
        CandidatePair(f"L{i}", i, frozenset({"k0"}), (), frozenset({"k0"}), frozenset({"k0"}))
        for i in range(300)
    )
    decision = decide(_Source(b"s", pairs), wide, weights=ESTIMATED)
    assert decision.estimate is None and "at most 62" in (decision.estimate_note or "")
