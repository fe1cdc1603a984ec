"""xlink-hub-v1 vectors (protocols/xlink-hub-v1.md §9) and the decoder under hostile bytes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xlink.crypto.keys import VerifyKey
from xlink.error_codes import HubReason
from xlink.errors import HubError
from xlink.hub.wire import Hello, Welcome, decode, encode, hello_message, verify, welcome_message

PROTOCOLS = Path(__file__).resolve().parents[2] / "protocols"
VECTORS = PROTOCOLS / "vectors" / "hub-v1"


def _generator():  # type: ignore[no-untyped-def]
    import sys

    sys.path.insert(0, str(PROTOCOLS))
    import vector_files

    return vector_files.load("generate_hub_vectors")


def test_the_vector_files_are_what_the_generator_writes() -> None:
    for name, text in _generator().build().items():
        assert (VECTORS / name).read_text(encoding="utf-8") == text, name


def test_every_valid_message_decodes_and_encodes_back() -> None:
    valid = json.loads((VECTORS / "valid.json").read_text(encoding="utf-8"))
    for item in valid["messages"]:
        payload = bytes.fromhex(item["encoded"])
        assert encode(decode(payload)) == payload, item["name"]


def test_the_vector_signatures_verify_over_the_stated_messages() -> None:
    valid = json.loads((VECTORS / "valid.json").read_text(encoding="utf-8"))
    by_name = {m["name"]: decode(bytes.fromhex(m["encoded"])) for m in valid["messages"]}
    hello, welcome, challenge = by_name["hello"], by_name["welcome"], by_name["challenge"]
    assert isinstance(hello, Hello) and isinstance(welcome, Welcome)
    agency_key = VerifyKey(bytes.fromhex(valid["agency_verify_key"]))
    hub_key = VerifyKey(bytes.fromhex(valid["hub_verify_key"]))
    signed = hello_message(valid["hub_id"], challenge.nonce, hello)  # type: ignore[union-attr]
    assert signed.hex() == valid["hello_signed_message"]
    assert verify(agency_key, hello.signature, signed)
    welcomed = welcome_message(valid["hub_id"], challenge.nonce, hello)  # type: ignore[union-attr]
    assert welcomed.hex() == valid["welcome_signed_message"]
    assert verify(hub_key, welcome.signature, welcomed)
    # The two labels keep a hello from passing for a welcome, and the reverse.
    assert not verify(agency_key, hello.signature, welcomed)
    # A control hello signs the TLS certificate the agency saw: another one does not verify.
    binding = bytes.fromhex(valid["control_binding"])
    control_sig = bytes.fromhex(valid["control_hello_signature"])
    control = bytes.fromhex(valid["control_hello_signed_message"])
    assert verify(agency_key, control_sig, control)
    assert control.endswith(binding)
    assert not verify(agency_key, control_sig, control[:-1] + bytes([control[-1] ^ 1]))


@pytest.mark.parametrize(
    "case",
    json.loads((VECTORS / "invalid.json").read_text(encoding="utf-8")),
    ids=lambda c: c["name"],
)
def test_every_invalid_payload_is_refused_as_malformed(case: dict[str, str]) -> None:
    with pytest.raises(HubError) as caught:
        decode(bytes.fromhex(case["encoded"]))
    assert caught.value.reason is HubReason.MALFORMED


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_hub_errors(data: bytes) -> None:
    try:
        message = decode(data)
    except HubError as exc:
        assert exc.reason is HubReason.MALFORMED
    else:
        assert encode(message) == data


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_a_valid_message_with_one_byte_changed_is_refused_or_canonical(data: st.DataObject) -> None:
    valid = json.loads((VECTORS / "valid.json").read_text(encoding="utf-8"))
    payload = bytearray(bytes.fromhex(data.draw(st.sampled_from(valid["messages"]))["encoded"]))
    index = data.draw(st.integers(0, len(payload) - 1))
    payload[index] ^= data.draw(st.integers(1, 255))
    try:
        message = decode(bytes(payload))
    except HubError:
        return
    assert encode(message) == bytes(payload)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_a_valid_message_cut_short_is_refused(data: st.DataObject) -> None:
    valid = json.loads((VECTORS / "valid.json").read_text(encoding="utf-8"))
    payload = bytes.fromhex(data.draw(st.sampled_from(valid["messages"]))["encoded"])
    with pytest.raises(HubError) as caught:
        decode(payload[: data.draw(st.integers(0, len(payload) - 1))])
    assert caught.value.reason is HubReason.MALFORMED
