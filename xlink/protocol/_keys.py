"""Domain-separation labels and the transcript-derived values (spec: xlink-psi-v2 §4.2, §4.5, §7.1).

Every hash in the protocol starts with its own length-prefixed label, so that no value computed
for one purpose can be mistaken for another.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Final

from xlink.crypto.workers import direction_tags
from xlink.protocol.limits import HANDLE_SIZE, REBLINDED_SIZE

__all__ = [
    "DST_COMMIT",
    "DST_CONFIRM_BLIND",
    "DST_HANDLE",
    "DST_HASH_CACHE",
    "DST_LABEL_BLIND",
    "DST_LABEL_PAIR",
    "DST_OPRF_OUTPUT",
    "DST_REBLINDED",
    "DST_SESSION_ID",
    "DST_TRANSCRIPT",
    "LABEL_INPUT_SIZE",
    "SESSION_ID_SIZE",
    "add_reveal_chunk",
    "hash_to_group_dst",
    "label_input",
    "match_handle",
    "oprf_output",
    "reblinded_hasher",
    "reblinded_prefix",
    "reveal_commitment",
    "session_id_of",
    "transcript_hash",
]

DST_HASH_TO_GROUP_PREFIX: Final = b"xlink-psi-v1:"
DST_TRANSCRIPT: Final = b"xlink-psi-v2/transcript"
DST_SESSION_ID: Final = b"xlink-psi-v2/session-id"
DST_HANDLE: Final = b"xlink-psi-v2/match-handle"
DST_REBLINDED: Final = b"xlink-psi-v2/reblinded"
DST_COMMIT: Final = b"xlink-psi-v2/reveal-commit"
DST_OPRF_OUTPUT: Final = b"xlink-psi-v2/oprf-output"
DST_CONFIRM_BLIND: Final = b"xlink-psi-v2/confirm-blind"
DST_LABEL_BLIND: Final = b"xlink-psi-v2/label-blind"
DST_LABEL_PAIR: Final = b"xlink-psi-v2/label-pair"
LABEL_INPUT_SIZE: Final = 32  # a SHA-256 digest
DST_HASH_CACHE: Final = b"xlink-psi-v2/hash-cache"  # local only: names a cache file (§4.1)
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


def reblinded_prefix(transcript: bytes, owner_role: int) -> bytes:
    """What a tag's SHA-256 input starts with (spec §4.5): ``lp(DST_REBLINDED) || transcript ||
    u8(owner_role)``; the doubly-blinded value follows."""
    return _lp(DST_REBLINDED) + transcript + bytes([owner_role])


def reblinded_hasher(transcript: bytes, owner_role: int) -> Callable[[bytes], bytes]:
    """The function that turns a doubly-blinded value ``v`` into what crosses the wire (or is
    compared) for an element owned by the party of ``owner_role`` (0 initiator, 1 responder):
    ``SHA-256(lp(DST_REBLINDED) || transcript || u8(owner_role) || v)[:16]`` (spec §4.5).

    The direction tag is what stops reflection: the values a party computes for the peer's
    elements are tagged with the peer's role, the values it expects for its own with its own,
    so nothing it sends can come back as a valid answer to its own elements."""
    prefix = (reblinded_prefix(transcript, owner_role),)

    def tag(value: bytes) -> bytes:
        return direction_tags(value, prefix, REBLINDED_SIZE)

    return tag


def match_handle(transcript: bytes, tag_initiator: bytes, tag_responder: bytes) -> bytes:
    """The 16-byte opaque handle of one matched value (spec §7.2), from its two direction tags
    in role order: bound to this session's transcript, so handles of two sessions never link."""
    return hashlib.sha256(_lp(DST_HANDLE) + transcript + tag_initiator + tag_responder).digest()[
        :HANDLE_SIZE
    ]


def reveal_commitment(transcript: bytes, sender_role: int) -> hashlib._Hash:
    """The running hash a Reveal commitment is computed with (spec §6.11): it starts with
    ``lp(DST_COMMIT) || transcript || u8(sender_role)``; each Reveal chunk then adds
    ``u32(entries) || lp(entry)... || lp(presence)`` and the final chunk's salt ends it."""
    return hashlib.sha256(_lp(DST_COMMIT) + transcript + bytes([sender_role]))


def add_reveal_chunk(h: hashlib._Hash, records: tuple[bytes, ...], presence: bytes) -> None:
    """Feed one Reveal chunk into a commitment hash (spec §6.11)."""
    h.update(len(records).to_bytes(4, "big"))
    for entry in records:
        h.update(_lp(entry))
    h.update(_lp(presence))


def label_input(tokens: Sequence[bytes]) -> bytes:
    """The one value a decided pair's label is evaluated on (spec §7.5): ``SHA-256(
    lp(DST_LABEL_PAIR) || u32(k) || lp(t_1) || ... || lp(t_k))`` over the tokens behind the
    pair's ``k`` handles in ascending handle order. Only a holder of every one of them can
    compute it. ``ValueError`` for no token (a pair has at least one handle)."""
    if not tokens:
        raise ValueError("a label input needs at least one token")
    h = hashlib.sha256(_lp(DST_LABEL_PAIR) + len(tokens).to_bytes(4, "big"))
    for token in tokens:
        h.update(_lp(token))
    return h.digest()


def oprf_output(transcript: bytes, token: bytes, evaluated: bytes) -> bytes:
    """A finalized OPRF output ``SHA-256(lp(DST_OPRF_OUTPUT) || transcript || lp(token) ||
    [s]Q)``: only a party that holds ``token`` can compute it, and only with the evaluator's
    help (spec §7.5)."""
    return hashlib.sha256(_lp(DST_OPRF_OUTPUT) + transcript + _lp(token) + evaluated).digest()
