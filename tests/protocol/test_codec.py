"""Canonical, strict decoding and framing (spec: xlink-psi-v2 §6)."""

from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xlink.errors import RemoteProtocolError
from xlink.protocol import limits as L
from xlink.protocol.abort import AbortCode
from xlink.protocol.codec import decode_message, encode_message, peek_type
from xlink.protocol.framing import FrameDecoder, encode_frame
from xlink.protocol.messages import Abort, Elements, Hello, Message, Reblinded, Reveal

HELLO = Hello(0, 1, 1, "RCMP", "DHS", "MOU-1", b"\x01" * 32, b"\x02" * 32, 8, 16, 4, b"\x03" * 32)
MESSAGES: list[Message] = [
    HELLO,
    Elements(0, b"\x09" * 64),
    Reblinded(70000, b"\x05" * 32),
    Reveal(0, True, ()),
    Reveal(3, False, (b"\x00" * 32 + b"\x01" * 16, b"\x03" * 32 + b"\x02" * 48)),
    Abort(11, "MOU digest differs"),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_round_trip_is_canonical(message: Message) -> None:
    data = encode_message(message)
    assert data[0] == L.PROTOCOL_VERSION
    assert decode_message(data) == message
    assert encode_message(decode_message(data)) == data
    assert peek_type(data) == int(message.TYPE)


def test_encode_rejects_out_of_limit_fields() -> None:
    with pytest.raises(ValueError):
        encode_message(Elements(0, b"\x00" * 31))
    with pytest.raises(ValueError):
        encode_message(Abort(1, "x" * 300))


def _code(data: bytes) -> AbortCode:
    with pytest.raises(RemoteProtocolError) as info:
        decode_message(data)
    return info.value.code


def test_non_canonical_encodings_rejected() -> None:
    body = b"\x93\x02\xcd\x00\x00" + msgpack.packb(b"\x09" * 32, use_bin_type=True)
    assert _code(b"\x02" + body) is AbortCode.MALFORMED_MESSAGE  # uint16 for 0
    bin_as_str_header = b"\x02\x93\x02\x00\xd9\x20" + b"a" * 32  # str8 where bin expected
    assert _code(bin_as_str_header) is AbortCode.MALFORMED_MESSAGE
    wide_array = b"\x02\xdc\x00\x03\x02\x00" + msgpack.packb(b"\x09" * 32, use_bin_type=True)
    assert _code(wide_array) is AbortCode.MALFORMED_MESSAGE  # array16 for 3 items


def test_size_limits() -> None:
    assert _code(b"\x02" + b"\x00" * L.MAX_MESSAGE_SIZE) is AbortCode.FRAME_TOO_LARGE
    too_many = b"\x02" + msgpack.packb([2, 0, b"\x09" * 32 * (L.MAX_CHUNK_ELEMENTS + 1)])
    assert _code(too_many) is AbortCode.MALFORMED_MESSAGE
    assert _code(b"") is AbortCode.MALFORMED_MESSAGE
    assert _code(b"\x00") is AbortCode.UNSUPPORTED_VERSION
    assert _code(b"\x02") is AbortCode.TRUNCATED
    assert _code(b"\x02\x91\x09") is AbortCode.UNKNOWN_MESSAGE
    assert _code(b"\x02\xc1") is AbortCode.MALFORMED_MESSAGE  # never-used msgpack byte
    assert _code(b"\x02\x90") is AbortCode.MALFORMED_MESSAGE
    assert _code(b"\x02\x91\xcb" + b"\x00" * 8) is AbortCode.MALFORMED_MESSAGE  # float type


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_remote_errors(data: bytes) -> None:
    for candidate in (data, b"\x02" + data):
        with contextlib.suppress(RemoteProtocolError):
            decode_message(candidate)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(MESSAGES), st.integers(min_value=0, max_value=400), st.integers(0, 255))
def test_mutated_messages_raise_only_remote_errors(message: Message, pos: int, value: int) -> None:
    data = bytearray(encode_message(message))
    data[pos % len(data)] = value
    try:
        decoded = decode_message(bytes(data))
    except RemoteProtocolError:
        return
    assert encode_message(decoded) == bytes(data)


_msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.binary(max_size=40)
    | st.text(max_size=10)
    | st.floats(allow_nan=False),
    lambda inner: (
        st.lists(inner, max_size=14) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 9), st.lists(_msgpack_values, max_size=14))
def test_structured_garbage_raises_only_remote_errors(kind: int, fields: list[object]) -> None:
    data = b"\x02" + msgpack.packb([kind, *fields], use_bin_type=True)
    with contextlib.suppress(RemoteProtocolError):
        decode_message(data)


def test_framing_round_trip_and_split_feeds() -> None:
    frames = [encode_message(m) for m in MESSAGES]
    stream = b"".join(encode_frame(f) for f in frames)
    decoder = FrameDecoder()
    out: list[bytes] = []
    for i in range(0, len(stream), 7):
        out.extend(decoder.feed(stream[i : i + 7]))
    assert out == frames and decoder.pending == 0
    decoder.close()


def test_framing_errors() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        FrameDecoder(max_frame=10).feed((11).to_bytes(4, "big"))
    assert info.value.code is AbortCode.FRAME_TOO_LARGE
    decoder = FrameDecoder()
    decoder.feed(encode_frame(b"abc")[:-1])
    with pytest.raises(RemoteProtocolError) as info:
        decoder.close()
    assert info.value.code is AbortCode.TRUNCATED
    with pytest.raises(ValueError):
        encode_frame(b"\x00" * (L.MAX_MESSAGE_SIZE + 1))


def test_check_order_header_limits_before_truncation() -> None:
    """Spec §6.2: items are read in order, each header before its content; a header over the
    limits is MALFORMED even when the body ends before the item would."""
    malformed, truncated = AbortCode.MALFORMED_MESSAGE, AbortCode.TRUNCATED
    assert _code(bytes.fromhex("02ddffffffff")) is malformed  # array32 of 2^32-1 items
    assert _code(bytes.fromhex("02dc1001")) is malformed  # array16 of 4097 items
    assert _code(bytes.fromhex("02930200c67fffffff")) is malformed  # bin32 of 2^31-1 bytes
    assert _code(bytes.fromhex("02930200c600080001")) is malformed  # bin32 of 524289
    assert _code(bytes.fromhex("02930501db7fffffff")) is malformed  # str32 over 256
    assert _code(bytes.fromhex("02930501da0101")) is malformed  # str16 of 257
    assert _code(bytes.fromhex("02930200c7")) is malformed  # ext header
    assert _code(bytes.fromhex("02938100")) is malformed  # map header
    assert _code(bytes.fromhex("029302c1")) is malformed  # reserved byte
    # Within the limits, running out of bytes is TRUNCATED, however deep.
    assert _code(bytes.fromhex("02930200c4200000")) is truncated
    assert _code(bytes.fromhex("02930200c6000080")) is truncated  # bin32 of 128 bytes
    assert _code(bytes.fromhex("02930200c5ffff")) is truncated  # bin16 of 65535: in limits
    assert _code(bytes.fromhex("02930200c6")) is truncated  # inside the length itself
    assert _code(bytes.fromhex("02dc0100")) is truncated
    assert _code(bytes.fromhex("029f919191")) is truncated


def test_message_type_is_unsigned() -> None:
    """Spec §6.2: a negative type is MALFORMED; an unsigned one not defined is UNKNOWN."""
    assert _code(bytes.fromhex("0291ff")) is AbortCode.MALFORMED_MESSAGE
    assert _code(bytes.fromhex("0292ff00")) is AbortCode.MALFORMED_MESSAGE
    assert _code(bytes.fromhex("0291d080")) is AbortCode.MALFORMED_MESSAGE
    assert _code(bytes.fromhex("0291d3" + "ff" * 8)) is AbortCode.MALFORMED_MESSAGE
    assert _code(bytes.fromhex("0291cd012c")) is AbortCode.UNKNOWN_MESSAGE
    assert _code(bytes.fromhex("0291cf" + "ff" * 8)) is AbortCode.UNKNOWN_MESSAGE


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(MESSAGES), st.integers(min_value=2))
def test_every_strict_prefix_of_a_message_is_truncated(message: Message, cut: int) -> None:
    data = encode_message(message)
    assert _code(data[: 2 + cut % (len(data) - 2)]) is AbortCode.TRUNCATED
