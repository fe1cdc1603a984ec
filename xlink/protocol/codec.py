"""Canonical, strict, size-limited encoding of xlink-psi-v2 messages (spec: xlink-psi-v2 §6.2).

A message is one version byte (``PROTOCOL_VERSION``) followed by one msgpack array
``[type, field1, field2, ...]`` with the fields of :data:`~xlink.protocol.messages.FIELDS` in
order. Decoding accepts exactly one encoding per message: the one :func:`encode_message`
produces (minimal integer widths, ``bin`` for bytes, ``str`` for text, no maps, no ext types,
no trailing bytes). Any untrusted input that is not such an encoding raises
:class:`~xlink.errors.RemoteProtocolError` and nothing else.
"""

from __future__ import annotations

from typing import Final

from xlink import canonical
from xlink.errors import RemoteProtocolError
from xlink.protocol import limits as L
from xlink.protocol.abort import AbortCode
from xlink.protocol.messages import (
    FIELDS,
    BinField,
    BoolField,
    Field,
    Message,
    MessageType,
    StrField,
    UintField,
)

__all__ = ["decode_message", "encode_message", "peek_type"]


_MAX_STR: Final = L.MAX_DETAIL_BYTES
_MAX_BIN: Final = L.MAX_CHUNK_ELEMENTS * 32
_MAX_ARRAY: Final = L.MAX_RECORDS_PER_REVEAL

# msgpack first bytes with a fixed-size payload: byte -> payload length.
_FIXED: Final = {0xC0: 0, 0xC2: 0, 0xC3: 0, 0xCA: 4, 0xCB: 8, 0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}
_FIXED.update({0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8})
# Length-prefixed items: byte -> (width of the length, limit).
_SIZED: Final = {0xC4: (1, _MAX_BIN), 0xC5: (2, _MAX_BIN), 0xC6: (4, _MAX_BIN)}
_SIZED.update({0xD9: (1, _MAX_STR), 0xDA: (2, _MAX_STR), 0xDB: (4, _MAX_STR)})
_ARRAYS: Final = {0xDC: 2, 0xDD: 4}


def _bad_header_before_end(data: bytes, pos: int) -> bool:
    """Walk the msgpack items of a body that ends early, in reading order (spec §6.2). True if
    an item header no message may carry comes first: the reserved byte 0xc1, a map or ext
    header, or a str/bin/array length above the codec limits. False if the bytes run out first.
    """
    end = len(data)
    pending = 1  # items still to read
    stack: list[int] = []
    while pending or stack:
        if not pending:
            pending = stack.pop()
            continue
        if pos >= end:
            return False
        b = data[pos]
        pos += 1
        pending -= 1
        if b <= 0x7F or b >= 0xE0:  # positive / negative fixint
            continue
        if 0x90 <= b <= 0x9F or b in _ARRAYS:
            if b in _ARRAYS:
                width = _ARRAYS[b]
                if pos + width > end:
                    return False
                count = int.from_bytes(data[pos : pos + width], "big")
                pos += width
                if count > _MAX_ARRAY:
                    return True
            else:
                count = b & 0x0F
            stack.append(pending)
            pending = count
            continue
        if 0xA0 <= b <= 0xBF:  # fixstr: at most 31 bytes, within the limit
            pos += b & 0x1F
            continue
        if b in _FIXED:
            pos += _FIXED[b]
            continue
        if b in _SIZED:
            width, limit = _SIZED[b]
            if pos + width > end:
                return False
            size = int.from_bytes(data[pos : pos + width], "big")
            if size > limit:
                return True
            pos += width + size
            continue
        return True  # 0xc1, fixmap, map16/32, ext, fixext
    return False


class _Invalid(Exception):
    """A field failed its check; carries a reason that never quotes the value."""


def encode_message(message: Message) -> bytes:
    """Return the canonical bytes of ``message`` (spec §6.2). Raises ``ValueError`` if a field
    is outside its limits (a bug in the caller, never the peer)."""
    _, fields = FIELDS[message.TYPE]
    values = [getattr(message, f.name) for f in fields]
    try:
        for field, value in zip(fields, values, strict=True):
            _check_field(field, value)
    except _Invalid as exc:
        raise ValueError(f"{message.TYPE.name}: {exc}") from None
    body = [int(message.TYPE), *(list(v) if isinstance(v, tuple) else v for v in values)]
    data = canonical.pack(L.PROTOCOL_VERSION, body)
    if len(data) > L.MAX_MESSAGE_SIZE:
        raise ValueError(f"{message.TYPE.name}: message larger than MAX_MESSAGE_SIZE")
    return data


def peek_type(data: bytes) -> int | None:
    """The message type of a well-formed message, or None; never raises (for logs and tests)."""
    try:
        return int(decode_message(data).TYPE)
    except RemoteProtocolError:
        return None


def decode_message(data: bytes) -> Message:
    """Decode one message, checking version, type, field count, exact field types and limits,
    and canonical encoding, in that order (spec §6.2).

    Raises :class:`~xlink.errors.RemoteProtocolError` with ``FRAME_TOO_LARGE``,
    ``MALFORMED_MESSAGE``, ``TRUNCATED``, ``UNSUPPORTED_VERSION`` or ``UNKNOWN_MESSAGE``.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError("a message is bytes")
    data = bytes(data)
    if len(data) > L.MAX_MESSAGE_SIZE:
        raise RemoteProtocolError(AbortCode.FRAME_TOO_LARGE, "message exceeds the limit")
    if not data:
        raise RemoteProtocolError(AbortCode.MALFORMED_MESSAGE, "empty message")
    if data[0] != L.PROTOCOL_VERSION:
        if data[0] == 1:
            raise RemoteProtocolError(
                AbortCode.UNSUPPORTED_VERSION,
                "xlink-psi-v1 is refused: it lets a dishonest peer fake matches; upgrade to v2",
            )
        raise RemoteProtocolError(AbortCode.UNSUPPORTED_VERSION, "unsupported protocol version")
    try:
        body = canonical.unpack(
            data[1:],
            max_size=L.MAX_MESSAGE_SIZE,
            max_str=_MAX_STR,
            max_bin=_MAX_BIN,
            max_array=_MAX_ARRAY,
        )
    except canonical.Truncated:
        # The body ends early; but an item header before that point that no message may carry
        # is the first failure in reading order (spec §6.2): MALFORMED, not TRUNCATED.
        if _bad_header_before_end(data, 1):
            raise RemoteProtocolError(
                AbortCode.MALFORMED_MESSAGE, "not a valid msgpack body"
            ) from None
        raise RemoteProtocolError(AbortCode.TRUNCATED, "message body is truncated") from None
    except canonical.Malformed:
        raise RemoteProtocolError(AbortCode.MALFORMED_MESSAGE, "not a valid msgpack body") from None
    if type(body) is not list or not body:
        raise RemoteProtocolError(AbortCode.MALFORMED_MESSAGE, "body is not a non-empty array")
    kind = body[0]
    if type(kind) is not int or kind < 0:
        raise RemoteProtocolError(
            AbortCode.MALFORMED_MESSAGE, "message type is not an unsigned integer"
        )
    try:
        mtype = MessageType(kind)
    except ValueError:
        raise RemoteProtocolError(AbortCode.UNKNOWN_MESSAGE, "unknown message type") from None
    cls, fields = FIELDS[mtype]
    if len(body) != 1 + len(fields):
        raise RemoteProtocolError(
            AbortCode.MALFORMED_MESSAGE, f"{mtype.name}: wrong number of fields"
        )
    values: list[object] = []
    for field, value in zip(fields, body[1:], strict=True):
        try:
            values.append(_check_field(field, value))
        except _Invalid as exc:
            raise RemoteProtocolError(
                AbortCode.MALFORMED_MESSAGE, f"{mtype.name}.{field.name}: {exc}"
            ) from None
    message: Message = cls(*values)  # type: ignore[arg-type]
    if encode_message(message) != data:
        raise RemoteProtocolError(AbortCode.MALFORMED_MESSAGE, f"{mtype.name}: non-canonical")
    return message


def _check_field(field: Field, value: object) -> object:
    """Return the value as the message class holds it, or raise :class:`_Invalid`."""
    if isinstance(field, UintField):
        if type(value) is not int:
            raise _Invalid("expected an unsigned integer")
        if not field.minimum <= value <= field.maximum:
            raise _Invalid("integer out of range")
        return value
    if isinstance(field, BoolField):
        if type(value) is not bool:
            raise _Invalid("expected a boolean")
        return value
    if isinstance(field, StrField):
        if type(value) is not str:
            raise _Invalid("expected a string")
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError:
            raise _Invalid("string is not valid UTF-8") from None
        if not field.min_bytes <= size <= field.max_bytes:
            raise _Invalid("string length out of range")
        return value
    if isinstance(field, BinField):
        return _check_bin(field, value)
    if type(value) is not list and type(value) is not tuple:
        raise _Invalid("expected an array")
    assert isinstance(value, list | tuple)
    if not field.min_items <= len(value) <= field.max_items:
        raise _Invalid("array length out of range")
    items = tuple(_check_bin(field.item, v) for v in value)
    if sum(len(v) for v in items) > field.max_total_units * field.item.unit:
        raise _Invalid("too many units in all")
    return items


def _check_bin(field: BinField, value: object) -> bytes:
    if type(value) is not bytes:
        raise _Invalid("expected binary data")
    units, rest = divmod(len(value), field.unit)
    if rest or not field.min_units <= units <= field.max_units:
        raise _Invalid("binary length out of range")
    return value
