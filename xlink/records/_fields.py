"""Parsers for single fields of a raw row; each raises ``ValueError`` with a value-free reason.

Used by :func:`xlink.records.validation.validate_row`, which re-exports the public names. A
reason never quotes the value it rejects, because values may be identities.
"""

from __future__ import annotations

import re
from enum import StrEnum

from xlink.identifiers import COUNTRY
from xlink.records.model import (
    AdmiraltyGrading,
    BirthDate,
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


class DateOrder(StrEnum):
    """How a file writes day and month in ``NN/NN/YYYY`` dates (``/``, ``.``, ``-`` or a space
    between the parts).

    ``UNKNOWN`` deduces the order from each date when one part is above 12, and otherwise reads
    the date as day-first and marks it ``day_month_ambiguous`` so that normalisation can derive
    both readings. ISO forms (``YYYY-MM-DD`` ...) are unambiguous whatever the order.
    """

    DMY = "DMY"
    MDY = "MDY"
    YMD = "YMD"
    UNKNOWN = "unknown"


_SEX_WORDS = {
    "F": Sex.FEMALE,
    "FEMALE": Sex.FEMALE,
    "M": Sex.MALE,
    "MALE": Sex.MALE,
    "X": Sex.UNSPECIFIED,
    "U": Sex.UNSPECIFIED,
    "UNKNOWN": Sex.UNSPECIFIED,
    "UNSPECIFIED": Sex.UNSPECIFIED,
}

#: A time of day after a date, as database and spreadsheet exports write one (ignored):
#: ``T12:30``, `` 00:00:00.000Z``, `` 1:05 +0100``, `` 12:00:00 AM``, ``, 0:00``.
_TIME_OF_DAY = re.compile(
    r"(?:[T\s]|,\s*)\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:\s*[AaPp]\.?[Mm]\.?)?"
    r"(?:\s*(?:Z|UTC|GMT|[+-]\d{2}:?\d{2}))?$"
)
_ISO_FULL = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_ISO_MONTH = re.compile(r"(\d{4})-(\d{2})")
_YEAR = re.compile(r"\d{4}")
_COMPACT = re.compile(r"(\d{4})(\d{2})(\d{2})")
_YEAR_FIRST = re.compile(r"(\d{4})([/.\s-])(\d{1,2})\2(\d{1,2})")
_YEAR_LAST = re.compile(r"(\d{1,2})([/.\s-])(\d{1,2})\2(\d{4})")
_YEAR_LAST_SHORT = re.compile(r"(\d{1,2})([/.\s-])(\d{1,2})\2(\d{2})")
_MONTH_YEAR = re.compile(r"(\d{1,2})[/.\s-](\d{4})")
# A month by its English name or first three letters (``Sept`` too): 3 Apr 1980, 03-APR-1980
# (as some databases print dates), April 3, 1980.
_MONTH_NAMES = (
    "january february march april may june july august september october november december"
)
_MONTHS = {
    name: number
    for number, full in enumerate(_MONTH_NAMES.split(), start=1)
    for name in (full, full[:3])
} | {"sept": 9}
_DAY_MONTH_NAME_SHORT = re.compile(r"(\d{1,2})[-/. ]([A-Za-z]{3,9})\.?[-/. ,]\s*(\d{2})")
_DAY_MONTH_NAME = re.compile(r"(\d{1,2})[-/. ]([A-Za-z]{3,9})\.?[-/. ,]\s*(\d{4})")
_MONTH_NAME_DAY = re.compile(r"([A-Za-z]{3,9})\.?\s+(\d{1,2}),?\s+(\d{4})")
_COUNTRY = COUNTRY  # ISO 3166-1 alpha-3, as the MOU's parties
_DOC_TYPE = re.compile(r"[A-Z0-9]{1,2}")


def _birth_date(
    year: int, month: int | None, day: int | None, ambiguous: bool = False
) -> BirthDate:
    """Build a :class:`BirthDate`, turning its checks into the two reasons users see."""
    try:
        return BirthDate(year, month, day, day_month_ambiguous=ambiguous)
    except ValueError as exc:
        if "year" in str(exc):
            raise ValueError("year out of range") from None
        raise ValueError("impossible date") from None


#: The reason for a date whose year has two digits, when the mapping does not say how to read it.
TWO_DIGIT_YEAR = "two-digit year, read only with the mapping's two_digit_years_until"
#: The range of a mapping's ``two_digit_years_until``: every year it reads a two-digit year as
#: (the hundred years up to it) is one a date of birth may have (1850..2200).
EARLIEST_CENTURY_END = 1850 + 99
LATEST_CENTURY_END = 2200


def century_year(two_digits: int, until: int) -> int:
    """The latest year not after ``until`` whose last two digits are ``two_digits`` (0..99):
    with ``until`` 2026, ``83`` is 1983 and ``26`` is 2026. A date of birth written with two
    digits for its year is read so, when the file's mapping says up to which year its people
    were born (``two_digit_years_until``): anyone listed is younger than a hundred."""
    if not 0 <= two_digits <= 99:
        raise ValueError("two digits are 0..99")
    return until - (until - two_digits) % 100


def check_century_end(until: int | None) -> int | None:
    """``until`` if it is None or a year :func:`century_year` may read two digits up to
    (:data:`EARLIEST_CENTURY_END`..:data:`LATEST_CENTURY_END`); raises ``ValueError``
    otherwise."""
    if until is None:
        return None
    if (
        isinstance(until, bool)
        or not isinstance(until, int)
        or not EARLIEST_CENTURY_END <= until <= LATEST_CENTURY_END
    ):
        raise ValueError(
            f"two_digit_years_until must be a year from {EARLIEST_CENTURY_END} "
            f"to {LATEST_CENTURY_END}"
        )
    return until


def _year_last(first: int, second: int, year: int, order: DateOrder) -> BirthDate:
    """A ``NN/NN/YYYY`` date read by ``order`` (see :class:`DateOrder`)."""
    if order is DateOrder.YMD:
        raise ValueError("day or month first, but the date order is YMD")
    if order is DateOrder.DMY:
        return _birth_date(year, second, first)
    if order is DateOrder.MDY:
        return _birth_date(year, first, second)
    if first > 12 and second <= 12:
        return _birth_date(year, second, first)
    if second > 12 and first <= 12:
        return _birth_date(year, first, second)
    if first > 12 and second > 12:
        _birth_date(year, None, None)  # report a bad year before a bad day/month
        raise ValueError("impossible date")
    return _birth_date(year, second, first, ambiguous=first != second)


def parse_birth_date(
    text: str,
    date_order: DateOrder | str = DateOrder.UNKNOWN,
    *,
    two_digit_years_until: int | None = None,
) -> BirthDate:
    """Parse a possibly partial date of birth.

    Accepted forms: ``YYYY-MM-DD``, ``YYYY-MM``, ``YYYY``, ``YYYYMMDD``, ``YYYY/MM/DD``,
    ``MM/YYYY`` ``NN/NN/YYYY`` (any of ``/ . -`` or a space for ``/``, the same one twice), read
    by ``date_order`` (see :class:`DateOrder`), and a month by its English name or first three
    letters, whatever the order (``3 Apr 1980``, ``03-APR-1980``, ``April 3, 1980``). A time of
    day after any of them is ignored (``1980-04-03T00:00:00Z``, ``4/3/1980 12:00:00 AM``, as
    spreadsheets and databases export a date). With ``UNKNOWN`` order and both parts <= 12 and
    different, the day-first reading is returned with ``day_month_ambiguous=True``. With
    ``two_digit_years_until``, ``NN/NN/YY`` is read the same way, its year by
    :func:`century_year`; without it, a two-digit year is not a date.

    Raises:
        ValueError: "unrecognised date format", :data:`TWO_DIGIT_YEAR`, "impossible date"
            (31 April, month 13),
            "year out of range" (outside 1850..2200), or "day or month first, but the date order
            is YMD".
    """
    order = DateOrder(date_order)
    text = text.strip()
    if ":" in text:
        text = _TIME_OF_DAY.sub("", text).rstrip()
    if m := _ISO_FULL.fullmatch(text) or _COMPACT.fullmatch(text):
        return _birth_date(int(m[1]), int(m[2]), int(m[3]))
    if m := _YEAR_FIRST.fullmatch(text):
        return _birth_date(int(m[1]), int(m[3]), int(m[4]))
    if m := _ISO_MONTH.fullmatch(text):
        return _birth_date(int(m[1]), int(m[2]), None)
    if _YEAR.fullmatch(text):
        return _birth_date(int(text), None, None)
    if m := _MONTH_YEAR.fullmatch(text):
        return _birth_date(int(m[2]), int(m[1]), None)
    if (m := _DAY_MONTH_NAME.fullmatch(text)) and m[2].lower() in _MONTHS:
        return _birth_date(int(m[3]), _MONTHS[m[2].lower()], int(m[1]))
    if (m := _MONTH_NAME_DAY.fullmatch(text)) and m[1].lower() in _MONTHS:
        return _birth_date(int(m[3]), _MONTHS[m[1].lower()], int(m[2]))
    if m := _YEAR_LAST.fullmatch(text):
        return _year_last(int(m[1]), int(m[3]), int(m[4]), order)
    if m := _YEAR_LAST_SHORT.fullmatch(text):
        if two_digit_years_until is None:
            raise ValueError(TWO_DIGIT_YEAR)
        year = century_year(int(m[4]), two_digit_years_until)
        return _year_last(int(m[1]), int(m[3]), year, order)
    if (m := _DAY_MONTH_NAME_SHORT.fullmatch(text)) and m[2].lower() in _MONTHS:
        if two_digit_years_until is None:  # 03-APR-80, as some databases print dates
            raise ValueError(TWO_DIGIT_YEAR)
        year = century_year(int(m[3]), two_digit_years_until)
        return _birth_date(year, _MONTHS[m[2].lower()], int(m[1]))
    raise ValueError("unrecognised date format")


#: What separates a date's parts, for salvage: any run of ``/ . - ,`` and whitespace.
_SEPARATORS = re.compile(r"[\s,./-]+")
#: What :func:`salvage_birth_date` kept of a refused date, as its field error says it.
KEPT_DATE = "its date is readable"
KEPT_YEAR = "its year is readable"
KEPT_YEAR_MONTH = "its year and month are readable"
KEPT_SWAPPED = "a date with day and month the other way round"


def _clean(part: str, high: int) -> int | None:
    """``part`` as a number in ``1..high``, if it is one or two decimal digits."""
    if not (part.isdecimal() and len(part) <= 2):
        return None
    value = int(part)
    return value if 1 <= value <= high else None


def _placed(parts: tuple[str, str, str], order: DateOrder) -> tuple[str, str] | None:
    """``(month, day)`` texts of a three-part date, as its form and ``order`` place them
    (empty when nothing says which is which), or None when the order contradicts the form
    (a year-last date in a ``YMD`` file)."""
    first, second, third = parts
    if len(first) == 4:  # year first: ISO-like, whatever the order
        return second, third
    if order is DateOrder.YMD:
        return None
    if order is DateOrder.MDY:
        return first, second
    if order is DateOrder.DMY:
        return second, first
    day_first = _clean(first, 31) is not None and _clean(first, 12) is None
    day_second = _clean(second, 31) is not None and _clean(second, 12) is None
    if day_first != day_second:  # one clean part above 12: that one is the day
        return (second, first) if day_first else (first, second)
    return "", ""


def _a_word(part: str) -> bool:
    """A part longer than a garbled number, with a letter in it: a month the parser does not
    know (``Febuary``, ``Mai``) or a word, which says nothing about where the month is."""
    return len(part) > 2 and any(c.isalpha() for c in part)


def _full_or_month(year: int, month: int, day: int | None) -> tuple[BirthDate, str]:
    """The date if ``day`` makes one with ``month``, else the year and month."""
    if day is not None:
        try:
            return BirthDate(year, month, day), KEPT_DATE
        except ValueError:
            pass
    return BirthDate(year, month), KEPT_YEAR_MONTH


def salvage_birth_date(
    text: str,
    date_order: DateOrder | str = DateOrder.UNKNOWN,
    *,
    two_digit_years_until: int | None = None,
) -> tuple[BirthDate, str] | None:
    """What can be kept of a date of birth :func:`parse_birth_date` refuses, and what was kept.

    Only a date in three parts (``NN/NN/YYYY`` or ``YYYY-NN-NN``, parted by any run of ``/ . -
    ,`` and whitespace, a time of day after it ignored) whose year is four digits in range is
    kept at all, and then, in this order:

    - a month by its English name (``31 Feb 1980``): the date, else the year and that month;
    - another word for a part (``3 Febuary 1980``): the year (:data:`KEPT_YEAR`);
    - month and day clean and a date, placed by the form or the order (``25. 12. 1980`` day
      first: a date in a form the parser does not read): the date (:data:`KEPT_DATE`; with no
      order and both parts 12 or less, ambiguous, as the parser reads ``03/04/1980``);
    - ``NN/NN/YYYY`` impossible as its order reads it but a date the other way round
      (``11/28/1975`` in a day-first file: a date written in the other order): read the other
      way round (:data:`KEPT_SWAPPED`). Never for a year-first date, which has one order;
    - a month part of one or two digits in 1..12, where the form or the order (or, with none,
      a clean day above 12) says which part is the month: the year and month
      (:data:`KEPT_YEAR_MONTH`; ``10/Z7/1983`` month first, ``31/04/1969`` day first);
    - otherwise the year alone (:data:`KEPT_YEAR`; ``xx/xx/1973``, ``01/00/1981``).

    A year with a letter in it (``197M``), or two digits only, keeps nothing: None, unless
    ``two_digit_years_until`` reads a two-digit year last (:func:`century_year`); so does a
    year-last date in a file whose order is ``YMD``. Real lists garble single characters of
    dates (optical reading, keying) and write some in the other order; the parts left clean
    still say something, and a partial date agrees only on what it holds. A wrong digit that
    happens to make a date impossible one way and possible the other is read the other way
    round, a wrong full date; that is rarer than a date written in the other order, and still
    agrees on its year. Never raises.
    """
    split = _SEPARATORS.split(_TIME_OF_DAY.sub("", text.strip()))
    if len(split) != 3 or not all(split):
        return None
    parts = (split[0], split[1], split[2])
    year_first = len(parts[0]) == 4
    year_text = parts[0] if year_first else parts[2]
    if not year_text.isdecimal():
        return None
    if len(year_text) == 4:
        year = int(year_text)
    elif (
        len(year_text) == 2
        and not year_first
        and two_digit_years_until is not None
        and not (parts[0].isdecimal() and int(parts[0]) > 31)  # 80/04/03: a year written first
    ):
        year = century_year(int(year_text), two_digit_years_until)
    else:
        return None
    try:
        year = BirthDate(year).year
    except ValueError:
        return None
    others = parts[1:] if year_first else parts[:2]
    named = [_MONTHS.get(part.lower()) for part in others]
    for k, month_by_name in enumerate(named):
        if month_by_name is not None:  # the month, wherever it stands
            return _full_or_month(year, month_by_name, _clean(others[1 - k], 31))
    if any(_a_word(part) for part in others):
        return BirthDate(year), KEPT_YEAR
    placed = _placed(parts, DateOrder(date_order))
    if placed is None:
        return None
    if placed == ("", ""):  # no order, neither part above 12
        first, second = _clean(others[0], 12), _clean(others[1], 12)
        if first is not None and second is not None:  # the parser's day-first reading
            return BirthDate(year, second, first, day_month_ambiguous=first != second), KEPT_DATE
        return BirthDate(year), KEPT_YEAR
    month, day = _clean(placed[0], 12), _clean(placed[1], 31)
    if month is not None:
        return _full_or_month(year, month, day)
    if day is not None and day <= 12 and not year_first:
        swapped_day = _clean(placed[0], 31)
        if swapped_day is not None:
            try:
                return BirthDate(year, day, swapped_day), KEPT_SWAPPED
            except ValueError:
                pass
    return BirthDate(year), KEPT_YEAR


def parse_category(text: str) -> Category:
    """Parse a record category, case-insensitively (``sex offender`` = ``sex_offender``).

    Raises:
        ValueError: "unknown category (expected watchlist, sex_offender, traveller or other)".
    """
    key = re.sub(r"[\s-]+", "_", text.strip().lower())
    try:
        return Category(key)
    except ValueError:
        allowed = ", ".join(c.value for c in Category)
        raise ValueError(f"unknown category (expected one of {allowed})") from None


def parse_sex(text: str) -> Sex:
    """Parse F/M/X or female/male/unknown/unspecified, case-insensitively.

    Raises:
        ValueError: "unknown sex marker (expected F, M or X)".
    """
    try:
        return _SEX_WORDS[text.strip().upper()]
    except KeyError:
        raise ValueError("unknown sex marker (expected F, M or X)") from None


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
        alias = alias.strip()
        if not alias:
            continue
        if "," not in alias:
            names.append(PersonName(full=alias))
            continue
        family, _, given = alias.partition(",")
        if "," in given:
            raise ValueError(f"alias {number} has more than one comma")
        family, given = family.strip(), given.strip()
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
        if not part.strip():
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
