"""The code reproduces every valid vector byte for byte and rejects every invalid one with its
named abort code; the files equal what the generator produces (spec: xlink-psi-v1 §11)."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from _generators import generator

from xlink.protocol import AbortCode, PsiSession, run_pair
from xlink.protocol.codec import decode_message, encode_message
from xlink.protocol.messages import Abort

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "protocols" / "vectors" / "psi-v2"


def _generator() -> ModuleType:
    return generator("generate_psi_vectors")


GEN = _generator()
VALID: list[dict[str, Any]] = json.loads((VECTORS / "valid.json").read_text())["cases"]
INVALID: list[dict[str, Any]] = json.loads((VECTORS / "invalid.json").read_text())["cases"]


def test_files_equal_regenerated_vectors() -> None:
    for name, text in GEN.build_vectors().items():
        assert (VECTORS / name).read_text() == text, f"{name} is stale: run the generator"


def test_enough_invalid_cases_with_distinct_names() -> None:
    names = [c["name"] for c in INVALID]
    assert len(names) == len(set(names)) >= 20
    assert {c["abort"] for c in INVALID} <= {c.name for c in AbortCode}


@pytest.mark.parametrize("case", VALID, ids=lambda c: c["name"])
def test_valid_vector_reproduced_byte_for_byte(case: dict[str, Any]) -> None:
    a: PsiSession = GEN.session_from_json(case["initiator"])
    b: PsiSession = GEN.session_from_json(case["responder"])
    sent: list[dict[str, str]] = []

    def observe(sender: PsiSession, message: bytes) -> None:
        sent.append({"from": "initiator" if sender is a else "responder", "hex": message.hex()})
        assert encode_message(decode_message(message)) == message

    ra, rb = run_pair(a, b, observer=observe)
    assert sent == [{"from": m["from"], "hex": m["hex"]} for m in case["messages"]]
    assert a.session_id is not None and a.session_id.hex() == case["session_id"]
    assert GEN._result_json(ra, a, b) == case["results"]["initiator"]
    assert GEN._result_json(rb, b, a) == case["results"]["responder"]


@pytest.mark.parametrize("case", VALID, ids=lambda c: c["name"])
def test_valid_vector_accepted_message_by_message(case: dict[str, Any]) -> None:
    """Feeding one side the other side's recorded messages reproduces its recorded output."""
    for side, peer in (("initiator", "responder"), ("responder", "initiator")):
        session: PsiSession = GEN.session_from_json(case[side])
        if side == "initiator":
            session.initiate()
        produced: list[str] = []
        for m in case["messages"]:
            while (out := session.next_message()) is not None:
                produced.append(out.hex())
            if m["from"] == peer:
                session.receive_message(bytes.fromhex(m["hex"]))
        while (out := session.next_message()) is not None:
            produced.append(out.hex())
        assert sorted(produced) == sorted(m["hex"] for m in case["messages"] if m["from"] == side)
        assert session.done


@pytest.mark.parametrize("case", INVALID, ids=lambda c: c["name"])
def test_invalid_vector_rejected_with_its_code(case: dict[str, Any]) -> None:
    by_name = {c["name"]: c for c in VALID}
    valid = by_name[case["valid_case"]] if "valid_case" in case else VALID[0]
    party = valid[case["session"]]
    exc = GEN.run_invalid(party, [bytes.fromhex(m) for m in case["messages"]])
    assert exc is not None and exc.code is AbortCode[case["abort"]]
    # The session has queued an Abort carrying the same code.
    session: PsiSession = GEN.session_from_json(party)
    if session.role.name == "INITIATOR":
        session.initiate()
    for m in case["messages"]:
        while session.next_message() is not None:
            pass
        try:
            session.receive_message(bytes.fromhex(m))
        except Exception:
            break
    out = session.next_message()
    assert out is not None
    abort = decode_message(out)
    assert isinstance(abort, Abort) and abort.code == int(AbortCode[case["abort"]])


def _messages(case: dict[str, Any], side: str, kind: str) -> list[Any]:
    return [
        decode_message(bytes.fromhex(m["hex"]))
        for m in case["messages"]
        if m["from"] == side and m["type"] == kind
    ]


def test_valid_cases_cover_edge_shapes() -> None:
    """Spec §11.1: the valid vectors include an empty own set, chunk sizes that differ and do
    not divide N, and reveals of several chunks."""
    by_name = {c["name"]: c for c in VALID}
    empty = by_name["psi_empty_initiator"]
    assert empty["initiator"]["records"] == [] and empty["results"]["initiator"]["pairs"] == []
    uneven = by_name["cardinality_uneven_chunks"]
    sizes = {}
    for side in ("initiator", "responder"):
        (hello,) = _messages(uneven, side, "Hello")
        assert hello.padded_size % hello.chunk_size != 0
        sizes[side] = hello.chunk_size
        # Reblinded sent BY this side are cut by the PEER's chunk size.
        peer = "responder" if side == "initiator" else "initiator"
        got = [len(m.elements) // 16 for m in _messages(uneven, side, "Reblinded")]
        (peer_hello,) = _messages(uneven, peer, "Hello")
        n, c = peer_hello.padded_size, peer_hello.chunk_size
        assert got == [min(c, n - i * c) for i in range(-(-n // c))]
    assert sizes["initiator"] != sizes["responder"]
    wide = by_name["psi_seventy_keys"]
    assert len(wide["initiator"]["key_names"]) == 70
    for side in ("initiator", "responder"):
        for reveal in _messages(wide, side, "Reveal"):
            assert len(reveal.presence) == 9 * len(reveal.records)  # ceil(70 / 8) per entry
    multi = by_name["psi_multi_chunk_reveal"]
    for side in ("initiator", "responder"):
        reveals = _messages(multi, side, "Reveal")
        assert len(reveals) >= 2 and [r.final for r in reveals][-1] is True


def test_forged_presence_is_refused_for_its_reason() -> None:
    """The two key-presence cases fail on the presence check itself (§6.7), not on an earlier
    check that happens to carry the same code."""
    invalid = {c["name"]: c for c in INVALID}
    for name, reason in (
        ("bad_reveal_presence_unknown_key", "a key the schema does not have"),
        ("bad_reveal_presence_missing_key", "leaves out the key of a handle"),
        ("bad_reveal_presence_length", "key presence of the wrong length"),
    ):
        case = invalid[name]
        party = VALID[0][case["session"]]
        exc = GEN.run_invalid(party, [bytes.fromhex(m) for m in case["messages"]])
        assert exc is not None and reason in str(exc), name
