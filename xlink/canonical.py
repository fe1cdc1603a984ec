"""Canonical, strict msgpack: the one encoding core shared by every xlink wire and signed format
(spec: xlink-psi-v2 §6.2, xlink-release-v1 §4).

An object is one version byte followed by one msgpack array, packed with minimal widths, ``bin``
for bytes and ``str`` for text. Decoding untrusted bytes refuses ext types, maps, trailing bytes
and anything over the caller's limits; each format checks its own fields and then that packing
the decoded value gives back the same bytes, so every object has exactly one encoding.

Failures are :class:`Truncated` or :class:`Malformed`; each format turns them into its own
typed error (``RemoteProtocolError``, ``ReleaseRejected`` ...).
"""

from __future__ import annotations

from typing import NoReturn

import msgpack

from xlink.errors import Malformed, Truncated

__all__ = ["Malformed", "Truncated", "pack", "unpack"]


def _reject_ext(code: int, data: bytes) -> NoReturn:
    raise Malformed("msgpack ext types are not allowed")


def pack(version: int, body: list[object]) -> bytes:
    """``version`` as one byte, then the canonical msgpack of ``body``."""
    packed: bytes = msgpack.packb(body, use_bin_type=True)
    return bytes([version]) + packed


def unpack(body: bytes, *, max_size: int, max_str: int, max_bin: int, max_array: int) -> object:
    """Decode exactly one msgpack object from ``body`` (the bytes after the version byte).

    Raises :class:`Truncated` when ``body`` ends early and :class:`Malformed` for anything else
    msgpack refuses or we forbid (ext types, maps, limits, trailing bytes). Nothing else escapes.
    """
    unpacker = msgpack.Unpacker(
        raw=False,
        use_list=True,
        strict_map_key=True,
        ext_hook=_reject_ext,
        timestamp=0,
        max_buffer_size=max(max_size, 1),
        max_str_len=max_str,
        max_bin_len=max_bin,
        max_array_len=max_array,
        max_map_len=0,
        max_ext_len=0,
    )
    try:
        unpacker.feed(body)
        try:
            obj = unpacker.unpack()
        except msgpack.OutOfData:
            raise Truncated("truncated") from None
        trailing = unpacker.tell() != len(body)
    except Malformed:
        raise
    except Exception:  # anything msgpack raises on untrusted bytes is the sender's fault
        raise Malformed("not a well-formed msgpack object") from None
    if trailing:
        raise Malformed("trailing bytes")
    return obj
