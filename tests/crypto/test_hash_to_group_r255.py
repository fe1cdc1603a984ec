"""Ciphersuite 2 (spec xlink-psi-v2 §4.6): its hash to group against an independent pure-Python
reference of RFC 9496's one-way map, against the step-by-step vectors in
protocols/vectors/psi-v2/hash_to_group_suite2.json, and the algebra the suite relies on."""

from __future__ import annotations

import copy
import importlib.util
import json
import pickle
import sys
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xlink.crypto import _rbcl
from xlink.crypto.oprf import EDWARDS25519, GROUP_ORDER, RISTRETTO255, OprfGroup
from xlink.crypto.rand import DeterministicRandom
from xlink.crypto.suite import SUITE_R255, BlindingKey
from xlink.errors import InvalidElement

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "protocols" / "vectors" / "psi-v2" / "hash_to_group_suite2.json"
P = 2**255 - 19


def _reference() -> ModuleType:
    folder = ROOT / "protocols" / "reference"
    sys.path.insert(0, str(folder))  # the reference imports suite 1's field helpers
    try:
        path = folder / "hash_to_group_r255.py"
        spec = importlib.util.spec_from_file_location("xlink_reference_h2g_r255", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(folder))
    return module


REF = _reference()


def test_published_one_way_map_vector() -> None:
    """libsodium's documented example of ``crypto_core_ristretto255_from_hash`` (the PHP
    manual's page for ``sodium_crypto_core_ristretto255_from_hash``)."""
    uniform = bytes.fromhex(
        "5d1be09e3d0c82fc538112490e35701979d99e06ca3e2b5b54bffe8b4dc772c1"
        "4d98b696a1bbfb5ca32c436cc61c16563790306c79eaca7705668b47dffe5bb6"
    )
    expected = "3066f82a1a747d45120d1740f14358531a8f04bbffe6a819f86dfe50f44a0a46"
    assert REF.one_way_map(uniform).hex() == expected
    assert _rbcl.from_hash(uniform).hex() == expected


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=64, max_size=64))
def test_reference_one_way_map_equals_libsodium(uniform: bytes) -> None:
    assert REF.one_way_map(uniform) == _rbcl.from_hash(uniform)


def test_vector_file_is_what_the_reference_generates() -> None:
    assert json.loads(VECTORS.read_text(encoding="utf-8")) == REF.vectors()


def test_xlink_reproduces_every_step_vector() -> None:
    data = json.loads(VECTORS.read_text(encoding="utf-8"))
    dst = bytes.fromhex(data["dst"])
    assert dst.startswith(b"xlink-psi-v1:" + SUITE_R255.name.encode() + b":")
    for case in data["cases"]:
        token = bytes.fromhex(case["token"])
        assert SUITE_R255.hash_to_points(dst, token).hex() == case["point"]
        assert SUITE_R255.hash_to_group(dst, token).hex() == case["element"]


def _scalar(value: int) -> bytes:
    return (value % GROUP_ORDER).to_bytes(32, "little")


@settings(max_examples=40, deadline=None)
@given(
    st.binary(min_size=32, max_size=32),
    st.binary(min_size=32, max_size=32),
    st.binary(min_size=32, max_size=32),
    st.integers(min_value=1, max_value=GROUP_ORDER - 1),
)
def test_blinding_commutes_and_the_confirmation_round_recovers_the_doubly_blinded_value(
    token: bytes, own: bytes, peer: bytes, r: int
) -> None:
    """X25519 on ``s²`` acts on the element's prime-order point, so: blinding commutes;
    ``1/s²`` (the decoded representative's u) blinds to the same value; and the confirmation
    round (§4.4 with §4.6's final step) gives back exactly the doubly-blinded value."""
    k_own, k_peer = BlindingKey(own), BlindingKey(peer)
    element = SUITE_R255.hash_to_group(b"dst", token)
    both = SUITE_R255.blind(k_own, SUITE_R255.blind(k_peer, element))
    assert both == SUITE_R255.blind(k_peer, SUITE_R255.blind(k_own, element))
    s = int.from_bytes(SUITE_R255.hash_to_points(b"dst", token), "little")
    inverse = pow(s * s, P - 2, P).to_bytes(32, "little")
    assert SUITE_R255.blind(k_peer, inverse) == SUITE_R255.blind(k_peer, element)
    # Requester: R = [r]Q. Evaluator: Y = [c(k_peer)]R. Requester: [own'/r]Y, then §4.6.
    point = SUITE_R255.hash_to_points(b"dst", token)
    request = RISTRETTO255.multiply(_scalar(r), point, 0)
    answer = RISTRETTO255.multiply(k_peer.group_scalar(), request, 0)
    own_scalar = int.from_bytes(SUITE_R255.requester_scalar(k_own.group_scalar()), "little")
    unblinded = RISTRETTO255.multiply(_scalar(own_scalar * pow(r, -1, GROUP_ORDER)), answer, 0)
    assert SUITE_R255.confirmed_values(unblinded) == both


def test_the_ristretto255_group_refuses_what_is_not_a_canonical_non_identity_element() -> None:
    """§4.6: a received confirmation or label point must be a canonical ristretto255 encoding
    (bit 255 clear, which libsodium 1.0.18 itself ignores) other than the identity."""
    good = SUITE_R255.hash_to_points(b"dst", bytes(32))
    k = _scalar(5)
    assert RISTRETTO255.multiply(k, good, 0) != good
    top_bit = good[:31] + bytes([good[31] | 0x80])
    cases = [
        (bytes(32), True),  # the identity
        (top_bit, False),  # accepted by libsodium's decoder, not canonical
        (b"\xff" * 32, False),
        ((1).to_bytes(32, "little"), False),  # s = 1 decodes to nothing (y = 0)
        (good[:31], False),  # truncated
    ]
    for bad, identity in cases:
        try:
            RISTRETTO255.multiply(k, bad, 3)
        except InvalidElement as exc:
            assert (exc.index, exc.identity) == (3, identity), bad.hex()
        else:
            raise AssertionError(f"accepted {bad.hex()}")
    with pytest.raises(InvalidElement) as caught:  # an identity product: the zero scalar
        RISTRETTO255.multiply(bytes(32), good, 7)
    assert caught.value.identity and caught.value.index == 7


def test_importing_rbcl_through_xlink_leaves_no_library_in_the_temporary_directory() -> None:
    """rbcl writes its libsodium to a temporary file on import; xlink removes it once loaded
    (every PSI worker imports it)."""
    path = getattr(sys.modules["rbcl._sodium"], "lib_path", None)
    assert isinstance(path, str) and path.endswith(".so")
    assert not Path(path).exists()


def test_a_group_is_one_of_the_two_and_survives_a_copy() -> None:
    """The group decides which library multiplies: an unknown name is refused, and a pickled
    or copied group is the same object, never silently the other group."""
    for group in (EDWARDS25519, RISTRETTO255):
        assert pickle.loads(pickle.dumps(group)) is group
        assert copy.copy(group) is group
    with pytest.raises(ValueError, match="unknown group"):
        OprfGroup("edwards25519 ")


@pytest.mark.parametrize("group", [EDWARDS25519, RISTRETTO255], ids=lambda g: g.name)
def test_random_bytes_of_any_bytes_like_type_raise_only_our_errors(group: OprfGroup) -> None:
    """A received point may arrive as a slice of a frame: whatever its type and content, the
    group raises InvalidElement or answers, never a binding's TypeError."""
    rng = DeterministicRandom("any bytes-like")
    k = _scalar(7)
    for i in range(200):
        raw = rng(32)
        for point in (raw, bytearray(raw), memoryview(raw)):
            try:
                group.multiply(k, point, i)  # type: ignore[arg-type]
            except InvalidElement as exc:
                assert exc.index == i
