"""Garbled MOU documents and templates (bilateral and multilateral) raise only SchemaError:
"random bytes into any decoder raise only our own exception types"."""

from __future__ import annotations

import contextlib
import json
import tomllib
from pathlib import Path

import pytest
from _mou_support import good_document, good_json
from _mutations import DECODER_SETTINGS, mutated_json, mutated_text
from hypothesis import given
from hypothesis import strategies as st

from xlink.errors import SchemaError
from xlink.policy.document import parse_mou
from xlink.policy.multilateral import parse_multilateral
from xlink.policy.template import parse_mou_template, parse_multilateral_template

VECTORS = Path(__file__).parent / "vectors"
DATA = Path(__file__).resolve().parents[2] / "xlink" / "data" / "mou"
SIGNED = good_json(signed=True).encode()
MULTI_TOML = (VECTORS / "mou-multilateral-v1.toml").read_bytes()
MULTI = json.loads((VECTORS / "mou-multilateral-v1.canonical.json").read_bytes())
TEMPLATE = (DATA / "ca-us-demo.toml").read_bytes()
HUB_TEMPLATE = (DATA / "hub-demo.toml").read_bytes()


def _as_json(toml: bytes) -> object:
    """A TOML document as JSON would hold it (its dates as text)."""
    return json.loads(json.dumps(tomllib.loads(toml.decode()), default=str))


def test_a_match_threshold_beyond_any_float_is_a_schema_error() -> None:
    """``math.isfinite(10**400)`` raises OverflowError: it escaped the MOU validator."""
    doc = good_document(signed=True)
    doc["linkage"]["match_threshold"] = 10**400
    with pytest.raises(SchemaError, match="match_threshold: must be a finite number"):
        parse_mou(json.dumps(doc), "json")


@DECODER_SETTINGS
@given(st.binary(max_size=300), st.sampled_from(["json", "toml"]))
def test_random_bytes_raise_only_schema_errors(data: bytes, fmt: str) -> None:
    for parse in (parse_mou, parse_multilateral, parse_mou_template, parse_multilateral_template):
        with pytest.raises(SchemaError):
            parse(data, fmt)


@DECODER_SETTINGS
@given(mutated_json(json.loads(SIGNED)) | mutated_text(SIGNED))
def test_a_garbled_signed_mou_raises_only_schema_errors(data: bytes) -> None:
    with contextlib.suppress(SchemaError):
        parse_mou(data, "json")


@DECODER_SETTINGS
@given(mutated_json(MULTI))
def test_a_garbled_multilateral_mou_raises_only_schema_errors(data: bytes) -> None:
    with contextlib.suppress(SchemaError):
        parse_multilateral(data, "json")


@DECODER_SETTINGS
@given(mutated_text(MULTI_TOML))
def test_a_garbled_multilateral_toml_raises_only_schema_errors(data: bytes) -> None:
    with contextlib.suppress(SchemaError):
        parse_multilateral(data, "toml")


@DECODER_SETTINGS
@given(mutated_json(_as_json(TEMPLATE)) | mutated_text(TEMPLATE).map(lambda b: b"\x00" + b))
def test_a_garbled_template_raises_only_schema_errors(data: bytes) -> None:
    with contextlib.suppress(SchemaError):
        parse_mou_template(data, "json")
    with contextlib.suppress(SchemaError):
        parse_mou_template(data[1:], "toml")


@DECODER_SETTINGS
@given(mutated_json(_as_json(HUB_TEMPLATE)))
def test_a_garbled_multilateral_template_raises_only_schema_errors(data: bytes) -> None:
    with contextlib.suppress(SchemaError):
        parse_multilateral_template(data, "json")
