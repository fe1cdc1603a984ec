"""The xlink-psi-v2 cases: every case of ``protocols/vectors/psi-v2/invalid.json`` played live
(the same name, requirement and abort code, built from the runner's live conversation).

Each entry: vector name, spec section, what the runner sends, the frame it changes and how, the
abort code the agent must send. Section numbers are those of protocols/xlink-psi-v2.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from typing import Final

import msgpack

from xlink.conformance.script import At, RuleContext, pack, replace_fields, with_top_bit
from xlink.crypto.suite import SMALL_ORDER_U
from xlink.error_codes import AbortCode as A
from xlink.protocol import limits as L
from xlink.protocol.codec import decode_message, encode_message
from xlink.protocol.messages import (
    Commit,
    ConfirmRequest,
    ConfirmResponse,
    Elements,
    Hello,
    MessageType,
    Reveal,
)

__all__ = ["PSI_CASES", "PsiCase"]

_P: Final = 2**255 - 19
ORDER_8_POINT: Final = bytes.fromhex(
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"
)
"""An edwards25519 point of order 8 (not in the prime-order subgroup)."""
BASE_U: Final = (9).to_bytes(32, "little")
"""Curve25519's base point: a valid element nobody's set holds."""

H, E, RB = MessageType.HELLO, MessageType.ELEMENTS, MessageType.REBLINDED
RV, CQ, CR, CM = (
    MessageType.REVEAL,
    MessageType.CONFIRM_REQUEST,
    MessageType.CONFIRM_RESPONSE,
    MessageType.COMMIT,
)
Do = Callable[[bytes, RuleContext], list[bytes]]


@dataclasses.dataclass(frozen=True)
class PsiCase:
    """A live PSI case: the vector it plays, its section, the rule, the code(s)."""

    name: str
    section: str
    description: str
    rule: At
    codes: tuple[A, ...]
    flags: tuple[str, ...] = ()
    roles: frozenset[str] = frozenset({"initiator", "responder"})
    """The agent roles the case is played against."""


def _fixed(*frames: bytes) -> Do:
    return lambda _m, _c: list(frames)


def _hello(**changes: object) -> Do:
    return lambda m, _c: [replace_fields(m, **changes)]


def _hello_raw(index: int, value: object) -> Do:
    def do(m: bytes, _c: RuleContext) -> list[bytes]:
        fields = msgpack.unpackb(m[1:])
        fields[index + 1] = value
        return [pack(*fields)]

    return do


def _hello_bad_utf8(m: bytes, _c: RuleContext) -> list[bytes]:
    fields = msgpack.unpackb(m[1:])
    fields[6] = "\x00\x00"  # mou_id, spliced to ff fe below (msgpack will not encode it)
    raw = pack(*fields)
    marker = b"\xa2\x00\x00"
    return [raw.replace(marker, b"\xa2\xff\xfe", 1)]


def _hello_oversized(m: bytes, c: RuleContext) -> list[bytes]:
    hello = decode_message(m)
    assert isinstance(hello, Hello)
    # A multiple of the bucket, one bucket above the largest set the MOU allows the runner.
    bound = c.memory["max_runner_set_size"]
    size = (bound // hello.padding_bucket + 1) * hello.padding_bucket
    return [encode_message(dataclasses.replace(hello, padded_size=size))]


def _hello_bucket(m: bytes, _c: RuleContext) -> list[bytes]:
    hello = decode_message(m)
    assert isinstance(hello, Hello)
    bucket = hello.padding_bucket // 2
    return [encode_message(dataclasses.replace(hello, padding_bucket=bucket))]


def _hello_unaligned(m: bytes, _c: RuleContext) -> list[bytes]:
    hello = decode_message(m)
    assert isinstance(hello, Hello)
    return [encode_message(dataclasses.replace(hello, padded_size=hello.padded_size + 1))]


def _elements(transform: Callable[[bytes], bytes]) -> Do:
    def do(m: bytes, _c: RuleContext) -> list[bytes]:
        msg = decode_message(m)
        assert isinstance(msg, Elements)
        return [encode_message(Elements(msg.seq, transform(msg.elements)))]

    return do


def _element_at(index: int, value: bytes) -> Do:
    return _elements(lambda es: es[: 32 * index] + value + es[32 * index + 32 :])


def _raw_elements(build: Callable[[Elements], bytes]) -> Do:
    def do(m: bytes, _c: RuleContext) -> list[bytes]:
        msg = decode_message(m)
        assert isinstance(msg, Elements)
        return [build(msg)]

    return do


def _twice(m: bytes, _c: RuleContext) -> list[bytes]:
    return [m, m]


def _drop(_m: bytes, _c: RuleContext) -> list[bytes]:
    return []


def _with_extra_chunk(m: bytes, c: RuleContext) -> list[bytes]:
    msg = decode_message(m)
    assert isinstance(msg, Elements)
    first = decode_message(c.sent[E][0])
    assert isinstance(first, Elements)
    return [m, encode_message(Elements(msg.seq + 1, first.elements))]


def _repeat_first_element(m: bytes, c: RuleContext) -> list[bytes]:
    first = decode_message(c.sent[E][0])
    assert isinstance(first, Elements)
    return _element_at(0, first.elements[:32])(m, c)


def _reblinded_doubled(m: bytes, _c: RuleContext) -> list[bytes]:
    fields = msgpack.unpackb(m[1:])
    return [pack(fields[0], fields[1], fields[2] * 2)]


def _confirm(transform: Callable[[bytes], bytes]) -> Do:
    def do(m: bytes, _c: RuleContext) -> list[bytes]:
        msg = decode_message(m)
        assert isinstance(msg, ConfirmRequest | ConfirmResponse)
        return [encode_message(dataclasses.replace(msg, points=transform(msg.points)))]

    return do


def _swap_first_two(points: bytes) -> bytes:
    return points[32:64] + points[:32] + points[64:]


def _fake_reveal(_m: bytes, _c: RuleContext) -> list[bytes]:
    return [encode_message(Reveal(0, True, (), b"", b"\x00" * L.SALT_SIZE))]


def _reveal(transform: Callable[[Reveal], Reveal | bytes]) -> Do:
    return _reveal_with(lambda r, _c: transform(r))


def _reveal_with(transform: Callable[[Reveal, RuleContext], Reveal | bytes]) -> Do:
    def do(m: bytes, c: RuleContext) -> list[bytes]:
        msg = decode_message(m)
        assert isinstance(msg, Reveal)
        out = transform(msg, c)
        return [out if isinstance(out, bytes) else encode_message(out)]

    return do


def _multi(reveal: Reveal) -> int:
    """The first entry naming two handles or more, else the first entry."""
    return next((i for i, r in enumerate(reveal.records) if len(r) >= 32), 0)


def _entry(reveal: Reveal, entry: Callable[[bytes], bytes]) -> Reveal:
    j = _multi(reveal)
    records = list(reveal.records)
    records[j] = entry(records[j])
    return dataclasses.replace(reveal, records=tuple(records))


def _entry_presence(reveal: Reveal) -> tuple[int, int]:
    """Where the chosen entry's key presence is: its first byte, and bytes per entry."""
    width = len(reveal.presence) // max(len(reveal.records), 1)
    return _multi(reveal) * width, width


def _unknown_key(reveal: Reveal, c: RuleContext) -> Reveal:
    """The chosen entry with the first bit beyond the schema's keys set."""
    start, width = _entry_presence(reveal)
    keys = c.memory["schema_keys"]
    p = bytearray(reveal.presence)
    if keys >= 8 * width:  # no spare bit (K a multiple of 8): a longer presence instead
        return dataclasses.replace(reveal, presence=reveal.presence + b"\x00")
    p[start + keys // 8] |= 1 << (keys % 8)
    return dataclasses.replace(reveal, presence=bytes(p))


def _no_keys(reveal: Reveal, _c: RuleContext) -> Reveal:
    """The chosen entry with every key presence bit clear."""
    start, width = _entry_presence(reveal)
    p = bytearray(reveal.presence)
    p[start : start + width] = bytes(width)
    return dataclasses.replace(reveal, presence=bytes(p))


_FAKE_HANDLE: Final = hashlib.sha256(b"not a handle").digest()[:16]


def _unknown_handle(entry: bytes) -> bytes:
    return b"".join(sorted([*(entry[i : i + 16] for i in range(16, len(entry), 16)), _FAKE_HANDLE]))


def _unsorted(entry: bytes) -> bytes:
    return entry[16:32] + entry[:16] + entry[32:]


def _c(
    name: str,
    section: str,
    description: str,
    rule: At,
    *codes: A,
    flags: tuple[str, ...] = (),
    roles: tuple[str, ...] = ("initiator", "responder"),
) -> PsiCase:
    return PsiCase(name, section, description, rule, codes, flags, frozenset(roles))


def _other_role(m: bytes, _c: RuleContext) -> list[bytes]:
    hello = decode_message(m)
    assert isinstance(hello, Hello)
    return [encode_message(dataclasses.replace(hello, role=1 - hello.role))]


PSI_CASES: Final[tuple[PsiCase, ...]] = (
    # Framing, encoding and codec (§6.1-6.3).
    _c("truncated", "6.2", "Hello cut short inside its msgpack body",
       At(H, lambda m, _c: [m[:-5]]), A.TRUNCATED, flags=("codec",)),
    _c("empty_message", "6.2", "a zero-length message", At(H, _fixed(b"")),
       A.MALFORMED_MESSAGE, flags=("codec",)),
    _c("oversize_field", "6.3", "sender_id of 65 bytes (limit 64)",
       At(H, _hello_raw(3, "R" * 65)), A.MALFORMED_MESSAGE, flags=("codec", "limits")),
    _c("wrong_version", "6.2", "version byte 3", At(H, lambda m, _c: [b"\x03" + m[1:]]),
       A.UNSUPPORTED_VERSION, flags=("codec",)),
    _c("version_one_refused", "6.2", "a Hello with version byte 1 (xlink-psi-v1): refused",
       At(H, lambda m, _c: [b"\x01" + m[1:]]), A.UNSUPPORTED_VERSION, flags=("codec", "downgrade")),
    _c("unknown_message_type", "6.2", "message type 9", At(H, _fixed(pack(9, 0))),
       A.UNKNOWN_MESSAGE, flags=("codec",)),
    _c("unknown_message_type_uint16", "6.2", "message type 300 (uint16)",
       At(H, _fixed(pack(300, 0))), A.UNKNOWN_MESSAGE, flags=("codec",)),
    _c("negative_message_type", "6.2", "message type -1 (negative fixint): types are unsigned",
       At(H, _fixed(bytes.fromhex("0292ff00"))), A.MALFORMED_MESSAGE, flags=("codec",)),
    _c("negative_message_type_int8", "6.2", "message type -128 (int8) alone in the array",
       At(H, _fixed(bytes.fromhex("0291d080"))), A.MALFORMED_MESSAGE, flags=("codec",)),
    _c("truncated_oversized_bin", "6.3",
       "Elements whose bin32 header declares 2^31-1 bytes, body ending after the header",
       At(H, _fixed(bytes.fromhex("02930200c67fffffff"))), A.MALFORMED_MESSAGE,
       flags=("codec", "limits")),
    _c("truncated_oversized_str", "6.3", "Abort whose detail str32 header declares 2^31-1 bytes",
       At(H, _fixed(bytes.fromhex("02930501db7fffffff"))), A.MALFORMED_MESSAGE,
       flags=("codec", "limits")),
    _c("truncated_oversized_array", "6.3", "an array32 header declaring 2^32-1 items",
       At(H, _fixed(bytes.fromhex("02ddffffffff"))), A.MALFORMED_MESSAGE,
       flags=("codec", "limits")),
    _c("truncated_inside_bin", "6.2", "Elements whose bin8 header declares 32 bytes, 2 follow",
       At(H, _fixed(bytes.fromhex("02930200c4200000"))), A.TRUNCATED, flags=("codec",)),
    _c("map_instead_of_array", "6.2", "the body is a map",
       At(H, _fixed(b"\x02" + msgpack.packb({"type": 1}))), A.MALFORMED_MESSAGE, flags=("codec",)),
    _c("trailing_bytes", "6.2", "one byte after the msgpack body",
       At(H, lambda m, _c: [m + b"\x00"]), A.MALFORMED_MESSAGE, flags=("codec",)),
    _c("invalid_utf8", "6.2", "mou_id is not UTF-8", At(H, _hello_bad_utf8),
       A.MALFORMED_MESSAGE, flags=("codec",)),
    _c("extra_field", "6.2", "Elements with a third field",
       At(E, _raw_elements(lambda e: pack(2, e.seq, e.elements, 0))), A.MALFORMED_MESSAGE,
       flags=("codec",)),
    _c("missing_field", "6.2", "Elements without its elements",
       At(E, _raw_elements(lambda e: pack(2, e.seq))), A.MALFORMED_MESSAGE, flags=("codec",)),
    _c("wrong_field_type", "6.2", "seq as a string",
       At(E, _raw_elements(lambda e: pack(2, str(e.seq), e.elements))), A.MALFORMED_MESSAGE,
       flags=("codec",)),
    _c("bool_for_int", "6.2", "seq as a boolean",
       At(E, _raw_elements(lambda e: pack(2, False, e.elements))), A.MALFORMED_MESSAGE,
       flags=("codec",)),
    _c("str_for_bin", "6.2", "elements as a msgpack str",
       At(E, _raw_elements(lambda e: pack(2, e.seq, "x" * 128))), A.MALFORMED_MESSAGE,
       flags=("codec",)),
    _c("msgpack_ext_type", "6.2", "an ext type where seq belongs",
       At(E, _raw_elements(lambda e: pack(2, msgpack.ExtType(1, b"\x00"), e.elements))),
       A.MALFORMED_MESSAGE, flags=("codec",)),
    _c("non_minimal_int", "6.2", "seq 0 encoded as uint8 (0xcc 0x00)",
       At(E, _raw_elements(
           lambda e: b"\x02\x93\x02\xcc\x00" + msgpack.packb(e.elements, use_bin_type=True))),
       A.MALFORMED_MESSAGE, flags=("codec",)),
    # Handshake (§5.2, §6.4).
    _c("set_size_above_mou_bound", "6.4",
       "padded_size a multiple of the bucket, above the MOU's bound for the peer",
       At(H, _hello_oversized), A.BAD_SET_SIZE, flags=("handshake", "probing")),
    _c("wrong_suite", "6.4", "suite_id 3", At(H, _hello(suite_id=3)), A.UNSUPPORTED_SUITE,
       flags=("handshake",)),
    _c("mode_mismatch", "6.4", "a CARDINALITY Hello to a PSI session", At(H, _hello(mode=2)),
       A.MODE_MISMATCH, flags=("handshake",)),
    _c("mou_id_mismatch", "6.4", "another MOU id", At(H, _hello(mou_id="MOU-OTHER")),
       A.MOU_MISMATCH, flags=("handshake",)),
    _c("mou_digest_mismatch", "6.4", "another MOU digest",
       At(H, _hello(mou_digest=b"\x00" * 32)), A.MOU_MISMATCH, flags=("handshake",)),
    _c("padding_bucket_mismatch", "6.4", "another padding bucket", At(H, _hello_bucket),
       A.MOU_MISMATCH, flags=("handshake",)),
    _c("schema_digest_mismatch", "6.4", "another linkage-schema digest",
       At(H, _hello(schema_digest=b"\x00" * 32)), A.SCHEMA_MISMATCH, flags=("handshake",)),
    _c("party_mismatch_sender", "6.4", "sender_id is not the expected peer",
       At(H, _hello(sender_id="FBI")), A.PARTY_MISMATCH, flags=("handshake",)),
    _c("party_mismatch_receiver", "6.4", "receiver_id is not the agent",
       At(H, _hello(receiver_id="CBP")), A.PARTY_MISMATCH, flags=("handshake",)),
    _c("bad_set_size", "6.4", "padded_size not a multiple of the bucket", At(H, _hello_unaligned),
       A.BAD_SET_SIZE, flags=("handshake",)),
    # State machine (§5.5).
    _c("unexpected_elements_before_hello", "5.5", "Elements as the first message",
       At(H, _fixed(encode_message(Elements(0, BASE_U)))), A.UNEXPECTED_MESSAGE,
       flags=("ordering",)),
    _c("unexpected_second_hello", "5.5", "a second Hello", At(H, _twice),
       A.UNEXPECTED_MESSAGE, flags=("ordering", "replay")),
    _c("unexpected_reveal_in_exchange", "5.5", "a Reveal before the exchange is done",
       At(E, _fake_reveal), A.UNEXPECTED_MESSAGE, flags=("ordering",)),
    # Elements (§4.3, §6.5).
    _c("oversize_chunk", "6.5", "an Elements chunk with one element more than chunk_size",
       At(E, _elements(lambda es: es + BASE_U)), A.WRONG_COUNT, flags=("count",)),
    _c("wrong_count", "6.5", "an Elements chunk missing one element",
       At(E, _elements(lambda es: es[:-32])), A.WRONG_COUNT, flags=("count",)),
    _c("bad_point_encoding", "4.3", "an element with the top bit set",
       At(E, _element_at(1, b"\x09" + b"\x00" * 30 + b"\x80")), A.INVALID_ELEMENT,
       flags=("point-validation",)),
    _c("non_canonical_u", "4.3", "u = p (non-canonical encoding of 0)",
       At(E, _element_at(0, _P.to_bytes(32, "little"))), A.INVALID_ELEMENT,
       flags=("point-validation",)),
    _c("non_canonical_u_max", "4.3", "u = 2^255 - 1",
       At(E, _element_at(2, (2**255 - 1).to_bytes(32, "little"))), A.INVALID_ELEMENT,
       flags=("point-validation",)),
    _c("identity_point", "4.3", "u = 0", At(E, _element_at(0, SMALL_ORDER_U[0])),
       A.IDENTITY_ELEMENT, flags=("point-validation",)),
    _c("small_order_point", "4.3", "a point of order 8", At(E, _element_at(3, SMALL_ORDER_U[2])),
       A.IDENTITY_ELEMENT, flags=("point-validation",)),
    _c("duplicate_element", "4.3", "an element repeated inside one chunk",
       At(E, _elements(lambda es: es[:32] + es[:32] + es[64:])), A.DUPLICATE_ELEMENT,
       flags=("duplicates",)),
    _c("duplicate_across_chunks", "4.3", "an element of chunk 0 repeated in chunk 1",
       At(E, _repeat_first_element, nth=1), A.DUPLICATE_ELEMENT, flags=("duplicates",)),
    _c("chunk_out_of_order", "6.5", "Elements 1 before Elements 0", At(E, _drop),
       A.CHUNK_OUT_OF_ORDER, flags=("ordering",)),
    _c("chunk_replayed", "6.5", "Elements 0 twice", At(E, _twice), A.CHUNK_REPLAYED,
       flags=("ordering", "replay")),
    _c("extra_chunk", "6.5",
       "an Elements chunk beyond the declared padded size (UNEXPECTED_MESSAGE when the agent "
       "has already moved past its exchange state: §5.5 checks the state first)",
       At(E, _with_extra_chunk, nth=-1), A.WRONG_COUNT, A.UNEXPECTED_MESSAGE, flags=("count",)),
    # Reblinded (§6.6).
    _c("reblinded_group_elements", "6.6",
       "Reblinded carrying 32-byte values (group elements, as v1 sent) for 16-byte tags",
       At(RB, _reblinded_doubled), A.WRONG_COUNT, flags=("count", "downgrade")),
    _c("reblinded_replayed", "6.6",
       "Reblinded 0 twice (UNEXPECTED_MESSAGE when it was the last chunk due: §5.5 checks the "
       "state first)", At(RB, _twice), A.CHUNK_REPLAYED, A.UNEXPECTED_MESSAGE,
       flags=("ordering", "replay")),
    # Confirmation (§4.4, §6.9, §6.10).
    _c("confirm_more_claims", "6.9", "a ConfirmRequest with one point more than was matched",
       At(CQ, _confirm(lambda p: p + p[:32])), A.WRONG_COUNT, flags=("dishonest",)),
    _c("confirm_invalid_point", "6.9",
       "a ConfirmRequest point that is edwards25519's of order 8 (under ciphersuite 2 no "
       "ristretto255 encoding)",
       At(CQ, _confirm(lambda p: ORDER_8_POINT + p[32:])), A.INVALID_ELEMENT,
       flags=("point-validation", "dishonest")),
    _c("confirm_point_bit_255", "4.6",
       "a ConfirmRequest point with bit 255 set (not a canonical ristretto255 encoding, though "
       "libsodium 1.0.18 decodes it as the canonical one)",
       At(CQ, _confirm(with_top_bit)), A.INVALID_ELEMENT, flags=("point-validation", "dishonest")),
    _c("confirm_answer_bit_255", "4.6", "a ConfirmResponse answer with bit 255 set",
       At(CR, _confirm(with_top_bit)), A.INVALID_ELEMENT, flags=("point-validation", "dishonest")),
    _c("confirm_answers_swapped", "6.10",
       "a ConfirmResponse with its first two answers swapped (the permuted-answers attack)",
       At(CR, _confirm(_swap_first_two)), A.CONFIRMATION_FAILED, flags=("dishonest",)),
    # Commit and Reveal (§6.7, §6.11).
    _c("reveal_before_commit", "5.5", "a Reveal in place of the Commit", At(CM, _fake_reveal),
       A.UNEXPECTED_MESSAGE, flags=("ordering",)),
    _c("commit_mismatch", "6.11", "a Commit to other bytes, then the honest Reveal",
       At(CM, _fixed(encode_message(Commit(b"\x00" * 32)))), A.BAD_COMMITMENT,
       flags=("dishonest",)),
    _c("bad_reveal_unknown_handle", "6.7",
       "a reveal entry naming a handle outside the intersection",
       At(RV, _reveal(lambda r: _entry(r, _unknown_handle))), A.BAD_REVEAL, flags=("dishonest",)),
    _c("bad_reveal_presence_unknown_key", "6.7",
       "a reveal entry whose key presence sets a bit beyond the schema's keys",
       At(RV, _reveal_with(_unknown_key)), A.BAD_REVEAL,
       flags=("dishonest",)),
    _c("bad_reveal_presence_missing_key", "6.7",
       "a reveal entry whose key presence leaves out the keys of its handles",
       At(RV, _reveal_with(_no_keys)), A.BAD_REVEAL, flags=("dishonest",)),
    _c("bad_reveal_presence_length", "6.7", "a key presence one byte longer than one per entry",
       At(RV, _reveal(lambda r: dataclasses.replace(r, presence=r.presence + b"\x00"))),
       A.BAD_REVEAL, flags=("dishonest",)),
    _c("reveal_not_opening_commitment", "6.11",
       "a final reveal naming no record: not what was committed to",
       At(RV, _reveal(lambda r: dataclasses.replace(r, records=(), presence=b""))),
       A.BAD_COMMITMENT, flags=("dishonest",)),
    _c("reveal_salt_missing", "6.7", "a final reveal without its salt",
       At(RV, _reveal(lambda r: dataclasses.replace(r, salt=b""))), A.BAD_REVEAL,
       flags=("dishonest",)),
    _c("bad_reveal_unsorted", "6.7", "a reveal entry whose handles are not ascending",
       At(RV, _reveal(lambda r: _entry(r, _unsorted))), A.BAD_REVEAL, flags=("dishonest",)),
    _c("reveal_out_of_order", "6.7", "a Reveal with seq 1 first",
       At(RV, _reveal(lambda r: dataclasses.replace(r, seq=1))), A.CHUNK_OUT_OF_ORDER,
       flags=("ordering",)),
    _c("reveal_empty_not_final", "6.7",
       "a Reveal chunk with no entries that is not the final one (a stall)",
       At(RV, _reveal(lambda r: dataclasses.replace(
           r, final=False, records=(), presence=b"", salt=b""))),
       A.BAD_REVEAL, flags=("dishonest",)),
)  # fmt: skip
"""The live PSI cases, one per case of psi-v2/invalid.json."""

ROLE_CASES: Final[tuple[PsiCase, ...]] = (
    _c("role_mismatch", "6.4", "the initiator's Hello claims the responder role",
       At(H, _other_role), A.ROLE_MISMATCH, flags=("handshake",), roles=("responder",)),
    _c("initiator_role_mismatch", "6.4", "the responder's Hello claims the initiator role",
       At(H, _other_role), A.ROLE_MISMATCH, flags=("handshake",), roles=("initiator",)),
    _c("initiator_party_mismatch", "6.4", "the responder's Hello names another receiver",
       At(H, _hello(receiver_id="CSIS")), A.PARTY_MISMATCH, flags=("handshake",),
       roles=("initiator",)),
)  # fmt: skip
"""The vector cases whose Hello depends on who sends it: each played against one role."""
