"""Parsers for single fields of a raw row; each raises ``ValueError`` with a value-free reason.

Used by :func:`xlink.records.validation.validate_row`, which re-exports the public names. A
reason never quotes the value it rejects, because values may be identities.
"""

from __future__ import annotations

import re
import unicodedata

from xlink.identifiers import COUNTRY
from xlink.records._dates import (
    EARLIEST_CENTURY_END,
    LATEST_CENTURY_END,
    TWO_DIGIT_YEAR,
    DateOrder,
    century_year,
    check_century_end,
    parse_birth_date,
    salvage_birth_date,
)
from xlink.records._missing import trim
from xlink.records.model import (
    AdmiraltyGrading,
    Category,
    Grading,
    HandlingCode,
    PersonName,
    Sex,
    UkGrading,
)

__all__ = [
    "EARLIEST_CENTURY_END",
    "LATEST_CENTURY_END",
    "TWO_DIGIT_YEAR",
    "DateOrder",
    "category_key",
    "century_year",
    "check_century_end",
    "parse_aliases",
    "parse_birth_date",
    "parse_category",
    "parse_country_code",
    "parse_doc_type",
    "parse_grading",
    "parse_handling_code",
    "parse_nationalities",
    "parse_sex",
    "salvage_birth_date",
]


#: Sex markers as lists write them, upper case without accents: ICAO 9303's F, M, X; the
#: words; ISO/IEC 5218's codes 1 (male) and 2 (female), as national registers export them
#: (not its 0 and 9, which a file coding sex 0/1 would have read as X without a word); and
#: the French, Spanish, Portuguese and German words and letters that cannot be read otherwise
#: (``H``: homme, hombre; ``W``: weiblich). ``M`` stays male (ICAO), whatever a Spanish list
#: means by it.
_SEX_WORDS = {
    **dict.fromkeys(("F", "FEMALE", "WOMAN", "2", "W", "FEMME", "FEMININ"), Sex.FEMALE),
    **dict.fromkeys(("FEMENINO", "FEMININO", "MUJER", "MULHER", "WEIBLICH"), Sex.FEMALE),
    **dict.fromkeys(("M", "MALE", "MAN", "1", "H", "HOMME", "MASCULIN"), Sex.MALE),
    **dict.fromkeys(("MASCULINO", "HOMBRE", "HOMEM", "MANNLICH"), Sex.MALE),
    **dict.fromkeys(("X", "U", "UNKNOWN", "UNSPECIFIED"), Sex.UNSPECIFIED),
}
#: Category spellings lists use beside the canonical names (after case folding, and spaces
#: and hyphens read as ``_``).
_CATEGORY_WORDS = {
    "traveler": Category.TRAVELLER,
    "watch_list": Category.WATCHLIST,
    "sexoffender": Category.SEX_OFFENDER,
}

_COUNTRY = COUNTRY  # ISO 3166-1 alpha-3, as the MOU's parties
_DOC_TYPE = re.compile(r"[A-Z0-9]{1,2}")


def category_key(text: str) -> str:
    """A file's category value as a mapping's ``categories`` names it: lower case, each run of
    white space one space, none at either end (``Sex Offender  –  High Risk`` is ``sex
    offender – high risk``), accents in their composed form (NFC)."""
    return " ".join(unicodedata.normalize("NFC", text).lower().split())


def parse_category(text: str) -> Category:
    """Parse a record category, case-insensitively (``sex offender`` = ``sex_offender``).

    Raises:
        ValueError: "unknown category (expected one of watchlist, sex_offender, traveller,
            other, or a value the mapping's "categories" names)".
    """
    key = re.sub(r"[\s-]+", "_", text.strip().lower())
    try:
        return _CATEGORY_WORDS.get(key) or Category(key)
    except ValueError:
        allowed = ", ".join(c.value for c in Category)
        raise ValueError(
            f"unknown category (expected one of {allowed}, or a value the mapping's "
            '"categories" names)'
        ) from None


def parse_sex(text: str) -> Sex:
    """Parse F/M/X, female/male/unknown/unspecified, ISO/IEC 5218's 1/2/0/9, and the other
    markers of :data:`_SEX_WORDS`, case- and accent-insensitively.

    Raises:
        ValueError: "unknown sex marker (expected F, M or X, or 1 or 2)".
    """
    key = text.strip().upper()
    if not key.isascii():  # FÉMININ, MÄNNLICH
        key = "".join(c for c in unicodedata.normalize("NFKD", key) if c.isascii())
    try:
        return _SEX_WORDS[key]
    except KeyError:
        raise ValueError("unknown sex marker (expected F, M or X, or 1 or 2)") from None


def parse_country_code(text: str) -> str:
    """Parse an ISO 3166-1 alpha-3 code (as ICAO 9303 uses them), returned in upper case.

    ICAO 9303's single-letter ``D`` (Germany) is accepted as well.

    Raises:
        ValueError: "not an ISO 3166-1 alpha-3 country code".
    """
    code = text.strip().upper()
    if code == "D" or _COUNTRY.fullmatch(code):
        return code
    raise ValueError("not an ISO 3166-1 alpha-3 country code")


def parse_grading(text: str) -> Grading:
    """Parse a source grading; its shape says which scheme it is.

    Digit then letter is UK 3x5x2 (``1A`` .. ``3E``); letter then digit is NATO Admiralty
    (``A1`` .. ``F6``). Case-insensitive.

    Raises:
        ValueError: "3x5x2 grading must be 1-3 then A-E", "Admiralty grading must be A-F then
            1-6", or "unrecognised grading (expected 3x5x2 like 1A or Admiralty like B2)".
    """
    code = text.strip().upper()
    if re.fullmatch(r"\d[A-Z]", code):
        if code[0] in "123" and code[1] in "ABCDE":
            return UkGrading(int(code[0]), code[1])
        raise ValueError("3x5x2 grading must be 1-3 then A-E")
    if re.fullmatch(r"[A-Z]\d", code):
        if code[0] in "ABCDEF" and code[1] in "123456":
            return AdmiraltyGrading(code[0], int(code[1]))
        raise ValueError("Admiralty grading must be A-F then 1-6")
    raise ValueError("unrecognised grading (expected 3x5x2 like 1A or Admiralty like B2)")


def parse_handling_code(text: str) -> HandlingCode:
    """Parse a 3x5x2 handling code, ``P`` or ``C`` (case-insensitive).

    Raises:
        ValueError: "handling code must be P or C".
    """
    try:
        return HandlingCode(text.strip().upper())
    except ValueError:
        raise ValueError("handling code must be P or C") from None


def parse_aliases(text: str) -> tuple[PersonName, ...]:
    """Parse ``;``-separated aliases; each is ``Family, Given`` or a full name.

    Empty entries (``a;;b``) are skipped.

    Raises:
        ValueError: "alias N has more than one comma" or "alias N has no name" (N is 1-based).
    """
    names: list[PersonName] = []
    for number, alias in enumerate(text.split(";"), start=1):
        alias = trim(alias)
        if not alias:
            continue
        if "," not in alias:
            names.append(PersonName(full=alias))
            continue
        family, _, given = alias.partition(",")
        if "," in given:
            raise ValueError(f"alias {number} has more than one comma")
        family, given = trim(family), trim(given)
        if not (family or given):
            raise ValueError(f"alias {number} has no name")
        names.append(PersonName(given=given, family=family))
    return tuple(names)


def parse_nationalities(text: str) -> tuple[str, ...]:
    """Parse ``;``-separated alpha-3 codes, upper-cased, duplicates dropped.

    Raises:
        ValueError: "nationality N is not an ISO 3166-1 alpha-3 code" (N is 1-based).
    """
    codes: list[str] = []
    for number, part in enumerate(text.split(";"), start=1):
        part = trim(part)  # each item padded as a whole value is (docs/loading.md)
        if not part:
            continue
        try:
            code = parse_country_code(part)
        except ValueError:
            raise ValueError(f"nationality {number} is not an ISO 3166-1 alpha-3 code") from None
        if code not in codes:
            codes.append(code)
    return tuple(codes)


def parse_doc_type(text: str) -> str:
    """Parse an ICAO 9303 document type code (``P``, ``ID``, ``V`` ...), upper-cased.

    Raises:
        ValueError: "document type must be a 1-2 character ICAO 9303 code".
    """
    code = text.strip().upper()
    if not _DOC_TYPE.fullmatch(code):
        raise ValueError("document type must be a 1-2 character ICAO 9303 code")
    return code
