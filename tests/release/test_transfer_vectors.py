"""The release transfer vectors (xlink-release-v1 §10.3): the files equal what the generator
produces; the machine, fed one side's peer frames, sends exactly that side's frames and ends
with the recorded results; every invalid case aborts with its code and nothing after it; and the
async driver over a connection, facing a peer that plays the transcript, sends the same
frames."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any, cast

import pytest
from _generators import generator

from xlink.crypto.rand import DeterministicRandom
from xlink.protocol import AbortCode
from xlink.protocol.config import Role
from xlink.release.label import open_labelled, per_pair, seal_labelled
from xlink.release.seal import SealedRelease
from xlink.release.transfer import ReleaseTransfer, TransferState, decided_pairs_digest
from xlink.transport import MemoryConnection, memory_pair
from xlink.transport.release_transfer import (
    TransferGate,
    agree_decided_pairs,
    exchange_labels,
    label_pairs,
    offer_releases,
    run_transfer,
    transfer_releases,
)

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "protocols" / "vectors" / "release-transfer-v3"
TIMEOUT = 5.0


def _generator() -> ModuleType:
    return generator("generate_transfer_vectors")


GEN = _generator()
VALID: list[dict[str, Any]] = json.loads((VECTORS / "valid.json").read_text())["cases"]
INVALID: list[dict[str, Any]] = json.loads((VECTORS / "invalid.json").read_text())["cases"]
SIDES = ("initiator", "responder")
ROLES = {"initiator": Role.INITIATOR, "responder": Role.RESPONDER}
# xlink-release-v1 §10, written out.
TYPES = {
    1: "COUNT",
    2: "RELEASE",
    3: "END",
    4: "RECEIPT",
    5: "REFUSED",
    6: "RECEIPTS_END",
    7: "DIGEST",
    8: "LABELS",
    9: "LABEL_ANSWERS",
}


def _frames(case: dict[str, Any], side: str) -> list[bytes]:
    return [bytes.fromhex(f["hex"]) for f in case["frames"] if f["from"] == side]


def _peer(side: str) -> str:
    return "responder" if side == "initiator" else "initiator"


def test_files_equal_regenerated_vectors() -> None:
    for name, text in GEN.build_vectors().items():
        assert (VECTORS / name).read_text() == text, f"{name} is stale: run the generator"


def test_cases_are_well_formed() -> None:
    assert [c["name"] for c in VALID] == [
        "labelled_releases_both_ways",
        "approval_required",
        "nothing_decided",
        "reciprocal_offers",
    ]
    names = [c["name"] for c in INVALID]
    assert len(names) == len(set(names)) >= 30
    assert {c["abort"] for c in INVALID} <= {c.name for c in AbortCode}
    for case in VALID:
        for f in case["frames"]:
            frame = bytes.fromhex(f["hex"])
            assert frame[:4] == b"\xf0XR\x03" and TYPES[frame[4]] == f["type"]


def _label_pairs(case: dict[str, Any]) -> list[tuple[bytes, ...]]:
    return [tuple(bytes.fromhex(h) for h in p) for p in case["label_pairs"]]


def _outputs(case: dict[str, Any], side: str) -> dict[tuple[bytes, ...], bytes]:
    """The side's label outputs (under the peer's key), by decided pair."""
    outputs = [bytes.fromhex(o) for o in case[side]["label_outputs"]]
    return dict(zip(_label_pairs(case), outputs, strict=True))


@pytest.mark.parametrize("case", VALID, ids=lambda c: c["name"])
def test_the_digest_and_label_list_follow_the_decided_pairs(case: dict[str, Any]) -> None:
    sid = bytes.fromhex(case["session_id"])
    for side in SIDES:
        pairs = [[bytes.fromhex(h) for h in p] for p in case[side]["decided_pairs"]]
        digest = case["digests"][side]
        assert decided_pairs_digest(sid, pairs, sender=ROLES[side]).hex() == digest
        assert [[h.hex() for h in p] for p in label_pairs(pairs)] == case["label_pairs"]
        assert _frames(case, side)[0] == b"\xf0XR\x03\x07" + bytes.fromhex(digest)
    assert case["digests"]["initiator"] != case["digests"]["responder"]


@pytest.mark.parametrize("case", VALID, ids=lambda c: c["name"])
def test_pair_reproduces_the_transcript(case: dict[str, Any]) -> None:
    a = GEN.party_from_json(case, "initiator")
    b = GEN.party_from_json(case, "responder")
    transcript = GEN.run_case(a, b)
    assert [(who, f.hex()) for who, f in transcript] == [
        (f["from"], f["hex"]) for f in case["frames"]
    ]


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("case", VALID, ids=lambda c: c["name"])
def test_one_side_fed_the_peer_frames_sends_its_own(case: dict[str, Any], side: str) -> None:
    party = GEN.party_from_json(case, side)
    sent, error = GEN.replay(party, _frames(case, _peer(side)))
    assert error is None
    assert sent == _frames(case, side)
    m: ReleaseTransfer = party.machine
    assert m.state is TransferState.DONE and m.next_frame() is None
    assert m.result is not None
    assert [r.hex() for r in party.received] == case[side]["result"]["peer_releases"]
    assert m.result.peer_releases == len(party.received)
    assert [{"ok": ok, "body": b.hex()} for ok, b in m.result.answers] == case[side]["result"][
        "answers"
    ]
    assert m.peer_outputs is not None
    assert list(m.peer_outputs) == _label_pairs(case)
    assert [o.hex() for o in m.peer_outputs.values()] == case[side]["label_outputs"]


@pytest.mark.parametrize("case", VALID, ids=lambda c: c["name"])
def test_releases_are_labelled_and_open_for_the_peer(case: dict[str, Any]) -> None:
    """Each RELEASE body is the §10.2 label around the stand-in sealed release, with the
    recorded nonce seed; the peer opens it with the outputs of its label evaluation."""
    a, b = GEN.psi_sessions(case["psi_case"])
    sid = bytes.fromhex(case["session_id"])
    for side, session in zip(SIDES, (a, b), strict=True):
        outputs = _outputs(case, _peer(side))
        for release in case[side]["releases"]:
            handles = [bytes.fromhex(h) for h in release["handles"]]
            body = seal_labelled(
                bytes.fromhex(release["sealed"]),
                handles,
                session_id=sid,
                outputs_of=per_pair(session.labels.own_output),
                rng=DeterministicRandom(release["nonce_seed"]),
            )
            assert body.hex() == release["body"]
            named, sealed = open_labelled(
                body, session_id=sid, outputs_of=per_pair(outputs.__getitem__)
            )
            assert list(named) == handles and sealed.hex() == release["sealed"]
        sent = case[side]["releases"][: case.get("sends")]  # §10.5: the fewer offer
        assert case[_peer(side)]["result"]["peer_releases"] == [r["body"] for r in sent]


@pytest.mark.parametrize("case", INVALID, ids=lambda c: c["name"])
def test_invalid_frames_abort_with_their_code(case: dict[str, Any]) -> None:
    valid = next(c for c in VALID if c["name"] == case["case"])
    party = GEN.party_from_json(valid, case["side"])
    frames = [bytes.fromhex(f) for f in case["frames"]]
    _, error = GEN.replay(party, frames)  # every frame but the last is accepted
    assert error is not None and error.code is AbortCode[case["abort"]]
    m: ReleaseTransfer = party.machine
    assert m.state is TransferState.ABORTED and m.next_frame() is None


# -- the async driver against a peer that plays the transcript ----------------------------------


async def _play(conn: MemoryConnection, case: dict[str, Any], peer: str) -> None:
    """Send ``peer``'s frames and expect the other side's, in the transcript's order."""
    for f in case["frames"]:
        frame = bytes.fromhex(f["hex"])
        if f["from"] == peer:
            await conn.send(frame)
        else:
            got = await asyncio.wait_for(conn.receive(), TIMEOUT)
            assert got is not None and got.hex() == f["hex"], f["type"]
    assert await asyncio.wait_for(conn.receive(), TIMEOUT) is None  # then the side hangs up


def _store(case: dict[str, Any], side: str) -> Any:
    answers = iter(case[side]["answers"])
    received: list[bytes] = []

    def store_one(data: bytes) -> tuple[bool, bytes]:
        received.append(data)
        answer = next(answers)
        return answer["ok"], bytes.fromhex(answer["body"])

    return store_one, received


@pytest.mark.parametrize("case", VALID, ids=lambda c: c["name"])
def test_driver_steps_send_the_vector_frames(case: dict[str, Any]) -> None:
    """The responder through agree_decided_pairs, exchange_labels and transfer_releases, as
    runner.py calls them."""
    side = "responder"
    session = GEN.psi_sessions(case["psi_case"])[1]
    pairs = [[bytes.fromhex(h) for h in p] for p in case[side]["decided_pairs"]]
    ours = [SimpleNamespace(data=bytes.fromhex(r["body"])) for r in case[side]["releases"]]
    store_one, received = _store(case, side)
    reciprocal = case.get("reciprocal", False)

    async def responder(conn: MemoryConnection) -> Any:
        gate = TransferGate(conn)
        try:
            await agree_decided_pairs(
                gate, session.session_id, pairs, TIMEOUT, role=Role.RESPONDER, reciprocal=reciprocal
            )
            outputs = await exchange_labels(
                gate,
                request=session.labels.request,
                answer=session.labels.answer,
                outputs=session.labels.outputs,
                idle_timeout=TIMEOUT,
            )
            assert outputs == _outputs(case, side)
            sending = ours
            if reciprocal:  # §10.5: the offer, then the fewer of the two
                sending = ours[: await offer_releases(gate, len(ours), TIMEOUT)]
                assert len(sending) == case["sends"]
            return await transfer_releases(
                gate, cast(list[SealedRelease], sending), store_one, TIMEOUT
            )
        finally:
            await conn.close()

    async def scenario() -> Any:
        x, y = memory_pair(capacity=2)
        result, _ = await asyncio.gather(responder(x), _play(y, case, "initiator"))
        return result

    result = asyncio.run(scenario())
    assert result.peer_releases == len(received)
    assert [r.hex() for r in received] == case[side]["result"]["peer_releases"]
    assert [[ok, b.hex()] for ok, b in result.answers] == [
        [a["ok"], a["body"]] for a in case[side]["result"]["answers"]
    ]


@pytest.mark.parametrize("case", VALID, ids=lambda c: c["name"])
def test_run_transfer_sends_the_vector_frames(case: dict[str, Any]) -> None:
    """The initiator through the one-call driver."""
    side = "initiator"
    session = GEN.psi_sessions(case["psi_case"])[0]
    pairs = [[bytes.fromhex(h) for h in p] for p in case[side]["decided_pairs"]]
    bodies = [bytes.fromhex(r["body"]) for r in case[side]["releases"]]
    store_one, received = _store(case, side)
    seen: list[dict[str, str]] = []

    def releases(outputs: Any) -> list[bytes]:
        seen.append(outputs)
        return bodies

    async def initiator(conn: MemoryConnection) -> Any:
        gate = TransferGate(conn)
        try:
            machine = ReleaseTransfer(
                session.session_id,
                pairs,
                role=Role.INITIATOR,
                reciprocal=case.get("reciprocal", False),
            )
            result = await run_transfer(
                gate,
                machine,
                labels=session.labels,
                releases=releases,
                store_one=store_one,
                idle_timeout=TIMEOUT,
            )
            assert gate.transfer is machine and gate.decided == len(pairs)
            return result
        finally:
            await conn.close()

    async def scenario() -> Any:
        x, y = memory_pair(capacity=2)
        result, _ = await asyncio.gather(initiator(x), _play(y, case, "responder"))
        return result

    result = asyncio.run(scenario())
    assert seen == [_outputs(case, side)]
    assert result.peer_releases == len(received)
    assert [r.hex() for r in received] == case[side]["result"]["peer_releases"]
