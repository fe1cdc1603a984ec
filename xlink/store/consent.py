"""Consent tokens: the originator's signed permission to share one release onward with one third
party, for one purpose, until a deadline (the third-party rule, DESIGN §6; docs/store.md).

Wire format, in the canonical msgpack of the release protocol (xlink-release-v1 §2, §4)::

    body  = version || msgpack([release_id: bin16, mou_id: str, third_party: str,
                                purpose: str, expires_at_us: uint])
    token = version || msgpack([body: bin, signature: bin64])
    signature = Ed25519(originator, SHA-256(lp("xlink/v1/consent") || body))

The recipient checks the signature with the originator's key as the MOU pins it
(:func:`verify_consent`); the release id binds the token to one release and so to one
recipient, the only agency that holds that release.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from xlink.audit import AuditEvent, AuditLog
from xlink.crypto.keys import SIGNATURE_SIZE, SigningKey
from xlink.errors import DecryptionError, PolicyDenied
from xlink.identifiers import PURPOSE_RULE, check_agency_id
from xlink.policy.mou import Mou
from xlink.release import ReleaseRecord, ReleaseRejected
from xlink.release.codec import Reader, lp, pack, unpack
from xlink.release.record import ID_SIZE, MAX_AGENCY_ID_BYTES, MAX_MOU_ID_BYTES, MAX_TIME_US
from xlink.store.reasons import (
    DENY_CONSENT_EXPIRED,
    DENY_CONSENT_INVALID,
    DENY_CONSENT_MISMATCH,
    DENY_NOT_A_THIRD_PARTY,
    DENY_PURPOSE_NOT_ALLOWED,
)

__all__ = ["DST_CONSENT", "ConsentToken", "issue_consent", "verify_consent"]

DST_CONSENT: Final = b"xlink/v1/consent"
#: A purpose as the MOU allows it (:data:`xlink.identifiers.PURPOSE`, ASCII: one byte a char).
MAX_PURPOSE_BYTES: Final = PURPOSE_RULE.max_chars
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(when: datetime) -> int:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("times must be aware datetimes")
    return (when - _EPOCH) // timedelta(microseconds=1)


def _time(micros: int) -> datetime:
    """``micros`` after the epoch. The wire allows up to 2**63-1, a ``datetime`` only up to
    year 9999: a later time raises :class:`~xlink.release.ReleaseRejected` (``malformed``)."""
    try:
        return _EPOCH + timedelta(microseconds=micros)
    except OverflowError:
        raise ReleaseRejected("malformed") from None


@dataclass(frozen=True, slots=True)
class ConsentToken:
    """The originator's consent to share release ``release_id`` (made under MOU ``mou_id``) with
    ``third_party`` for ``purpose``, valid until ``expires_at`` (exclusive). ``signature`` is the
    originator's over :meth:`body`; a token built by hand is not valid until
    :func:`verify_consent` says so."""

    release_id: bytes
    mou_id: str
    third_party: str
    purpose: str
    expires_at: datetime
    signature: bytes

    def body(self) -> bytes:
        """The canonical bytes the signature covers (before domain separation)."""
        micros = _micros(self.expires_at)
        return pack([self.release_id, self.mou_id, self.third_party, self.purpose, micros])

    def to_bytes(self) -> bytes:
        """``version || msgpack([body, signature])``: what the originator sends."""
        return pack([self.body(), self.signature])

    @classmethod
    def from_bytes(cls, data: bytes) -> ConsentToken:
        """Parse a token (unverified). Raises :class:`~xlink.release.ReleaseRejected`
        (``malformed``, ``truncated``, ``too-large``, ``unsupported-version``) unless ``data``
        is exactly the canonical encoding of a token whose time a ``datetime`` can hold (up to
        year 9999)."""
        outer = Reader(unpack(data), 2)
        body = outer.bin()
        signature = outer.bin(SIGNATURE_SIZE)
        r = Reader(unpack(body), 5)
        token = cls(
            release_id=r.bin(ID_SIZE),
            mou_id=r.text(MAX_MOU_ID_BYTES, min_bytes=1),
            third_party=r.text(MAX_AGENCY_ID_BYTES, min_bytes=1),
            purpose=r.text(MAX_PURPOSE_BYTES, min_bytes=1),
            expires_at=_time(r.uint(MAX_TIME_US)),
            signature=signature,
        )
        if token.to_bytes() != bytes(data):
            raise ReleaseRejected("malformed")
        return token

    def __repr__(self) -> str:
        return (
            f"ConsentToken({self.release_id.hex()}, to={self.third_party}, "
            f"purpose={self.purpose}, expires_at={self.expires_at.isoformat()})"
        )


def _digest(body: bytes) -> bytes:
    return hashlib.sha256(lp(DST_CONSENT) + body).digest()


def issue_consent(
    record: ReleaseRecord,
    *,
    mou: Mou,
    third_party: str,
    purpose: str,
    expires_at: datetime,
    signing_key: SigningKey,
    now: datetime,
    audit: AuditLog | None = None,
) -> ConsentToken:
    """The originator's side: consent to ``record`` being shared with ``third_party`` for
    ``purpose`` until ``expires_at``, signed with ``signing_key``. Audited as
    ``CONSENT_ISSUED``.

    Raises ``ValueError`` when ``signing_key`` is not the key the MOU pins for the record's
    originator, or when ``expires_at`` is not after ``now``;
    :class:`~xlink.errors.IdentifierError` (a ``ValueError``) when ``third_party`` is not an
    agency id (:data:`xlink.identifiers.AGENCY_ID`, the rule of the MOU's parties); and
    :class:`~xlink.errors.PolicyDenied` when ``third_party`` is one of the MOU's parties
    (``not-a-third-party``) or ``purpose`` is not one of the MOU's (``purpose-not-allowed``).
    """
    try:
        originator = mou.party(record.originator)
    except KeyError:
        raise ValueError("the record's originator is not a party to this MOU") from None
    if signing_key.verify_key != originator.verify_key:
        raise ValueError("signing_key is not the originator's key in the MOU")
    check_agency_id(third_party, what="third_party")
    if _micros(expires_at) <= _micros(now):
        raise ValueError("expires_at must be after now")
    if third_party in mou.agency_ids:
        raise PolicyDenied([DENY_NOT_A_THIRD_PARTY])
    if purpose not in mou.purposes:
        raise PolicyDenied([DENY_PURPOSE_NOT_ALLOWED])
    unsigned = ConsentToken(record.release_id, mou.id, third_party, purpose, expires_at, b"")
    token = ConsentToken(
        record.release_id,
        mou.id,
        third_party,
        purpose,
        expires_at,
        signing_key.sign(_digest(unsigned.body())),
    )
    if audit is not None:
        fields = {
            "handle": record.release_id,
            "session": record.session_id,
            "peer": third_party,
            "purpose": purpose,
        }
        audit.append(AuditEvent.CONSENT_ISSUED, fields, now=now)
    return token


def verify_consent(
    token: ConsentToken, record: ReleaseRecord, *, mou: Mou, third_party: str, now: datetime
) -> None:
    """Raise :class:`~xlink.errors.PolicyDenied` unless ``token`` is the originator's valid,
    unexpired consent to share ``record`` with ``third_party`` under ``mou``. Checked in this
    order, first failure wins: the signature by the originator's key as the MOU pins it
    (``consent-invalid``); release id, MOU id and third party (``consent-mismatch``); a purpose
    of the MOU (``purpose-not-allowed``); ``now`` before ``expires_at`` (``consent-expired``).
    """
    try:
        originator = mou.party(record.originator)
        originator.verify_key.verify(token.signature, _digest(token.body()))
    except (KeyError, ValueError, DecryptionError):
        raise PolicyDenied([DENY_CONSENT_INVALID]) from None
    if (
        token.release_id != record.release_id
        or token.mou_id != mou.id
        or token.mou_id != record.mou_id
        or token.third_party != third_party
    ):
        raise PolicyDenied([DENY_CONSENT_MISMATCH])
    if token.purpose not in mou.purposes:
        raise PolicyDenied([DENY_PURPOSE_NOT_ALLOWED])
    if _micros(now) >= _micros(token.expires_at):
        raise PolicyDenied([DENY_CONSENT_EXPIRED])
