"""What partners' exports look like, read as they mean it: another encoding, another
delimiter, a header in capitals. Each was refused whole before (the encoding, the delimiter:
"missing required columns" with no word of why; a header in capitals the same)."""

from __future__ import annotations

import gzip
import json
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xlink.errors import LoadError, NothingLoaded
from xlink.prepare import prepare_side
from xlink.records._missing import unguard
from xlink.records.loaders import load_csv, load_dataframe, load_jsonl
from xlink.records.validation import check_row

TODAY = date(2026, 12, 6)
MAPPING = {"columns": {"ID": "record_id", "Surname": "family_name", "Given": "given_name"}}


def _write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "list.csv"
    path.write_bytes(data)
    return path


def _names(result: object) -> list[tuple[str, str]]:
    return [(r.name.given, r.name.family) for r in result.records]  # type: ignore[attr-defined]


def test_a_windows_export_reads_with_the_mappings_encoding(tmp_path: Path) -> None:
    text = "ID,Surname,Given,category\n1,Müller,José,other\n2,Groß,Núñez,other\n"
    path = _write(tmp_path, text.encode("cp1252"))
    with pytest.raises(LoadError, match=r"not UTF-8 text \(line 2\).*encoding setting"):
        load_csv(path, mapping=MAPPING)
    result = load_csv(path, mapping={**MAPPING, "encoding": "cp1252"})
    assert _names(result) == [("José", "Müller"), ("Núñez", "Groß")]


def test_a_utf8_export_under_a_mapping_written_for_cp1252_is_read_by_its_mark(
    tmp_path: Path,
) -> None:
    """A system that now exports UTF-8 with a byte-order mark, under a mapping written for its
    old cp1252 exports: every accent was read as two or three cp1252 letters (``JÃ¼rgen``),
    silently, and no name with one matched again. The mark says UTF-8, as a UTF-16 one says
    UTF-16; without it the mapping's encoding is what is read."""
    text = "ID,Surname,Given,category\n1,Müller,Jürgen,other\n2,O’Brien,Séan,other\n"
    cp1252 = {**MAPPING, "encoding": "cp1252"}
    result = load_csv(_write(tmp_path, b"\xef\xbb\xbf" + text.encode()), mapping=cp1252)
    assert _names(result) == [("Jürgen", "Müller"), ("Séan", "O’Brien")]
    assert _names(load_csv(_write(tmp_path, text.encode("cp1252")), mapping=cp1252)) == _names(
        result
    )
    # a mark that lies (a UTF-8 header over a cp1252 body) is said to be the trouble
    mixed = b"\xef\xbb\xbf" + text.encode("cp1252")
    with pytest.raises(LoadError, match=r"line 2\).*starts with a UTF-8 byte-order mark"):
        load_csv(_write(tmp_path, mixed), mapping=cp1252)


def test_the_rejects_file_of_a_cp1252_export_loads_again_with_its_mapping(
    tmp_path: Path,
) -> None:
    """docs/loading.md: a corrected rejects file loads again as it is, with the input's
    mapping. It is written in UTF-8, which the input's mapping (cp1252) read as cp1252: the
    accents garbled, or a header with one no longer found. It starts with a byte-order mark
    now, which the loader reads as UTF-8 whatever the mapping says."""
    mapping = {
        "columns": {
            "ID": "record_id",
            "Nom": "family_name",
            "Prénom": "given_name",
            "Né le": "birth_date",
        },
        "category": "other",
        "date_order": "DMY",
        "encoding": "cp1252",
        "delimiter": ";",
    }
    text = "ID;Nom;Prénom;Né le\r\n1;Müller;Jürgen;03/04/1980\r\n2;Lefèvre;Zoé;31/31/1980\r\n"
    path = _write(tmp_path, text.encode("cp1252"))
    result = load_csv(path, mapping=mapping, bad_field="reject-row")
    assert _names(result) == [("Jürgen", "Müller")]
    rejects = tmp_path / "list.rejects.csv"
    assert rejects.read_bytes().startswith(b"\xef\xbb\xbf")
    fixed = tmp_path / "fixed.csv"
    fixed.write_bytes(rejects.read_bytes().replace(b"31/31/1980", b"13/12/1980"))
    again = load_csv(fixed, mapping=mapping)
    assert _names(again) == [("Zoé", "Lefèvre")]
    born = again.records[0].birth_date
    assert born is not None and (born.year, born.month, born.day) == (1980, 12, 13)


def test_the_rejects_file_of_an_export_with_empty_trailing_columns_loads_again(
    tmp_path: Path,
) -> None:
    """A spreadsheet's empty columns after the last named one are no columns; the rejects file
    put ``xlink_error`` after them, where they were columns without a name in the middle, and
    it could not be loaded again ("column 5 has no name")."""
    path = _write(tmp_path, b"ID,Surname,Given,Cat,,\n1,Kim,Bo,other,,\n2,Lee,Ann,watchlst,,\n")
    mapping = {**MAPPING, "columns": {**MAPPING["columns"], "Cat": "category"}}
    assert _names(load_csv(path, mapping=mapping)) == [("Bo", "Kim")]
    rejects = (tmp_path / "list.rejects.csv").read_text()
    assert rejects.splitlines()[0] == "ID,Surname,Given,Cat,xlink_error,,"
    fixed = tmp_path / "fixed.csv"
    fixed.write_text(rejects.replace("watchlst", "other"))
    assert _names(load_csv(fixed, mapping=mapping)) == [("Ann", "Lee")]


def test_a_spreadsheets_sep_line_is_read_as_the_delimiter_it_names(tmp_path: Path) -> None:
    """Excel writes ``sep=;`` as the first line of a CSV it means to read back: it was taken
    for the header ("missing required columns", no word of line 1)."""
    data = b"sep=;\r\nID;Surname;Given;category\r\n1;Smith;Ann;other\r\n2;Roe;Bo\r\n"
    path = _write(tmp_path, data)
    result = load_csv(path, mapping={**MAPPING, "delimiter": ";"})
    assert _names(result) == [("Ann", "Smith")]
    assert [r.line for r in result.rejects] == [4]  # lines count the sep= line
    with pytest.raises(LoadError, match=r"line 1 is a spreadsheet's sep= line.*';'.*','"):
        load_csv(path, mapping=MAPPING)


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be"])
def test_a_unicode_text_export_is_read_by_its_byte_order_mark(tmp_path: Path, codec: str) -> None:
    text = "ID\tSurname\tGiven\tcategory\r\n1\tMüller\tJosé\tother\r\n"
    data = text.encode(codec)
    if codec != "utf-16":  # the plain codec writes its own mark
        data = ("\ufeff" + text).encode(codec)
    result = load_csv(_write(tmp_path, data), mapping={**MAPPING, "delimiter": "\t"})
    assert _names(result) == [("José", "Müller")]


def test_another_delimiter_is_named_when_the_mapping_does_not_say_it(tmp_path: Path) -> None:
    path = _write(tmp_path, b"ID;Surname;Given;category\n1;Smith;Ann;other\n")
    with pytest.raises(LoadError, match=r"read as one column holding ';'.*delimiter setting"):
        load_csv(path, mapping=MAPPING)
    assert _names(load_csv(path, mapping={**MAPPING, "delimiter": ";"})) == [("Ann", "Smith")]


def test_a_tsv_file_is_read_with_tabs_unless_the_mapping_says_otherwise(tmp_path: Path) -> None:
    """A ``.tsv`` file was read with commas like any other (every row one column: "missing
    required columns"), though its name says tabs. Its rejects file keeps the tabs."""
    path = tmp_path / "list.tsv"
    path.write_bytes(b"ID\tSurname\tGiven\tcategory\n1\tSmith, Jr\tAnn\tother\n2\tRoe\tBo\n")
    result = load_csv(path, mapping=MAPPING)
    assert _names(result) == [("Ann", "Smith, Jr")]
    rejects = tmp_path / "list.rejects.tsv"
    rejects.write_text(rejects.read_text().replace("Bo\t\t", "Bo\tother\t"))
    assert _names(load_csv(rejects, mapping=MAPPING)) == [("Bo", "Roe")]  # fixed, loads again
    with pytest.raises(LoadError, match="read as one column"):  # the mapping's word is kept
        load_csv(path, mapping={**MAPPING, "delimiter": ","})
    comma = tmp_path / "commas.tsv"
    comma.write_bytes(b"ID,Surname,Given,category\n1,Smith,Ann,other\n")
    assert _names(load_csv(comma, mapping={**MAPPING, "delimiter": ","})) == [("Ann", "Smith")]
    assert _names(load_csv(_write(tmp_path, comma.read_bytes()), mapping=MAPPING)) == [
        ("Ann", "Smith")
    ]  # .csv: commas, as before


@pytest.mark.parametrize(
    ("above", "header_line"),
    [
        (b"Watchlist export 2026-12-01\n", 2),
        (b"Watchlist export,,,\nrun by: ops\n\n", 4),
        (b'Watchlist export\nnote,"draft"v2\n', 3),  # a line the csv module cannot read
    ],
)
def test_a_title_above_the_header_is_named_with_the_line_that_reads_as_one(
    tmp_path: Path, above: bytes, header_line: int
) -> None:
    """A title or a note above the header was read as the header ("missing required columns",
    or "column 2 has no name"), the message naming neither line. It names both now; the
    title is never skipped by a guess."""
    path = _write(tmp_path, above + b"ID,Surname,Given,category\n1,Smith,Ann,other\n")
    with pytest.raises(
        LoadError,
        match=rf"line 1 was read as the header, but line {header_line} reads as one: remove",
    ):
        load_csv(path, mapping=MAPPING)
    with pytest.raises(LoadError, match=r"line 3 was read as the header$"):
        load_csv(_write(tmp_path, b"\n\nWatchlist export\nnot,a,header\n"), mapping=MAPPING)
    with pytest.raises(LoadError) as refused:  # no header below: as before
        load_csv(_write(tmp_path, b"Watchlist export\nnot,a,header\n"), mapping=MAPPING)
    assert "was read as the header" not in str(refused.value)


def test_a_header_in_other_case_and_spacing_matches_the_mapping(tmp_path: Path) -> None:
    path = _write(tmp_path, b"id,SURNAME, given ,category,Remarks\n1,Smith,Ann,other,x\n")
    result = load_csv(path, mapping=MAPPING)
    assert _names(result) == [("Ann", "Smith")]
    assert dict(result.records[0].payload) == {"Remarks": "x"}


def test_a_column_the_mapping_does_not_name_is_not_matched_to_a_field_by_case(
    tmp_path: Path,
) -> None:
    """Only the mapping's own names match case aside: an export's own ``Category`` or
    ``Country`` column beside a mapping's constant category stays in the payload, as before
    (matched to ``category``, it overrode the constant and rejected every row)."""
    text = b"ID,Surname,Category,Country\n1,Smith,Visitor,FR\n"
    result = load_csv(_write(tmp_path, text), mapping={**MAPPING, "category": "traveller"})
    assert _names(result) == [("", "Smith")]
    assert dict(result.records[0].payload) == {"Category": "Visitor", "Country": "FR"}


def test_two_columns_that_differ_by_case_only_are_refused_not_guessed(tmp_path: Path) -> None:
    path = _write(tmp_path, b"ID,Surname,SURNAME,category\n1,Smith,Jones,other\n")
    with pytest.raises(LoadError, match="duplicate column names: Surname"):
        load_csv(path, mapping=MAPPING)


@pytest.mark.parametrize(
    "setting", [{"encoding": "utf-16"}, {"encoding": "nope"}, {"delimiter": ":"}]
)
def test_bad_encoding_or_delimiter_settings_are_refused(setting: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"mapping '(encoding|delimiter)'"):
        load_csv("unused.csv", mapping={**MAPPING, **setting})


def test_lines_ended_by_carriage_returns_alone_are_lines(tmp_path: Path) -> None:
    """An old Mac export ends its lines in ``\\r`` alone: the csv module's advice ("open the
    file in universal-newline mode") was the whole error."""
    text = b'ID,Surname,Given,category\r1,Smith,"Ann\rMarie",other\r2,Roe,Bo,other'
    path = _write(tmp_path, text)
    result = load_csv(path, mapping=MAPPING)
    assert _names(result) == [("Ann\rMarie", "Smith"), ("Bo", "Roe")]
    assert [r.record_id for r in result.records] == ["1", "2"]


def test_a_line_feed_inside_a_cell_of_a_mac_export_is_part_of_the_cell(tmp_path: Path) -> None:
    """Excel for the Mac ends rows in ``\r`` and writes a line break inside a cell as ``\n``,
    in quotes: one such cell in the file's first 8 KiB made it read as line-feed ended, and
    the whole file was refused at line 1 with the csv module's advice. A file that ends its
    lines in ``\n`` and has a ``\r`` inside a cell is still read by its line feeds."""
    rows = [b'1,Smith,"Ann\nMarie\nJo",other', b"2,Roe,Bo,other", b"3,Poe,Al,other"]
    path = _write(tmp_path, b"\r".join([b"ID,Surname,Given,category", *rows]) + b"\r")
    result = load_csv(path, mapping=MAPPING)
    assert _names(result) == [("Ann\nMarie\nJo", "Smith"), ("Bo", "Roe"), ("Al", "Poe")]
    assert [r.record_id for r in result.records] == ["1", "2", "3"]
    # a file of line feeds with more carriage returns than them, all inside quoted values
    unix = b'ID,Surname,Given,category\n1,Smith,"A\rn\rn\ra\rb",other\n2,Roe,Bo,other\n'
    assert _names(load_csv(_write(tmp_path, unix), mapping=MAPPING)) == [
        ("A\rn\rn\ra\rb", "Smith"),
        ("Bo", "Roe"),
    ]


_PREFIXES = st.sampled_from(
    [b"", b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"ID,Surname,category\r", b"ID;Surname\n"]
)


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
@settings(max_examples=150, deadline=None)
@given(
    prefix=_PREFIXES,
    body=st.binary(max_size=400),
    encoding=st.sampled_from(["utf-8", "cp1252", "latin-1", "utf-8-sig"]),
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
)
def test_any_bytes_load_or_raise_a_load_error(
    tmp_path_factory: pytest.TempPathFactory,
    prefix: bytes,
    body: bytes,
    encoding: str,
    delimiter: str,
) -> None:
    """Any file, in any encoding and delimiter a mapping may name, gives records and rejects
    or a LoadError: no other exception (the UTF-16 and carriage-return readers included)."""
    path = tmp_path_factory.mktemp("fuzz") / "list.csv"
    path.write_bytes(prefix + body)
    mapping = {**MAPPING, "encoding": encoding, "delimiter": delimiter, "category": "other"}
    try:
        result = load_csv(path, mapping=mapping, write_rejects=False)
    except LoadError:
        return
    assert result.total == len(result.records) + len(result.rejects)


def test_a_placeholder_date_of_birth_is_left_out_not_read(tmp_path: Path) -> None:
    """``1900-01-01`` (or a spreadsheet's day zero) is how many systems write "unknown": it was
    read as a date, and two strangers so written agreed on their date of birth. Left out with
    a field error (nothing of it kept, not even the year); the record stays."""
    mapping = {**MAPPING, "columns": {**MAPPING["columns"], "DOB": "birth_date"}}
    text = (
        "ID,Surname,Given,DOB,category\n1,Smith,Ann,1900-01-01,other\n"
        "2,Roe,Bo,01/01/1900,other\n3,Poe,Cy,1899-12-30,other\n4,Doe,Di,1900-01-02,other\n"
        # read the other way round, or mended, it is still the placeholder: nothing kept
        "5,Loe,Ed,12/31/1899,other\n6,Moe,Flo,1900-01-0l,other\n"
    )
    result = load_csv(_write(tmp_path, text.encode()), mapping={**mapping, "date_order": "DMY"})
    born = [r.birth_date for r in result.records]
    assert [b is None for b in born] == [True, True, True, False, True, True]
    assert born[3] is not None and (born[3].year, born[3].month, born[3].day) == (1900, 1, 2)
    errors = (tmp_path / "list.field-errors.csv").read_text().splitlines()[1:]
    assert len(errors) == 5 and sum("placeholder date" in e for e in errors) == 3


def test_a_spreadsheets_text_guard_is_read_as_the_text_it_guards(tmp_path: Path) -> None:
    """Excel keeps leading zeros by writing ``="00123"``: the id was ``="00123"`` (another
    id than the partner's or the truth file's ``00123``), and a date so guarded a field
    error."""
    mapping = {**MAPPING, "columns": {**MAPPING["columns"], "DOB": "birth_date"}}
    text = 'ID,Surname,Given,DOB,category\n="00123",Smith,"=""Ann""",="1980-04-03",other\n'
    result = load_csv(_write(tmp_path, text.encode()), mapping=mapping)
    (record,) = result.records
    assert record.record_id == "00123"
    assert record.birth_date is not None and record.birth_date.year == 1980
    assert _names(result) == [("Ann", "Smith")]  # quoted, as some programs write it


def test_a_guarded_header_and_a_guarded_blank_row_are_read_as_what_they_guard(
    tmp_path: Path,
) -> None:
    """An export that guards every cell guards the header's and a blank row's too: the
    header was left guarded ("missing required columns") and a row of ``=""`` cells was a
    reject (``="" `` holds no value: it is a blank row, skipped as one)."""
    text = (
        '="ID",="Surname",="Given",="category"\n'
        '="00123",="Smith",="Ann",="other"\n'
        '="",="",="",=""\n'
        '="00124",="Roe",="Bo",="other"\n'
    )
    path = _write(tmp_path, text.encode())
    result = load_csv(path, mapping=MAPPING)
    assert [r.record_id for r in result.records] == ["00123", "00124"]
    assert _names(result) == [("Ann", "Smith"), ("Bo", "Roe")]
    assert result.rejects == ()
    # the rejects file keeps the header as written, as it keeps the rows
    path.write_text(text + '="00125",="Poe",="Cy",="felon"\n')
    load_csv(path, mapping=MAPPING)
    assert (tmp_path / "list.rejects.csv").read_text().startswith('"=""ID""",')


@pytest.mark.parametrize(
    ("cell", "read"),
    [
        ('="00123"', "00123"),
        (' ="00123" ', "00123"),
        ('\u200b="00123"', "00123"),  # invisible padding, as the loaders strip it
        ('="say ""hi"""', 'say "hi"'),
        ('="A"&"B"', '="A"&"B"'),  # a formula of two strings: not a guard
        ('="', '="'),
        ("=SUM(A1)", "=SUM(A1)"),
        ("Smith", "Smith"),
    ],
)
def test_only_a_guard_of_one_string_is_unwrapped(cell: str, read: str) -> None:
    assert unguard(cell) == read


@pytest.mark.parametrize("start", [b"PK\x03\x04", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"])
def test_a_workbook_saved_under_a_csv_name_is_named(tmp_path: Path, start: bytes) -> None:
    """An .xlsx (a zip) or an .xls renamed .csv was told to set the mapping's encoding."""
    with pytest.raises(LoadError, match="a spreadsheet workbook, not text: save it as CSV"):
        load_csv(_write(tmp_path, start + bytes(range(256)) * 4), mapping=MAPPING)


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (gzip.compress(b"ID,Surname,category\n1,Smith,other\n"), "a gzip-compressed file"),
        ("ID,Surname,category\n1,Smith,other\n".encode("utf-16-le"), "every other byte is zero"),
        ("ID,Surname,category\n1,Smith,other\n".encode("utf-16-be"), "every other byte is zero"),
    ],
)
def test_a_compressed_or_unmarked_utf16_file_is_named(
    tmp_path: Path, data: bytes, said: str
) -> None:
    """A gzip file was told to set the mapping's encoding; UTF-16 without its byte-order mark
    got a missing-columns error that suggested the mapping entry ``"I\\u0000D\\u0000"``."""
    for load, name in ((load_csv, "list.csv"), (load_jsonl, "list.jsonl")):
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(LoadError, match=said):
            load(path, mapping=MAPPING)


def test_a_date_of_birth_after_the_load_is_left_out_not_read(tmp_path: Path) -> None:
    """``2089-03-04`` for 1989 (a mistyped year) was read as a date of birth decades ahead, and
    its month and day agreed with strangers'. Given the load's date, a date of birth more than a
    day after it is a field error of which nothing is kept (not even the year); a partial date
    is after it only when all of it is, an ambiguous one only when both orders are."""
    mapping = {**MAPPING, "columns": {**MAPPING["columns"], "DOB": "birth_date"}}
    text = (
        "ID,Surname,Given,DOB,category\n"
        "1,Smith,Ann,2089-03-04,other\n"  # decades ahead
        "2,Roe,Bo,2026-12-07,other\n"  # the day after: UTC's day may not have begun
        "3,Poe,Cy,2026-12-08,other\n"  # two days after
        "4,Doe,Di,2027,other\n"  # a year not yet begun
        "5,Loe,Ed,2026-12,other\n"  # the month of the load
        "6,Moe,Flo,12/11/2026,other\n"  # 12 November or 11 December: one reading is past
        "7,Noe,Gus,2026-12-06,other\n"  # born on the day of the load
        "8,Ode,Hal,1989-03-04,other\n"
    )
    path = _write(tmp_path, text.encode())
    result = load_csv(path, mapping=mapping, today=date(2026, 12, 6))
    born = {r.record_id: r.birth_date for r in result.records}
    assert len(born) == 8, "a date of birth too late is left out, the record kept"
    assert [i for i, b in born.items() if b is None] == ["1", "3", "4"]
    errors = (tmp_path / "list.field-errors.csv").read_text().splitlines()[1:]
    reason = "a date of birth after the date of the load"
    assert errors == [f"{line},DOB,{reason}" for line in (2, 4, 5)]
    # without the load's date, nothing is too late (the loaders read no clock)
    assert all(r.birth_date is not None for r in load_csv(path, mapping=mapping).records)
    # and under REJECT_ROW the row goes to the rejects file, as any other bad value
    strict = load_csv(path, mapping=mapping, today=date(2026, 12, 6), bad_field="reject-row")
    assert [r.line for r in strict.rejects] == [2, 4, 5]


@pytest.mark.parametrize(
    ("text", "order"),
    [("2089-02-30", "YMD"), ("2O89-03-04", "YMD"), ("12/31/2089", "DMY"), ("04/03/89", "MDY")],
)
def test_nothing_is_salvaged_of_a_date_of_birth_after_the_load(text: str, order: str) -> None:
    """A date refused for another reason, or mended, or read the other way round, is still
    after the load: nothing of it is kept (``2089-02-30`` kept ``2089-02``); a two-digit year
    is read no later than the load's year (``89`` under ``two_digit_years_until`` 2090, on a
    load in 2026, is 1989)."""
    row = {"record_id": "1", "category": "other", "family_name": "Roe", "birth_date": text}
    checked = check_row(row, 2, date_order=order, two_digit_years_until=2090, today=TODAY)
    assert checked.record is not None
    born = checked.record.birth_date
    if text == "04/03/89":
        assert born is not None and (born.year, born.month, born.day) == (1989, 4, 3)
        return
    assert born is None  # its first refusal's reason, and nothing said kept
    (error,) = checked.errors
    assert error.field == "birth_date" and "readable" not in error.reason


def test_a_dataframe_of_rejects_keeps_them_in_the_refusal() -> None:
    """A DataFrame has no rejects file: the refusal carries every reject, as the result did."""
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(
        {"record_id": ["1", "2"], "category": ["felon", "felon"], "family_name": ["Smith", "Roe"]}
    )
    with pytest.raises(NothingLoaded) as nothing:
        load_dataframe(frame)
    assert [r.line for r in nothing.value.rejects] == [1, 2]
    assert nothing.value.rejects_path is None and "Smith" not in repr(nothing.value)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_file_of_which_no_row_loads_is_an_error_not_an_empty_side(
    tmp_path: Path, suffix: str
) -> None:
    """A file whose every row is rejected (the wrong mapping, a category not xlink's) loaded as
    nothing and ``xlink prepare`` exited 0, where a header without rows exits 3: the partner
    was then matched against an empty list. Refused, naming the first reject's line, field and
    reason, after the rejects file is written for the rest."""
    if suffix == ".csv":
        data = "ID,Surname,Given,category\n1,Smith,Ann,felon\n2,Roe,Bo,felon\n"
    else:
        data = '{"ID": "1", "Surname": "Smith", "category": "x"}\n{"ID": "2", "category": "x"}\n'
    path = tmp_path / f"list{suffix}"
    path.write_text(data)
    with pytest.raises(NothingLoaded, match=r"every row \(2\) was rejected") as e:
        load_csv(path, mapping=MAPPING) if suffix == ".csv" else load_jsonl(path, mapping=MAPPING)
    first = 2 if suffix == ".csv" else 1  # JSON Lines have no header line
    assert [(x.line, x.field) for x in e.value.errors] == [(first, "category")]
    assert f"line {first}, field 'category': " in str(e.value)
    rejects = tmp_path / f"list.rejects{suffix}"
    assert e.value.rejects_path == str(rejects) and str(rejects) in str(e.value)
    assert len(rejects.read_text().splitlines()) >= 2
    assert "Smith" not in str(e.value)  # a reason never quotes a value


def test_every_file_of_a_side_is_loaded_before_one_that_loads_nothing_stops_it(
    tmp_path: Path,
) -> None:
    """``prepare_side`` stopped at the first file of which no row loaded: the files after it
    were not checked (fixed one per run) and kept a stale field-errors file from an earlier
    run. Every file is loaded and its rejects written; the refusal names the others."""
    header = "ID,Surname,Given,category\n"
    files = []
    for name, body in (("a", "1,Smith,Ann,other\n"), ("b", "2,Roe,Bo,felon\n"), ("c", "")):
        path = tmp_path / f"{name}.csv"
        path.write_text(header + (body or "3,Poe,Cy,felon\n4,Doe,Di,felon\n"))
        files.append(path)
    stale = tmp_path / "c.field-errors.csv"
    stale.write_text("line,field,reason\n9,DOB,impossible date\n")
    with pytest.raises(NothingLoaded) as nothing:
        prepare_side(files, mappings=[json_mapping(tmp_path)] * 3)
    assert nothing.value.source == str(files[1]) and nothing.value.others == (str(files[2]),)
    assert f"(also refused: {files[2]})" in str(nothing.value)
    assert (tmp_path / "c.rejects.csv").is_file() and not stale.exists()
    # a file that cannot be read at all is named too, in its place
    missing = tmp_path / "gone.csv"
    with pytest.raises(LoadError) as cannot:
        prepare_side([missing, *files], mappings=[json_mapping(tmp_path)] * 4)
    assert type(cannot.value) is LoadError and "file not found" in str(cannot.value)
    assert cannot.value.others == (str(files[1]), str(files[2]))


def json_mapping(tmp_path: Path) -> Path:
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps(MAPPING))
    return path
