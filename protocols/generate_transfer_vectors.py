#!/usr/bin/env python3
"""Generate the release transfer v3 test vectors (spec: protocols/xlink-release-v1.md §10.1, §10.3).

Writes ``protocols/vectors/release-transfer-v3/decided-pairs.json`` (the digest of §10.1),
``valid.json`` and ``invalid.json``. The PSI sessions
whose label functions the transfers use are cases of ``protocols/vectors/psi-v2/valid.json``
(their parties and seeds, through ``generate_psi_vectors.session_from_json``); the releases'
label nonces come from fixed seeds through ``DeterministicRandom``; the sealed releases and the
receipts are fixed stand-in bytes (the transfer does not look inside them). Running this twice
gives identical files; ``tests/release/test_transfer_vectors.py`` regenerates the vectors in
memory and checks the files.

Usage: ``python protocols/generate_transfer_vectors.py [--check]``
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
from collections import deque
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vector_files

from xlink.conformance.script import with_top_bit
from xlink.crypto.rand import DeterministicRandom
from xlink.protocol import PsiResult, PsiSession, run_pair
from xlink.protocol.abort import AbortCode
from xlink.protocol.config import Role
from xlink.release.label import per_pair, seal_labelled
from xlink.release.transfer import (
    SENDER_BYTE,
    FrameType,
    ReleaseReceived,
    ReleaseTransfer,
    TransferError,
    TransferState,
    decided_pairs_digest,
    label_pairs,
    split_frame,
    transfer_frame,
)

HERE = Path(__file__).resolve().parent
OUT_DIR = HERE / "vectors" / "release-transfer-v3"
PSI_VECTORS = HERE / "vectors" / "psi-v2" / "valid.json"
SIDES = ("initiator", "responder")
ROLES = {"initiator": Role.INITIATOR, "responder": Role.RESPONDER}
ORDER_8_POINT = bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05")


PSI = vector_files.load("generate_psi_vectors")


# -- the PSI sessions the transfers follow ------------------------------------------------------


@functools.cache
def psi_sessions(psi_case: str) -> tuple[PsiSession, PsiSession]:
    """The initiator's and the responder's completed session of a psi-v2 valid case (their
    label functions are pure: the pair is shared by every transfer built on the case)."""
    case = next(c for c in json.loads(PSI_VECTORS.read_text())["cases"] if c["name"] == psi_case)
    a = PSI.session_from_json(case["initiator"])
    b = PSI.session_from_json(case["responder"])
    ra, rb = run_pair(a, b)
    assert isinstance(ra, PsiResult) and isinstance(rb, PsiResult)
    assert a.session_id is not None and a.session_id.hex() == case["session_id"]
    return a, b


def _pairs(session: PsiSession) -> list[list[bytes]]:
    result = session.result
    assert isinstance(result, PsiResult)
    return [list(p.handles) for p in result.pairs]


# -- one side of a case -------------------------------------------------------------------------


@dataclasses.dataclass
class Party:
    """One side of a vector case: its machine and its local decisions."""

    machine: ReleaseTransfer
    session: PsiSession | None  # its label functions; None: an unlabelled transfer
    releases: list[bytes]  # the RELEASE bodies it sends (reciprocal: offers; sends the first n)
    answers: list[tuple[bool, bytes]]  # its answer to each release of the peer, in order
    answered: int = 0
    received: list[bytes] = dataclasses.field(default_factory=list)  # the peer's, in order

    def step(self) -> list[bytes]:
        """Take the local decisions the state allows (evaluate the labels once agreed, send
        the releases once labelled), then every frame due."""
        m = self.machine
        if m.state is TransferState.AGREED and self.session is not None:
            labels = self.session.labels
            m.evaluate_labels(request=labels.request, answer=labels.answer, outputs=labels.outputs)
        if m.state is TransferState.LABELLED or (
            m.state is TransferState.AGREED and self.session is None
        ):
            if m.reciprocal:  # §10.5: the offer first, the releases once both are known
                m.offer(len(self.releases))
            else:
                m.send_releases(self.releases)
        if m.state is TransferState.COUNTED:
            assert m.to_send is not None
            m.send_releases(self.releases[: m.to_send])
        out = []
        while (frame := m.next_frame()) is not None:
            out.append(frame)
        return out

    def deliver(self, frame: bytes) -> None:
        for event in self.machine.receive(frame):
            if isinstance(event, ReleaseReceived):
                self.received.append(event.data)
                self.machine.answer(*self.answers[self.answered])
                self.answered += 1


def party_from_json(case: dict[str, Any], side: str) -> Party:
    """The side ``side`` of a valid case, as the JSON describes it (the tests and other
    implementations' harnesses read the JSON this way)."""
    a, b = psi_sessions(case["psi_case"])
    session = a if side == "initiator" else b
    assert session.session_id is not None and session.session_id.hex() == case["session_id"]
    me = case[side]
    pairs = [[bytes.fromhex(h) for h in pair] for pair in me["decided_pairs"]]
    return Party(
        ReleaseTransfer(
            session.session_id, pairs, role=ROLES[side], reciprocal=case.get("reciprocal", False)
        ),
        session if case["labelled"] else None,
        [bytes.fromhex(r["body"]) for r in me["releases"]],
        [(x["ok"], bytes.fromhex(x["body"])) for x in me["answers"]],
    )


def run_case(a: Party, b: Party) -> list[tuple[str, bytes]]:
    """The reference pair driver: in rounds, the initiator then the responder takes its local
    decisions and sends every frame due; then the oldest frame not yet delivered is delivered.
    Returns every frame, ``(sender, frame)``, in the order sent."""
    transcript: list[tuple[str, bytes]] = []
    queue: deque[tuple[Party, bytes]] = deque()
    while True:
        for name, sender, receiver in (("initiator", a, b), ("responder", b, a)):
            for frame in sender.step():
                transcript.append((name, frame))
                queue.append((receiver, frame))
        if not queue:
            break
        receiver, frame = queue.popleft()
        receiver.deliver(frame)
    assert a.machine.state is b.machine.state is TransferState.DONE
    return transcript


def replay(party: Party, frames: list[bytes]) -> tuple[list[bytes], TransferError | None]:
    """Feed ``frames`` to ``party``, taking all its output (and its local decisions) before
    each one (§10.3). Returns what it sent and the error the last frame raised (None if none
    did); an earlier frame rejected is an AssertionError."""
    sent: list[bytes] = []
    for i, frame in enumerate(frames):
        sent += party.step()
        try:
            party.deliver(frame)
        except TransferError as exc:
            if i != len(frames) - 1:
                raise AssertionError(f"frame {i} rejected early: {exc}") from None
            assert party.machine.next_frame() is None
            return sent, exc
    sent += party.step()
    return sent, None


# -- valid vectors ------------------------------------------------------------------------------


def _release(session: PsiSession, pair: list[bytes], tag: str) -> dict[str, Any]:
    assert session.session_id is not None
    sealed = f"stand-in sealed release: {tag}".encode()
    body = seal_labelled(
        sealed,
        pair,
        session_id=session.session_id,
        outputs_of=per_pair(session.labels.own_output),
        rng=DeterministicRandom(f"xlink-release-transfer-vector/{tag}"),
    )
    return {
        "handles": [h.hex() for h in sorted(pair)],
        "sealed": sealed.hex(),
        "nonce_seed": f"xlink-release-transfer-vector/{tag}",
        "body": body.hex(),
    }


def _answer(ok: bool, text: str) -> dict[str, Any]:
    return {"ok": ok, "body": text.encode().hex()}


def _valid_case(
    name: str,
    description: str,
    psi_case: str,
    *,
    labelled: bool,
    releases: dict[str, list[int]],
    answers: dict[str, list[dict[str, Any]]],
    reciprocal: bool = False,
) -> dict[str, Any]:
    """``releases[side]``: the indices of the side's decided pairs it sends a release for
    (``reciprocal``, an MOU with ``release.reciprocal``, §10.5: offers, and sends the first
    ``sends`` of them, the fewer of the two offers); ``answers[side]``: its answer to each of
    the peer's."""
    a, b = psi_sessions(psi_case)
    assert a.session_id is not None
    case: dict[str, Any] = {
        "name": name,
        "description": description,
        "psi_case": psi_case,
        "session_id": a.session_id.hex(),
        "labelled": labelled,
    }
    if reciprocal:  # present only when true: the other cases are as they were
        case["reciprocal"] = True
        case["sends"] = min(len(r) for r in releases.values())
    for side, session in zip(SIDES, (a, b), strict=True):
        pairs = _pairs(session)
        if side == "responder":  # its own order: pairs and the handles within them reversed
            pairs = [list(reversed(p)) for p in reversed(pairs)]
        case[side] = {
            "decided_pairs": [[h.hex() for h in p] for p in pairs],
            "releases": [_release(session, pairs[i], f"{name}/{side}/{i}") for i in releases[side]],
            "answers": answers[side],
        }
    pairs_i = _pairs(a)
    case["digests"] = {
        side: decided_pairs_digest(a.session_id, pairs_i, sender=role).hex()
        for side, role in ROLES.items()
    }
    case["label_pairs"] = [[h.hex() for h in p] for p in label_pairs(pairs_i)]
    pi, pr = party_from_json(case, "initiator"), party_from_json(case, "responder")
    transcript = run_case(pi, pr)
    case["frames"] = [
        {"from": who, "type": FrameType(f[4]).name, "hex": f.hex()} for who, f in transcript
    ]
    for side, party, peer_session in (("initiator", pi, b), ("responder", pr, a)):
        result = party.machine.result
        assert result is not None and result.peer_releases == len(party.received)
        outputs = party.machine.peer_outputs
        case[side]["label_outputs"] = (
            None if outputs is None else [o.hex() for o in outputs.values()]
        )
        if outputs is not None:  # the peer's own outputs: what opens its releases
            assert list(outputs) == label_pairs(pairs_i)
            assert all(peer_session.labels.own_output(p) == o for p, o in outputs.items())
        case[side]["result"] = {
            "peer_releases": [r.hex() for r in party.received],
            "answers": [{"ok": ok, "body": body.hex()} for ok, body in result.answers],
        }
    return case


#: The releases of psi_three_keys_suite2's transfers: three of the initiator's decided pairs,
#: two of the responder's.
THREE_AND_TWO: dict[str, list[int]] = {"initiator": [0, 1, 2], "responder": [0, 2]}


def _receipt(side: str, peer_release: str) -> dict[str, Any]:
    """``side``'s stand-in receipt for the peer's release ``peer_release``."""
    return _answer(True, f"stand-in receipt: {side} for {peer_release}")


def valid_cases() -> list[dict[str, Any]]:
    return [
        _valid_case(
            "labelled_releases_both_ways",
            "After psi_three_keys_suite2 (ciphersuite 2: the label points are ristretto255 "
            "encodings): both sides decided its four pairs (the responder lists them, and the "
            "handles of each, in reverse order; two of them are the same single handle, so "
            "three label pairs: one label point each). One "
            "LABELS and one LABEL_ANSWERS frame each way; the initiator sends three labelled "
            "releases, the responder two; the responder refuses the initiator's second "
            "release, every other release gets a receipt.",
            "psi_three_keys_suite2",
            labelled=True,
            releases=THREE_AND_TWO,
            answers={
                "initiator": [
                    _receipt("initiator", "responder/0"),
                    _receipt("initiator", "responder/2"),
                ],
                "responder": [
                    _receipt("responder", "initiator/0"),
                    _answer(False, "match-already-received"),
                    _receipt("responder", "initiator/2"),
                ],
            },
        ),
        _valid_case(
            "approval_required",
            "After psi_seventy_keys: two decided pairs and the label evaluation, then COUNT 0 "
            "both ways (the releases wait in the approval queue).",
            "psi_seventy_keys",
            labelled=True,
            releases={"initiator": [], "responder": []},
            answers={"initiator": [], "responder": []},
        ),
        _valid_case(
            "nothing_decided",
            "After psi_empty_initiator: no decided pair, so no label frame; DIGEST, COUNT 0, "
            "END and RECEIPTS_END 0 each way.",
            "psi_empty_initiator",
            labelled=True,
            releases={"initiator": [], "responder": []},
            answers={"initiator": [], "responder": []},
        ),
        _valid_case(
            "reciprocal_offers",
            "After psi_three_keys_suite2, under an MOU with release.reciprocal (§10.5): the "
            "initiator offers three releases (COUNT 3), the responder two (COUNT 2), each "
            "before the other's is in; each then sends two, the fewer offer, and receipts "
            "the other's two. The initiator's third release stays with it.",
            "psi_three_keys_suite2",
            labelled=True,
            releases=THREE_AND_TWO,
            answers={
                side: [_receipt(side, f"{peer}/{i}") for i in sent]
                for side, peer, sent in (
                    ("initiator", "responder", (0, 2)),
                    ("responder", "initiator", (0, 1)),
                )
            },
            reciprocal=True,
        ),
    ]


# -- invalid vectors ----------------------------------------------------------------------------


def _u32(n: int) -> bytes:
    return n.to_bytes(4, "big")


def _with_point(frame: bytes, index: int, point: bytes) -> bytes:
    """A LABELS or LABEL_ANSWERS frame with point ``index`` replaced."""
    start = 9 + 32 * index
    return frame[:start] + point + frame[start + 32 :]


def _top_bit(frame: bytes, index: int) -> bytes:
    """A LABELS or LABEL_ANSWERS frame with bit 255 of point ``index`` set."""
    return frame[:9] + with_top_bit(frame[9:], index)


def invalid_cases(valid: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cases built from the initiator's frames of the first valid case (the third, for a
    transfer with nothing decided; the fourth, for a reciprocal one), all fed to the
    responder."""
    first, empty, recip = valid[0], valid[2], valid[3]
    by_type: dict[str, list[bytes]] = {}
    for f in first["frames"]:
        if f["from"] == "initiator":
            by_type.setdefault(f["type"], []).append(bytes.fromhex(f["hex"]))
    (digest,) = by_type["DIGEST"]
    (labels,) = by_type["LABELS"]
    (answers,) = by_type["LABEL_ANSWERS"]
    (count,) = by_type["COUNT"]
    r0, r1, r2 = by_type["RELEASE"]
    (end,) = by_type["END"]
    k0, k1 = by_type["RECEIPT"]
    (receipts_end,) = by_type["RECEIPTS_END"]
    frames_i = [bytes.fromhex(f["hex"]) for f in first["frames"] if f["from"] == "initiator"]
    decided = [[bytes.fromhex(h) for h in p] for p in first["initiator"]["decided_pairs"]]
    sid = bytes.fromhex(first["session_id"])
    psi_hello = bytes.fromhex(json.loads(PSI_VECTORS.read_text())["cases"][0]["messages"][0]["hex"])
    agreed = [digest, labels, answers]  # the responder is RELEASING after these
    recip_frames: dict[str, list[bytes]] = {}
    for f in recip["frames"]:
        if f["from"] == "initiator":
            recip_frames.setdefault(f["type"], []).append(bytes.fromhex(f["hex"]))
    recip_agreed = [
        *recip_frames["DIGEST"],
        *recip_frames["LABELS"],
        *recip_frames["LABEL_ANSWERS"],
    ]
    (recip_count,) = recip_frames["COUNT"]
    recip_releases = recip_frames["RELEASE"]
    released = [*agreed, count, r0, r1, r2, end]
    frame = transfer_frame
    unexpected = AbortCode.UNEXPECTED_MESSAGE
    cases: list[tuple[str, str, dict[str, Any], list[bytes], AbortCode]] = [
        ("empty_frame", "a zero-length frame", first, [b""], unexpected),
        (
            "psi_message",
            "a PSI message (the Hello of psi_three_keys) where the DIGEST belongs",
            first,
            [psi_hello],
            unexpected,
        ),
        (
            "other_magic",
            "f0 58 53 01: not the transfer's magic",
            first,
            [b"\xf0XS\x01" + digest[4:]],
            unexpected,
        ),
        ("magic_only", "the 4-byte magic and no type byte", first, [digest[:4]], unexpected),
        (
            "transfer_v0",
            "a release transfer v0 frame (f0 58 52 54, COUNT 0)",
            first,
            [b"\xf0XRT\x01" + _u32(0)],
            AbortCode.UNSUPPORTED_VERSION,
        ),
        (
            "transfer_v1",
            "the DIGEST with version byte 01 (release transfer v1: labels per handle)",
            first,
            [digest[:3] + b"\x01" + digest[4:]],
            AbortCode.UNSUPPORTED_VERSION,
        ),
        (
            "transfer_v2",
            "the DIGEST with version byte 02 (release transfer v2: a digest without its sender)",
            first,
            [digest[:3] + b"\x02" + digest[4:]],
            AbortCode.UNSUPPORTED_VERSION,
        ),
        (
            "transfer_v4",
            "the DIGEST with version byte 04",
            first,
            [digest[:3] + b"\x04" + digest[4:]],
            AbortCode.UNSUPPORTED_VERSION,
        ),
        ("unknown_type_0", "type byte 0", first, [digest[:4] + b"\x00"], unexpected),
        (
            "unknown_type_10",
            "type byte 10 after the labels",
            first,
            [*agreed, digest[:4] + b"\x0a"],
            unexpected,
        ),
        ("count_before_digest", "COUNT as the first frame", first, [count], unexpected),
        ("digest_short", "a DIGEST of 31 bytes", first, [digest[:-1]], unexpected),
        ("digest_long", "a DIGEST of 33 bytes", first, [digest + b"\x00"], unexpected),
        (
            "digest_mismatch",
            "the digest of the initiator's pairs without the last one",
            first,
            [
                frame(
                    FrameType.DIGEST,
                    decided_pairs_digest(sid, decided[:-1], sender=Role.INITIATOR),
                )
            ],
            AbortCode.DECISION_MISMATCH,
        ),
        (
            "digest_reflected",
            "the responder's own DIGEST sent back to it: the same pairs, naming the responder",
            first,
            [frame(FrameType.DIGEST, decided_pairs_digest(sid, decided, sender=Role.RESPONDER))],
            AbortCode.DECISION_MISMATCH,
        ),
        ("digest_replayed", "DIGEST twice", first, [digest, digest], unexpected),
        (
            "count_during_labels",
            "COUNT before the label evaluation is over",
            first,
            [digest, count],
            unexpected,
        ),
        (
            "labels_out_of_order",
            "LABELS with seq 1 (the list has one chunk)",
            first,
            [digest, labels[:5] + _u32(1) + labels[9:]],
            unexpected,
        ),
        ("labels_without_seq", "LABELS of 3 bytes", first, [digest, labels[:8]], unexpected),
        ("labels_replayed", "LABELS 0 twice", first, [digest, labels, labels], unexpected),
        (
            "labels_one_point_more",
            "LABELS with one point more than the list's pairs",
            first,
            [digest, labels + labels[9:41]],
            AbortCode.WRONG_COUNT,
        ),
        (
            "labels_one_point_fewer",
            "LABELS with one point fewer",
            first,
            [digest, labels[:-32]],
            AbortCode.WRONG_COUNT,
        ),
        (
            "labels_zero_point",
            "a LABELS point of 32 zero bytes (ristretto255's identity)",
            first,
            [digest, _with_point(labels, 1, bytes(32))],
            AbortCode.IDENTITY_ELEMENT,
        ),
        (
            "labels_small_order_point",
            "a LABELS point of order 8",
            first,
            [digest, _with_point(labels, 0, ORDER_8_POINT)],
            AbortCode.INVALID_ELEMENT,
        ),
        (
            "labels_point_bit_255",
            "a LABELS point with bit 255 set (not a canonical ristretto255 encoding, though "
            "libsodium 1.0.18 decodes it)",
            first,
            [digest, _top_bit(labels, 0)],
            AbortCode.INVALID_ELEMENT,
        ),
        (
            "label_answers_replayed",
            "LABEL_ANSWERS 0 twice (before the initiator's LABELS)",
            first,
            [digest, answers, answers],
            unexpected,
        ),
        (
            "label_answers_seq_1",
            "LABEL_ANSWERS with seq 1, never requested",
            first,
            [digest, answers[:5] + _u32(1) + answers[9:]],
            unexpected,
        ),
        (
            "label_answers_one_more",
            "LABEL_ANSWERS with one answer more",
            first,
            [digest, answers + answers[9:41]],
            AbortCode.WRONG_COUNT,
        ),
        (
            "label_answers_zero_point",
            "a LABEL_ANSWERS point of 32 zero bytes (the identity)",
            first,
            [digest, _with_point(answers, 2, bytes(32))],
            AbortCode.IDENTITY_ELEMENT,
        ),
        (
            "label_answers_point_bit_255",
            "a LABEL_ANSWERS point with bit 255 set",
            first,
            [digest, _top_bit(answers, 1)],
            AbortCode.INVALID_ELEMENT,
        ),
        (
            "labels_after_the_labels",
            "LABELS 0 again once the label evaluation is over",
            first,
            [*agreed, labels],
            unexpected,
        ),
        ("release_before_count", "a RELEASE before COUNT", first, [*agreed, r0], unexpected),
        (
            "count_above_decided",
            "COUNT 5 for 4 decided matches",
            first,
            [*agreed, frame(FrameType.COUNT, _u32(5))],
            AbortCode.TOO_MANY_RELEASES,
        ),
        ("count_of_3_bytes", "a COUNT body of 3 bytes", first, [*agreed, count[:-1]], unexpected),
        ("count_replayed", "COUNT twice", first, [*agreed, count, count], unexpected),
        (
            "more_releases_than_count",
            "COUNT 2, then three releases",
            first,
            [*agreed, frame(FrameType.COUNT, _u32(2)), r0, r1, r2],
            unexpected,
        ),
        (
            "end_early",
            "END after one of three releases",
            first,
            [*agreed, count, r0, end],
            unexpected,
        ),
        (
            "end_with_body",
            "END with one byte of body",
            first,
            [*released[:-1], end + b"\x00"],
            unexpected,
        ),
        ("end_replayed", "END twice", first, [*released, end], unexpected),
        ("release_after_end", "a RELEASE after END", first, [*released, r2], unexpected),
        (
            "answer_beyond_releases",
            "a third answer to the responder's two releases",
            first,
            [*released, k0, k1, k1],
            unexpected,
        ),
        (
            "refusal_too_long",
            "a REFUSED reason of 201 bytes",
            first,
            [*released, frame(FrameType.REFUSED, b"x" * 201)],
            unexpected,
        ),
        (
            "receipts_end_early",
            "RECEIPTS_END 2 after one answer",
            first,
            [*released, k0, receipts_end],
            unexpected,
        ),
        (
            "receipts_end_wrong_count",
            "RECEIPTS_END 1 after two answers",
            first,
            [*released, k0, k1, frame(FrameType.RECEIPTS_END, _u32(1))],
            unexpected,
        ),
        (
            "frame_after_done",
            "RECEIPTS_END again once the transfer is done",
            first,
            [*frames_i, receipts_end],
            unexpected,
        ),
        (
            "labels_when_nothing_decided",
            "an empty LABELS 0 when nothing was decided (no label frame is due)",
            empty,
            [bytes.fromhex(empty["frames"][0]["hex"]), frame(FrameType.LABELS, _u32(0))],
            unexpected,
        ),
        (
            "receipt_too_long",
            "a RECEIPT of 4,097 bytes (padding the receiver would hold to the end)",
            first,
            [*released, frame(FrameType.RECEIPT, b"x" * 4097)],
            unexpected,
        ),
        # §10.5, a reciprocal transfer: the initiator offered 3, the responder 2
        (
            "reciprocal_release_beyond_the_fewer_offer",
            "reciprocal (§10.5): a third release after COUNT 3 against the responder's 2",
            recip,
            [*recip_agreed, recip_count, *recip_releases, r2],
            unexpected,
        ),
        (
            "reciprocal_end_before_the_fewer_offer",
            "reciprocal (§10.5): END after one release, two being due",
            recip,
            [*recip_agreed, recip_count, recip_releases[0], end],
            unexpected,
        ),
        (
            "reciprocal_refused",
            "reciprocal (§10.5): a REFUSED for the responder's first release (a side that "
            "refuses ends the transfer instead)",
            recip,
            [*recip_agreed, recip_count, *recip_releases, end, frame(FrameType.REFUSED, b"x")],
            unexpected,
        ),
    ]
    out = []
    for tc_id, (name, description, case, frames, code) in enumerate(cases, start=1):
        _sent, error = replay(party_from_json(case, "responder"), frames)
        if error is None or error.code is not code:
            raise AssertionError(f"{name}: expected {code.name}, got {error!r}")
        out.append(
            {
                "tcId": tc_id,
                "name": name,
                "section": "10",
                "requirement": f"{description}: MUST be rejected with {code.name}",
                "description": description,
                "case": case["name"],
                "side": "responder",
                "frames": [f.hex() for f in frames],
                "result": "invalid",
                "abort": code.name,
                "flags": _transfer_flags(frames),
            }
        )
    return out


def _transfer_flags(frames: list[bytes]) -> list[str]:
    """The type of the frame that is refused (``framing`` when it is not a release transfer
    v3 frame of a known type)."""
    try:
        kind, _body = split_frame(frames[-1])
    except TransferError:
        return ["framing"]
    return [kind.name.lower()]


# -- the decided-pairs digest (§10.1) -----------------------------------------------------------


def decided_pairs_vectors() -> dict[str, Any]:
    """The digest of §10.1 for a few lists of decided pairs, from each sender."""
    rng = DeterministicRandom("xlink-release-transfer-vector/decided-pairs")
    sid = bytes.fromhex("00112233445566778899aabbccddeeff")
    eight = [[rng(16) for _ in range(1 + i % 3)] for i in range(7)]
    eight.append(list(reversed(eight[1])))  # one handle set decided twice, listed otherwise
    lists = [
        ("no decided pairs", sid, []),
        ("one pair of two handles", sid, [[rng(16), rng(16)]]),
        ("eight pairs of 1 to 3 handles, one handle set decided twice", sid, eight),
        ("the eight pairs in another session", b"\xff" * 16, eight),
    ]
    cases = []
    for name, session_id, pairs in lists:
        case: dict[str, Any] = {"name": name}
        if session_id != sid:
            case["session_id"] = session_id.hex()
        case["pairs"] = [[h.hex() for h in p] for p in pairs]
        case["digests"] = {
            side: decided_pairs_digest(session_id, pairs, sender=role).hex()
            for side, role in ROLES.items()
        }
        cases.append(case)
    return {
        "protocol": "xlink-release-v1",
        "section": "10.1",
        "transfer_version": 3,
        "generator": "protocols/generate_transfer_vectors.py",
        "label": "xlink-release/decided-pairs",
        "sender_bytes": {side: SENDER_BYTE[role] for side, role in ROLES.items()},
        "session_id": sid.hex(),
        "cases": cases,
    }


# -- output -------------------------------------------------------------------------------------


def build_vectors() -> dict[str, str]:
    """The file name -> JSON text of every vector file."""
    valid = valid_cases()
    invalid = invalid_cases(valid)
    header = {
        "protocol": "xlink-release-v1",
        "section": "10",
        "transfer_version": 3,
        "generator": "protocols/generate_transfer_vectors.py",
        "psi_vectors": "protocols/vectors/psi-v2/valid.json",
    }
    return {
        "decided-pairs.json": json.dumps(decided_pairs_vectors(), indent=1) + "\n",
        "valid.json": json.dumps({**header, "cases": valid}, indent=1) + "\n",
        "invalid.json": json.dumps(
            {
                **header,
                "schema": "protocols/schemas/invalid-vectors-v1.json",
                "notes": {
                    "framing": "not a release transfer v3 frame of a known type (§10)",
                    **{k.name.lower(): f"the refused frame is a {k.name} (§10)" for k in FrameType},
                },
                "cases": invalid,
            },
            indent=1,
        )
        + "\n",
    }


def main(argv: list[str] | None = None) -> int:
    description = __doc__.splitlines()[0] if __doc__ else None
    return vector_files.main(build_vectors, OUT_DIR, description, argv)


if __name__ == "__main__":
    raise SystemExit(main())
