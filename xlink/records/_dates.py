"""Dates of birth as lists write them: :func:`parse_birth_date` reads the forms a date takes,
:func:`salvage_birth_date` keeps what is readable of one it refuses.

Each raises or says a value-free reason: a reason never quotes the date, which may identify a
person. Re-exported by :mod:`xlink.records._fields` and :mod:`xlink.records.validation`.
"""

from __future__ import annotations

import contextlib
import re
import unicodedata
from enum import StrEnum

from xlink.records.model import BirthDate
from xlink.records.normalise import _HYPHENS

#: Every dash a text may put between a date's parts (``1983‐05‐27``, as a word processor or a
#: typeset list writes it), read as ``-``.
_DASHES = str.maketrans(dict.fromkeys(_HYPHENS, "-"))

__all__ = [
    "EARLIEST_CENTURY_END",
    "KEPT_DATE",
    "KEPT_MENDED",
    "KEPT_SWAPPED",
    "KEPT_YEAR",
    "KEPT_YEAR_MONTH",
    "LATEST_CENTURY_END",
    "SPREADSHEET_SERIAL",
    "TWO_DIGIT_YEAR",
    "DateOrder",
    "century_year",
    "check_century_end",
    "parse_birth_date",
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


#: A time of day after a date, as database and spreadsheet exports write one (ignored):
#: ``T12:30``, `` 00:00:00.000Z``, `` 1:05 +0100``, `` 00:00:00+00`` (PostgreSQL), `` 12:00:00 AM``,
#: ``, 0:00``.
_TIME_OF_DAY = re.compile(
    r"(?:[T\s]|,\s*)\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:\s*[AaPp]\.?[Mm]\.?)?"
    r"(?:\s*(?:Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?))?$"
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
# (as some databases print dates), April 3, 1980; or by its French name, with or without its
# accents, or the abbreviations French style guides give (``juil.`` or ``juill.``, ``févr.``,
# ``déc.``, and ``AOÛ`` as three letters): 4 juillet 1983, as a bilingual Canadian list writes
# it; accents decomposed (NFD) are read composed. No other three letters of a French
# name are taken (``jui`` is June or July).
_MONTH_NAMES = (
    "january february march april may june july august september october november december"
)
_FRENCH_MONTH_NAMES = (
    "janvier février mars avril mai juin juillet août septembre octobre novembre décembre"
)
_FRENCH_ABBREVIATIONS = {
    "janv": 1, "févr": 2, "fevr": 2, "fév": 2, "fev": 2, "avr": 4, "juil": 7, "juill": 7,
    "aoû": 8, "aou": 8, "déc": 12,
}  # fmt: skip
_MONTHS = (
    {
        name: number
        for number, full in enumerate(_MONTH_NAMES.split(), start=1)
        for name in (full, full[:3])
    }
    | {"sept": 9}
    | {
        name: number
        for number, full in enumerate(_FRENCH_MONTH_NAMES.split(), start=1)
        for name in (full, full.translate(str.maketrans("éû", "eu")))
    }
    | _FRENCH_ABBREVIATIONS
)
# The day may have an English ordinal ending (27th May 1983, May 27th, 1983) or the French
# ``er`` of the first (1er juillet 1983), and a day, month and year may be written without
# separators (27MAY1983, 27MAY83: SAS's DATE9 and DATE7, Oracle's DDMONYYYY).
_ORDINAL = r"(?:[Ss][Tt]|[Nn][Dd]|[Rr][Dd]|[Tt][Hh]|[Ee][Rr])?"
_MONTH_WORD = r"[^\W\d_]{3,9}"  # letters, accented ones too
_DAY_MONTH_NAME_SHORT = re.compile(
    rf"(\d{{1,2}}){_ORDINAL}[-/. ]?({_MONTH_WORD})\.?[-/. ,]?\s*(\d{{2}})"
)
_DAY_MONTH_NAME = re.compile(rf"(\d{{1,2}}){_ORDINAL}[-/. ]?({_MONTH_WORD})\.?[-/. ,]?\s*(\d{{4}})")
_MONTH_NAME_DAY = re.compile(rf"({_MONTH_WORD})\.?\s+(\d{{1,2}}){_ORDINAL},?\s+(\d{{4}})")
#: A day of the week before a date whose month is a word, in English or French, as a
#: spreadsheet's long date writes it (``Friday, May 27, 1983``, ``vendredi 27 mai 1983``):
#: ignored, as the date says the day. Before any other form (``Thu 03/04/1980``, ``Sat 1980``)
#: the text is no date.
_WEEKDAY = re.compile(
    r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday"
    r"|mon|tues|tue|wed|thurs|thur|thu|fri|sat|sun"
    r"|lundi|mardi|mercredi|jeudi|vendredi|samedi|dimanche)\.?,?\s+",
    re.IGNORECASE,
)
#: An ISO date with a time zone and no time, as XML Schema's ``xs:date`` (NIEM's ``nc:Date``)
#: allows: ``1983-05-27Z``, ``1983-05-27+02:00``. The zone is ignored.
_ISO_ZONED = re.compile(r"(\d{4}-\d{2}-\d{2})(?:Z|[+-]\d{2}:\d{2})")


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


#: A spreadsheet's date serial number (days since 1899-12-30, or since 1904-01-01 in a workbook
#: of the 1904 system: nothing in the number says which): 10000 to 99999 is 1927 to 2173.
_SERIAL = re.compile(r"[1-9]\d{4}(?:\.0+)?")
#: The reason for a date written as a spreadsheet's serial number: never read as a date.
SPREADSHEET_SERIAL = (
    "a spreadsheet's date serial number, not a date: format the column as a date "
    "(YYYY-MM-DD) before exporting"
)
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
    letters or its French name or abbreviation, whatever the order (``3 Apr 1980``,
    ``03-APR-1980``, ``April 3, 1980``, ``4 juillet 1983``, and so ``3rd Apr 1980``,
    ``03APR1980``, ``Thursday, April 3, 1980``). An ISO date with an
    ``xs:date`` time zone (``1980-04-03Z``, ``1980-04-03+02:00``) is read without it. A time of
    day after any of them is ignored (``1980-04-03T00:00:00Z``, ``4/3/1980 12:00:00 AM``, as
    spreadsheets and databases export a date). With ``UNKNOWN`` order and both parts <= 12 and
    different, the day-first reading is returned with ``day_month_ambiguous=True``. With
    ``two_digit_years_until``, ``NN/NN/YY`` is read the same way, its year by
    :func:`century_year`; without it, a two-digit year is not a date. Eight digits that are no
    ``YYYYMMDD`` date (``27051983``, ``19021985``) are ``NN/NN/YYYY`` without its separators,
    read by ``date_order`` (any order but YMD). A spreadsheet's date serial number (``30462``) is
    refused with :data:`SPREADSHEET_SERIAL`: nothing in it says from which day it counts.

    Raises:
        ValueError: "unrecognised date format", :data:`TWO_DIGIT_YEAR`, "impossible date"
            (31 April, month 13),
            "year out of range" (outside 1850..2200), or "day or month first, but the date order
            is YMD".
    """
    order = DateOrder(date_order)
    text = unicodedata.normalize("NFC", text.strip()).translate(_DASHES)
    if ":" in text:
        text = _TIME_OF_DAY.sub("", text).rstrip()
    if m := _WEEKDAY.match(text):  # only before a month written as a word
        return _named_month(text[m.end() :])
    if m := _ISO_ZONED.fullmatch(text):
        text = m[1]
    if m := _ISO_FULL.fullmatch(text):
        return _birth_date(int(m[1]), int(m[2]), int(m[3]))
    if m := _COMPACT.fullmatch(text):
        try:
            return _birth_date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError:
            if order is DateOrder.YMD:
                raise
            # no date year first: DDMMYYYY or MMDDYYYY, as some exports write NN/NN/YYYY
            # unparted (19021985 is no 1902 date); refused as a YYYYMMDD date when it starts
            # with a year and is no date the other way either
            try:
                return _year_last(int(text[:2]), int(text[2:4]), int(text[4:]), order)
            except ValueError:
                if _a_year(int(m[1])):
                    _birth_date(int(m[1]), int(m[2]), int(m[3]))  # its own reason
                raise
    if m := _YEAR_FIRST.fullmatch(text):
        return _birth_date(int(m[1]), int(m[3]), int(m[4]))
    if m := _ISO_MONTH.fullmatch(text):
        return _birth_date(int(m[1]), int(m[2]), None)
    if _YEAR.fullmatch(text):
        return _birth_date(int(text), None, None)
    if m := _MONTH_YEAR.fullmatch(text):
        return _birth_date(int(m[2]), int(m[1]), None)
    with contextlib.suppress(_NotNamed):
        return _named_month(text)
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
    if _SERIAL.fullmatch(text):
        raise ValueError(SPREADSHEET_SERIAL)
    raise ValueError("unrecognised date format")


class _NotNamed(ValueError):
    """Not a date with its month written as a word."""

    def __init__(self) -> None:
        super().__init__("unrecognised date format")


def _named_month(text: str) -> BirthDate:
    """A full date whose month is written as a word, day first or month first (``27 May 1983``,
    ``May 27th, 1983``); :class:`_NotNamed` for any other text."""
    if (m := _DAY_MONTH_NAME.fullmatch(text)) and m[2].lower() in _MONTHS:
        return _birth_date(int(m[3]), _MONTHS[m[2].lower()], int(m[1]))
    if (m := _MONTH_NAME_DAY.fullmatch(text)) and m[1].lower() in _MONTHS:
        return _birth_date(int(m[3]), _MONTHS[m[1].lower()], int(m[2]))
    raise _NotNamed


#: What separates a date's parts, for salvage: any run of ``/ . - ,`` and whitespace.
_PARTED = re.compile(r"([\s,./-]+)")
#: What :func:`salvage_birth_date` kept of a refused date, as its field error says it.
KEPT_DATE = "its date is readable"
KEPT_YEAR = "its year is readable"
KEPT_YEAR_MONTH = "its year and month are readable"
KEPT_SWAPPED = "a date with day and month the other way round"
KEPT_MENDED = (
    "its date is readable: a letter read as the digit it looks like, or a doubled digit once"
)

#: Letters that optical reading and keying put for a digit, as the digit each is read
#: (``10/Z7/1983``, ``l972``, ``0b/11/2002``).
_LOOKALIKES = str.maketrans("OoDQIil|ZzEASsGbTBgq", "00001111223455667899")


def _a_year(year: int) -> bool:
    try:
        BirthDate(year)
    except ValueError:
        return False
    return True


def _mended(part: str, width: int) -> str:
    """``part`` of a date (``width`` digits: 2 for a day or month, 4 for a year) with one
    letter read as the digit it looks like, or one digit of a doubled pair dropped when the
    part is a digit too long (``009``, ``19822``) and only one reading is left; else ``part``."""
    letters = [c for c in part if not c.isdecimal()]
    if 2 <= len(part) <= width and len(letters) == 1:
        read = part.translate(_LOOKALIKES)
        return read if read.isdecimal() and read.isascii() else part
    if letters or len(part) != width + 1 or not part.isascii():
        return part
    once = {part[:i] + part[i + 1 :] for i in range(1, len(part)) if part[i] == part[i - 1]}
    if width == 4:
        once = {y for y in once if _a_year(int(y))}
    return once.pop() if len(once) == 1 else part


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
    know (``Febuary``, ``Maio``) or a word, which says nothing about where the month is."""
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

    - a date once each part is mended (one letter read as the digit it looks like, ``10/Z7/1983``,
      ``l972``; a part one digit too long read with a doubled digit once, ``01/009/1979``,
      ``19822``, when one reading is left): the date (:data:`KEPT_MENDED`); when the mended
      parts make no date, the rules below read them, but never the other way round (one guess
      a date);
    - a month by its English or French name (``31 Feb 1980``): the date, else the year and
      that month;
    - another word for a part (``3 Febuary 1980``): the year (:data:`KEPT_YEAR`);
    - month and day clean and a date, placed by the form or the order (``25. 12. 1980`` day
      first: a date in a form the parser does not read): the date (:data:`KEPT_DATE`; with no
      order and both parts 12 or less, ambiguous, as the parser reads ``03/04/1980``);
    - ``NN/NN/YYYY`` impossible as its order reads it but a date the other way round
      (``11/28/1975`` in a day-first file: a date written in the other order): read the other
      way round (:data:`KEPT_SWAPPED`). Never for a year-first date, which has one order;
    - a month part of one or two digits in 1..12, where the form or the order (or, with none,
      a clean day above 12) says which part is the month: the year and month
      (:data:`KEPT_YEAR_MONTH`; ``10/2J/1983`` month first, ``31/04/1969`` day first);
    - otherwise the year alone (:data:`KEPT_YEAR`; ``xx/xx/1973``, ``01/00/1981``).

    A year with a letter in it that looks like no digit (``197M``), or two digits only, keeps
    nothing: None, unless ``two_digit_years_until`` reads a two-digit year last
    (:func:`century_year`); so does a year-last date in a file whose order is ``YMD``. Real
    lists garble single characters of dates (optical reading, keying) and write some in the
    other order; the parts left clean still say something, and a partial date agrees only on
    what it holds. A wrong digit that happens to make a date impossible one way and possible
    the other is read the other way round, a wrong full date; that is rarer than a date written
    in the other order, and still agrees on its year. Never raises.
    """
    text = unicodedata.normalize("NFC", text.strip()).translate(_DASHES)
    split = _PARTED.split(_TIME_OF_DAY.sub("", text))  # part, sep, ...
    if len(split) != 5 or not all(split):
        return None
    parts, swap = (split[0], split[2], split[4]), True
    year_first = len(parts[0]) in (4, 5) and not parts[0].isalpha()
    widths = (4, 2, 2) if year_first else (2, 2, 4)
    mended = (
        _mended(parts[0], widths[0]),
        _mended(parts[1], widths[1]),
        _mended(parts[2], widths[2]),
    )
    if mended != parts:
        try:
            date = parse_birth_date(
                f"{mended[0]}{split[1]}{mended[1]}{split[3]}{mended[2]}",
                date_order,
                two_digit_years_until=two_digit_years_until,
            )
        except ValueError:
            parts, swap = mended, False  # one guess a date: mended, or read the other way round
        else:
            return date, KEPT_MENDED
    year_first = len(parts[0]) == 4 and not parts[0].isalpha()  # June 31 1980: a month
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
    if swap and day is not None and day <= 12 and not year_first:
        swapped_day = _clean(placed[0], 31)
        if swapped_day is not None:
            try:
                return BirthDate(year, day, swapped_day), KEPT_SWAPPED
            except ValueError:
                pass
    return BirthDate(year), KEPT_YEAR
