"""Sans-I/O protocol core: messages, codec and state machines (spec: protocols/xlink-psi-v2.md).

The public surface is re-exported here; modules starting with ``_`` are internal.
"""

from __future__ import annotations

from xlink.errors import InternalProtocolError
from xlink.protocol._state import State
from xlink.protocol.abort import AbortCode
from xlink.protocol.bound import RevealBound
from xlink.protocol.codec import decode_message, encode_message
from xlink.protocol.config import Mode, Role, SessionConfig, padded_size
from xlink.protocol.events import (
    Aborted,
    CandidatePair,
    CardinalityResult,
    Event,
    ExchangeComplete,
    HandshakeComplete,
    PairTable,
    Progress,
    PsiResult,
)
from xlink.protocol.framing import FrameDecoder, encode_frame
from xlink.protocol.pair import run_pair
from xlink.protocol.session import PsiSession

__all__ = [
    "AbortCode",
    "Aborted",
    "CandidatePair",
    "CardinalityResult",
    "Event",
    "ExchangeComplete",
    "FrameDecoder",
    "HandshakeComplete",
    "InternalProtocolError",
    "Mode",
    "PairTable",
    "Progress",
    "PsiResult",
    "PsiSession",
    "RevealBound",
    "Role",
    "SessionConfig",
    "State",
    "decode_message",
    "encode_frame",
    "encode_message",
    "padded_size",
    "run_pair",
]
