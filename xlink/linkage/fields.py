"""Normalised fields and the transforms a key recipe applies to them (linkage schema, keys).

Fields are what :mod:`xlink.linkage.keys` extracts from a normalised record; transforms turn a
field value into the values hashed in tokens. All transforms are pure. Most give one value; a
transform that cannot apply (``year_month`` of a year-only date, ``digits`` of a value without
digits) gives none, and that value gives no token. The *fuzzy* transforms give several values, so
that two values that differ a little still share one:

- ``deletions``: the value and every value with one character deleted (the deletion
  neighbourhood). Two values within one edit (substitution, insertion, deletion, adjacent
  transposition) share at least one, except two different one-character values.
- ``minhash:BxR``: ``B`` locality-sensitive band values of a MinHash over the value's letter
  bigrams (``R`` rows per band). Two values share band ``j`` with probability ``J**R`` where
  ``J`` is the Jaccard similarity of their bigram sets, so at least one band with
  ``1 - (1 - J**R)**B``.

The exact definitions (byte for byte, so that another implementation derives the same tokens) are
in docs/records-and-linkage.md §4.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType

import jellyfish

__all__ = [
    "DATE_ONLY_TRANSFORMS",
    "EXPANDING_TRANSFORMS",
    "IDENTIFYING_GROUPS",
    "MAX_MINHASH_FUNCTIONS",
    "MINHASH_DST",
    "NEVER_EVIDENCE",
    "PHONETIC_TRANSFORMS",
    "V6_EVIDENCE_FIELDS",
    "EvidenceFields",
    "Field",
    "FieldGroup",
    "Transform",
    "TransformKind",
    "apply_chain",
    "apply_transform",
    "clear_word_memo",
    "evidence_of",
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
#: The field groups that say who a person is: a name, a date of birth, an address, an identity
#: document. A schema's ``min_evidence_groups`` counts how many of them a pair's agreeing keys
#: hold (:meth:`~xlink.linkage.schema.LinkageSchema.evidence_groups`, :func:`evidence_of`); sex,
#: nationality and place of birth are shared by too many people to count.
IDENTIFYING_GROUPS: frozenset[FieldGroup] = frozenset(
    {FieldGroup.NAME, FieldGroup.BIRTH, FieldGroup.ADDRESS, FieldGroup.DOCUMENT}
)
_ALPHABETIC = frozenset(
    {Field.GIVEN, Field.GIVEN_FIRST, Field.FAMILY, Field.FAMILY_PART, Field.LOCALITY}
)


class TransformKind(Enum):
    """A transform applied to a field value before hashing (``first_n`` and ``last_n`` take a
    length: ``"first_n:3"``; ``minhash`` takes bands and rows: ``"minhash:4x2"``)."""

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
    DAY_MONTH_SORTED = "day_month_sorted"
    NOSPACE = "nospace"
    DELETIONS = "deletions"
    MINHASH = "minhash"


_PARAMETRISED = frozenset({TransformKind.FIRST_N, TransformKind.LAST_N})
#: Transforms that give several values for one (the fuzzy ones).
EXPANDING_TRANSFORMS = frozenset({TransformKind.DELETIONS, TransformKind.MINHASH})
#: Bound on ``bands x rows`` of one ``minhash`` transform.
MAX_MINHASH_FUNCTIONS = 64
#: Domain label of the MinHash hash functions.
MINHASH_DST = b"xlink/v1/minhash"
_MINHASH_SPEC = re.compile(r"([1-9][0-9]?)x([1-9][0-9]?)")
PHONETIC_TRANSFORMS = frozenset(
    {TransformKind.SOUNDEX, TransformKind.NYSIIS, TransformKind.METAPHONE}
)
DATE_ONLY_TRANSFORMS = frozenset(
    {TransformKind.YEAR, TransformKind.YEAR_MONTH, TransformKind.DAY_MONTH_SORTED}
)


@dataclass(frozen=True, slots=True)
class Transform:
    """One transform step. ``length`` is set only for ``first_n``/``last_n`` (1..64) and for
    ``minhash`` (the number of bands); ``rows`` only for ``minhash`` (rows per band;
    ``length * rows`` at most :data:`MAX_MINHASH_FUNCTIONS`)."""

    kind: TransformKind
    length: int | None = None
    rows: int | None = None

    def __str__(self) -> str:
        if self.rows is not None:
            return f"{self.kind.value}:{self.length}x{self.rows}"
        return self.kind.value if self.length is None else f"{self.kind.value}:{self.length}"

    @property
    def expanding(self) -> bool:
        """True for a fuzzy transform, which gives several values for one."""
        return self.kind in EXPANDING_TRANSFORMS

    @classmethod
    def parse(cls, spec: str) -> Transform:
        """Parse ``"soundex"``, ``"first_n:3"`` or ``"minhash:4x2"``. Raises ``ValueError``
        with the reason."""
        name, sep, arg = spec.partition(":")
        try:
            kind = TransformKind(name)
        except ValueError:
            raise ValueError(f"unknown transform {spec!r}") from None
        if kind is TransformKind.MINHASH:
            match = _MINHASH_SPEC.fullmatch(arg) if sep else None
            if match is None:
                raise ValueError("transform 'minhash' needs bands and rows, as 'minhash:4x2'")
            bands, rows = int(match[1]), int(match[2])
            if bands * rows > MAX_MINHASH_FUNCTIONS:
                raise ValueError(f"minhash: bands x rows is at most {MAX_MINHASH_FUNCTIONS}")
            return cls(kind, bands, rows)
        if kind in _PARAMETRISED:
            if not (sep and arg.isdigit() and 1 <= int(arg) <= 64):
                raise ValueError(f"transform {name!r} needs a length 1..64, as '{name}:3'")
            return cls(kind, int(arg))
        if sep:
            raise ValueError(f"transform {name!r} takes no argument")
        return cls(kind)


_NOT_DIGIT = re.compile(r"[^0-9]+")


def _one_value(step: Transform, value: str) -> str | None:
    """The transforms that give at most one value."""
    kind = step.kind
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
    if kind is TransformKind.NOSPACE:
        return value.replace(" ", "") or None
    if kind is TransformKind.YEAR:
        return value[:4]
    if kind is TransformKind.DAY_MONTH_SORTED:
        # a full ISO date with its month and day in ascending order: a swap agrees
        if len(value) != 10:
            return None
        low, high = sorted((value[5:7], value[8:10]))
        return f"{value[:4]}-{low}-{high}"
    # YEAR_MONTH of an ISO date: needs at least "YYYY-MM"
    return value[:7] if len(value) >= 7 else None


def deletion_neighbourhood(value: str) -> tuple[str, ...]:
    """``value`` then each distinct value with one character deleted, in deletion-position
    order (``"ANNA"`` → ``ANNA, NNA, ANA, ANN``). A one-character value gives only itself."""
    if len(value) < 2:
        return (value,)
    out = dict.fromkeys((value, *(value[:i] + value[i + 1 :] for i in range(len(value)))))
    return tuple(out)


def _minhash_function(index: int, gram: bytes) -> int:
    digest = hashlib.sha256(
        len(MINHASH_DST).to_bytes(4, "big") + MINHASH_DST + index.to_bytes(4, "big") + gram
    ).digest()
    return int.from_bytes(digest[:8], "big")


@functools.lru_cache(maxsize=1 << 14)
def _gram_hashes(gram: str, functions: int) -> tuple[str, ...]:
    """``_minhash_function(i, gram)`` for ``i`` in ``range(functions)``, as 16-digit lower-case
    hex (whose order is the numbers' order): a bigram (not a name) is hashed once per run, not
    once per value it occurs in."""
    encoded = gram.encode("utf-8")
    return tuple(f"{_minhash_function(i, encoded):016x}" for i in range(functions))


def minhash_bands(value: str, bands: int, rows: int) -> tuple[str, ...]:
    """The ``bands`` LSH band values of ``value``'s bigram MinHash (``rows`` per band).

    Spaces are removed and the value is wrapped as ``"^" + value + "$"``; its bigrams are the
    UTF-8 encodings of each two consecutive characters, as a set. Hash function ``i`` (``0 <=
    i < bands*rows``) maps a bigram ``g`` to the first 8 bytes, big-endian, of ``SHA-256(
    u32(len(D)) || D || u32(i) || g)`` with ``D =`` :data:`MINHASH_DST`; the MinHash is the
    minimum over the bigrams. Band ``j`` is ``"j:"`` followed by the lower-case 16-digit hex of
    minimums ``j*rows .. j*rows+rows-1``, joined by ``"."``. Empty for an empty value.
    """
    words = [w for w in value.split(" ") if w]
    if not words:
        return ()
    functions = bands * rows
    # The bigrams of "^" + the words run together + "$" are each word's own (their minimums
    # kept per word: names repeat far more than whole names), with the one across its left
    # junction ("^" before the first word) and, for the last word, the one into "$".
    last = len(words) - 1
    if not last:
        mins = _placed_minimums(words[0], "^", True, functions)
    else:
        parts = [_placed_minimums(words[0], "^", False, functions)]
        parts += [
            _placed_minimums(w, words[i - 1][-1], i == last, functions)
            for i, w in enumerate(words[1:], start=1)
        ]
        mins = tuple(map(min, zip(*parts, strict=True)))
    # every minimum is 16 hex digits: band j is its run of `rows` of them, dot-joined
    joined, width = ".".join(mins), 17 * rows
    return tuple([f"{j}:{joined[j * width : (j + 1) * width - 1]}" for j in range(bands)])


def clear_word_memo() -> None:
    """Empty the memo of words' MinHash minimums (:func:`minhash_bands`), so that no name
    outlives the records it came from; :func:`xlink.linkage.keys.derive_token_set` calls it at
    its end, with :func:`xlink.records.normalise.clear_caches`."""
    _word_minimums.cache_clear()
    _placed_minimums.cache_clear()


@functools.lru_cache(maxsize=1 << 16)
def _word_minimums(word: str, functions: int) -> tuple[str, ...] | None:
    """The minimum of each of ``functions`` hash functions over ``word``'s own bigrams (none
    for a one-character word), as :func:`_gram_hashes` writes them."""
    grams = {word[i : i + 2] for i in range(len(word) - 1)}  # distinct text, distinct UTF-8
    if not grams:
        return None
    return tuple(map(min, zip(*[_gram_hashes(g, functions) for g in grams], strict=True)))


@functools.lru_cache(maxsize=1 << 16)
def _placed_minimums(word: str, left: str, last: bool, functions: int) -> tuple[str, ...]:
    """The minimums (as :func:`_word_minimums`) over ``word``'s own bigrams, the bigram of
    ``left`` (the character before it: ``"^"`` or the previous word's last) and its first
    character, and, when it is the ``last`` word, the bigram of its last character and
    ``"$"``."""
    parts = [_gram_hashes(left + word[0], functions)]
    if last:
        parts.append(_gram_hashes(word[-1] + "$", functions))
    own = _word_minimums(word, functions)
    if own is not None:
        parts.append(own)
    return tuple(map(min, zip(*parts, strict=True)))


def apply_transform(step: Transform, value: str) -> tuple[str, ...]:
    """Apply one transform to a normalised value: the values it gives, distinct, in order (none
    when it does not apply), so that one step of :func:`apply_chain` is this. Never raises.

    Phonetic codes come from ``jellyfish`` on the MRZ form (``A``-``Z``); spaces in a value are
    removed first.
    """
    if not value:
        return ()
    if step.kind is TransformKind.DELETIONS:
        return deletion_neighbourhood(value)
    if step.kind is TransformKind.MINHASH:
        assert step.length is not None and step.rows is not None
        return minhash_bands(value, step.length, step.rows)
    one = _one_value(step, value)
    return (one,) if one else ()


def apply_chain(chain: tuple[Transform, ...], value: str) -> tuple[str, ...]:
    """Apply a chain of transforms in order to ``value``: every value the last step gives, for
    every value the steps before gave, distinct, in order. Empty when a step does not apply."""
    values: tuple[str, ...] = (value,) if value else ()
    for step in chain:
        values = tuple(dict.fromkeys(out for v in values for out in apply_transform(step, v)))
    return values


#: Transforms that keep too little of a value for it to identify anyone, or that a partner
#: could guess in a hundred tries (an initial, a few letters or digits, the year of a date): a
#: field under one of them holds no evidence.
_REDUCING = frozenset(
    {
        TransformKind.FIRST_INITIAL,
        TransformKind.FIRST_N,
        TransformKind.LAST_N,
        TransformKind.DIGITS,
        TransformKind.YEAR,
    }
)
#: Which fields hold which kind of evidence: for each of :data:`IDENTIFYING_GROUPS`, the fields
#: of that group that count.
EvidenceFields = Mapping[FieldGroup, frozenset[Field]]

#: The evidence of a schema that sets ``min_evidence_groups`` without an ``evidence`` member
#: (version 6 of the default schema): a name part; a date of birth to the month at least; a
#: street, postcode or city; a document number. Not in it: the birth year alone (a hundred
#: guesses), the region, and what is shared by too many people to tell anyone apart (sex,
#: nationality, place of birth, a document's country or type).
V6_EVIDENCE_FIELDS: EvidenceFields = MappingProxyType(
    {
        FieldGroup.NAME: frozenset(
            {Field.GIVEN, Field.GIVEN_FIRST, Field.FAMILY, Field.FAMILY_PART, Field.FULL_NAME}
        ),
        FieldGroup.BIRTH: frozenset({Field.BIRTH_DATE, Field.BIRTH_YEAR_MONTH}),
        FieldGroup.ADDRESS: frozenset({Field.STREET, Field.POSTCODE, Field.LOCALITY}),
        FieldGroup.DOCUMENT: frozenset({Field.DOCUMENT_NUMBER}),
    }
)


#: Fields no ``evidence`` member may list: a few guesses find them (the birth year, the
#: region) or they are shared by whole countries (a document's country and type).
NEVER_EVIDENCE: frozenset[Field] = frozenset(
    {Field.BIRTH_YEAR, Field.REGION, Field.DOCUMENT_COUNTRY, Field.DOCUMENT_TYPE}
)


def evidence_of(
    fields: Sequence[Field],
    transforms: Sequence[Sequence[Transform]],
    evidence: EvidenceFields,
) -> frozenset[FieldGroup]:
    """The kinds of evidence (:data:`IDENTIFYING_GROUPS`) a key on ``fields``, each under its
    chain of ``transforms``, *holds*: what agreeing on it shows that a partner knew, by the
    fields ``evidence`` says hold each kind (a schema's ``evidence`` member, or
    :data:`V6_EVIDENCE_FIELDS`). A field under a transform that keeps too little
    (``first_initial``, ``first_n``, ``last_n``, ``digits``, ``year``) holds nothing, whatever
    the table: a name with a birth year is one fact."""
    kept = {
        f
        for f, chain in zip(fields, transforms, strict=True)
        if not any(t.kind in _REDUCING for t in chain)
    }
    return frozenset(group for group, held in evidence.items() if kept & held)
