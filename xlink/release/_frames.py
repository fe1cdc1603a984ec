"""The frames of release transfer v3 (xlink-release-v1 §10): the magic and type byte, their
checks, the decided-pairs digest both sides compare first (§10.1) and the list of decided pairs
the label evaluation goes through (§10.2). The state machine that moves them is
:mod:`xlink.release.transfer`, which re-exports everything here."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from enum import IntEnum
from typing import Final

from xlink.errors import TransferError
from xlink.protocol.abort import AbortCode
from xlink.protocol.config import Role
from xlink.protocol.limits import MAX_MESSAGE_SIZE

__all__ = [
    "DIGEST_SIZE",
    "DST_DECIDED_PAIRS",
    "HEADER",
    "LABEL_CHUNK",
    "MAGIC_FAMILY",
    "MAX_RECEIPT_SIZE",
    "MAX_REFUSAL_SIZE",
    "POINT_SIZE",
    "RELEASE_MAGIC",
    "SENDER_BYTE",
    "U32",
    "FrameType",
    "check_magic",
    "decided_pairs_digest",
    "label_pairs",
    "split_frame",
    "transfer_frame",
]

MAGIC_FAMILY: Final = b"\xf0XR"
"""First bytes of a frame of any version of the release transfer."""
RELEASE_MAGIC: Final = MAGIC_FAMILY + b"\x03"
"""First bytes of every release-transfer-v3 frame: ``f0 58 52`` then the version byte ``03``
(v2, ``02``, had a decided-pairs digest that did not name its sender, so a peer could send
ours back; v1, ``01``, labelled each handle of a pair apart; v0 had ``54``, "T"). A PSI
message starts with its protocol version byte (0x02), so the two kinds of frame cannot be
confused."""

DST_DECIDED_PAIRS: Final = b"xlink-release/decided-pairs"
"""The label of :func:`decided_pairs_digest`."""

LABEL_CHUNK: Final = 16384
"""Most points in one LABELS or LABEL_ANSWERS frame (512 KiB)."""

MAX_REFUSAL_SIZE: Final = 200
"""Longest reason of a REFUSED frame, in bytes."""

MAX_RECEIPT_SIZE: Final = 4096
"""Longest signed receipt (xlink-release-v1 §8) a RECEIPT frame, or a query RECEIPTS answer,
may carry, in bytes: a receipt with its audit checkpoint is well under a kilobyte, and a larger
one would only be a partner making us hold its padding."""

U32: Final = struct.Struct(">I")
DIGEST_SIZE: Final = 32
_SESSION_ID_SIZE: Final = 16
POINT_SIZE: Final = 32
HEADER: Final = len(RELEASE_MAGIC) + 1


class FrameType(IntEnum):
    """The type byte after :data:`RELEASE_MAGIC` (xlink-release-v1 §10)."""

    COUNT = 1
    RELEASE = 2
    END = 3
    RECEIPT = 4
    REFUSED = 5
    RECEIPTS_END = 6
    DIGEST = 7
    LABELS = 8
    LABEL_ANSWERS = 9


SENDER_BYTE: Final = {Role.INITIATOR: 0x01, Role.RESPONDER: 0x02}
"""The byte that names the sender of a DIGEST (xlink-release-v1 §10.1)."""


def decided_pairs_digest(
    session_id: bytes, pairs: Iterable[Iterable[bytes]], *, sender: Role
) -> bytes:
    """The digest a side sends of its decisions before any release (xlink-release-v1 §10.1)::

        SHA-256(lp("xlink-release/decided-pairs") || u8(sender) || session_id || u32(n)
                || for each pair, in ascending order of its sorted handles' concatenation:
                   u32(h) || handle_1 || ... || handle_h)

    with ``sender`` 1 for the PSI session's initiator and 2 for its responder
    (:data:`SENDER_BYTE`), and each pair's ``h`` handles sorted ascending; ``pairs`` are the
    decided matches' shared handles (:attr:`xlink.decide.DecidedMatch.handles`), in any order.
    Two sides that decided alike send different digests, each the other's to expect: a peer
    that sends ours back is told from one that agrees. ``ValueError`` for a session id that
    is not 16 bytes, a handle that is not bytes or a sender that is not a :class:`Role`.
    """
    if type(session_id) is not bytes or len(session_id) != _SESSION_ID_SIZE:
        raise ValueError(f"session_id must be {_SESSION_ID_SIZE} bytes")
    if not isinstance(sender, Role):
        raise ValueError("sender must be a Role")
    encoded = []
    for pair in pairs:
        handles = list(pair)
        if any(type(h) is not bytes for h in handles):
            raise ValueError("handles must be bytes")
        encoded.append((b"".join(sorted(handles)), len(handles)))
    encoded.sort()
    digest = hashlib.sha256(U32.pack(len(DST_DECIDED_PAIRS)) + DST_DECIDED_PAIRS)
    digest.update(bytes([SENDER_BYTE[sender]]))
    digest.update(session_id)
    digest.update(U32.pack(len(encoded)))
    for joined, count in encoded:
        digest.update(U32.pack(count))
        digest.update(joined)
    return digest.digest()


def label_pairs(pairs: Iterable[Iterable[bytes]]) -> list[tuple[bytes, ...]]:
    """The decided pairs in the order both sides use for the label evaluation
    (xlink-release-v1 §10.2): each pair's handles ascending, the pairs in the order of
    :func:`decided_pairs_digest`, a pair listed twice (two matches on the same handles) once."""
    return sorted({tuple(sorted(pair)) for pair in pairs}, key=b"".join)


def transfer_frame(kind: FrameType, body: bytes = b"") -> bytes:
    """A release transfer v3 frame: :data:`RELEASE_MAGIC`, the type byte, ``body``."""
    return RELEASE_MAGIC + bytes([kind]) + body


def check_magic(frame: bytes) -> None:
    """Raise :class:`TransferError` unless ``frame`` starts with :data:`RELEASE_MAGIC` and a
    type byte: ``UNSUPPORTED_VERSION`` for another version of the transfer (``f0 58 52``, then
    a version byte other than ``03``), ``UNEXPECTED_MESSAGE`` for anything else."""
    if (
        frame.startswith(MAGIC_FAMILY)
        and len(frame) > len(MAGIC_FAMILY)  # a version byte (none: too short, below)
        and not frame.startswith(RELEASE_MAGIC)
    ):
        raise TransferError("not release transfer v3", AbortCode.UNSUPPORTED_VERSION)
    if not frame.startswith(RELEASE_MAGIC) or len(frame) < HEADER:
        raise TransferError("not a release transfer frame")


def split_frame(frame: bytes) -> tuple[FrameType, bytes]:
    """The type and body of a release transfer v3 frame. Raises :class:`TransferError`:
    ``FRAME_TOO_LARGE`` above ``MAX_MESSAGE_SIZE``, the errors of :func:`check_magic`, and
    ``UNEXPECTED_MESSAGE`` for an unknown type byte."""
    if len(frame) > MAX_MESSAGE_SIZE:
        raise TransferError("frame larger than MAX_MESSAGE_SIZE", AbortCode.FRAME_TOO_LARGE)
    check_magic(frame)
    try:
        kind = FrameType(frame[len(RELEASE_MAGIC)])
    except ValueError:
        raise TransferError(f"unknown release transfer frame {frame[len(RELEASE_MAGIC)]}") from None
    return kind, frame[HEADER:]
