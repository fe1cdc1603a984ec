"""Exact byte encodings of audit entries and checkpoints (docs/audit.md, "Formats").

Everything hashed or signed is built here, so that another implementation can verify a log
from docs/audit.md alone. Integers are big-endian; ``lp(x)`` is a 4-byte big-endian length
followed by ``x``; strings are ASCII (the vocabulary admits nothing else).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Final

from xlink.audit._vocab import FieldValue

__all__ = [
    "DST_CHECKPOINT",
    "DST_ENTRY",
    "GENESIS_HASH",
    "HASH_SIZE",
    "checkpoint_message",
    "decode_fields",
    "encode_fields",
    "entry_hash",
    "from_micros",
    "to_micros",
]

DST_ENTRY: Final = b"xlink/v1/audit-entry"
DST_CHECKPOINT: Final = b"xlink/v1/audit-checkpoint"
HASH_SIZE: Final = 32
GENESIS_HASH: Final = bytes(HASH_SIZE)
"""The ``prev_hash`` of entry 1."""

_TAG_INT: Final = b"\x01"
_TAG_STR: Final = b"\x02"
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO: Final = timedelta(microseconds=1)


def _lp(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def to_micros(now: datetime) -> int:
    """Microseconds since the Unix epoch (UTC) of an aware ``datetime``; ``ValueError`` if
    naive, so that a log never mixes local and UTC times."""
    if not isinstance(now, datetime) or now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    return (now - _EPOCH) // _MICRO


def from_micros(micros: int) -> datetime:
    return _EPOCH + micros * _MICRO


def _encode_value(value: FieldValue) -> bytes:
    if isinstance(value, int):
        return _TAG_INT + value.to_bytes(8, "big")
    return _TAG_STR + _lp(value.encode("ascii"))


def entry_hash(
    prev_hash: bytes, seq: int, time_us: int, kind: str, fields: Mapping[str, FieldValue]
) -> bytes:
    """SHA-256 of ``lp(DST_ENTRY) || prev_hash || u64(seq) || i64(time_us) || lp(kind) ||
    u32(n) || (lp(name) || tag || value)*`` with fields sorted by name (docs/audit.md)."""
    h = hashlib.sha256(_lp(DST_ENTRY))
    h.update(prev_hash)
    h.update(seq.to_bytes(8, "big"))
    h.update(time_us.to_bytes(8, "big", signed=True))
    h.update(_lp(kind.encode("ascii")))
    h.update(len(fields).to_bytes(4, "big"))
    for name in sorted(fields):
        h.update(_lp(name.encode("ascii")) + _encode_value(fields[name]))
    return h.digest()


def checkpoint_message(
    seq: int, head_hash: bytes, time_us: int, prev_seq: int, interval: int
) -> bytes:
    """The bytes a checkpoint signature covers: ``lp(DST_CHECKPOINT) || u64(seq) ||
    head_hash || i64(time_us) || u64(prev_seq) || u32(interval)`` (docs/audit.md)."""
    return (
        _lp(DST_CHECKPOINT)
        + seq.to_bytes(8, "big")
        + head_hash
        + time_us.to_bytes(8, "big", signed=True)
        + prev_seq.to_bytes(8, "big")
        + interval.to_bytes(4, "big")
    )


def encode_fields(fields: Mapping[str, FieldValue]) -> str:
    """The stored form of validated fields: compact JSON with sorted keys (ASCII only).

    Only a storage format: hashes are computed over :func:`entry_hash`'s binary encoding, so
    a verifier does not depend on JSON canonicalisation."""
    return json.dumps(dict(fields), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def decode_fields(text: str) -> dict[str, object]:
    """Parse stored fields; ``ValueError`` unless a JSON object (values are checked later
    against the vocabulary)."""
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("fields are not a JSON object")
    return value
