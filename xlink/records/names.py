"""How a whole name is read (DESIGN §2 step 2): the given-name and family-name texts of a
:class:`~xlink.records.model.PersonName` (structured, written whole, family name first with a
comma, or with its family name alone in capitals), each reading's values as
:mod:`xlink.records.normalise` makes them of a name part, the given/family swap, and the
order-insensitive full name. Every function here is pure and never raises.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from xlink.records._missing import NAME_MARKERS
from xlink.records.model import PersonName
from xlink.records.normalise import (
    _NOT_A_Z,
    HONORIFICS,
    NAME_PARTICLES,
    NAME_SUFFIXES,
    PLACEHOLDER_GIVEN_NAMES,
    _name_words,
    _safe,
    _word_key,
    family_first_forms,
    name_part_forms,
    name_part_variants,
)
from xlink.records.transliterate import UntransliterableError, transliterate_variants_ordered

__all__ = [
    "NormalisedName",
    "full_name_variants",
    "name_order_variants",
    "name_readings",
    "name_texts",
    "normalise_name",
]

#: Words that are no part of a name's given or family name.
_TITLES = HONORIFICS | NAME_SUFFIXES
#: The markers of a name not known that are one word of letters (``UNKNOWN``, ``LNU``, ``FNU``).
NAME_MARKER_WORDS = frozenset(m for m in NAME_MARKERS if m.isalpha())
#: The runs of letters of a word (``A.J.``: ``A``, ``J``).
_LETTER_RUNS = re.compile(r"[^\W\d_]+")


@dataclass(frozen=True, slots=True)
class NormalisedName:
    """One reading of a :class:`~xlink.records.model.PersonName`, every field variants-first.

    An empty tuple means the part is unknown or untransliterable. ``swapped`` marks a name-order
    variant (given and family exchanged); ``full_name`` is order-insensitive (sorted words);
    ``second`` marks a further reading (from case, and its swap; or of a family name with the
    particles before it), which comes after every first reading of a record's names
    (:func:`name_readings`)."""

    given: tuple[str, ...]
    given_first: tuple[str, ...]
    family: tuple[str, ...]
    family_parts: tuple[str, ...]
    full_name: tuple[str, ...]
    swapped: bool = False
    second: bool = False


def name_texts(name: PersonName) -> tuple[str, str, tuple[str, ...]]:
    """The given-name text, the family-name text and all the words of a name, as
    :func:`normalise_name` reads them: a structured name's given and family parts; a name with
    only ``full``, its first word (when it has two or more) and its last word, or, written
    family name first with a comma (``SMITH, John Paul``, as lists and registries write it),
    the first word after the comma and everything before it. Never raises."""
    if name.is_structured:
        return (
            name.given,
            name.family,
            _name_words(f"{name.given} {name.middle} {name.family}"),
        )
    words = _name_words(name.full)
    if "," in name.full:
        # a suffix after the comma (``John Smith, Jr.``, ``Smith, Jr., John``) is no given name
        family, _, rest = name.full.partition(",")
        family_words = _name_words(family)
        given = [w for w in _name_words(rest) if _word_key(w) not in NAME_SUFFIXES]
        if family_words and given:
            return given[0], " ".join(family_words), words
    return (words[0] if len(words) > 1 else "", words[-1] if words else "", words)


def _capitals_texts(name: PersonName, first: tuple[str, str]) -> tuple[str, str] | None:
    """A second reading of a name written whole, when case says where its family name is: the
    given-name and family-name texts of a full name whose family name, and only it, is in
    capitals, before or after the given names (``IVANOV Ivan Petrovich``, ``José GARCÍA
    LÓPEZ``, ``Jan van der BERG``), as passports' visual zones, wanted notices and civil
    registries write it; None when the case says nothing, or says what ``first`` (the
    reading of :func:`name_texts`) says already. It is read beside that reading, not instead
    of it: case alone does not tell ``LI Wei`` (family name first) from ``AJ Smith``
    (initials in capitals). A word of initials (``A.J.``), an honorific, a suffix, a particle
    or a word of a script without case says nothing; a particle next to the family name goes
    with it. Never raises."""
    if name.is_structured or "," in name.full:
        return None
    chunks = name.full.split()
    kinds: list[bool | None] = []  # True: capitals only; False: has a small letter
    for chunk in chunks:
        runs = _LETTER_RUNS.findall(chunk)
        key = _word_key(chunk)
        if all(len(r) == 1 for r in runs) or key in _TITLES or key in NAME_PARTICLES:
            kinds.append(None)
        elif any(c.islower() for r in runs for c in r):
            kinds.append(False)
        elif any(c.isupper() for r in runs for c in r):
            kinds.append(True)
        else:
            kinds.append(None)
    marked = [i for i, kind in enumerate(kinds) if kind is not None]
    if sum(1 for a, b in itertools.pairwise(kinds[i] for i in marked) if a != b) != 1:
        return None
    if kinds[marked[0]]:  # family name first: it ends with the last word in capitals
        start, end = 0, max(i for i in marked if kinds[i]) + 1
    else:  # given names first: the family name starts at the first word in capitals
        start, end = min(i for i in marked if kinds[i]), len(chunks)
        while start > 0 and _word_key(chunks[start - 1]) in NAME_PARTICLES:
            start -= 1
    given_words = _name_words(" ".join(chunks[:start] + chunks[end:]))
    family_words = _name_words(" ".join(chunks[start:end]))
    if not given_words or not family_words:
        return None
    found = given_words[0], " ".join(family_words)
    if found == first or any(
        v.replace(" ", "") in PLACEHOLDER_GIVEN_NAMES for v in _safe(name_part_variants, found[1])
    ):
        return None  # BABY Smith, FNU Khan: a placeholder is no family name
    return found


def full_name_variants(words: tuple[str, ...]) -> tuple[str, ...]:
    """The order-insensitive full-name values of a name's words (:func:`name_texts`): each
    transliteration's words, letters only, sorted and joined by one space. ``()`` when
    untransliterable. Never raises."""
    try:
        variants = transliterate_variants_ordered(" ".join(words))
    except UntransliterableError:
        return ()
    out: dict[str, None] = {}
    for variant in variants:
        parts = sorted(p for p in (_NOT_A_Z.sub("", w) for w in variant.split(" ")) if p)
        if parts:
            out[" ".join(parts)] = None
    return tuple(out)


def normalise_name(name: PersonName) -> tuple[NormalisedName, ...]:
    """The readings of a name: as recorded first, then the given/family swap.

    A structured name (given and/or family known) is read as recorded; when both are known the
    swap follows. A name with only ``full`` is split as :func:`name_texts` says (first word
    given, last word family, or at a comma, family name first), then the reverse; then, when
    its family name alone is in capitals, split there (:func:`name_readings`), then the
    reverse. Middle words are ignored for given/family but kept in ``full_name``. Never
    raises: untransliterable parts come out empty.
    """
    pairs, words, swapped = name_readings(name)
    full = full_name_variants(words)
    readings: list[NormalisedName] = []
    for second, (given_text, family_text) in enumerate(pairs):
        given, given_first, given_parts = name_part_forms(given_text)
        family, _, family_parts = name_part_forms(family_text)
        readings.append(
            NormalisedName(given, given_first, family, family_parts, full, second=bool(second))
        )
        if given and family and second < swapped:
            readings.append(
                NormalisedName(
                    given=family,
                    # the family name's first word that is no particle: van or Al is no given
                    # name, and made Jan van der Berg and Jan van Dijk agree on every key of
                    # a given and a family name
                    given_first=family_first_forms(family_text),
                    family=given,
                    family_parts=given_parts,
                    full_name=full,
                    swapped=True,
                    second=bool(second),
                )
            )
    return tuple(readings)


def name_readings(name: PersonName) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...], int]:
    """The given-name and family-name texts of each reading of a name, swaps aside (the one of
    :func:`name_texts`, then, for a full name whose family name alone is in capitals, the one
    split there, or else, for a full name whose last word has particles before it, the one
    whose family name holds them: :func:`_compound_texts`), all the name's words, and how many
    of the readings, from the first, are also read swapped (the compound one is not: its
    family name's first word is no given name). Never raises."""
    given, family, words = name_texts(name)
    first = (given, family)
    found = _capitals_texts(name, first)
    if found is not None:
        return (first, found), words, 2
    found = _compound_texts(name, first)
    return ((first,) if found is None else (first, found)), words, 1


def _compound_texts(name: PersonName, first: tuple[str, str]) -> tuple[str, str] | None:
    """A further reading of a name written whole, given names first, whose last word has
    particles before it: the family name is the last word with them (``Pieter van der Berg``:
    ``van der Berg``; ``Maria da Silva``, ``Juan de la Cruz``, ``Mohammed Al Rashid``), and
    with the word before a particle of one letter, which joins two family names (``José Pérez
    y González``: ``Pérez y González``; ``Maria Silva e Santos``); the first word is the given
    name. It is read beside the first reading (:func:`name_texts`: the last word alone). Two
    words without a particle are not read as one family name (``Andrea Castillo Jiménez``,
    ``John Paul Smith``): nothing tells a second family name from a middle name, and reading
    a middle name into the family name makes strangers who share a given and a middle name
    agree on it. None for a structured name, one with a comma, one whose last word is an
    initial or whose family name would hold a placeholder or a marker of a name not known
    (``Mary van Unknown``), or when it says what ``first`` says. Never raises."""
    if name.is_structured or "," in name.full:
        return None
    words = _name_words(name.full)
    keys = [_word_key(word) for word in words]
    if len(words) < 3 or len(keys[-1]) < 2:
        return None
    start = len(words) - 1
    while start > 1 and keys[start - 1] in NAME_PARTICLES:
        start -= 1
    if start == len(words) - 1:  # no particle before the last word
        return None
    if len(keys[start]) == 1:  # y, e: a conjunction between two family names
        if start < 2 or len(keys[start - 1]) < 2:
            return None
        start -= 1
    if any(k in PLACEHOLDER_GIVEN_NAMES or k in NAME_MARKER_WORDS for k in keys[start:]):
        return None
    found = words[0], " ".join(words[start:])
    return None if found == first else found


def name_order_variants(name: PersonName) -> frozenset[tuple[str, str]]:
    """``(given, family)`` pairs in primary MRZ form, as recorded and swapped.

    ``PersonName(given="Jean", family="Dupont")`` → ``{("JEAN", "DUPONT"), ("DUPONT", "JEAN")}``;
    ``PersonName(full="Ivan Petrovich Sidorov")`` → ``{("IVAN", "SIDOROV"), ("SIDOROV", "IVAN")}``.
    Empty when given and family cannot both be known. Never raises.
    """
    return frozenset(
        (r.given[0], r.family[0]) for r in normalise_name(name) if r.given and r.family
    )
