"""validate_row and the field parsers: every bad field is reported, never quoting its value."""

from __future__ import annotations

import string
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xlink.errors import FieldError
from xlink.records import (
    AdmiraltyGrading,
    BirthDate,
    Category,
    HandlingCode,
    PersonName,
    PersonRecord,
    Sex,
    UkGrading,
)
from xlink.records._dates import (
    KEPT_DATE,
    KEPT_MENDED,
    KEPT_SWAPPED,
    KEPT_YEAR,
    KEPT_YEAR_MONTH,
)
from xlink.records._missing import NAME_MARKERS
from xlink.records._parsers import PLACEHOLDER_BIRTH_DATES
from xlink.records.validation import (
    CANONICAL_FIELDS,
    EARLIEST_CENTURY_END,
    LATEST_CENTURY_END,
    NAME_PSEUDO_FIELD,
    TWO_DIGIT_YEAR,
    BadFieldPolicy,
    DateOrder,
    century_year,
    check_row,
    parse_aliases,
    parse_birth_date,
    parse_category,
    parse_grading,
    parse_sex,
    salvage_birth_date,
    validate_row,
)

GOOD = {
    "record_id": "CA-1",
    "category": "watchlist",
    "given_name": "Jürgen",
    "family_name": "Müller",
    "birth_date": "1980-04-03",
}


def errors_of(row: dict[str, str], **kwargs: object) -> dict[str, str]:
    result = validate_row(row, 7, **kwargs)  # type: ignore[arg-type]
    assert isinstance(result, tuple), "expected field errors"
    assert all(isinstance(e, FieldError) and e.line == 7 for e in result)
    return {e.field: e.reason for e in result}


def test_full_row_parses_every_field() -> None:
    row = {
        **GOOD,
        "middle_name": "K",
        "aliases": "Mueller, Juergen; J. Muller",
        "sex": "male",
        "nationalities": "deu; can;DEU",
        "birth_place": "Köln",
        "doc_type": "p",
        "doc_number": "C01X00T47",
        "doc_country": "D",
        "doc_expiry": "2031-05-01",
        "address": "12 Rue X; Apt 3",
        "locality": "Montréal",
        "region": "QC",
        "postcode": "H2X 1Y4",
        "country": "can",
        "source_id": "SRC-1",
        "grading": "2b",
        "handling_code": "c",
        "handling_conditions": "no onward sharing",
        "Offence": " Fraud ",
        "Remarks": "",
    }
    record = validate_row(row, 2)
    assert isinstance(record, PersonRecord)
    assert record.name == PersonName(given="Jürgen", middle="K", family="Müller")
    assert record.aliases == (
        PersonName(given="Juergen", family="Mueller"),
        PersonName(full="J. Muller"),
    )
    assert record.birth_date == BirthDate(1980, 4, 3)
    assert record.sex is Sex.MALE
    assert record.nationalities == ("DEU", "CAN")
    assert record.documents[0].doc_type == "P"
    assert record.documents[0].issuing_country == "D"
    assert record.documents[0].expiry == "2031-05-01"
    assert record.addresses[0].lines == ("12 Rue X", "Apt 3")
    assert record.addresses[0].country == "CAN"
    assert record.source is not None
    assert record.source.grading == UkGrading(2, "B")
    assert record.source.handling_code is HandlingCode.CONDITIONS
    assert dict(record.payload) == {"Offence": "Fraud"}  # stripped; empty = missing


@pytest.mark.parametrize(
    ("text", "order", "expected"),
    [
        ("1980-04-03", "unknown", BirthDate(1980, 4, 3)),
        ("1980-04", "unknown", BirthDate(1980, 4)),
        ("1980", "unknown", BirthDate(1980)),
        ("19800403", "unknown", BirthDate(1980, 4, 3)),
        ("1980/04/03", "DMY", BirthDate(1980, 4, 3)),
        ("04/1980", "MDY", BirthDate(1980, 4)),
        ("03/04/1980", "DMY", BirthDate(1980, 4, 3)),
        ("03.04.1980", "DMY", BirthDate(1980, 4, 3)),
        ("03/04/1980", "MDY", BirthDate(1980, 3, 4)),
        ("25/04/1980", "unknown", BirthDate(1980, 4, 25)),  # deduced day-first
        ("04/25/1980", "unknown", BirthDate(1980, 4, 25)),  # deduced month-first
        ("03/04/1980", "unknown", BirthDate(1980, 4, 3, day_month_ambiguous=True)),
        ("05/05/1980", "unknown", BirthDate(1980, 5, 5)),  # same either way: not ambiguous
        ("03-04-1980", "DMY", BirthDate(1980, 4, 3)),
        ("03 04 1980", "MDY", BirthDate(1980, 3, 4)),
        ("1980-4-3", "unknown", BirthDate(1980, 4, 3)),
        ("04-1980", "unknown", BirthDate(1980, 4)),
        ("3 April 1980", "MDY", BirthDate(1980, 4, 3)),  # a month by name: no order needed
        ("03-APR-1980", "unknown", BirthDate(1980, 4, 3)),
        ("April 3, 1980", "DMY", BirthDate(1980, 4, 3)),
        ("Sept. 30 1980", "unknown", BirthDate(1980, 9, 30)),
        ("03\u00a004\u00a01980", "DMY", BirthDate(1980, 4, 3)),  # no-break spaces
        ("1980-04-03 00:00:00", "unknown", BirthDate(1980, 4, 3)),  # a database's timestamp
        ("1980-04-03T12:30:00Z", "DMY", BirthDate(1980, 4, 3)),
        # spreadsheet and .NET exports of a date column: the time was refused with the date
        ("4/3/1980 12:00:00 AM", "MDY", BirthDate(1980, 4, 3)),
        ("03/04/1980 12:00 AM", "DMY", BirthDate(1980, 4, 3)),
        ("1980-04-03 12:00:00 PM", "unknown", BirthDate(1980, 4, 3)),
        ("4/3/1980 0:00", "MDY", BirthDate(1980, 4, 3)),
        ("3 April 1980, 10:00 p.m.", "unknown", BirthDate(1980, 4, 3)),
        ("1980-04-03T10:11:12.123+02:00", "unknown", BirthDate(1980, 4, 3)),
        # PostgreSQL's text of a timestamptz: an offset of hours alone (refused whole)
        ("1980-04-03 00:00:00+00", "unknown", BirthDate(1980, 4, 3)),
        ("1980-04-03 00:00:00-05", "unknown", BirthDate(1980, 4, 3)),
    ],
)
def test_birth_date_forms(text: str, order: str, expected: BirthDate) -> None:
    assert parse_birth_date(text, order) == expected


@pytest.mark.parametrize(
    ("text", "order", "expected"),
    [
        ("27051983", "DMY", BirthDate(1983, 5, 27)),
        ("05271983", "MDY", BirthDate(1983, 5, 27)),
        ("27051983", "unknown", BirthDate(1983, 5, 27)),  # deduced day-first
        ("01021990", "unknown", BirthDate(1990, 2, 1, day_month_ambiguous=True)),
        ("19830527", "DMY", BirthDate(1983, 5, 27)),  # a year first: YYYYMMDD, whatever the order
        ("19021985", "DMY", BirthDate(1985, 2, 19)),  # 1902 is a year, but 1902-19-85 no date
        ("20121990", "DMY", BirthDate(1990, 12, 20)),
        ("12201990", "MDY", BirthDate(1990, 12, 20)),
    ],
)
def test_eight_digits_without_a_year_first_are_a_date_unparted(
    text: str, order: str, expected: BirthDate
) -> None:
    """``27051983`` was read only as YYYYMMDD: "year out of range" under every order."""
    assert parse_birth_date(text, order) == expected


@pytest.mark.parametrize(("text", "order"), [("13131983", "DMY"), ("27051983", "YMD")])
def test_eight_digits_that_are_no_date_either_way_are_refused(text: str, order: str) -> None:
    with pytest.raises(ValueError, match=r"impossible date|year out of range"):
        parse_birth_date(text, order)


@pytest.mark.parametrize(
    "text", ["1983\u201005\u201027", "27\u201305\u20131983", "27\u221205\u22121983"]
)
def test_a_date_parted_by_another_dash_is_read(text: str) -> None:
    """A word processor's or typeset list's dash (U+2010, an en dash, a minus sign) between the
    parts was an unrecognised date format."""
    assert parse_birth_date(text, "DMY") == BirthDate(1983, 5, 27)


@pytest.mark.parametrize("text", ["30462", "30462.0", "45000"])
def test_a_spreadsheets_date_serial_number_is_named_and_not_read(text: str) -> None:
    """A date column exported as numbers: said so (the number alone does not say whether it
    counts from 1899-12-30 or, in a workbook of the 1904 system, from 1904-01-01)."""
    with pytest.raises(ValueError, match="spreadsheet's date serial number"):
        parse_birth_date(text, "DMY")


@pytest.mark.parametrize(
    ("text", "order", "expected"),
    [
        # SAS's DATE9. and DATE7., Oracle's DDMONYYYY: the parts run together
        ("03APR1980", "unknown", BirthDate(1980, 4, 3)),
        ("3Apr1980", "MDY", BirthDate(1980, 4, 3)),
        ("27may1983", "DMY", BirthDate(1983, 5, 27)),
        # an ordinal ending on the day
        ("3rd April 1980", "MDY", BirthDate(1980, 4, 3)),
        ("27th May 1983", "unknown", BirthDate(1983, 5, 27)),
        ("May 27th, 1983", "DMY", BirthDate(1983, 5, 27)),
        ("1st Jan 1990", "unknown", BirthDate(1990, 1, 1)),
        ("22ND FEB 1975", "unknown", BirthDate(1975, 2, 22)),
        # a spreadsheet's long date: the day of the week is ignored
        ("Friday, May 27, 1983", "unknown", BirthDate(1983, 5, 27)),
        ("Fri 27 May 1983", "unknown", BirthDate(1983, 5, 27)),
        ("Thursday, 3 April 1980", "DMY", BirthDate(1980, 4, 3)),
        # French, as a bilingual list writes it: names with or without accents, the style
        # guides' abbreviations, 1er, a day of the week
        ("4 juillet 1983", "DMY", BirthDate(1983, 7, 4)),
        ("Juillet 4 1983", "unknown", BirthDate(1983, 7, 4)),
        ("1er août 1990", "MDY", BirthDate(1990, 8, 1)),
        ("1ER AOUT 1990", "unknown", BirthDate(1990, 8, 1)),
        ("12 févr. 1970", "unknown", BirthDate(1970, 2, 12)),
        ("3 DÉCEMBRE 2001", "unknown", BirthDate(2001, 12, 3)),
        ("27 Mai 1983", "unknown", BirthDate(1983, 5, 27)),
        ("vendredi 27 mai 1983", "unknown", BirthDate(1983, 5, 27)),
        ("04-AVR-1980", "unknown", BirthDate(1980, 4, 4)),
        ("4 juill. 1983", "unknown", BirthDate(1983, 7, 4)),
        ("04-AOÛ-1983", "unknown", BirthDate(1983, 8, 4)),
        ("12 fe\u0301vrier 1970", "unknown", BirthDate(1970, 2, 12)),  # accents decomposed
        # xs:date (NIEM nc:Date) with a time zone
        ("1983-05-27Z", "unknown", BirthDate(1983, 5, 27)),
        ("1983-05-27+02:00", "DMY", BirthDate(1983, 5, 27)),
        ("1983-05-27-05:00", "MDY", BirthDate(1983, 5, 27)),
    ],
)
def test_birth_date_forms_real_exports_write(text: str, order: str, expected: BirthDate) -> None:
    """Forms with an unambiguous month (its name) or an ISO date that were refused: a field
    error, the date lost, or kept to its year, where a partner writing it another way kept it
    whole."""
    assert parse_birth_date(text, order) == expected


def test_a_day_of_the_week_comes_only_before_a_month_written_as_a_word() -> None:
    """The day of the week is ignored before a spreadsheet's long date, and before nothing
    else: it never picks an order, and a year or a numeric date behind one is no date."""
    assert parse_birth_date("Thursday, April 3, 1980") == BirthDate(1980, 4, 3)
    assert parse_birth_date("03APR80", two_digit_years_until=2026) == BirthDate(1980, 4, 3)
    for refused in (
        "03APR80",
        "Friday",
        "Friday, 1983-13-05",
        "Thu 03/04/1980",
        "Tue 1980-04-03",
        "Sat 1980",
        "27 Mbi 1983",
        "27 Jui 1983",  # June or July in French: no month
        "1983-05-27Q",
    ):
        with pytest.raises(ValueError):
            parse_birth_date(refused)


DATE, YEAR, YEAR_MONTH, SWAPPED = KEPT_DATE, KEPT_YEAR, KEPT_YEAR_MONTH, KEPT_SWAPPED
MENDED = KEPT_MENDED


@pytest.mark.parametrize(
    ("text", "order", "reason", "kept"),
    [
        ("31/04/1990", "DMY", "impossible date", (BirthDate(1990, 4), YEAR_MONTH)),
        ("31/04/1990", "unknown", "impossible date", (BirthDate(1990, 4), YEAR_MONTH)),
        ("1990-02-30", "unknown", "impossible date", (BirthDate(1990, 2), YEAR_MONTH)),
        ("29/02/1989", "DMY", "impossible date", (BirthDate(1989, 2), YEAR_MONTH)),
        ("13/13/1990", "unknown", "impossible date", (BirthDate(1990), YEAR)),
        ("04/25/1980", "DMY", "impossible date", (BirthDate(1980, 4, 25), SWAPPED)),
        ("31 Feb 1980", "MDY", "impossible date", (BirthDate(1980, 2), YEAR_MONTH)),
        ("Feb. 30, 1980", "DMY", "impossible date", (BirthDate(1980, 2), YEAR_MONTH)),
        ("1980-APR-3Z", "unknown", "unrecognised date format", (BirthDate(1980, 4), YEAR_MONTH)),
        ("31 Feb 1980", "YMD", "impossible date", (BirthDate(1980, 2), YEAR_MONTH)),
        # a date in a form the parser does not read, its parts clean: the date
        ("25. 12. 1980", "DMY", "unrecognised date format", (BirthDate(1980, 12, 25), DATE)),
        ("03, 04, 1980", "MDY", "unrecognised date format", (BirthDate(1980, 3, 4), DATE)),
        (
            "03. 04. 1980",
            "unknown",
            "unrecognised date format",
            (BirthDate(1980, 4, 3, day_month_ambiguous=True), DATE),
        ),
        ("12/25-1980", "DMY", "unrecognised date format", (BirthDate(1980, 12, 25), SWAPPED)),
        ("1980-02-30 00:00:00", "unknown", "impossible date", (BirthDate(1980, 2), YEAR_MONTH)),
        ("1700", "unknown", "year out of range", None),
        ("01/15/1700", "MDY", "year out of range", None),
        ("03/04/80", "DMY", TWO_DIGIT_YEAR, None),  # unless the mapping reads it (below)
        ("3 Aprilis 1980", "DMY", "unrecognised date format", (BirthDate(1980), YEAR)),
        ("10/J7/1983", "MDY", "unrecognised date format", (BirthDate(1983, 10), YEAR_MONTH)),
        ("10/J7/1983", "DMY", "unrecognised date format", (BirthDate(1983), YEAR)),
        ("1J/31/1983", "unknown", "unrecognised date format", (BirthDate(1983), YEAR)),
        ("31/1J/1983", "unknown", "unrecognised date format", (BirthDate(1983), YEAR)),
        ("12/3K/1983", "unknown", "unrecognised date format", (BirthDate(1983), YEAR)),
        ("1983-K4-12", "DMY", "unrecognised date format", (BirthDate(1983), YEAR)),
        # a year-first date has one order: never read the other way round
        ("1980-13-05", "unknown", "impossible date", (BirthDate(1980), YEAR)),
        ("1980-18-05", "YMD", "impossible date", (BirthDate(1980), YEAR)),
        # a word for a part says nothing about where the month is
        ("3 Febuary 1980", "MDY", "unrecognised date format", (BirthDate(1980), YEAR)),
        ("Okt 3 1980", "DMY", "unrecognised date format", (BirthDate(1980), YEAR)),
        ("1983-04-1J", "MDY", "unrecognised date format", (BirthDate(1983, 4), YEAR_MONTH)),
        ("xx/xx/1973", "MDY", "unrecognised date format", (BirthDate(1973), YEAR)),
        ("30/10/197M", "DMY", "unrecognised date format", None),  # no year: nothing
        ("03/04/1980", "YMD", "day or month first, but the date order is YMD", None),
    ],
)
def test_bad_dates_are_field_errors_that_keep_their_readable_parts(
    text: str, order: str, reason: str, kept: tuple[BirthDate, str] | None
) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_birth_date(text, order)
    assert salvage_birth_date(text, order) == kept
    said = reason if kept is None else f"{reason} ({kept[1]})"
    assert errors_of({**GOOD, "birth_date": text}, date_order=order) == {"birth_date": said}
    checked = check_row({**GOOD, "birth_date": text}, 7, date_order=order)
    assert checked.record is not None
    assert checked.record.birth_date == (None if kept is None else kept[0])
    assert text not in said


@pytest.mark.parametrize(
    ("text", "order", "kept"),
    [
        # a letter read as the digit it looks like (optical reading, handwriting)
        ("10/Z7/1983", "MDY", (BirthDate(1983, 10, 27), MENDED)),
        ("0b/11/2002", "MDY", (BirthDate(2002, 6, 11), MENDED)),
        ("12/06/l972", "DMY", (BirthDate(1972, 6, 12), MENDED)),
        ("12/3I/1983", "unknown", (BirthDate(1983, 12, 31), MENDED)),
        ("1O/0I/198S", "MDY", (BirthDate(1985, 10, 1), MENDED)),  # one letter a part
        ("2001-O3-04", "unknown", (BirthDate(2001, 3, 4), MENDED)),
        # a digit typed twice, in a part one digit too long, read once
        ("01/009/1979", "DMY", (BirthDate(1979, 9, 1), MENDED)),
        ("21/011/1987", "DMY", (BirthDate(1987, 1, 21), MENDED)),
        ("08/16/19822", "MDY", (BirthDate(1982, 8, 16), MENDED)),
        ("11/13/11971", "MDY", (BirthDate(1971, 11, 13), MENDED)),
        ("11/13/11992", "MDY", (BirthDate(1992, 11, 13), MENDED)),  # 1192: no year of birth
        # mended parts that make no date keep what they can, never read the other way round
        ("10/Z7/1983", "DMY", (BirthDate(1983), YEAR)),
        ("31/O2/1980", "DMY", (BirthDate(1980, 2), YEAR_MONTH)),
        # what is not one letter looking like a digit, or one doubled digit, is not mended
        ("10/27/198M", "MDY", None),
        ("10/27/1Z8O", "MDY", None),  # two letters in a part
        ("10/123/1983", "MDY", (BirthDate(1983, 10), YEAR_MONTH)),  # no doubled digit
        ("11/13/19911", "MDY", None),  # 1991 or 1911: two readings
        # a month by its name stays one: the mended text keeps the date's separators
        ("May 1S 1980", "unknown", (BirthDate(1980, 5, 15), MENDED)),
        ("June 31 1980", "MDY", (BirthDate(1980, 6), YEAR_MONTH)),  # not a year-first date
    ],
)
def test_a_garbled_date_is_mended_when_one_reading_is_left(
    text: str, order: str, kept: tuple[BirthDate, str] | None
) -> None:
    with pytest.raises(ValueError, match=r"unrecognised date format|impossible date"):
        parse_birth_date(text, order)
    assert salvage_birth_date(text, order) == kept
    checked = check_row({**GOOD, "birth_date": text}, 7, date_order=order)
    assert checked.record is not None
    assert checked.record.birth_date == (None if kept is None else kept[0])


#: The letters a mended date reads as digits (optical reading, handwriting).
LOOKALIKES = str.maketrans("OoDQIil|ZzEASsGbTBgq", "00001111223455667899")


@given(
    st.text(alphabet="0123456789/.- OIlZxAprMay:Tjuivéû\u0301", max_size=16),
    st.sampled_from(DateOrder),
)
def test_salvage_keeps_only_what_its_parts_say(text: str, order: DateOrder) -> None:
    """Whatever the text, salvage never raises, keeps a year only from four clean digits (or
    mended ones, when it says so), says what it kept, and where the parser reads the text too,
    salvage's full date is the parser's."""
    kept = salvage_birth_date(text, order)
    if kept is None:
        return
    date, what = kept
    year = f"{date.year:04d}"
    read = text.translate(LOOKALIKES)  # or mended: a lookalike letter, a doubled digit once
    once = (read[:i] + read[i + 1 :] for i in range(1, len(read)) if read[i] == read[i - 1])
    assert year in text or year in read or any(year in r for r in once)
    assert (date.day is not None) == (what in (KEPT_DATE, KEPT_SWAPPED, KEPT_MENDED))
    assert (date.month is not None) == (what != KEPT_YEAR)
    try:
        parsed = parse_birth_date(text, order)
    except ValueError:
        return
    assert what != KEPT_SWAPPED  # only an impossible reading is turned round
    if what == KEPT_DATE:
        assert date == parsed


def test_bad_date_order_is_a_caller_error() -> None:
    with pytest.raises(ValueError):
        validate_row(GOOD, 2, date_order="DDMM")


def test_every_error_in_a_row_is_collected_in_field_order() -> None:
    row = {
        "record_id": " ",
        "category": "terrorist",
        "birth_date": "31/04/1990",
        "sex": "Q",
        "nationalities": "CAN;CA",
        "doc_country": "CANADA",
        "grading": "9Z",
        "handling_code": "C",
    }
    result = validate_row(row, 5, date_order="DMY")
    assert isinstance(result, tuple)
    assert [e.field for e in result] == [
        "record_id",
        "category",
        NAME_PSEUDO_FIELD,
        "birth_date",
        "sex",
        "nationalities",
        "doc_number",
        "doc_country",
        "grading",
        "handling_conditions",
    ]
    reasons = {e.field: e.reason for e in result}
    assert reasons["record_id"] == "required"
    assert reasons["category"].startswith("unknown category")
    assert reasons["nationalities"] == "nationality 2 is not an ISO 3166-1 alpha-3 code"
    assert reasons["doc_number"] == "document number missing"
    assert reasons["handling_conditions"] == "required when the handling code is C"


def test_category_is_required_unless_a_default_is_given() -> None:
    row = {k: v for k, v in GOOD.items() if k != "category"}
    assert errors_of(row) == {"category": "required"}
    record = validate_row(row, 2, default_category=Category.TRAVELLER)
    assert isinstance(record, PersonRecord) and record.category is Category.TRAVELLER
    explicit = validate_row({**GOOD, "category": "Sex Offender"}, 2, default_category=None)
    assert isinstance(explicit, PersonRecord) and explicit.category is Category.SEX_OFFENDER


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1A", UkGrading(1, "A")), ("3e", UkGrading(3, "E")), ("B2", AdmiraltyGrading("B", 2))],
)
def test_grading_shape_decides_the_scheme(text: str, expected: object) -> None:
    assert parse_grading(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("4A", "3x5x2 grading must be 1-3 then A-E"),
        ("1F", "3x5x2 grading must be 1-3 then A-E"),
        ("G1", "Admiralty grading must be A-F then 1-6"),
        ("A7", "Admiralty grading must be A-F then 1-6"),
        ("AA", "unrecognised grading"),
    ],
)
def test_bad_grading(text: str, reason: str) -> None:
    assert errors_of({**GOOD, "grading": text})["grading"].startswith(reason)


def test_handling_code_c_needs_conditions() -> None:
    assert errors_of({**GOOD, "handling_code": "C"}) == {
        "handling_conditions": "required when the handling code is C"
    }
    assert errors_of({**GOOD, "handling_code": "Z"}) == {
        "handling_code": "handling code must be P or C"
    }


@pytest.mark.parametrize(
    ("text", "sex"),
    [("F", Sex.FEMALE), ("female", Sex.FEMALE), ("M", Sex.MALE), ("Unknown", Sex.UNSPECIFIED)],
)
def test_sex_words(text: str, sex: Sex) -> None:
    assert parse_sex(text) is sex


@pytest.mark.parametrize(
    ("text", "sex"),
    [
        ("1", Sex.MALE),  # ISO/IEC 5218, as national registers export it
        ("2", Sex.FEMALE),
        ("H", Sex.MALE),  # homme, hombre
        ("W", Sex.FEMALE),  # weiblich
        ("Féminin", Sex.FEMALE),
        ("MÄNNLICH", Sex.MALE),
        ("Woman", Sex.FEMALE),
    ],
)
def test_sex_codes_lists_export(text: str, sex: Sex) -> None:
    """Each was a field error (``unknown sex marker``): a French list's men, or every row of
    a register writing ISO/IEC 5218 codes, lost their sex."""
    assert parse_sex(text) is sex


@pytest.mark.parametrize("text", ["0", "9", "3", "Q", "FM", "männlich?"])
def test_other_sex_markers_are_still_refused(text: str) -> None:
    with pytest.raises(ValueError, match="unknown sex marker"):
        parse_sex(text)


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("Traveler", Category.TRAVELLER),
        ("TRAVELER", Category.TRAVELLER),
        ("Watch List", Category.WATCHLIST),
        ("watch-list", Category.WATCHLIST),
        ("SexOffender", Category.SEX_OFFENDER),
    ],
)
def test_category_spellings_lists_use(text: str, category: Category) -> None:
    """A US spelling, or the words apart, rejected the whole row (a row needs its category)."""
    assert parse_category(text) is category


def test_aliases() -> None:
    assert parse_aliases("Al-Hashimi, Omar;; Umar Alhashimi ;") == (
        PersonName(given="Omar", family="Al-Hashimi"),
        PersonName(full="Umar Alhashimi"),
    )
    assert errors_of({**GOOD, "aliases": "A, B, C"}) == {
        "aliases": "alias 1 has more than one comma"
    }
    assert errors_of({**GOOD, "aliases": "ok; ,"}) == {"aliases": "alias 2 has no name"}


def test_extra_documents_are_validated_and_named_by_index() -> None:
    docs = [
        {"doc_type": "P", "doc_number": "AB123456", "doc_country": "CAN"},
        {"doc_type": "P", "doc_country": "CANADA"},
        {"doc_number": ""},
    ]
    assert errors_of(GOOD, documents=docs) == {
        "documents[1].doc_number": "document number missing",
        "documents[1].doc_country": "not an ISO 3166-1 alpha-3 country code",
        "documents[2]": "empty document",
    }
    record = validate_row(GOOD, 2, documents=docs[:1])
    assert isinstance(record, PersonRecord) and record.documents[0].number == "AB123456"


def test_full_name_alone_is_enough() -> None:
    record = validate_row({"record_id": "1", "category": "other", "full_name": "Wang Wei"}, 2)
    assert isinstance(record, PersonRecord) and record.name.full == "Wang Wei"


NAME = "Zhukovskaya-Abdelrahman"


def test_reasons_and_reprs_never_quote_values() -> None:
    row = {
        "record_id": "X",
        "category": NAME,
        "given_name": NAME,
        "birth_date": NAME,
        "sex": NAME,
        "nationalities": NAME,
        "aliases": f"{NAME}, {NAME}, {NAME}",
        "doc_type": NAME,
        "doc_country": NAME,
        "grading": NAME,
        "handling_code": NAME,
        "country": NAME,
    }
    result = validate_row(row, 3)
    assert isinstance(result, tuple) and len(result) == 11  # with doc_number missing
    for error in result:
        assert NAME not in str(error) and NAME not in repr(error)
    record = validate_row({**GOOD, "given_name": NAME}, 3)
    assert NAME not in repr(record)


# -- properties ------------------------------------------------------------------------------

names = st.text(alphabet=string.ascii_letters + "éüłЖ -'", min_size=1, max_size=20).filter(
    lambda s: (
        any(c.isalpha() for c in s)  # "'" alone names nobody (test_a_name_of_punctuation...)
        and ";" not in s
        and "".join(s.split()).upper() not in NAME_MARKERS
    )  # a marker such as NULL or "- -" means no name (test_..._means_not_known_...)
)
valid_rows = st.fixed_dictionaries(
    {
        "record_id": st.from_regex(r"[A-Z]{2}-[0-9]{1,6}", fullmatch=True),
        "category": st.sampled_from([c.value for c in Category]),
        "family_name": names,
    },
    optional={
        "given_name": names,
        "birth_date": st.dates()
        .filter(lambda d: 1850 <= d.year <= 2200)
        .filter(lambda d: (d.year, d.month, d.day) not in PLACEHOLDER_BIRTH_DATES)
        .map(str),
        "sex": st.sampled_from(["F", "m", "x", "female", "Male", "unknown"]),
        "nationalities": st.lists(st.from_regex(r"[A-Z]{3}", fullmatch=True), max_size=3).map(
            ";".join
        ),
        "grading": st.sampled_from(["1A", "3E", "B2", "F6"]),
        "handling_code": st.just("P"),
        "Remarks": st.text(max_size=30),
    },
)


@given(valid_rows)
def test_valid_rows_give_records(row: dict[str, str]) -> None:
    record = validate_row(row, 2)
    assert isinstance(record, PersonRecord)
    assert record.record_id == row["record_id"]


@given(
    st.dictionaries(
        st.sampled_from([*CANONICAL_FIELDS, "payload_x"]), st.text(max_size=25), max_size=12
    ),
    st.sampled_from(list(DateOrder)),
)
def test_arbitrary_rows_give_a_record_or_field_errors(
    row: dict[str, str], order: DateOrder
) -> None:
    result = validate_row(row, 9, date_order=order)
    if not isinstance(result, PersonRecord):
        assert result and all(isinstance(e, FieldError) for e in result)


# -- two-digit years, read when the mapping says up to which year -----------------------------


@pytest.mark.parametrize(
    ("text", "order", "until", "expected"),
    [
        ("03/04/80", "DMY", 2026, BirthDate(1980, 4, 3)),
        ("03/04/80", "MDY", 2026, BirthDate(1980, 3, 4)),
        ("25/12/26", "DMY", 2026, BirthDate(2026, 12, 25)),  # the last year is in
        ("25/12/27", "DMY", 2026, BirthDate(1927, 12, 25)),  # the year after it is not
        ("25/12/00", "unknown", 2026, BirthDate(2000, 12, 25)),  # deduced day-first
        ("03.04.80", "unknown", 1990, BirthDate(1980, 4, 3, day_month_ambiguous=True)),
        ("03/04/99", "DMY", 1949, BirthDate(1899, 4, 3)),
        ("03-APR-80", "DMY", 2026, BirthDate(1980, 4, 3)),  # as some databases print dates
    ],
)
def test_two_digit_years_are_read_up_to_the_mappings_year(
    text: str, order: str, until: int, expected: BirthDate
) -> None:
    assert parse_birth_date(text, order, two_digit_years_until=until) == expected
    checked = check_row(
        {**GOOD, "birth_date": text}, 3, date_order=order, two_digit_years_until=until
    )
    assert checked.errors == ()
    assert checked.record is not None and checked.record.birth_date == expected


def test_a_garbled_date_with_a_two_digit_year_keeps_what_is_readable() -> None:
    assert salvage_birth_date("2K/03/84", "DMY") is None
    assert salvage_birth_date("2K/03/84", "DMY", two_digit_years_until=2026) == (
        BirthDate(1984, 3),
        YEAR_MONTH,
    )
    assert salvage_birth_date("xx/xx/19", "MDY", two_digit_years_until=2026) == (
        BirthDate(2019),
        YEAR,
    )
    # the two digits are read last only: a year written first is no day or month
    for first in ("80/04/03", "95/12/31"):
        with pytest.raises(ValueError, match="impossible date"):
            parse_birth_date(first, "DMY", two_digit_years_until=2026)
        assert salvage_birth_date(first, "DMY", two_digit_years_until=2026) is None
        assert salvage_birth_date(first, "unknown", two_digit_years_until=2026) is None
    with pytest.raises(ValueError, match="day or month first, but the date order is YMD"):
        parse_birth_date("80-04-03", "YMD", two_digit_years_until=2026)
    assert salvage_birth_date("80-04-0Z", "YMD", two_digit_years_until=2026) is None
    checked = check_row(
        {**GOOD, "birth_date": "2K/03/84"}, 3, date_order="DMY", two_digit_years_until=2026
    )
    assert [(e.field, e.reason) for e in checked.errors] == [
        ("birth_date", f"unrecognised date format ({YEAR_MONTH})")
    ]


@given(st.integers(EARLIEST_CENTURY_END, LATEST_CENTURY_END), st.integers(0, 99))
def test_century_year_is_the_latest_year_with_those_digits(until: int, digits: int) -> None:
    year = century_year(digits, until)
    assert year % 100 == digits
    assert until - 100 < year <= until
    BirthDate(year)  # always a year a date of birth may have


@pytest.mark.parametrize("until", [EARLIEST_CENTURY_END - 1, LATEST_CENTURY_END + 1, True, 2026.0])
def test_a_year_two_digits_cannot_be_read_up_to_is_a_caller_error(until: object) -> None:
    with pytest.raises(ValueError, match="two_digit_years_until must be a year"):
        check_row(GOOD, 2, two_digit_years_until=until)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "marker", ["N/A", "n/a", "#N/A", "NULL", "none", "-", "?", "Unknown", "unk"]
)
def test_a_value_that_means_not_known_is_missing_in_every_identity_field(marker: str) -> None:
    """An export's "not known" is no value two records could share: read as missing, with no
    field error (it is what the source meant). Before, ``N/A`` was a family name, a date of
    birth error, a document number and a postcode that every such record shared."""
    row = {
        **GOOD,
        "middle_name": marker,
        "aliases": marker,
        "birth_date": marker,
        "nationalities": f" {marker} ",
        "birth_place": marker,
        "doc_type": "P",
        "doc_number": marker,
        "postcode": marker,
        "locality": marker,
    }
    checked = check_row(row, 3)
    assert checked.errors == (FieldError(3, "doc_number", "document number missing"),)
    record = checked.record
    assert record is not None and record.name.middle == "" and record.aliases == ()
    assert record.birth_date is None and record.nationalities == () and record.birth_place == ""
    assert record.documents == () and record.addresses == ()
    assert record.name.family == GOOD["family_name"]  # a real value is untouched
    kept = check_row({**GOOD, "remarks": marker}, 3).record
    assert kept is not None and dict(kept.payload) == {"remarks": marker}  # a payload says it


@pytest.mark.parametrize(
    ("marker", "sex"),
    [("N/A", None), ("null", None), ("-", None), ("?", None), ("Not known", None),
     ("UNK", None), ("Unknown", Sex.UNSPECIFIED), ("U", Sex.UNSPECIFIED), ("f", Sex.FEMALE)],
)  # fmt: skip
def test_a_sex_not_given_is_missing_not_a_bad_marker(marker: str, sex: Sex | None) -> None:
    """``N/A`` for sex was a field error (``unknown sex marker``), so under ``reject-row`` the
    row was rejected; it is a sex not given, as in any other field. ``Unknown`` and ``U``
    stay the unspecified sex ``X``."""
    checked = check_row({**GOOD, "sex": marker}, 3, bad_field=BadFieldPolicy.REJECT_ROW)
    assert checked.errors == () and checked.record is not None
    assert checked.record.sex == sex


@pytest.mark.parametrize(
    ("given", "family"), [("N/A", "N/A"), ("FNU", "LNU"), ("Unknown", "x x x"), ("NFN", "-")]
)
def test_a_row_named_only_by_placeholders_has_no_name(given: str, family: str) -> None:
    """Two people recorded as ``N/A N/A`` (or ``FNU LNU``) with one date of birth were
    decided a match on those names; such a row has no name at all and is rejected."""
    checked = check_row({**GOOD, "given_name": given, "family_name": family}, 4)
    assert checked.record is None
    assert [e.field for e in checked.errors] == [NAME_PSEUDO_FIELD]


def test_names_that_only_look_like_placeholders_are_kept() -> None:
    for family in ("Na", "Nil", "Xu", "X", "Unkovic", "Nonez", "Lnuk", "N.A."):
        record = validate_row({**GOOD, "family_name": family}, 1)
        assert isinstance(record, PersonRecord) and record.name.family == family


@pytest.mark.parametrize("number", ["000000", "0", "XXXXXXXX", "9999 9999", "1-1-1-1"])
def test_a_document_number_of_one_repeated_character_is_a_filler(number: str) -> None:
    checked = check_row({**GOOD, "doc_type": "P", "doc_number": number}, 5)
    assert checked.record is not None and checked.record.documents == ()
    assert [e.field for e in checked.errors] == ["doc_number"]
    assert "filler" in checked.errors[0].reason and number not in checked.errors[0].reason
    kept = check_row({**GOOD, "doc_type": "P", "doc_number": "AB0000000"}, 5)
    assert kept.errors == () and kept.record is not None and len(kept.record.documents) == 1


def test_a_long_run_of_spaces_after_a_date_is_refused_at_once() -> None:
    """The time-of-day pattern had two optional runs of spaces side by side: a cell of a date,
    a time and 8,000 spaces took two seconds to refuse (backtracking), 0.4 s at 4,000."""
    text = "1980-01-01 1:11" + " " * 20_000 + "x"
    started = time.process_time()
    with pytest.raises(ValueError, match="unrecognised date format"):
        parse_birth_date(text)
    assert time.process_time() - started < 2.0  # a generous bound: it was quadratic


@pytest.mark.parametrize(
    "full",
    [
        "Unknown Unknown",
        "FNU LNU",
        "UNK UNK",
        "N/A N/A",
        "Unknown-Unknown",
        "N/A, N/A",
        "UNKNOWN UNKNOWN UNKNOWN",
    ],
)
def test_a_full_name_of_markers_only_is_no_name(full: str) -> None:
    """Two different people written ``Unknown Unknown`` with one date of birth shared the
    family-name keys of the word UNKNOWN (a marker, and so missing, only as a whole value)."""
    from xlink.records._missing import blank_missing

    assert blank_missing({"full_name": full}) == {"full_name": ""}
    assert blank_missing({"full_name": "Unknown Smith"}) is None  # a family name is known
    assert blank_missing({"full_name": "Jean-Luc"}) is None
    assert blank_missing({"birth_place": full}) is None  # names only
