"""Every invalid.json (psi-v2, release-transfer-v3, query-v1) has the Wycheproof-style shape of
protocols/schemas/invalid-vectors-v1.json: tcIds numbered from 1, each flag explained in the
file's notes, every abort code one of AbortCode."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

PROTOCOLS = Path(__file__).resolve().parents[2] / "protocols"
SCHEMA = json.loads((PROTOCOLS / "schemas" / "invalid-vectors-v1.json").read_text("utf-8"))
FILES = ["psi-v2", "release-transfer-v3", "query-v1"]


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PROTOCOLS / "vectors" / name / "invalid.json").read_text())
    return data


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("name", FILES)
def test_invalid_vectors_follow_the_schema(name: str) -> None:
    data = _load(name)
    jsonschema.Draft202012Validator(SCHEMA).validate(data)
    cases = data["cases"]
    assert [c["tcId"] for c in cases] == list(range(1, len(cases) + 1))
    assert len({c["name"] for c in cases}) == len(cases)
    used = {flag for c in cases for flag in c["flags"]}
    assert used <= set(data["notes"]), used - set(data["notes"])


def test_the_schema_refuses_a_case_without_its_abort_code() -> None:
    data = _load("psi-v2")
    del data["cases"][3]["abort"]
    with pytest.raises(jsonschema.ValidationError, match="'abort' is a required property"):
        jsonschema.Draft202012Validator(SCHEMA).validate(data)
