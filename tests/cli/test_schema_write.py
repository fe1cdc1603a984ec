"""`xlink schema --write OUT`: a schema to start from, that validates to the same digest."""

from __future__ import annotations

from pathlib import Path

import pytest

from xlink.cli.main import main
from xlink.linkage.schema import load_default_schema, load_schema, schema_digest


def test_the_default_schema_written_out_is_the_same_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "my-schema.json"
    assert main(["schema", "--write", str(out)]) == 0
    assert schema_digest(load_schema(out)) == schema_digest(load_default_schema())
    before = out.read_bytes()
    assert main(["schema", "--write", str(out)]) == 3
    assert "already exists" in capsys.readouterr().err
    assert out.read_bytes() == before  # nothing replaced
