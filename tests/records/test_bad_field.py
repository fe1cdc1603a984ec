"""The bad-field policy: under DROP_FIELD (the default) a bad value in a field a record may lack is
left out, the record kept and the error listed beside it; a row that cannot be a person record is
rejected under either policy; REJECT_ROW rejects every row with an error, as loaders always did."""

from __future__ import annotations

import csv
import gc
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xlink.errors import FieldError, LoadError, NothingLoaded
from xlink.prepare import load_records
from xlink.records import (
    BadFieldPolicy,
    BirthDate,
    HandlingCode,
    PersonRecord,
    load_csv,
    load_dataframe,
    load_jsonl,
)
from xlink.records.validation import NAME_PSEUDO_FIELD, ROW_FIELDS, check_row, validate_row

DROP, REJECT = BadFieldPolicy.DROP_FIELD, BadFieldPolicy.REJECT_ROW
GOOD = {"record_id": "CA-1", "category": "watchlist", "family_name": "Amin", "given_name": "Neha"}


def write_csv(tmp_path: Path, rows: list[dict[str, str]], name: str = "in.csv") -> Path:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    path = tmp_path / name
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, columns, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def load_one(tmp_path: Path, row: dict[str, str], **kwargs: object) -> tuple[PersonRecord, str]:
    """Load one row that must be kept; return it and its only field error as ``field: reason``."""
    result = load_csv(write_csv(tmp_path, [row]), write_rejects=False, **kwargs)  # type: ignore[arg-type]
    assert result.rejects == () and result.loaded == 1
    assert len(result.field_errors) == 1 and result.field_errors[0].line == 2
    return result.records[0], f"{result.field_errors[0].field}: {result.field_errors[0].reason}"


# -- a bad field is left out, the record kept ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "order", "reason", "kept"),
    [
        ("31/02/1980", "DMY", "impossible date (its year and month are readable)", "1980-02"),
        ("10/J7/1983", "DMY", "unrecognised date format (its year is readable)", "1983"),
        # day and month swapped: month 25 as the file's order reads it, 25 December the other way
        (
            "25/12/1980",
            "MDY",
            "impossible date (a date with day and month the other way round)",
            "1980-12-25",
        ),
        ("10/12/198M", "DMY", "unrecognised date format", None),
        (
            "10/12/198O",
            "DMY",
            "unrecognised date format (its date is readable: a letter read as the digit it looks"
            " like, or a doubled digit once)",
            "1980-12-10",
        ),
        ("1700", "unknown", "year out of range", None),
    ],
)
def test_a_bad_birth_date_keeps_what_is_readable(
    tmp_path: Path, text: str, order: str, reason: str, kept: str | None
) -> None:
    record, error = load_one(tmp_path, {**GOOD, "birth_date": text, "sex": "F"}, date_order=order)
    assert (record.birth_date and record.birth_date.isoformat()) == kept
    assert error == f"birth_date: {reason}"
    assert record.record_id == "CA-1" and record.name.family == "Amin"
    assert record.sex is not None  # the other fields are kept


def test_a_bad_sex_marker_is_left_out(tmp_path: Path) -> None:
    record, error = load_one(tmp_path, {**GOOD, "sex": "Q", "birth_date": "1980-04-03"})
    assert record.sex is None and record.birth_date is not None
    assert error.startswith("sex: ")


def test_bad_nationalities_and_aliases_are_left_out_whole(tmp_path: Path) -> None:
    record, error = load_one(tmp_path, {**GOOD, "nationalities": "CAN;CANADA"})
    assert record.nationalities == ()
    assert error == "nationalities: nationality 2 is not an ISO 3166-1 alpha-3 code"
    record, error = load_one(tmp_path, {**GOOD, "aliases": "A, B, C"})
    assert record.aliases == () and error == "aliases: alias 1 has more than one comma"


@pytest.mark.parametrize(
    ("fields", "expected", "error"),
    [
        # a bad type, country or expiry is left empty: the document stands on its number
        ({"doc_type": "PASSPORT"}, ("", "X1", "CAN", ""), "doc_type"),
        ({"doc_country": "CANADA"}, ("P", "X1", "", ""), "doc_country"),
        ({"doc_expiry": "31/02/2030"}, ("P", "X1", "CAN", ""), "doc_expiry"),
        # no number: no document
        ({"doc_number": ""}, None, "doc_number"),
    ],
)
def test_a_bad_document_field(
    tmp_path: Path, fields: dict[str, str], expected: tuple[str, ...] | None, error: str
) -> None:
    doc = {"doc_type": "P", "doc_number": "X1", "doc_country": "CAN", **fields}
    record, found = load_one(tmp_path, {**GOOD, **doc}, date_order="DMY")
    got = [(d.doc_type, d.number, d.issuing_country, d.expiry) for d in record.documents]
    assert got == ([expected] if expected else [])
    assert found.startswith(f"{error}: ")


def test_extra_documents_keep_what_stands(tmp_path: Path) -> None:
    docs = [
        {"doc_type": "P", "doc_number": "A1", "doc_country": "CANADA"},
        {"doc_type": "P", "doc_country": "CAN"},
        {},
        {"doc_number": "B2"},
    ]
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({**GOOD, "documents": docs}) + "\n", encoding="utf-8")
    result = load_jsonl(path, write_rejects=False)
    assert [(d.number, d.issuing_country) for d in result.records[0].documents] == [
        ("A1", ""),
        ("B2", ""),
    ]
    assert [e.field for e in result.field_errors] == [
        "documents[0].doc_country",
        "documents[1].doc_number",
        "documents[2]",
    ]


def test_address_and_source_keep_what_stands(tmp_path: Path) -> None:
    row = {**GOOD, "address": "12 Main St", "country": "CANADA"}
    record, error = load_one(tmp_path, row)
    assert record.addresses[0].lines == ("12 Main St",) and record.addresses[0].country == ""
    assert error.startswith("country: ")
    record, _ = load_one(tmp_path, {**GOOD, "country": "CANADA"})
    assert record.addresses == ()  # nothing left of the address
    row = {**GOOD, "source_id": "S-1", "grading": "2B", "handling_code": "C"}
    record, error = load_one(tmp_path, row)
    assert record.source is not None and record.source.source_id == "S-1"
    assert record.source.grading is not None and record.source.handling_code is None
    assert error == "handling_conditions: required when the handling code is C"
    record, error = load_one(tmp_path, {**GOOD, "grading": "9Z", "handling_code": "P"})
    assert record.source is not None and record.source.grading is None
    assert record.source.handling_code is HandlingCode.PERMITTED
    assert error.startswith("grading: ")


def test_errors_name_the_input_column_and_count_records(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        [
            {"ID": "1", "Surname": "A", "DOB": "31/02/1980", "Sex": "Q"},
            {"ID": "2", "Surname": "B", "DOB": "1980", "Sex": "F"},
        ],
    )
    mapping = {
        "columns": {"ID": "record_id", "Surname": "family_name", "DOB": "birth_date", "Sex": "sex"},
        "category": "traveller",
    }
    result = load_csv(path, mapping=mapping, date_order="DMY", write_rejects=False)
    assert [(e.line, e.field) for e in result.field_errors] == [(2, "DOB"), (2, "Sex")]
    assert result.with_field_errors == 1  # one record, two fields left out
    assert result.summary() == "loaded 2 (1 with bad fields left out), rejected 0"


# -- rows that cannot be person records are rejected whatever the policy ---------------------

UNNAMED = {**GOOD, "family_name": "", "given_name": " ", "birth_date": "31/02/1980"}


@pytest.mark.parametrize("policy", list(BadFieldPolicy))
@pytest.mark.parametrize(
    ("row", "fields"),
    [
        (UNNAMED, ["birth_date", NAME_PSEUDO_FIELD]),
        ({**GOOD, "record_id": " ", "birth_date": "31/02/1980"}, ["record_id", "birth_date"]),
        ({**GOOD, "category": "terrorist", "sex": "Q"}, ["category", "sex"]),
        ({**GOOD, "category": ""}, ["category"]),
    ],
)
def test_rows_without_id_category_or_name_are_rejected(
    tmp_path: Path, policy: BadFieldPolicy, row: dict[str, str], fields: list[str]
) -> None:
    with pytest.raises(NothingLoaded) as nothing:  # its only row: the file is refused
        load_csv(write_csv(tmp_path, [row]), bad_field=policy, date_order="DMY")
    assert nothing.value.rejected == 1
    assert sorted(e.field for e in nothing.value.errors) == sorted(fields)  # all reported


def test_an_unknown_category_is_not_replaced_by_the_mapping_constant(tmp_path: Path) -> None:
    path = write_csv(tmp_path, [{**GOOD, "category": "terrorist"}, {**GOOD, "record_id": "2"}])
    result = load_csv(path, mapping={"category": "traveller"}, write_rejects=False)
    assert [r.line for r in result.rejects] == [2]
    assert result.rejects[0].errors[0].field == "category"


def test_duplicate_ids_short_rows_and_bad_lines_are_still_rejected(tmp_path: Path) -> None:
    rows = [{**GOOD, "birth_date": "31/02/1980"}, {**GOOD, "given_name": "Other"}]
    path = write_csv(tmp_path, rows)
    path.write_text(path.read_text() + "CA-3,other\n", encoding="utf-8")
    result = load_csv(path, date_order="DMY", write_rejects=False)
    assert [r.line for r in result.rejects] == [3, 4]
    assert result.rejects[0].errors[0].reason == "duplicate record_id (first seen on line 2)"
    assert result.rejects[1].errors[0].field == "<row>"
    lines = ["{not json", json.dumps({**GOOD, "record_id": ["x"]}), json.dumps(GOOD)]
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = load_jsonl(jsonl, write_rejects=False)
    assert [(r.line, r.errors[0].field) for r in result.rejects] == [
        (1, "<line>"),
        (2, "record_id"),
    ]
    assert result.loaded == 1


# -- REJECT_ROW: the old behaviour -----------------------------------------------------------


def test_reject_row_rejects_every_row_with_an_error(tmp_path: Path) -> None:
    rows = [
        {**GOOD, "birth_date": "31/02/1980"},
        {**GOOD, "record_id": "2", "sex": "Q"},
        {**GOOD, "record_id": "3", "doc_type": "P", "doc_country": "CAN"},
        {**GOOD, "record_id": "4"},
    ]
    path = write_csv(tmp_path, rows)
    for policy in (REJECT, "reject-row"):
        result = load_csv(path, bad_field=policy, date_order="DMY", write_rejects=False)
        assert [r.record_id for r in result.records] == ["4"]
        assert [[e.field for e in r.errors] for r in result.rejects] == [
            ["birth_date"],
            ["sex"],
            ["doc_number"],
        ]
        assert result.field_errors == ()
    kept = load_csv(path, date_order="DMY", write_rejects=False)
    assert kept.loaded == 4 and [e.line for e in kept.field_errors] == [2, 3, 4]
    with pytest.raises(ValueError):
        load_csv(path, bad_field="drop")


def test_load_records_takes_the_policy(tmp_path: Path) -> None:
    path = write_csv(tmp_path, [{**GOOD, "birth_date": "31/02/1980"}])
    assert load_records(path, date_order="DMY").loaded == 1
    with pytest.raises(NothingLoaded) as nothing:
        load_records(path, date_order="DMY", bad_field="reject-row")
    assert nothing.value.rejected == 1


# -- the field-errors file -------------------------------------------------------------------

BAD_DATE = "10/J7/1983"


def test_field_errors_file_is_written_without_values_and_removed_when_clean(
    tmp_path: Path,
) -> None:
    rows = [
        {**GOOD, "birth_date": BAD_DATE},
        {**GOOD, "record_id": "CA-2", "sex": "Zhukovskaya"},
        {**GOOD, "record_id": ""},
    ]
    path = write_csv(tmp_path, rows)
    result = load_csv(path)
    target = tmp_path / "in.field-errors.csv"
    assert result.field_errors_path == target
    text = target.read_text(encoding="utf-8")
    assert list(csv.reader(text.splitlines())) == [
        ["line", "field", "reason"],
        ["2", "birth_date", "unrecognised date format (its year is readable)"],
        ["3", "sex", result.field_errors[1].reason],
    ]
    assert BAD_DATE not in text and "Zhukovskaya" not in text and "Amin" not in text
    assert result.summary() == (
        f"loaded 2 (2 with bad fields left out), rejected 1 (see rejects: "
        f"{tmp_path / 'in.rejects.csv'}; field errors: {target})"
    )
    assert target.stat().st_mode & 0o077 == 0  # owner-only, as the rejects file
    # a later load without field errors removes the stale file, as it does a rejects file
    clean = load_csv(write_csv(tmp_path, [GOOD]))
    assert clean.field_errors_path is None and clean.summary() == "loaded 1, rejected 0"
    assert not target.exists() and not (tmp_path / "in.rejects.csv").exists()
    # so does a load whose bad fields reject their rows (REJECT_ROW)
    path = write_csv(tmp_path, [*rows, {**GOOD, "record_id": "CA-9"}])
    load_csv(path)
    assert target.exists()
    assert load_csv(path, bad_field=REJECT).field_errors_path is None
    assert not target.exists()


def test_field_errors_file_goes_beside_the_rejects_file(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text(json.dumps({**GOOD, "birth_date": BAD_DATE}) + "\n", encoding="utf-8")
    result = load_jsonl(jsonl)
    assert result.field_errors_path == tmp_path / "in.field-errors.csv"  # CSV, whatever the input
    result = load_jsonl(jsonl, rejects_path=tmp_path / "out" / "in.rejects.jsonl")
    assert result.field_errors_path == tmp_path / "out" / "in.field-errors.csv"


def test_field_errors_path_may_not_be_the_input(tmp_path: Path) -> None:
    path = write_csv(tmp_path, [GOOD], name="x.field-errors.csv")
    with pytest.raises(ValueError, match="overwrite the input"):
        load_csv(path, rejects_path=tmp_path / "x.rejects.csv")


def test_dataframe_field_errors(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame([{**GOOD, "birth_date": BAD_DATE, "sex": object()}])
    result = load_dataframe(df)
    assert result.loaded == 1 and result.field_errors_path is None
    assert [(e.field, e.reason) for e in result.field_errors] == [
        ("sex", "unsupported value type"),
        ("birth_date", "unrecognised date format (its year is readable)"),
    ]
    result = load_dataframe(df, rejects_path=tmp_path / "df.rejects.csv")
    assert result.field_errors_path == tmp_path / "df.field-errors.csv"
    assert result.rejects_path is None


# -- the property ----------------------------------------------------------------------------

#: For each field, values that are good and values that are bad (the empty string: missing).
VALUES: dict[str, tuple[list[str], list[str]]] = {
    "record_id": (["CA-1"], ["", " "]),
    "category": (["watchlist", "Sex Offender"], ["", "terrorist"]),
    "given_name": (["Neha"], ["", " "]),
    "family_name": (["Amin"], [""]),
    "full_name": (["Wang Wei"], [""]),
    "aliases": (["Amin, N; N. Amin"], ["A, B, C", "ok; ,"]),
    "birth_date": (
        ["1980-04-03", "03/04/1980", "1980"],
        ["31/02/1980", "10/J7/1983", "12/25/1980", "1700"],
    ),
    "sex": (["F", "male"], ["Q"]),
    "nationalities": (["CAN; usa"], ["CANADA", "CAN;C"]),
    "doc_type": (["P"], ["PASSPORT"]),
    "doc_number": (["X1"], [""]),
    "doc_country": (["CAN"], ["CANADA"]),
    "doc_expiry": (["2030-01-01"], ["2030-02-30"]),
    "country": (["CAN"], ["CANADA"]),
    "grading": (["1A", "B2"], ["9Z"]),
    "handling_code": (["P"], ["Z", "C"]),
}
_NAMES = ("given_name", "family_name", "full_name")
#: What the loaders keep of each bad date of birth of VALUES, read day first.
READABLE = {
    "31/02/1980": BirthDate(1980, 2),
    "10/J7/1983": BirthDate(1983),
    "12/25/1980": BirthDate(1980, 12, 25),
    "1700": None,
}


@st.composite
def rows(draw: st.DrawFn) -> tuple[dict[str, str], set[str]]:
    """A row, and the fields given a bad (non-empty) value or left empty."""
    row: dict[str, str] = {}
    bad: set[str] = set()
    for name, (good, wrong) in VALUES.items():
        choice = draw(st.sampled_from(["absent", "good", "bad"]))
        if choice == "good":
            row[name] = draw(st.sampled_from(good))
        elif choice == "bad":
            row[name] = draw(st.sampled_from(wrong))
            bad.add(name)
    return row, bad


def _can_be_a_person(row: dict[str, str], bad: set[str]) -> bool:
    return (
        "record_id" in row
        and "record_id" not in bad
        and "category" in row
        and "category" not in bad
        and any(n in row and n not in bad for n in _NAMES)
    )


@given(rows())
def test_kept_iff_id_category_and_name(drawn: tuple[dict[str, str], set[str]]) -> None:
    row, bad = drawn
    dropped = check_row(row, 5, date_order="DMY")
    rejected = check_row(row, 5, date_order="DMY", bad_field=REJECT)
    assert (dropped.record is not None) == _can_be_a_person(row, bad)
    assert dropped.errors == rejected.errors  # the policy decides the verdict, not the errors
    assert (rejected.record is not None) == (rejected.errors == ())
    assert rejected.record == dropped.record or rejected.record is None
    legacy = validate_row(row, 5, date_order="DMY")
    assert legacy == (rejected.record if rejected.record is not None else rejected.errors)
    if dropped.record is not None:
        assert not {e.field for e in dropped.errors} & set(ROW_FIELDS)
        if "birth_date" in bad:  # what is readable of it (docs/loading.md, Dates)
            assert dropped.record.birth_date == READABLE[row["birth_date"]]
        if "sex" in bad:
            assert dropped.record.sex is None
        if "nationalities" in bad:
            assert dropped.record.nationalities == ()


@settings(max_examples=40, deadline=None)
@given(st.lists(rows(), min_size=1, max_size=4))
def test_loaders_keep_rows_iff_id_category_and_name(
    drawn: list[tuple[dict[str, str], set[str]]],
) -> None:
    lines = []
    for i, (row, _) in enumerate(drawn):
        if row.get("record_id", "").strip():
            row = {**row, "record_id": f"{row['record_id']}-{i}"}  # no duplicates
        lines.append(json.dumps(row))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "in.jsonl"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        dropped = _load_or_nothing(path, BadFieldPolicy.DROP_FIELD)
        rejected = _load_or_nothing(path, REJECT)
    kept = {n for n, (row, bad) in enumerate(drawn, start=1) if _can_be_a_person(row, bad)}
    every = set(range(1, len(drawn) + 1))
    assert dropped is not None or not kept  # refused whole only when no row is a person
    dropped_rejects, dropped_errors = dropped or (every, ())
    assert dropped_rejects == every - kept
    assert {e.line for e in dropped_errors} <= kept
    clean = kept - {e.line for e in dropped_errors}
    assert rejected is not None or not clean
    rejected_rejects, rejected_errors = rejected or (every, ())
    assert rejected_rejects == every - clean
    assert rejected_errors == ()
    assert all(isinstance(e, FieldError) for e in dropped_errors)


def _load_or_nothing(
    path: Path, policy: BadFieldPolicy
) -> tuple[set[int], tuple[FieldError, ...]] | None:
    """The lines rejected and the field errors of a load, or None when no row loaded."""
    try:
        result = load_jsonl(path, date_order="DMY", bad_field=policy, write_rejects=False)
    except NothingLoaded:
        return None
    return {r.line for r in result.rejects}, result.field_errors


@pytest.mark.parametrize("refused", [False, True])
def test_loading_pauses_the_garbage_collector_and_restores_it(
    tmp_path: Path, refused: bool
) -> None:
    """Loading makes records, not reference cycles: the collector, whose walks over the records
    loaded so far cost about a sixth of a large load, is paused while a file loads and on
    again afterwards, also when the loader refuses the file (xlink._gc)."""
    path = tmp_path / "people.csv"
    header = "category,given_name" if refused else "record_id,category,given_name"
    path.write_text(f"{header},family_name\nr1,watchlist,Anna,Novak\n", encoding="utf-8")
    seen: list[bool] = []
    was = gc.isenabled()
    gc.enable()
    try:
        if refused:  # no record_id column: refused inside the loader
            with pytest.raises(LoadError, match="record_id"):
                load_records(path, progress=lambda _n: seen.append(gc.isenabled()))
        else:  # through the loader itself too (an embedder calls it directly)
            load_records(path, progress=lambda _n: seen.append(gc.isenabled()))
            load_csv(path, progress=lambda _n: seen.append(gc.isenabled()))
            assert len(seen) >= 2 and not any(seen)
        assert gc.isenabled()
    finally:
        (gc.enable if was else gc.disable)()
