"""Candidate pairs from matched tokens, in columns (:class:`~xlink.protocol.events.PairTable`):
what both the PSI reveal (:mod:`xlink.protocol._reveal_reader`) and a query's asker
(:mod:`xlink.agency._query_answers`) make of the rows "our token ``t`` matched peer record
``r`` under handle ``h``", with array work and one Python step per distinct pattern and per
distinct record, none per row or per pair: a peer that makes one token match a great many of
its records makes us hold a few integers for each, not an object."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from xlink.linkage.tokens import TokenSet
from xlink.protocol._reveal import Ints, _column_at, _gather_ranges, _words
from xlink.protocol.events import PairTable, decode_key_set

__all__ = ["pair_table"]


def pair_table(
    tokens: TokenSet,
    token: Ints,
    ref: Ints,
    handle: Ints,
    *,
    handles: npt.NDArray[np.uint8],
    local_key_sets: npt.NDArray[np.unsignedinteger[Any]],
    peer_key_sets: npt.NDArray[np.unsignedinteger[Any]],
) -> PairTable:
    """The candidate pairs of the rows ``(token[i], ref[i], handle[i])``: our token index, the
    peer's record reference, and the index of the shared handle in ``handles`` (``(m, 16)``,
    ascending). A pair is a (local record, peer reference) with its keys (those of its rows'
    tokens) and its distinct handles, ascending; pairs are sorted by local record id, then
    peer reference (spec xlink-psi-v2 §7.3). ``local_key_sets`` is indexed by our record
    index, ``peer_key_sets`` by peer reference."""
    if not len(token):
        return PairTable.empty(tokens.record_ids, tokens.key_names)
    record = _column_at(tokens.record_index, token)
    # Group by (record, peer ref); within a group, handles ascending, then token index.
    order = np.lexsort((token, handle, ref, record))
    token = token[order]
    ref = ref[order]
    handle = handle[order]
    record = record[order]
    del order
    new_group = np.ones(len(token), dtype=np.bool_)
    new_group[1:] = (record[1:] != record[:-1]) | (ref[1:] != ref[:-1])
    first = np.flatnonzero(new_group)
    g_record, g_ref, g_token = record[first], ref[first], token[first]
    del record, ref
    pattern, patterns = _key_patterns(_column_at(tokens.key_index, token), first, tokens.key_names)
    del token
    # A handle appears once per pair even if two of the record's tokens carry it.
    repeated = np.zeros(len(handle), dtype=np.bool_)
    repeated[1:] = ~new_group[1:] & (handle[1:] == handle[:-1])
    if repeated.any():
        handle, new_group = handle[~repeated], new_group[~repeated]
    del repeated
    starts = np.flatnonzero(new_group)
    counts = np.diff(np.append(starts, len(handle)))
    del new_group
    # Result order: local record id, then peer ref; equal ids (if the caller's ids repeat)
    # keep the order in which the pairs were first seen (first shared handle, then token).
    rank = _id_rank(g_record, tokens.record_ids)
    g_order = np.lexsort((g_token, handle[starts], g_ref, rank))
    del rank, g_token
    counts = counts[g_order]
    offsets = np.zeros(len(first) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return PairTable(
        record_ids=tokens.record_ids,
        key_names=tokens.key_names,
        handles=handles,
        record=g_record[g_order],
        ref=g_ref[g_order],
        pattern=pattern[g_order],
        patterns=patterns,
        offsets=offsets,
        handle_index=handle[_gather_ranges(starts[g_order], counts)],
        local_key_sets=local_key_sets,
        peer_key_sets=peer_key_sets,
    )


def _key_patterns(
    key: Ints, first: Ints, key_names: tuple[str, ...]
) -> tuple[Ints, tuple[frozenset[str], ...]]:
    """For each group (rows ``first[g]..first[g+1]-1``), the index of its set of keys among the
    distinct sets, and those sets (each frozenset built once)."""
    words = _words(key_names)
    bits = np.zeros((len(key), words), dtype=np.uint64)
    bits[np.arange(len(key)), key // 64] = np.left_shift(np.uint64(1), (key % 64).astype(np.uint64))
    group_bits = np.bitwise_or.reduceat(bits, first, axis=0)
    if words == 1:  # up to 64 keys: one integer a group, a plain sort (no rows to compare)
        distinct, inverse = np.unique(group_bits.ravel(), return_inverse=True)
        patterns = tuple(decode_key_set(int(code), key_names) for code in distinct)
        return inverse.astype(np.int64).ravel(), patterns
    distinct, inverse = np.unique(group_bits, axis=0, return_inverse=True)
    patterns = tuple(decode_key_set(tuple(int(w) for w in row), key_names) for row in distinct)
    return inverse.astype(np.int64).ravel(), patterns


def _id_rank(records: Ints, record_ids: Sequence[str]) -> Ints:
    """For each record index, the rank of its id among the ids of ``records`` (equal ids share
    a rank); ids compare as Python strings."""
    distinct, inverse = np.unique(records, return_inverse=True)
    ids = np.empty(len(distinct), dtype=object)
    for i in range(0, len(distinct), 1 << 16):  # blocks: no full-length list of ints
        ids[i : i + (1 << 16)] = [record_ids[r] for r in distinct[i : i + (1 << 16)].tolist()]
    _, id_rank = np.unique(ids, return_inverse=True)
    return id_rank.astype(np.int64).ravel()[inverse.ravel()]
