"""What the two sides of xlink-query-v1 agree on and tell their callers: the configuration,
the session id and query handles, the states, the fates of requested releases, and the events
each state machine returns (spec: xlink-query-v1 §4.3, §7)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import Final

from xlink.query.table import label_size_for

__all__ = [
    "DST_HANDLE",
    "DST_SESSION",
    "HANDLE_SIZE",
    "NONCE_SIZE",
    "PERIOD_PATTERN",
    "AskerEvent",
    "AskerLeft",
    "EvaluationAnswered",
    "EvaluationRequested",
    "Fate",
    "HolderEvent",
    "QueryConfig",
    "ReceiptsReceived",
    "ReleaseAnswer",
    "ReleaseRequested",
    "ReleasesReceived",
    "RequestedHit",
    "SessionState",
    "TableChunkReceived",
    "TableComplete",
    "TableRequested",
    "Welcomed",
    "query_handle",
    "session_id_of",
]

DST_SESSION: Final = b"xlink-query-v1/session-id"
DST_HANDLE: Final = b"xlink-query-v1/handle"
NONCE_SIZE: Final = 16
HANDLE_SIZE: Final = 16
PERIOD_PATTERN: Final = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")


def _lp(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def query_handle(session_id: bytes, output: bytes) -> bytes:
    """The 16-byte handle of one matched token in a query session (§4.3): only a party that
    holds the token's OPRF output can compute it."""
    return hashlib.sha256(_lp(DST_HANDLE) + session_id + output).digest()[:HANDLE_SIZE]


@dataclass(frozen=True, slots=True)
class QueryConfig:
    """What both sides must agree on: the MOU, its digest, the schema digest and number of
    keys, and the two agencies."""

    mou_id: str
    mou_digest: bytes
    schema_digest: bytes
    keys: int
    asker: str
    holder: str

    @property
    def presence_size(self) -> int:
        return label_size_for(self.keys) - 4


class SessionState(Enum):
    WAITING = "waiting"  # holder: for HELLO; asker: for WELCOME
    READY = "ready"  # no request outstanding
    TABLE = "table"  # asker asked for the table / holder is sending it
    EVALUATING = "evaluating"
    RELEASING = "releasing"  # holder: releases due or receipts awaited; asker: releases awaited
    RECEIPTS = "receipts"  # asker: receipts due
    CLOSED = "closed"
    ABORTED = "aborted"


class Fate(IntEnum):
    """What the holder did for one record of a release request (§6.12, §7.5)."""

    SENT = 1
    QUEUED = 2
    PENDING = 3
    DENIED = 4
    DELIVERED = 5
    NOT_DECIDED = 6


@dataclass(frozen=True, slots=True)
class RequestedHit:
    """One record the asker asks the release of: the holder's table index, the keys the
    asker's record has (bitmap), and the handles of the tokens that matched."""

    record: int
    presence: bytes
    handles: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class ReleaseAnswer:
    """The holder's answer for one requested record."""

    fate: Fate
    release_id: bytes = bytes(16)
    frame: bytes = b""


# -- events ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TableRequested:
    since: int


@dataclass(frozen=True, slots=True)
class EvaluationRequested:
    request: int
    blinded: bytes

    @property
    def count(self) -> int:
        return len(self.blinded) // 32


@dataclass(frozen=True, slots=True)
class ReleaseRequested:
    request: int
    hits: tuple[RequestedHit, ...]


@dataclass(frozen=True, slots=True)
class ReceiptsReceived:
    request: int
    answers: tuple[tuple[bool, bytes], ...]


@dataclass(frozen=True, slots=True)
class AskerLeft:
    pass


@dataclass(frozen=True, slots=True)
class Welcomed:
    session_id: bytes
    period: str
    table_version: int
    entries: int
    table_digest: bytes
    quota_left: int


@dataclass(frozen=True, slots=True)
class TableChunkReceived:
    entries: bytes


@dataclass(frozen=True, slots=True)
class TableComplete:
    version: int
    total: int


@dataclass(frozen=True, slots=True)
class EvaluationAnswered:
    request: int
    evaluated: bytes


@dataclass(frozen=True, slots=True)
class ReleasesReceived:
    request: int
    answers: tuple[ReleaseAnswer, ...]


HolderEvent = TableRequested | EvaluationRequested | ReleaseRequested | ReceiptsReceived | AskerLeft
AskerEvent = Welcomed | TableChunkReceived | TableComplete | EvaluationAnswered | ReleasesReceived


def session_id_of(
    config: QueryConfig, asker_nonce: bytes, holder_nonce: bytes, period: str
) -> bytes:
    """§7.1: the 16-byte session id both sides derive."""
    return hashlib.sha256(
        _lp(DST_SESSION)
        + asker_nonce
        + holder_nonce
        + config.mou_digest
        + config.schema_digest
        + _lp(period.encode())
        + _lp(config.asker.encode())
        + _lp(config.holder.encode())
    ).digest()[:16]
