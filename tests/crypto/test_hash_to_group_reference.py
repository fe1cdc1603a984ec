"""Hash to group against an independent pure-Python reference written from the spec text,
and against the step-by-step vectors in protocols/vectors/psi-v2/hash_to_group.json."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

from hypothesis import given, settings
from hypothesis import strategies as st
from nacl import bindings as sodium

from xlink.crypto.suite import SUITE_X25519

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "protocols" / "vectors" / "psi-v2" / "hash_to_group.json"


def _reference() -> ModuleType:
    path = ROOT / "protocols" / "reference" / "hash_to_group.py"
    spec = importlib.util.spec_from_file_location("xlink_reference_h2g", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REF = _reference()


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=32, max_size=32))
def test_spec_description_of_from_uniform_equals_libsodium(r: bytes) -> None:
    assert REF._encode(REF.from_uniform(r)) == sodium.crypto_core_ed25519_from_uniform(r)


def test_from_uniform_edge_inputs() -> None:
    p = 2**255 - 19
    edges = [bytes(32), b"\xff" * 32, (p - 1).to_bytes(32, "little"), p.to_bytes(32, "little")]
    edges += [(2**255 - 1).to_bytes(32, "little"), bytes(31) + b"\x80"]
    for r in edges:
        assert REF._encode(REF.from_uniform(r)) == sodium.crypto_core_ed25519_from_uniform(r)


def test_vector_file_is_what_the_reference_generates() -> None:
    assert json.loads(VECTORS.read_text(encoding="utf-8")) == REF.vectors()


def test_xlink_reproduces_every_step_vector() -> None:
    data = json.loads(VECTORS.read_text(encoding="utf-8"))
    dst = bytes.fromhex(data["dst"])
    for case in data["cases"]:
        element = SUITE_X25519.hash_to_group(dst, bytes.fromhex(case["token"]))
        assert element.hex() == case["element"], case["token"]


@settings(max_examples=30, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(min_size=1, max_size=80))
def test_xlink_equals_reference_on_random_tokens(token: bytes, dst: bytes) -> None:
    assert SUITE_X25519.hash_to_group(dst, token).hex() == REF.steps(token, dst)["element"]
