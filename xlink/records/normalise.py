"""Normalisation of name parts, dates, documents and places (DESIGN §2 step 2, §5); how a
whole name is read into given-name, family-name and full-name values is
:mod:`xlink.records.names`.

Every function here is pure and deterministic. The output alphabet of name functions is the MRZ
alphabet ``A``-``Z`` (ICAO Doc 9303), produced by :mod:`xlink.records.transliterate` *before*
anything deletes characters: ``recordlinkage.preprocessing.clean()`` would delete ``ł``, ``ø``,
``ß`` and all of Cyrillic.

Pipeline for a name part (``normalise_name_part``):

1. :func:`normalise_text`: NFKC, case folding, punctuation to spaces except in-name hyphens and
   apostrophes, whitespace collapsed (``"  Dr. José  O’Brien "`` → ``"dr josé o'brien"``).
2. Honorifics (``MR``, ``DR``, ``SIR`` ...) are removed from the front and generational or
   academic suffixes (``JR``, ``III``, ``PHD`` ...) from the end, but never the last word left.
3. ICAO 9303 transliteration with variants (``Müller`` → ``MUELLER``, ``MULLER``).
4. Spaces, hyphens and apostrophes are removed: the *joined* form is the value
   (``van der Berg`` → ``VANDERBERG``, ``García-López`` → ``GARCIALOPEZ``, ``O'Brien`` →
   ``OBRIEN``).

Compound names and particles: the joined form is the primary value, so that ``VAN DER BERG`` and
``VANDERBERG`` agree. :func:`name_part_components` gives the weaker, secondary values (each
component of a compound name, and the name without its particles: ``BERG``) for a separate key;
they are never mixed into the primary value, because ``GARCIA`` alone is much less specific than
``GARCIALOPEZ``.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable

from xlink.records.model import BirthDate
from xlink.records.transliterate import (
    UntransliterableError,
    transliterate,
    transliterate_variants_ordered,
)

__all__ = [
    "HONORIFICS",
    "NAME_PARTICLES",
    "NAME_SUFFIXES",
    "PLACEHOLDER_GIVEN_NAMES",
    "NamePartForms",
    "birth_date_variants",
    "birth_date_variants_ordered",
    "clear_caches",
    "family_first_forms",
    "name_part_components",
    "name_part_forms",
    "name_part_variants",
    "name_words",
    "normalise_code",
    "normalise_document_number",
    "normalise_name_part",
    "normalise_place",
    "normalise_text",
    "strip_honorifics",
]

# fmt: off
#: Titles removed from the front of a name (compared after transliteration, without dots).
HONORIFICS = frozenset({
    "MR", "MRS", "MS", "MISS", "MX", "MASTER", "DR", "PROF", "SIR", "DAME", "LORD", "LADY",
    "REV", "FR", "SR", "SRA", "SRTA", "HERR", "FRAU", "MME", "MLLE", "GOSPODIN", "GOSPOZHA",
})
#: Generational and academic suffixes removed from the end of a name.
NAME_SUFFIXES = frozenset({"JR", "JNR", "SR", "SNR", "II", "III", "IV", "ESQ", "PHD", "MD"})
#: Particles: kept in the joined primary value, dropped from the secondary components.
NAME_PARTICLES = frozenset({
    "VAN", "VON", "DER", "DEN", "DE", "DI", "DA", "DU", "DEL", "DELLA", "DELLE", "DOS", "DAS",
    "DO", "LA", "LE", "LES", "TER", "TEN", "Y", "E", "AL", "EL", "BIN", "BEN", "IBN", "BINT",
    "ABU",
})
# fmt: on

#: Given names that stand for "not known yet" (an infant, an unidentified person), with spaces
#: removed, in the MRZ form: a record whose given name is one of them has no given name, since
#: two such records share nothing but the placeholder (docs/records-and-linkage.md §3); nor is
#: one a family name read from case (:func:`~xlink.records.names.name_readings`).
PLACEHOLDER_GIVEN_NAMES = frozenset(
    {
        "BABY",
        "BABYBOY",
        "BABYGIRL",
        "BOY",
        "GIRL",
        "CHILD",
        "MALE",
        "FEMALE",
        "MALECHILD",
        "FEMALECHILD",
        "INFANT",
        "NEWBORN",
        "UNKNOWN",
        "UNK",
        "UNNAMED",
        "NONAME",
        "NN",
        "FNU",
        "TWIN",
        "TWINA",
        "TWINB",
    }
)

_HYPHENS = "-‐‑‒–—―−﹘﹣－"
_APOSTROPHES = "'`´ʹʻʼʽˈ‘’‛′＇"
_NOT_A_Z = re.compile(r"[^A-Z]+")
_NOT_A_Z0_9 = re.compile(r"[^A-Z0-9]+")
_JOINER_RUN = re.compile(r"[-']{2,}")


def _invisible(ch: str) -> bool:
    """A character that shows nothing and parts no words: a format character (a soft hyphen,
    a zero-width space or joiner, a bidi mark, a byte-order mark) or a control character that
    is not white space (a NUL, an escape). It is deleted, not read as a space: ``An<U+00AD>na``
    and ``An<NUL>na`` are ``anna``, as they read."""
    category = unicodedata.category(ch)
    return category == "Cf" or (category == "Cc" and not ch.isspace())


#: What :func:`_map_char` does to each ASCII character (ASCII text is its own NFKC form, and its
#: case fold is its lower case), for ``str.translate``.
_ASCII_MAP = {
    i: (
        chr(i)
        if chr(i).isalnum()
        else "-"
        if chr(i) in _HYPHENS
        else "'"
        if chr(i) in _APOSTROPHES
        else ""
        if _invisible(chr(i))
        else " "
    )
    for i in range(128)
}

#: Bound on the entries of each memo of a function of one text below; they are emptied by
#: :func:`clear_caches`, which :func:`xlink.linkage.keys.derive_token_set` calls at its end.
CACHE_SIZE = 1 << 15


def _map_char(ch: str) -> str:
    if ch in _HYPHENS:
        return "-"
    if ch in _APOSTROPHES:
        return "'"
    category = unicodedata.category(ch)
    if category[0] in "LMN":
        return ch
    return "" if _invisible(ch) else " "


def normalise_text(text: str) -> str:
    """NFKC, case-fold, keep letters/marks/digits, in-name hyphens and apostrophes; collapse spaces.

    Invisible characters (format characters such as a soft hyphen, a zero-width space or a
    bidi mark, and control characters other than white space) are deleted; every other
    character (punctuation, symbols, white space, the MRZ filler ``<``) becomes a space. A
    hyphen or apostrophe survives only between two non-space characters, and runs of them
    collapse to one. The result is idempotent: ``normalise_text(normalise_text(s)) ==
    normalise_text(s)``. Examples: ``"  SMITH,  John "`` → ``"smith john"``;
    ``"Jean -- Luc"`` → ``"jean luc"``; ``"O’Brien"`` → ``"o'brien"``. Never raises.
    """
    if text.isascii():
        mapped = text.lower().translate(_ASCII_MAP)
    else:
        folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
        mapped = "".join(_map_char(ch) for ch in folded)
    words = (_joiners(w.strip("-'")) for w in mapped.split())
    return " ".join(w for w in words if w)


def _joiners(word: str) -> str:
    """``word`` with each run of hyphens and apostrophes collapsed to its first character."""
    if "-" in word or "'" in word:
        return _JOINER_RUN.sub(_first_joiner, word)
    return word


def _first_joiner(match: re.Match[str]) -> str:
    return match.group(0)[0]


def _word_key(word: str) -> str:
    try:
        return _NOT_A_Z.sub("", transliterate(word))
    except UntransliterableError:
        return ""


def strip_honorifics(words: list[str]) -> list[str]:
    """Drop leading :data:`HONORIFICS` and trailing :data:`NAME_SUFFIXES`, keeping >= 1 word."""
    out = list(words)
    while len(out) > 1 and _word_key(out[0]) in HONORIFICS:
        out.pop(0)
    while len(out) > 1 and _word_key(out[-1]) in NAME_SUFFIXES:
        out.pop()
    return out


def name_words(text: str) -> list[str]:
    """The words of a name after :func:`normalise_text` and :func:`strip_honorifics`."""
    return list(_name_words(text))


@functools.lru_cache(maxsize=CACHE_SIZE)
def _name_words(text: str) -> tuple[str, ...]:
    normalised = normalise_text(text)
    return tuple(strip_honorifics(normalised.split(" "))) if normalised else ()


def name_part_variants(text: str) -> tuple[str, ...]:
    """The joined MRZ forms of a name part, primary first (module docstring, steps 1-4).

    Returns ``()`` for a blank name. Raises
    :class:`~xlink.records.transliterate.UntransliterableError` when a letter has no
    transliteration (the caller treats the field as missing).
    """
    return _name_part_variants(text)


@functools.lru_cache(maxsize=CACHE_SIZE)
def _name_part_variants(text: str) -> tuple[str, ...]:
    words = _name_words(text)
    if not words:
        return ()
    out: dict[str, None] = {}
    for variant in transliterate_variants_ordered(" ".join(words)):
        joined = _NOT_A_Z.sub("", variant)
        if joined:
            out[joined] = None
    return tuple(out)


def normalise_name_part(text: str) -> frozenset[str]:
    """The set of joined MRZ forms of a name part: ``"Müller"`` → ``{"MUELLER", "MULLER"}``.

    Raises :class:`~xlink.records.transliterate.UntransliterableError` like
    :func:`name_part_variants`.
    """
    return frozenset(name_part_variants(text))


def name_part_components(text: str) -> tuple[str, ...]:
    """Secondary values of a compound or particled name, for a separate, weaker key.

    ``"García-López"`` → ``("GARCIA", "LOPEZ")``; ``"van der Berg"`` → ``("BERG",)``;
    ``"de la Cruz Garcia"`` → ``("CRUZ", "GARCIA", "CRUZGARCIA")``. A simple name has none:
    ``"Smith"`` → ``()``. Uses the primary transliteration only. Raises like
    :func:`name_part_variants`.
    """
    return _name_part_components(text)


@functools.lru_cache(maxsize=CACHE_SIZE)
def _name_part_components(text: str) -> tuple[str, ...]:
    words = _name_words(text)
    if not words:
        return ()
    primary = transliterate(" ".join(words))
    pieces = [_NOT_A_Z.sub("", p) for p in re.split(r"[ -]", primary)]
    pieces = [p for p in pieces if p]
    kept = [p for p in pieces if p not in NAME_PARTICLES] or pieces
    if len(pieces) < 2:
        return ()
    out: dict[str, None] = dict.fromkeys(kept)
    joined_without_particles = "".join(kept)
    if len(kept) > 1 and joined_without_particles != "".join(pieces):
        out[joined_without_particles] = None
    return tuple(out)


def _safe(fn: Callable[[str], tuple[str, ...]], text: str) -> tuple[str, ...]:
    try:
        return fn(text)
    except UntransliterableError:
        return ()


def _first_word(text: str) -> str:
    words = _name_words(text)
    return words[0] if words else ""


def family_first_forms(text: str) -> tuple[str, ...]:
    """The :func:`name_part_variants` of a family name's first word that is no particle
    (``van der Berg``: ``BERG``; ``Al Rashid``: ``RASHID``; ``Castillo Jiménez``:
    ``CASTILLO``), what a reading with given and family exchanged takes as the first given
    name; of its first word when every word is a particle; ``()`` when blank or
    untransliterable. Never raises."""
    return _family_first_forms(text)


@functools.lru_cache(maxsize=CACHE_SIZE)
def _family_first_forms(text: str) -> tuple[str, ...]:
    words = _name_words(text)
    kept = [w for w in words if _word_key(w) not in NAME_PARTICLES] or words
    return _safe(name_part_variants, kept[0]) if kept else ()


NamePartForms = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]


def name_part_forms(text: str) -> NamePartForms:
    """What a name reading takes from one name part: its :func:`name_part_variants`, those of
    its first word, and its :func:`name_part_components`; each ``()`` when blank or
    untransliterable. Never raises."""
    return _name_part_forms(text)


@functools.lru_cache(maxsize=CACHE_SIZE)
def _name_part_forms(text: str) -> NamePartForms:
    return (
        _safe(name_part_variants, text),
        _safe(name_part_variants, _first_word(text)),
        _safe(name_part_components, text),
    )


def birth_date_variants_ordered(date: BirthDate) -> tuple[str, ...]:
    """ISO forms of a birth date at its own precision, as recorded first.

    ``BirthDate(1980, 3, 4, day_month_ambiguous=True)`` → ``("1980-03-04", "1980-04-03")``;
    ``BirthDate(1980, 3)`` → ``("1980-03",)``; ``BirthDate(1980)`` → ``("1980",)``. Never raises.
    """
    recorded = date.isoformat()
    if not date.day_month_ambiguous or date.day == date.month:
        return (recorded,)
    assert date.day is not None and date.month is not None
    return (recorded, f"{date.year:04d}-{date.day:02d}-{date.month:02d}")


def birth_date_variants(date: BirthDate) -> frozenset[str]:
    """The set of :func:`birth_date_variants_ordered`."""
    return frozenset(birth_date_variants_ordered(date))


def normalise_document_number(number: str) -> str:
    """Upper-case and keep only ``A``-``Z`` and ``0``-``9`` (spaces, ``-``, ``<``, ``/`` go).

    ``"ab-123 456<<"`` → ``"AB123456"``. Look-alike confusions (``O``/``0``, ``I``/``1``) are NOT
    folded: document numbers mix letters and digits by design, and folding would merge distinct
    numbers. Non-ASCII letters are dropped after NFKC (document numbers are ASCII in ICAO 9303).
    Returns ``""`` when nothing is left. Never raises.
    """
    return _NOT_A_Z0_9.sub("", unicodedata.normalize("NFKC", number).upper())


def normalise_code(code: str) -> str:
    """Postcodes and country codes: NFKC, upper-case, only ``A``-``Z0``-``9`` (``"k1a 0b1"`` →
    ``"K1A0B1"``). Never raises."""
    return _normalise_code(code)


@functools.lru_cache(maxsize=CACHE_SIZE)
def _normalise_code(code: str) -> str:
    return normalise_document_number(code)


def normalise_place(text: str) -> str:
    """Free place text (street, locality): transliterated words of ``A``-``Z0``-``9``, one space
    between them (``"Rue de l'Église"`` → ``"RUE DE LEGLISE"``). ``""`` when untransliterable
    or blank. Never raises."""
    return _normalise_place(text)


@functools.lru_cache(maxsize=CACHE_SIZE)
def _normalise_place(text: str) -> str:
    try:
        primary = transliterate(normalise_text(text))
    except UntransliterableError:
        return ""
    words = (_NOT_A_Z0_9.sub("", w) for w in primary.split(" "))
    return " ".join(w for w in words if w)


def clear_caches() -> None:
    """Empty the memos of this module's functions (each keeps at most :data:`CACHE_SIZE` recent
    texts), so that no name or place outlives the records it came from."""
    for memo in (
        _name_words,
        _name_part_variants,
        _name_part_components,
        _name_part_forms,
        _family_first_forms,
        _normalise_code,
        _normalise_place,
    ):
        memo.cache_clear()
