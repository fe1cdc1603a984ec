"""Values that stand for "not known" in a partner's export: ``N/A``, ``NULL``, ``-``,
``UNKNOWN``, ``0000-00-00``, a family name ``LNU`` ("last name unknown"), a passport number
``000000``. Two records holding the same such value share nothing about a person, so a
value read as one of them is missing, not a name, a date or a document number that could
agree (docs/loading.md, "Values that mean missing").

The rule is on a field's whole value, compared without regard to case or inner spaces, and
applies to the identity fields only (:data:`MISSING_FIELDS`): a payload column keeps what it
says. ``sex`` keeps its own reading of ``U`` and ``Unknown`` (the unspecified sex ``X``); any
other marker (``N/A``, ``NULL``, ``-``) is a sex not given, as in other fields.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

__all__ = [
    "MISSING_FIELDS",
    "MISSING_MARKERS",
    "NAME_MARKERS",
    "PADDING",
    "blank_missing",
    "is_placeholder_document",
    "trim",
    "unguard",
]

MISSING_MARKERS: Final = frozenset(
    {
        "N/A",
        "#N/A",
        "N.A.",
        "NULL",
        "NONE",
        "NIL",
        "-",
        "--",
        "---",
        "?",
        "??",
        "???",
        "UNKNOWN",
        "UNK",
        "NOTKNOWN",
        "NOTAVAILABLE",
        "NOTAPPLICABLE",
        "0000-00-00",
        "00/00/0000",
        "00.00.0000",
    }
)
"""Whole values that mean "not known" in any identity field (upper case, no spaces)."""

_SPACED: Final = frozenset({"NOT KNOWN", "NOT AVAILABLE", "NOT APPLICABLE", "N / A", "N. A."})

NAME_MARKERS: Final = (MISSING_MARKERS - {"NIL", "N.A."}) | frozenset(
    {"LNU", "FNU", "NFN", "NLN", "NMN", "XX", "XXX"}
)
"""In a name field: the same but ``NIL`` (a Turkish given name) and ``N.A.`` (initials), and
also the law-enforcement shorthands for an unknown or absent name (last name unknown, first
name unknown, no first, last or middle name) and ``XX``/``XXX``."""

#: Characters that show nothing and that text copied from web pages, word processors and
#: right-to-left forms leaves at a value's ends: the zero-width space, non-joiner and joiner,
#: the word joiner and the invisible operators, the byte-order mark, the soft hyphen, the
#: Mongolian vowel separator, the left-to-right, right-to-left and Arabic letter marks, and
#: the bidirectional embeddings, overrides and isolates.
INVISIBLE_PADDING: Final = (
    "\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad\u180e"
    "\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
#: What ``str.strip()`` strips (every character ``str.isspace`` calls whitespace), listed so
#: that one ``strip`` call takes it and the invisible padding together.
WHITESPACE: Final = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004"
    "\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
PADDING: Final = WHITESPACE + INVISIBLE_PADDING
"""What :func:`trim` strips: ``value.strip(PADDING)`` is ``trim(value)``, without the call."""


def trim(value: str) -> str:
    """``value`` without the whitespace and the :data:`INVISIBLE_PADDING` at its ends (those
    inside it stay: a zero-width non-joiner inside a Persian name is part of how it is
    written). A date ``1980-04-03`` followed by a zero-width space is that date."""
    return value.strip(PADDING)


def unguard(cell: str) -> str:
    """A cell a spreadsheet wrote as the formula ``="00123"`` (to keep its leading zeros, or
    its text as text) as the text it guards, ``00123``; any other cell as it is, a formula
    of more than one string (``="A"&"B"``) included."""
    text = trim(cell)
    if len(text) >= 3 and text.startswith('="') and text.endswith('"'):
        inner = text[2:-1]
        if '"' not in inner.replace('""', ""):
            return inner.replace('""', '"')
    return cell


_NAME_FIELDS: Final = ("given_name", "middle_name", "family_name", "full_name")
_OTHER_FIELDS: Final = (
    "aliases",
    "birth_date",
    "nationalities",
    "birth_place",
    "doc_type",
    "doc_number",
    "doc_country",
    "doc_expiry",
    "address",
    "locality",
    "region",
    "postcode",
    "country",
)
MISSING_FIELDS: Final = frozenset((*_NAME_FIELDS, *_OTHER_FIELDS, "sex"))
"""The fields a marker empties."""

#: The markers of "not known" in ``sex``: all but ``UNKNOWN``, which it reads as ``X``.
_SEX_MARKERS: Final = MISSING_MARKERS - {"UNKNOWN"}

# Each set as a value is compared: upper case, with the spaced forms a marker is written in
# (the rare other spacing goes through the slow path of :func:`_is_marker`).
_NAME_LOOKUP: Final = NAME_MARKERS | (_SPACED - {"N. A."})
_OTHER_LOOKUP: Final = MISSING_MARKERS | _SPACED
_SEX_LOOKUP: Final = _SEX_MARKERS | _SPACED
_SEX_FIELD: Final = ("sex",)
_LONGEST: Final = max(len(m) for m in _NAME_LOOKUP) + 4  # room for other spacing
#: Every marker's first character, either case: most values are ruled out by it alone.
_FIRST: Final = frozenset(m[0] for m in _NAME_LOOKUP) | frozenset(
    m[0].lower() for m in _NAME_LOOKUP
)


def blank_missing(values: Mapping[str, str]) -> dict[str, str] | None:
    """The fields of ``values`` (stripped texts by canonical field name) that hold a marker
    of "not known", each mapped to ``""``; None when there is none (the usual case)."""
    found: dict[str, str] | None = None
    for fields, lookup, markers in (
        (_NAME_FIELDS, _NAME_LOOKUP, NAME_MARKERS),
        (_OTHER_FIELDS, _OTHER_LOOKUP, MISSING_MARKERS),
        (_SEX_FIELD, _SEX_LOOKUP, _SEX_MARKERS),
    ):
        names = markers is NAME_MARKERS
        for field in fields:
            value = values.get(field)
            if (
                not value
                or value[0] not in _FIRST
                or len(value) > (_LONGEST_NAME if names else _LONGEST)
            ):
                continue  # the usual case, ruled out cheaply
            upper = value.upper()
            if (
                upper in lookup
                or "".join(upper.split()) in markers
                # a name of markers only: UNKNOWN UNKNOWN, FNU-LNU, N/A, N/A (a full name)
                or (names and _all_markers(upper))
            ):
                if found is None:
                    found = {}
                found[field] = ""
    return found


#: The longest name :func:`blank_missing` looks at as words of markers (``UNKNOWN UNKNOWN
#: UNKNOWN``, a given, a middle and a family name in one column).
_LONGEST_NAME: Final = 3 * _LONGEST
#: What parts the words of a name of markers: spaces, commas, semicolons, hyphens.
_MARKER_WORDS: Final = re.compile(r"[\s,;]+|-(?=[^-])")


def _all_markers(upper: str) -> bool:
    """Whether ``upper`` (a name in capitals) is two or more name markers and nothing else."""
    words = [w for w in _MARKER_WORDS.split(upper) if w]
    return len(words) > 1 and all(w in NAME_MARKERS for w in words)


_DOCUMENT_FILLER: Final = re.compile(r"[\s\-./]+")


def is_placeholder_document(number: str) -> bool:
    """Whether a document number is one character written again and again (``000000``,
    ``XXXXXXXX``, ``9999 9999``): a filler where the number was not known, which every record
    so filled would share."""
    compact = _DOCUMENT_FILLER.sub("", number).upper()
    return bool(compact) and compact == compact[0] * len(compact)
