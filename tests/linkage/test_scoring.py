from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xlink.linkage.scoring import (
    CandidatePair,
    KeyWeight,
    decide_matches,
    fellegi_sunter_score,
    one_to_one,
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
