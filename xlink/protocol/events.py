"""What a session reports to its caller: events and results (spec: xlink-psi-v2 §7, §9).

Results carry opaque handles and fresh per-session peer references only, never a peer's
record id or token (the peer never sent them).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from xlink.protocol.abort import AbortCode

__all__ = [
    "Aborted",
    "CandidatePair",
    "CardinalityResult",
    "Event",
    "ExchangeComplete",
    "HandshakeComplete",
    "PairTable",
    "Progress",
    "PsiResult",
]


def decode_key_set(code: int | tuple[int, ...], key_names: Sequence[str]) -> frozenset[str]:
    """The key names of a key-set code: bit ``j`` (of word ``j // 64`` for a row of words)
    stands for ``key_names[j]``."""
    words = code if isinstance(code, tuple) else (code,)
    return frozenset(
        key_names[64 * w + b] for w, word in enumerate(words) for b in range(64) if word >> b & 1
    )


@dataclass(frozen=True, slots=True)
class CandidatePair:
    """A local record and a peer record sharing at least one matched token (spec §7.3).

    ``peer_ref`` is the peer's per-session reference for its record (its position in the
    peer's reveal); ``agreeing_keys`` names the linkage keys whose tokens matched;
    ``handles`` are the shared match handles, sorted. ``local_keys`` are the keys the local
    record has at least one token for, ``peer_keys`` those of the peer record (from the key
    presence of its reveal entry, spec §6.7); both contain ``agreeing_keys``.
    """

    local_record_id: str
    peer_ref: int
    agreeing_keys: frozenset[str]
    handles: tuple[bytes, ...]
    local_keys: frozenset[str] = frozenset()
    peer_keys: frozenset[str] = frozenset()

    @property
    def disagreeing_keys(self) -> frozenset[str]:
        """Keys both records have tokens for that did not agree (a key missing on either side
        is neither agreeing nor disagreeing)."""
        return (self.local_keys & self.peer_keys) - self.agreeing_keys


class PairTable:
    """Candidate pairs in columns, in result order (local record id, then peer reference).

    Built by the session from numpy arrays; no Python object exists per pair until one is asked
    for. ``record_ids`` and ``key_names`` are the local :class:`~xlink.linkage.tokens.TokenSet`'s
    own (not copied); ``handles`` is the ``(m, 16)`` array of matched handles in ascending byte
    order; pair ``i`` is local record ``record[i]``, peer reference ``ref[i]``, agreeing keys
    ``patterns[pattern[i]]`` and handles ``handles[handle_index[offsets[i]:offsets[i + 1]]]``.
    The keys each record has are held per record, not per pair: ``local_key_sets[record[i]]``
    and ``peer_key_sets[ref[i]]`` are key-set codes (bit ``j`` for ``key_names[j]``: an
    unsigned integer, or a row of 64-bit words beyond 64 keys).
    """

    __slots__ = (
        "handle_index",
        "handles",
        "key_names",
        "local_key_sets",
        "offsets",
        "pattern",
        "patterns",
        "peer_key_sets",
        "record",
        "record_ids",
        "ref",
    )

    def __init__(
        self,
        *,
        record_ids: Sequence[str],
        key_names: tuple[str, ...],
        handles: npt.NDArray[np.uint8],
        record: npt.NDArray[np.int64],
        ref: npt.NDArray[np.int64],
        pattern: npt.NDArray[np.int64],
        patterns: tuple[frozenset[str], ...],
        offsets: npt.NDArray[np.int64],
        handle_index: npt.NDArray[np.int64],
        local_key_sets: npt.NDArray[np.unsignedinteger[Any]],
        peer_key_sets: npt.NDArray[np.unsignedinteger[Any]],
    ) -> None:
        if not len(record) == len(ref) == len(pattern) == len(offsets) - 1:
            raise ValueError("PairTable columns have different lengths")
        self.record_ids = record_ids
        self.key_names = key_names
        self.handles = handles
        self.record = record
        self.ref = ref
        self.pattern = pattern
        self.patterns = patterns
        self.offsets = offsets
        self.handle_index = handle_index
        self.local_key_sets = local_key_sets
        self.peer_key_sets = peer_key_sets

    @classmethod
    def empty(cls, record_ids: Sequence[str], key_names: tuple[str, ...]) -> PairTable:
        none = np.zeros(0, dtype=np.int64)
        return cls(
            record_ids=record_ids,
            key_names=key_names,
            handles=np.zeros((0, 16), dtype=np.uint8),
            record=none,
            ref=none,
            pattern=none,
            patterns=(),
            offsets=np.zeros(1, dtype=np.int64),
            handle_index=none,
            local_key_sets=np.zeros(len(record_ids), dtype=np.uint8),
            peer_key_sets=np.zeros(0, dtype=np.uint8),
        )

    def __len__(self) -> int:
        return len(self.record)

    def __iter__(self) -> Iterator[CandidatePair]:
        data = self.handles.tobytes()
        offsets = self.offsets.tolist()
        handle_index = self.handle_index.tolist()
        ids, patterns = self.record_ids, self.patterns
        local_codes = self.local_key_sets[self.record].tolist()
        peer_codes = self.peer_key_sets[self.ref].tolist()
        cache: dict[object, frozenset[str]] = {}

        def keys(code: Any) -> frozenset[str]:
            code = tuple(code) if isinstance(code, list) else code  # a row of words
            found = cache.get(code)
            if found is None:
                found = cache[code] = decode_key_set(code, self.key_names)
            return found

        columns = (self.record.tolist(), self.ref.tolist(), self.pattern.tolist())
        for i, (record, ref, pattern) in enumerate(zip(*columns, strict=True)):
            yield CandidatePair(
                local_record_id=ids[record],
                peer_ref=ref,
                agreeing_keys=patterns[pattern],
                handles=tuple(
                    data[16 * h : 16 * h + 16] for h in handle_index[offsets[i] : offsets[i + 1]]
                ),
                local_keys=keys(local_codes[i]),
                peer_keys=keys(peer_codes[i]),
            )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PairTable):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class PsiResult:
    """Outcome of a PSI-mode session: how many distinct token values matched and the candidate
    pairs (spec §7.3), held compactly in a :class:`PairTable`.

    ``revealed`` is local knowledge the peer does not have: our own record ids in the order of
    our Reveal, so ``revealed[r]`` is the record the peer knows as reference ``r``.

    ``pair_count`` and :meth:`iter_pairs` cost nothing per pair up front; ``pairs`` builds the
    whole tuple of :class:`CandidatePair` on each access (same values and order as
    :meth:`iter_pairs`). Equal results have the same session id, count and pairs.
    """

    session_id: bytes
    matched_tokens: int
    table: PairTable
    revealed: tuple[str, ...] = ()

    @property
    def pair_count(self) -> int:
        return len(self.table)

    def iter_pairs(self) -> Iterator[CandidatePair]:
        """The candidate pairs one by one, sorted by local record id then peer reference."""
        return iter(self.table)

    @property
    def pairs(self) -> tuple[CandidatePair, ...]:
        """All candidate pairs, sorted by local record id then peer reference (a new tuple)."""
        return tuple(self.table)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PsiResult):
            return NotImplemented
        return (
            self.session_id == other.session_id
            and self.matched_tokens == other.matched_tokens
            and self.table == other.table
            and self.revealed == other.revealed
        )

    def __hash__(self) -> int:
        return hash((self.session_id, self.matched_tokens, self.pair_count))

    def __repr__(self) -> str:
        return (
            f"PsiResult(session_id={self.session_id.hex()!r}, "
            f"matched_tokens={self.matched_tokens}, pair_count={self.pair_count})"
        )


@dataclass(frozen=True, slots=True)
class CardinalityResult:
    """Outcome of a cardinality-mode session: only the size of the intersection (spec §7.4)."""

    session_id: bytes
    intersection_size: int


@dataclass(frozen=True, slots=True)
class HandshakeComplete:
    """Both Hellos agree; ``session_id`` is derived from the transcript (spec §7.1)."""

    session_id: bytes
    peer_id: str
    peer_padded_size: int


@dataclass(frozen=True, slots=True)
class Progress:
    """``done`` of ``total`` chunks of ``phase`` ("peer_elements", "own_elements",
    "reveal") have been received. ``total`` is None while it is not known: the number of the
    peer's Reveal chunks is known only once its final chunk has arrived."""

    phase: str
    done: int
    total: int | None


@dataclass(frozen=True, slots=True)
class ExchangeComplete:
    """The result is known. The session is ``done`` once its last message has been taken."""

    result: PsiResult | CardinalityResult


@dataclass(frozen=True, slots=True)
class Aborted:
    """The session ended early; ``by_peer`` says the peer sent the Abort."""

    code: AbortCode
    detail: str
    by_peer: bool


Event = HandshakeComplete | Progress | ExchangeComplete | Aborted
