"""Domain-separation labels and the transcript-derived values (spec: xlink-psi-v1 §4.2, §7.1).

Every hash in the protocol starts with its own length-prefixed label, so that no value computed
for one purpose can be mistaken for another.
"""

from __future__ import annotations

import hashlib
from typing import Final

from xlink.protocol.limits import HANDLE_SIZE

__all__ = [
    "DST_HANDLE",
    "DST_SESSION_ID",
    "DST_TRANSCRIPT",
    "SESSION_ID_SIZE",
    "hash_to_group_dst",
    "match_handle",
    "session_id_of",
    "transcript_hash",
]

DST_HASH_TO_GROUP_PREFIX: Final = b"xlink-psi-v1:"
DST_TRANSCRIPT: Final = b"xlink-psi-v1/transcript"
DST_SESSION_ID: Final = b"xlink-psi-v1/session-id"
DST_HANDLE: Final = b"xlink-psi-v1/match-handle"
SESSION_ID_SIZE: Final = 16


def _lp(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def hash_to_group_dst(suite_name: str, mou_digest: bytes) -> bytes:
    """The hash-to-group DST for one MOU: ``"xlink-psi-v1:" || suite name || ":" || digest``
    (spec §4.2). Tokens of different MOUs land on unrelated group elements."""
    dst = DST_HASH_TO_GROUP_PREFIX + suite_name.encode("ascii") + b":" + mou_digest
    if len(dst) > 255:
        raise ValueError("DST longer than 255 bytes")
    return dst


def transcript_hash(hello_initiator: bytes, hello_responder: bytes) -> bytes:
    """SHA-256 over both Hello messages (whole messages, version byte included), in role
    order (spec §7.1)."""
    return hashlib.sha256(
        _lp(DST_TRANSCRIPT) + _lp(hello_initiator) + _lp(hello_responder)
    ).digest()


def session_id_of(transcript: bytes) -> bytes:
    """The 16-byte session id both parties derive from the transcript hash (spec §7.1)."""
    return hashlib.sha256(_lp(DST_SESSION_ID) + transcript).digest()[:SESSION_ID_SIZE]


def match_handle(transcript: bytes, doubly_blinded: bytes) -> bytes:
    """The 16-byte opaque handle of one matched value (spec §7.2): bound to this session's
    transcript, so handles from two sessions never link."""
    return hashlib.sha256(_lp(DST_HANDLE) + transcript + doubly_blinded).digest()[:HANDLE_SIZE]
