"""Set operations on element buffers with numpy, without per-element Python objects
(spec: xlink-psi-v1 §5.3, §7).

Rows are 32-byte elements held as ``(n, 32)`` uint8 arrays; ``V32`` views give memcmp order.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from xlink.crypto.rand import RandomSource

__all__ = [
    "Rows",
    "distinct_rows",
    "has_duplicates",
    "member_mask",
    "random_permutation",
    "rows_of",
    "sorted_rows",
]

Rows = npt.NDArray[np.uint8]
_ROW: Final = 32


def rows_of(buffer: bytes | bytearray) -> Rows:
    """View a concatenated buffer of 32-byte elements as an ``(n, 32)`` array (no copy)."""
    return np.frombuffer(buffer, dtype=np.uint8).reshape(-1, _ROW)


def _void(rows: Rows) -> npt.NDArray[np.void]:
    return np.ascontiguousarray(rows).view(np.dtype((np.void, _ROW))).ravel()


def distinct_rows(rows: Rows) -> tuple[Rows, npt.NDArray[np.intp]]:
    """The distinct rows in ascending byte order and, for each input row, its index among them."""
    if len(rows) == 0:
        return np.zeros((0, _ROW), dtype=np.uint8), np.zeros(0, dtype=np.intp)
    uniq, inverse = np.unique(_void(rows), return_inverse=True)
    return uniq.view(np.uint8).reshape(-1, _ROW), inverse.astype(np.intp).ravel()


def sorted_rows(rows: Rows) -> Rows:
    """The rows in ascending byte order (a copy)."""
    return np.sort(_void(rows)).view(np.uint8).reshape(-1, _ROW)


def has_duplicates(rows: Rows) -> bool:
    """True if two rows are equal."""
    if len(rows) < 2:
        return False
    s = np.sort(_void(rows))
    return bool(np.any(s[1:] == s[:-1]))


def _prefix(rows: Rows) -> npt.NDArray[np.uint64]:
    return np.ascontiguousarray(rows[:, :8]).view(">u8").ravel().astype(np.uint64)


def member_mask(rows: Rows, others: Rows) -> npt.NDArray[np.bool_]:
    """For each row of ``rows``, whether it equals some row of ``others``.

    Sorts ``others`` once, finds candidates by 8-byte prefix with ``searchsorted`` and confirms
    full 32-byte equality; rows whose prefix collides resolve through a full-width search.
    """
    n, m = len(rows), len(others)
    if n == 0 or m == 0:
        return np.zeros(n, dtype=np.bool_)
    sv = np.sort(_void(others))
    sp = _prefix(sv.view(np.uint8).reshape(-1, _ROW))
    rv = _void(rows)
    idx = np.minimum(np.searchsorted(sp, _prefix(rows)), m - 1)
    candidate = sp[idx] == _prefix(rows)
    result = np.zeros(n, dtype=np.bool_)
    result[candidate] = sv[idx[candidate]] == rv[candidate]
    ambiguous = np.nonzero(candidate & ~result)[0]
    if len(ambiguous):
        j = np.minimum(np.searchsorted(sv, rv[ambiguous]), m - 1)
        result[ambiguous] = sv[j] == rv[ambiguous]
    return result


def random_permutation(n: int, rng: RandomSource) -> npt.NDArray[np.intp]:
    """A permutation of ``range(n)``: indices sorted by ``n`` random 64-bit little-endian keys
    drawn as one ``rng(8 * n)`` call, ties by index (spec §5.3)."""
    keys = np.frombuffer(rng(8 * n), dtype="<u8")
    return np.argsort(keys, kind="stable").astype(np.intp)
