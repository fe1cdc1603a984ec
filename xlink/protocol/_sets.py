"""Set operations on element buffers with numpy, without per-element Python objects
(spec: xlink-psi-v2 §5.3, §7).

Rows are 32-byte elements held as ``(n, 32)`` uint8 arrays; ``V32`` views give memcmp order.
The whole-set operations avoid full-size copies: a duplicate check sorts 8-byte prefixes only,
and membership works against a set that was sorted in place once.
"""

from __future__ import annotations

import sys
from typing import Final

import numpy as np
import numpy.typing as npt

from xlink.crypto.rand import RandomSource

__all__ = [
    "Index",
    "Rows",
    "distinct_index",
    "gather_sources",
    "has_duplicates",
    "lookup_sorted",
    "member_mask_sorted",
    "random_permutation",
    "rows_of",
    "sort_rows_in_place",
    "sorted_has_duplicates",
]

Rows = npt.NDArray[np.uint8]
Index = npt.NDArray[np.int32]
"""Indices into a set: int32 is enough, sets are at most ``MAX_SET_SIZE`` long."""
_ROW: Final = 32
_BLOCK: Final = 1 << 16
_PREFIX: Final = 8  # bytes of a row searched as one integer


def rows_of(buffer: bytes | bytearray, width: int = _ROW) -> Rows:
    """View a concatenated buffer of ``width``-byte values as an ``(n, width)`` array (no
    copy)."""
    return np.frombuffer(buffer, dtype=np.uint8).reshape(-1, width)


def _void(rows: Rows) -> npt.NDArray[np.void]:
    return np.ascontiguousarray(rows).view(np.dtype((np.void, rows.shape[1]))).ravel()


def distinct_index(rows: Rows) -> tuple[Index, Index]:
    """The distinct rows in ascending byte order, given as the index of each one's first
    occurrence in ``rows``, and, for each input row, its index among the distinct ones.

    Sorts an index (stable), not the rows, and compares neighbours block by block, so the only
    full-length temporaries are index arrays.
    """
    n = len(rows)
    if n == 0:
        return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int32)
    v = _void(rows)
    order = np.argsort(v, kind="stable")
    new = np.ones(n, dtype=np.bool_)
    for start in range(1, n, _BLOCK):
        block = v[order[start - 1 : start + _BLOCK]]
        new[start : start + len(block) - 1] = block[1:] != block[:-1]
    first = order[new].astype(np.int32)
    inverse = np.empty(n, dtype=np.int32)
    inverse[order] = np.cumsum(new, dtype=np.int32) - 1
    return first, inverse


def gather_sources(values: Rows, first: Index, dummies: Rows, sources: Index) -> Rows:
    """Rows of the source sequence ``values[first] ++ dummies`` at the indices ``sources``
    (spec §5.3 step 4), without materialising the sequence."""
    out = np.empty((len(sources), _ROW), dtype=np.uint8)
    real = sources < len(first)
    out[real] = values[first[sources[real]]]
    out[~real] = dummies[sources[~real] - len(first)]
    return out


def sort_rows_in_place(rows: Rows) -> None:
    """Sort a C-contiguous ``(n, 32)`` array in ascending byte order, without a copy."""
    if not rows.flags.c_contiguous:
        raise ValueError("rows must be C-contiguous")
    rows.view(np.dtype((np.void, _ROW))).ravel().sort()


def sorted_has_duplicates(rows: Rows) -> bool:
    """True if two rows of an already sorted array are equal."""
    if len(rows) < 2:
        return False
    v = _void(rows)
    return bool(np.any(v[1:] == v[:-1]))


def _prefix(rows: Rows) -> npt.NDArray[np.uint64]:
    """The first 8 bytes of each row as big-endian integers (one 8-byte copy per row)."""
    p = np.array(rows[:, :_PREFIX], dtype=np.uint8, order="C", copy=True).view(np.uint64).ravel()
    if sys.byteorder == "little":
        p.byteswap(inplace=True)
    return p


def has_duplicates(rows: Rows) -> bool:
    """True if two rows are equal.

    Sorts the 8-byte prefixes only; rows whose prefix repeats (rare for group elements) are
    compared in full.
    """
    if len(rows) < 2:
        return False
    p = _prefix(rows)
    s = np.sort(p)
    repeated = np.unique(s[1:][s[1:] == s[:-1]])
    if len(repeated) == 0:
        return False
    candidates = np.sort(_void(rows[np.isin(p, repeated)]))
    return bool(np.any(candidates[1:] == candidates[:-1]))


def member_mask_sorted(rows: Rows, others: Rows) -> npt.NDArray[np.bool_]:
    """For each row of ``rows``, whether it equals some row of ``others`` (sorted ascending)."""
    return lookup_sorted(rows, others) >= 0


def lookup_sorted(keys: Rows, table: Rows) -> npt.NDArray[np.int64]:
    """For each row of ``keys`` (``(n, w)``), the index of a row of ``table`` (``(m, W)``,
    ``W >= w``, sorted ascending) whose first ``w`` bytes equal it (the first such row), or -1.

    Searches by 8-byte prefix as integers, confirms each candidate in full, and resolves
    a key whose prefix is shared by several rows of the table (rare for group elements and
    tags) with a full-width search. Works in blocks of keys so that temporaries stay small.
    """
    n, m = len(keys), len(table)
    result = np.full(n, -1, dtype=np.int64)
    if n == 0 or m == 0:
        return result
    width = keys.shape[1]
    table_prefix = _prefix(table) if width >= _PREFIX else None
    table_full: npt.NDArray[np.void] | None = None  # made only if needed
    for start in range(0, n, _BLOCK):
        block = keys[start : start + _BLOCK]
        found = result[start : start + len(block)]
        kv = _void(block)
        if table_prefix is None:
            ambiguous = np.arange(len(block))
        else:
            prefix = _prefix(block)
            # Searched in ascending order: neighbouring searches then share cache lines (about
            # 5x faster on a large table than searching in the keys' own order).
            order = np.argsort(prefix)
            idx = np.empty(len(block), dtype=np.intp)
            idx[order] = np.searchsorted(table_prefix, prefix[order])
            np.minimum(idx, m - 1, out=idx)
            candidate = np.flatnonzero(table_prefix[idx] == prefix)
            same = _void(table[idx[candidate], :width]) == kv[candidate]
            found[candidate[same]] = idx[candidate[same]]
            ambiguous = candidate[~same]
        if len(ambiguous):
            if table_full is None:
                table_full = _void(table[:, :width])
            j = np.minimum(np.searchsorted(table_full, kv[ambiguous]), m - 1)
            same = table_full[j] == kv[ambiguous]
            found[ambiguous[same]] = j[same]
    return result


def random_permutation(n: int, rng: RandomSource) -> npt.NDArray[np.intp]:
    """A permutation of ``range(n)``: indices sorted by ``n`` random 64-bit little-endian keys
    drawn as one ``rng(8 * n)`` call, ties by index (spec §5.3)."""
    keys = np.frombuffer(rng(8 * n), dtype="<u8")
    return np.argsort(keys, kind="stable").astype(np.intp)
