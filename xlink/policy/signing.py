"""Signing an MOU and accepting a signed one (docs/mou.md §5).

Each party signs :func:`~xlink.policy.document.mou_digest` with the Ed25519 key the MOU names for
it. :func:`accept_mou` is the one gate before an MOU is used: both signatures valid, the local
agency a party, the day within the validity period; otherwise :class:`MouRefused` lists every
reason at once.
"""

from __future__ import annotations

import datetime
from typing import Final

from xlink.crypto.keys import SigningKey
from xlink.errors import DecryptionError, MouRefused
from xlink.policy.document import mou_digest
from xlink.policy.mou import Mou, SignedMou

__all__ = [
    "EXPIRED",
    "NOT_A_PARTY",
    "NOT_YET_VALID",
    "SIGNATURE_INVALID",
    "SIGNATURE_MISSING",
    "MouRefused",
    "accept_mou",
    "sign_mou",
]

#: Refusal reasons (``MouRefused.reasons``); the signature reasons end in ``:<agency_id>``.
NOT_A_PARTY: Final = "not-a-party"
SIGNATURE_MISSING: Final = "signature-missing"
SIGNATURE_INVALID: Final = "signature-invalid"
NOT_YET_VALID: Final = "not-yet-valid"
EXPIRED: Final = "expired"


def sign_mou(mou: Mou | SignedMou, agency_id: str, signing_key: SigningKey) -> SignedMou:
    """Add (or replace) ``agency_id``'s signature over :func:`mou_digest`.

    Raises ``ValueError`` if the MOU does not name ``agency_id`` or if ``signing_key`` is not the
    key it names for that party (a signature nobody could verify is a mistake, not a document).
    """
    signed = mou if isinstance(mou, SignedMou) else SignedMou(mou)
    try:
        party = signed.mou.party(agency_id)
    except KeyError:
        raise ValueError("the MOU does not name this agency") from None
    if signing_key.verify_key != party.verify_key:
        raise ValueError("signing_key is not the verify key the MOU names for this agency")
    signature = signing_key.sign(mou_digest(signed.mou))
    return SignedMou(signed.mou, {**signed.signatures, agency_id: signature})


def accept_mou(signed: SignedMou, *, local_agency: str, today: datetime.date) -> Mou:
    """Return the MOU if ``local_agency`` may use it on ``today``; raise :class:`MouRefused`.

    Refused when ``local_agency`` is not a party, when either party's signature is missing or does
    not verify under the key the MOU names for it (:meth:`VerifyKey.verify`, i.e. the library's
    constant-time Ed25519 check), when ``today`` is before ``valid_from`` or after
    ``valid_until``. All reasons are collected. ``today`` is the caller's date (no clock is read
    here); use the UTC date unless the MOU says otherwise.
    """
    if isinstance(today, datetime.datetime) or not isinstance(today, datetime.date):
        raise TypeError("today must be a datetime.date (not a datetime)")
    mou = signed.mou
    reasons: list[str] = []
    if local_agency not in mou.agency_ids:
        reasons.append(NOT_A_PARTY)
    digest = mou_digest(mou)
    for party in mou.parties:
        signature = signed.signatures.get(party.agency_id)
        if signature is None:
            reasons.append(f"{SIGNATURE_MISSING}:{party.agency_id}")
            continue
        try:
            party.verify_key.verify(signature, digest)
        except DecryptionError:
            reasons.append(f"{SIGNATURE_INVALID}:{party.agency_id}")
    if today < mou.valid_from:
        reasons.append(NOT_YET_VALID)
    if today > mou.valid_until:
        reasons.append(EXPIRED)
    if reasons:
        raise MouRefused(reasons)
    return mou
