"""Files nobody here wrote, read as a partner's or an upstream system's export can be: each case
below lost records without a word, crashed with a traceback, or wrote a rejects file that would
not load again, before it was fixed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xlink.cli.main import main
from xlink.errors import LoadError
from xlink.evaluation.datasets import read_two_columns
from xlink.prepare import default_mapping_path
from xlink.records._mapping import MAX_MAPPING_BYTES, ColumnMapping
from xlink.records._missing import WHITESPACE
from xlink.records.loaders import load_csv, load_dataframe, load_jsonl
from xlink.records.model import BirthDate

HEADER = "record_id,category,family_name,given_name,offence\n"


def _ids(result: object) -> list[str]:
    return [r.record_id for r in result.records]  # type: ignore[attr-defined]


def _list(tmp_path: Path, rows: str) -> Path:
    """``list.csv`` under ``tmp_path``: :data:`HEADER`, then ``rows``."""
    path = tmp_path / "list.csv"
    path.write_text(HEADER + rows, encoding="utf-8")
    return path


def test_a_stray_quote_that_a_later_cell_closes_does_not_swallow_the_rows_between(
    tmp_path: Path,
) -> None:
    """``"Fraud`` opened a quote that the ``x"`` two rows down closed: the strict reader took the
    three lines for one row with the header's count of cells, and the two people in between
    were lost, their names in the first one's offence (a releasable field)."""
    path = _list(
        tmp_path,
        'A-1,watchlist,Bell,Stephanie,"Fraud\n'
        "A-2,watchlist,Nguyen,Huong,Smuggling\n"
        'A-3,watchlist,Mendoza,Teresa,x"\n'
        "A-4,watchlist,Holham,Robert,Firearms\n",
    )
    with pytest.raises(LoadError, match=r"line 2\): a quoted value .* holds whole rows"):
        load_csv(path)


def test_a_value_over_several_lines_is_still_one_value(tmp_path: Path) -> None:
    """What the stray-quote check must keep: a quoted value over lines, an address or a
    remark, with fewer delimiters than a row."""
    path = _list(
        tmp_path,
        'A-1,watchlist,Bell,Stephanie,"Fraud, then\nforgery, twice"\n'
        "A-2,watchlist,Nguyen,Huong,Smuggling\n",
    )
    result = load_csv(path)
    assert _ids(result) == ["A-1", "A-2"] and not result.rejects


def test_a_lone_surrogate_escape_in_json_lines_rejects_its_line(tmp_path: Path) -> None:
    """``"\\ud800x"`` is valid JSON and no text: the line was loaded (or, rejected for another
    reason, crashed the rejects file's writing with a traceback). Now the line is rejected as
    not Unicode text; an escaped pair (an emoji) is text, and loads."""
    path = tmp_path / "list.jsonl"
    lines = [
        {"record_id": "S-1", "category": "watchlist", "family_name": "Smith", "given_name": "A"},
        '{"record_id":"S-2","category":"bogus","family_name":"\\ud800x"}',
        '{"record_id":"S-3","category":"watchlist","family_name":"\\ud800","given_name":"B"}',
        '{"record_id":"S-4","category":"watchlist","family_name":"Sm\\ud83d\\ude00",'
        '"given_name":"C"}',
    ]
    path.write_text(
        "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n",
        encoding="utf-8",
    )
    result = load_jsonl(path, rejects_path=tmp_path / "rejects.jsonl")
    assert _ids(result) == ["S-1", "S-4"]
    assert {r.line for r in result.rejects} == {2, 3}
    assert all("not valid Unicode text" in e.reason for r in result.rejects for e in r.errors)
    assert (tmp_path / "rejects.jsonl").read_text(encoding="utf-8").count("xlink_raw") == 2


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_a_rejects_file_is_written_in_the_inputs_delimiter_and_loads_again(
    tmp_path: Path, delimiter: str
) -> None:
    """The rejects file of a ``;`` (or tab, or ``|``) file was written with commas, each row
    split again on the commas inside its values: it did not load again with the input's
    mapping, as a corrected rejects file must."""
    rows = [
        ["record_id", "category", "family_name", "given_name"],
        ["A-1", "watchlist", "Bell", "Stephanie"],
        ["A-2", "bogus, really", "Nguyen", "Huong, Thi"],
    ]
    path = tmp_path / "list.csv"
    path.write_text("".join(delimiter.join(r) + "\n" for r in rows), encoding="utf-8")
    mapping = {"delimiter": delimiter}
    rejects = tmp_path / "list.rejects.csv"
    result = load_csv(path, mapping=mapping, rejects_path=rejects)
    assert _ids(result) == ["A-1"] and len(result.rejects) == 1
    head, row = rejects.read_text(encoding="utf-8").splitlines()
    assert head.split(delimiter)[:4] == rows[0] and row.split(delimiter)[:4] == rows[2]
    corrected = rejects.read_text(encoding="utf-8").replace("bogus, really", "watchlist")
    rejects.write_text(corrected, encoding="utf-8")
    assert _ids(load_csv(rejects, mapping=mapping)) == ["A-2"]


def test_an_array_in_a_dataframe_cell_is_an_unsupported_value(tmp_path: Path) -> None:
    """A list column read by pandas (parquet, JSON) holds an array in each cell: ``.item()``
    raised a plain ValueError for it."""
    df = pd.DataFrame(
        {
            "record_id": ["A-1", "A-2"],
            "category": ["watchlist", "watchlist"],
            "family_name": ["Bell", "Nguyen"],
            "given_name": ["Stephanie", "Huong"],
            "aliases": [np.array(["Steph", "S."]), np.array(["Hoa"])],
        }
    )
    result = load_dataframe(df)
    assert _ids(result) == ["A-1", "A-2"]
    assert {(e.line, e.field) for e in result.field_errors} == {(1, "aliases"), (2, "aliases")}
    assert all("unsupported value type" in e.reason for e in result.field_errors)


def test_a_directory_given_as_the_list_is_an_input_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``xlink prepare .`` ended in a traceback (looking for ``.mapping.json`` beside a path
    with no name), where ``xlink prepare ..`` said what was wrong."""
    assert default_mapping_path(".") is None and default_mapping_path("/") is None
    monkeypatch.chdir(tmp_path)
    assert main(["prepare", "."]) == 3
    assert "Traceback" not in capsys.readouterr().err


def test_a_mapping_file_is_a_small_regular_file(tmp_path: Path) -> None:
    """``--mapping /dev/zero`` read without end (a MemoryError's traceback under a memory
    limit, a hang without one)."""
    with pytest.raises(LoadError, match="a mapping file must be a regular file"):
        ColumnMapping.from_file("/dev/zero")
    big = tmp_path / "big.mapping.json"
    big.write_text('{"columns": {}, "x": "' + "a" * MAX_MAPPING_BYTES + '"}', encoding="utf-8")
    with pytest.raises(LoadError, match=f"at most {MAX_MAPPING_BYTES} bytes"):
        ColumnMapping.from_file(big)


def test_a_name_of_punctuation_alone_is_no_name(tmp_path: Path) -> None:
    """``.`` for the given name and ``(-)`` for the family name name nobody: the record was
    kept without a word, with no name token, and a partner's record agreeing on its date of
    birth met it with nothing to tell them apart. It is rejected as a row with no name is."""
    path = _list(
        tmp_path,
        "A-1,watchlist,(-),.,Fraud\nA-2,watchlist,O'Neil,Al,Fraud\nA-3,watchlist,Li,,Fraud\n",
    )
    result = load_csv(path)
    assert _ids(result) == ["A-2", "A-3"]
    ((reject, errors),) = [(r.line, r.errors) for r in result.rejects]
    assert reject == 2 and [e.field for e in errors] == ["<name>"]


@pytest.mark.parametrize("padding", ["\u200b", "\ufeff", "\u200e", "\u2069", " \u200b "])
def test_invisible_characters_at_a_values_ends_are_padding(tmp_path: Path, padding: str) -> None:
    """A date copied from a web form with a zero-width space (or a mark of text direction)
    after it was an unrecognised date, its day lost; an id so padded was another id than the
    same id without it. Inside a value such characters stay (a Persian name's non-joiner)."""
    path = tmp_path / "list.csv"
    path.write_text(
        "record_id,category,family_name,given_name,birth_date\n"
        f"A-1{padding},watchlist,{padding}Mehr\u200cdad{padding},Ali,1980-04-03{padding}\n"
        f"A-1,watchlist,Bell,Stephanie,1975-05-06\n",
        encoding="utf-8",
    )
    result = load_csv(path)
    (record,) = result.records
    assert record.record_id == "A-1" and record.name.family == "Mehr\u200cdad"
    assert record.birth_date == BirthDate(1980, 4, 3) and not result.field_errors
    ((line, errors),) = [(r.line, r.errors) for r in result.rejects]
    assert line == 3 and "duplicate record_id" in errors[0].reason
    assert "once invisible characters at its ends are removed" in errors[0].reason


def test_each_item_of_a_list_loses_its_padding_too(tmp_path: Path) -> None:
    """``["FRA\u200b", "DEU"]`` was "nationality 1 is not an ISO 3166-1 alpha-3 code", and
    an alias or an address line kept its padding."""
    path = tmp_path / "list.jsonl"
    row = {
        "record_id": "A-1", "category": "watchlist", "family_name": "Bell",
        "nationalities": ["FRA\u200b", "\u200eDEU"], "aliases": ["Smith\u200b, Ann\u200f"],
        "address": ["1 Main St\u200b", "\ufeffFlat 2"],
    }  # fmt: skip
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    (record,) = load_jsonl(path).records
    assert record.nationalities == ("FRA", "DEU")
    assert (record.aliases[0].family, record.aliases[0].given) == ("Smith", "Ann")
    assert [a.lines for a in record.addresses] == [("1 Main St", "Flat 2")]


def test_the_truth_file_is_read_as_the_data_is(tmp_path: Path) -> None:
    """An evaluation's truth file copied from a padded export kept ``A1\u200b`` where the data
    now loads ``A1``: the true link was counted as missed."""
    path = tmp_path / "truth.csv"
    path.write_text("left,right\nA1\u200b,\ufeffB1\n", encoding="utf-8")
    assert read_two_columns(path, "true links") == [("A1", "B1")]


def test_the_padding_holds_every_whitespace_character() -> None:
    """``trim`` strips what ``str.strip()`` does, listed by hand so that one call strips both."""
    assert "".join(chr(c) for c in range(0x110000) if chr(c).isspace()) == WHITESPACE
