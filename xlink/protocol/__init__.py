"""Sans-I/O protocol core: messages, codec and state machines (spec: protocols/xlink-psi-v2.md).

The public surface is re-exported here; modules starting with ``_`` are internal. Names are
loaded on first use because :mod:`xlink.errors` imports :mod:`xlink.protocol.abort` (which
would otherwise make the package import itself in a cycle).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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

_EXPORTS = {
    "AbortCode": "abort",
    "Aborted": "events",
    "CandidatePair": "events",
    "CardinalityResult": "events",
    "Event": "events",
    "ExchangeComplete": "events",
    "FrameDecoder": "framing",
    "HandshakeComplete": "events",
    "InternalProtocolError": "session",
    "Mode": "config",
    "PairTable": "events",
    "Progress": "events",
    "PsiResult": "events",
    "PsiSession": "session",
    "RevealBound": "bound",
    "Role": "config",
    "SessionConfig": "config",
    "State": "_state",
    "decode_message": "codec",
    "encode_frame": "framing",
    "encode_message": "codec",
    "padded_size": "config",
    "run_pair": "pair",
}

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


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'xlink.protocol' has no attribute {name!r}")
    return getattr(importlib.import_module(f"xlink.protocol.{module}"), name)
