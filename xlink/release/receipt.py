"""Receipts: the recipient's signed acknowledgement of one release (spec: xlink-release-v1 §8).

A receipt (version 2) names the release (id, session, digest of the signed record bytes), both
agencies and the time of receipt, and carries the recipient's latest audit checkpoint with the
audit verify key that signed it; the whole is signed by the recipient's MOU signing key over a
domain-separated digest. The originator keeps it as proof of delivery under the MOU's caveats,
and keeps the checkpoint as an anchor of the recipient's audit log (docs/audit.md): from then
on the recipient cannot rewrite or truncate its log before that point unseen, even with its
audit key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from xlink.audit import PublishedCheckpoint, make_checkpoint
from xlink.crypto.keys import KEY_SIZE, SIGNATURE_SIZE, SigningKey, VerifyKey
from xlink.errors import XlinkError
from xlink.policy.mou import Mou
from xlink.release.codec import Reader, ReleaseRejected, lp, pack, unpack
from xlink.release.record import (
    DIGEST_SIZE,
    ID_SIZE,
    MAX_AGENCY_ID_BYTES,
    MAX_AHEAD,
    MAX_TIME_US,
    ReleaseRecord,
    encode_release,
    release_digest,
)
from xlink.release.seal import SealedRelease

__all__ = ["DST_RECEIPT", "RECEIPT_VERSION", "Receipt", "issue_receipt", "verify_receipt"]

DST_RECEIPT: Final = b"xlink/v1/receipt"
RECEIPT_VERSION: Final = 2
"""The first byte of a receipt and of its body (§8.1); a version-1 receipt, which carried no
checkpoint, is refused as ``unsupported-version``."""
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_CHECKPOINT_MEMBERS: Final = 7


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a verified receipt says (spec §8.1): ``checkpoint`` is the recipient's latest
    audit checkpoint with its audit verify key, signature checked (None: the recipient had
    none to give: no audit log, or nothing logged yet)."""

    release_id: bytes
    session_id: bytes
    release_digest: bytes
    originator: str
    recipient: str
    received_at: datetime
    checkpoint: PublishedCheckpoint | None = None


def _time(micros: int) -> datetime:
    """``micros`` after the epoch. The wire allows up to 2**63-1, a ``datetime`` only up to
    year 9999: a later time raises :class:`ReleaseRejected` (``malformed``)."""
    try:
        return _EPOCH + timedelta(microseconds=micros)
    except OverflowError:
        raise ReleaseRejected("malformed") from None


def _receipt_digest(body: bytes) -> bytes:
    return hashlib.sha256(lp(DST_RECEIPT) + body).digest()


def _micros(when: datetime) -> int:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("times must be aware datetimes")
    return (when - _EPOCH) // timedelta(microseconds=1)


def _encode_checkpoint(published: PublishedCheckpoint | None) -> list[object] | None:
    if published is None:
        return None
    cp = published.checkpoint
    return [
        bytes(published.audit_key),
        cp.seq,
        cp.head_hash,
        _micros(cp.time),
        cp.prev_seq,
        cp.interval,
        cp.signature,
    ]


def _encode_body(r: Receipt) -> bytes:
    members: list[object] = [r.release_id, r.session_id, r.release_digest, r.originator]
    members += [r.recipient, _micros(r.received_at), _encode_checkpoint(r.checkpoint)]
    return pack(members, version=RECEIPT_VERSION)


def issue_receipt(
    record: ReleaseRecord,
    key: SigningKey,
    *,
    now: datetime,
    checkpoint: PublishedCheckpoint | None,
) -> bytes:
    """The signed receipt for ``record`` (as returned by :func:`~xlink.release.open_release`),
    dated ``now``, carrying the recipient's ``checkpoint`` (:meth:`AuditLog.publish
    <xlink.audit.AuditLog.publish>`, signed just before; None only without an audit log or
    with an empty one): ``0x02 || msgpack([body, signature])`` with the signature over
    ``SHA-256(lp("xlink/v1/receipt") || body)`` (spec §8.1). ``ValueError`` for a naive
    ``now``, or a checkpoint outside the wire's ranges (dated before 1970) or whose signature
    does not verify (a receipt never carries what the originator would refuse)."""
    if checkpoint is not None:
        if _micros(checkpoint.checkpoint.time) < 0:
            raise ValueError("a checkpoint in a receipt is dated 1970 or later")
        try:
            checkpoint.verify()
        except XlinkError:
            raise ValueError("the checkpoint's signature does not verify with its key") from None
    receipt = Receipt(
        release_id=record.release_id,
        session_id=record.session_id,
        release_digest=release_digest(encode_release(record)),
        originator=record.originator,
        recipient=record.recipient,
        received_at=now,
        checkpoint=checkpoint,
    )
    body = _encode_body(receipt)
    return pack([body, key.sign(_receipt_digest(body))], version=RECEIPT_VERSION)


def _audit_key(raw: bytes) -> VerifyKey:
    """``VerifyKey(raw)`` (``ValueError`` for a key that is not one), kept for the few audit
    keys seen last: every receipt from a partner carries the same key."""
    key = _AUDIT_KEYS.get(raw)
    if key is None:
        key = VerifyKey(raw)
        if len(_AUDIT_KEYS) >= _AUDIT_KEYS_KEPT:
            del _AUDIT_KEYS[next(iter(_AUDIT_KEYS))]
        _AUDIT_KEYS[raw] = key
    return key


_AUDIT_KEYS: dict[bytes, VerifyKey] = {}
_AUDIT_KEYS_KEPT: Final = 16


def _decode_checkpoint(value: object) -> PublishedCheckpoint | None:
    if value is None:
        return None
    if type(value) is not list or len(value) != _CHECKPOINT_MEMBERS:
        raise ReleaseRejected("malformed")
    raw_key, seq, head, time_us, prev_seq, interval, signature = value
    if type(raw_key) is not bytes or len(raw_key) != KEY_SIZE:
        raise ReleaseRejected("malformed")
    if any(type(n) is not int for n in (seq, time_us, prev_seq, interval)):
        raise ReleaseRejected("malformed")
    try:
        audit_key = _audit_key(raw_key)
        checkpoint = make_checkpoint(seq, head, time_us, prev_seq, interval, signature)
    except ValueError:  # not a point, or a member out of range
        raise ReleaseRejected("malformed") from None
    if time_us < 0:  # the wire's times are unsigned, as received_at
        raise ReleaseRejected("malformed")
    return PublishedCheckpoint(audit_key, checkpoint)


def _decode_body(body: bytes) -> Receipt:
    items = unpack(body, version=RECEIPT_VERSION)
    r = Reader(items, 7)  # the seventh member, the checkpoint, is nil or an array
    receipt = Receipt(
        release_id=r.bin(ID_SIZE),
        session_id=r.bin(ID_SIZE),
        release_digest=r.bin(DIGEST_SIZE),
        originator=r.text(MAX_AGENCY_ID_BYTES, min_bytes=1),
        recipient=r.text(MAX_AGENCY_ID_BYTES, min_bytes=1),
        received_at=_time(r.uint(MAX_TIME_US)),
        checkpoint=_decode_checkpoint(items[6]),
    )
    if _encode_body(receipt) != body:
        raise ReleaseRejected("malformed")
    return receipt


def verify_receipt(
    data: bytes, *, mou: Mou, release: SealedRelease, now: datetime | None = None
) -> Receipt:
    """Check a receipt for ``release`` (spec §8.2): parse the envelope (:class:`ReleaseRejected`:
    ``unsupported-version`` for a version-1 receipt), verify the signature with the
    recipient's key from the MOU (:class:`~xlink.errors.DecryptionError`), parse the body
    (:class:`ReleaseRejected` ``malformed``, also for a time past year 9999 or a checkpoint
    member out of range), check that it names this release, session, digest and these
    agencies (``wrong-release``), with ``now``, that neither its ``received_at`` nor its
    checkpoint's time is more than :data:`~xlink.release.record.MAX_AHEAD` after ``now``
    (``received-in-future``: a delivery dated later than it can have happened), then that the
    checkpoint's signature verifies with the audit key it carries
    (:class:`~xlink.errors.DecryptionError`)."""
    r = Reader(unpack(data, version=RECEIPT_VERSION), 2)
    body = r.bin()
    signature = r.bin(SIGNATURE_SIZE)
    if pack([body, signature], version=RECEIPT_VERSION) != bytes(data):
        raise ReleaseRejected("malformed")
    try:
        signer = mou.party(release.recipient)
    except KeyError:
        raise ValueError("the release names a recipient the MOU does not") from None
    signer.verify_key.verify(signature, _receipt_digest(body))
    receipt = _decode_body(body)
    if (
        receipt.release_id != release.release_id
        or receipt.session_id != release.session_id
        or receipt.release_digest != release.digest
        or receipt.originator != release.originator
        or receipt.recipient != release.recipient
    ):
        raise ReleaseRejected("wrong-release")
    if now is not None:
        times = [receipt.received_at]
        if receipt.checkpoint is not None:
            times.append(receipt.checkpoint.checkpoint.time)
        if max(times) > now + MAX_AHEAD:
            raise ReleaseRejected("received-in-future")
    if receipt.checkpoint is not None:
        receipt.checkpoint.verify()
    return receipt
