"""Every size limit of xlink-psi-v2, in one place (spec: xlink-psi-v2 §6.3).

The limits are part of the protocol: a message exceeding one is rejected, never truncated.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "COMMIT_SIZE",
    "DIGEST_SIZE",
    "HANDLE_SIZE",
    "MAX_CHUNK_ELEMENTS",
    "MAX_CONFIRM_POINTS",
    "MAX_DETAIL_BYTES",
    "MAX_HANDLES_PER_RECORD",
    "MAX_HANDLES_PER_REVEAL",
    "MAX_MESSAGE_SIZE",
    "MAX_MOU_ID_BYTES",
    "MAX_PADDING_BUCKET",
    "MAX_PAIR_HANDLES",
    "MAX_PARTY_ID_BYTES",
    "MAX_RECORDS_PER_REVEAL",
    "MAX_SEQ",
    "MAX_SET_SIZE",
    "MIN_REVEAL_CAP",
    "NONCE_SIZE",
    "POINT_SIZE",
    "PRESENCE_BYTES_PER_RECORD",
    "PROTOCOL_VERSION",
    "REBLINDED_SIZE",
    "REVEAL_ROWS_PER_ENTRY",
    "SALT_SIZE",
]

PROTOCOL_VERSION: Final = 2
"""The first byte of every message (xlink-psi-v2). A v1 message (``0x01``) is refused with
``UNSUPPORTED_VERSION``."""

REBLINDED_SIZE: Final = 16
"""Bytes of one re-blinded value on the wire: a direction-tagged hash, never a group element."""

MAX_CONFIRM_POINTS: Final = 8192
"""Most points in one ConfirmRequest (and answers in one ConfirmResponse: 64 bytes each)."""

POINT_SIZE: Final = 32
"""An edwards25519 point in the confirmation round and label evaluation (spec §4.4)."""

MIN_REVEAL_CAP: Final = 1 << 16
"""A Reveal may name at most ``max(N, MIN_REVEAL_CAP)`` records, ``N`` its sender's padded size
(spec §6.7): records that share all their matched values can outnumber ``N`` a little."""

REVEAL_ROWS_PER_ENTRY: Final = 64
"""A Reveal may make the receiver hold at most ``REVEAL_ROWS_PER_ENTRY * max(N,
MIN_REVEAL_CAP)`` rows, a row being one of the receiver's tokens (of its revealed records,
under a minimal reveal) carrying a handle an entry names (spec §6.7). An honest Reveal makes
one per candidate pair and shared value: 1.1 per element of ``N`` on the 100,000-record
synthetic lists, more where one value is shared by many records on both sides (20 x 30,000
for a family name and city both lists hold often: 600,000 rows for ``N`` below 65,536); a
Reveal that names the same handles in entry after entry would otherwise make the receiver
build entries x handles x owners (26 million pairs, 4.6 GB)."""

COMMIT_SIZE: Final = 32
SALT_SIZE: Final = 32

MAX_MESSAGE_SIZE: Final = 1 << 20
"""Largest message (frame payload) in bytes: 1 MiB."""

MAX_PARTY_ID_BYTES: Final = 64
MAX_MOU_ID_BYTES: Final = 128
MAX_DETAIL_BYTES: Final = 256
NONCE_SIZE: Final = 32
DIGEST_SIZE: Final = 32
HANDLE_SIZE: Final = 16

MAX_SET_SIZE: Final = 1 << 24
"""Largest padded set a party may declare (16,777,216 elements)."""

MAX_PADDING_BUCKET: Final = 1 << 20

MAX_CHUNK_ELEMENTS: Final = 16384
"""Largest number of elements in one Elements or Reblinded message (512 KiB of elements)."""

MAX_SEQ: Final = MAX_SET_SIZE
"""Largest chunk sequence number accepted by the codec (the session enforces the exact bound)."""

MAX_RECORDS_PER_REVEAL: Final = 4096
MAX_HANDLES_PER_RECORD: Final = 1024
MAX_PAIR_HANDLES: Final = 255
"""A decided pair names at most this many of its shared handles, its first in ascending order
(xlink-release-v1 §10.2): a release's label names them in one byte. A pair sharing more (a
record with many aliases) is labelled with those; the peer still needs all their tokens."""
MAX_HANDLES_PER_REVEAL: Final = 16384
PRESENCE_BYTES_PER_RECORD: Final = 32
"""Most bytes of key presence per Reveal entry: ``ceil(K / 8)`` for a schema of ``K <= 255``
keys."""
