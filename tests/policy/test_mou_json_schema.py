"""protocols/schemas/mou-v1.json agrees with the Python validator (docs/mou.md §2)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from _mou_support import CA, good_document
from test_mou_validation import EXACT_ERRORS

from xlink.errors import SchemaError
from xlink.linkage.link_rule import LINK_CHOICES
from xlink.policy import mou_digest, mou_to_canonical, validate_signed_mou
from xlink.policy._validate import LINKS

SCHEMA_PATH = Path(__file__).parents[2] / "protocols" / "schemas" / "mou-v1.json"
SCHEMA = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
VALIDATOR = jsonschema.Draft202012Validator(
    SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)

# Checks a JSON Schema cannot express; the Python validator alone makes them (docs/mou.md §2).
PYTHON_ONLY = {
    "dates out of order",
    "impossible date",  # needs the date format checker: run below with it on
    "duplicate agency",
    "shared verify key",
    "category twice",
    "signature of a stranger",
    "small-order Ed25519 key",
    "low-order X25519 key",
    "date as a datetime",  # not JSON
    "threshold infinite",  # not JSON
    "lone surrogate",  # not encodable as UTF-8 JSON
    "max set size off the bucket",
    "budget below a bound",
}


def schema_errors(doc: object) -> list[str]:
    return [e.message for e in VALIDATOR.iter_errors(doc)]


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("signed", [False, True])
def test_the_sample_mou_validates(signed: bool) -> None:
    assert schema_errors(good_document(signed=signed)) == []


def test_the_worked_example_validates() -> None:
    from test_mou_document import VECTOR_TOML

    from xlink.policy import mou_to_document, parse_mou

    assert schema_errors(mou_to_document(parse_mou(VECTOR_TOML, "toml"))) == []


@pytest.mark.parametrize(
    "mutate",
    [pytest.param(m, id=n) for n, m, _ in EXACT_ERRORS if n not in PYTHON_ONLY],
)
def test_both_validators_reject_each_bad_document(
    mutate: Callable[[dict[str, Any]], object],
) -> None:
    doc = good_document()
    mutate(doc)
    with pytest.raises(SchemaError):
        validate_signed_mou(doc)
    assert schema_errors(doc), "the JSON Schema accepted a document the validator rejects"


def test_python_only_checks_are_really_beyond_the_schema() -> None:
    # Keeps PYTHON_ONLY honest: each case there is valid JSON Schema-wise, except the ones that
    # are not JSON at all or need the format checker.
    not_json = {"date as a datetime", "threshold infinite", "lone surrogate", "impossible date"}
    for name, mutate, _ in EXACT_ERRORS:
        if name in PYTHON_ONLY and name not in not_json:
            doc = good_document()
            mutate(doc)
            assert schema_errors(doc) == [], name


def test_impossible_date_needs_the_format_checker() -> None:
    doc = good_document()
    doc["valid_from"] = "2025-02-30"
    assert schema_errors(doc)  # with FORMAT_CHECKER on, as above


def test_schema_covers_the_same_members_as_the_validator() -> None:
    doc = good_document(signed=True)
    assert set(SCHEMA["properties"]) == set(doc)
    assert set(SCHEMA["$defs"]["party"]["properties"]) == set(doc["parties"][0])
    assert set(SCHEMA["properties"]["exchange"]["properties"]) == set(doc["exchange"])
    caveat_schema = SCHEMA["$defs"]["caveats"]["properties"]
    assert set(caveat_schema) == set(doc["categories"][0]["caveats"])
    assert set(SCHEMA["properties"]["signatures"]["additionalProperties"]) == {"type", "pattern"}
    assert CA in doc["signatures"]


@pytest.mark.parametrize(
    ("member", "good", "bad"),
    [
        ("weights", "estimated", "guessed"),
        ("links", "best-of-either", "many-to-many"),
        ("links", "auto", "Auto"),
    ],
)
def test_both_validators_agree_on_the_optional_decision_members(
    member: str, good: str, bad: str
) -> None:
    doc = good_document(signed=False)
    doc["linkage"][member] = good
    assert schema_errors(doc) == []
    mou = validate_signed_mou(doc).mou
    assert getattr(mou, member) == good
    doc["linkage"][member] = bad
    assert schema_errors(doc)
    with pytest.raises(SchemaError, match=f"linkage.{member}: must be one of"):
        validate_signed_mou(doc)


def test_the_link_rules_are_the_same_three_everywhere() -> None:
    """The JSON schema's link rules, the validator's and what decide() accepts."""
    enum = SCHEMA["properties"]["linkage"]["properties"]["links"]["enum"]
    assert set(enum) == set(LINKS) == set(LINK_CHOICES)


def test_both_validators_agree_on_the_optional_reciprocal_release() -> None:
    doc = good_document(signed=False)
    without = validate_signed_mou(doc).mou
    assert without.reciprocal is False
    doc["release"]["reciprocal"] = True
    assert schema_errors(doc) == []
    mou = validate_signed_mou(doc).mou
    assert mou.reciprocal is True
    # the canonical form holds it only when true, so MOUs without it keep their digests
    assert mou_to_canonical(mou)["release"] == {
        **mou_to_canonical(without)["release"],
        "reciprocal": True,
    }
    assert "reciprocal" not in mou_to_canonical(without)["release"]  # type: ignore[operator]
    assert mou_digest(mou) != mou_digest(without)
    doc["release"]["reciprocal"] = "yes"
    assert schema_errors(doc)
    with pytest.raises(SchemaError, match=r"release\.reciprocal: must be true or false"):
        validate_signed_mou(doc)
