"""The set helpers every session matches with (xlink/protocol/_sets.py), against plain-Python
references. Rows are drawn from a tiny byte alphabet so that prefixes repeat often: the fast
search by 8-byte prefix must fall back to a full-width search exactly when they do."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from xlink.protocol._sets import (
    distinct_index,
    has_duplicates,
    lookup_sorted,
    member_mask_sorted,
    sort_rows_in_place,
)


def _rows(width: int, max_size: int = 60) -> st.SearchStrategy[list[bytes]]:
    return st.lists(
        st.lists(st.sampled_from([0, 1, 255]), min_size=width, max_size=width).map(bytes),
        max_size=max_size,
    )


def _array(rows: list[bytes], width: int) -> np.ndarray:
    return np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(-1, width).copy()


@given(st.sampled_from([4, 16, 32]), _rows(32), st.data())
def test_lookup_finds_the_first_table_row_with_each_key_as_prefix(
    width: int, table_rows: list[bytes], data: st.DataObject
) -> None:
    table = _array(table_rows, 32)
    sort_rows_in_place(table)
    ordered = [bytes(r) for r in table]
    keys = data.draw(_rows(width))
    if ordered:  # and some keys that are in the table
        keys += [r[:width] for r in data.draw(st.lists(st.sampled_from(ordered), max_size=10))]
    first: dict[bytes, int] = {}
    for i, row in enumerate(ordered):
        first.setdefault(row[:width], i)
    expected = [first.get(k, -1) for k in keys]
    assert lookup_sorted(_array(keys, width), table).tolist() == expected


@given(_rows(32), _rows(32))
def test_member_mask_says_which_rows_are_in_the_other_set(
    rows: list[bytes], others: list[bytes]
) -> None:
    table = _array(others, 32)
    sort_rows_in_place(table)
    members = set(others)
    assert member_mask_sorted(_array(rows, 32), table).tolist() == [r in members for r in rows]


@given(_rows(32))
def test_distinct_index_and_duplicates(rows: list[bytes]) -> None:
    first, inverse = distinct_index(_array(rows, 32))
    distinct = sorted(set(rows))
    assert [rows[i] for i in first.tolist()] == distinct
    assert [rows.index(rows[i]) for i in first.tolist()] == first.tolist()  # first occurrences
    assert [distinct[j] for j in inverse.tolist()] == rows
    assert has_duplicates(_array(rows, 32)) == (len(set(rows)) < len(rows))


def test_lookup_in_a_large_table_crosses_blocks() -> None:
    """More keys than one block (65,536), in random order, half of them present."""
    rng = np.random.default_rng(5)
    table = rng.integers(0, 256, size=(100_000, 32), dtype=np.uint8)
    sort_rows_in_place(table)
    present = rng.choice(100_000, size=40_000, replace=False)
    keys = np.concatenate([table[present, :16], rng.integers(0, 256, (40_000, 16), np.uint8)])
    order = rng.permutation(len(keys))
    found = lookup_sorted(keys[order], table)
    expected = np.concatenate([present, np.full(40_000, -1)])[order]
    assert found.tolist() == expected.tolist()


def test_a_key_behind_another_row_with_its_prefix_is_found() -> None:
    """Two table rows share their first 8 bytes; the key is the second one: the prefix search
    lands on the first, and only the full-width search finds the key."""
    table = _array([bytes(8) + bytes([0] * 24), bytes(8) + bytes([1] * 24)], 32)
    keys = _array([bytes(8) + bytes([1] * 8), bytes(8) + bytes([2] * 8)], 16)
    assert lookup_sorted(keys, table).tolist() == [1, -1]
    assert member_mask_sorted(table[::-1].copy(), table).tolist() == [True, True]
