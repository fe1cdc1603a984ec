"""Which candidate pairs are dominated on one side (:func:`xlink.linkage.estimate.
dominated_pairs`), with array work only.

A pair is dominated on a side when another pair sharing its record on that side agrees on
every key it agrees on, and more. Only the distinct (record, agree mask) rows matter; each is
compared with every distinct row of its record, all records at once, a block of comparisons at
a time (a record with ``g`` distinct masks costs ``g**2`` comparisons, as a loop over its masks
would).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from xlink.errors import EstimationError

__all__ = ["distinct_rows", "dominated_on"]

Ints = npt.NDArray[np.int64]
#: Comparisons made at once (bounds the temporaries: a few arrays of this many integers).
_BLOCK = 1 << 22
#: A table of (id, value) slots is used while it has at most this many slots per pair.
_TABLE = 8


def dominated_on(ids: Ints, agree: Ints, budget: int | None = None) -> npt.NDArray[np.bool_]:
    """Whether each pair's agree mask is a strict subset of another mask of the same id.
    Raises :class:`~xlink.errors.EstimationError` before comparing if that would take more
    than ``budget`` comparisons (``g**2`` for an id with ``g`` distinct masks)."""
    if len(ids) < 2:
        return np.zeros(len(ids), dtype=np.bool_)
    row_of, row_id, masks = distinct_rows(ids, agree)
    # the distinct rows of each id: rows start[g] .. start[g] + size[g] - 1
    new_id = np.ones(len(row_id), dtype=np.bool_)
    new_id[1:] = row_id[1:] != row_id[:-1]
    start = np.flatnonzero(new_id)
    size = np.diff(np.append(start, len(row_id)))
    group = np.cumsum(new_id) - 1
    row_start, row_size = start[group], size[group]
    del new_id, group, start, size
    dominated = np.zeros(len(row_id), dtype=np.bool_)
    many = np.flatnonzero(row_size > 1)  # a row alone in its id is dominated by nothing
    work = int(row_size[many].sum())
    if budget is not None and work > budget:
        raise EstimationError(
            f"{work} comparisons to find the dominated pairs; at most {budget} are made"
        )
    if len(many):
        ends = np.cumsum(row_size[many])
        block = 0
        while block < len(many):
            # rows many[block:stop]: together at most _BLOCK comparisons (at least one row)
            limit = (ends[block - 1] if block else 0) + _BLOCK
            stop = max(int(np.searchsorted(ends, limit, side="right")), block + 1)
            rows = many[block:stop]
            counts = row_size[rows]
            a = np.repeat(rows, counts)
            b = _ranges(row_start[rows], counts)
            mine, theirs = masks[a], masks[b]
            dominated[a[((theirs & mine) == mine) & (theirs != mine)]] = True
            block = stop
    out: npt.NDArray[np.bool_] = dominated[row_of]
    return out


def distinct_rows(ids: Ints, values: Ints) -> tuple[Ints, Ints, Ints]:
    """The distinct ``(id, value)`` rows, sorted by id then value, as ``(row_of, row_id,
    row_value)``: pair ``i`` is row ``row_of[i]``. Values are coded by rank among the few
    distinct ones; the rows are then found by a table over ``(id, value code)`` when it is
    small enough (a counting sort: no comparison sort of the pairs), else by sorting one key."""
    n = len(ids)
    distinct = np.unique(values)
    code = _codes(values, distinct)
    low = int(ids.min())
    span = int(ids.max()) - low + 1
    size = span * len(distinct)
    if size <= max(_TABLE * n, 1 << 20):
        key = (ids - low) * len(distinct) + code
        used = np.zeros(size, dtype=np.bool_)
        used[key] = True
        slot = np.cumsum(used, dtype=np.int64 if size >= 1 << 31 else np.int32)
        row_of = slot[key].astype(np.int64) - 1
        del slot, key
        rows = np.flatnonzero(used)
        return row_of, rows // len(distinct) + low, distinct[rows % len(distinct)]
    if size < 1 << 62:
        order = np.argsort((ids - low) * len(distinct) + code, kind="stable")
    else:
        order = np.lexsort((code, ids))
    sorted_ids, sorted_codes = ids[order], code[order]
    new_row = np.ones(n, dtype=np.bool_)
    new_row[1:] = (sorted_ids[1:] != sorted_ids[:-1]) | (sorted_codes[1:] != sorted_codes[:-1])
    row_of = np.empty(n, dtype=np.int64)
    row_of[order] = np.cumsum(new_row) - 1
    firsts = np.flatnonzero(new_row)
    return row_of, sorted_ids[firsts], distinct[sorted_codes[firsts]]


def _codes(values: Ints, distinct: Ints) -> Ints:
    """Each value's index in ``distinct`` (its sorted distinct values): by a lookup table
    when the values are small, else by binary search."""
    if len(distinct) and int(distinct[0]) >= 0 and int(distinct[-1]) < max(len(values), 1 << 16):
        table = np.zeros(int(distinct[-1]) + 1, dtype=np.int64)
        table[distinct] = np.arange(len(distinct), dtype=np.int64)
        codes: Ints = table[values]
        return codes
    return np.searchsorted(distinct, values).astype(np.int64)


def _ranges(starts: Ints, counts: Ints) -> Ints:
    """The concatenation of ``range(s, s + c)`` for each start and count."""
    ends = np.cumsum(counts)
    return np.repeat(starts - (ends - counts), counts) + np.arange(int(ends[-1]), dtype=np.int64)
