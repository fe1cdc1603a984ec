"""Canonical msgpack for release objects, the way the PSI codec does it (spec: xlink-release-v1
§4; xlink-psi-v2 §6.2): one version byte, one msgpack array, minimal widths, ``bin`` for bytes,
``str`` for text, no maps, no ext types, no trailing bytes; a decoded object is re-encoded and
must give back the same bytes, so every object has exactly one encoding.
"""

from __future__ import annotations

from typing import Final

from xlink import canonical
from xlink.errors import ReleaseRejected

__all__ = [
    "MAX_ENVELOPE_SIZE",
    "RELEASE_VERSION",
    "ReleaseRejected",
    "lp",
    "pack",
    "unpack",
]

RELEASE_VERSION: Final = 1
"""The first byte of every release record and signed release (receipts have their own,
:data:`xlink.release.receipt.RECEIPT_VERSION`)."""

MAX_ENVELOPE_SIZE: Final = 64 * 1024
"""Largest encoded release, signed release or receipt, in bytes (spec §4.3)."""

MAX_STR_BYTES: Final = 16384
MAX_ARRAY_ITEMS: Final = 1024


def lp(data: bytes) -> bytes:
    """``len(data)`` as 4 bytes big-endian, then ``data`` (spec §2)."""
    return len(data).to_bytes(4, "big") + data


def pack(body: list[object], *, version: int = RELEASE_VERSION) -> bytes:
    """Version byte + canonical msgpack of ``body``."""
    return canonical.pack(version, body)


def unpack(data: bytes, *, version: int = RELEASE_VERSION) -> list[object]:
    """The top-level array of an encoded object, or :class:`ReleaseRejected` (``too-large``,
    ``malformed``, ``unsupported-version``, ``truncated``). The caller checks the items and
    then that :func:`pack` gives back ``data`` (canonical form). ``version`` is the first
    byte expected (receipts are version 2, §8)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError("an encoded release object is bytes")
    data = bytes(data)
    if len(data) > MAX_ENVELOPE_SIZE:
        raise ReleaseRejected("too-large")
    if not data:
        raise ReleaseRejected("malformed")
    if data[0] != version:
        raise ReleaseRejected("unsupported-version")
    try:
        body = canonical.unpack(
            data[1:],
            max_size=MAX_ENVELOPE_SIZE,
            max_str=MAX_STR_BYTES,
            max_bin=MAX_ENVELOPE_SIZE,
            max_array=MAX_ARRAY_ITEMS,
        )
    except canonical.Truncated:
        raise ReleaseRejected("truncated") from None
    except canonical.Malformed:
        raise ReleaseRejected("malformed") from None
    if type(body) is not list:
        raise ReleaseRejected("malformed")
    return body


class Reader:
    """Typed access to the items of a decoded array; any mismatch is ``malformed``."""

    __slots__ = ("_items", "_pos")

    def __init__(self, items: list[object], count: int) -> None:
        if len(items) != count:
            raise ReleaseRejected("malformed")
        self._items = items
        self._pos = 0

    def _next(self) -> object:
        value = self._items[self._pos]
        self._pos += 1
        return value

    def bin(self, size: int | None = None) -> bytes:
        value = self._next()
        if type(value) is not bytes or (size is not None and len(value) != size):
            raise ReleaseRejected("malformed")
        return value

    def text(self, max_bytes: int, *, min_bytes: int = 0) -> str:
        value = self._next()
        if type(value) is not str:
            raise ReleaseRejected("malformed")
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError:
            raise ReleaseRejected("malformed") from None
        if not min_bytes <= size <= max_bytes:
            raise ReleaseRejected("malformed")
        return value

    def uint(self, maximum: int) -> int:
        value = self._next()
        if type(value) is not int or not 0 <= value <= maximum:
            raise ReleaseRejected("malformed")
        return value

    def boolean(self) -> bool:
        value = self._next()
        if type(value) is not bool:
            raise ReleaseRejected("malformed")
        return value

    def array(self, max_items: int, *, min_items: int = 0) -> list[object]:
        value = self._next()
        if type(value) is not list or not min_items <= len(value) <= max_items:
            raise ReleaseRejected("malformed")
        return value

    def optional_array(self, count: int) -> list[object] | None:
        value = self._next()
        if value is None:
            return None
        if type(value) is not list or len(value) != count:
            raise ReleaseRejected("malformed")
        return value
