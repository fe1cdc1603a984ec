"""What a PSI session is configured with (spec: xlink-psi-v2 §4, §5.1).

:class:`SessionConfig` holds what both parties must agree on (mode, suite, MOU, schema,
padding bucket) plus the local identity and chunking; the Hello carries all of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Final

from xlink.crypto.suite import DEFAULT_SUITE
from xlink.protocol import limits as L

if TYPE_CHECKING:
    from xlink.protocol.bound import RevealBound

__all__ = [
    "CLUSTER_CHUNK_SIZE",
    "DEFAULT_CHUNK_SIZE",
    "Mode",
    "Role",
    "SessionConfig",
    "chunk_size_for",
    "padded_size",
]

DEFAULT_CHUNK_SIZE: Final = 2048
"""Elements per Elements message for a party working on its own machine."""
CLUSTER_CHUNK_SIZE: Final = L.MAX_CHUNK_ELEMENTS
"""Elements per Elements message for a party working on a cluster (:func:`chunk_size_for`)."""


def chunk_size_for(on_cluster: bool) -> int:
    """The chunk size of a party: :data:`DEFAULT_CHUNK_SIZE`, or :data:`CLUSTER_CHUNK_SIZE`
    when its group operations run on a cluster. A chunk is cut into one slice per worker and
    the party waits for each chunk's slices, so on a cluster small chunks make slices too small
    to pay for their trip and keep the party's own process busy (docs/PERFORMANCE.md, "Beyond
    one machine"). The Hello declares the chunk size (spec §5.1), so the peer learns which of
    the two a party uses, and nothing more: not its number of cores or workers."""
    return CLUSTER_CHUNK_SIZE if on_cluster else DEFAULT_CHUNK_SIZE


class Role(Enum):
    """Who speaks first: the initiator sends the first Hello (spec §5)."""

    INITIATOR = 0
    RESPONDER = 1


class Mode(Enum):
    """What the session reveals (spec §3): matched tokens and candidate pairs, or only the
    size of the intersection."""

    PSI = 1
    CARDINALITY = 2


def padded_size(n: int, bucket: int) -> int:
    """The padded set size for ``n`` distinct elements: the smallest positive multiple of
    ``bucket`` that is ``>= n`` (spec §5.3). An empty set still sends one bucket of dummies."""
    if n < 0 or bucket < 1:
        raise ValueError("n must be >= 0 and bucket >= 1")
    return bucket * max(1, -(-n // bucket))


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """One party's session parameters. Raises ``ValueError`` when a field is out of range.

    ``mou_digest`` and ``schema_digest`` are 32-byte digests of the signed MOU and of the
    linkage schema; ``padding_bucket`` comes from the MOU; ``chunk_size`` is local (the peer
    learns it from the Hello) and bounds both message size and the work per call;
    ``reveal_chunk_records`` is local too (the peer accepts any chunking): the most record
    entries this side puts in one Reveal message (spec §6.7).

    ``max_peer_set_size`` and ``max_own_set_size`` come from the MOU: the largest padded set
    each party may declare; a larger peer Hello aborts with ``BAD_SET_SIZE`` (spec §6.4), a
    larger own set is refused before anything is sent. ``reveal_bound`` (the schema's weights
    and the MOU's threshold) makes the Reveal minimal: only records that can still reach the
    threshold are listed (spec §6.7); ``None`` lists every matched record (what fitting weights
    on a development split needs).
    """

    role: Role
    mode: Mode
    party_id: str
    peer_id: str
    mou_id: str
    mou_digest: bytes
    schema_digest: bytes
    padding_bucket: int = 1024
    chunk_size: int = DEFAULT_CHUNK_SIZE
    suite_id: int = DEFAULT_SUITE.suite_id
    reveal_chunk_records: int = L.MAX_RECORDS_PER_REVEAL
    max_peer_set_size: int = L.MAX_SET_SIZE
    max_own_set_size: int = L.MAX_SET_SIZE
    reveal_bound: RevealBound | None = None

    def __post_init__(self) -> None:
        for name in ("party_id", "peer_id"):
            size = _utf8_len(getattr(self, name))
            if not 1 <= size <= L.MAX_PARTY_ID_BYTES:
                raise ValueError(f"{name} must be 1..{L.MAX_PARTY_ID_BYTES} UTF-8 bytes")
        if self.party_id == self.peer_id:
            raise ValueError("party_id and peer_id must differ")
        if not 1 <= _utf8_len(self.mou_id) <= L.MAX_MOU_ID_BYTES:
            raise ValueError(f"mou_id must be 1..{L.MAX_MOU_ID_BYTES} UTF-8 bytes")
        for name in ("mou_digest", "schema_digest"):
            value = getattr(self, name)
            if not isinstance(value, bytes) or len(value) != L.DIGEST_SIZE:
                raise ValueError(f"{name} must be {L.DIGEST_SIZE} bytes")
        if not 1 <= self.padding_bucket <= L.MAX_PADDING_BUCKET:
            raise ValueError(f"padding_bucket must be 1..{L.MAX_PADDING_BUCKET}")
        if not 1 <= self.chunk_size <= L.MAX_CHUNK_ELEMENTS:
            raise ValueError(f"chunk_size must be 1..{L.MAX_CHUNK_ELEMENTS}")
        if not 1 <= self.reveal_chunk_records <= L.MAX_RECORDS_PER_REVEAL:
            raise ValueError(f"reveal_chunk_records must be 1..{L.MAX_RECORDS_PER_REVEAL}")
        for name in ("max_peer_set_size", "max_own_set_size"):
            if not 1 <= getattr(self, name) <= L.MAX_SET_SIZE:
                raise ValueError(f"{name} must be 1..{L.MAX_SET_SIZE}")
        if not isinstance(self.role, Role) or not isinstance(self.mode, Mode):
            raise ValueError("role and mode must be Role and Mode members")
