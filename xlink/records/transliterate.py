"""ICAO Doc 9303 transliteration to the MRZ Latin alphabet ``A``-``Z`` (DESIGN §5).

Implements the recommended transliterations of ICAO Doc 9303 Part 3 (8th edition, 2021),
section 6 and its Appendix: multinational Latin characters and Cyrillic (Russian, with the extra
letters of Ukrainian, Belarusian, Serbian and Macedonian).

Rules, applied character by character after Unicode NFC composition:

1. A letter in :data:`LATIN_TABLE` or :data:`CYRILLIC_TABLE` (looked up as itself, then as its
   upper case) maps to its listed values. Rows with several values (``Ä`` → ``AE`` or ``A``)
   produce *variants*; the first-listed value is the primary one.
2. ASCII letters are upper-cased.
3. Any other letter with a Unicode compatibility decomposition to ASCII letters falls back to
   them (``Ǹ`` → ``N``, ``ﬁ`` → ``FI``).
4. Combining marks (left over from decomposed input) are dropped: they only decorate a letter.
5. Non-letters (digits, spaces, hyphens, apostrophes, punctuation) and modifier letters (Unicode
   category Lm, such as the apostrophe-like ``ʼ``) pass through unchanged, so that the caller
   (:mod:`xlink.records.normalise`) decides how separators are handled.
6. Any other letter (CJK, Arabic, Hebrew, Greek, Devanagari ...) raises
   :class:`UntransliterableError`. It is never silently deleted: deleting it would make different
   names equal (every all-Arabic name would become the empty string). Key derivation treats such
   a field as missing, so the keys that need it are skipped for that record and nothing wrong is
   matched.

Deliberate choices where the standard is language-dependent (a name does not say its language):
``Г`` is ``G`` (Russian; Ukrainian and Belarusian ICAO tables use ``H``), ``Ё`` is ``E``
(Russian; Belarusian uses ``IO``), ``Ñ`` is ``N`` only.
"""

from __future__ import annotations

import itertools
import unicodedata
from collections.abc import Mapping
from types import MappingProxyType

from xlink.errors import UntransliterableError

__all__ = [
    "CYRILLIC_TABLE",
    "LATIN_TABLE",
    "MAX_VARIANTS",
    "UntransliterableError",
    "transliterate",
    "transliterate_variants",
    "transliterate_variants_ordered",
]

#: At most this many variants are returned for one text.
MAX_VARIANTS = 8


def _rows(spec: str) -> dict[str, tuple[str, ...]]:
    """Parse ``"Ä=AE|A Ö=OE|O ..."`` into a table; the first value of a row is the primary one."""
    table: dict[str, tuple[str, ...]] = {}
    for row in spec.split():
        chars, values = row.split("=")
        for ch in chars:
            table[ch] = tuple(values.split("|")) if values else ("",)
    return table


# ICAO 9303 Part 3 §6, "Transliteration of multinational Latin-based characters". One row per
# value; several characters sharing a value are written together before "=". The second value
# of Ä Ö Ü Å Ø is the base letter, as a list that strips diacritics writes it (Müller as MULLER,
# Bjørn as BJORN): a variant, never the primary form.
LATIN_TABLE: Mapping[str, tuple[str, ...]] = MappingProxyType(
    _rows(
        "ÁÀÂÃĂĀĄǍȦ=A Ä=AE|A Å=AA|A Æ=AE "
        "ĆĈČĊÇ=C ĎĐÐ=D ÉÈÊËĚĖĒĘĔ=E ĜĞĠĢ=G ĤĦ=H ÌÍÎÏĨİĪĮĬ=I Ĳ=IJ Ĵ=J Ķ=K ĹĻĽĿŁ=L "
        "ŃÑŇŅŊ=N ÒÓÔÕŌŐŎ=O Ö=OE|O Ø=OE|O Œ=OE ŔŘŖ=R ŚŜŠŞȘ=S ŤŢȚŦ=T Þ=TH "
        "ÙÚÛŨŬŰŮŪŲ=U Ü=UE|U Ŵ=W ÝŸŶ=Y ŹŻŽ=Z "
        # Lower-case letters whose upper case is not a single table character:
        "ß=SS ı=I ĸ=K ŉ=N ſ=S"
    )
)

# ICAO 9303 Part 3 Appendix, Cyrillic: Russian, then Ukrainian, Belarusian, Serbian, Macedonian.
CYRILLIC_TABLE: Mapping[str, tuple[str, ...]] = MappingProxyType(
    _rows(
        "А=A Б=B В=V Г=G Д=D ЕЁ=E Ж=ZH З=Z ИЙ=I К=K Л=L М=M Н=N О=O П=P Р=R С=S Т=T У=U "
        "Ф=F Х=KH Ц=TS Ч=CH Ш=SH Щ=SHCH Ъ=IE Ы=Y Ь= Э=E Ю=IU Я=IA "
        "Є=IE ІЇ=I Ґ=G Ў=U Ђ=D Ј=J Љ=LJ Њ=NJ Ћ=C Џ=DZ Ѓ=G Ќ=K Ѕ=DZ"
    )
)


def _script_of(ch: str) -> str:
    name = unicodedata.name(ch, "UNKNOWN")
    return name.split(" ", 1)[0]


def _char_options(ch: str) -> tuple[str, ...] | str:
    """The transliteration values of one character, primary first (rules 1-6 of the module),
    or the script name (a ``str``) of a letter that has none."""
    for candidate in (ch, ch.upper()):
        if len(candidate) == 1:
            hit = LATIN_TABLE.get(candidate) or CYRILLIC_TABLE.get(candidate)
            if hit is not None:
                return hit
    if "A" <= ch <= "Z" or "a" <= ch <= "z":
        return (ch.upper(),)
    category = unicodedata.category(ch)
    if category.startswith("M"):
        return ("",)
    if not category.startswith("L") or category == "Lm":
        return (ch,)
    base = "".join(
        c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.category(c).startswith("M")
    )
    if base and base.isascii() and base.isalpha():
        return (base.upper(),)
    return _script_of(ch)


#: :func:`_char_options` of every character met so far (characters, not texts: bounded by
#: Unicode and no identity).
_OPTIONS: dict[str, tuple[str, ...] | str] = {}


def _options(ch: str) -> tuple[str, ...]:
    """The transliteration values of one character, primary first. Raises
    :class:`UntransliterableError` for a letter that has none."""
    hit = _OPTIONS.get(ch)
    if hit is None:
        hit = _OPTIONS[ch] = _char_options(ch)
    if isinstance(hit, str):
        raise UntransliterableError(hit)
    return hit


def transliterate_variants_ordered(text: str) -> tuple[str, ...]:
    """Every transliteration of ``text``, primary first, at most :data:`MAX_VARIANTS`.

    Order (deterministic): the all-primary form; then the all-alternate form (a document usually
    applies one convention throughout: ``MUELLER-SCHOEN`` or ``MULLER-SCHON``); then the remaining
    combinations in ``itertools.product`` order (the leftmost ambiguous letter varies slowest),
    until :data:`MAX_VARIANTS` are collected.

    Raises :class:`UntransliterableError` when a letter cannot be transliterated.
    """
    if text.isascii():  # rules 2 and 5 only: one reading
        return (text.upper(),)
    choices = [_options(ch) for ch in unicodedata.normalize("NFC", text)]
    primary = "".join(c[0] for c in choices)
    if all(len(c) == 1 for c in choices):
        return (primary,)
    out: dict[str, None] = {primary: None}
    out["".join(c[-1] for c in choices)] = None
    for combo in itertools.product(*choices):
        if len(out) >= MAX_VARIANTS:
            break
        out["".join(combo)] = None
    return tuple(out)[:MAX_VARIANTS]


def transliterate_variants(text: str) -> frozenset[str]:
    """The set of transliterations of ``text`` (see :func:`transliterate_variants_ordered`).

    ``transliterate_variants("Müller") == {"MUELLER", "MULLER"}``.

    Raises :class:`UntransliterableError` when a letter cannot be transliterated.
    """
    return frozenset(transliterate_variants_ordered(text))


def transliterate(text: str) -> str:
    """The primary (first-listed) transliteration: ``"Müller"`` → ``"MUELLER"``.

    Raises :class:`UntransliterableError` when a letter cannot be transliterated.
    """
    if text.isascii():  # rules 2 and 5 only
        return text.upper()
    return "".join(_options(ch)[0] for ch in unicodedata.normalize("NFC", text))
