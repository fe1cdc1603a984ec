"""The linkage schema always comes from the MOU: a bundled one, or the fitted schema that
`xlink mou fill --schema` writes beside the MOU, checked against the signed digest."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from xlink.agency import SCHEMA_SIDECAR_SUFFIX, schema_for_mou
from xlink.ceremony import CeremonyFiles, demo_ceremony
from xlink.cli.main import main
from xlink.crypto.rand import system_random
from xlink.errors import SchemaMismatch
from xlink.linkage.schema import (
    load_default_schema,
    schema_digest,
    schema_to_document,
)
from xlink.policy import load_mou


@pytest.fixture(scope="module")
def ceremony(tmp_path_factory: pytest.TempPathFactory) -> CeremonyFiles:
    return demo_ceremony(
        tmp_path_factory.mktemp("ceremony"),
        passphrase=b"schema-from-mou tests, not secret",
        now=datetime.now(UTC),
        rng=system_random,
    )


def _fitted(tmp_path: Path) -> Path:
    doc = schema_to_document(load_default_schema())
    doc["threshold"] = float(doc["threshold"]) + 1.5  # type: ignore[arg-type]
    path = tmp_path / "fitted.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_the_bundled_schema_is_found_by_digest(ceremony: CeremonyFiles) -> None:
    mou = load_mou(ceremony.mou).mou
    assert schema_digest(schema_for_mou(mou)) == mou.schema_digest


def test_a_fitted_schema_travels_beside_the_mou(tmp_path: Path, ceremony: CeremonyFiles) -> None:
    # The bug: serve/match always loaded the default schema, so an MOU filled with a fitted
    # schema was refused on both sides. `mou fill --schema` now writes it beside the MOU.
    out = tmp_path / "mou.json"
    template = Path(__file__).resolve().parents[2] / "xlink" / "data" / "mou" / "ca-us-demo.toml"
    fitted = _fitted(tmp_path)
    code = main(
        ["mou", "fill", str(template), "--schema", str(fitted), "--out", str(out),
         "--bundle", str(ceremony.bundles["CA-RCMP"]), "--bundle", str(ceremony.bundles["US-DHS"]),
         "--valid-from", "2026-01-01", "--valid-until", "2099-01-01", "--today", "2026-06-01"]
    )  # fmt: skip
    assert code == 0
    sidecar = Path(str(out) + SCHEMA_SIDECAR_SUFFIX)
    assert sidecar.is_file()
    mou = load_mou(out).mou
    schema = schema_for_mou(mou, out)
    assert schema_digest(schema) == mou.schema_digest != schema_digest(load_default_schema())
    # Without the sidecar, or with a sidecar that is not the signed schema: refused.
    with pytest.raises(SchemaMismatch):
        schema_for_mou(mou)
    sidecar.write_text(json.dumps(schema_to_document(load_default_schema())), encoding="utf-8")
    with pytest.raises(SchemaMismatch):
        schema_for_mou(mou, out)


def test_an_unknown_digest_is_refused_with_what_was_looked_for(ceremony: CeremonyFiles) -> None:
    mou = dataclasses.replace(load_mou(ceremony.mou).mou, schema_digest=b"\x01" * 32)
    with pytest.raises(SchemaMismatch, match="linkage schema"):
        schema_for_mou(mou)
