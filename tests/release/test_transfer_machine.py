"""The release transfer state machine (xlink-release-v1 §10) with no I/O: two machines wired to
each other in memory for the honest runs, then a hand-written peer for every error branch.
Each error aborts with its exact code, and the machine gives no frame after it.

The peer's frames are written out from the spec here rather than built by the module under
test."""

from __future__ import annotations

import dataclasses
import hashlib
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from _transfer_support import (
    BAD_POINT,
    COUNT,
    DIGEST,
    END,
    LABEL_ANSWERS,
    LABELS,
    MAGIC,
    RECEIPT,
    RECEIPTS_END,
    REFUSED,
    RELEASE,
    FakeLabels,
    frame,
    sha,
    u32,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xlink.crypto.rand import DeterministicRandom
from xlink.errors import LocalProtocolError, XlinkError
from xlink.linkage.tokens import TokenSetBuilder
from xlink.protocol import AbortCode, Mode, PsiResult, PsiSession, Role, SessionConfig, run_pair
from xlink.protocol.limits import MAX_MESSAGE_SIZE
from xlink.release.label import open_labelled, per_pair, seal_labelled
from xlink.release.transfer import (
    LABEL_CHUNK,
    DecisionMismatch,
    DecisionsAgreed,
    LabelsEvaluated,
    ReleaseAnswered,
    ReleaseReceived,
    ReleaseTransfer,
    TransferComplete,
    TransferError,
    TransferEvent,
    TransferResult,
    TransferState,
    decided_pairs_digest,
    label_pairs,
)

# -- xlink-release-v1 §10, written out ----------------------------------------------------------

SID = bytes(range(16))
H = [bytes([i]) * 16 for i in range(1, 6)]
PAIRS = [(H[2], H[0]), (H[1],), (H[3], H[4])]  # 3 decided matches, 5 handles


LA, LB = FakeLabels(b"tag-a", b"key-a"), FakeLabels(b"tag-b", b"key-b")


def start_labels(m: ReleaseTransfer, labels: Any) -> list[TransferEvent]:
    return m.evaluate_labels(request=labels.request, answer=labels.answer, outputs=labels.outputs)


# -- two machines in memory ---------------------------------------------------------------------


Store = Callable[[bytes], tuple[bool, bytes]]


def receipt_for(data: bytes) -> tuple[bool, bytes]:
    return True, b"receipt:" + sha(data)


@dataclasses.dataclass
class Side:
    name: str
    machine: ReleaseTransfer
    labels: Any | None
    releases: Callable[[ReleaseTransfer], list[bytes]]
    store: Store = receipt_for
    events: list[TransferEvent] = dataclasses.field(default_factory=list)

    def step(self) -> list[bytes]:
        """The side's local decisions as soon as its state allows, then everything due."""
        m = self.machine
        if m.state is TransferState.AGREED and self.labels is not None:
            self.events += start_labels(m, self.labels)
        if m.state is TransferState.LABELLED or (
            m.state is TransferState.AGREED and self.labels is None
        ):
            m.send_releases(self.releases(m))
        out = []
        while (f := m.next_frame()) is not None:
            out.append(f)
        return out

    def deliver(self, f: bytes) -> None:
        for event in self.machine.receive(f):
            self.events.append(event)
            if isinstance(event, ReleaseReceived):
                self.machine.answer(*self.store(event.data))


def wire(a: Side, b: Side) -> list[tuple[str, bytes]]:
    """Run both sides to DONE, one frame delivered at a time, oldest first; the transcript."""
    transcript: list[tuple[str, bytes]] = []
    queue: deque[tuple[Side, bytes]] = deque()
    while True:
        for sender, receiver in ((a, b), (b, a)):
            for f in sender.step():
                transcript.append((sender.name, f))
                queue.append((receiver, f))
        if not queue:
            break
        receiver, f = queue.popleft()
        receiver.deliver(f)
    assert a.machine.state is b.machine.state is TransferState.DONE
    return transcript


def constant(*bodies: bytes) -> Callable[[ReleaseTransfer], list[bytes]]:
    return lambda _m: list(bodies)


def kinds(transcript: list[tuple[str, bytes]], who: str) -> list[int]:
    return [f[4] for name, f in transcript if name == who]


# -- honest runs --------------------------------------------------------------------------------


def test_nothing_decided_sends_digest_count_end_receipts_end() -> None:
    a = Side("a", ReleaseTransfer(SID, [], role=Role.INITIATOR), LA, constant())
    b = Side("b", ReleaseTransfer(SID, [], role=Role.RESPONDER), LB, constant())
    transcript = wire(a, b)
    for side, role in ((a, Role.INITIATOR), (b, Role.RESPONDER)):
        mine = [f for name, f in transcript if name == side.name]
        assert mine == [
            frame(DIGEST, decided_pairs_digest(SID, [], sender=role)),
            frame(COUNT, u32(0)),
            frame(END),
            frame(RECEIPTS_END, u32(0)),
        ]
        assert side.events == [
            DecisionsAgreed(0),
            LabelsEvaluated({}),
            TransferComplete(TransferResult(0, [])),
        ]
        assert side.machine.peer_outputs == {}
        assert side.machine.next_frame() is None and side.machine.done


def test_decided_but_no_release_either_way() -> None:
    """The approval queue holds every release: COUNT 0 both ways, after the labels."""
    a = Side("a", ReleaseTransfer(SID, PAIRS, role=Role.INITIATOR), LA, constant())
    b = Side("b", ReleaseTransfer(SID, list(reversed(PAIRS)), role=Role.RESPONDER), LB, constant())
    transcript = wire(a, b)
    for side in ("a", "b"):
        assert kinds(transcript, side) == [
            DIGEST,
            LABELS,
            LABEL_ANSWERS,
            COUNT,
            END,
            RECEIPTS_END,
        ]
    assert a.machine.result == b.machine.result == TransferResult(0, [])


def test_releases_both_ways_with_refusals() -> None:
    ours = [b"a-release-0", b"a-release-1", b"a-release-2"]
    theirs = [b"b-release-0"]

    def refuse_second(data: bytes) -> tuple[bool, bytes]:
        return (False, b"not-decided") if data == ours[1] else receipt_for(data)

    a = Side("a", ReleaseTransfer(SID, PAIRS, role=Role.INITIATOR), LA, constant(*ours))
    b = Side(
        "b",
        ReleaseTransfer(SID, PAIRS, role=Role.RESPONDER),
        LB,
        constant(*theirs),
        store=refuse_second,
    )
    transcript = wire(a, b)
    assert kinds(transcript, "a") == [
        DIGEST,
        LABELS,
        LABEL_ANSWERS,
        COUNT,
        RELEASE,
        RELEASE,
        RELEASE,
        END,
        RECEIPT,
        RECEIPTS_END,
    ]
    assert [f for n, f in transcript if n == "b" and f[4] in (RECEIPT, REFUSED)] == [
        frame(RECEIPT, b"receipt:" + sha(ours[0])),
        frame(REFUSED, b"not-decided"),
        frame(RECEIPT, b"receipt:" + sha(ours[2])),
    ]
    assert a.machine.result == TransferResult(
        len(theirs),
        [(True, b"receipt:" + sha(ours[0])), (False, b"not-decided"), receipt_for(ours[2])],
    )
    assert b.machine.result == TransferResult(len(ours), [receipt_for(theirs[0])])
    assert [e.data for e in a.events if isinstance(e, ReleaseReceived)] == theirs
    assert [e.data for e in b.events if isinstance(e, ReleaseReceived)] == ours
    listed = label_pairs(PAIRS)
    assert listed == [(H[0], H[2]), (H[1],), (H[3], H[4])]  # each pair ascending, in digest order
    assert a.machine.peer_outputs == {p: LA.expected(LB, p) for p in listed}
    assert b.machine.peer_outputs == {p: LB.expected(LA, p) for p in listed}
    answered = [e for e in a.events if isinstance(e, ReleaseAnswered)]
    assert [(e.index, e.ok) for e in answered] == [(0, True), (1, False), (2, True)]
    assert [e.index for e in b.events if isinstance(e, ReleaseReceived)] == [0, 1, 2]


def test_unlabelled_transfer_goes_from_agreement_to_releases() -> None:
    a = Side("a", ReleaseTransfer(SID, PAIRS, role=Role.INITIATOR), None, constant(b"x"))
    b = Side("b", ReleaseTransfer(SID, PAIRS, role=Role.RESPONDER), None, constant(b"y", b"z"))
    transcript = wire(a, b)
    assert kinds(transcript, "a") == [DIGEST, COUNT, RELEASE, END, RECEIPT, RECEIPT, RECEIPTS_END]
    assert a.machine.peer_outputs is None
    assert a.machine.result is not None and a.machine.result.peer_releases == 2
    assert [e.data for e in a.events if isinstance(e, ReleaseReceived)] == [b"y", b"z"]


def test_a_pair_decided_twice_is_evaluated_once() -> None:
    """Two matches on the same handles (one peer record, two of ours recorded alike) have one
    label: the LABELS frame carries one point per distinct pair, in digest order."""
    pairs = [*PAIRS, (H[0], H[2])]
    a = Side("a", ReleaseTransfer(SID, pairs, role=Role.INITIATOR), LA, constant())
    b = Side("b", ReleaseTransfer(SID, list(reversed(pairs)), role=Role.RESPONDER), LB, constant())
    transcript = wire(a, b)
    (request,) = [f for n, f in transcript if n == "a" and f[4] == LABELS]
    assert request == frame(LABELS, u32(0) + LA.request(label_pairs(PAIRS)))
    assert len(request) - 9 == 32 * 3


def test_label_lists_longer_than_one_chunk() -> None:
    pairs = [(i.to_bytes(16, "big"),) for i in range(LABEL_CHUNK + 3)]
    a = Side("a", ReleaseTransfer(SID, pairs, role=Role.INITIATOR), LA, constant())
    b = Side("b", ReleaseTransfer(SID, pairs, role=Role.RESPONDER), LB, constant())
    transcript = wire(a, b)
    requests = [f for n, f in transcript if n == "a" and f[4] == LABELS]
    assert [f[5:9] for f in requests] == [u32(0), u32(1)]
    assert [len(f) - 9 for f in requests] == [32 * LABEL_CHUNK, 32 * 3]
    outputs = a.machine.peer_outputs
    assert outputs is not None and len(outputs) == LABEL_CHUNK + 3
    assert outputs[pairs[-1]] == LA.expected(LB, pairs[-1])


# -- with two real PSI sessions: the labels open -----------------------------------------------


def _session(role: Role, people: range) -> PsiSession:
    me, peer = ("CA-RCMP", "US-DHS") if role is Role.INITIATOR else ("US-DHS", "CA-RCMP")
    builder = TokenSetBuilder(("a", "b"))
    for n in people:
        builder.add_record(
            f"{me}-{n}", [(k, hashlib.sha256(f"{k}{n}".encode()).digest()) for k in ("a", "b")]
        )
    config = SessionConfig(
        role=role,
        mode=Mode.PSI,
        party_id=me,
        peer_id=peer,
        mou_id="MOU-1",
        mou_digest=b"\x01" * 32,
        schema_digest=b"\x02" * 32,
        padding_bucket=8,
    )
    return PsiSession(config, builder.build(), rng=DeterministicRandom(me))


@pytest.fixture(scope="module")
def sessions() -> tuple[PsiSession, PsiSession, list[tuple[bytes, ...]]]:
    a, b = _session(Role.INITIATOR, range(0, 6)), _session(Role.RESPONDER, range(3, 9))
    ra, _ = run_pair(a, b)
    assert isinstance(ra, PsiResult)
    return a, b, [p.handles for p in ra.pairs]


def test_real_labels_open_each_others_releases(
    sessions: tuple[PsiSession, PsiSession, list[tuple[bytes, ...]]],
) -> None:
    a, b, pairs = sessions
    sid = a.session_id
    assert sid is not None and len(pairs) == 3

    def labelled(session: PsiSession, tag: bytes) -> Callable[[ReleaseTransfer], list[bytes]]:
        rng = DeterministicRandom(tag)
        return lambda m: [
            seal_labelled(
                tag + bytes([i]),
                p,
                session_id=sid,
                outputs_of=per_pair(session.labels.own_output),
                rng=rng,
            )
            for i, p in enumerate(m.pairs)
        ]

    opened: dict[str, list[bytes]] = {"a": [], "b": []}

    def opener(name: str, side: list[Side]) -> Store:
        def store(data: bytes) -> tuple[bool, bytes]:
            outputs = side[0].machine.peer_outputs
            assert outputs is not None
            _, inner = open_labelled(data, session_id=sid, outputs_of=per_pair(outputs.__getitem__))
            opened[name].append(inner)
            return receipt_for(inner)

        return store

    holder_a: list[Side] = []
    holder_b: list[Side] = []
    sa = Side(
        "a",
        ReleaseTransfer(sid, pairs, role=Role.INITIATOR),
        a.labels,
        labelled(a, b"A"),
        opener("a", holder_a),
    )
    sb = Side(
        "b",
        ReleaseTransfer(sid, pairs, role=Role.RESPONDER),
        b.labels,
        labelled(b, b"B"),
        opener("b", holder_b),
    )
    holder_a.append(sa)
    holder_b.append(sb)
    wire(sa, sb)
    assert opened == {"a": [b"B\x00", b"B\x01", b"B\x02"], "b": [b"A\x00", b"A\x01", b"A\x02"]}
    listed = label_pairs(pairs)
    assert sa.machine.peer_outputs == {p: b.labels.own_output(p) for p in listed}


# -- a single machine facing a hand-written peer ------------------------------------------------


def drain(m: ReleaseTransfer) -> list[bytes]:
    out = []
    while (f := m.next_frame()) is not None:
        out.append(f)
    return out


def fresh(pairs: Sequence[Sequence[bytes]] = PAIRS) -> ReleaseTransfer:
    m = ReleaseTransfer(SID, pairs, role=Role.INITIATOR)
    assert drain(m) == [frame(DIGEST, decided_pairs_digest(SID, pairs, sender=Role.INITIATOR))]
    return m


PEER_DIGEST = frame(DIGEST, decided_pairs_digest(SID, PAIRS, sender=Role.RESPONDER))
PEER_LABELS = frame(LABELS, u32(0) + LB.request(label_pairs(PAIRS), 0))
OUR_LABELS = frame(LABELS, u32(0) + LA.request(label_pairs(PAIRS), 0))
PEER_ANSWERS = frame(LABEL_ANSWERS, u32(0) + LB.answer(OUR_LABELS[9:]))


def agreed() -> ReleaseTransfer:
    m = fresh()
    assert m.receive(PEER_DIGEST) == [DecisionsAgreed(3)]
    assert m.state is TransferState.AGREED and m.agreed
    return m


def labelling(*, sent: bool = True) -> ReleaseTransfer:
    m = agreed()
    assert start_labels(m, LA) == []
    if sent:
        assert drain(m) == [OUR_LABELS]
    return m


def labelled() -> ReleaseTransfer:
    m = labelling()
    assert m.receive(PEER_LABELS) == []
    assert drain(m) == [frame(LABEL_ANSWERS, u32(0) + LA.answer(PEER_LABELS[9:]))]
    (event,) = m.receive(PEER_ANSWERS)
    assert isinstance(event, LabelsEvaluated) and m.state is TransferState.LABELLED
    return m


def releasing(
    ours: Sequence[bytes] = (b"ours-0", b"ours-1"), *, sent: bool = True
) -> ReleaseTransfer:
    m = labelled()
    m.send_releases(list(ours))
    if sent:
        assert drain(m) == [
            frame(COUNT, u32(len(ours))),
            *(frame(RELEASE, r) for r in ours),
            frame(END),
        ]
    return m


def counted(n: int = 2) -> ReleaseTransfer:
    m = releasing()
    assert m.receive(frame(COUNT, u32(n))) == []
    return m


def store_release(m: ReleaseTransfer, body: bytes) -> None:
    (event,) = m.receive(frame(RELEASE, body))
    assert isinstance(event, ReleaseReceived) and event.data == body
    assert m.awaiting_answer == event.index
    m.answer(*receipt_for(body))


def peer_done() -> ReleaseTransfer:
    m = counted(1)
    store_release(m, b"theirs-0")
    assert m.receive(frame(END)) == []
    assert drain(m) == [frame(RECEIPT, receipt_for(b"theirs-0")[1]), frame(RECEIPTS_END, u32(1))]
    return m


def answered() -> ReleaseTransfer:
    m = peer_done()
    assert m.receive(frame(RECEIPT, b"r0")) == [ReleaseAnswered(0, True, b"r0")]
    assert m.receive(frame(REFUSED, b"nope")) == [ReleaseAnswered(1, False, b"nope")]
    return m


def done() -> ReleaseTransfer:
    m = answered()
    (event,) = m.receive(frame(RECEIPTS_END, u32(2)))
    assert event == TransferComplete(TransferResult(1, [(True, b"r0"), (False, b"nope")]))
    assert m.state is TransferState.DONE and m.done
    return m


def test_the_builders_reach_their_states() -> None:
    assert fresh().state is TransferState.AGREEING
    assert labelling().state is TransferState.LABELLING
    assert counted().state is TransferState.RELEASING
    assert done().next_frame() is None


def assert_aborts(m: ReleaseTransfer, bad: bytes, code: AbortCode) -> TransferError:
    with pytest.raises(TransferError) as info:
        m.receive(bad)
    assert info.value.code is code
    assert m.state is TransferState.ABORTED and m.done
    assert m.next_frame() is None
    with pytest.raises(LocalProtocolError):
        m.receive(bad)
    return info.value


UNEXPECTED = AbortCode.UNEXPECTED_MESSAGE
OTHER_DIGEST = frame(DIGEST, decided_pairs_digest(SID, PAIRS[:-1], sender=Role.RESPONDER))
ERRORS: list[tuple[str, Callable[[], ReleaseTransfer], bytes, AbortCode]] = [
    # framing, in any state
    ("empty frame", fresh, b"", UNEXPECTED),
    ("magic only, no type", fresh, MAGIC, UNEXPECTED),
    ("other magic", fresh, b"\xf0XS\x01\x07" + bytes(32), UNEXPECTED),
    ("a PSI message", fresh, b"\x02\x91\x01", UNEXPECTED),
    ("transfer v0", fresh, frame(COUNT, u32(0), magic=b"\xf0XRT"), AbortCode.UNSUPPORTED_VERSION),
    (
        "transfer v1 (labels per handle)",
        fresh,
        frame(DIGEST, PEER_DIGEST[5:], magic=b"\xf0XR\x01"),
        AbortCode.UNSUPPORTED_VERSION,
    ),
    (
        "transfer v2 (a digest that does not name its sender)",
        fresh,
        frame(DIGEST, PEER_DIGEST[5:], magic=b"\xf0XR\x02"),
        AbortCode.UNSUPPORTED_VERSION,
    ),
    (
        "transfer v4",
        fresh,
        frame(DIGEST, bytes(32), magic=b"\xf0XR\x04"),
        AbortCode.UNSUPPORTED_VERSION,
    ),
    ("family, no version byte", fresh, b"\xf0XR", UNEXPECTED),  # shorter than 5 bytes
    ("unknown type 0", fresh, frame(0), UNEXPECTED),
    ("unknown type 10", counted, frame(10), UNEXPECTED),
    ("unknown type 255", labelling, frame(255, bytes(36)), UNEXPECTED),
    ("oversize frame", counted, frame(RELEASE, bytes(MAX_MESSAGE_SIZE)), AbortCode.FRAME_TOO_LARGE),
    # the digest
    ("COUNT before DIGEST", fresh, frame(COUNT, u32(0)), UNEXPECTED),
    ("LABELS before DIGEST", fresh, PEER_LABELS, UNEXPECTED),
    ("short digest", fresh, frame(DIGEST, bytes(31)), UNEXPECTED),
    ("long digest", fresh, PEER_DIGEST + b"\x00", UNEXPECTED),
    ("other decided pairs", fresh, OTHER_DIGEST, AbortCode.DECISION_MISMATCH),
    (
        "digest of another session",
        fresh,
        frame(DIGEST, decided_pairs_digest(bytes(16), PAIRS, sender=Role.RESPONDER)),
        AbortCode.DECISION_MISMATCH,
    ),
    (
        "our own digest sent back (the same decisions, reflected)",
        fresh,
        frame(DIGEST, decided_pairs_digest(SID, PAIRS, sender=Role.INITIATOR)),
        AbortCode.DECISION_MISMATCH,
    ),
    # the label evaluation
    ("DIGEST replayed", labelling, PEER_DIGEST, UNEXPECTED),
    ("COUNT during the labels", labelling, frame(COUNT, u32(0)), UNEXPECTED),
    ("LABELS without seq", labelling, frame(LABELS, b"\x00\x00\x00"), UNEXPECTED),
    ("LABELS seq 1 first", labelling, frame(LABELS, u32(1) + PEER_LABELS[9:]), UNEXPECTED),
    ("LABELS one point more", labelling, PEER_LABELS + bytes(32), AbortCode.WRONG_COUNT),
    ("LABELS one point fewer", labelling, PEER_LABELS[:-32], AbortCode.WRONG_COUNT),
    ("LABELS not whole points", labelling, PEER_LABELS[:-1], AbortCode.WRONG_COUNT),
    ("LABELS a bad point", labelling, PEER_LABELS[:-32] + BAD_POINT, AbortCode.INVALID_ELEMENT),
    ("LABEL_ANSWERS without seq", labelling, frame(LABEL_ANSWERS), UNEXPECTED),
    ("LABEL_ANSWERS seq 1", labelling, frame(LABEL_ANSWERS, u32(1) + PEER_ANSWERS[9:]), UNEXPECTED),
    (
        "LABEL_ANSWERS before our LABELS went out",
        lambda: labelling(sent=False),
        PEER_ANSWERS,
        UNEXPECTED,
    ),
    ("LABEL_ANSWERS one more", labelling, PEER_ANSWERS + bytes(32), AbortCode.WRONG_COUNT),
    (
        "LABEL_ANSWERS a bad point",
        labelling,
        PEER_ANSWERS[:-32] + BAD_POINT,
        AbortCode.IDENTITY_ELEMENT,
    ),
    # the releases
    ("DIGEST in the releases", counted, PEER_DIGEST, UNEXPECTED),
    ("LABELS replayed in the releases", releasing, PEER_LABELS, UNEXPECTED),
    ("RELEASE before COUNT", releasing, frame(RELEASE, b"r"), UNEXPECTED),
    ("END before COUNT", releasing, frame(END), UNEXPECTED),
    (
        "COUNT above the decided matches",
        releasing,
        frame(COUNT, u32(4)),
        AbortCode.TOO_MANY_RELEASES,
    ),
    ("COUNT of 2^32 - 1", releasing, frame(COUNT, b"\xff" * 4), AbortCode.TOO_MANY_RELEASES),
    ("COUNT of 3 bytes", releasing, frame(COUNT, b"\x00\x00\x01"), UNEXPECTED),
    ("COUNT of 5 bytes", releasing, frame(COUNT, b"\x00" * 5), UNEXPECTED),
    ("COUNT replayed", counted, frame(COUNT, u32(2)), UNEXPECTED),
    ("END before every release", counted, frame(END), UNEXPECTED),
    ("END with a body", lambda: counted(0), frame(END, b"\x00"), UNEXPECTED),
    ("END replayed", peer_done, frame(END), UNEXPECTED),
    ("RELEASE after END", peer_done, frame(RELEASE, b"late"), UNEXPECTED),
    ("COUNT after END", peer_done, frame(COUNT, u32(0)), UNEXPECTED),
    ("RECEIPTS_END before every answer", peer_done, frame(RECEIPTS_END, u32(2)), UNEXPECTED),
    ("RECEIPTS_END with another count", answered, frame(RECEIPTS_END, u32(1)), UNEXPECTED),
    ("RECEIPTS_END of 3 bytes", answered, frame(RECEIPTS_END, b"\x00\x00\x02"), UNEXPECTED),
    ("an answer more than our releases", answered, frame(RECEIPT, b"r2"), UNEXPECTED),
    (
        "an answer before our release went out",
        lambda: releasing(sent=False),
        frame(RECEIPT, b"r0"),
        UNEXPECTED,
    ),
    ("a refusal reason of 201 bytes", peer_done, frame(REFUSED, b"x" * 201), UNEXPECTED),
    # after the end
    ("RECEIPTS_END replayed", done, frame(RECEIPTS_END, u32(2)), UNEXPECTED),
    ("a receipt after the end", done, frame(RECEIPT, b"r"), UNEXPECTED),
    ("bad magic after the end", done, b"junk", UNEXPECTED),
]


@pytest.mark.parametrize(
    ("build", "bad", "code"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS]
)
def test_every_error_aborts_with_its_code(
    build: Callable[[], ReleaseTransfer], bad: bytes, code: AbortCode
) -> None:
    assert_aborts(build(), bad, code)


def test_more_releases_than_announced() -> None:
    m = counted(1)
    store_release(m, b"theirs-0")
    assert_aborts(m, frame(RELEASE, b"theirs-1"), UNEXPECTED)


def test_a_decision_mismatch_is_its_own_class_and_sends_nothing() -> None:
    m = ReleaseTransfer(SID, PAIRS, role=Role.INITIATOR)  # our DIGEST not taken yet
    error = assert_aborts(m, OTHER_DIGEST, AbortCode.DECISION_MISMATCH)
    assert isinstance(error, DecisionMismatch)
    assert not m.agreed


def test_nothing_is_released_after_an_abort() -> None:
    """Releases queued but not yet given out never leave once the peer misbehaves."""
    m = releasing(sent=False)
    assert m.next_frame() == frame(COUNT, u32(2))  # COUNT went out, the releases did not
    assert_aborts(m, frame(COUNT, u32(9)), AbortCode.TOO_MANY_RELEASES)
    with pytest.raises(LocalProtocolError):
        m.send_releases([b"again"])


def test_answers_queued_before_an_abort_are_dropped() -> None:
    m = counted(2)
    store_release(m, b"theirs-0")  # RECEIPT queued, not yet given out
    assert_aborts(m, frame(DIGEST, bytes(32)), UNEXPECTED)


def test_the_peer_closing_early_aborts_and_after_the_end_does_not() -> None:
    m = labelling()
    with pytest.raises(TransferError) as info:
        m.peer_closed()
    assert info.value.code is UNEXPECTED and m.state is TransferState.ABORTED
    assert m.next_frame() is None
    with pytest.raises(LocalProtocolError):
        m.peer_closed()
    d = done()
    d.peer_closed()
    assert d.state is TransferState.DONE


# -- local misuse: LocalProtocolError, and nothing changes --------------------------------------


def _unchanged(m: ReleaseTransfer, call: Callable[[], object], error: type[Exception]) -> None:
    state, pending = m.state, m.awaiting_answer
    with pytest.raises(error):
        call()
    assert (m.state, m.awaiting_answer) == (state, pending)


@pytest.mark.parametrize("build", [agreed, labelled], ids=["agreed", "labelled"])
def test_receive_while_the_caller_must_decide(build: Callable[[], ReleaseTransfer]) -> None:
    m = build()
    _unchanged(m, lambda: m.receive(PEER_LABELS), LocalProtocolError)
    assert m.next_frame() is None


def test_receive_while_a_release_awaits_its_answer() -> None:
    m = counted(2)
    assert isinstance(m.receive(frame(RELEASE, b"r"))[0], ReleaseReceived)
    _unchanged(m, lambda: m.receive(frame(RELEASE, b"s")), LocalProtocolError)
    m.answer(False, b"refused")
    assert m.awaiting_answer is None
    assert drain(m) == [frame(REFUSED, b"refused")]


def test_calls_out_of_order() -> None:
    m = fresh()
    _unchanged(m, lambda: start_labels(m, LA), LocalProtocolError)
    _unchanged(m, lambda: m.send_releases([]), LocalProtocolError)
    _unchanged(m, lambda: m.answer(True, b"r"), LocalProtocolError)
    m = labelling()
    _unchanged(m, lambda: m.send_releases([]), LocalProtocolError)
    _unchanged(m, lambda: start_labels(m, LA), LocalProtocolError)
    m = labelled()
    _unchanged(m, lambda: start_labels(m, LA), LocalProtocolError)
    _unchanged(m, lambda: m.send_releases([b"1", b"2", b"3", b"4"]), LocalProtocolError)
    m = counted()
    _unchanged(m, lambda: m.answer(True, b"r"), LocalProtocolError)
    m.receive(frame(RELEASE, b"r"))
    _unchanged(m, lambda: m.answer(False, b"x" * 201), ValueError)
    _unchanged(m, lambda: m.receive("text"), LocalProtocolError)  # type: ignore[arg-type]
    m.answer(False, b"x" * 200)
    _unchanged(m, lambda: m.receive("text"), TypeError)  # type: ignore[arg-type]
    d = done()
    _unchanged(d, d.abort, LocalProtocolError)


def test_a_local_abort_stops_everything() -> None:
    m = releasing(sent=False)
    m.abort()
    assert m.state is TransferState.ABORTED and m.next_frame() is None
    with pytest.raises(LocalProtocolError):
        m.abort()
    with pytest.raises(LocalProtocolError):
        m.receive(frame(COUNT, u32(0)))


def test_a_failing_request_changes_nothing() -> None:
    m = agreed()

    def request(pairs: Sequence[Sequence[bytes]], start: int) -> bytes:
        raise KeyError("not matched")

    with pytest.raises(KeyError):
        m.evaluate_labels(request=request, answer=LA.answer, outputs=LA.outputs)
    assert m.state is TransferState.AGREED and m.next_frame() is None
    assert start_labels(m, LA) == []


def test_a_failing_label_function_aborts_and_raises_as_it_is() -> None:
    m = agreed()

    def answer(points: bytes) -> bytes:
        raise ArithmeticError("bug")

    m.evaluate_labels(request=LA.request, answer=answer, outputs=LA.outputs)
    with pytest.raises(ArithmeticError):
        m.receive(PEER_LABELS)
    assert m.state is TransferState.ABORTED and m.next_frame() is None


def test_an_outputs_function_with_the_wrong_count_aborts() -> None:
    m = agreed()
    m.evaluate_labels(request=LA.request, answer=LA.answer, outputs=lambda h, a, s: [])
    drain(m)
    with pytest.raises(ValueError):
        m.receive(PEER_ANSWERS)
    assert m.state is TransferState.ABORTED


def test_construction_refuses_a_bad_session_id() -> None:
    with pytest.raises(ValueError):
        ReleaseTransfer(bytes(15), PAIRS, role=Role.INITIATOR)
    with pytest.raises(ValueError):
        ReleaseTransfer(SID, [["not bytes"]], role=Role.INITIATOR)  # type: ignore[list-item]
    with pytest.raises(ValueError):
        ReleaseTransfer(SID, PAIRS, role="initiator")  # type: ignore[arg-type]


# -- any bytes in any state: only xlink's own errors --------------------------------------------

STATES: dict[str, Callable[[], ReleaseTransfer]] = {
    "agreeing": fresh,
    "labelling": labelling,
    "labelling, our LABELS not out": lambda: labelling(sent=False),
    "labelled": labelled,
    "releasing": releasing,
    "counted": counted,
    "peer done": peer_done,
    "answered": answered,
    "done": done,
}

frames = st.one_of(
    st.binary(max_size=80),
    st.builds(
        lambda kind, body: frame(kind, body),
        st.integers(0, 12),
        st.one_of(
            st.binary(max_size=70),
            st.builds(
                lambda seq, n: u32(seq) + BAD_POINT * n, st.integers(0, 2), st.integers(0, 6)
            ),
            st.builds(lambda n: u32(n), st.integers(0, 5)),
        ),
    ),
)


@pytest.mark.parametrize("state", list(STATES), ids=list(STATES))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.lists(frames, max_size=4))
def test_random_frames_raise_only_xlink_errors(state: str, data: list[bytes]) -> None:
    m = STATES[state]()
    for f in data:
        try:
            events = m.receive(f)
        except TransferError:
            assert m.state is TransferState.ABORTED and m.next_frame() is None
            return
        except XlinkError:
            return  # LocalProtocolError: the machine waits for us; nothing changed
        for event in events:
            if isinstance(event, ReleaseReceived):
                m.answer(True, b"receipt")
        drain(m)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_label_points_against_real_sessions(
    sessions: tuple[PsiSession, PsiSession, list[tuple[bytes, ...]]], data: st.DataObject
) -> None:
    """Points of the right count but any value, into the real label functions: a bad one is a
    TransferError with the element's code; nothing else escapes."""
    a, _, pairs = sessions
    sid = a.session_id
    assert sid is not None
    n = 32 * len(label_pairs(pairs))
    for kind in (LABELS, LABEL_ANSWERS):
        points = data.draw(st.binary(min_size=n, max_size=n))
        m = ReleaseTransfer(sid, pairs, role=Role.INITIATOR)
        drain(m)
        m.receive(frame(DIGEST, decided_pairs_digest(sid, pairs, sender=Role.RESPONDER)))
        m.evaluate_labels(
            request=a.labels.request, answer=a.labels.answer, outputs=a.labels.outputs
        )
        drain(m)
        try:
            m.receive(frame(kind, u32(0) + points))
        except TransferError as exc:
            assert exc.code in (AbortCode.INVALID_ELEMENT, AbortCode.IDENTITY_ELEMENT)
            assert m.next_frame() is None
