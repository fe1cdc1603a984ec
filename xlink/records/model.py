"""The person-record model (NIEM-aligned names), as frozen value objects.

A :class:`PersonRecord` is what one agency holds about one person on one list. Everything that
takes part in matching is in typed fields; ``payload`` carries the free fields an MOU may later
release; ``source`` (who told us, how reliable) never leaves the agency.

NIEM correspondences: ``PersonName.given`` = nc:PersonGivenName, ``middle`` = nc:PersonMiddleName,
``family`` = nc:PersonSurName, ``full`` = nc:PersonFullName; ``BirthDate`` = nc:PersonBirthDate;
``IdentityDocument`` = nc:IdentificationType (j:... for travel documents);
``Address`` = nc:LocationAddress.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Final

__all__ = [
    "Address",
    "AdmiraltyGrading",
    "BirthDate",
    "Category",
    "Grading",
    "HandlingCode",
    "IdentityDocument",
    "Payload",
    "PersonName",
    "PersonRecord",
    "Sex",
    "SourceMetadata",
    "UkGrading",
]


class Category(Enum):
    """The kind of list a record comes from; an MOU allows and caveats records by category."""

    WATCHLIST = "watchlist"
    SEX_OFFENDER = "sex_offender"
    TRAVELLER = "traveller"
    OTHER = "other"


class Sex(Enum):
    """ICAO 9303 sex marker: F, M or X (unspecified)."""

    FEMALE = "F"
    MALE = "M"
    UNSPECIFIED = "X"


@dataclass(frozen=True, slots=True)
class PersonName:
    """A name as recorded, before normalisation. At least one part is non-empty."""

    given: str = ""
    middle: str = ""
    family: str = ""
    full: str = ""  # fallback when the source does not split the name

    def __post_init__(self) -> None:
        if not (self.given or self.middle or self.family or self.full):
            raise ValueError("a name needs at least one non-empty part")

    def __repr__(self) -> str:  # identities stay out of logs and tracebacks
        return "PersonName(<redacted>)"

    @property
    def is_structured(self) -> bool:
        """True when given or family name are known separately (not only ``full``)."""
        return bool(self.given or self.family)


@dataclass(frozen=True, slots=True)
class BirthDate:
    """A date of birth that may be partial: year only, year and month, or a full date.

    ``day_month_ambiguous`` is set when the source wrote the date in a form where day and month
    could be swapped (``03/04/1980`` with no stated order) and both are <= 12; normalisation then
    derives both orders. The constructor checks the calendar (no 31 April, 29 February only in
    leap years).
    """

    year: int
    month: int | None = None
    day: int | None = None
    day_month_ambiguous: bool = False

    def __post_init__(self) -> None:
        import datetime as _dt

        if not 1850 <= self.year <= 2200:
            raise ValueError("year out of range 1850..2200")
        if self.day is not None and self.month is None:
            raise ValueError("a day needs a month")
        if self.month is not None and not 1 <= self.month <= 12:
            raise ValueError("month must be 1..12")
        if self.day is not None:
            assert self.month is not None
            try:
                _dt.date(self.year, self.month, self.day)
            except ValueError:
                raise ValueError("impossible date") from None
        if self.day_month_ambiguous and (
            self.day is None or self.month is None or self.day > 12 or self.month > 12
        ):
            raise ValueError("only a full date with day and month both <= 12 can be ambiguous")

    def __repr__(self) -> str:
        return f"BirthDate(<redacted>, precision={self.precision})"

    @property
    def precision(self) -> str:
        """``"day"``, ``"month"`` or ``"year"``."""
        if self.day is not None:
            return "day"
        return "month" if self.month is not None else "year"

    def isoformat(self) -> str:
        """``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD`` as far as the date is known."""
        out = f"{self.year:04d}"
        if self.month is not None:
            out += f"-{self.month:02d}"
        if self.day is not None:
            out += f"-{self.day:02d}"
        return out


@dataclass(frozen=True, slots=True)
class IdentityDocument:
    """A passport, identity card or other document: ICAO 9303 document type code and number."""

    doc_type: str  # "P" passport, "I" identity card, "V" visa, "DL" driving licence, ...
    number: str
    issuing_country: str = ""  # ISO 3166-1 alpha-3 as in ICAO 9303 ("CAN", "USA", "D" ...)
    expiry: str = ""  # ISO date, or "" when unknown

    def __post_init__(self) -> None:
        if not self.number.strip():
            raise ValueError("a document needs a number")

    def __repr__(self) -> str:
        return f"IdentityDocument({self.doc_type!r}, <redacted>)"


@dataclass(frozen=True, slots=True)
class Address:
    """A postal address, as free lines plus the parts that matter for blocking."""

    lines: tuple[str, ...] = ()
    locality: str = ""
    region: str = ""
    postcode: str = ""
    country: str = ""

    def __repr__(self) -> str:
        return "Address(<redacted>)"


class HandlingCode(Enum):
    """UK 3x5x2 handling code: P (sharing permitted) or C (conditions apply, and are stated)."""

    PERMITTED = "P"
    CONDITIONS = "C"


@dataclass(frozen=True, slots=True)
class UkGrading:
    """UK 3x5x2: source evaluation 1-3 and intelligence assessment A-E."""

    source_evaluation: int
    intelligence_assessment: str

    def __post_init__(self) -> None:
        if self.source_evaluation not in (1, 2, 3):
            raise ValueError("3x5x2 source evaluation must be 1, 2 or 3")
        if self.intelligence_assessment not in ("A", "B", "C", "D", "E"):
            raise ValueError("3x5x2 intelligence assessment must be A-E")

    def code(self) -> str:
        return f"{self.source_evaluation}{self.intelligence_assessment}"


@dataclass(frozen=True, slots=True)
class AdmiraltyGrading:
    """NATO Admiralty code: source reliability A-F and information credibility 1-6."""

    reliability: str
    credibility: int

    def __post_init__(self) -> None:
        if self.reliability not in ("A", "B", "C", "D", "E", "F"):
            raise ValueError("Admiralty reliability must be A-F")
        if self.credibility not in range(1, 7):
            raise ValueError("Admiralty credibility must be 1-6")

    def code(self) -> str:
        return f"{self.reliability}{self.credibility}"


Grading = UkGrading | AdmiraltyGrading


@dataclass(frozen=True, slots=True)
class SourceMetadata:
    """Where the record came from. Never leaves the agency: not tokenised, never released."""

    source_id: str
    grading: Grading | None = None
    handling_code: HandlingCode | None = None
    handling_conditions: str = ""

    def __post_init__(self) -> None:
        if self.handling_code is HandlingCode.CONDITIONS and not self.handling_conditions.strip():
            raise ValueError("handling code C needs its conditions stated")

    def __repr__(self) -> str:  # keep source identities out of logs and tracebacks
        return "SourceMetadata(<redacted>)"


class Payload(Mapping[str, str]):
    """A record's free fields: an immutable mapping that stores one tuple of values per record
    and shares its keys (and their positions) with every record that has the same keys, as
    the records of one file do: half the memory of a dict per record, which counts when a
    list holds a million records."""

    __slots__ = ("_index", "_values")

    _index: Mapping[str, int]
    _values: tuple[str, ...]

    def __init__(self, fields: Mapping[str, str] | None = None) -> None:
        fields = fields if fields is not None else {}
        keep = object.__setattr__  # the two tuples are the snapshot: no copy of ``fields``
        keep(self, "_index", _shared_index(tuple(fields)))
        keep(self, "_values", tuple(fields.values()))

    def __getitem__(self, key: str) -> str:
        return self._values[self._index[key]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._values)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("a record's payload cannot be changed")

    def __reduce__(self) -> tuple[type[Payload], tuple[dict[str, str]]]:
        return (Payload, (dict(self),))

    def __repr__(self) -> str:  # the values may be identifying: keys only
        return f"Payload(keys={list(self._index)!r})"


#: Key tuples seen so far and their shared positions; at most :data:`_MAX_KEY_SETS`, after
#: which a new key set gets positions of its own (files have a few; a JSON Lines file whose
#: rows all differ must not grow this without bound).
_KEY_SETS: dict[tuple[str, ...], Mapping[str, int]] = {}
_MAX_KEY_SETS: Final = 4096


def _shared_index(keys: tuple[str, ...]) -> Mapping[str, int]:
    index = _KEY_SETS.get(keys)
    if index is None:
        index = MappingProxyType({k: i for i, k in enumerate(keys)})
        if len(_KEY_SETS) < _MAX_KEY_SETS:
            _KEY_SETS[keys] = index
    return index


_EMPTY_PAYLOAD: Final = Payload()


def _frozen_mapping(m: Mapping[str, str]) -> Payload:
    if isinstance(m, Payload):
        return m
    return Payload(m) if m else _EMPTY_PAYLOAD


@dataclass(frozen=True, slots=True)
class PersonRecord:
    """One person on one agency's list.

    ``record_id`` is unique within the agency's file. ``payload`` holds free fields (offence,
    risk level, remarks ...) that an MOU may release per category; it is never tokenised.
    """

    record_id: str
    category: Category
    name: PersonName
    aliases: tuple[PersonName, ...] = ()
    birth_date: BirthDate | None = None
    sex: Sex | None = None
    nationalities: tuple[str, ...] = ()
    birth_place: str = ""
    documents: tuple[IdentityDocument, ...] = ()
    addresses: tuple[Address, ...] = ()
    source: SourceMetadata | None = None
    payload: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.record_id.strip():
            raise ValueError("record_id must not be empty")
        object.__setattr__(self, "payload", _frozen_mapping(self.payload))

    def __repr__(self) -> str:  # no plaintext identity in logs, exceptions or audit entries
        return f"PersonRecord(record_id={self.record_id!r}, category={self.category.value})"
