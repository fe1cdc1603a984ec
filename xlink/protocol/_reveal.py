"""The reveal step of PSI mode: which matched handles belong to the same record
(spec: xlink-psi-v2 §6.7, §7.3).

Only records with at least one matched token are listed, under a fresh per-session reference
(their position in a random order), never their ids, each with its key presence (which keys the
record has at least one token for, so that the receiver can tell a key that disagreed from one
that is missing). The receiver accepts the peer's reveal only if it names exactly the handles it
matched itself and every entry's presence includes the keys of its handles.

Everything is held in numpy columns (no Python object per matched token or per pair): own
matches sorted by handle, per-record entries as offsets into a handle-index column (CSR), Reveal
messages built one chunk at a time, and the peer's reveal accumulated as arrays and grouped into
pairs once it is complete.
"""

from __future__ import annotations

import hmac
import itertools
import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final

import numpy as np
import numpy.typing as npt

from xlink.crypto.rand import RandomSource
from xlink.errors import RemoteProtocolError
from xlink.linkage.tokens import TokenSet
from xlink.protocol import _keys
from xlink.protocol import limits as L
from xlink.protocol._sets import random_permutation
from xlink.protocol.abort import AbortCode
from xlink.protocol.events import PairTable, decode_key_set
from xlink.protocol.messages import Reveal

__all__ = ["OwnMatches", "PeerRevealReader", "RevealBound", "RevealWriter"]

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


@dataclass(frozen=True, slots=True)
class RevealBound:
    """What a minimal reveal needs (spec §6.7): per key of the schema, in schema order, its
    agreement weight and its disagreement weight (0 when it has none), and the MOU's match
    threshold. A record is revealed only if the best score any peer record could give it,
    given which of its keys matched, reaches the threshold."""

    agreement: tuple[float, ...]
    disagreement: tuple[float, ...]
    threshold: float

    def upper_bound(self, matched: frozenset[int]) -> float:
        """The highest score a pair of a record whose matched keys are ``matched`` can have:
        a matched key may agree, disagree or be missing on the peer's side; any other key may
        disagree or be missing. Summed with ``math.fsum`` (order-free, as scoring is)."""
        return math.fsum(
            max(a, d, 0.0) if k in matched else max(d, 0.0)
            for k, (a, d) in enumerate(zip(self.agreement, self.disagreement, strict=True))
        )


def _reachable(
    key: Ints, starts: Ints, key_names: tuple[str, ...], bound: RevealBound
) -> npt.NDArray[np.bool_]:
    """For each record group (entries ``starts[g]..starts[g+1]-1`` of ``key``), whether its
    matched keys can still reach ``bound.threshold``."""
    if len(bound.agreement) != len(key_names):
        raise ValueError("the reveal bound has a weight per key of another schema")
    words = _words(key_names)
    bits = np.zeros((len(key), words), dtype=np.uint64)
    bits[np.arange(len(key)), key // 64] = np.left_shift(np.uint64(1), (key % 64).astype(np.uint64))
    group_bits = np.bitwise_or.reduceat(bits, starts, axis=0)
    distinct, inverse = np.unique(group_bits, axis=0, return_inverse=True)
    ok = np.array(
        [
            bound.upper_bound(
                frozenset(
                    w * 64 + b
                    for w, word in enumerate(row.tolist())
                    for b in range(64)
                    if int(word) >> b & 1
                )
            )
            >= bound.threshold
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


class PeerRevealReader:
    """Checks the peer's Reveal chunks against our own matches and builds candidate pairs."""

    __slots__ = (
        "_allowed",
        "_commitment",
        "_expected",
        "_handle_key",
        "_key_sets",
        "_matches",
        "_max_entries",
        "_next_ref",
        "_next_seq",
        "_own_mask",
        "_parts",
        "_presence",
        "_record_index",
        "_size",
        "_view",
        "finished",
    )

    def __init__(
        self,
        matches: OwnMatches,
        tokens: TokenSet,
        key_sets: npt.NDArray[np.unsignedinteger[Any]] | None = None,
        *,
        transcript: bytes = b"",
        peer_role: int = 0,
        own_revealed: Ints | None = None,
        max_entries: int = L.MAX_SET_SIZE,
    ) -> None:
        self._matches = matches
        # A record has at least one distinct matched value, so an honest Reveal names at most
        # as many records as the peer's padded set has values (spec §6.7): a bound on our memory.
        self._max_entries = max_entries
        # With a minimal reveal, pairs are formed only with our own revealed records: a record
        # we did not reveal cannot reach the threshold, and the peer sees no pair with it.
        self._own_mask: npt.NDArray[np.bool_] | None = None
        if own_revealed is not None:
            self._own_mask = np.zeros(len(tokens.record_ids), dtype=np.bool_)
            self._own_mask[own_revealed] = True
        self._record_index = tokens.record_index
        self._commitment = _keys.reveal_commitment(transcript, peer_role)
        self._expected: bytes | None = None
        self._view = matches.handles.view(_HANDLE).ravel()
        # The key of each handle: tokens are key-separated, so every token carrying a handle
        # (here, the first) has the same key, on both sides.
        self._handle_key = np.asarray(memoryview(tokens.key_index))[
            matches.tokens[matches.offsets[:-1]]
        ]
        keys = np.arange(len(tokens.key_names), dtype=np.int64)
        self._size = presence_size(tokens.key_names)
        self._allowed = np.zeros(self._size, dtype=np.uint8)
        np.bitwise_or.at(self._allowed, keys >> 3, np.left_shift(1, keys & 7).astype(np.uint8))
        self._key_sets = record_key_sets(tokens) if key_sets is None else key_sets
        self._presence: list[npt.NDArray[np.unsignedinteger[Any]]] = []
        self._next_seq = 0
        self._next_ref = 0
        self._parts: list[tuple[Ints, Ints, Ints]] = []
        self.finished = False

    @property
    def received(self) -> int:
        return self._next_seq

    @property
    def committed(self) -> bool:
        return self._expected is not None

    def expect(self, digest: bytes) -> None:
        """The peer's commitment to its Reveal (spec §6.11); a second one is ``UNEXPECTED``."""
        if self._expected is not None:
            raise RemoteProtocolError(AbortCode.UNEXPECTED_MESSAGE, "a second Commit")
        self._expected = digest

    def feed(self, chunk: Reveal) -> None:
        """Check one chunk (spec §6.7 receiver rules). Raises ``RemoteProtocolError``:
        ``CHUNK_REPLAYED``/``CHUNK_OUT_OF_ORDER`` for a bad ``seq``, ``BAD_REVEAL`` for a chunk
        after the final one, key presence of the wrong length, unsorted or repeated handles in
        an entry, a handle we did not match, a presence bit for a key the schema does not have,
        a presence that leaves out the key of one of the entry's handles, or a salt on a chunk
        that is not the final one.
        Entries are checked in order; within an entry, in that order. ``UNEXPECTED_MESSAGE``
        before the peer's Commit; ``BAD_COMMITMENT`` when the final chunk does not open it
        (spec §6.11). A matched handle the peer leaves unnamed is allowed: a minimal reveal
        lists only the records that can reach the threshold (spec §6.7)."""
        if chunk.seq < self._next_seq:
            raise RemoteProtocolError(AbortCode.CHUNK_REPLAYED, "reveal chunk replayed")
        if chunk.seq > self._next_seq:
            raise RemoteProtocolError(AbortCode.CHUNK_OUT_OF_ORDER, "reveal chunk out of order")
        if self.finished:
            raise RemoteProtocolError(AbortCode.BAD_REVEAL, "reveal chunk after the final one")
        if self._expected is None:
            raise RemoteProtocolError(AbortCode.UNEXPECTED_MESSAGE, "Reveal before Commit")
        k = len(chunk.records)
        if self._next_ref + k > self._max_entries:
            raise RemoteProtocolError(
                AbortCode.BAD_REVEAL, "more Reveal entries than the peer's padded set size"
            )
        if len(chunk.presence) != self._size * k:
            raise RemoteProtocolError(AbortCode.BAD_REVEAL, "key presence of the wrong length")
        if bool(chunk.salt) != chunk.final:
            raise RemoteProtocolError(AbortCode.BAD_REVEAL, "salt on a chunk other than the final")
        if k:
            presence = np.frombuffer(chunk.presence, dtype=np.uint8).reshape(k, self._size)
            self._feed_entries(chunk.records, presence)
        _keys.add_reveal_chunk(self._commitment, chunk.records, chunk.presence)
        self._next_ref += k
        self._next_seq += 1
        if chunk.final:
            self._commitment.update(chunk.salt)
            if not hmac.compare_digest(self._commitment.digest(), self._expected):
                raise RemoteProtocolError(
                    AbortCode.BAD_COMMITMENT, "the Reveal does not open the peer's commitment"
                )
            self.finished = True

    def _feed_entries(self, records: tuple[bytes, ...], presence: npt.NDArray[np.uint8]) -> None:
        k = len(records)
        lengths = np.fromiter(map(len, records), dtype=np.int64, count=k) // L.HANDLE_SIZE
        data = b"".join(records)
        entry = np.repeat(np.arange(k, dtype=np.int64), lengths)
        # Strictly ascending within each entry: compare as two big-endian 64-bit words.
        words = np.frombuffer(data, dtype=">u8").reshape(-1, 2)
        hi, lo = words[:, 0], words[:, 1]
        ascending = (hi[:-1] < hi[1:]) | ((hi[:-1] == hi[1:]) & (lo[:-1] < lo[1:]))
        same_entry = entry[1:] == entry[:-1]
        bad_order = _first_true(same_entry & ~ascending, entry[1:], k)
        # Each handle must be one of ours.
        view = np.frombuffer(data, dtype=_HANDLE)
        m = len(self._view)
        if m:
            found = np.minimum(np.searchsorted(self._view, view), m - 1)
            known = self._view[found] == view
        else:
            found = np.zeros(len(view), dtype=np.int64)
            known = np.zeros(len(view), dtype=np.bool_)
        bad_handle = _first_true(~known, entry, k)
        # Presence: no bit beyond the schema's keys, and the key of every handle named.
        unknown_key: npt.NDArray[np.bool_] = np.any(presence & ~self._allowed, axis=1)
        bad_bits = _first_true(unknown_key, np.arange(k, dtype=np.int64), k)
        key = self._handle_key[found] if m else np.zeros(len(view), dtype=np.uint8)
        if self._size:
            has_key = (presence[entry, key >> 3] >> (key & 7)) & 1
        else:  # no keys, so no handle of ours either: bad_handle already names the entry
            has_key = np.ones(len(view), dtype=np.uint8)
        bad_key = _first_true(known & (has_key == 0), entry, k)
        first = min(bad_order, bad_handle, bad_bits, bad_key)
        if first < k:
            reason = next(
                text
                for bad, text in (
                    (bad_order, "handles not strictly ascending"),
                    (bad_handle, "handle not in intersection"),
                    (bad_bits, "presence names a key the schema does not have"),
                    (bad_key, "presence leaves out the key of a handle"),
                )
                if bad == first
            )
            raise RemoteProtocolError(AbortCode.BAD_REVEAL, reason)
        self._presence.append(_presence_codes(presence, self._key_sets))
        handle = found.astype(np.int64)
        offsets = self._matches.offsets
        owners = offsets[handle + 1] - offsets[handle]
        tokens = self._matches.tokens[_gather_ranges(offsets[handle], owners)]
        refs = np.repeat(self._next_ref + entry, owners)
        handles = np.repeat(handle, owners)
        if self._own_mask is not None:
            mine = self._own_mask[_column_at(self._record_index, tokens)]
            tokens, refs, handles = tokens[mine], refs[mine], handles[mine]
        self._parts.append((tokens, refs, handles))

    def pairs(self, tokens: TokenSet) -> PairTable:
        """The candidate pairs, sorted by local record id then peer reference (spec §7.3)."""
        if not self._parts:
            return PairTable.empty(tokens.record_ids, tokens.key_names)
        peer_key_sets = np.concatenate(self._presence)
        self._presence.clear()
        # Columns are replaced one at a time so that few full-length temporaries coexist.
        token, ref, handle = (np.concatenate(c) for c in zip(*self._parts, strict=True))
        self._parts.clear()
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
        pattern, patterns = _key_patterns(
            _column_at(tokens.key_index, token), first, tokens.key_names
        )
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
            handles=self._matches.handles,
            record=g_record[g_order],
            ref=g_ref[g_order],
            pattern=pattern[g_order],
            patterns=patterns,
            offsets=offsets,
            handle_index=handle[_gather_ranges(starts[g_order], counts)],
            local_key_sets=self._key_sets,
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
