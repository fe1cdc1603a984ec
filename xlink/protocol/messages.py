"""The messages of xlink-psi-v2 as frozen value objects (spec: xlink-psi-v2 §6).

Each message class names its wire type and its fields in order; :mod:`xlink.protocol.codec`
turns them into canonical bytes and back. Field limits are enforced by the codec from
:data:`FIELDS`, so this module is the single description of what each message holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, Final

from xlink.protocol import limits as L

__all__ = [
    "FIELDS",
    "Abort",
    "BinField",
    "BinListField",
    "BoolField",
    "Commit",
    "ConfirmRequest",
    "ConfirmResponse",
    "Elements",
    "Field",
    "Hello",
    "Message",
    "MessageType",
    "Reblinded",
    "Reveal",
    "StrField",
    "UintField",
]


class MessageType(IntEnum):
    """The first element of every message body (spec §6.2)."""

    HELLO = 1
    ELEMENTS = 2
    REBLINDED = 3
    REVEAL = 4
    ABORT = 5
    CONFIRM_REQUEST = 6
    CONFIRM_RESPONSE = 7
    COMMIT = 8


@dataclass(frozen=True, slots=True)
class Hello:
    """Handshake: everything both parties must agree on, plus this sender's sizes (spec §6.4)."""

    role: int  # 0 initiator, 1 responder
    suite_id: int
    mode: int  # 1 PSI, 2 CARDINALITY
    sender_id: str
    receiver_id: str
    mou_id: str
    mou_digest: bytes
    schema_digest: bytes
    padding_bucket: int
    padded_size: int
    chunk_size: int
    nonce: bytes

    TYPE: ClassVar[MessageType] = MessageType.HELLO


@dataclass(frozen=True, slots=True)
class Elements:
    """Chunk ``seq`` of the sender's own blinded, shuffled, padded elements (spec §6.5)."""

    seq: int
    elements: bytes

    TYPE: ClassVar[MessageType] = MessageType.ELEMENTS


@dataclass(frozen=True, slots=True)
class Reblinded:
    """The receiver's answer to the peer's chunk ``seq``: for each element, a 16-byte hash of
    its re-blinding tagged with the element owner's role, never the group element itself
    (spec §6.6)."""

    seq: int
    elements: bytes

    TYPE: ClassVar[MessageType] = MessageType.REBLINDED


@dataclass(frozen=True, slots=True)
class Reveal:
    """Chunk ``seq`` of the sender's matched records: one entry of sorted handles per record,
    and each record's key presence, ``ceil(K / 8)`` bytes per entry for a schema of ``K`` keys,
    concatenated in entry order (spec §6.7). The entry's position in the whole reveal is the
    record's peer reference."""

    seq: int
    final: bool
    records: tuple[bytes, ...]
    presence: bytes = b""
    salt: bytes = b""

    TYPE: ClassVar[MessageType] = MessageType.REVEAL


@dataclass(frozen=True, slots=True)
class ConfirmRequest:
    """Chunk ``seq`` of the sender's blinded points, one per matched token value it claims
    (spec §6.9)."""

    seq: int
    final: bool
    points: bytes

    TYPE: ClassVar[MessageType] = MessageType.CONFIRM_REQUEST


@dataclass(frozen=True, slots=True)
class ConfirmResponse:
    """The answer to the peer's ConfirmRequest ``seq``: for each point ``R``, ``[k]R`` under
    the PSI key, 32 bytes per point (spec §6.10)."""

    seq: int
    points: bytes

    TYPE: ClassVar[MessageType] = MessageType.CONFIRM_RESPONSE


@dataclass(frozen=True, slots=True)
class Commit:
    """The sender's commitment to its whole Reveal, sent before it sees the peer's (spec
    §6.11)."""

    digest: bytes

    TYPE: ClassVar[MessageType] = MessageType.COMMIT


@dataclass(frozen=True, slots=True)
class Abort:
    """The sender ends the session with ``code`` (an AbortCode value) (spec §6.8)."""

    code: int
    detail: str

    TYPE: ClassVar[MessageType] = MessageType.ABORT


Message = Hello | Elements | Reblinded | Reveal | Abort | ConfirmRequest | ConfirmResponse | Commit


@dataclass(frozen=True, slots=True)
class UintField:
    """A msgpack non-negative integer (not a bool) in ``[minimum, maximum]``."""

    name: str
    minimum: int
    maximum: int


@dataclass(frozen=True, slots=True)
class BoolField:
    """A msgpack boolean."""

    name: str


@dataclass(frozen=True, slots=True)
class StrField:
    """A msgpack str of valid UTF-8, ``min_bytes..max_bytes`` long once encoded."""

    name: str
    min_bytes: int
    max_bytes: int


@dataclass(frozen=True, slots=True)
class BinField:
    """A msgpack bin whose length is a multiple of ``unit`` in ``[min_units, max_units]``."""

    name: str
    unit: int
    min_units: int
    max_units: int


@dataclass(frozen=True, slots=True)
class BinListField:
    """A msgpack array of ``min_items..max_items`` bins, each as ``item`` says, with at most
    ``max_total_units`` units in all."""

    name: str
    min_items: int
    max_items: int
    item: BinField
    max_total_units: int


Field = UintField | BoolField | StrField | BinField | BinListField

_U32: Final = 2**32 - 1

FIELDS: Final[dict[MessageType, tuple[type[Message], tuple[Field, ...]]]] = {
    MessageType.HELLO: (
        Hello,
        (
            UintField("role", 0, 1),
            UintField("suite_id", 0, 255),
            UintField("mode", 0, 255),
            StrField("sender_id", 1, L.MAX_PARTY_ID_BYTES),
            StrField("receiver_id", 1, L.MAX_PARTY_ID_BYTES),
            StrField("mou_id", 1, L.MAX_MOU_ID_BYTES),
            BinField("mou_digest", L.DIGEST_SIZE, 1, 1),
            BinField("schema_digest", L.DIGEST_SIZE, 1, 1),
            UintField("padding_bucket", 1, _U32),
            UintField("padded_size", 1, _U32),
            UintField("chunk_size", 1, L.MAX_CHUNK_ELEMENTS),
            BinField("nonce", L.NONCE_SIZE, 1, 1),
        ),
    ),
    MessageType.ELEMENTS: (
        Elements,
        (
            UintField("seq", 0, L.MAX_SEQ),
            BinField("elements", 32, 1, L.MAX_CHUNK_ELEMENTS),
        ),
    ),
    MessageType.REBLINDED: (
        Reblinded,
        (
            UintField("seq", 0, L.MAX_SEQ),
            BinField("elements", L.REBLINDED_SIZE, 1, L.MAX_CHUNK_ELEMENTS),
        ),
    ),
    MessageType.REVEAL: (
        Reveal,
        (
            UintField("seq", 0, L.MAX_SEQ),
            BoolField("final"),
            BinListField(
                "records",
                0,
                L.MAX_RECORDS_PER_REVEAL,
                BinField("handles", L.HANDLE_SIZE, 1, L.MAX_HANDLES_PER_RECORD),
                L.MAX_HANDLES_PER_REVEAL,
            ),
            BinField("presence", 1, 0, L.MAX_RECORDS_PER_REVEAL * L.PRESENCE_BYTES_PER_RECORD),
            BinField("salt", L.SALT_SIZE, 0, 1),
        ),
    ),
    MessageType.ABORT: (
        Abort,
        (
            UintField("code", 0, 255),
            StrField("detail", 0, L.MAX_DETAIL_BYTES),
        ),
    ),
    MessageType.CONFIRM_REQUEST: (
        ConfirmRequest,
        (
            UintField("seq", 0, L.MAX_SEQ),
            BoolField("final"),
            BinField("points", 32, 0, L.MAX_CONFIRM_POINTS),
        ),
    ),
    MessageType.CONFIRM_RESPONSE: (
        ConfirmResponse,
        (
            UintField("seq", 0, L.MAX_SEQ),
            BinField("points", L.POINT_SIZE, 0, L.MAX_CONFIRM_POINTS),
        ),
    ),
    MessageType.COMMIT: (Commit, (BinField("digest", L.COMMIT_SIZE, 1, 1),)),
}
"""For each message type: its class and its fields in wire order (spec §6.2-§6.8)."""
