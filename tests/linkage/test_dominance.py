"""The vectorised dominance of xlink/linkage/_dominance.py against a plain definition."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from xlink.linkage import _dominance
from xlink.linkage._dominance import distinct_rows, dominated_on


def _reference(ids: list[int], agree: list[int]) -> list[bool]:
    """A pair is dominated when another pair of its id agrees on a strict superset."""
    return [
        any(j == i and (b & a) == a and b != a for j, b in zip(ids, agree, strict=True))
        for i, a in zip(ids, agree, strict=True)
    ]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 12), st.integers(0, 63)), max_size=120),
    st.integers(1, 64),
)
def test_dominance_is_the_plain_definition(pairs: list[tuple[int, int]], block: int) -> None:
    ids = [i for i, _ in pairs]
    agree = [a for _, a in pairs]
    saved = _dominance._BLOCK
    _dominance._BLOCK = block  # small blocks: a record's comparisons split across blocks
    try:
        got = dominated_on(np.array(ids, dtype=np.int64), np.array(agree, dtype=np.int64))
    finally:
        _dominance._BLOCK = saved
    assert got.tolist() == _reference(ids, agree)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.integers(-3, 40), st.integers(0, 300)), min_size=1, max_size=150),
    st.sampled_from([1, 1 << 40, 1 << 57]),
    st.sampled_from([1, 1 << 50]),
)
def test_distinct_rows_are_numpy_unique_over_rows(
    pairs: list[tuple[int, int]], spread: int, value_spread: int
) -> None:
    # wide ids: sorting one key, or two when (id, value) outgrows one integer; wide values:
    # a binary search instead of a lookup table
    ids = np.array([i * spread for i, _ in pairs], dtype=np.int64)
    values = np.array([v * value_spread for _, v in pairs], dtype=np.int64)
    rows, inverse = np.unique(np.stack([ids, values], axis=1), axis=0, return_inverse=True)
    row_of, row_id, row_value = distinct_rows(ids, values)
    assert row_id.tolist() == rows[:, 0].tolist() and row_value.tolist() == rows[:, 1].tolist()
    assert row_of.tolist() == inverse.reshape(-1).tolist()
