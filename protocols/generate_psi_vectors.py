#!/usr/bin/env python3
"""Generate the xlink-psi-v2 test vectors (spec: protocols/xlink-psi-v2.md §11).

Writes ``protocols/vectors/psi-v2/valid.json`` and ``invalid.json``. Everything is derived
from fixed seeds through ``DeterministicRandom``, so running this twice gives identical files;
``tests/protocol/test_vectors.py`` regenerates the vectors in memory and checks the files.

Usage: ``python protocols/generate_psi_vectors.py [--check]``
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import msgpack

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vector_files

from xlink.conformance.cases_psi import PSI_CASES, ROLE_CASES
from xlink.conformance.script import with_top_bit
from xlink.crypto.rand import DeterministicRandom
from xlink.crypto.suite import SMALL_ORDER_U, SUITE_R255, SUITE_X25519
from xlink.errors import RemoteProtocolError
from xlink.linkage.tokens import TokenSet, TokenSetBuilder
from xlink.protocol import RevealBound
from xlink.protocol.abort import AbortCode
from xlink.protocol.codec import decode_message, encode_message
from xlink.protocol.config import Mode, Role, SessionConfig
from xlink.protocol.events import CardinalityResult, PsiResult
from xlink.protocol.limits import MAX_SET_SIZE
from xlink.protocol.messages import (
    Commit,
    ConfirmRequest,
    ConfirmResponse,
    Elements,
    Hello,
    Message,
    Reblinded,
    Reveal,
)
from xlink.protocol.pair import run_pair
from xlink.protocol.session import PsiSession

OUT_DIR = Path(__file__).resolve().parent / "vectors" / "psi-v2"
INVALID_SCHEMA = "protocols/schemas/invalid-vectors-v1.json"
FLAG_NOTES = {
    "codec": "the message is not a canonical, well-typed encoding (§6.2)",
    "limits": "a length or count above the codec's limits, refused from its header (§6.3)",
    "downgrade": "the shape of xlink-psi-v1, refused in v2",
    "handshake": "a Hello that does not agree with the MOU, the schema or the parties (§6.4)",
    "probing": "a set larger than the MOU allows: dictionary probing (§6.4, §10)",
    "ordering": "a message in a state that does not allow it, or a chunk out of order (§5.5)",
    "replay": "a message or chunk sent twice",
    "count": "the wrong number of elements, chunks or values",
    "point-validation": "an element or point that is not a valid group element (§4.3, §4.4)",
    "duplicates": "two equal elements in one set (§4.3)",
    "dishonest": "a peer lying about its matches, answers, commitment or reveal (§6.7-6.11)",
}
"""What each flag of invalid.json means (Wycheproof's ``notes``)."""
KEYS = ("name_dob", "passport", "surname_postcode")
P = 2**255 - 19
# An edwards25519 point of order 8 (libsodium's small-order blocklist).
ORDER_8_POINT = bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05")

# -- inputs ------------------------------------------------------------------------------------


def _token(key: str, value: str) -> bytes:
    return hashlib.sha256(f"xlink-vector-token|{key}|{value}".encode()).digest()


def _records(side: str) -> list[tuple[str, list[tuple[str, bytes]]]]:
    """Four records per side: one agrees on all keys, one on two keys, one shares only a
    surname+postcode value that two of the responder's records also carry, one matches nothing."""
    shared = {
        "p1": {k: f"p1-{k}" for k in KEYS},
        "p2": {"name_dob": "p2-nd", "passport": "p2-pp", "surname_postcode": f"p2-sp-{side}"},
        "p3": {"name_dob": f"p3-nd-{side}", "passport": f"p3-pp-{side}", "surname_postcode": "sp"},
    }
    out = []
    for i, person in enumerate(("p1", "p2", "p3")):
        out.append((f"{side}-{i + 1}", [(k, _token(k, v)) for k, v in shared[person].items()]))
    out.append((f"{side}-4", [(k, _token(k, f"{side}-only-{k}")) for k in KEYS]))
    if side == "R":
        out.append(("R-5", [("surname_postcode", _token("surname_postcode", "sp"))]))
    return out


Records = list[tuple[str, list[tuple[str, bytes]]]]

MANY_KEYS = tuple(f"k{i:02d}" for i in range(70))


def _many_keys_records(side: str) -> Records:
    """Two records per side under :data:`MANY_KEYS` (see the ``psi_seventy_keys`` case)."""
    one = {"k00": "same", "k09": f"differs-{side}", "k65": "same"}
    two = {"k69": "same"}
    if side == "R":
        one["k33"] = "responder-only"
        two["k08"] = "responder-only"
    return [
        (f"{side}-{i + 1}", [(k, _token(k, f"{i}-{v}")) for k, v in rec.items()])
        for i, rec in enumerate((one, two))
    ]


def _token_set(records: Records) -> TokenSet:
    builder = TokenSetBuilder(KEYS)
    for record_id, tokens in records:
        builder.add_record(record_id, tokens)
    return builder.build()


@dataclasses.dataclass(frozen=True)
class Side:
    """One party of a valid case: its records and its local parameters."""

    records: Records
    seed: str
    chunk_size: int = 4
    reveal_chunk_records: int = 4096
    keys: tuple[str, ...] = KEYS
    bound: RevealBound | None = None
    max_peer_set_size: int = MAX_SET_SIZE
    suite_id: int = SUITE_X25519.suite_id


R255 = SUITE_R255.suite_id

MINIMAL_BOUND = RevealBound((1.0, 1.0, 1.0), (-1.0, -1.0, -1.0), 2.0)
# Kinds of evidence as bits, this vector's own (any bit per kind): name_dob holds two (bits 1
# and 2), passport one (4), surname_postcode one (8); a decision needs two. No score limit.
EVIDENCE_BOUND = RevealBound((1.0, 1.0, 1.0), (-1.0, -1.0, -1.0), -10.0, (3, 4, 8), 2)


def _config(role: Role, mode: Mode, side: Side) -> SessionConfig:
    me, peer = ("RCMP", "DHS") if role is Role.INITIATOR else ("DHS", "RCMP")
    return SessionConfig(
        role=role,
        mode=mode,
        party_id=me,
        peer_id=peer,
        mou_id="MOU-CA-US-2025-001",
        mou_digest=hashlib.sha256(b"xlink vector MOU").digest(),
        schema_digest=hashlib.sha256(b"xlink vector schema").digest(),
        padding_bucket=8,
        chunk_size=side.chunk_size,
        reveal_chunk_records=side.reveal_chunk_records,
        max_peer_set_size=side.max_peer_set_size,
        reveal_bound=side.bound,
        suite_id=side.suite_id,
    )


def _party_json(role: Role, mode: Mode, side: Side) -> dict[str, Any]:
    c = _config(role, mode, side)
    return {
        "role": role.name,
        "mode": mode.name,
        "party_id": c.party_id,
        "peer_id": c.peer_id,
        "mou_id": c.mou_id,
        "mou_digest": c.mou_digest.hex(),
        "schema_digest": c.schema_digest.hex(),
        "padding_bucket": c.padding_bucket,
        "chunk_size": c.chunk_size,
        "suite_id": c.suite_id,
        "reveal_chunk_records": c.reveal_chunk_records,
        "max_peer_set_size": c.max_peer_set_size,
        "reveal_bound": None
        if c.reveal_bound is None
        else {
            "agreement": list(c.reveal_bound.agreement),
            "disagreement": list(c.reveal_bound.disagreement),
            "threshold": c.reveal_bound.threshold,
            **(
                {"groups": list(c.reveal_bound.groups), "min_groups": c.reveal_bound.min_groups}
                if c.reveal_bound.min_groups
                else {}
            ),
        },
        "rng_seed": side.seed,
        "key_names": list(side.keys),
        "records": [
            {"id": rid, "tokens": [[k, v.hex()] for k, v in toks]} for rid, toks in side.records
        ],
    }


def session_from_json(party: dict[str, Any]) -> PsiSession:
    """Build the session a vector describes (used by the tests and by other implementations'
    harnesses as the reference reading of the JSON)."""
    config = SessionConfig(
        role=Role[party["role"]],
        mode=Mode[party["mode"]],
        party_id=party["party_id"],
        peer_id=party["peer_id"],
        mou_id=party["mou_id"],
        mou_digest=bytes.fromhex(party["mou_digest"]),
        schema_digest=bytes.fromhex(party["schema_digest"]),
        padding_bucket=party["padding_bucket"],
        chunk_size=party["chunk_size"],
        suite_id=party["suite_id"],
        reveal_chunk_records=party["reveal_chunk_records"],
        max_peer_set_size=party["max_peer_set_size"],
        reveal_bound=None
        if party["reveal_bound"] is None
        else RevealBound(
            tuple(party["reveal_bound"]["agreement"]),
            tuple(party["reveal_bound"]["disagreement"]),
            party["reveal_bound"]["threshold"],
            tuple(party["reveal_bound"].get("groups", ())),
            party["reveal_bound"].get("min_groups", 0),
        ),
    )
    builder = TokenSetBuilder(party["key_names"])
    for record in party["records"]:
        builder.add_record(record["id"], [(k, bytes.fromhex(v)) for k, v in record["tokens"]])
    return PsiSession(config, builder.build(), rng=DeterministicRandom(party["rng_seed"]))


# -- valid vectors -----------------------------------------------------------------------------


def _result_json(
    result: PsiResult | CardinalityResult, session: PsiSession, peer: PsiSession
) -> dict[str, Any]:
    if isinstance(result, CardinalityResult):
        return {"intersection_size": result.intersection_size}
    # Spec §7.5: the label evaluation of every candidate pair (its handles ascending; the pairs
    # in ascending order of their joined handles, each once): our request, the peer's answer,
    # our outputs (under the peer's key).
    pairs = sorted({tuple(sorted(p.handles)) for p in result.pairs}, key=b"".join)
    request = session.labels.request(pairs)
    answer = peer.labels.answer(request)
    outputs = session.labels.outputs(pairs, answer)
    return {
        "matched_tokens": result.matched_tokens,
        "label_pairs": [[h.hex() for h in p] for p in pairs],
        "label_request": request.hex(),
        "label_answer": answer.hex(),
        "label_outputs": [o.hex() for o in outputs],
        "pairs": [
            {
                "local_record_id": p.local_record_id,
                "peer_ref": p.peer_ref,
                "agreeing_keys": sorted(p.agreeing_keys),
                "handles": [h.hex() for h in p.handles],
                "local_keys": sorted(p.local_keys),
                "peer_keys": sorted(p.peer_keys),
            }
            for p in result.pairs
        ],
    }


def _valid_case(
    name: str, description: str, mode: Mode, initiator: Side, responder: Side
) -> dict[str, Any]:
    parties = {
        "initiator": _party_json(Role.INITIATOR, mode, initiator),
        "responder": _party_json(Role.RESPONDER, mode, responder),
    }
    a = session_from_json(parties["initiator"])
    b = session_from_json(parties["responder"])
    messages: list[dict[str, str]] = []

    def observe(sender: PsiSession, message: bytes) -> None:
        who = "initiator" if sender is a else "responder"
        messages.append(
            {"from": who, "type": type(decode_message(message)).__name__, "hex": message.hex()}
        )

    ra, rb = run_pair(a, b, observer=observe)
    assert a.session_id is not None
    return {
        "name": name,
        "description": description,
        **parties,
        "messages": messages,
        "session_id": a.session_id.hex(),
        "results": {
            "initiator": _result_json(ra, a, b),
            "responder": _result_json(rb, b, a),
        },
    }


def valid_cases() -> list[dict[str, Any]]:
    i_records, r_records = _records("I"), _records("R")
    return [
        _valid_case(
            "psi_three_keys",
            "PSI mode; one person agrees on all three keys, one on two, one shares only a "
            "surname+postcode value that two responder records carry (deduplicated before "
            "blinding); four chunks of four elements per side.",
            Mode.PSI,
            Side(i_records, "vector-psi-initiator", max_peer_set_size=16),
            Side(r_records, "vector-psi-responder", max_peer_set_size=16),
        ),
        _valid_case(
            "cardinality_three_keys",
            "Cardinality mode over the same sets: re-blinded chunks come back sorted, no reveal.",
            Mode.CARDINALITY,
            Side(i_records, "vector-card-initiator"),
            Side(r_records, "vector-card-responder"),
        ),
        _valid_case(
            "psi_empty_initiator",
            "PSI mode; the initiator has no records: it sends one bucket (8) of dummies, nothing "
            "matches, and each side sends one empty final Reveal.",
            Mode.PSI,
            Side([], "vector-empty-initiator"),
            Side(r_records, "vector-empty-responder"),
        ),
        _valid_case(
            "cardinality_uneven_chunks",
            "Cardinality mode; chunk sizes 3 (initiator) and 5 (responder), neither dividing "
            "N = 16: Elements chunks of 3,3,3,3,3,1 and 5,5,5,1; each side returns the sorted "
            "re-blinded peer set cut into the PEER's chunk sizes.",
            Mode.CARDINALITY,
            Side(i_records, "vector-uneven-initiator", chunk_size=3),
            Side(r_records, "vector-uneven-responder", chunk_size=5),
        ),
        _valid_case(
            "psi_multi_chunk_reveal",
            "PSI mode; chunk sizes 3 and 5 (PSI returns each chunk in the peer's chunking), and "
            "reveal_chunk_records 2 on both sides: the initiator's 3 matched records go in "
            "Reveal chunks of 2 and 1, the responder's 4 in chunks of 2 and 2; peer references "
            "run across chunks.",
            Mode.PSI,
            Side(i_records, "vector-multi-initiator", chunk_size=3, reveal_chunk_records=2),
            Side(r_records, "vector-multi-responder", chunk_size=5, reveal_chunk_records=2),
        ),
        _valid_case(
            "psi_seventy_keys",
            "PSI mode with a schema of 70 keys: key presence is 9 bytes per entry, and the keys "
            "used (0, 8, 9, 33, 64, 65, 69) sit in different bytes and on both sides of bit 64. "
            "I-1 and R-1 agree on k00 and k65 and disagree on k09; R-1 also has k33, which I-1 "
            "lacks; I-2 and R-2 agree on k69, and R-2 has k08 besides.",
            Mode.PSI,
            Side(_many_keys_records("I"), "vector-70-initiator", keys=MANY_KEYS),
            Side(_many_keys_records("R"), "vector-70-responder", keys=MANY_KEYS),
        ),
        _valid_case(
            "psi_minimal_reveal",
            "PSI mode with a minimal reveal on both sides: every key weighs 1 when it agrees, "
            "-1 when it disagrees, threshold 2. A record whose matched keys cannot sum to 2 "
            "(one matched key) is not revealed, so only the pair agreeing on two or more keys "
            "is a candidate.",
            Mode.PSI,
            Side(i_records, "vector-minimal-initiator", bound=MINIMAL_BOUND),
            Side(r_records, "vector-minimal-responder", bound=MINIMAL_BOUND),
        ),
        _valid_case(
            "psi_three_keys_suite2",
            "psi_three_keys under ciphersuite 2 (XLINK-PSI-X25519-SHA512-R255, spec §4.6): "
            "elements are squares of ristretto255 encodings, and the ConfirmRequest, "
            "ConfirmResponse points and the label evaluation are ristretto255 encodings.",
            Mode.PSI,
            Side(i_records, "vector-r255-initiator", max_peer_set_size=16, suite_id=R255),
            Side(r_records, "vector-r255-responder", max_peer_set_size=16, suite_id=R255),
        ),
        _valid_case(
            "cardinality_three_keys_suite2",
            "cardinality_three_keys under ciphersuite 2.",
            Mode.CARDINALITY,
            Side(i_records, "vector-r255-card-initiator", suite_id=R255),
            Side(r_records, "vector-r255-card-responder", suite_id=R255),
        ),
        _valid_case(
            "psi_evidence_reveal",
            "PSI mode with a reveal bound that carries kinds of evidence (§6.7), the vector's "
            "own bits per key: 3 (name_dob: two kinds), 4 (passport) and 8 (surname_postcode: "
            "one kind here), at least 2 needed, threshold -10 (no score limit). A record whose "
            "matched keys hold one kind only (I-3, R-3 and R-5: surname_postcode alone) is not "
            "revealed; I-1/R-1 (every key) and I-2/R-2 (name_dob and passport) are.",
            Mode.PSI,
            Side(i_records, "vector-evidence-initiator", bound=EVIDENCE_BOUND),
            Side(r_records, "vector-evidence-responder", bound=EVIDENCE_BOUND),
        ),
    ]


# -- invalid vectors ---------------------------------------------------------------------------


def _pack(*body: object) -> bytes:
    return b"\x02" + msgpack.packb(list(body), use_bin_type=True)


def _unpack_field(message: bytes, index: int) -> Any:
    return msgpack.unpackb(message[1:])[index]


def _fields(message: Message) -> list[object]:
    return [getattr(message, f.name) for f in dataclasses.fields(message)]


def _with_element(message: bytes, index: int, element: bytes) -> bytes:
    decoded = decode_message(message)
    assert isinstance(decoded, Elements | Reblinded)
    buf = bytearray(decoded.elements)
    buf[32 * index : 32 * index + 32] = element
    return encode_message(dataclasses.replace(decoded, elements=bytes(buf)))


def _hello_with(message: bytes, **changes: object) -> bytes:
    decoded = decode_message(message)
    assert isinstance(decoded, Hello)
    return encode_message(dataclasses.replace(decoded, **changes))


def _entry_keys(valid: dict[str, Any], entry: bytes) -> list[int]:
    """Indices (in the schema's key order) of the keys of an initiator reveal entry's handles,
    from the responder's result: the pairs naming those handles say which keys agreed."""
    handles = {entry[i : i + 16].hex() for i in range(0, len(entry), 16)}
    names = valid["initiator"]["key_names"]
    keys = set()
    for pair in valid["results"]["responder"]["pairs"]:
        if handles & set(pair["handles"]):
            keys.update(pair["agreeing_keys"])
    return sorted(names.index(k) for k in keys)


def _with_byte(data: bytes, index: int, value: int) -> bytes:
    return data[:index] + bytes([value]) + data[index + 1 :]


def _clear_bits(presence: bytes, entry: int, keys: list[int]) -> bytes:
    """``presence`` (one byte per entry) with the bits of ``keys`` cleared for ``entry``."""
    mask = sum(1 << key for key in keys)
    return _with_byte(presence, entry, presence[entry] & ~mask & 0xFF)


def invalid_cases(valid: dict[str, Any]) -> list[dict[str, Any]]:
    """Cases built by corrupting the peer's messages of the valid PSI transcript."""
    from_r = [bytes.fromhex(m["hex"]) for m in valid["messages"] if m["from"] == "responder"]
    by_type: dict[str, list[bytes]] = {}
    for m in valid["messages"]:
        if m["from"] == "initiator":
            by_type.setdefault(m["type"], []).append(bytes.fromhex(m["hex"]))
    hello, elements = by_type["Hello"][0], by_type["Elements"]
    reblinded, reveals = by_type["Reblinded"], by_type["Reveal"]
    requests, responses = by_type["ConfirmRequest"], by_type["ConfirmResponse"]
    commit = by_type["Commit"][0]
    r_hello = from_r[0]
    from_i = [bytes.fromhex(m["hex"]) for m in valid["messages"] if m["from"] == "initiator"]
    # The initiator's messages up to its first Reveal, in the order it sent them.
    exchange = from_i[: from_i.index(reveals[0])]
    before_commit = exchange[: exchange.index(commit)]
    before_answers = exchange[: exchange.index(responses[0])]
    request0 = decode_message(requests[0])
    answer0 = decode_message(responses[0])
    assert isinstance(request0, ConfirmRequest) and isinstance(answer0, ConfirmResponse)
    assert len(answer0.points) >= 128
    e0 = decode_message(elements[0])
    assert isinstance(e0, Elements)
    reveal = decode_message(reveals[0])
    assert isinstance(reveal, Reveal) and reveal.final and len(reveal.records) >= 2
    multi = next(r for r in reveal.records if len(r) >= 32)
    fake = hashlib.sha256(b"not a handle").digest()[:16]
    forged_entry = b"".join(sorted([multi[16:32], fake]))
    # Key presence: one byte per entry (three keys); entry j's is byte j.
    keys = valid["initiator"]["key_names"]
    assert len(keys) < 8 and len(reveal.presence) == len(reveal.records)
    j = reveal.records.index(multi)
    unknown_key = _with_byte(reveal.presence, j, reveal.presence[j] | 0x80)  # bit 7: no key
    no_key = _clear_bits(reveal.presence, j, _entry_keys(valid, multi))

    def with_entry(entry: bytes) -> bytes:
        return encode_message(
            dataclasses.replace(
                reveal, records=tuple(entry if r == multi else r for r in reveal.records)
            )
        )

    def with_presence(presence: bytes) -> bytes:
        return encode_message(dataclasses.replace(reveal, presence=presence))

    h_fields = _fields(decode_message(hello))

    def hello_raw(index: int, value: object) -> bytes:
        fields = list(h_fields)
        fields[index] = value
        return _pack(1, *fields)

    cases: list[tuple[str, str, str, list[bytes], AbortCode]] = [
        (
            "truncated",
            "Hello cut short inside its msgpack body",
            "R",
            [hello[:-5]],
            AbortCode.TRUNCATED,
        ),
        ("empty_message", "a zero-length message", "R", [b""], AbortCode.MALFORMED_MESSAGE),
        (
            "oversize_field",
            "sender_id of 65 bytes (limit 64)",
            "R",
            [hello_raw(3, "R" * 65)],
            AbortCode.MALFORMED_MESSAGE,
        ),
        (
            "oversize_chunk",
            "Elements chunk with one element more than the declared chunk_size",
            "R",
            [hello, encode_message(Elements(0, e0.elements + elements[1][-32:]))],
            AbortCode.WRONG_COUNT,
        ),
        (
            "wrong_version",
            "version byte 3",
            "R",
            [b"\x03" + hello[1:]],
            AbortCode.UNSUPPORTED_VERSION,
        ),
        (
            "version_one_refused",
            "a Hello of xlink-psi-v2 (version byte 1): v1 is decodable only to be refused",
            "R",
            [b"\x01" + hello[1:]],
            AbortCode.UNSUPPORTED_VERSION,
        ),
        (
            "set_size_above_mou_bound",
            "padded_size 24 (a multiple of the bucket) above the MOU's bound for the peer (16)",
            "R",
            [_hello_with(hello, padded_size=24)],
            AbortCode.BAD_SET_SIZE,
        ),
        (
            "wrong_suite",
            "suite_id 3",
            "R",
            [_hello_with(hello, suite_id=3)],
            AbortCode.UNSUPPORTED_SUITE,
        ),
        (
            "role_mismatch",
            "initiator's Hello claims the responder role",
            "R",
            [_hello_with(hello, role=1)],
            AbortCode.ROLE_MISMATCH,
        ),
        (
            "mode_mismatch",
            "CARDINALITY Hello to a PSI session",
            "R",
            [_hello_with(hello, mode=2)],
            AbortCode.MODE_MISMATCH,
        ),
        (
            "mou_id_mismatch",
            "different MOU id",
            "R",
            [_hello_with(hello, mou_id="MOU-OTHER")],
            AbortCode.MOU_MISMATCH,
        ),
        (
            "mou_digest_mismatch",
            "different MOU digest",
            "R",
            [_hello_with(hello, mou_digest=b"\x00" * 32)],
            AbortCode.MOU_MISMATCH,
        ),
        (
            "padding_bucket_mismatch",
            "different padding bucket",
            "R",
            [_hello_with(hello, padding_bucket=16, padded_size=16)],
            AbortCode.MOU_MISMATCH,
        ),
        (
            "schema_digest_mismatch",
            "different linkage-schema digest",
            "R",
            [_hello_with(hello, schema_digest=b"\x00" * 32)],
            AbortCode.SCHEMA_MISMATCH,
        ),
        (
            "party_mismatch_sender",
            "sender_id is not the expected peer",
            "R",
            [_hello_with(hello, sender_id="FBI")],
            AbortCode.PARTY_MISMATCH,
        ),
        (
            "party_mismatch_receiver",
            "receiver_id is not us",
            "R",
            [_hello_with(hello, receiver_id="CBP")],
            AbortCode.PARTY_MISMATCH,
        ),
        (
            "bad_set_size",
            "padded_size not a multiple of the bucket",
            "R",
            [_hello_with(hello, padded_size=12)],
            AbortCode.BAD_SET_SIZE,
        ),
        (
            "initiator_party_mismatch",
            "responder's Hello names another receiver",
            "I",
            [_hello_with(r_hello, receiver_id="CSIS")],
            AbortCode.PARTY_MISMATCH,
        ),
        (
            "initiator_role_mismatch",
            "responder's Hello claims the initiator role",
            "I",
            [_hello_with(r_hello, role=0)],
            AbortCode.ROLE_MISMATCH,
        ),
        (
            "unexpected_elements_before_hello",
            "Elements as the first message",
            "R",
            [elements[0]],
            AbortCode.UNEXPECTED_MESSAGE,
        ),
        (
            "unexpected_second_hello",
            "a second Hello",
            "R",
            [hello, hello],
            AbortCode.UNEXPECTED_MESSAGE,
        ),
        (
            "unexpected_reveal_in_exchange",
            "Reveal before the exchange is done",
            "R",
            [hello, reveals[0]],
            AbortCode.UNEXPECTED_MESSAGE,
        ),
        ("unknown_message_type", "message type 9", "R", [_pack(9, 0)], AbortCode.UNKNOWN_MESSAGE),
        (
            "unknown_message_type_uint16",
            "message type 300 (uint16): an unsigned integer, not a defined type",
            "R",
            [_pack(300, 0)],
            AbortCode.UNKNOWN_MESSAGE,
        ),
        (
            "negative_message_type",
            "message type -1 (negative fixint 0xff): types are unsigned",
            "R",
            [bytes.fromhex("0292ff00")],
            AbortCode.MALFORMED_MESSAGE,
        ),
        (
            "negative_message_type_int8",
            "message type -128 (int8 0xd0 0x80) alone in the array",
            "R",
            [bytes.fromhex("0291d080")],
            AbortCode.MALFORMED_MESSAGE,
        ),
        (
            "truncated_oversized_bin",
            "Elements whose bin32 header declares 2^31-1 bytes (limit 524288) and the body ends "
            "right after the header: the oversized header is read first",
            "R",
            [bytes.fromhex("02930200c67fffffff")],
            AbortCode.MALFORMED_MESSAGE,
        ),
        (
            "truncated_oversized_str",
            "Abort whose detail str32 header declares 2^31-1 bytes (limit 256), nothing after",
            "R",
            [bytes.fromhex("02930501db7fffffff")],
            AbortCode.MALFORMED_MESSAGE,
        ),
        (
            "truncated_oversized_array",
            "the body is an array32 header declaring 2^32-1 items (limit 4096), nothing after",
            "R",
            [bytes.fromhex("02ddffffffff")],
            AbortCode.MALFORMED_MESSAGE,
        ),
        (
            "truncated_inside_bin",
            "Elements whose bin8 header declares 32 bytes (within limits) but 2 follow",
            "R",
            [bytes.fromhex("02930200c4200000")],
            AbortCode.TRUNCATED,
        ),
        (
            "extra_field",
            "Elements with a third field",
            "R",
            [hello, _pack(2, 0, e0.elements, 0)],
            AbortCode.MALFORMED_MESSAGE,
        ),
        (
            "missing_field",
            "Elements without its elements",
            "R",
            [hello, _pack(2, 0)],
            AbortCode.MALFORMED_MESSAGE,
        ),
        (
            "wrong_field_type",
            "seq as a string",
            "R",
            [hello, _pack(2, "0", e0.elements)],
            AbortCode.MALFORMED_MESSAGE,
        ),
        (
            "bool_for_int",
            "seq as a boolean",
            "R",
            [hello, _pack(2, False, e0.elements)],
            AbortCode.MALFORMED_MESSAGE,
        ),
        (
            "str_for_bin",
            "elements as a msgpack str",
            "R",
            [hello, _pack(2, 0, "x" * 128)],
            AbortCode.MALFORMED_MESSAGE,
        ),
        (
            "msgpack_ext_type",
            "an ext type where seq belongs",
            "R",
            [hello, _pack(2, msgpack.ExtType(1, b"\x00"), e0.elements)],
            AbortCode.MALFORMED_MESSAGE,
        ),
        (
            "map_instead_of_array",
            "the body is a map",
            "R",
            [b"\x02" + msgpack.packb({"type": 1})],
            AbortCode.MALFORMED_MESSAGE,
        ),
        (
            "non_minimal_int",
            "seq 0 encoded as uint8 (0xcc 0x00)",
            "R",
            [hello, b"\x02\x93\x02\xcc\x00" + msgpack.packb(e0.elements, use_bin_type=True)],
            AbortCode.MALFORMED_MESSAGE,
        ),
        (
            "trailing_bytes",
            "one byte after the msgpack body",
            "R",
            [hello + b"\x00"],
            AbortCode.MALFORMED_MESSAGE,
        ),
        (
            "invalid_utf8",
            "mou_id is not UTF-8",
            "R",
            [_raw_hello_bad_utf8(h_fields)],
            AbortCode.MALFORMED_MESSAGE,
        ),
        (
            "bad_point_encoding",
            "element with the top bit set",
            "R",
            [hello, _with_element(elements[0], 1, b"\x09" + b"\x00" * 30 + b"\x80")],
            AbortCode.INVALID_ELEMENT,
        ),
        (
            "non_canonical_u",
            "u = p (non-canonical encoding of 0)",
            "R",
            [hello, _with_element(elements[0], 0, P.to_bytes(32, "little"))],
            AbortCode.INVALID_ELEMENT,
        ),
        (
            "non_canonical_u_max",
            "u = 2^255 - 1",
            "R",
            [hello, _with_element(elements[0], 2, (2**255 - 1).to_bytes(32, "little"))],
            AbortCode.INVALID_ELEMENT,
        ),
        (
            "identity_point",
            "u = 0",
            "R",
            [hello, _with_element(elements[0], 0, SMALL_ORDER_U[0])],
            AbortCode.IDENTITY_ELEMENT,
        ),
        (
            "small_order_point",
            "a point of order 8",
            "R",
            [hello, _with_element(elements[0], 3, SMALL_ORDER_U[2])],
            AbortCode.IDENTITY_ELEMENT,
        ),
        (
            "wrong_count",
            "Elements chunk with three of four elements",
            "R",
            [hello, encode_message(Elements(0, e0.elements[:96]))],
            AbortCode.WRONG_COUNT,
        ),
        (
            "chunk_out_of_order",
            "Elements 1 before Elements 0",
            "R",
            [hello, elements[1]],
            AbortCode.CHUNK_OUT_OF_ORDER,
        ),
        (
            "chunk_replayed",
            "Elements 0 twice",
            "R",
            [hello, elements[0], elements[0]],
            AbortCode.CHUNK_REPLAYED,
        ),
        (
            "extra_chunk",
            "an Elements chunk beyond the declared padded size",
            "R",
            [hello, *elements, encode_message(Elements(len(elements), e0.elements))],
            AbortCode.WRONG_COUNT,
        ),
        (
            "duplicate_element",
            "an element repeated inside one chunk",
            "R",
            [hello, _with_element(elements[0], 1, e0.elements[:32])],
            AbortCode.DUPLICATE_ELEMENT,
        ),
        (
            "duplicate_across_chunks",
            "an element of chunk 0 repeated in chunk 1 (caught with the last chunk)",
            "R",
            [hello, elements[0], _with_element(elements[1], 0, e0.elements[:32]), *elements[2:]],
            AbortCode.DUPLICATE_ELEMENT,
        ),
        (
            "reblinded_group_elements",
            "Reblinded 0 carrying 32-byte values (group elements, as v1 sent) instead of 16-byte "
            "hashes: twice the expected length",
            "R",
            [hello, *elements, _pack(3, 0, _unpack_field(reblinded[0], 2) * 2)],
            AbortCode.WRONG_COUNT,
        ),
        (
            "confirm_more_claims",
            "a ConfirmRequest with one point more than the responder matched",
            "R",
            [
                *exchange[: exchange.index(requests[0])],
                encode_message(
                    dataclasses.replace(request0, points=request0.points + request0.points[:32])
                ),
            ],
            AbortCode.WRONG_COUNT,
        ),
        (
            "confirm_invalid_point",
            "a ConfirmRequest point that is not in the prime-order subgroup (a point of order 8)",
            "R",
            [
                *exchange[: exchange.index(requests[0])],
                encode_message(
                    dataclasses.replace(request0, points=ORDER_8_POINT + request0.points[32:])
                ),
            ],
            AbortCode.INVALID_ELEMENT,
        ),
        (
            "confirm_answers_swapped",
            "a ConfirmResponse whose first two answers are swapped (honest re-blinding, wrong "
            "positions: the permuted-answers attack)",
            "R",
            [
                *before_answers,
                encode_message(
                    dataclasses.replace(
                        answer0,
                        points=answer0.points[64:128] + answer0.points[:64] + answer0.points[128:],
                    )
                ),
            ],
            AbortCode.CONFIRMATION_FAILED,
        ),
        (
            "reveal_before_commit",
            "the initiator's first Reveal chunk sent in place of its Commit",
            "R",
            [*before_commit, reveals[0]],
            AbortCode.UNEXPECTED_MESSAGE,
        ),
        (
            "commit_mismatch",
            "a Commit to other bytes, then the honest Reveal",
            "R",
            [*before_commit, encode_message(Commit(b"\x00" * 32)), *reveals],
            AbortCode.BAD_COMMITMENT,
        ),
        (
            "reblinded_replayed",
            "Reblinded 0 twice",
            "R",
            [hello, *elements, reblinded[0], reblinded[0]],
            AbortCode.CHUNK_REPLAYED,
        ),
        (
            "bad_reveal_unknown_handle",
            "a reveal entry naming a handle outside the intersection",
            "R",
            [*exchange, with_entry(forged_entry)],
            AbortCode.BAD_REVEAL,
        ),
        (
            "bad_reveal_presence_unknown_key",
            "a reveal entry whose key presence sets a bit beyond the schema's keys",
            "R",
            [*exchange, with_presence(unknown_key)],
            AbortCode.BAD_REVEAL,
        ),
        (
            "bad_reveal_presence_missing_key",
            "a reveal entry whose key presence leaves out the keys of its handles",
            "R",
            [*exchange, with_presence(no_key)],
            AbortCode.BAD_REVEAL,
        ),
        (
            "bad_reveal_presence_length",
            "a reveal whose key presence is one byte longer than one byte per entry",
            "R",
            [*exchange, with_presence(reveal.presence + b"\x00")],
            AbortCode.BAD_REVEAL,
        ),
        (
            "reveal_not_opening_commitment",
            "a final reveal naming no record (allowed by the entry checks, but not what the "
            "initiator committed to)",
            "R",
            [
                *exchange,
                encode_message(dataclasses.replace(reveal, records=(), presence=b"")),
            ],
            AbortCode.BAD_COMMITMENT,
        ),
        (
            "reveal_salt_missing",
            "a final reveal without its salt",
            "R",
            [*exchange, encode_message(dataclasses.replace(reveal, salt=b""))],
            AbortCode.BAD_REVEAL,
        ),
        (
            "bad_reveal_unsorted",
            "a reveal entry whose handles are not ascending",
            "R",
            [*exchange, with_entry(multi[16:32] + multi[:16] + multi[32:])],
            AbortCode.BAD_REVEAL,
        ),
        (
            "reveal_out_of_order",
            "Reveal with seq 1 first",
            "R",
            [*exchange, encode_message(dataclasses.replace(reveal, seq=1))],
            AbortCode.CHUNK_OUT_OF_ORDER,
        ),
    ]
    return _invalid_json(valid, cases)


def _invalid_json(
    valid: dict[str, Any],
    cases: list[tuple[str, str, str, list[bytes], AbortCode]],
    first_id: int = 1,
    *,
    named: bool = False,
) -> list[dict[str, Any]]:
    """The JSON of ``cases`` played against the sessions of ``valid``; ``named`` writes the
    valid case's name into each (cases not on the first valid case, spec §11.2)."""
    live = {c.name: c for c in (*PSI_CASES, *ROLE_CASES)}  # section and flags: one home
    out = []
    for tc_id, (name, description, target, messages, code) in enumerate(cases, start=first_id):
        party = valid["initiator" if target == "I" else "responder"]
        _check_invalid(party, messages, code, name)
        out.append(
            {
                "tcId": tc_id,
                "name": name,
                "section": live[name].section,
                "requirement": f"{description}: MUST be rejected with {code.name}",
                "description": description,
                **({"valid_case": valid["name"]} if named else {}),
                "session": "initiator" if target == "I" else "responder",
                "messages": [m.hex() for m in messages],
                "result": "invalid",
                "abort": code.name,
                "flags": list(live[name].flags),
            }
        )
    return out


def suite2_invalid_cases(valid: dict[str, Any], first_id: int) -> list[dict[str, Any]]:
    """Cases on the ciphersuite-2 valid case (spec §4.6): ristretto255 encodings with bit 255
    set, which libsodium 1.0.18 decodes as the canonical element."""
    from_i = [bytes.fromhex(m["hex"]) for m in valid["messages"] if m["from"] == "initiator"]
    kinds = [m["type"] for m in valid["messages"] if m["from"] == "initiator"]
    request_at, response_at = kinds.index("ConfirmRequest"), kinds.index("ConfirmResponse")
    request0, response0 = decode_message(from_i[request_at]), decode_message(from_i[response_at])
    assert isinstance(request0, ConfirmRequest) and isinstance(response0, ConfirmResponse)
    cases: list[tuple[str, str, str, list[bytes], AbortCode]] = [
        (
            "confirm_point_bit_255",
            "a ConfirmRequest whose first point has bit 255 set (suite 2: not a canonical "
            "ristretto255 encoding, though libsodium 1.0.18 decodes it)",
            "R",
            [
                *from_i[:request_at],
                encode_message(dataclasses.replace(request0, points=with_top_bit(request0.points))),
            ],
            AbortCode.INVALID_ELEMENT,
        ),
        (
            "confirm_answer_bit_255",
            "a ConfirmResponse whose first answer has bit 255 set (suite 2)",
            "R",
            [
                *from_i[:response_at],
                encode_message(
                    dataclasses.replace(response0, points=with_top_bit(response0.points))
                ),
            ],
            AbortCode.INVALID_ELEMENT,
        ),
    ]
    return _invalid_json(valid, cases, first_id, named=True)


def stall_cases(valid: dict[str, Any], first_id: int) -> list[dict[str, Any]]:
    """Cases on the first valid case added after the others (so that their ids stay): a peer
    holding the session open by sending nothing but time (spec §6.7)."""
    from_i = [bytes.fromhex(m["hex"]) for m in valid["messages"] if m["from"] == "initiator"]
    kinds = [m["type"] for m in valid["messages"] if m["from"] == "initiator"]
    at = kinds.index("Reveal")
    reveal = decode_message(from_i[at])
    assert isinstance(reveal, Reveal) and reveal.records
    empty = dataclasses.replace(reveal, final=False, records=(), presence=b"", salt=b"")
    cases: list[tuple[str, str, str, list[bytes], AbortCode]] = [
        (
            "reveal_empty_not_final",
            "a Reveal chunk with no entries that is not the final one (a stall: it carries "
            "nothing but time)",
            "R",
            [*from_i[:at], encode_message(empty)],
            AbortCode.BAD_REVEAL,
        ),
    ]
    return _invalid_json(valid, cases, first_id)


def _raw_hello_bad_utf8(h_fields: list[object]) -> bytes:
    """A Hello whose mou_id str holds the bytes ff fe (not UTF-8), spliced in by hand since
    msgpack will not encode it."""
    fields = list(h_fields)
    fields[5] = "\x00\x00"
    raw = _pack(1, *fields)
    marker = b"\xa2\x00\x00"
    assert raw.count(marker) == 1
    return raw.replace(marker, b"\xa2\xff\xfe")


def run_invalid(party: dict[str, Any], messages: list[bytes]) -> RemoteProtocolError | None:
    """Feed ``messages`` to the session ``party`` describes, taking all its output before each
    one (spec §11.2). Returns the error the last message raised, or None if none did."""
    session = session_from_json(party)
    if session.role is Role.INITIATOR:
        session.initiate()
    for i, message in enumerate(messages):
        while session.next_message() is not None:
            pass
        try:
            session.receive_message(message)
        except RemoteProtocolError as exc:
            if i != len(messages) - 1:
                raise AssertionError(f"message {i} rejected early: {exc}") from None
            return exc
    return None


def _check_invalid(
    party: dict[str, Any], messages: list[bytes], code: AbortCode, name: str
) -> None:
    exc = run_invalid(party, messages)
    if exc is None or exc.code is not code:
        raise AssertionError(f"{name}: expected {code.name}, got {exc!r}")


# -- output ------------------------------------------------------------------------------------


def build_vectors() -> dict[str, str]:
    """The file name -> JSON text of every vector file."""
    valid = valid_cases()
    invalid = invalid_cases(valid[0])
    suite2 = next(c for c in valid if c["name"] == "psi_three_keys_suite2")
    invalid += suite2_invalid_cases(suite2, len(invalid) + 1)
    invalid += stall_cases(valid[0], len(invalid) + 1)
    header = {"protocol": "xlink-psi-v2", "generator": "protocols/generate_psi_vectors.py"}
    return {
        "valid.json": json.dumps({**header, "cases": valid}, indent=1) + "\n",
        "invalid.json": json.dumps(
            {**header, "schema": INVALID_SCHEMA, "notes": FLAG_NOTES, "cases": invalid}, indent=1
        )
        + "\n",
    }


def main(argv: list[str] | None = None) -> int:
    description = __doc__.splitlines()[0] if __doc__ else None
    return vector_files.main(build_vectors, OUT_DIR, description, argv)


if __name__ == "__main__":
    raise SystemExit(main())
