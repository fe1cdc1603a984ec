"""The MOU model: what two agencies agreed, as frozen value objects (DESIGN §6, docs/mou.md).

Build an :class:`Mou` with :func:`~xlink.policy.document.validate_mou` (or ``parse_mou`` /
``load_mou``), which checks every field and reports every problem at once; the constructors here
only hold values. Caveats follow FIRST TLP 2.0 and IEP 2.0 and the UK 3x5x2 handling codes.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Final

from xlink.crypto.keys import SealingPublicKey, VerifyKey
from xlink.records.model import Category, HandlingCode

__all__ = [
    "FORBIDDEN_FIELDS",
    "MOU_FORMAT",
    "PAYLOAD_PREFIX",
    "RECORD_FIELDS",
    "CategoryPolicy",
    "Caveats",
    "Mou",
    "Party",
    "PermittedAction",
    "SignedMou",
    "Tlp",
    "payload_field",
]

#: The value of the ``format`` member of every MOU document this module reads.
MOU_FORMAT: Final = "xlink-mou-v1"

#: Canonical record fields an MOU may name as releasable (besides ``payload.<name>``).
RECORD_FIELDS: Final = (
    "given_name",
    "middle_name",
    "family_name",
    "full_name",
    "aliases",
    "birth_date",
    "sex",
    "nationalities",
    "birth_place",
    "documents",
    "addresses",
)

#: Prefix of a releasable payload field (``payload.risk_level``).
PAYLOAD_PREFIX: Final = "payload."

#: Fields that are never releasable, whatever an MOU says: they identify or grade the source
#: (source protection, DESIGN §1). Also refused as payload names (``payload.source_id``).
FORBIDDEN_FIELDS: Final = frozenset(
    {"record_id", "source_id", "source_ref", "grading", "handling_code", "handling_conditions"}
)

_NOT_NAME_CHAR = re.compile(r"[^a-z0-9]+")


def payload_field(column: str) -> str:
    """The releasable-field name of a payload column: ``payload.`` + the column folded to
    lower-case snake case (``"Risk Level"`` -> ``"payload.risk_level"``).

    Release filtering compares a record's payload keys through this function, so an MOU names
    payload fields the same way whatever the agencies' column spelling. Characters outside
    ``a-z0-9`` (after lower-casing) become ``_``; leading and trailing ``_`` are dropped.
    """
    return PAYLOAD_PREFIX + _NOT_NAME_CHAR.sub("_", column.lower()).strip("_")


class Tlp(Enum):
    """FIRST Traffic Light Protocol 2.0 label, most restrictive first."""

    RED = "RED"
    AMBER_STRICT = "AMBER+STRICT"
    AMBER = "AMBER"
    GREEN = "GREEN"
    CLEAR = "CLEAR"


class PermittedAction(Enum):
    """FIRST IEP 2.0 ``permitted_actions``: the most a recipient may do, least first."""

    NONE = "none"
    CONTACT_FOR_INSTRUCTION = "contact-for-instruction"
    INTERNALLY_VISIBLE = "internally-visible"
    EXTERNALLY_VISIBLE_INDIRECT = "externally-visible-indirect"
    EXTERNALLY_VISIBLE_DIRECT = "externally-visible-direct"


@dataclass(frozen=True, slots=True)
class Party:
    """One signatory agency and the keys it uses under this MOU.

    ``verify_key`` checks its MOU signature and the records it releases; released records are
    sealed to ``sealing_key``; ``tls_cert_sha256`` pins its TLS certificate (SHA-256 of the DER).
    ``country`` is ISO 3166-1 alpha-3 (``CAN``, ``USA``). ``max_set_size``: the largest padded
    PSI set (distinct token values rounded up to :attr:`Mou.padding_bucket`) this party may
    declare in one session; a multiple of the bucket, at most ``MAX_SET_SIZE`` (docs/mou.md §7).
    """

    agency_id: str
    name: str
    country: str
    verify_key: VerifyKey
    sealing_key: SealingPublicKey
    tls_cert_sha256: bytes
    max_set_size: int


@dataclass(frozen=True, slots=True)
class Caveats:
    """What a recipient must do with a released record of one category (docs/mou.md §3).

    ``tlp`` and the IEP 2.0 members (``permitted_actions``, ``provider_attribution``,
    ``affected_party_notifications``, ``unmodified_resale``, ``encrypt_at_rest``) are carried on
    every release. ``handling_code`` C comes with ``handling_conditions`` (P never does).
    ``originator_control``: no onward dissemination without the originator's consent (the
    third-party rule). ``retention_days``: released records are purged that many days after
    receipt. ``require_grading``: a release must carry the source grading (3x5x2 or Admiralty).
    """

    tlp: Tlp
    permitted_actions: PermittedAction
    provider_attribution: bool
    affected_party_notifications: bool
    unmodified_resale: bool
    encrypt_at_rest: bool
    handling_code: HandlingCode
    handling_conditions: str
    originator_control: bool
    retention_days: int
    require_grading: bool


@dataclass(frozen=True, slots=True)
class CategoryPolicy:
    """A record category the MOU allows, the fields releasable for it and their caveats."""

    category: Category
    releasable_fields: tuple[str, ...]
    caveats: Caveats

    def releases(self, name: str) -> bool:
        """True when ``name`` (``family_name``, ``payload.risk_level`` ...) may be released."""
        return name in self.releasable_fields


@dataclass(frozen=True, slots=True)
class Mou:
    """A validated MOU between exactly two parties (DESIGN §6).

    ``valid_from`` and ``valid_until`` are inclusive. ``schema_digest`` is
    :func:`~xlink.linkage.schema.schema_digest` of the linkage schema both parties use.
    ``follow_up_hours``: the deadline for the follow-up after a hit. ``padding_bucket``: PSI set
    sizes are padded to a multiple of it. ``query_quota_per_day``: real-time queries each party
    may make per day (0: none). ``set_size_budget_per_day``: the most padded elements one party
    may send, summed over all its sessions in a UTC day (``None``: no budget beyond each
    session's :attr:`Party.max_set_size`); modelled here, enforced from the audit log.
    """

    id: str
    version: int
    valid_from: datetime.date
    valid_until: datetime.date
    legal_basis: str
    purposes: tuple[str, ...]
    parties: tuple[Party, Party]
    schema_id: str
    schema_version: int
    schema_digest: bytes
    match_threshold: float
    approval_required: bool
    follow_up_hours: int
    categories: tuple[CategoryPolicy, ...]
    padding_bucket: int
    query_quota_per_day: int
    set_size_budget_per_day: int | None
    weights: str = "fixed"
    """``fixed``: decide with the schema's weights; ``estimated``: estimate them per session
    (:func:`xlink.decide.decide`), ``match_threshold`` then a floor under the estimated
    threshold."""
    links: str = "one-to-one"
    """The link rule, :data:`xlink.linkage.scoring.LINK_RULES`, or ``auto``: chosen per
    session from its pairs (:mod:`xlink.linkage.link_rule`)."""
    reciprocal: bool = False
    """``release.reciprocal``: in an exchange, each side sends as many releases as the fewer
    of the two offers, and never more than a few ahead of what it received
    (xlink-release-v1 §10.5); False: each sends every release it has."""

    @property
    def agency_ids(self) -> tuple[str, str]:
        return (self.parties[0].agency_id, self.parties[1].agency_id)

    def party(self, agency_id: str) -> Party:
        """The party called ``agency_id``; ``KeyError`` if the MOU does not name it."""
        for p in self.parties:
            if p.agency_id == agency_id:
                return p
        raise KeyError(agency_id)

    def peer_of(self, agency_id: str) -> Party:
        """The other party; ``KeyError`` if the MOU does not name ``agency_id``."""
        first, second = self.parties
        if first.agency_id == agency_id:
            return second
        if second.agency_id == agency_id:
            return first
        raise KeyError(agency_id)

    def policy_for(self, category: Category) -> CategoryPolicy | None:
        """The policy for ``category``, or ``None`` when the MOU does not allow that category."""
        for policy in self.categories:
            if policy.category is category:
                return policy
        return None

    def is_valid_on(self, day: datetime.date) -> bool:
        """True when ``day`` lies within ``valid_from`` .. ``valid_until`` (both inclusive)."""
        return self.valid_from <= day <= self.valid_until


@dataclass(frozen=True, slots=True)
class SignedMou:
    """An MOU and the Ed25519 signatures of its parties over
    :func:`~xlink.policy.document.mou_digest`, by agency id.

    Holding a :class:`SignedMou` says nothing about whether the signatures are valid: that is
    what :func:`~xlink.policy.signing.accept_mou` decides. Raises ``ValueError`` when a signature
    is filed under an agency the MOU does not name, or is not bytes.
    """

    mou: Mou
    signatures: Mapping[str, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        parties = set(self.mou.agency_ids)
        for agency_id, signature in self.signatures.items():
            if agency_id not in parties:
                raise ValueError("a signature is filed under an agency the MOU does not name")
            if not isinstance(signature, bytes):
                raise ValueError("signatures must be bytes")
        ordered = {a: self.signatures[a] for a in self.mou.agency_ids if a in self.signatures}
        object.__setattr__(self, "signatures", MappingProxyType(ordered))
