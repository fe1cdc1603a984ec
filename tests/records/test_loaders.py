"""Loaders: whole-file errors raise LoadError; bad rows become rejects in the input format."""

from __future__ import annotations

import csv
import datetime
import io
import json
import unicodedata
from pathlib import Path

import pytest

import xlink
from xlink.errors import LoadError, NothingLoaded
from xlink.records import (
    BadFieldPolicy,
    BirthDate,
    ColumnMapping,
    LoadResult,
    load_csv,
    load_dataframe,
    load_jsonl,
)
from xlink.records.model import Category

DATA = Path(xlink.__file__).resolve().parent / "data"  # the bundled sample (xlink.synth.bundled)
HEADER = "record_id,category,family_name,given_name,birth_date,Remarks\n"
SECRET = "Zhukovskaya"  # a name that must never show in errors or reprs


def write(tmp_path: Path, text: str | bytes, name: str = "in.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


# -- whole-file errors -----------------------------------------------------------------------


def test_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="file not found"):
        load_csv(tmp_path / "missing.csv")


def test_non_utf8_input_names_the_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        (HEADER + "1,watchlist,Smith,Jo,1980,\n2,watchlist,M\xfcller,J,,\n").encode("latin-1"),
    )
    with pytest.raises(LoadError, match=r"not UTF-8 text \(line 3\)"):
        load_csv(path)


@pytest.mark.parametrize("text", ["", "\n\n", "\ufeff"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    with pytest.raises(LoadError, match="empty file"):
        load_csv(write(tmp_path, text))
    with pytest.raises(LoadError, match="empty file"):
        load_jsonl(write(tmp_path, text, "in.jsonl"))


def test_header_without_rows_is_empty(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="empty: a header but no data rows"):
        load_csv(write(tmp_path, HEADER + "\n"))


def test_missing_required_columns_are_all_listed(tmp_path: Path) -> None:
    with pytest.raises(LoadError) as info:
        load_csv(write(tmp_path, "id,dob\n1,1980\n"))
    assert "missing required columns: record_id, category, a name column" in str(info.value)


def test_missing_columns_name_the_mapping_that_would_read_the_files_own(
    tmp_path: Path,
) -> None:
    """A census extract with its own column names: the error names the mapping entries that
    would read them (once each, none for a field a column already fills, names JSON-quoted),
    and the file is still refused: no column is read as a field by a guess."""
    header = 'ID,First Name,middle_initial,Surname,last_name,DOB,gender,"say ""hi""",given_name\n'
    with pytest.raises(LoadError) as info:
        load_csv(write(tmp_path, header + "1,Ann,Q,Lee,Lee,1980-01-02,F,x,Ann\n"))
    assert str(info.value).endswith(
        "missing required columns: record_id, category; "
        """a file without a category column needs the mapping's "category" """
        "(watchlist, sex_offender, traveller, other: the MOU releases each kind under its own "
        'fields and caveats, so give the list\'s own; "other" in the example is a placeholder); '
        "its mapping's columns could read them, e.g. "
        '{"columns": {"ID": "record_id", "middle_initial": "middle_name", '
        '"Surname": "family_name", "DOB": "birth_date", "gender": "sex"}, "category": "other"} '
        "(docs/loading.md#mapping-file)"
    )


def test_the_mapping_a_load_suggests_loads_the_file(tmp_path: Path) -> None:
    """Written out as the error says, the suggested mapping reads the file: a user who copies
    it is not sent back for the category."""
    path = write(tmp_path, "PERSON_ID,GIVEN_NAMES,SURNAME,BIRTH_DATE\nC1,Ann,Lee,1980-01-02\n")
    with pytest.raises(LoadError) as info:
        load_csv(path)
    suggested = str(info.value).split("e.g. ", 1)[1].rsplit(" (docs/", 1)[0]
    mapping = tmp_path / "in.mapping.json"
    mapping.write_text(suggested)
    (record,) = load_csv(path, mapping=mapping).records
    assert (record.record_id, record.category.value) == ("C1", "other")


def test_a_registry_s_event_id_is_suggested_as_its_record_id(tmp_path: Path) -> None:
    """A registry of events names its rows' ids by the event (found in a new user's trial:
    the hint left ``record_id`` for the user to guess)."""
    path = write(tmp_path, "EVENT_ID,FNAME,LNAME,DOB,CATEGORY\nE1,Ann,Lee,1980-01-02,other\n")
    with pytest.raises(LoadError) as info:
        load_csv(path)
    assert '"EVENT_ID": "record_id"' in str(info.value)


def test_a_list_loaded_without_its_mapping_is_told_the_mapping_it_lacks(tmp_path: Path) -> None:
    """The bundled Canadian watchlist without its mapping: every column it has for a field is
    named (its own ``Category`` and ``Sex`` too, in any case), so it is not told it has no
    category column."""
    path = tmp_path / "ca.csv"
    path.write_bytes((DATA / "ca_watchlist.csv").read_bytes())
    with pytest.raises(LoadError) as info:
        load_csv(path)
    said = str(info.value)
    assert "without a category column" not in said
    for entry in ('"Category": "category"', '"Sex": "sex"', '"Date of Birth": "birth_date"'):
        assert entry in said
    assert "Remarks" not in said and "Risk Level" not in said


def test_a_jsonl_that_loads_nothing_is_told_the_mapping_it_lacks(tmp_path: Path) -> None:
    rows = [{"id": str(i), "surname": "Lee", "dob": "1980-01-02"} for i in range(3)]
    path = write(tmp_path, "".join(json.dumps(r) + "\n" for r in rows), "in.jsonl")
    with pytest.raises(NothingLoaded) as info:
        load_jsonl(path)
    assert info.value.hint is not None
    assert '{"columns": {"id": "record_id", "surname": "family_name", "dob": "birth_date"}}' in (
        str(info.value)
    )


def test_no_hint_when_no_column_name_is_a_common_one(tmp_path: Path) -> None:
    with pytest.raises(LoadError) as info:
        load_csv(write(tmp_path, "key,nom\n1,Lee\n"))
    assert "could read them" not in str(info.value)
    with pytest.raises(LoadError) as info:  # a quote in a column's name, quoted as JSON
        load_csv(write(tmp_path, 'id,"na""me",x\n1,Lee,\n'))
    assert '{"columns": {"id": "record_id", "na\\"me": "full_name"}, "category": "other"}' in (
        str(info.value)
    )


def test_columns_a_file_names_its_own_way_are_said_to_be_unread(tmp_path: Path) -> None:
    """A file loaded without its mapping: ``DOB`` and ``gender`` went to the payload, never
    matched on, and nothing said so (a record matched on its names alone). They are named now,
    with the mapping that reads them, and stay in the payload; a column for a field another
    column fills, a payload column of no common name, a "name" beside a given and a family
    name, and the columns a mapping reads are not."""
    header = "record_id,category,given_name,first_name,family_name,DOB,gender,notes,name\n"
    path = write(tmp_path, header + "1,watchlist,Ann,Ann,Lee,1980-01-02,F,x,ACME\n")
    result = load_csv(path)
    assert result.unread_columns == (("DOB", "birth_date"), ("gender", "sex"))
    record = result.records[0]
    assert record.birth_date is None and record.sex is None
    assert {"DOB", "gender"} <= dict(record.payload).keys()
    assert result.summary() == (
        "loaded 1, rejected 0; not read as fields, kept in the payload and never matched on: "
        '"DOB" (usually birth_date), "gender" (usually sex): the mapping\'s columns would read '
        'them, e.g. {"columns": {"DOB": "birth_date", "gender": "sex"}} '
        "(docs/loading.md#mapping-file)"
    )
    mapped = load_csv(path, mapping={"DOB": "birth_date", "gender": "sex"})
    assert mapped.unread_columns == () and mapped.summary() == "loaded 1, rejected 0"
    assert mapped.records[0].birth_date is not None


def test_unread_columns_stay_few_and_short_whatever_the_keys(tmp_path: Path) -> None:
    """JSON Lines objects each with another spelling of one field, a name thousands of
    characters long, a constant category beside a "List Type", a documents list beside a
    "passport": one column a field, no long name quoted back, nothing filled named."""
    rows = [
        {"record_id": str(i), "family_name": "Lee", "D" + " " * i + "OB": "1980-01-02"}
        for i in range(1, 200)
    ]
    rows.append({"record_id": "x", "family_name": "Lee", "S" + "\u0001" * 5000 + "ex": "F"})
    rows.append({"record_id": "y", "family_name": "Lee", "category": "watchlist"})
    path = write(tmp_path, "".join(json.dumps(r) + "\n" for r in rows), "in.jsonl")
    result = load_jsonl(path, mapping={"category": "watchlist"})
    assert result.unread_columns == (("D OB", "birth_date"),)
    assert len(result.summary()) < 400
    documents = [{"doc_number": "P123"}]
    row = {"record_id": "1", "family_name": "Lee", "documents": documents, "passport": "yes"}
    listed = write(tmp_path, json.dumps({**row, "List Type": "wl"}) + "\n", "docs.jsonl")
    assert load_jsonl(listed, mapping={"category": "watchlist"}).unread_columns == ()


def test_constant_category_makes_the_column_optional(tmp_path: Path) -> None:
    path = write(tmp_path, "ID,Surname\n1,Smith\n")
    result = load_csv(
        path,
        mapping={"columns": {"ID": "record_id", "Surname": "family_name"}, "category": "traveller"},
    )
    assert result.records[0].category is Category.TRAVELLER


def test_duplicate_and_unnamed_columns(tmp_path: Path) -> None:
    with pytest.raises(LoadError) as info:
        load_csv(write(tmp_path, "record_id,,category,family_name,family_name\n1,x,other,A,B\n"))
    assert "column 2 has no name" in str(info.value)
    assert "duplicate column names: family_name" in str(info.value)
    assert "all map to" not in str(info.value)  # one problem, said once


def test_a_spreadsheets_empty_trailing_columns_are_no_columns(tmp_path: Path) -> None:
    """Spreadsheets export empty columns after the last named one (``,,``): the whole file
    was refused ("column 4 has no name"). A value in such a column is not dropped: its row
    is rejected."""
    text = "record_id,category,family_name,,\n1,other,A,,\n2,other,B\n3,other,C,,kept?\n"
    result = load_csv(write(tmp_path, text))
    assert [r.record_id for r in result.records] == ["1", "2"]
    (reject,) = result.rejects
    assert reject.line == 4 and "5 fields, the header has 3" in reject.errors[0].reason


def test_a_value_with_an_unquoted_delimiter_does_not_shift_its_row(tmp_path: Path) -> None:
    """``King, Jr`` unquoted makes a row one cell longer, and when the last column is empty
    that cell is empty too: the row was read with every cell after the value shifted
    (``given_name`` 'Jr', ``remarks`` 'Martin'). Empty cells past the header are dropped only
    where the header has unnamed columns of its own, or where most rows have them (the
    file's form); otherwise the row is rejected, and why."""
    header = "record_id,category,birth_date,family_name,given_name,remarks\n"
    rows = "".join(f"{i},watchlist,1961-03-04,Doe,Jane{i},\n" for i in range(2, 5))
    shifted = "1,watchlist,1960-01-02,King, Jr,Martin,\n"
    result = load_csv(write(tmp_path, header + shifted + rows))
    assert [(r.record_id, r.name.given) for r in result.records] == [
        ("2", "Jane2"),
        ("3", "Jane3"),
        ("4", "Jane4"),
    ]
    (reject,) = result.rejects
    reason = reject.errors[0].reason
    assert reject.line == 2 and reason.startswith("7 fields, the header has 6 (the cells past")
    # a header that ends with the delimiter: every row's last cell is empty
    padded = write(tmp_path, header.replace("\n", ",\n") + "2,watchlist,1961-03-04,Doe,Jane,,\n")
    assert [r.name.given for r in load_csv(padded).records] == ["Jane"]


@pytest.mark.parametrize("delimiter", [",", "|"])
def test_rows_that_all_end_with_the_delimiter_under_a_header_that_does_not(
    tmp_path: Path, delimiter: str
) -> None:
    """Database dumps (Informix UNLOAD, some SQL clients) end every row with the delimiter, and
    a header added apart does not: that is the file's form, read as such; a row shifted by an
    unquoted delimiter in it (two cells past the header) is still rejected, wherever it is."""
    d = delimiter
    header = d.join(["record_id", "category", "family_name", "given_name"]) + "\n"
    rows = [d.join([str(i), "other", f"Roe{i}", "Bo", ""]) for i in range(1, 61)]
    rows[0] = d.join(["1", "other", "King", " Jr", "Martin", ""])  # "King, Jr" unquoted...
    rows[55] = d.join(["56", "other", "King", " Jr", "Martin", ""])  # ...and past the held rows
    path = write(tmp_path, header + "\n".join(rows) + "\n")
    result = load_csv(path, mapping={"delimiter": d})
    assert [r.record_id for r in result.records] == [str(i) for i in range(2, 61) if i != 56]
    assert {r.family for r in (rec.name for rec in result.records)} == {
        f"Roe{i}" for i in range(2, 61) if i != 56
    }
    assert [(r.line, r.errors[0].reason.split(" (")[0]) for r in result.rejects] == [
        (2, "6 fields, the header has 4"),
        (57, "6 fields, the header has 4"),
    ]


def test_two_columns_mapped_to_one_field(tmp_path: Path) -> None:
    path = write(tmp_path, "record_id,category,Surname,family_name\n1,other,A,B\n")
    with pytest.raises(LoadError, match="all map to 'family_name'"):
        load_csv(path, mapping={"Surname": "family_name"})


def test_bad_mapping(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not canonical fields"):
        load_csv(write(tmp_path, HEADER + "1,other,A,B,,\n"), mapping={"Surname": "surname"})
    bad = write(tmp_path, "{not json", "m.json")
    with pytest.raises(LoadError, match="mapping file does not parse"):
        load_csv(write(tmp_path, HEADER + "1,other,A,B,,\n"), mapping=bad)


def test_a_mapping_names_what_a_files_own_category_values_mean(tmp_path: Path) -> None:
    """A list writes its categories its own way (``sex offender – high risk``): every such row
    was rejected, and no mapping setting could say what the values mean (found in a new
    user's trial: two thirds of a watchlist rejected). ``categories`` says it; a value it does
    not name is read as before."""
    text = (
        "1,Sex Offender  –  High Risk,Lee,Ann,,\n"
        "2,watch list – terrorism,Roe,Bo,,\n"
        "3,traveller,Doe,Cy,,\n"
        "4,sex offender – low risk,Poe,Di,,\n"
    )
    path = write(tmp_path, HEADER + text)
    refused = load_csv(path)
    assert [r.record_id for r in refused.records] == ["3"]
    assert "% of the rows rejected" not in refused.summary()  # three rows: typing errors
    many = text + "".join(f"{n},sex offender – high risk,Lee,Ann,,\n" for n in range(5, 13))
    # eleven rows of twelve rejected: the summary gives the share and the reason
    assert f"; 91% of the rows rejected, 11 of them first for category: {CATEGORY_REASON}" in (
        load_csv(write(tmp_path, HEADER + many, "many.csv")).summary()
    )
    # a file appended to itself: one reason, whatever line each duplicate names
    twice = "".join(f"{n},other,Lee,Ann,,\n" for n in range(12)) * 2
    said = load_csv(write(tmp_path, HEADER + twice, "twice.csv")).summary()
    assert "; 50% of the rows rejected, 12 of them first for record_id: duplicate" in said
    assert "(first seen on line 2)" in said  # as a row says it
    assert {(e.field, e.reason) for r in refused.rejects for e in r.errors} == {
        ("category", CATEGORY_REASON)
    }
    mapping = {
        "categories": {
            "sex offender – high risk": "sex_offender",
            "Watch List – Terrorism": "watchlist",
        }
    }
    loaded = load_csv(path, mapping=mapping)
    kinds = {r.record_id: r.category for r in loaded.records}
    assert kinds == {"1": Category.SEX_OFFENDER, "2": Category.WATCHLIST, "3": Category.TRAVELLER}
    assert [(r.line, [e.reason for e in r.errors]) for r in loaded.rejects] == [
        (5, [CATEGORY_REASON])
    ]
    with pytest.raises(ValueError, match=r"'categories': 'x' -> 'terrorist': not a category"):
        load_csv(path, mapping={"categories": {"x": "terrorist"}})
    with pytest.raises(ValueError, match=r"two kinds: 'High Risk', 'high  risk'"):
        load_csv(path, mapping={"categories": {"High Risk": "other", "high  risk": "watchlist"}})
    alike = {
        "categories": {
            "Sex Offender – High Risk": "sex_offender",
            "SEX OFFENDER – HIGH RISK": "sex_offender",
        }
    }
    assert load_csv(path, mapping=alike).loaded == 2  # two spellings, one kind: as one
    # a value written with its accents decomposed (NFD) is the value the mapping names
    accented = write(tmp_path, HEADER + "9,De\u0301linquant sexuel,Lee,Ann,,\n", "nfd.csv")
    mapped = {"categories": {"délinquant sexuel": "sex_offender"}}
    (record,) = load_csv(accented, mapping=mapped).records
    assert record.category is Category.SEX_OFFENDER
    with pytest.raises(ValueError, match="'categories' names an empty value"):
        load_csv(path, mapping={"categories": {"  ": "other"}})
    with pytest.raises(ValueError, match="'categories' must map a file's values"):
        load_csv(path, mapping={"categories": ["sex offender"]})


def test_a_quote_left_open_over_rows_refuses_the_file(tmp_path: Path) -> None:
    """It would swallow the rows after it, so it is not read as one row; it is named by the
    line where the quote opened (it was named by the last line, thousands of lines on in a
    big file)."""
    text = '1,other,"Smith\n2,other,Doe\n'
    opened = r"malformed CSV \(line 2\): a quote opened in the row that starts on line 2 is still"
    with pytest.raises(LoadError, match=opened + " open at the end of the file"):
        load_csv(write(tmp_path, HEADER + text))
    closed = '1,other,"Smith\n2"x,Doe\n3,other,Roe\n'
    with pytest.raises(LoadError, match=r"\(line 2\): .* is closed badly on line 3 \(a quoted"):
        load_csv(write(tmp_path, HEADER + closed))
    # on the last line, with or without its line break
    for last in ('1,other,Smith\n2,other,"Doe\n', '1,other,Smith\n2,other,"Doe'):
        with pytest.raises(LoadError, match=r"\(line 3\): a quote opened in the row that starts"):
            load_csv(write(tmp_path, HEADER + last))
    # a big file: the reader stops at its limit, the quote still open
    long = '1,other,"Smith\n' + "2,other,Doe,John,,a remark of some length\n" * 4000
    with pytest.raises(LoadError, match=r"\(line 2\): .* still open on line \d+, past the CSV"):
        load_csv(write(tmp_path, HEADER + long))
    with pytest.raises(LoadError, match=r"a quote opened in the header is still open"):
        load_csv(write(tmp_path, 'record_id,"category\n1,other\n'))


@pytest.mark.parametrize(
    "bad",
    ['1,other,Smith,John,,"He said "hi" then', '1,other,Smith,John,,"' + "a" * 140_000],
)
def test_a_bad_line_with_a_quote_still_open_refuses_the_file(tmp_path: Path, bad: str) -> None:
    """The reader goes on at the next line, which was meant to be inside the quote: read as a
    row of its own, it made a record nobody wrote (``7``, from the remark's second line)."""
    text = bad + '\n7,other,Ghost,Rec,,left"\n2,other,Roe,Ann,,x\n'
    with pytest.raises(LoadError, match=r"malformed CSV \(line 2\)"):
        load_csv(write(tmp_path, HEADER + text))


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ('1,other,"Sm"ith,,,', "a quoted value followed by text"),
        ("1,other,Sm\rith,,,", "a line break inside a value not in quotes"),
        ("1,other,Smith,A,," + "x" * 200_000, "a value longer than the CSV reader's limit"),
    ],
)
def test_one_line_the_csv_rules_cannot_read_is_one_rejected_row(
    tmp_path: Path, row: str, reason: str
) -> None:
    """Each refused the whole file before: one bad line of an export cost every record."""
    result = load_csv(write(tmp_path, HEADER + row + "\n2,other,Doe,Jane,,\n"))
    assert [r.record_id for r in result.records] == ["2"]
    ((line, errors),) = [(r.line, r.errors) for r in result.rejects]
    assert line == 2 and [e.field for e in errors] == ["<row>"] and reason in errors[0].reason
    written = (tmp_path / "in.rejects.csv").read_bytes().decode()
    assert '"' + row.replace('"', '""') + '"' in written  # kept whole, in one quoted cell


def test_rejects_path_must_not_be_the_input(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "1,other,A,B,,\n")
    with pytest.raises(ValueError, match="overwrite the input"):
        load_csv(path, rejects_path=path)


# -- rows and rejects ------------------------------------------------------------------------
# These tests are about rejection itself, so most pass REJECT_ROW: under the default
# (DROP_FIELD) the rows of BAD_CSV with only a bad date load without it (test_bad_field.py).

REJECT_ROW = BadFieldPolicy.REJECT_ROW
CATEGORY_REASON = (
    "unknown category (expected one of watchlist, sex_offender, traveller, other, or a value "
    'the mapping\'s "categories" names)'
)
BAD_CSV = (
    "\ufeff"
    + HEADER
    + '1,watchlist,Smith,John,03/04/1980,"two\nlines"\n'
    + "2,watchlist,Doe,Jane,31/04/1990,\n"
    + "\n"
    + "3,terrorist,Roe,Rick,1980,x\n"
    + "1,watchlist,Smith,Johnny,1980,\n"
    + "4,other,Short\n"
    + "5,other,Li,Wei,1700,\n"
)


def test_rejects_report_physical_lines_and_every_error(tmp_path: Path) -> None:
    path = write(tmp_path, BAD_CSV)
    result = load_csv(path, bad_field=REJECT_ROW)
    assert (result.loaded, result.rejected, result.total) == (1, 5, 6)
    lines = {r.line: {e.field: e.reason for e in r.errors} for r in result.rejects}
    assert lines == {
        4: {"birth_date": "impossible date (its year and month are readable)"},
        6: {"category": CATEGORY_REASON},
        7: {"record_id": "duplicate record_id (first seen on line 2)"},
        8: {"<row>": "3 fields, the header has 6"},
        9: {"birth_date": "year out of range"},
    }
    assert result.rejects_path == tmp_path / "in.rejects.csv"
    assert result.summary() == f"loaded 1, rejected 5 (see rejects: {tmp_path / 'in.rejects.csv'})"
    assert result.field_errors == () and result.field_errors_path is None


def test_default_keeps_rows_whose_only_problem_is_a_field(tmp_path: Path) -> None:
    result = load_csv(write(tmp_path, BAD_CSV))
    assert (result.loaded, result.rejected, result.total) == (3, 3, 6)
    assert [r.line for r in result.rejects] == [6, 7, 8]  # category, duplicate id, short row
    # 31/04/1990 keeps its year and month; 1700 keeps nothing
    assert [(r.record_id, r.birth_date) for r in result.records[1:]] == [
        ("2", BirthDate(1990, 4)),
        ("5", None),
    ]
    assert [(e.line, e.field, e.reason) for e in result.field_errors] == [
        (4, "birth_date", "impossible date (its year and month are readable)"),
        (9, "birth_date", "year out of range"),
    ]


def test_rejects_csv_holds_only_bad_rows_as_read(tmp_path: Path) -> None:
    result = load_csv(write(tmp_path, BAD_CSV), bad_field=REJECT_ROW)
    assert result.rejects_path is not None
    rows = read_csv(result.rejects_path)
    assert rows[0] == [*HEADER.strip().split(","), "xlink_error"]
    assert [r[:-1] for r in rows[1:]] == [
        ["2", "watchlist", "Doe", "Jane", "31/04/1990", ""],
        ["3", "terrorist", "Roe", "Rick", "1980", "x"],
        ["1", "watchlist", "Smith", "Johnny", "1980", ""],
        ["4", "other", "Short", "", "", ""],  # padded so that the error is in its column
        ["5", "other", "Li", "Wei", "1700", ""],
    ]
    assert rows[1][-1] == "line 4: birth_date: impossible date (its year and month are readable)"
    # a corrected rejects file loads again as it is: xlink_error is ignored on input
    fixed = result.rejects_path.read_text().replace("31/04/1990", "30/04/1990")
    again = load_csv(write(tmp_path, fixed, "fixed.csv"), bad_field=REJECT_ROW, write_rejects=False)
    # the duplicate has no first occurrence any more, and the short row was padded
    assert [r.record_id for r in again.records] == ["2", "1", "4"]
    assert [r.line for r in again.rejects] == [3, 6]
    assert "xlink_error" not in again.records[0].payload


def test_quoted_newlines_keep_line_numbers_and_raw_text(tmp_path: Path) -> None:
    text = HEADER + '1,other,A,B,,"a\nb\nc"\n2,other,C,D,1990-13-01,"x\ny"\n3,other,E,F,1700,\n'
    result = load_csv(write(tmp_path, text), bad_field=REJECT_ROW)
    assert [r.line for r in result.rejects] == [5, 7]
    assert result.rejects[0].raw == '2,other,C,D,1990-13-01,"x\ny"'
    assert result.records[0].payload["Remarks"] == "a\nb\nc"


def test_stale_rejects_file_is_removed(tmp_path: Path) -> None:
    stale = write(tmp_path, "old", "in.rejects.csv")
    result = load_csv(write(tmp_path, HEADER + "1,other,A,B,,\n"))
    assert result.rejected == 0 and result.rejects_path is None
    assert not stale.exists()
    assert result.summary() == "loaded 1, rejected 0"


def test_no_rejects_file_when_disabled(tmp_path: Path) -> None:
    result = load_csv(write(tmp_path, BAD_CSV), bad_field=REJECT_ROW, write_rejects=False)
    assert result.rejected == 5 and result.rejects_path is None
    assert not (tmp_path / "in.rejects.csv").exists()
    # nor a field-errors file: the errors stay in memory
    result = load_csv(write(tmp_path, BAD_CSV), write_rejects=False)
    assert len(result.field_errors) == 2 and result.field_errors_path is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_mapping_files_json_and_toml(tmp_path: Path) -> None:
    path = write(tmp_path, "ID,Surname,DOB\nA,Müller,03/04/1980\nB,Li,13/04/1980\n")
    doc = {
        "columns": {"ID": "record_id", "Surname": "family_name", "DOB": "birth_date"},
        "date_order": "MDY",
        "category": "watchlist",
    }
    json_map = write(tmp_path, json.dumps(doc), "m.json")
    toml_map = write(
        tmp_path,
        'date_order = "MDY"\ncategory = "watchlist"\n[columns]\nID = "record_id"\n'
        'Surname = "family_name"\nDOB = "birth_date"\n',
        "m.toml",
    )
    for mapping in (json_map, toml_map, doc, ColumnMapping.from_dict(doc)):
        result = load_csv(path, mapping=mapping, write_rejects=False)
        assert result.records[0].birth_date is not None
        assert result.records[0].birth_date.isoformat() == "1980-03-04"
        # 13/04/1980 is impossible month-first: B loads with it read the other way round
        # (the default, DROP_FIELD), and its field error says so
        assert [r.record_id for r in result.records] == ["A", "B"]
        assert result.records[1].birth_date == BirthDate(1980, 4, 13)
        assert [(e.field, e.reason) for e in result.field_errors] == [
            ("DOB", "impossible date (a date with day and month the other way round)")
        ]  # the input's column name
        rejected = load_csv(path, mapping=mapping, bad_field=REJECT_ROW, write_rejects=False)
        assert [r.errors[0].field for r in rejected.rejects] == ["DOB"]
    # the argument overrides the mapping's date order
    result = load_csv(path, mapping=doc, date_order="DMY", write_rejects=False)
    assert result.loaded == 2 and result.field_errors == ()
    assert [r.birth_date.isoformat() for r in result.records if r.birth_date] == [
        "1980-04-03",
        "1980-04-13",
    ]


def test_progress_is_called_every_10000_rows_and_at_the_end(tmp_path: Path) -> None:
    rows = "".join(f"{i},other,N{i},,,\n" for i in range(25_000))
    calls: list[int] = []
    load_csv(write(tmp_path, HEADER + rows), progress=calls.append)
    assert calls == [10_000, 20_000, 25_000]


def test_equal_parts_of_records_are_one_object_and_the_records_are_unchanged(
    tmp_path: Path,
) -> None:
    """A household shares an address and a list repeats its payloads: a loaded record holds
    the same (immutable) name, address, source, documents and payload object as an earlier
    record with equal ones, and each record is exactly what the row alone gives."""
    from xlink.records.validation import check_row

    header = (
        "record_id,category,family_name,given_name,birth_date,address,postcode,source_id,"
        "doc_number,doc_type,Offence\n"
    )
    rows = [
        "1,watchlist,Smith,Jo,1980-01-02,1 Main St,K1A 0B1,S-1,X123,P,Fraud\n",
        "2,watchlist,Smith,Jo,1981-03-04,1 Main St,K1A 0B1,S-1,X123,P,Fraud\n",
        "3,watchlist,Smith,Al,1982-05-06,9 Side Rd,K1A 0B1,S-2,Y999,P,Theft\n",
    ]
    loaded = load_csv(write(tmp_path, header + "".join(rows)), rejects_path=None)
    a, b, c = loaded.records
    assert a.name is b.name and a.addresses is b.addresses and a.source is b.source
    assert a.documents is b.documents and a.payload is b.payload
    assert a.birth_date != b.birth_date and a.record_id != b.record_id
    assert c.name != a.name and c.addresses != a.addresses and c.payload != a.payload
    for line, (row, record) in enumerate(zip(rows, loaded.records, strict=True), start=2):
        fields = dict(zip(header.strip().split(","), row.strip().split(","), strict=True))
        assert check_row(fields, line).record == record


def test_a_kind_of_value_that_never_repeats_is_not_remembered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unique values (document numbers, most addresses of some lists) would only fill a memo:
    a kind whose first look-ups (here 4) rarely find an equal value is no longer shared; a
    kind that repeats (the payload) still is."""
    import xlink.records._sharing as sharing

    monkeypatch.setattr(sharing, "SHARE_TRIAL", 4)
    header = "record_id,category,family_name,address,Offence\n"
    streets = ["1 Main St", "2 Oak Ave", "3 Elm Rd", "4 Pine Ln", "1 Main St", "1 Main St"]
    rows = [f"{i},watchlist,Smith{i},{street},Fraud\n" for i, street in enumerate(streets)]
    loaded = load_csv(write(tmp_path, header + "".join(rows)), rejects_path=None)
    records = loaded.records
    assert records[4].addresses == records[0].addresses
    assert records[4].addresses is not records[0].addresses  # dropped after 4 without a hit
    assert records[5].payload is records[0].payload  # every look-up hit: still shared


def test_errors_and_reprs_never_show_names(tmp_path: Path) -> None:
    text = HEADER + f"1,watchlist,{SECRET},{SECRET},31/04/1990,{SECRET}\n1,spy,{SECRET},,,\n"
    text += "2,other,Lee,Ann,,\n"  # a file of which no row loads is refused whole
    for policy in BadFieldPolicy:
        result = load_csv(write(tmp_path, text), bad_field=policy)
        shown = [repr(result), result.summary(), *map(repr, result.rejects)]
        shown += [*map(repr, result.records), *map(str, result.field_errors)]
        shown += [str(e) for r in result.rejects for e in r.errors]
        if result.field_errors_path is not None:
            shown.append(result.field_errors_path.read_text())
        assert all(SECRET not in s for s in shown)
        assert SECRET in result.rejects[0].raw  # but the raw row is kept for the rejects file


# -- JSON Lines ------------------------------------------------------------------------------


def test_jsonl_rows_documents_and_malformed_lines(tmp_path: Path) -> None:
    lines = [
        {
            "record_id": "1",
            "category": "watchlist",
            "family_name": "Haddad",
            "aliases": ["Hadad, Omar"],
            "documents": [{"doc_type": "P", "doc_number": "X1", "doc_country": "LBN"}],
            "risk": 3,
        },
        "{not json",
        "",
        [1, 2],
        {"record_id": "2", "category": "other", "family_name": "A", "birth_date": {"y": 1}},
        '{"record_id": "3", "record_id": "4"}',
        {"record_id": "5", "category": "other", "family_name": "B", "documents": [{"number": "Z"}]},
    ]
    text = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n"
    path = write(tmp_path, text, "in.jsonl")
    result = load_jsonl(path, bad_field=BadFieldPolicy.REJECT_ROW)
    record = result.records[0]
    assert record.documents[0].issuing_country == "LBN"
    assert record.aliases[0].family == "Hadad"
    assert record.payload == {"risk": "3"}
    errors = {r.line: [(e.field, e.reason) for e in r.errors] for r in result.rejects}
    assert errors == {
        2: [("<line>", "malformed JSON (column 2)")],
        4: [("<line>", "not a JSON object")],
        5: [("birth_date", "expected a string, finite number or null")],
        6: [("<line>", "duplicate key in a JSON object")],
        7: [
            ("documents[0]", "expected an object of doc_type, doc_number, doc_country, doc_expiry")
        ],
    }
    assert result.rejects_path == tmp_path / "in.rejects.jsonl"
    written = [json.loads(x) for x in result.rejects_path.read_text().splitlines()]
    assert [w["xlink_error"].split(":")[0] for w in written] == [
        "line 2",
        "line 4",
        "line 5",
        "line 6",
        "line 7",
    ]
    assert written[0]["xlink_raw"] == "{not json"
    assert written[2]["birth_date"] == {"y": 1}  # the object as read, plus xlink_error
    # by default a value of the wrong type, or a bad document, is left out and the row kept
    kept = load_jsonl(path, write_rejects=False)
    assert [r.line for r in kept.rejects] == [2, 4, 6]
    assert [r.record_id for r in kept.records] == ["1", "2", "5"]
    assert kept.records[1].birth_date is None and kept.records[2].documents == ()
    assert [(e.line, e.field) for e in kept.field_errors] == [
        (5, "birth_date"),
        (7, "documents[0]"),
    ]


# -- DataFrames ------------------------------------------------------------------------------


def test_dataframe_input(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(
        {
            "ID": [1.0, 2.0, None],
            "Surname": ["Müller", "Li", "Roe"],
            "DOB": [pd.Timestamp("1980-04-03"), pd.NaT, datetime.date(1700, 1, 1)],
            "score": [0.5, float("nan"), 1],
        }
    )
    mapping = ColumnMapping(
        {"ID": "record_id", "Surname": "family_name", "DOB": "birth_date"},
        category=Category.WATCHLIST,
    )
    rejects = tmp_path / "df.rejects.csv"
    result = load_dataframe(df, mapping=mapping, rejects_path=rejects)
    assert isinstance(result, LoadResult) and result.source == "<DataFrame>"
    assert [r.record_id for r in result.records] == ["1", "2"]
    assert (
        result.records[0].birth_date is not None
        and result.records[0].birth_date.isoformat() == "1980-04-03"
    )
    assert result.records[0].payload == {"score": "0.5"}
    assert [(r.line, [e.field for e in r.errors]) for r in result.rejects] == [(3, ["ID", "DOB"])]
    assert read_csv(rejects)[0] == ["ID", "Surname", "DOB", "score", "xlink_error"]


def test_dataframe_whole_frame_errors() -> None:
    pd = pytest.importorskip("pandas")
    with pytest.raises(LoadError, match="missing required columns"):
        load_dataframe(pd.DataFrame({"x": [1]}))
    with pytest.raises(LoadError, match="empty"):
        load_dataframe(pd.DataFrame({"record_id": [], "category": [], "full_name": []}))
    with pytest.raises(LoadError, match="column names must be strings"):
        load_dataframe(pd.DataFrame({0: [1]}))


# -- the bundled sample data -----------------------------------------------------------------

MANIFEST = json.loads((DATA / "manifest.json").read_text())


@pytest.mark.parametrize("name", sorted(MANIFEST["files"]))
def test_bundled_files_load_as_intended(name: str) -> None:
    info = MANIFEST["files"][name]
    # the manifest counts a row as rejected for any bad field: REJECT_ROW
    mapping = DATA / info["mapping"]
    result = load_csv(DATA / name, mapping=mapping, bad_field=REJECT_ROW, write_rejects=False)
    assert (result.loaded, result.rejected) == (info["loaded"], info["rejected"])
    assert [r.line for r in result.rejects] == info["reject_lines"]
    # by default, a row whose only fault is a field a record may lack (an impossible date, a
    # handling code C without conditions) loads without it and the error is kept beside it
    kept = load_csv(DATA / name, mapping=mapping, write_rejects=False)
    columns = ColumnMapping.from_file(mapping)
    field_only = [  # rows with no error in a field that rejects a row whatever the policy
        r.line
        for r in result.rejects
        if not any(
            e.field == "<name>" or columns.target(e.field) in ("record_id", "category")
            for e in r.errors
        )
    ]
    assert field_only  # every bundled file has one
    assert kept.loaded == info["loaded"] + len(field_only)
    assert [r.line for r in kept.rejects] == [
        n for n in info["reject_lines"] if n not in field_only
    ]
    assert sorted({e.line for e in kept.field_errors}) == field_only


def test_bundled_truth_pairs_name_loaded_records() -> None:
    loaded: dict[str, set[str]] = {}
    for name, info in MANIFEST["files"].items():
        result = load_csv(DATA / name, mapping=DATA / info["mapping"], write_rejects=False)
        loaded[name] = {r.record_id for r in result.records}
    truth = list(csv.DictReader(io.StringIO((DATA / "truth.csv").read_text())))
    assert len(truth) == MANIFEST["truth"]["pairs"]
    for pair in truth:
        assert pair["ca_record_id"] in loaded[pair["ca_file"]]
        assert pair["us_record_id"] in loaded[pair["us_file"]]


def test_json_lines_numbers_read_as_a_dataframe_reads_them(tmp_path: Path) -> None:
    """``json.dumps`` writes a missing float as ``NaN`` and an integer column with gaps as
    floats: ``NaN`` was read as the text 'nan' (every such person named "nan"), ``Infinity``
    as 'inf', and the id ``5.0`` as '5.0', another id than ``5``."""
    lines = [
        '{"record_id": 5.0, "category": "other", "family_name": "A", "given_name": NaN}',
        '{"record_id": NaN, "category": "other", "family_name": "B"}',
        '{"record_id": "7", "category": "other", "family_name": "C", "full_name": Infinity}',
        '{"record_id": 8, "category": "other", "family_name": "D", "postcode": 1e5, "x": 2.5}',
    ]
    result = load_jsonl(write(tmp_path, "\n".join(lines) + "\n", "in.jsonl"))
    first, third, fourth = result.records
    assert (first.record_id, first.name.given) == ("5", "")
    assert (third.record_id, third.name.full) == ("7", "")  # the bad field left out
    assert (fourth.record_id, fourth.payload) == ("8", {"x": "2.5"})
    assert fourth.addresses[0].postcode == "100000"
    (reject,) = result.rejects
    assert (reject.line, reject.errors[0].field) == (2, "record_id")
    assert [(e.line, e.field, e.reason) for e in result.field_errors] == [
        (3, "full_name", "expected a string, finite number or null")
    ]


def test_a_header_is_read_whatever_way_its_accents_are_encoded(tmp_path: Path) -> None:
    """macOS and text copied from a PDF write ``é`` as ``e`` and a combining accent: the
    mapping's ``Prénom`` did not match the header's, and the column went to the payload,
    never matched on, with no word said. A zero-width space or a second byte-order mark
    before a name made it another name too."""
    decomposed = unicodedata.normalize("NFD", "Prénom,Né le")
    text = f"\u200brecord_id,category,\u2066Nom\u2069\ufeff,{decomposed}\n"
    text += "1,other,Dupont,José,07/12/1983\n"
    mapping = {"Nom": "family_name", "Prénom": "given_name", "Né le": "birth_date"}
    (record,) = load_csv(write(tmp_path, text), mapping=mapping, date_order="DMY").records
    assert (record.name.given, record.name.family) == ("José", "Dupont")
    assert record.birth_date is not None and record.birth_date.month == 12
    assert record.payload == {}


def test_json_lines_are_utf8_whatever_a_mapping_says(tmp_path: Path) -> None:
    """A JSON Lines file refused as not UTF-8 was told to set the mapping's encoding, which
    the JSON Lines loader does not read (JSON is UTF-8, RFC 8259; a mapping shared with CSV
    files in cp1252 must not garble a UTF-8 JSON file's accents): the advice is to convert."""
    line = '{"record_id": "1", "category": "other", "family_name": "Müller"}\n'
    path = tmp_path / "in.jsonl"
    path.write_bytes(line.encode("cp1252"))
    with pytest.raises(LoadError, match=r"not UTF-8 text \(line 1\); JSON Lines text is UTF-8"):
        load_jsonl(path, mapping={"encoding": "cp1252"})
    path.write_bytes(line.encode())
    (record,) = load_jsonl(path, mapping={"encoding": "cp1252"}).records
    assert record.name.family == "Müller"


def test_a_record_id_with_a_control_character_rejects_its_row(tmp_path: Path) -> None:
    """Ids holding an escape sequence, a line break or a NUL were kept and printed raw by
    `xlink prepare` (an escape reached the terminal, a line break split its line), and
    ``D\\0`` was another id than ``D``."""
    rows = ['"A\x1b[31m",other,Smith', '"B\nC",other,Roe', "D\x00,other,Doe", "F\u202e1,other,Q"]
    rows.append("E,other,Poe")
    result = load_csv(write(tmp_path, "record_id,category,family_name\n" + "\n".join(rows)))
    assert [r.record_id for r in result.records] == ["E"]
    assert [(r.line, r.errors[0].field, r.errors[0].reason) for r in result.rejects] == [
        (2, "record_id", "holds a control or invisible character"),
        (3, "record_id", "holds a control or invisible character"),
        (5, "record_id", "holds a control or invisible character"),
        (6, "record_id", "holds a control or invisible character"),
    ]


def test_json_keys_and_dataframe_columns_are_read_as_a_headers_names(tmp_path: Path) -> None:
    """The same for a JSON object's keys and a DataFrame's columns, which were compared with
    the mapping's names as written: a decomposed ``Prénom`` went to the payload."""
    import pandas as pd

    key = unicodedata.normalize("NFD", "Prénom")
    mapping = {"Prénom": "given_name", "Nom": "family_name"}
    line = json.dumps({"record_id": "1", "category": "other", "Nom\u200b": "Roe", key: "José"})
    (record,) = load_jsonl(write(tmp_path, line + "\n", "in.jsonl"), mapping=mapping).records
    assert (record.name.given, record.name.family, record.payload) == ("José", "Roe", {})
    df = pd.DataFrame(
        {"record_id": ["1"], "category": ["other"], "Nom\u200b": ["Roe"], key: ["Jo"]}
    )
    (record,) = load_dataframe(df, mapping=mapping).records
    assert (record.name.given, record.name.family, record.payload) == ("Jo", "Roe", {})


def test_names_alike_once_read_are_named_as_written(tmp_path: Path) -> None:
    """``Note`` and ``Note`` with a zero-width space are one name once read: the file was
    refused as "duplicate column names: Note", as if the header named it twice alike; a JSON
    object with both keys kept the second value only."""
    with pytest.raises(LoadError, match=r"duplicate column names: Note \(written 'Note', 'Note"):
        load_csv(write(tmp_path, "record_id,category,family_name,Note,Note\u200b\n1,other,A,x,y\n"))
    line = json.dumps({"record_id": "1", "category": "other", "family_name": "A", "N": 1, "N ": 2})
    result = load_jsonl(
        write(tmp_path, line + "\n" + line.replace('"N ": 2', '"M": 2') + "\n", "x.jsonl")
    )
    assert [r.line for r in result.rejects] == [1] and len(result.records) == 1
    assert "duplicate key in a JSON object, once spaces" in result.rejects[0].errors[0].reason


def test_a_float_too_large_to_be_one_integer_keeps_its_float_form(tmp_path: Path) -> None:
    line = '{"record_id": 12345678901234567890.0, "category": "other", "family_name": "A"}\n'
    (record,) = load_jsonl(write(tmp_path, line, "in.jsonl")).records
    assert record.record_id == "1.2345678901234567e+19"  # not the plausible 12345678901234567168


@pytest.mark.parametrize(("swapped", "asked"), [(30, True), (9, False)])
def test_a_load_asks_about_its_date_order_when_many_dates_read_only_the_other_way(
    tmp_path: Path, swapped: int, asked: bool
) -> None:
    """A day-first file declared month-first: each date whose day is over 12 is kept read the
    other way round, with a field error each, and each whose day is 12 or less is read as the
    wrong date without a word. The load said only "N with bad fields left out"."""
    rows = ["record_id,category,given_name,family_name,birth_date"]
    rows += [f"R{i},watchlist,Ann,Lee{i},{13 + i % 15}/04/1980" for i in range(swapped)]
    rows += [f"S{i},watchlist,Bo,Kim{i},04/{1 + i % 12:02d}/1980" for i in range(100 - swapped)]
    path = tmp_path / "dmy.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    result = load_csv(path, date_order="MDY")
    assert result.loaded == 100 and result.read_swapped == swapped
    assert ("is the mapping's date_order right?" in result.summary()) is asked


def test_a_mapping_column_the_file_lacks_is_named_when_nothing_fills_its_field(
    tmp_path: Path,
) -> None:
    """An export whose date-of-birth column was renamed (``Geburtsdatum``): the mapping's
    ``Date of Birth`` matched nothing, and the file loaded without a date of birth and without
    a word. A listed column absent from the file is still fine when another column, a
    constant category or nothing else is missing (one mapping serves several files)."""
    path = tmp_path / "b.csv"
    path.write_text(
        "ID,Surname,First,Geburtsdatum\n1,Lee,Ann,1980-01-02\n",
        encoding="utf-8",
    )
    mapping = ColumnMapping(
        columns={
            "ID": "record_id",
            "Cat": "category",  # absent, but the constant fills it
            "Surname": "family_name",
            "First": "given_name",
            "Date of Birth": "birth_date",
            "Sex": "sex",
        },
        category=Category.WATCHLIST,
    )
    result = load_csv(path, mapping=mapping)
    assert result.absent_columns == (("Date of Birth", "birth_date"), ("Sex", "sex"))
    assert 'nothing fills: "Date of Birth" (birth_date), "Sex" (sex)' in result.summary()
    path.write_text("ID,Surname,First,Sex\n1,Lee,Ann,F\n", encoding="utf-8")
    filled = ColumnMapping(
        columns={"ID": "record_id", "Surname": "family_name", "First": "given_name", "Sex": "sex"},
        category=Category.WATCHLIST,
    )
    assert load_csv(path, mapping=filled).absent_columns == ()


def test_names_from_a_wrongly_encoded_export_are_counted_and_kept(tmp_path: Path) -> None:
    """A UTF-8 file read as Windows-1252 (after following the hint for one bad line), or a
    Windows-1252 export that could not write a character, loaded without a word: ``MÃ¼ller``
    normalises to MALLER and ``NGUY?N`` to NGUYN, which the partner's copy never holds."""
    path = tmp_path / "g.csv"
    path.write_text(
        "record_id,category,given_name,family_name,aliases\n"
        "1,watchlist,JosÃ©,MÃ¼ller,\n"  # UTF-8 read as cp1252
        "2,watchlist,Ivan,Ð˜Ð²Ð°Ð½Ð¾Ð²,\n"  # Cyrillic UTF-8 read as cp1252
        "3,watchlist,Van An,NGUY?N,\n"  # cp1252 could not write Ễ
        "4,watchlist,Ann,Lee,M\ufffdller Ann\n"  # a replacement character in an alias
        "5,watchlist,José,Müller,\n"  # right
        "6,watchlist,Ann,Lee ?,\n"  # a question mark, against no letter
        "7,watchlist,ÅSA,ÄÖ-Öberg,\n"  # capitals with accents, as names hold them
        "8,watchlist,MÍŠA,KŘÍŽEK,\n"  # Czech capitals: Í before Š or Ž reads back as no letter
        "9,watchlist,JOSÉ\u00a0MARÍA,GARCÍA,\n"  # a no-break space after a capital É
        "10,watchlist,Thá»‹,Nguyá»…n,\n"  # Vietnamese: three-byte UTF-8 read as cp1252
        "11,watchlist,Ren?,Dupont,\n"  # René, its é lost at the end of the word
        ",watchlist,JosÃ©,NGUY?N,\n",  # no id: rejected, and not counted
        encoding="utf-8",
    )
    result = load_csv(path)
    assert (result.loaded, result.misencoded_names, result.lost_characters) == (11, 3, 3)
    assert result.rejected == 1
    summary = result.summary()
    assert "3 records have names that look like UTF-8 read as another encoding" in summary
    assert "3 records have names that lost a character in export" in summary
    assert "Müller" not in summary and "NGUY" not in summary  # counts only, no value


def test_a_header_with_a_nul_byte_says_so_rather_than_suggest_a_mapping(tmp_path: Path) -> None:
    """A damaged export's header ``\\x00\\x00record_id`` was refused with the advice to map
    ``"\\u0000\\u0000record_id"`` to record_id."""
    path = tmp_path / "n.csv"
    path.write_bytes(b"\x00\x00record_id,category,family_name\n1,watchlist,Lee\n")
    with pytest.raises(LoadError) as info:
        load_csv(path)
    message = str(info.value)
    assert "column 1 has control characters (a NUL byte?) in its name" in message
    assert "\\u0000" not in message and "\x00" not in message


def test_a_file_without_a_header_says_its_first_line_looks_like_a_record(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text("1001,watchlist,Lee,Ann,1980-01-02\n1002,watchlist,Kim,Bo,1975-03-04\n")
    with pytest.raises(LoadError, match="its first line looks like a record, not a header"):
        load_csv(path)
    path.write_text("record_id,category,family_name,2020_score,1999\n1,watchlist,Lee,3,4\n")
    assert load_csv(path).loaded == 1  # names with digits in them are still names
