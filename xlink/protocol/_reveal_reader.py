"""The receiving side of the Reveal (spec: xlink-psi-v2 §6.7, §6.11, §7.3): checks the peer's
chunks against our own matches and its commitment, and builds the candidate pairs.

Everything is held in numpy columns, as in :mod:`xlink.protocol._reveal`: the peer's reveal is
accumulated as arrays and grouped into pairs once it is complete.
"""

from __future__ import annotations

import hmac
from typing import Any

import numpy as np
import numpy.typing as npt

from xlink.errors import RemoteProtocolError
from xlink.linkage.tokens import TokenSet
from xlink.protocol import _keys
from xlink.protocol import limits as L
from xlink.protocol._pair_table import pair_table
from xlink.protocol._reveal import (
    _HANDLE,
    Ints,
    OwnMatches,
    _column_at,
    _first_true,
    _gather_ranges,
    _presence_codes,
    presence_size,
    record_key_sets,
)
from xlink.protocol.abort import AbortCode
from xlink.protocol.events import PairTable
from xlink.protocol.messages import Reveal

__all__ = ["PeerRevealReader"]


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
        "_rows",
        "_rows_of",
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
        # A record has at least one distinct matched value, so an honest Reveal names about as
        # many records as the peer's padded set has values at most (spec §6.7): a bound on our
        # memory and on the pairs a peer can make us build.
        self._max_entries = max_entries
        self._rows = 0  # our tokens the entries so far name (spec §6.7, REVEAL_ROWS_PER_ENTRY)
        # With a minimal reveal, pairs are formed only with our own revealed records: a record
        # we did not reveal cannot reach the threshold, and the peer sees no pair with it.
        self._own_mask: npt.NDArray[np.bool_] | None = None
        if own_revealed is not None:
            self._own_mask = np.zeros(len(tokens.record_ids), dtype=np.bool_)
            self._own_mask[own_revealed] = True
        self._record_index = tokens.record_index
        # The rows each handle makes us hold (our tokens carrying it, of our revealed records
        # under a minimal reveal), so that a chunk is measured before anything is gathered.
        owners = np.diff(matches.offsets)
        if self._own_mask is not None and len(matches.tokens):
            kept = self._own_mask[_column_at(tokens.record_index, matches.tokens)]
            self._rows_of = np.add.reduceat(kept.astype(np.int64), matches.offsets[:-1])
            self._rows_of[owners == 0] = 0
        else:
            self._rows_of = owners.astype(np.int64)
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
        after the final one, a chunk with no entries that is not the final one (an honest sender
        fills every chunk but the last, so only a stalling peer sends one), key presence of the
        wrong length, unsorted or repeated handles in
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
        if not k and not chunk.final:
            raise RemoteProtocolError(
                AbortCode.BAD_REVEAL, "an empty Reveal chunk before the final"
            )
        if self._next_ref + k > self._max_entries:
            raise RemoteProtocolError(
                AbortCode.BAD_REVEAL, "more Reveal entries than the cap for the peer's set size"
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
        self._rows += int(self._rows_of[handle].sum())  # before anything is gathered
        if self._rows > L.REVEAL_ROWS_PER_ENTRY * self._max_entries:
            raise RemoteProtocolError(
                AbortCode.BAD_REVEAL, "the Reveal names our tokens more often than the cap"
            )
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
        return pair_table(
            tokens,
            token,
            ref,
            handle,
            handles=self._matches.handles,
            local_key_sets=self._key_sets,
            peer_key_sets=peer_key_sets,
        )
