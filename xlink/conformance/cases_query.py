"""The xlink-query-v1 cases against a holder: every holder case of
``protocols/vectors/query-v1/invalid.json`` played live (the same name and abort code), but
those in :data:`OFFLINE_ONLY`, built from the runner's live asker frames.

The runner's asker sends, in order: HELLO, TABLE_REQUEST (its copy of the table is empty),
EVALUATE (its travellers' blinded elements, request 1), RELEASE_REQUEST (the hits, request 2),
RECEIPTS, BYE. Section numbers are those of protocols/xlink-query-v1.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from typing import Any, Final

import msgpack

from xlink.conformance.script import At, RuleContext, with_top_bit
from xlink.error_codes import AbortCode as A
from xlink.query.messages import (
    QUERY_VERSION,
    Abort,
    Evaluate,
    QueryType,
    ReceiptsMessage,
    ReleaseRequest,
    TableRequest,
    Welcome,
    decode,
    encode,
)

__all__ = ["OFFLINE_ONLY", "QUERY_CASES", "QueryCase"]

Q = QueryType
Do = Callable[[bytes, RuleContext], list[bytes]]
U = A.UNEXPECTED_MESSAGE
M = A.MALFORMED_MESSAGE


@dataclasses.dataclass(frozen=True)
class QueryCase:
    """A live query case: the vector it plays, its section, the rule, the code; ``peer_abort``
    when the runner sends the ABORT (the holder must report it, and send nothing back)."""

    name: str
    section: str
    description: str
    rule: At
    code: A
    flags: tuple[str, ...] = ()
    peer_abort: bool = False


def qpack(*body: object) -> bytes:
    """A query frame (version byte 0x51, then the msgpack array ``body``) as given."""
    packed: bytes = msgpack.packb(list(body), use_bin_type=True)
    return bytes([QUERY_VERSION]) + packed


def _fields(frame: bytes) -> list[Any]:
    fields: list[Any] = msgpack.unpackb(frame[1:])
    return fields


def _fixed(*frames: bytes) -> Do:
    return lambda _m, _c: list(frames)


def _raw(edit: Callable[[list[Any]], list[Any]]) -> Do:
    return lambda m, _c: [qpack(*edit(_fields(m)))]


def _bytes(edit: Callable[[bytes], bytes]) -> Do:
    return lambda m, _c: [edit(m)]


def _replace(**changes: object) -> Do:
    def do(m: bytes, _c: RuleContext) -> list[bytes]:
        decoded: Any = decode(m)
        return [encode(dataclasses.replace(decoded, **changes))]

    return do


def _with(edit: Callable[[Any, RuleContext], Any]) -> Do:
    return lambda m, c: [encode(edit(decode(m), c))]


def _hello_field(index: int, value: object) -> Do:
    def edit(fields: list[Any]) -> list[Any]:
        fields[index + 1] = value
        return fields

    return _raw(edit)


def _non_canonical_nonce(m: bytes, _c: RuleContext) -> list[bytes]:
    """The HELLO's nonce (its first field, a bin8: c4 10) re-encoded as a bin16 (c5 00 10)."""
    assert m[3:5] == b"\xc4\x10"
    return [m[:3] + b"\xc5\x00\x10" + m[5:]]


def _element_at(index: int, value: Callable[[bytes], bytes]) -> Do:
    def edit(msg: Evaluate, _c: RuleContext) -> Evaluate:
        b = msg.blinded
        i = min(index, len(b) // 32 - 1)
        return dataclasses.replace(
            msg, blinded=b[: 32 * i] + value(b[32 * i : 32 * i + 32]) + b[32 * i + 32 :]
        )

    return _with(edit)


def _records(msg: ReleaseRequest) -> list[tuple[bytes, bytes, list[bytes]]]:
    """(record, presence, handles) per record of a RELEASE_REQUEST."""
    n = len(msg.records) // 4
    width = len(msg.presence) // n
    out, at = [], 0
    for i in range(n):
        count = msg.counts[i]
        handles = [msg.handles[at + 16 * j : at + 16 * j + 16] for j in range(count)]
        at += 16 * count
        out.append((msg.records[4 * i : 4 * i + 4], msg.presence[width * i : width * i + width],
                    handles))  # fmt: skip
    return out


def _request(msg: ReleaseRequest, rows: list[tuple[bytes, bytes, list[bytes]]]) -> ReleaseRequest:
    return dataclasses.replace(
        msg,
        records=b"".join(r for r, _p, _h in rows),
        presence=b"".join(p for _r, p, _h in rows),
        counts=bytes(len(h) for _r, _p, h in rows),
        handles=b"".join(b"".join(h) for _r, _p, h in rows),
    )


def _rows(edit: Callable[[list[tuple[bytes, bytes, list[bytes]]], RuleContext], None]) -> Do:
    def do(msg: ReleaseRequest, c: RuleContext) -> ReleaseRequest:
        rows = _records(msg)
        edit(rows, c)
        return _request(msg, rows)

    return _with(do)


def _multi(rows: list[tuple[bytes, bytes, list[bytes]]]) -> int:
    return next((i for i, (_r, _p, h) in enumerate(rows) if len(h) >= 2), 0)


def _duplicate_handle(rows: list[tuple[bytes, bytes, list[bytes]]], _c: RuleContext) -> None:
    r, p, h = rows[0]
    rows[0] = (r, p, [h[0], *h])


def _descending(rows: list[tuple[bytes, bytes, list[bytes]]], _c: RuleContext) -> None:
    i = _multi(rows)
    r, p, h = rows[i]
    rows[i] = (r, p, list(reversed(h)))


def _foreign(rows: list[tuple[bytes, bytes, list[bytes]]], _c: RuleContext) -> None:
    """Record 0 claims, instead of its own first handle, record 1's (kept ascending)."""
    r, p, h = rows[0]
    rows[0] = (r, p, sorted({rows[1][2][0], *h[1:]}))


def _made_up(rows: list[tuple[bytes, bytes, list[bytes]]], _c: RuleContext) -> None:
    r, p, h = rows[0]
    rows[0] = (r, p, sorted({hashlib.sha256(b"no output's").digest()[:16], *h[1:]}))


def _presence_bit(record: int, bit: Callable[[RuleContext, int], int]) -> Do:
    def edit(rows: list[tuple[bytes, bytes, list[bytes]]], c: RuleContext) -> None:
        i = min(record, len(rows) - 1)
        r, p, h = rows[i]
        b = bit(c, len(p))
        q = bytearray(p)
        if b // 8 >= len(q):  # K a multiple of 8: no spare bit, so a byte too many carries it
            q.extend(bytes(b // 8 - len(q) + 1))
        q[b // 8] |= 1 << (b % 8)
        rows[i] = (r, bytes(q), h)

    return _rows(edit)


def _welcome(_m: bytes, _c: RuleContext) -> list[bytes]:
    return [encode(Welcome(b"\x00" * 16, "2026-01", 1, 1, b"\x00" * 32, 1, 1))]


def _receipts_first(m: bytes, _c: RuleContext) -> list[bytes]:
    request = decode(m)
    assert isinstance(request, ReleaseRequest)
    return [encode(ReceiptsMessage(request.request, b"\x01", (b"receipt",))), m]


def _q(name: str, section: str, description: str, rule: At, code: A, *flags: str) -> QueryCase:
    return QueryCase(name, section, description, rule, code, flags)


QUERY_CASES: Final[tuple[QueryCase, ...]] = (
    # The first frame (§6.2): codec.
    _q("empty_message", "6.2", "an empty message", At(Q.HELLO, _fixed(b"")), M, "codec"),
    _q("psi_version_byte", "6.2", "a first byte 0x02 (an xlink-psi-v2 message)",
       At(Q.HELLO, _bytes(lambda m: b"\x02" + m[1:])), A.UNSUPPORTED_VERSION, "codec"),
    _q("transfer_frame", "6.2", "a release-transfer frame (f0 58 52 01)",
       At(Q.HELLO, _fixed(b"\xf0XR\x01\x07" + bytes(32))), A.UNSUPPORTED_VERSION, "codec"),
    _q("truncated_body", "6.2", "a body that ends before its last item",
       At(Q.HELLO, _bytes(lambda m: m[:-1])), A.TRUNCATED, "codec"),
    _q("truncated_bin", "6.2", "a bin header announcing more bytes than follow",
       At(Q.HELLO, _bytes(lambda m: m[:4])), A.TRUNCATED, "codec"),
    _q("trailing_byte", "6.2", "a byte after the array",
       At(Q.HELLO, _bytes(lambda m: m + b"\x00")), M, "codec"),
    _q("non_canonical_integer", "6.2", "TABLE_REQUEST's since 0 as a uint8 (cc 00)",
       At(Q.HELLO, _fixed(bytes.fromhex("519203cc00"))), M, "codec", "non-canonical"),
    _q("non_canonical_bin", "6.2", "the HELLO's nonce as a bin16 instead of a bin8",
       At(Q.HELLO, _non_canonical_nonce), M, "codec", "non-canonical"),
    _q("map_body", "6.2", "a map instead of an array", At(Q.HELLO, _fixed(b"\x51\x81\x01\x02")),
       M, "codec"),
    _q("integer_body", "6.2", "a body that is not an array", At(Q.HELLO, _fixed(b"\x51\x01")),
       M, "codec"),
    _q("empty_array", "6.2", "an empty array", At(Q.HELLO, _fixed(b"\x51\x90")), M, "codec"),
    _q("negative_type", "6.2", "a negative type", At(Q.HELLO, _fixed(b"\x51\x91\xff")), M,
       "codec"),
    _q("unknown_type_13", "6.2", "type 13", At(Q.HELLO, _fixed(b"\x51\x91\x0d")),
       A.UNKNOWN_MESSAGE, "codec"),
    _q("unknown_type_0", "6.2", "type 0", At(Q.HELLO, _fixed(b"\x51\x91\x00")),
       A.UNKNOWN_MESSAGE, "codec"),
    _q("hello_five_fields", "6.2", "a HELLO without its last field",
       At(Q.HELLO, _raw(lambda f: f[:-1])), M, "codec"),
    _q("hello_seven_fields", "6.2", "a HELLO with a seventh field (have_version 0)",
       At(Q.HELLO, _raw(lambda f: [*f, 0])), M, "codec"),
    _q("hello_nonce_str", "6.2", "a str where a bin is expected (the nonce)",
       At(Q.HELLO, _hello_field(0, "x" * 16)), M, "codec"),
    _q("hello_nonce_15", "6.2", "a HELLO nonce of 15 bytes",
       At(Q.HELLO, _raw(lambda f: [f[0], f[1][:15], *f[2:]])), M, "codec"),
    _q("table_request_since_bool", "6.2", "a boolean where an integer is expected",
       At(Q.HELLO, _fixed(b"\x51\x92\x03\xc3")), M, "codec"),
    _q("ext_type", "6.2", "an ext type", At(Q.HELLO, _fixed(bytes.fromhex("519201d40178"))), M,
       "codec"),
    _q("reserved_byte", "6.2", "the reserved byte 0xc1", At(Q.HELLO, _fixed(b"\x51\xc1")), M,
       "codec"),
    _q("array_header_beyond_limit", "6.2", "an array32 header of 2^32-1 items",
       At(Q.HELLO, _fixed(bytes.fromhex("51ddffffffff"))), M, "codec"),
    _q("bin_header_beyond_limit", "6.2", "a bin32 header of 2^31-1 bytes, the body ending there",
       At(Q.HELLO, _fixed(bytes.fromhex("51930601c67fffffff"))), A.TRUNCATED, "codec"),
    # The handshake (§7.1).
    _q("hello_other_mou_id", "7.1", "a HELLO naming another MOU",
       At(Q.HELLO, _replace(mou_id="another-mou")), A.MOU_MISMATCH, "handshake"),
    _q("hello_other_mou_digest", "7.1", "a HELLO with another MOU digest",
       At(Q.HELLO, _replace(mou_digest=bytes(32))), A.MOU_MISMATCH, "handshake"),
    _q("hello_other_schema", "7.1", "a HELLO with another linkage-schema digest",
       At(Q.HELLO, _replace(schema_digest=bytes(32))), A.SCHEMA_MISMATCH, "handshake"),
    _q("hello_other_asker", "7.1", "a HELLO from another asker",
       At(Q.HELLO, _replace(asker="FBI")), A.PARTY_MISMATCH, "handshake"),
    _q("hello_parties_swapped", "7.1", "a HELLO with the asker and the holder swapped",
       At(Q.HELLO, lambda m, c: _replace(asker=decode(m).holder, holder=decode(m).asker)(m, c)),  # type: ignore[union-attr]
       A.PARTY_MISMATCH, "handshake"),
    # Order (§7).
    _q("evaluate_before_hello", "7", "an EVALUATE before the HELLO",
       At(Q.HELLO, _fixed(encode(Evaluate(1, bytes.fromhex(
           "14bcd6a77459ddc7cabb9b5ea7249ccae4d23e8dcdcc7e0ffbf3ebdd9bd95551"))))), U, "order"),
    _q("bye_before_hello", "7", "a BYE before the HELLO", At(Q.HELLO, _fixed(b"\x51\x91\x0b")),
       U, "order"),
    _q("hello_twice", "7", "a second HELLO",
       At(Q.TABLE_REQUEST, lambda m, c: [c.sent[Q.HELLO][0]]), U, "order"),
    _q("welcome_to_the_holder", "7", "a WELCOME sent to the holder",
       At(Q.TABLE_REQUEST, _welcome), U, "order"),
    _q("table_request_not_served", "5.4", "a TABLE_REQUEST since a version the holder never served",
       At(Q.TABLE_REQUEST, _fixed(encode(TableRequest(2**20)))), A.BAD_TABLE, "table"),
    _q("evaluate_replayed", "7.2", "an EVALUATE with the number of the previous request",
       At(Q.EVALUATE, lambda m, _c: [m, m]), A.CHUNK_REPLAYED, "order", "replay"),
    _q("evaluate_skipped", "7.2", "an EVALUATE numbered 2 as the first request",
       At(Q.EVALUATE, _with(lambda e, _c: dataclasses.replace(e, request=e.request + 1))),
       A.CHUNK_OUT_OF_ORDER, "order"),
    _q("evaluate_request_zero", "7.2", "an EVALUATE numbered 0 (requests start at 1)",
       At(Q.EVALUATE, _with(lambda e, _c: dataclasses.replace(e, request=0))),
       A.CHUNK_REPLAYED, "order"),
    _q("evaluate_33_bytes", "6.2", "an EVALUATE of 33 bytes (not whole elements)",
       At(Q.EVALUATE, _raw(lambda f: [f[0], f[1], f[2][:33]])), M, "codec", "count"),
    _q("evaluate_empty", "6.2", "an EVALUATE of no element",
       At(Q.EVALUATE, _raw(lambda f: [f[0], f[1], b""])), M, "codec", "count"),
    # Elements (§4).
    _q("evaluate_identity", "4", "EVALUATE element 1 the identity (32 zero bytes)",
       At(Q.EVALUATE, _element_at(1, lambda _e: bytes(32))), A.IDENTITY_ELEMENT, "element"),
    _q("evaluate_identity_top_bit", "4", "EVALUATE element 1 the identity with bit 255 set",
       At(Q.EVALUATE, _element_at(1, lambda _e: bytes(31) + b"\x80")), A.INVALID_ELEMENT,
       "element"),
    _q("evaluate_top_bit_set", "4", "EVALUATE element 1 a valid element with bit 255 set",
       At(Q.EVALUATE, _element_at(1, with_top_bit)), A.INVALID_ELEMENT, "element"),
    _q("evaluate_not_canonical_p", "4", "EVALUATE element 1 the field value p (not reduced)",
       At(Q.EVALUATE, _element_at(1, lambda _e: (2**255 - 19).to_bytes(32, "little"))),
       A.INVALID_ELEMENT, "element", "non-canonical"),
    _q("evaluate_negative_s", "4", "EVALUATE element 1 s = 1 (odd: negative)",
       At(Q.EVALUATE, _element_at(1, lambda _e: (1).to_bytes(32, "little"))),
       A.INVALID_ELEMENT, "element"),
    _q("evaluate_no_square_root", "4", "EVALUATE element 1 the first even s with no decoding",
       At(Q.EVALUATE, _element_at(1, lambda _e: (2).to_bytes(32, "little"))),
       A.INVALID_ELEMENT, "element"),
    # Release requests (§7.3).
    _q("release_request_presence_short", "6.2", "a presence that is not P bytes per record",
       At(Q.RELEASE_REQUEST, _with(lambda r, _c: dataclasses.replace(
           r, presence=r.presence[:-1]))), M, "count"),
    _q("release_request_counts_disagree", "6.2", "more counts than records",
       At(Q.RELEASE_REQUEST, _with(lambda r, _c: dataclasses.replace(
           r, counts=r.counts + b"\x01"))), M, "count"),
    _q("release_request_zero_count", "6.2", "a record of 0 handles",
       At(Q.RELEASE_REQUEST, _with(lambda r, _c: dataclasses.replace(
           r, counts=b"\x00" + r.counts[1:]))), M, "count"),
    _q("release_request_handles_disagree", "6.2",
       "handles that are not 16 bytes times the sum of the counts",
       At(Q.RELEASE_REQUEST, _with(lambda r, _c: dataclasses.replace(
           r, handles=r.handles[:-16]))), M, "count"),
    _q("release_request_presence_bit_k", "6.2",
       "the first presence sets bit K (a key the schema does not have)",
       At(Q.RELEASE_REQUEST, _presence_bit(0, lambda c, _w: c.memory["schema_keys"])), M,
       "presence"),
    _q("release_request_presence_bit_7", "6.2",
       "the second presence sets the last bit of its last byte (a byte more when K is a "
       "multiple of 8 and that bit is a key's)",
       At(Q.RELEASE_REQUEST, _presence_bit(
           1, lambda c, width: max(8 * width - 1, c.memory["schema_keys"]))), M,
       "presence"),
    _q("release_request_duplicate_record", "6.2", "a RELEASE_REQUEST naming one record twice",
       At(Q.RELEASE_REQUEST, _rows(lambda rows, _c: rows.insert(1, rows[0]))), M, "duplicate"),
    _q("release_request_duplicate_handle", "6.2", "a handle repeated within a record",
       At(Q.RELEASE_REQUEST, _rows(_duplicate_handle)), M, "duplicate"),
    _q("release_request_handles_descending", "6.2", "the handles of one record not ascending",
       At(Q.RELEASE_REQUEST, _rows(_descending)), M, "order"),
    _q("release_request_replayed_number", "7.3", "the number of the last EVALUATE",
       At(Q.RELEASE_REQUEST, _with(lambda r, _c: dataclasses.replace(
           r, request=r.request - 1))), A.CHUNK_REPLAYED, "order", "replay"),
    _q("release_request_foreign_handle", "7.3",
       "a record claiming the handle of a token another record holds",
       At(Q.RELEASE_REQUEST, _rows(_foreign)), A.CONFIRMATION_FAILED, "handles"),
    _q("release_request_made_up_handle", "7.3", "a handle that is no output's",
       At(Q.RELEASE_REQUEST, _rows(_made_up)), A.CONFIRMATION_FAILED, "handles"),
    # Receipts (§7.3).
    _q("receipts_before_releases", "7.3", "RECEIPTS with no release outstanding",
       At(Q.RELEASE_REQUEST, _receipts_first), U, "order"),
    _q("receipts_wrong_count", "7.3", "RECEIPTS with one answer more than the releases sent",
       At(Q.RECEIPTS, _with(lambda r, _c: dataclasses.replace(
           r, oks=r.oks + r.oks[:1], answers=(*r.answers, r.answers[0])))), A.WRONG_COUNT,
       "count"),
    _q("receipts_flag_2", "6.2", "an answer flag other than 0 or 1",
       At(Q.RECEIPTS, _raw(lambda f: [f[0], f[1], b"\x02" + f[2][1:], f[3]])), M, "codec"),
    _q("receipts_other_request", "7.3", "RECEIPTS for another request number",
       At(Q.RECEIPTS, _with(lambda r, _c: dataclasses.replace(r, request=r.request + 1))), U,
       "order"),
    # The asker's ABORT (§6).
    dataclasses.replace(
        _q("abort_from_the_asker", "6", "an ABORT ends the session; nothing is sent back",
           At(Q.EVALUATE, _fixed(encode(Abort(int(A.WRONG_COUNT), "conformance")))),
           A.WRONG_COUNT, "peer-abort"),
        peer_abort=True),
    dataclasses.replace(
        _q("abort_unknown_code", "6", "an ABORT with a code this version does not define",
           At(Q.TABLE_REQUEST, _fixed(encode(Abort(200, ""))) ), A.PEER_ABORTED, "peer-abort"),
        peer_abort=True),
)  # fmt: skip

OFFLINE_ONLY: Final = {
    "evaluate_over_quota": (
        "needs a holder with 4 evaluations left today: the kit's MOU gives 50,000, and a live "
        "runner cannot spend them down in a suite run"
    ),
    "message_after_bye": (
        "after BYE the holder has closed the connection: a frame after it is the reference "
        "machine's caller error, not observable live"
    ),
}
"""Holder cases of query-v1/invalid.json with no live counterpart, and why."""
