"""Candidate pairs as numpy columns, what :func:`xlink.decide.decide` and the evaluation judge
work on.

A session may have millions of candidate pairs but only a few hundred distinct *patterns*
(the keys that agreed, the keys both records have). :class:`PairColumns` holds one integer
per pair for its local record, its peer reference and its pattern, and each pattern's key
sets once, so that scoring is one call per pattern and the link rule is array work; a Python
object is built only for the pairs that are decided.

It is built from a :class:`~xlink.protocol.events.PairTable` without one Python object per
pair (:func:`from_table`), or from any iterable of
:class:`~xlink.protocol.events.CandidatePair` (:func:`from_pairs`).
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from xlink.protocol.events import CandidatePair, PairTable, decode_key_set

__all__ = ["KeySets", "PairColumns", "from_pairs", "from_table", "id_codes", "pair_columns"]

Ints = npt.NDArray[np.int64]
#: A pattern: the keys that agreed, and the keys both records have (local ∩ peer).
KeySets = tuple[frozenset[str], frozenset[str]]


@dataclass(frozen=True, slots=True, eq=False)
class PairColumns:
    """Candidate pairs in columns, in the source's order.

    Pair ``i`` is local record ``left_ids[left[i]]``, peer reference ``ref[i]``, pattern
    ``patterns[pattern[i]]``; ``handles_of(rows)`` are the handles of the pairs ``rows``, a
    tuple per pair. ``left_ids`` are the distinct local record ids sorted as Python strings,
    so a code is an id's rank (equal ids, one code).
    """

    left: Ints
    left_ids: tuple[str, ...]
    ref: Ints
    pattern: Ints
    patterns: tuple[KeySets, ...]
    handles_of: Callable[[Ints], list[tuple[bytes, ...]]]

    def __len__(self) -> int:
        return len(self.left)


def pair_columns(source: Any) -> PairColumns:
    """The columns of a :class:`~xlink.decide.CandidateSource`: its own ``pair_columns()`` if
    it has one, its :class:`~xlink.protocol.events.PairTable` if it holds one (a
    :class:`~xlink.protocol.events.PsiResult`), else one pass over ``iter_pairs()``."""
    own = getattr(source, "pair_columns", None)
    if callable(own):
        columns: PairColumns = own()
        return columns
    table = getattr(source, "table", None)
    if isinstance(table, PairTable):
        return from_table(table)
    return from_pairs(source.iter_pairs())


def id_codes(ids: Sequence[str]) -> tuple[Ints, tuple[str, ...]]:
    """Each id's rank among the distinct ``ids`` sorted as Python strings, and those."""
    distinct = tuple(sorted(set(ids)))
    rank = {s: i for i, s in enumerate(distinct)}
    return np.fromiter(map(rank.__getitem__, ids), dtype=np.int64, count=len(ids)), distinct


def from_pairs(pairs: Iterable[CandidatePair]) -> PairColumns:
    """Columns from candidate pairs, one pass (the handles are kept as they are)."""
    first: dict[str, int] = {}  # id -> code by first appearance
    seen: dict[tuple[frozenset[str], frozenset[str], frozenset[str]], int] = {}
    index: dict[KeySets, int] = {}
    left, ref, pattern = array("q"), array("q"), array("q")
    handles: list[tuple[bytes, ...]] = []
    for p in pairs:
        left.append(first.setdefault(p.local_record_id, len(first)))
        ref.append(p.peer_ref)
        key = (p.agreeing_keys, p.local_keys, p.peer_keys)
        code = seen.get(key)
        if code is None:
            both = (p.agreeing_keys, p.local_keys & p.peer_keys)
            code = seen[key] = index.setdefault(both, len(index))
        pattern.append(code)
        handles.append(p.handles)
    ranks, distinct = id_codes(list(first))  # `first` in code order
    return PairColumns(
        left=ranks[np.frombuffer(left, dtype=np.int64)] if len(left) else _none(),
        left_ids=distinct,
        ref=np.frombuffer(ref, dtype=np.int64).copy() if len(ref) else _none(),
        pattern=np.frombuffer(pattern, dtype=np.int64).copy() if len(pattern) else _none(),
        patterns=tuple(index),
        handles_of=lambda rows: [handles[i] for i in rows.tolist()],
    )


def _ranges(starts: Ints, counts: Ints) -> Ints:
    """The concatenation of ``range(s, s + c)`` for each start and count."""
    total = int(counts.sum())
    if total == 0:
        return _none()
    ends = np.cumsum(counts)
    return np.repeat(starts - (ends - counts), counts) + np.arange(total, dtype=np.int64)


def _none() -> Ints:
    return np.zeros(0, dtype=np.int64)


def _distinct_codes(codes: npt.NDArray[Any]) -> tuple[list[Any], Ints]:
    """The distinct key-set codes (ints, or tuples of words for a row of words) and each
    row's index among them."""
    if codes.ndim == 1:
        distinct, inverse = np.unique(codes, return_inverse=True)
        return distinct.tolist(), inverse.astype(np.int64).reshape(-1)
    distinct, inverse = np.unique(codes, axis=0, return_inverse=True)
    return [tuple(row) for row in distinct.tolist()], inverse.astype(np.int64).reshape(-1)


def _both(a: Any, b: Any) -> Any:
    if isinstance(a, tuple):
        return tuple(x & y for x, y in zip(a, b, strict=True))
    return a & b


def _dense_codes(key: Ints, size: int) -> tuple[Ints, Ints]:
    """The distinct values of ``key`` (all in ``range(size)``), ascending, and each one's index
    among them: by a table when ``size`` is small, else by sorting."""
    if size <= max(4 * len(key), 1 << 16):
        used = np.zeros(size, dtype=np.bool_)
        used[key] = True
        distinct = np.flatnonzero(used)
        slot = np.zeros(size, dtype=np.int64)
        slot[distinct] = np.arange(len(distinct), dtype=np.int64)
        return distinct, slot[key]
    distinct, inverse = np.unique(key, return_inverse=True)
    return distinct, inverse.astype(np.int64).reshape(-1)


def from_table(table: PairTable) -> PairColumns:
    """Columns from a :class:`~xlink.protocol.events.PairTable`, with array work and one
    Python step per distinct record and per distinct pattern, none per pair."""
    record = table.record
    used = np.zeros(len(table.record_ids), dtype=np.bool_)
    used[record] = True
    records = np.flatnonzero(used)
    ids = table.record_ids
    ranks, distinct_ids = id_codes([ids[r] for r in records.tolist()])
    code_of = np.zeros(len(ids), dtype=np.int64)
    code_of[records] = ranks
    left = code_of[record]
    del used, code_of

    local, local_of = _distinct_codes(table.local_key_sets)
    peer, peer_of = _distinct_codes(table.peer_key_sets)
    n_local, n_peer = max(len(local), 1), max(len(peer), 1)
    size = max(len(table.patterns), 1) * n_local * n_peer
    if size < 1 << 62:
        key = (table.pattern * n_local + local_of[record]) * n_peer + peer_of[table.ref]
        distinct, inverse = _dense_codes(key, size)
        del key
        rows = [
            (v // (n_local * n_peer), v // n_peer % n_local, v % n_peer) for v in distinct.tolist()
        ]
    else:  # too many combinations for one integer: distinct rows instead
        stacked = np.stack([table.pattern, local_of[record], peer_of[table.ref]], axis=1)
        rows_array, inverse = np.unique(stacked, axis=0, return_inverse=True)
        inverse = inverse.astype(np.int64).reshape(-1)
        rows = [tuple(r) for r in rows_array.tolist()]
    decoded: dict[Any, frozenset[str]] = {}
    index: dict[KeySets, int] = {}
    remap = np.empty(len(rows), dtype=np.int64)
    for i, (p, lo, pe) in enumerate(rows):
        code = _both(local[lo], peer[pe])
        both = decoded.get(code)
        if both is None:
            both = decoded[code] = decode_key_set(code, table.key_names)
        remap[i] = index.setdefault((table.patterns[p], both), len(index))
    pattern = remap[inverse] if len(rows) else _none()

    offsets, handle_index, handles = table.offsets, table.handle_index, table.handles

    def handles_of(rows: Ints) -> list[tuple[bytes, ...]]:
        starts, ends = offsets[rows], offsets[rows + 1]
        counts = ends - starts
        picked = np.ascontiguousarray(handles[handle_index[_ranges(starts, counts)]])
        flat = cast(list[bytes], picked.view(np.dtype((np.void, picked.shape[1]))).ravel().tolist())
        ends_at = np.cumsum(counts).tolist()
        starts_at = [0, *ends_at[:-1]] if ends_at else []
        return [tuple(flat[a:b]) for a, b in zip(starts_at, ends_at, strict=True)]

    return PairColumns(
        left=left,
        left_ids=distinct_ids,
        ref=table.ref.astype(np.int64, copy=False),
        pattern=pattern,
        patterns=tuple(index),
        handles_of=handles_of,
    )
