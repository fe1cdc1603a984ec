"""Garbled column-mapping files raise only LoadError: "random bytes into any decoder raise only
our own exception types"."""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path

from _mutations import DECODER_SETTINGS, mutated_json, mutated_text
from hypothesis import given
from hypothesis import strategies as st

from xlink.errors import LoadError
from xlink.records import ColumnMapping

DATA = Path(__file__).resolve().parents[2] / "xlink" / "data"
MAPPING = (DATA / "us_travellers.mapping.json").read_bytes()


@DECODER_SETTINGS
@given(
    mutated_json(json.loads(MAPPING)) | mutated_text(MAPPING) | st.binary(max_size=300),
    st.sampled_from(["m.json", "m.toml"]),
)
def test_a_garbled_mapping_file_raises_only_load_errors(data: bytes, name: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        with contextlib.suppress(LoadError):
            ColumnMapping.from_file(path)
        assert [p.name for p in Path(tmp).iterdir()] == [name]
