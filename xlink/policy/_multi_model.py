"""The multilateral MOU model: what many agencies and a hub agreed, as frozen value objects
(docs/mou.md §8). Re-exported by :mod:`xlink.policy.multilateral`, which also reads, writes,
signs and accepts it and derives each pair's bilateral view.

Build a :class:`MultilateralMou` with
:func:`~xlink.policy.multilateral.validate_multilateral` (or ``parse_multilateral`` /
``load_multilateral``), which checks every member and reports every problem at once; the
constructors here only hold values.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from xlink.crypto.keys import VerifyKey
from xlink.policy.mou import CategoryPolicy, Party

__all__ = [
    "MULTILATERAL_MOU_FORMAT",
    "HubParty",
    "MultilateralMou",
    "PairTerms",
    "SignedMultilateralMou",
]

#: The value of the ``format`` member of every multilateral MOU document.
MULTILATERAL_MOU_FORMAT: Final = "xlink-mou-multilateral-v1"


@dataclass(frozen=True, slots=True)
class HubParty:
    """The information-sharing hub that relays the pairwise exchanges. It is not a party and
    does not sign the MOU; ``verify_key`` checks what it signs (audit checkpoints it cosigns,
    its authentication to the agencies)."""

    hub_id: str
    name: str
    verify_key: VerifyKey


@dataclass(frozen=True, slots=True)
class PairTerms:
    """The terms of one ``terms`` entry: for every pair among ``parties`` (two or more agency
    ids, in document order). The members mean what the same members of a bilateral
    :class:`~xlink.policy.mou.Mou` mean."""

    parties: tuple[str, ...]
    match_threshold: float
    approval_required: bool
    follow_up_hours: int
    query_quota_per_day: int
    set_size_budget_per_day: int | None
    categories: tuple[CategoryPolicy, ...]
    reciprocal: bool = False

    def covers(self, a: str, b: str) -> bool:
        """True when ``a`` and ``b`` are two different agencies both named here."""
        return a != b and a in self.parties and b in self.parties


@dataclass(frozen=True, slots=True)
class MultilateralMou:
    """A validated multilateral MOU (docs/mou.md §8): the members common to every pair, the hub,
    two or more parties, and the terms of each pair that may exchange.

    ``valid_from`` and ``valid_until`` are inclusive. A pair without terms may not exchange
    under this MOU (:func:`~xlink.policy.multilateral.pair_mou` refuses it, ``no-terms``).
    """

    id: str
    version: int
    valid_from: datetime.date
    valid_until: datetime.date
    legal_basis: str
    purposes: tuple[str, ...]
    schema_id: str
    schema_version: int
    schema_digest: bytes
    padding_bucket: int
    hub: HubParty
    parties: tuple[Party, ...]
    terms: tuple[PairTerms, ...]

    @property
    def agency_ids(self) -> tuple[str, ...]:
        """The parties' agency ids, in document order."""
        return tuple(p.agency_id for p in self.parties)

    def party(self, agency_id: str) -> Party:
        """The party called ``agency_id``; ``KeyError`` if the MOU does not name it."""
        for p in self.parties:
            if p.agency_id == agency_id:
                return p
        raise KeyError(agency_id)

    def pairs(self) -> tuple[tuple[str, str], ...]:
        """Every pair of agencies that has terms, each pair sorted, the tuple sorted."""
        found = {
            (a, b) if a < b else (b, a)
            for terms in self.terms
            for i, a in enumerate(terms.parties)
            for b in terms.parties[i + 1 :]
        }
        return tuple(sorted(found))

    def terms_for(self, a: str, b: str) -> PairTerms | None:
        """The terms of the pair ``a``, ``b`` (in either order), or ``None`` when it has none."""
        for terms in self.terms:
            if terms.covers(a, b):
                return terms
        return None

    def is_valid_on(self, day: datetime.date) -> bool:
        """True when ``day`` lies within ``valid_from`` .. ``valid_until`` (both inclusive)."""
        return self.valid_from <= day <= self.valid_until


@dataclass(frozen=True, slots=True)
class SignedMultilateralMou:
    """A multilateral MOU and its parties' Ed25519 signatures over
    :func:`~xlink.policy.multilateral.multilateral_digest`, by agency id.

    Holding one says nothing about whether the signatures are valid: that is what
    :func:`~xlink.policy.multilateral.accept_multilateral` decides. Raises ``ValueError`` when a
    signature is filed under an agency the MOU does not name (the hub does not sign), or is not
    bytes.
    """

    mou: MultilateralMou
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
