from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from xlink.linkage.scoring import (
    CandidatePair,
    KeyWeight,
    decide_matches,
    fellegi_sunter_score,
    one_to_one,
    one_to_one_mask,
)


def test_key_weight() -> None:
    assert KeyWeight("k", 0.9, 0.0009).agreement == pytest.approx(math.log2(1000))
    for m, u in ((0.5, 0.5), (0.1, 0.2), (1.0, 0.1), (0.5, 0.0)):
        with pytest.raises(ValueError):
            KeyWeight("k", m, u)


def test_fellegi_sunter_score() -> None:
    weights: dict[str, KeyWeight | float] = {"a": KeyWeight("a", 0.8, 0.1), "b": 2.0}
    assert fellegi_sunter_score(["a", "b", "a"], weights) == pytest.approx(3.0 + 2.0)
    assert fellegi_sunter_score([], weights) == 0.0
    with pytest.raises(KeyError):
        fellegi_sunter_score(["c"], weights)


def test_one_to_one_best_for_both() -> None:
    k = frozenset({"x"})
    pairs = [
        ("a1", "b1", k, 10.0),
        ("a1", "b2", k, 5.0),
        ("a2", "b2", k, 8.0),
        ("a3", "b1", k, 9.0),
    ]
    kept = one_to_one(pairs)
    assert [(p.left_id, p.right_id) for p in kept] == [("a1", "b1"), ("a2", "b2")]
    assert isinstance(kept[0], CandidatePair)


def test_one_to_one_refuses_ties() -> None:
    k = frozenset({"x"})
    assert one_to_one([("a1", "b1", k, 5.0), ("a1", "b2", k, 5.0)]) == []
    assert one_to_one([("a1", "b1", k, 5.0), ("a2", "b1", k, 5.0)]) == []


def test_one_to_one_merges_repeats() -> None:
    k = frozenset({"x"})
    kept = one_to_one([("a", "b", k, 1.0), ("a", "b", k, 3.0)])
    assert [p.score for p in kept] == [3.0]


def test_decide_matches_threshold() -> None:
    k = frozenset({"x"})
    assert decide_matches([("a", "b", k, 1.0)], 2.0) == []
    assert len(decide_matches([("a", "b", k, 2.0)], 2.0)) == 1


pair = st.tuples(
    st.sampled_from(["a1", "a2", "a3"]),
    st.sampled_from(["b1", "b2", "b3"]),
    st.just(frozenset({"k"})),
    st.integers(0, 5).map(float),
)


@given(st.lists(pair, max_size=12))
def test_one_to_one_is_a_matching(pairs: list[tuple[str, str, frozenset[str], float]]) -> None:
    kept = one_to_one(pairs)
    assert len({p.left_id for p in kept}) == len(kept) == len({p.right_id for p in kept})
    assert one_to_one(kept) == kept


def test_certain_pairs_are_kept_despite_a_tie() -> None:
    # One person recorded twice on the right: both pairs tie for a1.
    k = frozenset({"k"})
    pairs = [("a1", "b1", k, 40.0), ("a1", "b2", k, 40.0), ("a2", "b3", k, 10.0)]
    assert [(p.left_id, p.right_id) for p in one_to_one(pairs)] == [("a2", "b3")]
    kept = one_to_one(pairs, certain=40.0)
    assert [(p.left_id, p.right_id) for p in kept] == [("a1", "b1"), ("a1", "b2"), ("a2", "b3")]
    # Just below the certain threshold the tie is refused again.
    assert len(one_to_one(pairs, certain=40.5)) == 1


def test_certain_pair_kept_even_when_beaten() -> None:
    k = frozenset({"k"})
    pairs = [("a1", "b1", k, 50.0), ("a1", "b2", k, 30.0)]
    assert len(one_to_one(pairs, certain=35.0)) == 1
    assert len(one_to_one(pairs, certain=30.0)) == 2
    assert len(decide_matches(pairs, 40.0, certain=30.0)) == 1  # the threshold still applies


@given(st.lists(pair, max_size=12), st.integers(0, 6).map(float))
def test_threshold_and_one_to_one_commute(
    pairs: list[tuple[str, str, frozenset[str], float]], threshold: float
) -> None:
    # xlink.evaluation.fitting.choose_thresholds sweeps thresholds over one one-to-one run.
    filtered_first = one_to_one(p for p in pairs if p[3] >= threshold)
    assert filtered_first == [p for p in one_to_one(pairs) if p.score >= threshold]


@given(st.lists(pair, max_size=12), st.integers(0, 6).map(float))
def test_below_certain_every_kept_pair_is_best_for_both(
    pairs: list[tuple[str, str, frozenset[str], float]], certain: float
) -> None:
    kept = one_to_one(pairs, certain=certain)
    assert set(one_to_one(pairs)) <= set(kept)
    for p in kept:
        if p.score < certain:
            rivals = [q for q in pairs if (q[0] == p.left_id) != (q[1] == p.right_id)]
            assert all(q[3] < p.score for q in rivals)


def test_score_with_disagreement() -> None:
    weights: dict[str, KeyWeight | float] = {"a": KeyWeight("a", 0.8, 0.1), "b": 2.0, "c": 1.5}
    disagreement = {"a": -4.0, "b": -1.25, "c": 0.0}
    assert fellegi_sunter_score(["a"], weights, ["b", "b"], disagreement) == pytest.approx(1.75)
    assert fellegi_sunter_score([], weights, ["a", "b", "c"], disagreement) == -5.25
    # Without a disagreement mapping, disagreeing keys add nothing (and need no weight).
    assert fellegi_sunter_score(["b"], weights, ["a", "zz"]) == 2.0
    with pytest.raises(KeyError):
        fellegi_sunter_score(["a"], weights, ["zz"], disagreement)
    with pytest.raises(KeyError):
        fellegi_sunter_score(["zz"], weights, [], disagreement)


def test_a_key_both_agreeing_and_disagreeing_counts_as_agreeing() -> None:
    weights: dict[str, KeyWeight | float] = {"a": 3.0, "b": 2.0}
    disagreement = {"a": -4.0, "b": -1.0}
    # The keys both records have may be passed as the disagreeing keys.
    both = {"a", "b"}
    assert fellegi_sunter_score(["a"], weights, both, disagreement) == 3.0 - 1.0


def test_one_to_one_mask_columns() -> None:
    kept = one_to_one_mask([0, 0, 1, 2], [5, 6, 6, 7], [10.0, 5.0, 8.0, 8.0])
    assert kept.dtype == np.bool_ and kept.tolist() == [True, False, True, True]
    # Ties refused unless certain.
    assert one_to_one_mask([0, 0], [1, 2], [5.0, 5.0]).tolist() == [False, False]
    assert one_to_one_mask([0, 0], [1, 2], [5.0, 5.0], certain=5.0).tolist() == [True, True]
    assert one_to_one_mask([0, 0], [1, 2], [5.0, 5.0], certain=5.5).tolist() == [False, False]
    assert one_to_one_mask([], [], []).tolist() == []
    # Ids are codes, not positions: any integers, negative or large.
    assert one_to_one_mask([-7, 2**40], [3, 3], [1.0, 2.0]).tolist() == [False, True]
    with pytest.raises(ValueError, match="different lengths"):
        one_to_one_mask([0, 1], [0], [1.0, 2.0])


distinct_pairs = st.dictionaries(
    st.tuples(st.integers(0, 3), st.integers(0, 3)),
    st.sampled_from([-1.5, 0.0, 2.0, 3.0]),
    max_size=16,
)


@given(
    distinct_pairs,
    st.sampled_from([None, -1.5, 0.0, 2.0, 2.5, 3.0]),
    st.sampled_from([0, -5, 10**12]),  # small codes are used as they are, others are ranked
)
def test_one_to_one_mask_agrees_with_one_to_one(
    pairs: dict[tuple[int, int], float], certain: float | None, offset: int
) -> None:
    items = list(pairs.items())
    k = frozenset({"k"})
    expected = {
        (p.left_id, p.right_id)
        for p in one_to_one([(f"l{a}", f"r{b}", k, s) for (a, b), s in items], certain)
    }
    mask = one_to_one_mask(
        np.array([a + offset for (a, _), _ in items], dtype=np.int64),
        np.array([b * 3 + offset for (_, b), _ in items], dtype=np.int64),
        np.array([s for _, s in items], dtype=np.float64),
        certain,
    )
    got = {(f"l{a}", f"r{b}") for ((a, b), _), keep in zip(items, mask, strict=True) if keep}
    assert got == expected


def test_scores_do_not_depend_on_the_process_hash_seed() -> None:
    """Both parties must score a pattern to the same bits: set order follows PYTHONHASHSEED,
    and a plain float sum in that order differs in the last bit between processes (which
    decides pairs at exactly the threshold). Every agree/disagree split of the default schema's
    keys into small patterns, scored in three processes with different hash seeds."""
    import os
    import subprocess
    import sys

    script = (
        "import itertools\n"
        "from xlink.linkage.schema import load_default_schema\n"
        "from xlink.linkage.scoring import fellegi_sunter_score\n"
        "s = load_default_schema(); w = s.weights(); d = s.disagreement_weights()\n"
        "names = sorted(s.key_names); out = []\n"
        "for a in itertools.combinations(names, 2):\n"
        "    for b in itertools.combinations(sorted(set(names) - set(a)), 4):\n"
        "        out.append(fellegi_sunter_score(set(a), w, set(b), d).hex())\n"
        "print(','.join(out))\n"
    )
    results = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        results.add(done.stdout)
    assert len(results) == 1
