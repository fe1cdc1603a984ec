"""What the conformance runner reads from others — a kit's ``kit.json``, the frames of the
implementation under test — raises only xlink's errors (or, for a frame, names no kind):
"random bytes into any decoder raise only our own exception types"."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import msgpack
import pytest
from _mutations import DECODER_SETTINGS, MSGPACK_VALUES, mutated_json
from hypothesis import given
from hypothesis import strategies as st

from xlink.conformance.kit import load_kit
from xlink.conformance.script import kind_of
from xlink.errors import InputError

MANIFEST = {
    "kit_version": 1,
    "runner": {"agency": "CA-RCMP", "keys": "k", "bundle": "b", "files": ["f"], "disjoint": []},
    "agent": {"agency": "US-DHS", "keys": "k2", "bundle": "b2", "files": ["f2"]},
    "mou": "mou.json",
    "passphrase": "x",
}


def _load(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "kit.json").write_bytes(data)
        with contextlib.suppress(InputError):
            load_kit(Path(tmp))
        assert [p.name for p in Path(tmp).iterdir()] == ["kit.json"]


def test_a_deeply_nested_manifest_is_an_input_error(tmp_path: Path) -> None:
    """``json.loads`` raises RecursionError on deep nesting: it escaped ``load_kit``."""
    (tmp_path / "kit.json").write_text("[" * 100_000, encoding="utf-8")
    with pytest.raises(InputError, match="not a conformance kit manifest"):
        load_kit(tmp_path)


@DECODER_SETTINGS
@given(mutated_json(MANIFEST) | st.binary(max_size=200))
def test_a_garbled_manifest_raises_only_input_errors(data: bytes) -> None:
    _load(data)


_FRAMES = st.one_of(
    st.binary(max_size=120),
    st.builds(
        lambda version, value: version + msgpack.packb(value, use_bin_type=True),
        st.sampled_from([b"\x02", b"\x51"]),
        MSGPACK_VALUES,
    ),
    st.builds(lambda v, b: v + b, st.sampled_from([b"\x02", b"\x51"]), st.binary(max_size=100)),
    st.just(b"\x02" + b"\x91" * 100_000),  # nested deeper than msgpack's stack
)


@DECODER_SETTINGS
@given(_FRAMES)
def test_any_frame_has_a_kind_or_none(frame: bytes) -> None:
    kind_of(frame)
