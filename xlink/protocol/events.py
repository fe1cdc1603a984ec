"""What a session reports to its caller: events and results (spec: xlink-psi-v1 §7, §9).

Results carry opaque handles and fresh per-session peer references only, never a peer's
record id or token (the peer never sent them).
"""

from __future__ import annotations

from dataclasses import dataclass

from xlink.protocol.abort import AbortCode

__all__ = [
    "Aborted",
    "CandidatePair",
    "CardinalityResult",
    "Event",
    "ExchangeComplete",
    "HandshakeComplete",
    "Progress",
    "PsiResult",
]


@dataclass(frozen=True, slots=True)
class CandidatePair:
    """A local record and a peer record sharing at least one matched token (spec §7.3).

    ``peer_ref`` is the peer's per-session reference for its record (its position in the
    peer's reveal); ``agreeing_keys`` names the linkage keys whose tokens matched;
    ``handles`` are the shared match handles, sorted.
    """

    local_record_id: str
    peer_ref: int
    agreeing_keys: frozenset[str]
    handles: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class PsiResult:
    """Outcome of a PSI-mode session: how many distinct token values matched and the pairs."""

    session_id: bytes
    matched_tokens: int
    pairs: tuple[CandidatePair, ...]


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
    "reveal") have been received."""

    phase: str
    done: int
    total: int


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
