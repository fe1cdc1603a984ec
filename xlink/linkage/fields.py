"""Normalised fields and the transforms a key recipe applies to them (linkage schema, keys).

Fields are what :mod:`xlink.linkage.keys` extracts from a normalised record; transforms turn a
field value into the value hashed in a token. All transforms are pure; a transform that cannot
apply to a value (``year_month`` of a year-only date, ``digits`` of a value without digits)
returns ``None`` and that value gives no token.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

import jellyfish

__all__ = [
    "DATE_ONLY_TRANSFORMS",
    "PHONETIC_TRANSFORMS",
    "Field",
    "FieldGroup",
    "Transform",
    "TransformKind",
    "apply_chain",
    "apply_transform",
]


class FieldGroup(Enum):
    """Which part of a record a field comes from. Fields of one group in one key are taken from
    the same name, document or address, never mixed across two of them."""

    NAME = "name"
    BIRTH = "birth"
    SEX = "sex"
    DOCUMENT = "document"
    NATIONALITY = "nationality"
    ADDRESS = "address"
    BIRTH_PLACE = "birth_place"


class Field(Enum):
    """A normalised field a key recipe can use (see :mod:`xlink.linkage.keys` for each one)."""

    GIVEN = "given"
    GIVEN_FIRST = "given_first"
    FAMILY = "family"
    FAMILY_PART = "family_part"
    FULL_NAME = "full_name"
    BIRTH_DATE = "birth_date"
    BIRTH_YEAR = "birth_year"
    BIRTH_YEAR_MONTH = "birth_year_month"
    SEX = "sex"
    DOCUMENT_NUMBER = "document_number"
    DOCUMENT_COUNTRY = "document_country"
    DOCUMENT_TYPE = "document_type"
    NATIONALITY = "nationality"
    POSTCODE = "postcode"
    LOCALITY = "locality"
    STREET = "street"
    REGION = "region"
    BIRTH_PLACE = "birth_place"

    @property
    def group(self) -> FieldGroup:
        return _FIELD_GROUPS[self]

    @property
    def alphabetic(self) -> bool:
        """True for name-like fields, the only ones phonetic transforms accept."""
        return self in _ALPHABETIC


_FIELD_GROUPS: Mapping[Field, FieldGroup] = {
    **dict.fromkeys(
        (Field.GIVEN, Field.GIVEN_FIRST, Field.FAMILY, Field.FAMILY_PART, Field.FULL_NAME),
        FieldGroup.NAME,
    ),
    **dict.fromkeys((Field.BIRTH_DATE, Field.BIRTH_YEAR, Field.BIRTH_YEAR_MONTH), FieldGroup.BIRTH),
    Field.SEX: FieldGroup.SEX,
    **dict.fromkeys(
        (Field.DOCUMENT_NUMBER, Field.DOCUMENT_COUNTRY, Field.DOCUMENT_TYPE), FieldGroup.DOCUMENT
    ),
    Field.NATIONALITY: FieldGroup.NATIONALITY,
    **dict.fromkeys(
        (Field.POSTCODE, Field.LOCALITY, Field.STREET, Field.REGION), FieldGroup.ADDRESS
    ),
    Field.BIRTH_PLACE: FieldGroup.BIRTH_PLACE,
}
_ALPHABETIC = frozenset(
    {Field.GIVEN, Field.GIVEN_FIRST, Field.FAMILY, Field.FAMILY_PART, Field.LOCALITY}
)


class TransformKind(Enum):
    """A transform applied to a field value before hashing (``first_n`` and ``last_n`` take a
    length: ``"first_n:3"``)."""

    IDENTITY = "identity"
    SOUNDEX = "soundex"
    NYSIIS = "nysiis"
    METAPHONE = "metaphone"
    FIRST_INITIAL = "first_initial"
    FIRST_N = "first_n"
    LAST_N = "last_n"
    DIGITS = "digits"
    YEAR = "year"
    YEAR_MONTH = "year_month"


_PARAMETRISED = frozenset({TransformKind.FIRST_N, TransformKind.LAST_N})
PHONETIC_TRANSFORMS = frozenset(
    {TransformKind.SOUNDEX, TransformKind.NYSIIS, TransformKind.METAPHONE}
)
DATE_ONLY_TRANSFORMS = frozenset({TransformKind.YEAR, TransformKind.YEAR_MONTH})


@dataclass(frozen=True, slots=True)
class Transform:
    """One transform step; ``length`` is set only for ``first_n``/``last_n`` (1..64)."""

    kind: TransformKind
    length: int | None = None

    def __str__(self) -> str:
        return self.kind.value if self.length is None else f"{self.kind.value}:{self.length}"

    @classmethod
    def parse(cls, spec: str) -> Transform:
        """Parse ``"soundex"`` or ``"first_n:3"``. Raises ``ValueError`` with the reason."""
        name, sep, arg = spec.partition(":")
        try:
            kind = TransformKind(name)
        except ValueError:
            raise ValueError(f"unknown transform {spec!r}") from None
        if kind in _PARAMETRISED:
            if not (sep and arg.isdigit() and 1 <= int(arg) <= 64):
                raise ValueError(f"transform {name!r} needs a length 1..64, as '{name}:3'")
            return cls(kind, int(arg))
        if sep:
            raise ValueError(f"transform {name!r} takes no argument")
        return cls(kind)


_NOT_DIGIT = re.compile(r"[^0-9]+")


def apply_transform(step: Transform, value: str) -> str | None:
    """Apply one transform to a normalised value; ``None`` when it does not apply. Never raises.

    Phonetic codes come from ``jellyfish`` on the MRZ form (``A``-``Z``); spaces in a value are
    removed first.
    """
    kind = step.kind
    if not value:
        return None
    if kind is TransformKind.IDENTITY:
        return value
    if kind in PHONETIC_TRANSFORMS:
        letters = value.replace(" ", "")
        if not letters.isalpha():
            return None
        if kind is TransformKind.SOUNDEX:
            code = jellyfish.soundex(letters)
        elif kind is TransformKind.NYSIIS:
            code = jellyfish.nysiis(letters)
        else:
            code = jellyfish.metaphone(letters).upper()
        return str(code) or None
    if kind is TransformKind.FIRST_INITIAL:
        return value[0]
    if kind is TransformKind.FIRST_N:
        assert step.length is not None
        return value[: step.length]
    if kind is TransformKind.LAST_N:
        assert step.length is not None
        return value[-step.length :]
    if kind is TransformKind.DIGITS:
        return _NOT_DIGIT.sub("", value) or None
    if kind is TransformKind.YEAR:
        return value[:4]
    # YEAR_MONTH of an ISO date: needs at least "YYYY-MM"
    return value[:7] if len(value) >= 7 else None


def apply_chain(chain: tuple[Transform, ...], value: str) -> str | None:
    """Apply a chain of transforms in order; ``None`` as soon as one does not apply."""
    out: str | None = value
    for step in chain:
        if out is None:
            return None
        out = apply_transform(step, out)
    return out
