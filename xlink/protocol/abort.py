"""Abort codes: the machine-readable reason a session ended early (spec: xlink-psi-v2 §8).

The numeric values are on the wire (in the ``Abort`` message) and in audit entries, so they
are part of the protocol and never renumbered. :class:`AbortCode` is defined in the leaf
:mod:`xlink.error_codes` (so that :mod:`xlink.errors` imports nothing else) and re-exported here.
"""

from __future__ import annotations

import unicodedata

from xlink.error_codes import AbortCode
from xlink.protocol import limits as L

__all__ = ["AbortCode", "sanitize_detail"]


def sanitize_detail(detail: str) -> str:
    """An Abort detail made safe to log (spec §6.8): :func:`escape_unprintable`, then cut to
    ``MAX_DETAIL_BYTES`` UTF-8 bytes on a character boundary."""
    text = escape_unprintable(detail)
    return text.encode("utf-8")[: L.MAX_DETAIL_BYTES].decode("utf-8", "ignore")


def escape_unprintable(text: str, *, keep: frozenset[str] = frozenset()) -> str:
    """``text`` with every control, format, surrogate, private-use or unassigned character
    (Unicode categories C*, which include the C0 and C1 controls, DEL and the bidirectional
    overrides) and every line or paragraph separator replaced by a ``\\xNN``, ``\\uNNNN`` or
    ``\\UNNNNNNNN`` escape: text from outside that may be logged or shown, and can then neither
    add a line nor drive a terminal. The characters of ``keep`` are kept as they are."""
    out = []
    for ch in text:
        if (unicodedata.category(ch)[0] == "C" or ch in "\u2028\u2029") and ch not in keep:
            code = ord(ch)
            if code < 0x100:
                out.append(f"\\x{code:02x}")
            elif code < 0x10000:
                out.append(f"\\u{code:04x}")
            else:
                out.append(f"\\U{code:08x}")
        else:
            out.append(ch)
    return "".join(out)
