"""Configuration documents: every malformed input is a DocumentError, nothing else."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xlink.documents import (
    MAX_DOCUMENT_BYTES,
    MAX_TOML_KEY_PARTS,
    DocumentError,
    document_format,
    parse_document,
)
from xlink.errors import LoadError, SchemaError
from xlink.linkage.schema import load_schema, parse_schema
from xlink.records._mapping import ColumnMapping


@pytest.mark.parametrize(
    ("data", "fmt", "reason"),
    [
        ("[" * 100_000 + "]" * 100_000, "json", "nested too deeply"),
        ('{"id": ' + "9" * 5000 + "}", "json", "not valid JSON"),
        (b"\xff\xfe{}", "json", "not UTF-8"),
        ("{", "json", "not valid JSON: line 1"),
        ("a = ", "toml", "not valid TOML"),
        ("{}", "yaml", "unknown format"),
        (" " * (MAX_DOCUMENT_BYTES + 1), "json", "larger than"),
        ('{"id": "a", "id": "b"}', "json", "member 'id' given twice"),
        ('{"m": NaN}', "json", "NaN is not JSON"),
        ('{"format": "\ud800"}', "json", "not UTF-8"),  # a str that is no text
        ('a = "\udfff"', "toml", "not UTF-8"),
    ],
)
def test_malformed_documents_raise_document_error(data: str | bytes, fmt: str, reason: str) -> None:
    with pytest.raises(DocumentError) as exc:
        parse_document(data, fmt)
    assert reason in exc.value.reason


def test_byte_order_mark_is_accepted() -> None:
    assert parse_document(b'\xef\xbb\xbf{"a": 1}', "json") == {"a": 1}
    assert parse_document("\ufeffa = 1", "toml") == {"a": 1}


def test_format_comes_from_the_suffix() -> None:
    assert document_format("x.JSON") == "json"
    assert document_format("dir/x.toml") == "toml"
    with pytest.raises(DocumentError):
        document_format("x.yaml")


@given(st.binary(max_size=300), st.sampled_from(["json", "toml"]))
def test_random_bytes_raise_only_document_error(data: bytes, fmt: str) -> None:
    with contextlib.suppress(DocumentError):  # anything else fails the test
        parse_document(data, fmt)


def test_schema_and_mapping_loaders_turn_it_into_their_own_errors(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    deep = "[" * 50_000 + "]" * 50_000
    with pytest.raises(SchemaError, match="nested too deeply"):
        parse_schema(deep, "json")
    (tmp_path / "s.yaml").write_text("{}", encoding="utf-8")
    with pytest.raises(SchemaError, match="unknown file type"):
        load_schema(tmp_path / "s.yaml")
    (tmp_path / "m.json").write_text(deep, encoding="utf-8")
    with pytest.raises(LoadError, match="nested too deeply"):
        ColumnMapping.from_file(tmp_path / "m.json")


def test_a_toml_key_of_too_many_parts_is_refused_before_parsing() -> None:
    """A 1 MiB header ``[a.a.a...]`` held the TOML parser for minutes (quadratic in the
    parts): within the size limit, a partner's MOU could hold a reader that long."""
    deep = "[" + ".".join(["a"] * 60_000) + "]\nx = 1\n"
    with pytest.raises(DocumentError, match="line 1: a key of more than 64 parts"):
        parse_document(deep, "toml")  # refused before the parser runs, not after
    # nor inside an inline table, after a quoted part holding "=", or spaced out
    deep_part = ".".join(["a"] * 100)
    for hidden in (
        f"x = {{{deep_part} = 1}}",
        f'"=".{deep_part} = 1',
        deep_part.replace(".", " . ") + " = 1",
    ):
        with pytest.raises(DocumentError, match="a key of more than 64 parts"):
            parse_document(hidden, "toml")
    # a dotted key as deep as the limit allows still parses, and so does text with many dots
    ok = ".".join(["a"] * MAX_TOML_KEY_PARTS) + " = 1\n"
    prose = "The U.S.C. applies. Section 1. 2. 3. " * 40 + "(" + "x." * 63 + ")"
    hosts = ", ".join(f'"h{i}.border.example.gov.ca"' for i in range(200))
    assert parse_document(f'{ok}text = """{prose}\n{prose}"""\nhosts = [{hosts}]\n', "toml")
