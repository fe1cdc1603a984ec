"""Garbled linkage schemas raise only SchemaError: "random bytes into any decoder raise only
our own exception types"."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from _mutations import DECODER_SETTINGS, mutated_json, mutated_text
from hypothesis import given
from hypothesis import strategies as st

from xlink.errors import SchemaError
from xlink.linkage.schema import parse_schema

SCHEMAS = Path(__file__).resolve().parents[2] / "xlink" / "data" / "schemas"
V7 = (SCHEMAS / "default-v7.json").read_bytes()
V3 = (SCHEMAS / "default-v3.json").read_bytes()


@pytest.mark.parametrize("member", ["threshold", "certain_threshold"])
def test_a_threshold_beyond_any_float_is_a_schema_error(member: str) -> None:
    """``math.isfinite(10**400)`` raises OverflowError: it escaped the schema validator."""
    doc = json.loads(V7)
    doc[member] = 10**400
    with pytest.raises(SchemaError):
        parse_schema(json.dumps(doc), "json")
    doc = json.loads(V7)
    doc["keys"][0]["weight"] = -(10**400)
    with pytest.raises(SchemaError):
        parse_schema(json.dumps(doc), "json")


@DECODER_SETTINGS
@given(mutated_json(json.loads(V7)) | mutated_json(json.loads(V3)) | mutated_text(V7))
def test_a_garbled_schema_raises_only_schema_errors(data: bytes) -> None:
    with contextlib.suppress(SchemaError):
        parse_schema(data, "json")


@DECODER_SETTINGS
@given(st.binary(max_size=300), st.sampled_from(["json", "toml", "yaml"]))
def test_random_bytes_raise_only_schema_errors(data: bytes, fmt: str) -> None:
    with pytest.raises(SchemaError):
        parse_schema(data, fmt)
