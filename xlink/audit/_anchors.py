"""Published checkpoints: a checkpoint as it leaves the log that signed it, with the audit verify
key that signed it, so that whoever holds it can check it alone (docs/audit.md, "Partner
checkpoints"; xlink-release-v1 §8 carries one in every receipt).

A partner keeps the checkpoints our receipts carried; what it exports
(:func:`dump_checkpoints`) is what an auditor gives :func:`~xlink.audit.verify_log` as
``partner_checkpoints`` (:func:`load_checkpoints`), to detect a log rewritten or truncated by
someone holding our audit key.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from xlink.audit._encoding import HASH_SIZE, from_micros, to_micros
from xlink.audit._log import MAX_CHECKPOINT_EVERY, Checkpoint
from xlink.crypto.keys import KEY_SIZE, SIGNATURE_SIZE, VerifyKey
from xlink.documents import parse_document
from xlink.errors import DocumentError, InputError
from xlink.identifiers import AGENCY_ID

__all__ = [
    "CHECKPOINTS_FORMAT",
    "CheckpointsFile",
    "PublishedCheckpoint",
    "dump_checkpoints",
    "load_checkpoints",
    "make_checkpoint",
]

CHECKPOINTS_FORMAT: Final = "xlink-audit-checkpoints-v1"
"""The ``format`` member of an exported checkpoints file."""

_MAX_SEQ: Final = 2**63 - 1
# The times a datetime holds (years 1..9999): a checkpoint dated outside is malformed, so that
# a decoder never raises OverflowError.
_MIN_TIME_US: Final = to_micros(datetime.min.replace(tzinfo=UTC))
_MAX_TIME_US: Final = to_micros(datetime.max.replace(tzinfo=UTC))


def _int(value: object, low: int, high: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"a checkpoint's {what} must be an integer in {low}..{high}")
    return value


def _bytes(value: object, size: int, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != size:
        raise ValueError(f"a checkpoint's {what} must be {size} bytes")
    return value


def make_checkpoint(
    seq: object,
    head_hash: object,
    time_us: object,
    prev_seq: object,
    interval: object,
    signature: object,
) -> Checkpoint:
    """A :class:`~xlink.audit.Checkpoint` from its wire members, each checked for type and
    range: ``seq`` 1..2⁶³−1, ``prev_seq`` 0..seq−1, ``interval`` 1..1,000,000, a 32-byte head
    hash, a time a ``datetime`` holds (years 1..9999), a 64-byte signature. ``ValueError``
    otherwise (naming the member, never its value). The signature is not checked here."""
    s = _int(seq, 1, _MAX_SEQ, "seq")
    head = _bytes(head_hash, HASH_SIZE, "head hash")
    when = _int(time_us, _MIN_TIME_US, _MAX_TIME_US, "time")
    prev = _int(prev_seq, 0, s - 1, "prev_seq")
    every = _int(interval, 1, MAX_CHECKPOINT_EVERY, "interval")
    sig = _bytes(signature, SIGNATURE_SIZE, "signature")
    return Checkpoint(s, head, from_micros(when), prev, every, sig)


@dataclass(frozen=True, slots=True)
class PublishedCheckpoint:
    """A checkpoint and the audit verify key that signed it (:meth:`AuditLog.publish`).

    Nothing here is secret. :meth:`verify` checks the signature against the key carried along;
    whether that key is the agency's audit key is for the holder to decide (a receipt binds it
    to the recipient's MOU signing key; an auditor compares it with the key it expects)."""

    audit_key: VerifyKey
    checkpoint: Checkpoint
    _verified: bool = field(default=False, init=False, repr=False, compare=False)
    """Set once :meth:`verify` succeeded (both members are immutable), or by the log that
    signed it just now with the key it names (:meth:`AuditLog.publish
    <xlink.audit.AuditLog.publish>`): a receipt's checkpoint is checked once on each side."""

    def verify(self) -> None:
        """Raise :class:`~xlink.errors.DecryptionError` unless the signature verifies with
        :attr:`audit_key` (checked once per object)."""
        if self._verified:
            return
        self.audit_key.verify(self.checkpoint.signature, self.checkpoint.message())
        object.__setattr__(self, "_verified", True)

    @classmethod
    def signed_now(cls, audit_key: VerifyKey, checkpoint: Checkpoint) -> PublishedCheckpoint:
        """``checkpoint`` as the log publishes it right after signing it with the private half
        of ``audit_key``: valid by construction, so not verified again."""
        published = cls(audit_key, checkpoint)
        object.__setattr__(published, "_verified", True)
        return published

    def to_json(self) -> dict[str, object]:
        cp = self.checkpoint
        return {
            "audit_key": bytes(self.audit_key).hex(),
            "seq": cp.seq,
            "head_hash": cp.head_hash.hex(),
            "time_us": to_micros(cp.time),
            "prev_seq": cp.prev_seq,
            "interval": cp.interval,
            "signature": cp.signature.hex(),
        }

    @classmethod
    def from_json(cls, item: object) -> PublishedCheckpoint:
        """The inverse of :meth:`to_json`; ``ValueError`` for anything else."""
        names = ("audit_key", "seq", "head_hash", "time_us", "prev_seq", "interval", "signature")
        if not isinstance(item, dict) or set(item) != set(names):
            raise ValueError(f"a checkpoint is an object with exactly {', '.join(names)}")

        def hex_bytes(name: str, size: int) -> bytes:
            text = item[name]
            if not isinstance(text, str) or len(text) != 2 * size or not text.isascii():
                raise ValueError(f"a checkpoint's {name} must be {2 * size} hex digits")
            return bytes.fromhex(text)  # ValueError for a non-hex digit

        key = VerifyKey(hex_bytes("audit_key", KEY_SIZE))
        checkpoint = make_checkpoint(
            item["seq"],
            hex_bytes("head_hash", HASH_SIZE),
            item["time_us"],
            item["prev_seq"],
            item["interval"],
            hex_bytes("signature", SIGNATURE_SIZE),
        )
        return cls(key, checkpoint)


@dataclass(frozen=True, slots=True)
class CheckpointsFile:
    """An exported checkpoints file: checkpoints of ``agency``'s audit log, as its partner
    kept them."""

    agency: str
    checkpoints: tuple[PublishedCheckpoint, ...]


def dump_checkpoints(agency: str, checkpoints: Iterable[PublishedCheckpoint]) -> str:
    """The JSON of an exported checkpoints file (docs/audit.md, "Partner checkpoints"):
    ``{"format", "agency", "checkpoints": [...]}``, checkpoints in ``seq`` order."""
    items = sorted(checkpoints, key=lambda p: (p.checkpoint.seq, p.checkpoint.head_hash))
    doc = {
        "format": CHECKPOINTS_FORMAT,
        "agency": agency,
        "checkpoints": [p.to_json() for p in items],
    }
    return json.dumps(doc, separators=(",", ":")) + "\n"


def load_checkpoints(text: str | bytes) -> CheckpointsFile:
    """Parse an exported checkpoints file (strict JSON, :func:`xlink.documents.parse_document`:
    at most 1 MiB, about 2,600 checkpoints). Raises :class:`~xlink.errors.InputError` for
    anything that is not one (never another exception); signatures are not checked here
    (:func:`~xlink.audit.verify_log` checks each against the key it expects)."""
    try:
        doc = parse_document(text, "json")
    except DocumentError as exc:  # not UTF-8, not (strict) JSON, too large or too deep
        raise InputError(f"not a checkpoints file: {exc.reason}") from None
    if not isinstance(doc, dict) or doc.get("format") != CHECKPOINTS_FORMAT:
        raise InputError(f"not a checkpoints file: its format is not {CHECKPOINTS_FORMAT}")
    if set(doc) != {"format", "agency", "checkpoints"}:
        raise InputError("not a checkpoints file: members missing or unknown")
    agency, items = doc["agency"], doc["checkpoints"]
    if not isinstance(agency, str) or not AGENCY_ID.fullmatch(agency):
        raise InputError("checkpoints file: agency is not an agency id")
    if not isinstance(items, list):
        raise InputError("checkpoints file: checkpoints is not a list")
    out = []
    for index, item in enumerate(items):
        try:
            out.append(PublishedCheckpoint.from_json(item))
        except ValueError as exc:
            raise InputError(f"checkpoints file: checkpoint {index}: {exc}") from None
    return CheckpointsFile(agency, tuple(out))
