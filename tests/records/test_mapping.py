"""Column mappings that combine columns into one field, and date orders per date field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xlink.errors import LoadError, NothingLoaded
from xlink.records import ColumnMapping, PersonRecord, load_csv, load_jsonl
from xlink.records.validation import DateOrder, validate_row

COMBINED = {
    "columns": {"pid": "record_id"},
    "category": "traveller",
    "combine": {
        "address": ["street_no", "street", "unit"],
        "given_name": ["first", "middle"],
    },
}
COMBINED_TOML = """\
category = "traveller"

[columns]
pid = "record_id"

[combine]
address = ["street_no", "street", "unit"]
given_name = ["first", "middle"]
"""
CSV = (
    "pid,surname,first,middle,street_no,street,unit,city\n"
    "1,Haddad,Omar, Khalil ,12,Rue Principale,,Montréal\n"
    "2,Li,,,,Main St,Apt 3,\n"
)


def write(tmp_path: Path, text: str, name: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_combine_joins_non_empty_parts_with_one_space(tmp_path: Path) -> None:
    path = write(tmp_path, CSV.replace("surname", "family_name"), "in.csv")
    json_map = write(tmp_path, json.dumps(COMBINED), "m.json")
    toml_map = write(tmp_path, COMBINED_TOML, "m.toml")
    for mapping in (COMBINED, json_map, toml_map, ColumnMapping.from_dict(COMBINED)):
        result = load_csv(path, mapping=mapping, write_rejects=False)
        assert result.rejects == () and result.field_errors == ()
        first, second = result.records
        assert first.name.given == "Omar Khalil"  # parts stripped
        assert first.addresses[0].lines == ("12 Rue Principale",)  # empty unit skipped
        assert second.name.given == ""  # every part empty: missing
        assert second.addresses[0].lines == ("Main St Apt 3",)
        # combined columns are used for nothing else: not in the payload
        assert dict(first.payload) == {"city": "Montréal"}


def test_combine_in_json_lines_and_errors_name_the_columns(tmp_path: Path) -> None:
    mapping = {"category": "other", "combine": {"sex": ["sex_a", "sex_b"]}}
    lines = [
        {"record_id": "1", "family_name": "A", "sex_a": "F"},
        {"record_id": "2", "family_name": "B", "sex_a": "F", "sex_b": "M"},
    ]
    path = write(tmp_path, "".join(json.dumps(x) + "\n" for x in lines), "in.jsonl")
    result = load_jsonl(path, mapping=mapping, write_rejects=False)
    assert [r.sex is not None for r in result.records] == [True, False]
    assert [(e.line, e.field) for e in result.field_errors] == [(2, "sex_a+sex_b")]


def test_a_field_claimed_by_a_column_and_a_combine_is_a_conflict(tmp_path: Path) -> None:
    mapping = {**COMBINED, "columns": {"pid": "record_id", "Given": "given_name"}}
    path = write(tmp_path, CSV.replace("surname", "Given"), "in.csv")
    with pytest.raises(
        LoadError, match="columns 'Given', 'first', 'middle' all map to 'given_name'"
    ):
        load_csv(path, mapping=mapping)
    # a column that keeps its own name claims it too
    path = write(tmp_path, CSV.replace("surname", "given_name"), "in.csv")
    with pytest.raises(LoadError, match="columns 'given_name', 'first', 'middle' all map to"):
        load_csv(path, mapping=COMBINED)
    # in JSON Lines the row is rejected, as for two keys mapped to one field
    line = {"pid": "1", "family_name": "A", "given_name": "B", "first": "C"}
    jsonl = write(tmp_path, json.dumps(line) + "\n", "in.jsonl")
    with pytest.raises(NothingLoaded) as nothing:  # its only row
        load_jsonl(jsonl, mapping=COMBINED, write_rejects=False)
    assert [e.field for e in nothing.value.errors] == ["<row>"]
    # a mapping that serves several exports: a combine's columns absent from the file are fine
    assert (
        load_csv(write(tmp_path, "pid,family_name\n1,A\n", "x.csv"), mapping=COMBINED).loaded == 1
    )


@pytest.mark.parametrize(
    ("combine", "columns", "message"),
    [
        (
            {"givenname": ["a", "b"]},
            {},
            "mapping targets are not canonical fields: 'a' + 'b' -> 'givenname'",
        ),
        (
            {"givenname": ["first"]},
            {"Surname": "surname"},
            "mapping targets are not canonical fields: 'Surname' -> 'surname', 'first' -> "
            "'givenname'",
        ),
        ({"given_name": []}, {}, "mapping 'combine' lists no columns for 'given_name'"),
        (
            {"given_name": ["first", "middle"]},
            {"middle": "middle_name"},
            "mapping columns combined and also mapped or combined elsewhere: 'middle'",
        ),
        (
            {"given_name": ["first"], "full_name": ["first", "last"]},
            {},
            "mapping columns combined and also mapped or combined elsewhere: 'first'",
        ),
    ],
)
def test_bad_combines(combine: dict[str, list[str]], columns: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError) as info:
        ColumnMapping.from_dict({"columns": columns, "combine": combine})
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            {"combine": {"given_name": "first middle"}},
            "mapping 'combine' must map field names to lists",
        ),
        ({"combine": ["given_name"]}, "mapping 'combine' must map field names to lists"),
        (
            {"date_orders": {"birth_date": 1}},
            "mapping 'date_orders' must map date fields to date orders",
        ),
        (
            {"date_orders": {"birth_date": "DDMM"}},
            "mapping 'date_orders' values must be one of DMY, MDY",
        ),
        (
            {"date_orders": {"arrival": "DMY"}},
            "mapping 'date_orders' names fields that are not date fields (birth_date, doc_expiry): "
            "'arrival'",
        ),
        ({"colums": {}, "combine": {}}, "unknown mapping settings: colums (did you mean columns?)"),
        # no setting named: a flat column table, unless a key is a setting misspelt
        (
            {"colums": {"ID": "record_id"}},
            "unknown mapping settings: colums (did you mean columns?)",
        ),
        (
            {"dateorder": "DMY", "Given": ["first"]},
            "unknown mapping settings: Given, dateorder (did you mean date_order?)",
        ),
        (
            {"two_digit_years_until": "2026"},
            "mapping 'two_digit_years_until' must be a year (an integer)",
        ),
        (
            {"two_digit_years_until": 1948},
            "mapping 'two_digit_years_until' must be a year from 1949 to 2200",
        ),
    ],
)
def test_bad_mapping_documents(doc: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as info:
        ColumnMapping.from_dict(doc)
    assert str(info.value).startswith(message)


def test_bad_mapping_file_is_a_load_error(tmp_path: Path) -> None:
    bad = write(tmp_path, '[combine]\ngiven_name = "first"\n', "m.toml")
    with pytest.raises(LoadError, match="'combine' must map field names to lists"):
        load_csv(write(tmp_path, CSV, "in.csv"), mapping=bad)


def test_old_documents_read_as_before() -> None:
    bare = ColumnMapping.from_dict({"Surname": "family_name"})
    assert dict(bare.columns) == {"Surname": "family_name"}
    assert dict(bare.combine) == {} and dict(bare.date_orders) == {}
    full = ColumnMapping.from_dict({"columns": {}, "date_order": "DMY", "category": "other"})
    assert full.date_order is DateOrder.DMY and dict(full.date_orders) == {}


# -- a date order per field ------------------------------------------------------------------

DATES_CSV = (
    "id,name,dob,expiry,doc_number\n1,A,03/04/1980,12/31/2030,N1\n2,B,2001-02-03,2030-01-31,N2\n"
)
DATES_MAPPING: dict[str, object] = {
    "columns": {"id": "record_id", "name": "family_name", "dob": "birth_date"},
    "combine": {"doc_expiry": ["expiry"]},  # a combine of one column: a rename
    "category": "other",
    "date_order": "DMY",
    "date_orders": {"doc_expiry": "MDY"},
}
DATES_TOML = """\
category = "other"
date_order = "DMY"

[columns]
id = "record_id"
name = "family_name"
dob = "birth_date"

[combine]
doc_expiry = ["expiry"]

[date_orders]
doc_expiry = "MDY"
"""


@pytest.mark.parametrize("form", ["dict", "json", "toml"])
def test_date_orders_override_the_file_date_order_per_field(tmp_path: Path, form: str) -> None:
    forms: dict[str, dict[str, object] | Path] = {
        "dict": DATES_MAPPING,
        "json": write(tmp_path, json.dumps(DATES_MAPPING), "m.json"),
        "toml": write(tmp_path, DATES_TOML, "m.toml"),
    }
    mapping = forms[form]
    path = write(tmp_path, DATES_CSV, "in.csv")
    result = load_csv(path, mapping=mapping, write_rejects=False)
    assert result.field_errors == () and result.rejects == ()
    first, second = result.records
    assert first.birth_date is not None and first.birth_date.isoformat() == "1980-04-03"  # DMY
    assert first.documents[0].expiry == "2030-12-31"  # MDY
    assert second.documents[0].expiry == "2030-01-31"  # ISO: read the same in any order
    # the date_order= argument replaces the file-wide order, not the per-field one
    again = load_csv(path, mapping=mapping, date_order="MDY", write_rejects=False)
    assert again.records[0].birth_date is not None
    assert again.records[0].birth_date.isoformat() == "1980-03-04"
    assert again.records[0].documents[0].expiry == "2030-12-31"
    # without the per-field order, 12/31/2030 is an impossible day-first date: left out
    plain = {k: v for k, v in DATES_MAPPING.items() if k != "date_orders"}
    result = load_csv(path, mapping=plain, write_rejects=False)
    assert [(e.line, e.field, e.reason) for e in result.field_errors] == [
        (2, "expiry", "impossible date")
    ]
    assert result.records[0].documents[0].expiry == ""


def test_validate_row_takes_date_orders() -> None:
    row = {
        "record_id": "1",
        "category": "other",
        "full_name": "A",
        "birth_date": "03/04/1980",
        "doc_number": "X1",
        "doc_expiry": "04/03/2030",
    }
    record = validate_row(row, 2, date_order="MDY", date_orders={"doc_expiry": "DMY"})
    assert isinstance(record, PersonRecord) and record.birth_date is not None
    assert record.birth_date.isoformat() == "1980-03-04"
    assert record.documents[0].expiry == "2030-03-04"
    with pytest.raises(ValueError, match="'arrival' is not one of birth_date, doc_expiry"):
        validate_row(row, 2, date_orders={"arrival": "DMY"})
    with pytest.raises(ValueError):
        validate_row(row, 2, date_orders={"birth_date": "DDMM"})


@pytest.mark.parametrize("form", ["json", "toml"])
def test_a_mapping_reads_two_digit_years_up_to_its_year(tmp_path: Path, form: str) -> None:
    csv_text = "id,name,dob\n1,A,03/04/80\n2,B,31/12/26\n3,C,2K/03/84\n"
    path = write(tmp_path, csv_text, "in.csv")
    base = {"columns": {"id": "record_id", "name": "family_name", "dob": "birth_date"}}
    settings = {**base, "category": "other", "date_order": "DMY"}
    toml = 'category = "other"\ndate_order = "DMY"\ntwo_digit_years_until = 2026\n'
    toml += '[columns]\nid = "record_id"\nname = "family_name"\ndob = "birth_date"\n'
    mapping = (
        write(tmp_path, json.dumps({**settings, "two_digit_years_until": 2026}), "m.json")
        if form == "json"
        else write(tmp_path, toml, "m.toml")
    )
    result = load_csv(path, mapping=mapping, write_rejects=False)
    dates = [r.birth_date.isoformat() if r.birth_date else None for r in result.records]
    assert dates == ["1980-04-03", "2026-12-31", "1984-03"]
    assert [(e.line, e.reason) for e in result.field_errors] == [
        (4, "unrecognised date format (its year and month are readable)")
    ]
    # without the setting, the records stay and their two-digit dates are field errors
    plain = load_csv(path, mapping=settings, write_rejects=False)
    assert [r.birth_date for r in plain.records] == [None, None, None]
    assert [e.reason for e in plain.field_errors][:2] == [
        "two-digit year, read only with the mapping's two_digit_years_until"
    ] * 2
