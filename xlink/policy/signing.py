"""Signing an MOU and accepting a signed one (docs/mou.md §5).

Each party signs :func:`~xlink.policy.document.mou_digest` with the Ed25519 key the MOU names for
it. :func:`accept_mou` is the one gate before an MOU is used: both signatures valid, the local
agency a party, the day within the validity period; otherwise :class:`MouRefused` lists every
reason at once.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Mapping
from typing import Final

from xlink.crypto.keys import SigningKey
from xlink.errors import DecryptionError, MouRefused
from xlink.policy.document import mou_digest
from xlink.policy.mou import Mou, Party, SignedMou

__all__ = [
    "EXPIRED",
    "NOT_A_PARTY",
    "NOT_YET_VALID",
    "NO_TERMS",
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
#: A multilateral MOU has no terms for the pair asked for: ``no-terms:<first>+<second>``
#: (agency ids sorted). See :func:`~xlink.policy.multilateral.pair_mou`.
NO_TERMS: Final = "no-terms"


def sign_mou(mou: Mou | SignedMou, agency_id: str, signing_key: SigningKey) -> SignedMou:
    """Add (or replace) ``agency_id``'s signature over :func:`mou_digest`.

    Raises ``ValueError`` if the MOU does not name ``agency_id`` or if ``signing_key`` is not the
    key it names for that party (a signature nobody could verify is a mistake, not a document).
    """
    signed = mou if isinstance(mou, SignedMou) else SignedMou(mou)
    signature = party_signature(signed.mou.party, agency_id, signing_key, mou_digest(signed.mou))
    return SignedMou(signed.mou, {**signed.signatures, agency_id: signature})


def party_signature(
    party_of: Callable[[str], Party], agency_id: str, signing_key: SigningKey, digest: bytes
) -> bytes:
    """``agency_id``'s signature over an MOU's ``digest`` (bilateral or multilateral), once
    ``party_of(agency_id)`` shows the MOU names it with ``signing_key``'s verify key;
    ``ValueError`` otherwise (a signature nobody could verify is a mistake, not a document)."""
    try:
        party = party_of(agency_id)
    except KeyError:
        raise ValueError("the MOU does not name this agency") from None
    if signing_key.verify_key != party.verify_key:
        raise ValueError("signing_key is not the verify key the MOU names for this agency")
    return signing_key.sign(digest)


def accept_mou(signed: SignedMou, *, local_agency: str, today: datetime.date) -> Mou:
    """Return the MOU if ``local_agency`` may use it on ``today``; raise :class:`MouRefused`.

    Refused when ``local_agency`` is not a party, when either party's signature is missing or does
    not verify under the key the MOU names for it (:meth:`VerifyKey.verify`, i.e. the library's
    constant-time Ed25519 check), when ``today`` is before ``valid_from`` or after
    ``valid_until``. All reasons are collected. ``today`` is the caller's date (no clock is read
    here); use the UTC date unless the MOU says otherwise.
    """
    check_today(today)
    mou = signed.mou
    reasons: list[str] = []
    if local_agency not in mou.agency_ids:
        reasons.append(NOT_A_PARTY)
    reasons += signature_reasons(mou.parties, signed.signatures, mou_digest(mou))
    reasons += window_reasons(mou.valid_from, mou.valid_until, today)
    if reasons:
        raise MouRefused(reasons)
    return mou


def check_today(today: object) -> None:
    """``TypeError`` unless ``today`` is a ``datetime.date`` (and not a ``datetime``)."""
    if isinstance(today, datetime.datetime) or not isinstance(today, datetime.date):
        raise TypeError("today must be a datetime.date (not a datetime)")


def signature_reasons(
    parties: Iterable[Party], signatures: Mapping[str, bytes], digest: bytes
) -> list[str]:
    """``signature-missing:<agency>`` / ``signature-invalid:<agency>`` for each party, in
    order, whose signature over ``digest`` is absent or does not verify under its key."""
    reasons: list[str] = []
    for party in parties:
        signature = signatures.get(party.agency_id)
        if signature is None:
            reasons.append(f"{SIGNATURE_MISSING}:{party.agency_id}")
            continue
        try:
            party.verify_key.verify(signature, digest)
        except DecryptionError:
            reasons.append(f"{SIGNATURE_INVALID}:{party.agency_id}")
    return reasons


def window_reasons(
    valid_from: datetime.date, valid_until: datetime.date, today: datetime.date
) -> list[str]:
    """``not-yet-valid`` or ``expired`` when ``today`` is outside the window (both inclusive)."""
    if today < valid_from:
        return [NOT_YET_VALID]
    if today > valid_until:
        return [EXPIRED]
    return []
