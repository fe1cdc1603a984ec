"""Sealing a signed release to the recipient, and everything the recipient checks on opening
it (spec: xlink-release-v1 §5.3, §7).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from xlink.crypto.keys import SealingKey
from xlink.decide import DecidedMatch
from xlink.errors import PolicyDenied
from xlink.policy.document import mou_digest
from xlink.policy.mou import Mou
from xlink.release.codec import ReleaseRejected
from xlink.release.policy import (
    DENY_CATEGORY_NOT_ALLOWED,
    DENY_CAVEATS_MISMATCH,
    DENY_FIELD_NOT_ALLOWED,
    DENY_GRADING_MISSING,
    DENY_GRADING_NOT_ALLOWED,
    is_forbidden_field,
)
from xlink.release.record import (
    ReleaseRecord,
    SignedRelease,
    decode_release,
    decode_signed_release,
    release_digest,
)

__all__ = ["SealedRelease", "check_release_policy", "match_for", "open_release", "seal_release"]


@dataclass(frozen=True, slots=True)
class SealedRelease:
    """A signed release sealed to the recipient: ``data`` is what is sent and stored (encrypted
    at rest). The other members are the originator's own bookkeeping (audit, receipts) and are
    not sent beside ``data``."""

    release_id: bytes
    session_id: bytes
    digest: bytes
    originator: str
    recipient: str
    category: str
    data: bytes
    match_handles: tuple[bytes, ...] = ()
    """The decided pair's handles: what the transfer labels the release with (spec §10.2)."""

    def __repr__(self) -> str:
        return f"SealedRelease({self.release_id.hex()}, {self.originator}->{self.recipient})"


def seal_release(signed: SignedRelease, mou: Mou) -> SealedRelease:
    """Seal ``signed`` to its recipient's X25519 key as the MOU pins it (spec §5.3).

    Raises :class:`~xlink.errors.PolicyDenied` (``not-a-party``) if the record names a
    recipient the MOU does not, or one that is its own originator.
    """
    record = signed.record
    try:
        recipient = mou.party(record.recipient)
        mou.party(record.originator)
    except KeyError:
        raise PolicyDenied(["not-a-party"]) from None
    if record.recipient == record.originator:
        raise PolicyDenied(["not-a-party"])
    return SealedRelease(
        release_id=record.release_id,
        session_id=record.session_id,
        digest=signed.digest,
        originator=record.originator,
        recipient=record.recipient,
        category=record.category.value,
        data=recipient.sealing_key.seal(signed.to_bytes()),
        match_handles=record.match_handles,
    )


def check_release_policy(record: ReleaseRecord, mou: Mou) -> None:
    """Raise :class:`~xlink.errors.PolicyDenied` unless ``record`` carries no more than the MOU
    allows (spec §7 steps 9-10): an allowed category, only its releasable fields and never a
    source field, the MOU's caveats for that category, and the grading exactly when required.
    Reasons are collected and given in this order."""
    policy = mou.policy_for(record.category)
    if policy is None:
        raise PolicyDenied([DENY_CATEGORY_NOT_ALLOWED])
    reasons = []
    if any(not policy.releases(n) or is_forbidden_field(n) for n in record.fields):
        reasons.append(DENY_FIELD_NOT_ALLOWED)
    if record.caveats != policy.caveats:
        reasons.append(DENY_CAVEATS_MISMATCH)
    if policy.caveats.require_grading and record.grading is None:
        reasons.append(DENY_GRADING_MISSING)
    if not policy.caveats.require_grading and record.grading is not None:
        reasons.append(DENY_GRADING_NOT_ALLOWED)
    if reasons:
        raise PolicyDenied(reasons)


def _local_party(mou: Mou, key: SealingKey) -> str:
    for party in mou.parties:
        if party.sealing_key == key.public_key:
            return party.agency_id
    raise ValueError("this sealing key is not a party's key in the MOU")


def open_release(
    sealed: bytes | SealedRelease,
    sealing_key: SealingKey,
    *,
    mou: Mou,
    expected_session_id: bytes,
) -> ReleaseRecord:
    """Open, authenticate and check a release sealed to us (spec §7), in this order:

    1. open the sealed box: :class:`~xlink.errors.DecryptionError`;
    2. parse the signed envelope: :class:`ReleaseRejected` (``malformed``, ``truncated``,
       ``too-large``, ``unsupported-version``);
    3. verify the signature with the MOU peer's verify key: ``DecryptionError``;
    4. parse the record: ``ReleaseRejected`` as in 2;
    5. originator is the MOU peer: ``wrong-originator``; 6. recipient is us:
       ``wrong-recipient``; 7. MOU id and digest: ``mou-mismatch``; 8. session:
       ``wrong-session``;
    9-10. :func:`check_release_policy`: :class:`~xlink.errors.PolicyDenied`.

    "Us" is the MOU party whose sealing key ``sealing_key`` is (``ValueError`` if none).
    """
    us = _local_party(mou, sealing_key)
    peer = mou.peer_of(us)
    data = sealed.data if isinstance(sealed, SealedRelease) else sealed
    envelope = sealing_key.open(data)
    encoded, signature = decode_signed_release(envelope)
    peer.verify_key.verify(signature, release_digest(encoded))
    record = decode_release(encoded)
    if record.originator != peer.agency_id:
        raise ReleaseRejected("wrong-originator")
    if record.recipient != us:
        raise ReleaseRejected("wrong-recipient")
    if record.mou_id != mou.id or record.mou_digest != mou_digest(mou):
        raise ReleaseRejected("mou-mismatch")
    if record.session_id != expected_session_id:
        raise ReleaseRejected("wrong-session")
    check_release_policy(record, mou)
    return record


def match_for(record: ReleaseRecord, matches: Iterable[DecidedMatch]) -> DecidedMatch | None:
    """The recipient's own decided match that ``record`` is about: the one whose match handles
    are exactly the record's (both sides of a pair hold the same handles, the tokens the two
    records share), or ``None``. Sharing only some handles is not enough: one record can be in
    two decided pairs (a person recorded twice on one side) that share a token."""
    handles = tuple(sorted(record.match_handles))
    for match in matches:
        if tuple(sorted(match.handles)) == handles:
            return match
    return None
