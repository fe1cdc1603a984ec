"""Chunk checks, matching of the doubly-blinded sets and match handles (spec: xlink-psi-v2
§5.3, §6.5-§6.6, §7.1-§7.2).

Works on numpy columns: the peer's set is sorted in place once (used for both the duplicate check
and membership), and the own matched values become handles without a Python object per match
being kept.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from xlink.crypto.suite import InvalidElement
from xlink.errors import RemoteProtocolError
from xlink.protocol import _keys
from xlink.protocol._reveal import OwnMatches
from xlink.protocol._sets import Index, Rows, lookup_sorted, member_mask_sorted
from xlink.protocol.abort import AbortCode
from xlink.protocol.limits import HANDLE_SIZE, REBLINDED_SIZE

__all__ = [
    "check_seq",
    "chunk_len",
    "element_error",
    "matched_handles",
    "member_mask_sorted",
    "own_matches",
]

_BLOCK: Final = 1 << 14


def chunk_len(total: int, chunk: int, seq: int) -> int:
    """Elements in chunk ``seq`` of a set of ``total`` cut into chunks of ``chunk`` (§5.3)."""
    return min(chunk, total - seq * chunk)


def check_seq(seq: int, expected: int, total: int, what: str) -> None:
    """The sequence checks of an Elements or Reblinded chunk (spec §6.5, §6.6)."""
    if seq < expected:
        raise RemoteProtocolError(AbortCode.CHUNK_REPLAYED, f"{what} chunk replayed")
    if seq > expected:
        raise RemoteProtocolError(AbortCode.CHUNK_OUT_OF_ORDER, f"{what} chunk out of order")
    if seq >= total:
        raise RemoteProtocolError(AbortCode.WRONG_COUNT, f"more {what} chunks than declared")


def element_error(exc: InvalidElement) -> RemoteProtocolError:
    """The abort for an element that fails the checks of spec §4.3."""
    if exc.identity:
        return RemoteProtocolError(AbortCode.IDENTITY_ELEMENT, f"element {exc.index}: {exc.reason}")
    return RemoteProtocolError(AbortCode.INVALID_ELEMENT, f"element {exc.index}: {exc.reason}")


def matched_handles(
    transcript: bytes,
    role: int,
    own_tags: Rows,
    peer_rows: Rows,
    perm: Index,
    distinct_count: int,
) -> tuple[bytearray, npt.NDArray[np.int64]]:
    """The handles of the own matched token values (spec §7.2), concatenated, and the index of
    each value among the distinct ones.

    ``own_tags[j]`` is the peer's answer for slot ``j`` of the own sequence (tagged with our
    role); ``peer_rows`` holds, sorted, one row per peer element: its value tagged with our
    role, then tagged with the peer's. Slot ``j`` carries source ``perm[j]``, a distinct token
    value when below ``distinct_count`` (dummies are ignored).
    """
    found = lookup_sorted(own_tags, peer_rows)
    slots = np.flatnonzero(found >= 0)
    sources = perm[slots].astype(np.int64)
    real = sources < distinct_count
    slots, sources = slots[real], sources[real]
    rows = found[slots]
    handles = bytearray(HANDLE_SIZE * len(slots))
    half = REBLINDED_SIZE
    for start in range(0, len(slots), _BLOCK):
        block = peer_rows[rows[start : start + _BLOCK]].tobytes()
        for i in range(len(block) // (2 * half)):
            ours = block[2 * half * i : 2 * half * i + half]
            theirs = block[2 * half * i + half : 2 * half * (i + 1)]
            pair = (ours, theirs) if role == 0 else (theirs, ours)
            at = HANDLE_SIZE * (start + i)
            handles[at : at + HANDLE_SIZE] = _keys.match_handle(transcript, *pair)
    return handles, sources


def own_matches(
    handles: bytearray,
    sources: npt.NDArray[np.int64],
    inverse: Index,
    distinct_count: int,
) -> OwnMatches:
    """The own matched tokens by handle; ``inverse`` maps each token of the TokenSet to its
    distinct value."""
    return OwnMatches.build(handles, sources, inverse, distinct_count)
