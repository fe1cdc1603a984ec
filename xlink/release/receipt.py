"""Receipts: the recipient's signed acknowledgement of one release (spec: xlink-release-v1 §8).

A receipt names the release (id, session, digest of the signed record bytes), both agencies and
the time of receipt, and is signed by the recipient over a domain-separated digest. The
originator keeps it as proof of delivery under the MOU's caveats.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from xlink.crypto.keys import SIGNATURE_SIZE, SigningKey
from xlink.policy.mou import Mou
from xlink.release.codec import Reader, ReleaseRejected, lp, pack, unpack
from xlink.release.record import (
    DIGEST_SIZE,
    ID_SIZE,
    MAX_AGENCY_ID_BYTES,
    MAX_TIME_US,
    ReleaseRecord,
    encode_release,
    release_digest,
)
from xlink.release.seal import SealedRelease

__all__ = ["DST_RECEIPT", "Receipt", "issue_receipt", "verify_receipt"]

DST_RECEIPT: Final = b"xlink/v1/receipt"
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a verified receipt says (spec §8.1)."""

    release_id: bytes
    session_id: bytes
    release_digest: bytes
    originator: str
    recipient: str
    received_at: datetime


def _time(micros: int) -> datetime:
    """``micros`` after the epoch. The wire allows up to 2**63-1, a ``datetime`` only up to
    year 9999: a later time raises :class:`ReleaseRejected` (``malformed``)."""
    try:
        return _EPOCH + timedelta(microseconds=micros)
    except OverflowError:
        raise ReleaseRejected("malformed") from None


def _receipt_digest(body: bytes) -> bytes:
    return hashlib.sha256(lp(DST_RECEIPT) + body).digest()


def _encode_body(r: Receipt) -> bytes:
    if r.received_at.tzinfo is None:
        raise ValueError("received_at must be an aware datetime")
    micros = (r.received_at - _EPOCH) // timedelta(microseconds=1)
    return pack([r.release_id, r.session_id, r.release_digest, r.originator, r.recipient, micros])


def issue_receipt(record: ReleaseRecord, key: SigningKey, *, now: datetime) -> bytes:
    """The signed receipt for ``record`` (as returned by
    :func:`~xlink.release.open_release`), dated ``now``: ``version || msgpack([body,
    signature])`` with the signature over ``SHA-256(lp("xlink/v1/receipt") || body)``."""
    receipt = Receipt(
        release_id=record.release_id,
        session_id=record.session_id,
        release_digest=release_digest(encode_release(record)),
        originator=record.originator,
        recipient=record.recipient,
        received_at=now,
    )
    body = _encode_body(receipt)
    return pack([body, key.sign(_receipt_digest(body))])


def _decode_body(body: bytes) -> Receipt:
    r = Reader(unpack(body), 6)
    receipt = Receipt(
        release_id=r.bin(ID_SIZE),
        session_id=r.bin(ID_SIZE),
        release_digest=r.bin(DIGEST_SIZE),
        originator=r.text(MAX_AGENCY_ID_BYTES, min_bytes=1),
        recipient=r.text(MAX_AGENCY_ID_BYTES, min_bytes=1),
        received_at=_time(r.uint(MAX_TIME_US)),
    )
    if _encode_body(receipt) != body:
        raise ReleaseRejected("malformed")
    return receipt


def verify_receipt(data: bytes, *, mou: Mou, release: SealedRelease) -> Receipt:
    """Check a receipt for ``release`` (spec §8.2): parse the envelope (:class:`ReleaseRejected`),
    verify the signature with the recipient's key from the MOU
    (:class:`~xlink.errors.DecryptionError`), parse the body (:class:`ReleaseRejected`
    ``malformed``, also for a time past year 9999), then check that it names this release,
    session, digest and these agencies (``wrong-release``)."""
    r = Reader(unpack(data), 2)
    body = r.bin()
    signature = r.bin(SIGNATURE_SIZE)
    if pack([body, signature]) != bytes(data):
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
    return receipt
