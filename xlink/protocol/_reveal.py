"""The reveal step of PSI mode: which matched handles belong to the same record
(spec: xlink-psi-v1 §6.7, §7.3).

Only records with at least one matched token are listed, under a fresh per-session reference
(their position in a random order), never their ids. The receiver accepts the peer's reveal only
if it names exactly the handles it matched itself.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from xlink.crypto.rand import RandomSource
from xlink.errors import RemoteProtocolError
from xlink.linkage.tokens import TokenSet
from xlink.protocol import limits as L
from xlink.protocol._sets import random_permutation
from xlink.protocol.abort import AbortCode
from xlink.protocol.events import CandidatePair
from xlink.protocol.messages import Reveal

__all__ = ["OwnMatches", "PeerRevealReader", "reveal_chunks"]


@dataclass(frozen=True, slots=True)
class OwnMatches:
    """This party's matched tokens: for each handle, the ``(record index, key index)`` pairs of
    the local tokens carrying that value."""

    by_handle: Mapping[bytes, Sequence[tuple[int, int]]]

    @classmethod
    def build(cls, tokens: TokenSet, token_handles: Mapping[int, bytes]) -> OwnMatches:
        """``token_handles`` maps a matched token's index in ``tokens`` to its handle."""
        by_handle: dict[bytes, list[tuple[int, int]]] = defaultdict(list)
        for i, handle in token_handles.items():
            by_handle[handle].append((tokens.record_index[i], tokens.key_index[i]))
        return cls(dict(by_handle))

    def record_entries(self) -> dict[int, list[bytes]]:
        """For each matched local record index, its sorted distinct handles."""
        per_record: dict[int, set[bytes]] = defaultdict(set)
        for handle, owners in self.by_handle.items():
            for record, _ in owners:
                per_record[record].add(handle)
        return {r: sorted(hs) for r, hs in per_record.items()}


def reveal_chunks(matches: OwnMatches, rng: RandomSource) -> list[Reveal]:
    """The Reveal messages listing ``matches`` record by record in a random order (spec §6.7).

    Records are ordered by a permutation drawn as in spec §5.3 (one ``rng(8 * m)`` call over
    the matched records in ascending record-index order); a chunk holds at most
    ``MAX_RECORDS_PER_REVEAL`` entries and ``MAX_HANDLES_PER_REVEAL`` handles.
    """
    entries_by_record = matches.record_entries()
    records = sorted(entries_by_record)
    order = random_permutation(len(records), rng)
    chunks: list[Reveal] = []
    current: list[bytes] = []
    handles = 0
    for pos in order:
        entry = entries_by_record[records[int(pos)]]
        if len(entry) > L.MAX_HANDLES_PER_RECORD:
            raise ValueError("a record has more matched tokens than MAX_HANDLES_PER_RECORD")
        if len(current) == L.MAX_RECORDS_PER_REVEAL or (
            handles + len(entry) > L.MAX_HANDLES_PER_REVEAL
        ):
            chunks.append(Reveal(len(chunks), False, tuple(current)))
            current, handles = [], 0
        current.append(b"".join(entry))
        handles += len(entry)
    chunks.append(Reveal(len(chunks), True, tuple(current)))
    return chunks


class PeerRevealReader:
    """Checks the peer's Reveal chunks against our own matches and builds candidate pairs."""

    __slots__ = ("_covered", "_matches", "_next_ref", "_next_seq", "_pairs", "finished")

    def __init__(self, matches: OwnMatches) -> None:
        self._matches = matches
        self._next_seq = 0
        self._next_ref = 0
        self._covered: set[bytes] = set()
        self._pairs: dict[tuple[int, int], tuple[set[int], set[bytes]]] = {}
        self.finished = False

    @property
    def received(self) -> int:
        return self._next_seq

    def feed(self, chunk: Reveal) -> None:
        """Check one chunk (spec §6.7 receiver rules). Raises ``RemoteProtocolError``:
        ``CHUNK_REPLAYED``/``CHUNK_OUT_OF_ORDER`` for a bad ``seq``, ``BAD_REVEAL`` for a chunk
        after the final one, unsorted or repeated handles in an entry, a handle we did not
        match, or a final chunk that leaves one of our matched handles unnamed."""
        if chunk.seq < self._next_seq:
            raise RemoteProtocolError(AbortCode.CHUNK_REPLAYED, "reveal chunk replayed")
        if chunk.seq > self._next_seq:
            raise RemoteProtocolError(AbortCode.CHUNK_OUT_OF_ORDER, "reveal chunk out of order")
        if self.finished:
            raise RemoteProtocolError(AbortCode.BAD_REVEAL, "reveal chunk after the final one")
        by_handle = self._matches.by_handle
        for entry in chunk.records:
            handles = [entry[i : i + L.HANDLE_SIZE] for i in range(0, len(entry), L.HANDLE_SIZE)]
            if any(a >= b for a, b in itertools.pairwise(handles)):
                raise RemoteProtocolError(AbortCode.BAD_REVEAL, "handles not strictly ascending")
            ref = self._next_ref
            self._next_ref += 1
            for handle in handles:
                owners = by_handle.get(handle)
                if owners is None:
                    raise RemoteProtocolError(AbortCode.BAD_REVEAL, "handle not in intersection")
                self._covered.add(handle)
                for record, key in owners:
                    keys, shared = self._pairs.setdefault((record, ref), (set(), set()))
                    keys.add(key)
                    shared.add(handle)
        self._next_seq += 1
        if chunk.final:
            if len(self._covered) != len(by_handle):
                raise RemoteProtocolError(AbortCode.BAD_REVEAL, "matched handles left unnamed")
            self.finished = True

    def pairs(self, tokens: TokenSet) -> tuple[CandidatePair, ...]:
        """The candidate pairs, sorted by local record id then peer reference."""
        out = [
            CandidatePair(
                local_record_id=tokens.record_ids[record],
                peer_ref=ref,
                agreeing_keys=frozenset(tokens.key_names[k] for k in keys),
                handles=tuple(sorted(shared)),
            )
            for (record, ref), (keys, shared) in self._pairs.items()
        ]
        out.sort(key=lambda p: (p.local_record_id, p.peer_ref))
        return tuple(out)
