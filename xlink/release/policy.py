"""The release decision: what of one record the MOU lets out (spec: xlink-release-v1 §3).

Pure policy, no keys, no clock: :func:`decide_release` reads a :class:`PersonRecord` and the MOU
and returns the tearline (:class:`ReleaseContent`), or raises :class:`PolicyDenied`. Everything
else in :mod:`xlink.release` (signing, sealing, the approval queue) only carries what this
function returned, so this is the one place to audit for what can leave the agency.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from xlink.errors import PolicyDenied
from xlink.policy.mou import FORBIDDEN_FIELDS, PAYLOAD_PREFIX, Caveats, Mou, payload_field
from xlink.records.model import (
    Address,
    AdmiraltyGrading,
    Category,
    Grading,
    IdentityDocument,
    PersonName,
    PersonRecord,
    UkGrading,
)

__all__ = [
    "DENY_CATEGORY_NOT_ALLOWED",
    "DENY_CAVEATS_MISMATCH",
    "DENY_FIELD_NOT_ALLOWED",
    "DENY_GRADING_MISSING",
    "DENY_GRADING_NOT_ALLOWED",
    "DENY_NOT_A_PARTY",
    "ReleaseContent",
    "decide_release",
    "grading_from_wire",
    "grading_to_wire",
    "is_forbidden_field",
    "record_fields",
    "ungraded",
]

#: Machine-readable reasons carried by :class:`~xlink.errors.PolicyDenied` (spec §3, §7).
DENY_CATEGORY_NOT_ALLOWED: Final = "category-not-allowed"
DENY_GRADING_MISSING: Final = "grading-missing"
DENY_GRADING_NOT_ALLOWED: Final = "grading-not-allowed"
DENY_FIELD_NOT_ALLOWED: Final = "field-not-allowed"
DENY_CAVEATS_MISMATCH: Final = "caveats-mismatch"
DENY_NOT_A_PARTY: Final = "not-a-party"

#: Separator of the parts of a composite value (documents, addresses), spec §3.2.
PART_SEPARATOR: Final = "|"


def is_forbidden_field(name: str) -> bool:
    """True for a source field, bare or as ``payload.<name>`` (never releasable, DESIGN §1)."""
    bare = name[len(PAYLOAD_PREFIX) :] if name.startswith(PAYLOAD_PREFIX) else name
    return bare in FORBIDDEN_FIELDS or name in FORBIDDEN_FIELDS


@dataclass(frozen=True, slots=True)
class ReleaseContent:
    """The releasable part of one record under one MOU: what :func:`decide_release` allows.

    ``fields`` maps a releasable field name (``family_name``, ``payload.risk_level``) to its
    values as text (spec §3.2), only for fields the record actually holds. ``grading`` is set
    only when the category's caveats require it. ``record_id`` is the originator's own id,
    kept locally (approval queue, analyst display) and never put in a release.
    """

    record_id: str
    category: Category
    fields: Mapping[str, tuple[str, ...]]
    caveats: Caveats
    grading: Grading | None = None

    def __post_init__(self) -> None:
        ordered = {name: tuple(self.fields[name]) for name in sorted(self.fields)}
        object.__setattr__(self, "fields", MappingProxyType(ordered))

    def __repr__(self) -> str:  # values are plaintext identities: keep them out of logs
        return (
            f"ReleaseContent(record_id={self.record_id!r}, category={self.category.value}, "
            f"fields={sorted(self.fields)})"
        )


def _name_text(name: PersonName) -> str:
    if name.full and not name.is_structured:
        return name.full
    return " ".join(p for p in (name.given, name.middle, name.family) if p) or name.full


def _document_text(doc: IdentityDocument) -> str:
    return PART_SEPARATOR.join((doc.doc_type, doc.number, doc.issuing_country, doc.expiry))


def _address_text(addr: Address) -> str:
    parts = ("\n".join(addr.lines), addr.locality, addr.region, addr.postcode, addr.country)
    return PART_SEPARATOR.join(parts)


def _one(value: str) -> tuple[str, ...]:
    return (value,) if value else ()


_EXTRACTORS: Final[dict[str, Callable[[PersonRecord], tuple[str, ...]]]] = {
    "given_name": lambda r: _one(r.name.given),
    "middle_name": lambda r: _one(r.name.middle),
    "family_name": lambda r: _one(r.name.family),
    "full_name": lambda r: _one(r.name.full),
    "aliases": lambda r: tuple(t for t in (_name_text(a) for a in r.aliases) if t),
    "birth_date": lambda r: _one(r.birth_date.isoformat() if r.birth_date else ""),
    "sex": lambda r: _one(r.sex.value if r.sex else ""),
    "nationalities": lambda r: tuple(n for n in r.nationalities if n),
    "birth_place": lambda r: _one(r.birth_place),
    "documents": lambda r: tuple(_document_text(d) for d in r.documents),
    "addresses": lambda r: tuple(_address_text(a) for a in r.addresses),
}


def record_fields(record: PersonRecord) -> dict[str, tuple[str, ...]]:
    """Every field of ``record`` under its releasable name, before any policy: the record
    fields of :data:`~xlink.policy.RECORD_FIELDS` and the payload columns folded through
    :func:`~xlink.policy.payload_field` (columns folding to one name keep all their values, in
    column order). Empty values are left out. Source metadata is not a field and never appears.
    """
    out: dict[str, tuple[str, ...]] = {}
    for name, extract in _EXTRACTORS.items():
        values = extract(record)
        if values:
            out[name] = values
    for column in sorted(record.payload):
        value = record.payload[column]
        if value:
            name = payload_field(column)
            out[name] = (*out.get(name, ()), value)
    return out


def decide_release(record: PersonRecord, mou: Mou, *, originator: str) -> ReleaseContent:
    """What of ``record`` ``originator`` may release to its MOU peer (spec §3).

    The category must be allowed; the fields are cut to the category's ``releasable_fields``
    (payload columns through ``payload_field``), source fields never, whatever the MOU says; the
    grading is included exactly when the caveats require it. Raises
    :class:`~xlink.errors.PolicyDenied` with ``not-a-party`` (``originator`` is not in the
    MOU), ``category-not-allowed`` or ``grading-missing`` (required but the record has none).
    """
    if originator not in mou.agency_ids:
        raise PolicyDenied([DENY_NOT_A_PARTY])
    policy = mou.policy_for(record.category)
    if policy is None:
        raise PolicyDenied([DENY_CATEGORY_NOT_ALLOWED])
    grading = record.source.grading if record.source is not None else None
    if policy.caveats.require_grading and grading is None:
        raise PolicyDenied([DENY_GRADING_MISSING])
    allowed = {
        name: values
        for name, values in record_fields(record).items()
        if policy.releases(name) and not is_forbidden_field(name)
    }
    return ReleaseContent(
        record_id=record.record_id,
        category=record.category,
        fields=allowed,
        caveats=policy.caveats,
        grading=grading if policy.caveats.require_grading else None,
    )


def ungraded(records: Iterable[PersonRecord], mou: Mou) -> dict[str, int]:
    """The records, by category, that :func:`decide_release` would deny ``grading-missing``:
    of a category whose MOU policy requires the source grading, with none. What ``xlink
    check`` warns of before an exchange decides matches it cannot release."""
    counts: Counter[str] = Counter()
    for record in records:
        policy = mou.policy_for(record.category)
        graded = record.source is not None and record.source.grading is not None
        if policy is not None and policy.caveats.require_grading and not graded:
            counts[record.category.value] += 1
    return dict(sorted(counts.items()))


#: Wire names of the grading schemes (spec §4.1).
GRADING_3X5X2: Final = "3x5x2"
GRADING_ADMIRALTY: Final = "admiralty"


def grading_to_wire(grading: Grading) -> tuple[str, str]:
    """``(scheme, code)``: ``("3x5x2", "2A")`` or ``("admiralty", "B2")``."""
    if isinstance(grading, UkGrading):
        return (GRADING_3X5X2, grading.code())
    return (GRADING_ADMIRALTY, grading.code())


def grading_from_wire(scheme: str, code: str) -> Grading:
    """The inverse of :func:`grading_to_wire`; ``ValueError`` for anything it never produces."""
    if len(code) != 2:
        raise ValueError("a grading code is two characters")
    if scheme == GRADING_3X5X2 and code[0] in "123":
        return UkGrading(int(code[0]), code[1])
    if scheme == GRADING_ADMIRALTY and code[1] in "123456":
        return AdmiraltyGrading(code[0], int(code[1]))
    raise ValueError("unknown grading")
