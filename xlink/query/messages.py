"""Messages of xlink-query-v1 and their canonical, strict encoding (spec: xlink-query-v1 §6).

A message is the version byte ``QUERY_VERSION`` (0x51, "Q") followed by one canonical msgpack
array ``[type, field1, field2, ...]`` (the encoding core of :mod:`xlink.canonical`: minimal
widths, ``bin`` for bytes, ``str`` for text, no maps, no ext types, no trailing bytes). A PSI
message starts with 0x02 and a release-transfer frame with 0xf0, so no frame of one protocol
reads as another's. Decoding untrusted bytes raises
:class:`~xlink.errors.RemoteProtocolError` and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import IntEnum
from typing import Final

from xlink import canonical
from xlink.error_codes import AbortCode
from xlink.errors import RemoteProtocolError
from xlink.protocol.limits import MAX_MESSAGE_SIZE
from xlink.release._frames import MAX_RECEIPT_SIZE

__all__ = [
    "MAX_EVALUATE",
    "MAX_HITS",
    "QUERY_VERSION",
    "Abort",
    "Bye",
    "Evaluate",
    "Evaluated",
    "Hello",
    "QueryMessage",
    "QueryType",
    "ReceiptsMessage",
    "ReleaseRequest",
    "ReleasesMessage",
    "TableChunk",
    "TableEnd",
    "TableRequest",
    "Welcome",
    "decode",
    "encode",
]

QUERY_VERSION: Final = 0x51
MAX_EVALUATE: Final = 16384
"""Most blinded elements in one Evaluate (512 KiB)."""
MAX_HITS: Final = 1024
"""Most records one ReleaseRequest names."""
MAX_DETAIL: Final = 200
_U64: Final = 2**64 - 1


class QueryType(IntEnum):
    HELLO = 1
    WELCOME = 2
    TABLE_REQUEST = 3
    TABLE_CHUNK = 4
    TABLE_END = 5
    EVALUATE = 6
    EVALUATED = 7
    RELEASE_REQUEST = 8
    RELEASES = 9
    RECEIPTS = 10
    BYE = 11
    ABORT = 12


# Field kinds: ("u",) unsigned int; ("s", min, max) UTF-8 bytes; ("b", unit, min, max) bin of
# whole units; ("l", max items, max bytes each) array of bin.
_Kind = tuple[object, ...]


@dataclass(frozen=True, slots=True)
class Hello:
    TYPE = QueryType.HELLO
    nonce: bytes
    mou_id: str
    mou_digest: bytes
    schema_digest: bytes
    asker: str
    holder: str


@dataclass(frozen=True, slots=True)
class Welcome:
    TYPE = QueryType.WELCOME
    nonce: bytes
    period: str
    table_version: int
    entries: int
    table_digest: bytes
    quota_left: int
    keys: int


@dataclass(frozen=True, slots=True)
class TableRequest:
    TYPE = QueryType.TABLE_REQUEST
    since: int


@dataclass(frozen=True, slots=True)
class TableChunk:
    TYPE = QueryType.TABLE_CHUNK
    seq: int
    entries: bytes


@dataclass(frozen=True, slots=True)
class TableEnd:
    TYPE = QueryType.TABLE_END
    chunks: int
    version: int
    total: int


@dataclass(frozen=True, slots=True)
class Evaluate:
    TYPE = QueryType.EVALUATE
    request: int
    blinded: bytes


@dataclass(frozen=True, slots=True)
class Evaluated:
    TYPE = QueryType.EVALUATED
    request: int
    evaluated: bytes


@dataclass(frozen=True, slots=True)
class ReleaseRequest:
    TYPE = QueryType.RELEASE_REQUEST
    request: int
    records: bytes  # u32 each
    presence: bytes  # one bitmap per record
    counts: bytes  # u8 each: handles per record
    handles: bytes  # 16 bytes each, per record in order


@dataclass(frozen=True, slots=True)
class ReleasesMessage:
    TYPE = QueryType.RELEASES
    request: int
    fates: bytes  # u8 per record of the request
    release_ids: bytes  # 16 bytes per record (zeros: none)
    frames: tuple[bytes, ...]  # one labelled release per fate SENT, in order


@dataclass(frozen=True, slots=True)
class ReceiptsMessage:
    TYPE = QueryType.RECEIPTS
    request: int
    oks: bytes  # u8 per frame: 1 receipt, 0 refused
    answers: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Bye:
    TYPE = QueryType.BYE


@dataclass(frozen=True, slots=True)
class Abort:
    TYPE = QueryType.ABORT
    code: int
    detail: str


QueryMessage = (
    Hello
    | Welcome
    | TableRequest
    | TableChunk
    | TableEnd
    | Evaluate
    | Evaluated
    | ReleaseRequest
    | ReleasesMessage
    | ReceiptsMessage
    | Bye
    | Abort
)

_MAX_BIN: Final = MAX_MESSAGE_SIZE
_SCHEMA: Final[dict[QueryType, tuple[type, tuple[_Kind, ...]]]] = {
    QueryType.HELLO: (
        Hello,
        (
            ("b", 16, 1, 1),
            ("s", 1, 128),
            ("b", 32, 1, 1),
            ("b", 32, 1, 1),
            ("s", 1, 64),
            ("s", 1, 64),
        ),
    ),
    QueryType.WELCOME: (
        Welcome,
        (("b", 16, 1, 1), ("s", 7, 7), ("u",), ("u",), ("b", 32, 1, 1), ("u",), ("u",)),
    ),
    QueryType.TABLE_REQUEST: (TableRequest, (("u",),)),
    QueryType.TABLE_CHUNK: (TableChunk, (("u",), ("b", 1, 1, _MAX_BIN))),
    QueryType.TABLE_END: (TableEnd, (("u",), ("u",), ("u",))),
    QueryType.EVALUATE: (Evaluate, (("u",), ("b", 32, 1, MAX_EVALUATE))),
    QueryType.EVALUATED: (Evaluated, (("u",), ("b", 32, 1, MAX_EVALUATE))),
    QueryType.RELEASE_REQUEST: (
        ReleaseRequest,
        (
            ("u",),
            ("b", 4, 1, MAX_HITS),
            ("b", 1, 1, MAX_HITS * 32),
            ("b", 1, 1, MAX_HITS),
            ("b", 16, 1, MAX_HITS * 255),
        ),
    ),
    QueryType.RELEASES: (
        ReleasesMessage,
        (("u",), ("b", 1, 1, MAX_HITS), ("b", 16, 1, MAX_HITS), ("l", MAX_HITS, _MAX_BIN)),
    ),
    QueryType.RECEIPTS: (
        ReceiptsMessage,
        (("u",), ("b", 1, 0, MAX_HITS), ("l", MAX_HITS, MAX_RECEIPT_SIZE)),
    ),
    QueryType.BYE: (Bye, ()),
    QueryType.ABORT: (Abort, (("u",), ("s", 0, MAX_DETAIL))),
}


class _Invalid(Exception):
    pass


def _check(kind: _Kind, value: object) -> object:
    tag = kind[0]
    if tag == "u":
        if type(value) is not int or not 0 <= value <= _U64:
            raise _Invalid("expected an unsigned integer")
        return value
    if tag == "s":
        if type(value) is not str:
            raise _Invalid("expected a string")
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError:
            raise _Invalid("string is not valid UTF-8") from None
        if not int(kind[1]) <= size <= int(kind[2]):  # type: ignore[call-overload]
            raise _Invalid("string length out of range")
        return value
    if tag == "b":
        unit, low, high = (int(k) for k in kind[1:])  # type: ignore[call-overload]
        if type(value) is not bytes:
            raise _Invalid("expected binary data")
        units, rest = divmod(len(value), unit)
        if rest or not low <= units <= high:
            raise _Invalid("binary length out of range")
        return value
    items, each = int(kind[1]), int(kind[2])  # type: ignore[call-overload]
    if type(value) is not list and type(value) is not tuple:
        raise _Invalid("expected an array")
    assert isinstance(value, list | tuple)
    if len(value) > items or any(type(v) is not bytes or len(v) > each for v in value):
        raise _Invalid("array out of range")
    return tuple(value)


def encode(message: QueryMessage) -> bytes:
    """The canonical bytes of ``message``. ``ValueError`` if a field is out of its limits (a
    bug of the caller, never the peer's)."""
    _, kinds = _SCHEMA[message.TYPE]
    values = [getattr(message, f.name) for f in fields(message)]
    try:
        for kind, value in zip(kinds, values, strict=True):
            _check(kind, value)
    except _Invalid as exc:
        raise ValueError(f"{message.TYPE.name}: {exc}") from None
    body = [int(message.TYPE), *(list(v) if isinstance(v, tuple) else v for v in values)]
    data = canonical.pack(QUERY_VERSION, body)
    if len(data) > MAX_MESSAGE_SIZE:
        raise ValueError(f"{message.TYPE.name}: larger than one frame")
    return data


def decode(data: bytes) -> QueryMessage:
    """Decode one message: version, type, field count, field types and limits, canonical
    encoding. Raises :class:`~xlink.errors.RemoteProtocolError` (``FRAME_TOO_LARGE``,
    ``MALFORMED_MESSAGE``, ``TRUNCATED``, ``UNSUPPORTED_VERSION``, ``UNKNOWN_MESSAGE``)."""
    data = bytes(data)
    if len(data) > MAX_MESSAGE_SIZE:
        raise RemoteProtocolError(AbortCode.FRAME_TOO_LARGE, "message exceeds the limit")
    if not data:
        raise RemoteProtocolError(AbortCode.MALFORMED_MESSAGE, "empty message")
    if data[0] != QUERY_VERSION:
        raise RemoteProtocolError(AbortCode.UNSUPPORTED_VERSION, "not an xlink-query-v1 message")
    try:
        body = canonical.unpack(
            data[1:],
            max_size=MAX_MESSAGE_SIZE,
            max_str=max(MAX_DETAIL, 128),
            max_bin=_MAX_BIN,
            max_array=MAX_HITS + 16,
        )
    except canonical.Truncated:
        raise RemoteProtocolError(AbortCode.TRUNCATED, "message body is truncated") from None
    except canonical.Malformed:
        raise RemoteProtocolError(AbortCode.MALFORMED_MESSAGE, "not a valid msgpack body") from None
    if type(body) is not list or not body or type(body[0]) is not int or body[0] < 0:
        raise RemoteProtocolError(AbortCode.MALFORMED_MESSAGE, "not a typed message array")
    try:
        mtype = QueryType(body[0])
    except ValueError:
        raise RemoteProtocolError(AbortCode.UNKNOWN_MESSAGE, "unknown message type") from None
    cls, kinds = _SCHEMA[mtype]
    if len(body) != 1 + len(kinds):
        raise RemoteProtocolError(AbortCode.MALFORMED_MESSAGE, f"{mtype.name}: wrong field count")
    values = []
    for index, (kind, value) in enumerate(zip(kinds, body[1:], strict=True)):
        try:
            values.append(_check(kind, value))
        except _Invalid as exc:
            raise RemoteProtocolError(
                AbortCode.MALFORMED_MESSAGE, f"{mtype.name} field {index + 1}: {exc}"
            ) from None
    message: QueryMessage = cls(*values)
    if encode(message) != data:
        raise RemoteProtocolError(AbortCode.MALFORMED_MESSAGE, f"{mtype.name}: non-canonical")
    return message
