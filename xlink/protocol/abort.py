"""Abort codes: the machine-readable reason a session ended early (spec: xlink-psi-v2 §8).

The numeric values are on the wire (in the ``Abort`` message) and in audit entries, so they
are part of the protocol and never renumbered.
"""

from __future__ import annotations

import unicodedata
from enum import IntEnum

from xlink.protocol import limits as L

__all__ = ["AbortCode", "sanitize_detail"]


class AbortCode(IntEnum):
    """Why a session was aborted. See protocols/xlink-psi-v2.md §8 for each code's meaning."""

    # Framing and encoding.
    MALFORMED_MESSAGE = 1
    FRAME_TOO_LARGE = 2
    TRUNCATED = 3
    UNSUPPORTED_VERSION = 4
    UNEXPECTED_MESSAGE = 5
    UNKNOWN_MESSAGE = 6
    # Handshake agreement.
    UNSUPPORTED_SUITE = 10
    MOU_MISMATCH = 11
    SCHEMA_MISMATCH = 12
    PARTY_MISMATCH = 13
    MODE_MISMATCH = 14
    BAD_SET_SIZE = 15
    ROLE_MISMATCH = 16
    # Exchange.
    INVALID_ELEMENT = 20
    IDENTITY_ELEMENT = 21
    DUPLICATE_ELEMENT = 22
    WRONG_COUNT = 23
    CHUNK_OUT_OF_ORDER = 24
    CHUNK_REPLAYED = 25
    BAD_REVEAL = 26
    CONFIRMATION_FAILED = 27
    BAD_COMMITMENT = 28
    # Session level.
    PEER_ABORTED = 40
    TIMEOUT = 41
    CONNECTION_LOST = 42
    INTERNAL_ERROR = 50
    # Release transfer (xlink-release-v1 §10): never in a PSI Abort message.
    DECISION_MISMATCH = 60
    TOO_MANY_RELEASES = 61


def sanitize_detail(detail: str) -> str:
    """An Abort detail made safe to log (spec §6.8): every control, format, surrogate,
    private-use or unassigned character (Unicode categories C*, which include the C0 and C1
    controls, DEL and the bidirectional overrides) and every line or paragraph separator is
    replaced by a ``\\xNN``, ``\\uNNNN`` or ``\\UNNNNNNNN`` escape; then the text is cut to
    ``MAX_DETAIL_BYTES`` UTF-8 bytes on a character boundary."""
    out = []
    for ch in detail:
        if unicodedata.category(ch)[0] == "C" or ch in "\u2028\u2029":
            code = ord(ch)
            if code < 0x100:
                out.append(f"\\x{code:02x}")
            elif code < 0x10000:
                out.append(f"\\u{code:04x}")
            else:
                out.append(f"\\U{code:08x}")
        else:
            out.append(ch)
    text = "".join(out)
    return text.encode("utf-8")[: L.MAX_DETAIL_BYTES].decode("utf-8", "ignore")
