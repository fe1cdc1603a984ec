"""The release record, its canonical encoding and its Ed25519 signature (spec: xlink-release-v1
§4, §5).

A :class:`ReleaseRecord` is what the originator releases about one decided match. It is encoded
canonically (:func:`encode_release`), signed over a domain-separated digest
(:func:`sign_release`), and the signed envelope is sealed to the recipient
(:mod:`xlink.release.seal`). Decoding is strict: any bytes that are not exactly the encoding of
a valid record raise :class:`~xlink.release.ReleaseRejected` and nothing else.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Final, TypeVar

from xlink.crypto.keys import SIGNATURE_SIZE, SigningKey
from xlink.policy.mou import Caveats, PermittedAction, Tlp
from xlink.records.model import Category, Grading, HandlingCode
from xlink.release.codec import Reader, ReleaseRejected, lp, pack, unpack
from xlink.release.handles import SOURCE_HANDLE_SIZE
from xlink.release.policy import grading_from_wire, grading_to_wire

__all__ = [
    "DST_RELEASE",
    "DST_RELEASE_CONTENT",
    "ID_SIZE",
    "MAX_AHEAD",
    "MAX_FIELDS",
    "MAX_MATCH_HANDLES",
    "MAX_VALUES_PER_FIELD",
    "MAX_VALUE_BYTES",
    "ReleaseRecord",
    "SignedRelease",
    "content_digest",
    "decode_release",
    "decode_signed_release",
    "encode_release",
    "fields_fit",
    "release_digest",
    "sign_release",
]

DST_RELEASE: Final = b"xlink/v1/release"
DST_RELEASE_CONTENT: Final = b"xlink/v1/release-content"
ID_SIZE: Final = 16
DIGEST_SIZE: Final = 32
HANDLE_SIZE: Final = 16
MAX_MOU_ID_BYTES: Final = 128
MAX_AGENCY_ID_BYTES: Final = 64
MAX_FIELD_NAME_BYTES: Final = 80
MAX_FIELDS: Final = 128
MAX_VALUES_PER_FIELD: Final = 64
MAX_VALUE_BYTES: Final = 4096
MAX_MATCH_HANDLES: Final = 1024
#: How far ahead of our clock a time the partner signs may be (a release's ``created_at``, a
#: receipt's ``received_at`` and its checkpoint's time): clocks drift, but a later date would
#: lengthen a release's retention or date a delivery that has not happened.
MAX_AHEAD: Final = timedelta(hours=1)
MAX_CONDITIONS_BYTES: Final = 16000
MAX_RETENTION_DAYS: Final = 36500
MAX_TIME_US: Final = 2**63 - 1
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_E = TypeVar("_E", Tlp, PermittedAction, HandlingCode, Category)


def _to_micros(when: datetime) -> int:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("created_at must be an aware datetime")
    return (when - _EPOCH) // timedelta(microseconds=1)


def _utf8_size(text: str) -> int:
    return len(text.encode("utf-8"))


def fields_fit(fields: Mapping[str, Sequence[str]]) -> bool:
    """Whether a release can carry these fields' values (spec §4.1): 1 to
    :data:`MAX_VALUES_PER_FIELD` a field, each text of at most :data:`MAX_VALUE_BYTES` bytes
    of UTF-8, as :class:`ReleaseRecord` requires. A record whose tearline does not fit is
    denied, that match alone, rather than failing a whole transfer."""
    return all(
        1 <= len(values) <= MAX_VALUES_PER_FIELD
        and all(type(v) is str and _utf8_size(v) <= MAX_VALUE_BYTES for v in values)
        for values in fields.values()
    )


@dataclass(frozen=True, slots=True)
class ReleaseRecord:
    """One released record (spec §4.1). The constructor checks sizes (``ValueError``), not
    policy: :func:`~xlink.release.decide_release` decides the content and
    :func:`~xlink.release.open_release` re-checks it on receipt.

    ``match_handles`` are the shared PSI handles of the decided pair: both sides hold them, so
    the recipient finds its own record with them (:func:`~xlink.release.match_for`).
    ``source_handle`` stands in for the source (:mod:`xlink.release.handles`).
    """

    release_id: bytes
    session_id: bytes
    mou_id: str
    mou_digest: bytes
    originator: str
    recipient: str
    category: Category
    match_handles: tuple[bytes, ...]
    created_at: datetime
    fields: Mapping[str, tuple[str, ...]]
    caveats: Caveats
    grading: Grading | None
    source_handle: bytes

    def __post_init__(self) -> None:
        for value, size, what in (
            (self.release_id, ID_SIZE, "release_id"),
            (self.session_id, ID_SIZE, "session_id"),
            (self.mou_digest, DIGEST_SIZE, "mou_digest"),
            (self.source_handle, SOURCE_HANDLE_SIZE, "source_handle"),
        ):
            if type(value) is not bytes or len(value) != size:
                raise ValueError(f"{what} must be {size} bytes")
        if not 1 <= _utf8_size(self.mou_id) <= MAX_MOU_ID_BYTES:
            raise ValueError("mou_id length out of range")
        for agency in (self.originator, self.recipient):
            if not 1 <= _utf8_size(agency) <= MAX_AGENCY_ID_BYTES:
                raise ValueError("agency id length out of range")
        handles = tuple(self.match_handles)
        if not 1 <= len(handles) <= MAX_MATCH_HANDLES or any(
            type(h) is not bytes or len(h) != HANDLE_SIZE for h in handles
        ):
            raise ValueError(f"1..{MAX_MATCH_HANDLES} match handles of {HANDLE_SIZE} bytes")
        object.__setattr__(self, "match_handles", handles)
        if not 0 <= _to_micros(self.created_at) <= MAX_TIME_US:
            raise ValueError("created_at out of range")
        fields = {name: tuple(self.fields[name]) for name in sorted(self.fields)}
        if len(fields) > MAX_FIELDS:
            raise ValueError(f"at most {MAX_FIELDS} fields")
        for name, values in fields.items():
            if not 1 <= _utf8_size(name) <= MAX_FIELD_NAME_BYTES:
                raise ValueError("field name length out of range")
            if not 1 <= len(values) <= MAX_VALUES_PER_FIELD:
                raise ValueError(f"1..{MAX_VALUES_PER_FIELD} values per field")
            if any(type(v) is not str or _utf8_size(v) > MAX_VALUE_BYTES for v in values):
                raise ValueError(f"field values are text of at most {MAX_VALUE_BYTES} bytes")
        object.__setattr__(self, "fields", MappingProxyType(fields))
        if _utf8_size(self.caveats.handling_conditions) > MAX_CONDITIONS_BYTES:
            raise ValueError("handling_conditions too long")
        if not 0 <= self.caveats.retention_days <= MAX_RETENTION_DAYS:
            raise ValueError("retention_days out of range")

    def __repr__(self) -> str:  # released values are plaintext identities
        return (
            f"ReleaseRecord(release_id={self.release_id.hex()!r}, "
            f"category={self.category.value}, {self.originator}->{self.recipient}, "
            f"fields={sorted(self.fields)})"
        )


def _caveats_to_wire(c: Caveats) -> list[object]:
    return [
        c.tlp.value,
        c.permitted_actions.value,
        c.provider_attribution,
        c.affected_party_notifications,
        c.unmodified_resale,
        c.encrypt_at_rest,
        c.handling_code.value,
        c.handling_conditions,
        c.originator_control,
        c.retention_days,
        c.require_grading,
    ]


def _body(record: ReleaseRecord) -> list[object]:
    grading = None if record.grading is None else list(grading_to_wire(record.grading))
    return [
        record.release_id,
        record.session_id,
        record.mou_id,
        record.mou_digest,
        record.originator,
        record.recipient,
        record.category.value,
        list(record.match_handles),
        _to_micros(record.created_at),
        [[name, list(values)] for name, values in record.fields.items()],
        _caveats_to_wire(record.caveats),
        grading,
        record.source_handle,
    ]


def encode_release(record: ReleaseRecord) -> bytes:
    """The canonical bytes of ``record`` (spec §4.2): what the originator signs."""
    return pack(_body(record))


def release_digest(encoded: bytes) -> bytes:
    """``SHA-256(lp("xlink/v1/release") || encoded)`` (spec §5): the signed digest, the
    ``digest`` of audit entries and what a receipt acknowledges."""
    return hashlib.sha256(lp(DST_RELEASE) + encoded).digest()


def content_digest(record: ReleaseRecord) -> bytes:
    """``SHA-256(lp("xlink/v1/release-content") || pack(content))``: what a release says about
    its record, without what changes from one release of it to the next (release id, session,
    match handles, time, source handle). Two releases of the same record version under the same
    MOU to the same recipient have the same content digest, so neither side keeps a record twice
    when an exchange is run again (xlink-release-v1 §10.4). Local only: never on the wire."""
    body = _body(record)
    content = [body[2], body[3], body[4], body[5], body[6], *body[9:12]]
    return hashlib.sha256(lp(DST_RELEASE_CONTENT) + pack(content)).digest()


def _enum(kind: type[_E], value: str) -> _E:
    try:
        return kind(value)
    except ValueError:
        raise ReleaseRejected("malformed") from None


def _caveats_from_wire(items: list[object]) -> Caveats:
    r = Reader(items, 11)
    return Caveats(
        tlp=_enum(Tlp, r.text(32)),
        permitted_actions=_enum(PermittedAction, r.text(64)),
        provider_attribution=r.boolean(),
        affected_party_notifications=r.boolean(),
        unmodified_resale=r.boolean(),
        encrypt_at_rest=r.boolean(),
        handling_code=_enum(HandlingCode, r.text(8)),
        handling_conditions=r.text(MAX_CONDITIONS_BYTES),
        originator_control=r.boolean(),
        retention_days=r.uint(MAX_RETENTION_DAYS),
        require_grading=r.boolean(),
    )


def _fields_from_wire(items: list[object]) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for item in items:
        if type(item) is not list:
            raise ReleaseRejected("malformed")
        r = Reader(item, 2)
        name = r.text(MAX_FIELD_NAME_BYTES, min_bytes=1)
        values = r.array(MAX_VALUES_PER_FIELD, min_items=1)
        texts = tuple(Reader([v], 1).text(MAX_VALUE_BYTES) for v in values)
        if name in out:
            raise ReleaseRejected("malformed")
        out[name] = texts
    return out


def decode_release(data: bytes) -> ReleaseRecord:
    """The record encoded in ``data``; :class:`ReleaseRejected` unless ``data`` is exactly
    :func:`encode_release` of a valid record (spec §4.2)."""
    r = Reader(unpack(data), 13)
    release_id = r.bin(ID_SIZE)
    session_id = r.bin(ID_SIZE)
    mou_id = r.text(MAX_MOU_ID_BYTES, min_bytes=1)
    mou_digest = r.bin(DIGEST_SIZE)
    originator = r.text(MAX_AGENCY_ID_BYTES, min_bytes=1)
    recipient = r.text(MAX_AGENCY_ID_BYTES, min_bytes=1)
    category = _enum(Category, r.text(32))
    handles = tuple(
        Reader([h], 1).bin(HANDLE_SIZE) for h in r.array(MAX_MATCH_HANDLES, min_items=1)
    )
    created_us = r.uint(MAX_TIME_US)
    fields = _fields_from_wire(r.array(MAX_FIELDS))
    caveats = _caveats_from_wire(r.array(11, min_items=11))
    grading_items = r.optional_array(2)
    source_handle = r.bin(SOURCE_HANDLE_SIZE)
    try:
        grading = None
        if grading_items is not None:
            g = Reader(grading_items, 2)
            grading = grading_from_wire(g.text(16), g.text(2))
        record = ReleaseRecord(
            release_id=release_id,
            session_id=session_id,
            mou_id=mou_id,
            mou_digest=mou_digest,
            originator=originator,
            recipient=recipient,
            category=category,
            match_handles=handles,
            created_at=_EPOCH + timedelta(microseconds=created_us),
            fields=fields,
            caveats=caveats,
            grading=grading,
            source_handle=source_handle,
        )
    except (ValueError, OverflowError):
        raise ReleaseRejected("malformed") from None
    if encode_release(record) != bytes(data):
        raise ReleaseRejected("malformed")
    return record


@dataclass(frozen=True, slots=True)
class SignedRelease:
    """A release record with the originator's signature over :func:`release_digest` of its
    encoding (spec §5). :meth:`to_bytes` is the envelope that gets sealed."""

    record: ReleaseRecord
    encoded: bytes
    signature: bytes

    @property
    def digest(self) -> bytes:
        return release_digest(self.encoded)

    def to_bytes(self) -> bytes:
        """``version || msgpack([encoded, signature])`` (spec §5.2)."""
        return pack([self.encoded, self.signature])

    def __repr__(self) -> str:
        return f"SignedRelease({self.record!r})"


def sign_release(record: ReleaseRecord, key: SigningKey) -> SignedRelease:
    """Encode ``record`` and sign its digest with the originator's Ed25519 key (spec §5)."""
    encoded = encode_release(record)
    return SignedRelease(record, encoded, key.sign(release_digest(encoded)))


def decode_signed_release(data: bytes) -> tuple[bytes, bytes]:
    """``(encoded record, signature)`` from a signed envelope, unverified and unparsed
    (spec §5.2); :class:`ReleaseRejected` if the envelope is not canonical."""
    r = Reader(unpack(data), 2)
    encoded = r.bin()
    signature = r.bin(SIGNATURE_SIZE)
    if pack([encoded, signature]) != bytes(data):
        raise ReleaseRejected("malformed")
    return encoded, signature
