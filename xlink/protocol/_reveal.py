"""The sending side of the reveal step of PSI mode: which matched handles belong to the same
record (spec: xlink-psi-v2 §6.7, §6.11), and the column helpers the receiving side
(:mod:`xlink.protocol._reveal_reader`) shares.

Only records with at least one matched token, and with a reveal bound only those whose matched
keys can still reach the threshold, are listed, under a fresh per-session reference (their
position in a random order), never their ids, each with its key presence (which keys the record
has at least one token for, so that the receiver can tell a key that disagreed from one that is
missing). The whole Reveal is committed to (salted) before its first chunk is sent.

Everything is held in numpy columns (no Python object per matched token or per pair): own
matches sorted by handle, per-record entries as offsets into a handle-index column (CSR), and
Reveal messages built one chunk at a time (once to be hashed for the commitment, once to be
sent).
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Sequence
from typing import Any, ClassVar, Final

import numpy as np
import numpy.typing as npt

from xlink.crypto.rand import RandomSource
from xlink.linkage.tokens import TokenSet
from xlink.protocol import _keys
from xlink.protocol import limits as L
from xlink.protocol._sets import random_permutation
from xlink.protocol.bound import RevealBound
from xlink.protocol.messages import Reveal

__all__ = ["OwnMatches", "RevealWriter"]

Ints = npt.NDArray[np.int64]
_HANDLE: Final = np.dtype((np.void, L.HANDLE_SIZE))
_MAX_WORDS: Final = L.PRESENCE_BYTES_PER_RECORD // 8
Words = npt.NDArray[np.uint64]  # key sets, one row each: key i is bit i % 64 of word i // 64


def _column_at(column: array[int], index: Ints) -> Ints:
    """``column[index]`` for an ``array.array`` column of a TokenSet, as int64."""
    return np.asarray(memoryview(column))[index].astype(np.int64)


def _gather_ranges(starts: Ints, counts: Ints) -> Ints:
    """The concatenation of ``range(s, s + c)`` for each start and count (vectorised)."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(counts)
    return np.repeat(starts - (ends - counts), counts) + np.arange(total, dtype=np.int64)


def _words(key_names: Sequence[str]) -> int:
    """64-bit words a key set of this schema needs (at least one)."""
    return max(1, -(-len(key_names) // 64))


def presence_size(key_names: Sequence[str]) -> int:
    """Bytes of key presence per Reveal entry for a schema of these keys: ``ceil(K / 8)``."""
    return -(-len(key_names) // 8)


def record_key_sets(tokens: TokenSet) -> npt.NDArray[np.unsignedinteger[Any]]:
    """For every record of ``tokens``, the set of keys it has a token of, in the smallest
    unsigned type that holds one bit per key (``(n, words)`` 64-bit words beyond 64 keys).

    Built once when a session starts, while memory is low: a few bytes per record, so that the
    reveal needs no per-token temporaries at the end of the exchange, when memory peaks."""
    n, k = len(tokens.record_ids), len(tokens.key_names)
    record = np.asarray(memoryview(tokens.record_index))
    key = np.asarray(memoryview(tokens.key_index))
    if k <= 64:
        dtype = next(
            t for t in (np.uint8, np.uint16, np.uint32, np.uint64) if np.iinfo(t).bits >= k
        )
        flat: npt.NDArray[np.unsignedinteger[Any]] = np.zeros(n, dtype=dtype)
        np.bitwise_or.at(flat, record, np.left_shift(dtype(1), key.astype(dtype)))
        return flat
    sets = np.zeros((n, _words(tokens.key_names)), dtype=np.uint64)
    wide = key.astype(np.uint64)
    np.bitwise_or.at(
        sets, (record, wide >> np.uint64(6)), np.left_shift(np.uint64(1), wide & np.uint64(63))
    )
    return sets


def _key_sets_at(sets: npt.NDArray[np.unsignedinteger[Any]], records: Ints) -> Words:
    """The key sets of ``records`` (from :func:`record_key_sets`) as rows of 64-bit words."""
    picked = sets[records]
    return (picked.reshape(-1, 1) if picked.ndim == 1 else picked).astype(np.uint64)


def _presence_bytes(keys: Words, size: int) -> bytes:
    """Key sets as a Reveal's presence field (spec §6.7): ``size`` bytes each, bit ``i % 8``
    (least significant first) of byte ``i // 8`` for key ``i``, concatenated."""
    wide = np.zeros((len(keys), _MAX_WORDS), dtype=np.dtype("<u8"))
    wide[:, : keys.shape[1]] = keys
    return wide.view(np.uint8).reshape(len(keys), 8 * _MAX_WORDS)[:, :size].tobytes()


def _presence_codes(
    presence: npt.NDArray[np.uint8], like: npt.NDArray[np.unsignedinteger[Any]]
) -> npt.NDArray[np.unsignedinteger[Any]]:
    """``(n, size)`` presence rows as key-set codes of the same type and shape per row as
    ``like`` (from :func:`record_key_sets`): the inverse of :func:`_presence_bytes`."""
    width = like.dtype.itemsize * (like.shape[1] if like.ndim == 2 else 1)
    wide = np.zeros((len(presence), width), dtype=np.uint8)
    wide[:, : presence.shape[1]] = presence
    codes = wide.view(like.dtype.newbyteorder("<")).astype(like.dtype)
    return codes.ravel() if like.ndim == 1 else codes


def _reachable(
    key: Ints, starts: Ints, key_names: tuple[str, ...], bound: RevealBound
) -> npt.NDArray[np.bool_]:
    """For each record group (entries ``starts[g]..starts[g+1]-1`` of ``key``), whether its
    matched keys can still be decided (:meth:`RevealBound.reaches`)."""
    if len(bound.agreement) != len(key_names):
        raise ValueError("the reveal bound has a weight per key of another schema")
    if bound.min_groups and len(bound.groups) != len(key_names):
        raise ValueError("the reveal bound has evidence groups per key of another schema")
    words = _words(key_names)
    bits = np.zeros((len(key), words), dtype=np.uint64)
    bits[np.arange(len(key)), key // 64] = np.left_shift(np.uint64(1), (key % 64).astype(np.uint64))
    group_bits = np.bitwise_or.reduceat(bits, starts, axis=0)
    distinct, inverse = np.unique(group_bits, axis=0, return_inverse=True)
    ok = np.array(
        [
            bound.reaches(
                frozenset(
                    w * 64 + b
                    for w, word in enumerate(row.tolist())
                    for b in range(64)
                    if int(word) >> b & 1
                )
            )
            for row in distinct
        ],
        dtype=np.bool_,
    )
    return ok[inverse.ravel()]


def _first_true(flags: npt.NDArray[np.bool_], positions: Ints, default: int) -> int:
    hits = positions[flags]
    return int(hits[0]) if len(hits) else default


class OwnMatches:
    """This party's matched tokens, by handle.

    ``handles`` holds the ``m`` distinct handles in ascending byte order (``(m, 16)`` uint8);
    the tokens carrying handle ``h`` are ``tokens[offsets[h]:offsets[h + 1]]`` (token indices
    into the TokenSet, ascending).
    """

    __slots__ = ("handles", "offsets", "tokens")

    def __init__(self, handles: npt.NDArray[np.uint8], offsets: Ints, tokens: Ints) -> None:
        self.handles = handles
        self.offsets = offsets
        self.tokens = tokens

    @classmethod
    def build(
        cls,
        handles: bytes | bytearray,
        value_index: Ints,
        inverse: npt.NDArray[np.int32],
        distinct_count: int,
    ) -> OwnMatches:
        """``handles`` are the concatenated handles of the matched distinct token values whose
        indices are ``value_index``; ``inverse`` maps each token to its distinct value."""
        view = np.frombuffer(handles, dtype=_HANDLE)
        order = np.argsort(view, kind="stable")
        # int32 is enough: at most MAX_SET_SIZE distinct values.
        handle_of_value = np.full(distinct_count, -1, dtype=np.int32)
        handle_of_value[value_index[order]] = np.arange(len(order), dtype=np.int32)
        token_handle = handle_of_value[inverse]
        del handle_of_value
        tokens = np.flatnonzero(token_handle >= 0).astype(np.int64)
        token_handle = token_handle[tokens]
        by_handle = np.argsort(token_handle, kind="stable")
        offsets = np.zeros(len(order) + 1, dtype=np.int64)
        np.cumsum(np.bincount(token_handle, minlength=len(order)), out=offsets[1:])
        sorted_handles = view[order].view(np.uint8).reshape(-1, L.HANDLE_SIZE)
        return cls(sorted_handles, offsets, tokens[by_handle])

    def __len__(self) -> int:
        return len(self.handles)

    def handle_ids(self) -> Ints:
        """For each entry of ``tokens``, its handle index."""
        return np.repeat(np.arange(len(self), dtype=np.int64), np.diff(self.offsets))


class RevealWriter:
    """The Reveal messages listing our matched records in a random order (spec §6.7), built
    one chunk at a time.

    Records are ordered by a permutation drawn at construction as in spec §5.3 (one
    ``rng(8 * m)`` call over the matched records in ascending record-index order); a chunk holds
    at most ``max_records`` entries (``MAX_RECORDS_PER_REVEAL`` unless the session config says
    fewer) and ``MAX_HANDLES_PER_REVEAL`` handles. Raises ``ValueError`` if a record has more
    than ``MAX_HANDLES_PER_RECORD`` matched handles (the session refuses such token sets at
    construction; should it happen, the session aborts with ``INTERNAL_ERROR``).
    """

    __slots__ = (
        "_committed",
        "_counts",
        "_entries",
        "_handles",
        "_key_sets",
        "_max_records",
        "_order",
        "_pos",
        "_presence_size",
        "_salt",
        "_seq",
        "_starts",
        "done",
        "revealed_records",
    )

    max_records: ClassVar[int] = L.MAX_RECORDS_PER_REVEAL
    max_handles: ClassVar[int] = L.MAX_HANDLES_PER_REVEAL

    def __init__(
        self,
        matches: OwnMatches,
        tokens: TokenSet,
        rng: RandomSource,
        max_records: int | None = None,
        key_sets: npt.NDArray[np.unsignedinteger[Any]] | None = None,
        bound: RevealBound | None = None,
    ) -> None:
        limit = self.max_records
        self._max_records = limit if max_records is None else min(limit, max_records)
        record = _column_at(tokens.record_index, matches.tokens)
        handle = matches.handle_ids()
        by_record = np.lexsort((handle, record))
        record, handle = record[by_record], handle[by_record]
        keep = np.ones(len(record), dtype=np.bool_)
        keep[1:] = (record[1:] != record[:-1]) | (handle[1:] != handle[:-1])
        record, handle = record[keep], handle[keep]
        records, starts, counts = np.unique(record, return_index=True, return_counts=True)
        if len(counts) and int(counts.max()) > L.MAX_HANDLES_PER_RECORD:
            raise ValueError("a record has more matched tokens than MAX_HANDLES_PER_RECORD")
        if bound is not None and len(records):
            # Minimal reveal (spec §6.7): only records whose matched keys can still reach the
            # threshold, whatever the peer's record holds.
            key = np.asarray(memoryview(tokens.key_index))[
                matches.tokens[matches.offsets[handle]]
            ].astype(np.int64)
            keep_record = _reachable(key, starts, tokens.key_names, bound)
            records, starts, counts = records[keep_record], starts[keep_record], counts[keep_record]
        self._handles = matches.handles
        self._key_sets = record_key_sets(tokens) if key_sets is None else key_sets
        self._presence_size = presence_size(tokens.key_names)
        self._entries = handle
        self._starts = starts.astype(np.int64)
        self._counts = counts.astype(np.int64)
        self._order = random_permutation(len(counts), rng)
        #: Our record indices by the peer reference they are revealed under (a local output).
        self.revealed_records = records.astype(np.int64)[self._order]
        self._pos = 0
        self._seq = 0
        self.done = False
        self._committed = False
        self._salt = b""

    def commit(self, transcript: bytes, role: int, rng: RandomSource) -> bytes:
        """Draw the 32-byte salt (after the record order, spec §5.3) and return the commitment
        to the whole Reveal (spec §6.11). The chunks are built once here to be hashed, and
        built again, one at a time, by :meth:`next_chunk` (the final one carrying the salt):
        the order is fixed, so both passes give the same chunks, and no more than one chunk is
        held at a time."""
        self._salt = rng(L.SALT_SIZE)
        h = _keys.reveal_commitment(transcript, role)
        while not self.done:
            chunk = self._build_chunk(last_pass=False)
            _keys.add_reveal_chunk(h, chunk.records, chunk.presence)
        h.update(self._salt)
        self._pos = self._seq = 0
        self.done = False
        self._committed = True
        return h.digest()

    @property
    def exhausted(self) -> bool:
        """True once every chunk has been handed out."""
        return self._committed and self.done

    def next_chunk(self) -> Reveal:
        """The next chunk, after :meth:`commit`; the final one carries the salt."""
        if not self._committed or self.done:
            raise ValueError("no Reveal chunk to hand out")
        chunk = self._build_chunk(last_pass=True)
        if chunk.final:
            chunk = Reveal(chunk.seq, True, chunk.records, chunk.presence, self._salt)
        return chunk

    def _build_chunk(self, *, last_pass: bool) -> Reveal:
        """The next Reveal; the last one has ``final`` set and makes ``done`` true."""
        if self.done:
            raise ValueError("all Reveal chunks have been built")
        pick = self._order[self._pos : self._pos + self._max_records]
        counts = self._counts[pick]
        ends = np.cumsum(counts)
        k = int(np.searchsorted(ends, self.max_handles, side="right"))
        pick, counts, ends = pick[:k], counts[:k], ends[:k]
        index = self._entries[_gather_ranges(self._starts[pick], counts)]
        data = self._handles[index].tobytes()
        bounds = (L.HANDLE_SIZE * np.concatenate(([0], ends))).tolist()
        records = tuple(data[a:b] for a, b in itertools.pairwise(bounds))
        mine = self.revealed_records[self._pos : self._pos + k]  # = records[pick]
        presence = _presence_bytes(_key_sets_at(self._key_sets, mine), self._presence_size)
        self._pos += k
        self.done = self._pos == len(self._order)
        chunk = Reveal(self._seq, self.done, records, presence)
        self._seq += 1
        if self.done and last_pass:
            self._entries = self._starts = self._counts = self._order = np.zeros(0, np.int64)
            self._key_sets = self._key_sets[:0]
        return chunk
