"""A release transfer against sequences of well-formed frames: the peer's, in another order,
again, or with one plausible field changed (spec: xlink-release-v1 §10, "Frame checks", §10.2).

``test_transfer_machine.py`` drives each error branch from a built state; this drives the
state machine instead. A victim machine V talks to an honest peer P (the same decided pairs,
labelled or not, label lists of one or several LABELS frames). Between honest deliveries,
hypothesis injects frames into V: replays of anything either side sent (V's own too: a
reflection), and honest frames with one field changed (the type, the version byte, the magic,
a cut or a byte more, a COUNT, RECEIPTS_END or label ``seq`` moved, a point more, fewer, a bad
one or another frame's, a receipt or reason at or over its limit, another digest). A model of
the spec's frame checks, kept from V's side only (what V accepted, what V gave out), says for
each frame whether V must accept it or abort, and with which code. Checks after every step:

* V accepts exactly what the model accepts, and aborts with the model's code; only
  ``TransferError`` escapes a peer's frame (never ``AssertionError``, ``KeyError``, ...), and
  ``LocalProtocolError`` only once V is aborted;
* after an abort V gives no frame, answers nothing, refuses every frame;
* V reports no more ``ReleaseReceived`` than the COUNT it accepted, which is never more than
  its decided matches, numbered 0, 1, ...; it gives out no RELEASE beyond its own COUNT;
* ``TransferComplete`` comes once, only after V accepted the peer's END and RECEIPTS_END, with
  the counts V saw; a frame after it is ``UNEXPECTED_MESSAGE`` and leaves the result as it was;
* each receive is fast.
"""

from __future__ import annotations

import contextlib
import dataclasses

import pytest
from _fuzzing import fuzz_settings, timed
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
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import xlink.release.transfer as transfer_module
from xlink.errors import LocalProtocolError, RemoteProtocolError
from xlink.protocol import AbortCode, Role
from xlink.protocol.limits import MAX_MESSAGE_SIZE
from xlink.release.transfer import (
    DecisionMismatch,
    DecisionsAgreed,
    LabelsEvaluated,
    ReleaseAnswered,
    ReleaseReceived,
    ReleaseTransfer,
    TransferComplete,
    TransferError,
    TransferEvent,
    TransferState,
    decided_pairs_digest,
    label_pairs,
)

# -- xlink-release-v1 §10, written out ----------------------------------------------------------

SID = bytes(range(16))
H = [bytes([i]) * 16 for i in range(1, 9)]
PAIR_POOL = [(H[2], H[0]), (H[1],), (H[3], H[4]), (H[5],), (H[6], H[7], H[0]), (H[1],)]
UNEXPECTED = AbortCode.UNEXPECTED_MESSAGE


LA, LB = FakeLabels(b"tag-a", b"key-a"), FakeLabels(b"tag-b", b"key-b")


def _refuses(data: bytes) -> bool:
    return sha(b"store", data)[0] % 3 == 0


@dataclasses.dataclass
class Driver:
    """A side's caller, acting at once on every event as the transport's driver does."""

    machine: ReleaseTransfer
    labels: FakeLabels | None
    releases: list[bytes]
    events: list[TransferEvent] = dataclasses.field(default_factory=list)

    def act(self, events: list[TransferEvent]) -> None:
        m = self.machine
        for e in events:
            self.events.append(e)
            if isinstance(e, DecisionsAgreed):
                if self.labels is None:
                    m.send_releases(self.releases)
                else:
                    self.act(
                        m.evaluate_labels(
                            request=self.labels.request,
                            answer=self.labels.answer,
                            outputs=self.labels.outputs,
                        )
                    )
            elif isinstance(e, LabelsEvaluated):
                m.send_releases(self.releases)
            elif isinstance(e, ReleaseReceived):
                if _refuses(e.data):
                    m.answer(False, b"created-in-future")
                else:
                    m.answer(True, b"receipt:" + sha(e.data))


# -- the model of V: the spec's frame checks, from what V accepted and gave out ----------------


@dataclasses.dataclass
class Model:
    decided: int
    peer_digest: bytes
    labelled: bool
    spans: list[int]  # points of each LABELS frame
    ours: int
    phase: str = "AGREEING"  # AGREEING, LABELLING, RELEASING, DONE, ABORTED
    # what V gave out
    labels_sent: int = 0
    releases_sent: int = 0
    end_sent: bool = False
    # what V accepted
    labels_answered: int = 0
    answers_in: set[int] = dataclasses.field(default_factory=set)
    count: int | None = None
    releases_in: int = 0
    end_in: bool = False
    receipts_in: int = 0
    receipts_end_in: bool = False

    def _labels_done(self) -> None:
        if self.labels_answered == len(self.spans) and len(self.answers_in) == len(self.spans):
            self.phase = "RELEASING"

    def sent(self, data: bytes) -> None:
        kind = data[4]
        if kind == LABELS:
            self.labels_sent += 1
        elif kind == RELEASE:
            self.releases_sent += 1
        elif kind == END:
            self.end_sent = True

    def check(self, data: bytes) -> AbortCode | None:
        """The code V must abort with on ``data``, or None: V accepts it (the model moves)."""
        if len(data) > MAX_MESSAGE_SIZE:
            return AbortCode.FRAME_TOO_LARGE
        if data[:3] == MAGIC[:3] and len(data) >= 4 and data[3] != MAGIC[3]:
            return AbortCode.UNSUPPORTED_VERSION
        if len(data) < 5 or data[:4] != MAGIC or not 1 <= data[4] <= 9:
            return UNEXPECTED
        kind, body = data[4], data[5:]
        if self.phase == "AGREEING":
            if kind != DIGEST or len(body) != 32:
                return UNEXPECTED
            if body != self.peer_digest:
                return AbortCode.DECISION_MISMATCH
            self.phase = "LABELLING" if self.labelled and self.spans else "RELEASING"
            return None
        if self.phase == "LABELLING":
            if kind not in (LABELS, LABEL_ANSWERS) or len(body) < 4:
                return UNEXPECTED
            seq, points = int.from_bytes(body[:4], "big"), body[4:]
            if kind == LABELS:
                if seq != self.labels_answered or seq >= len(self.spans):
                    return UNEXPECTED
                if len(points) != 32 * self.spans[seq]:
                    return AbortCode.WRONG_COUNT
                if BAD_POINT in [points[i : i + 32] for i in range(0, len(points), 32)]:
                    return AbortCode.INVALID_ELEMENT
                self.labels_answered += 1
            else:
                if seq >= self.labels_sent or seq in self.answers_in:
                    return UNEXPECTED
                if len(points) != 32 * self.spans[seq]:
                    return AbortCode.WRONG_COUNT
                if BAD_POINT in [points[i : i + 32] for i in range(0, len(points), 32)]:
                    return AbortCode.IDENTITY_ELEMENT
                self.answers_in.add(seq)
            self._labels_done()
            return None
        if self.phase == "RELEASING":
            if kind == COUNT:
                if self.count is not None or len(body) != 4:
                    return UNEXPECTED
                if int.from_bytes(body, "big") > self.decided:
                    return AbortCode.TOO_MANY_RELEASES
                self.count = int.from_bytes(body, "big")
                return None
            if kind == RELEASE:
                if self.count is None or self.end_in or self.releases_in >= self.count:
                    return UNEXPECTED
                self.releases_in += 1
                return None
            if kind == END:
                if self.count is None or self.end_in or body or self.releases_in != self.count:
                    return UNEXPECTED
                self.end_in = True
            elif kind in (RECEIPT, REFUSED):
                if self.receipts_end_in or self.receipts_in >= self.releases_sent:
                    return UNEXPECTED  # no release of ours (sent) left to answer
                if len(body) > (200 if kind == REFUSED else 4096):
                    return UNEXPECTED
                self.receipts_in += 1
                return None
            elif kind == RECEIPTS_END:
                if self.receipts_end_in or len(body) != 4 or not self.end_sent:
                    return UNEXPECTED  # a second one, a bad body, or before our END left
                if int.from_bytes(body, "big") != self.ours or self.receipts_in != self.ours:
                    return UNEXPECTED
                self.receipts_end_in = True
            else:
                return UNEXPECTED
            if self.end_in and self.receipts_end_in:
                self.phase = "DONE"
            return None
        return UNEXPECTED  # DONE: any frame once the transfer is done


# -- the frames a hostile peer makes of honest ones ---------------------------------------------


def _tweak(
    data: bytes, how: int, k: int, model: Model, pool: list[bytes], *, fields: bool = False
) -> bytes:
    """One plausible change to a frame (any frame: the result need not be well formed); with
    ``fields``, a change of its fields only when it has any (not of its framing)."""
    if len(data) < 5:
        return frame(DIGEST, bytes([k % 256]) * 32)
    head, kind, body = data[:4], data[4], data[5:]
    generic = [
        lambda: head + bytes([k % 11]) + body,  # another type (0 and 10 are unknown)
        lambda: data[:3] + bytes([k % 6 if k % 6 != 3 else 0x54]) + data[4:],  # version
        lambda: data[: k % 6],  # cut to nothing, the magic, or part of it
        lambda: data + bytes([k % 256]),  # a byte more
        lambda: data[:-1],  # a byte fewer
        lambda: b"\xf0XS" + data[3:],  # another magic
        lambda: b"\x02\x91\x01",  # a PSI message
    ]
    if kind in (COUNT, RECEIPTS_END):
        n = int.from_bytes(body[:4], "big") if len(body) >= 4 else 0
        special = [
            lambda: head + bytes([kind]) + u32((n + k % 5 - 2) % 2**32),
            lambda: head + bytes([kind]) + u32(model.decided + 1 + k % 3),
            lambda: head + bytes([kind]) + u32(model.ours),
            lambda: head + bytes([kind]) + u32(2**32 - 1),
            lambda: head + bytes([kind]) + u32(n)[1:],  # 3 bytes
        ]
    elif kind in (LABELS, LABEL_ANSWERS) and len(body) >= 4:
        points = body[4:]
        # the frame's own number, or the one V would take next (a peer can tell which)
        due = [n for n in range(model.labels_sent) if n not in model.answers_in]
        nxt = model.labels_answered if kind == LABELS else (due[0] if due else 0)
        seq = u32(int.from_bytes(body[:4], "big") if k % 2 else nxt)
        others = [
            f[9:] for f in pool if len(f) > 9 and f[4] in (LABELS, LABEL_ANSWERS) and f[:4] == MAGIC
        ]
        special = [
            lambda: (
                head
                + bytes([kind])
                + u32((int.from_bytes(seq, "big") + k % 5 - 2) % 2**32)
                + points
            ),
            lambda: head + bytes([kind]) + seq + points,
            lambda: head + bytes([kind]) + seq + points + points[:32],  # a point more
            lambda: head + bytes([kind]) + seq + points[:-32],  # a point fewer
            lambda: head + bytes([kind]) + seq + BAD_POINT + points[32:],  # a bad point
            lambda: head + bytes([kind]) + seq + (others[k % len(others)] if others else b""),
            lambda: head + bytes([LABELS + LABEL_ANSWERS - kind]) + seq + points,  # other kind
            lambda: head + bytes([kind]) + body[:3],  # no whole seq
        ]
    elif kind in (RECEIPT, REFUSED):
        answer = RECEIPT if k % 2 else REFUSED  # either answer, at or over its limit
        limit = 200 if answer == REFUSED else 4096
        special = [
            lambda: head + bytes([answer]) + b"r" * limit,
            lambda: head + bytes([answer]) + b"r" * (limit + 1),
            lambda: head + bytes([RECEIPT + REFUSED - kind]) + body,
            lambda: head + bytes([kind]),
        ]
    elif kind == RELEASE:
        special = [
            lambda: head + bytes([kind]) + body[::-1],
            lambda: head + bytes([kind]),
            lambda: head + bytes([END]),
        ]
    elif kind == END:
        special = [lambda: head + bytes([END]) + bytes([k % 256])]
    elif kind == DIGEST:
        special = [
            lambda: head + bytes([DIGEST]) + sha(body, bytes([k % 256])),
            lambda: head + bytes([DIGEST]) + body[:31],
            lambda: head + bytes([DIGEST]) + body + b"\x00",
        ]
    else:
        special = []
    choices = special if fields and special else generic + special
    return choices[how % len(choices)]()


class TransferFuzz(RuleBasedStateMachine):
    @initialize(
        picks=st.one_of(
            st.lists(st.integers(0, len(PAIR_POOL) - 1), min_size=1, max_size=5),
            st.lists(st.integers(0, len(PAIR_POOL) - 1), max_size=1),
        ),
        victim=st.sampled_from(list(Role)),
        labelled=st.sampled_from([True, True, False]),
        chunk=st.sampled_from([1, 1, 2, 16384]),
        ours_n=st.integers(0, 5),
        theirs_n=st.integers(0, 5),
        goal=st.sampled_from(["agreeing", "labelling", "releasing", "done"]),
        extra=st.integers(0, 3),
    )
    def build(
        self,
        picks: list[int],
        victim: Role,
        labelled: bool,
        chunk: int,
        ours_n: int,
        theirs_n: int,
        goal: str,
        extra: int,
    ) -> None:
        self._saved_chunk = transfer_module.LABEL_CHUNK
        transfer_module.LABEL_CHUNK = chunk  # several LABELS frames for a few pairs
        pairs = [PAIR_POOL[i] for i in picks]
        peer_role = Role.RESPONDER if victim is Role.INITIATOR else Role.INITIATOR
        ours = [b"v-release-%d" % i for i in range(min(ours_n, len(pairs)))]
        theirs = [b"p-release-%d" % i for i in range(min(theirs_n, len(pairs)))]
        self.v = Driver(ReleaseTransfer(SID, pairs, role=victim), LA if labelled else None, ours)
        self.p = Driver(
            ReleaseTransfer(SID, pairs, role=peer_role), LB if labelled else None, theirs
        )
        listed = label_pairs(pairs)
        spans = [min(chunk, len(listed) - i) for i in range(0, len(listed), chunk)]
        self.model = Model(
            decided=len(pairs),
            peer_digest=decided_pairs_digest(SID, pairs, sender=peer_role),
            labelled=labelled,
            spans=spans,
            ours=len(ours),
        )
        self.pool: list[bytes] = []
        self.count_seen: int | None = None  # the COUNT V accepted
        self.completed = 0
        self.result_at_done: object = None
        # honest progress, one frame each way at a time, to the goal and a few frames on
        order = ["agreeing", "labelling", "releasing", "done"]
        for _ in range(200):
            state = self.v.machine.state.value
            if state == "aborted" or (state in order and order.index(state) >= order.index(goal)):
                if extra == 0:
                    break
                extra -= 1
            before = len(self.pool)
            self.pump(1, False)
            if len(self.pool) == before:
                break
        event(f"start {self.v.machine.state.value}")

    def teardown(self) -> None:
        if hasattr(self, "_saved_chunk"):
            transfer_module.LABEL_CHUNK = self._saved_chunk

    # -- delivery with checks ---------------------------------------------------------------

    def _to_v(self, data: bytes) -> None:
        v = self.v.machine
        before = v.state
        was_aborted = before is TransferState.ABORTED
        result_before = v.result
        expected = None if was_aborted else self.model.check(data)
        try:
            events = timed(v.receive, data)
        except LocalProtocolError:
            assert was_aborted, f"LocalProtocolError in {before} on {data[:12]!r}"
            assert v.state is TransferState.ABORTED
            return
        except TransferError as exc:
            assert not was_aborted
            assert v.state is TransferState.ABORTED
            assert expected is not None, (
                f"aborted {exc.code.name} ({exc.detail}) in {before} on {data[:12]!r}..., "
                "which the spec accepts"
            )
            assert exc.code is expected, (
                f"{exc.code.name} ({exc.detail}), spec: {expected.name}, in {before} on "
                f"{data[:12]!r}... ({len(data)} bytes)"
            )
            assert isinstance(exc, DecisionMismatch) == (expected is AbortCode.DECISION_MISMATCH)
            assert v.result is result_before, "the result changed on a frame after the end"
            self.model.phase = "ABORTED"
            event(f"abort {exc.code.name} in {before.value}")
            return
        assert not was_aborted, f"accepted a frame while {before}"
        assert expected is None, (
            f"accepted {data[:12]!r}... ({len(data)} bytes) in {before}; spec: {expected}"
        )
        self._v_events(events)
        self.v.act(events)
        model_phase = {
            "AGREEING": TransferState.AGREEING,
            "LABELLING": TransferState.LABELLING,
            "RELEASING": TransferState.RELEASING,
            "DONE": TransferState.DONE,
        }[self.model.phase]
        assert v.state is model_phase, f"V {v.state}, model {self.model.phase}"
        if data[4] == COUNT:
            self.count_seen = int.from_bytes(data[5:], "big")

    def _v_events(self, events: list[TransferEvent]) -> None:
        v = self.v.machine
        for e in events:
            if isinstance(e, ReleaseReceived):
                received = sum(isinstance(x, ReleaseReceived) for x in self.v.events)
                assert e.index == received, "releases not numbered 0, 1, ..."
                assert self.model.count is not None and received < self.model.count
                assert received < v.decided, "more releases than our decided matches"
            elif isinstance(e, ReleaseAnswered):
                answered = sum(isinstance(x, ReleaseAnswered) for x in self.v.events)
                assert e.index == answered < self.model.releases_sent
            elif isinstance(e, TransferComplete):
                assert self.completed == 0, "TransferComplete twice"
                self.completed += 1
                assert self.model.end_in and self.model.receipts_end_in
                assert e.result.peer_releases == self.model.count == self.model.releases_in
                assert len(e.result.answers) == self.model.ours
                self.result_at_done = v.result

    def _to_p(self, data: bytes) -> None:
        p = self.p.machine
        if p.done:
            return
        with contextlib.suppress(RemoteProtocolError, LocalProtocolError):
            self.p.act(p.receive(data))

    def _v_next(self) -> bytes | None:
        v = self.v.machine
        f = v.next_frame()
        if f is not None:
            assert v.state is not TransferState.ABORTED, "a frame given out after the abort"
            self.model.sent(f)
            if f[4] == RELEASE:
                assert self.model.releases_sent <= self.model.ours
            if f[4] in (COUNT, RELEASE):
                assert v.agreed, "a release sent before the digests agreed"
        return f

    @rule(steps=st.one_of(st.integers(1, 3), st.integers(1, 40)), hold_v=st.booleans())
    def pump(self, steps: int, hold_v: bool) -> None:
        """Honest progress both ways; with hold_v V's frames wait (its RELEASEs and answers
        not given out while the peer's frames come)."""
        for _ in range(steps):
            moved = False
            if not hold_v:
                m = self._v_next()
                if m is not None:
                    moved = True
                    self.pool.append(m)
                    self._to_p(m)
            m = self.p.machine.next_frame()
            if m is not None:
                moved = True
                self.pool.append(m)
                self._to_v(m)
            if not moved:
                break

    @rule(n=st.integers(1, 4))
    def v_to_p(self, n: int) -> None:
        for _ in range(n):
            m = self._v_next()
            if m is None:
                return
            self.pool.append(m)
            self._to_p(m)

    @rule()
    def p_take(self) -> None:
        """P's next frame, taken and not delivered (lost, or in flight: an injection may
        deliver it, as it is or changed)."""
        m = self.p.machine.next_frame()
        if m is not None:
            self.pool.append(m)

    @precondition(lambda self: bool(self.pool))
    @rule(
        what=st.integers(0, 52),
        i=st.integers(0, 255),
        how=st.integers(0, 50),
        k=st.integers(0, 1000),
    )
    def inject(self, what: int, i: int, how: int, k: int) -> None:
        """One hostile frame: a replay of a frame either side sent (of the last few or of any),
        one of them changed, a frame made from scratch, an oversize one; or a local abort."""
        recent = self.pool[-1 - i % min(8, len(self.pool))]
        base = recent if what % 2 == 0 else self.pool[i % len(self.pool)]
        if what > 40:  # P's next frame, changed on its way
            nxt = self.p.machine.next_frame()
            if nxt is None:
                return
            self.pool.append(nxt)
            self._to_v(_tweak(nxt, how, k, self.model, self.pool, fields=True))
            return
        if what < 16:
            event("inject replay")
            self._to_v(base)
        elif what < 34:
            event(f"inject crafted {base[4] if len(base) > 4 else None}")
            self._to_v(_tweak(base, how, k, self.model, self.pool))
        elif what < 38:
            kind, n = 1 + k % 9, how % 7
            body = u32(n) if kind in (COUNT, RECEIPTS_END) else u32(n) + sha(bytes([n])) * (n % 3)
            self._to_v(frame(kind, body if kind != END else b""))
        elif what < 40:
            self._to_v(frame(RELEASE, bytes(MAX_MESSAGE_SIZE - 4 + what % 2)))
        else:
            v = self.v.machine
            try:
                v.abort()
                self.model.phase = "ABORTED"
            except LocalProtocolError:
                assert v.done

    @invariant()
    def checks(self) -> None:
        if not hasattr(self, "v"):
            return
        v = self.v.machine
        event(f"V state {v.state.value}")
        received = sum(isinstance(x, ReleaseReceived) for x in self.v.events)
        assert received <= v.decided
        if self.count_seen is not None:
            assert received <= self.count_seen <= v.decided
        else:
            assert received == 0
        if v.state is TransferState.ABORTED:
            assert v.next_frame() is None
            assert v.awaiting_answer is None
            try:
                v.answer(True, b"x")
            except LocalProtocolError:
                pass
            else:
                raise AssertionError("answered after the abort")
        if v.state is TransferState.DONE:
            assert self.completed == 1 and v.result is not None
        elif self.completed:
            assert v.state is TransferState.ABORTED and v.result is self.result_at_done
        else:
            assert v.result is None


TransferFuzz.TestCase.settings = fuzz_settings(steps=30)
TestTransferFuzz = TransferFuzz.TestCase


# -- what the machine above found, kept as plain cases --------------------------------------------

_SID = bytes(range(16))
_PAIRS = [(b"\x01" * 16,)]


def test_the_transfer_magic_without_a_version_byte_is_not_another_version() -> None:
    """``f0 58 52`` alone has no version byte: "shorter than 5 bytes", UNEXPECTED_MESSAGE
    (§10 frame checks), not UNSUPPORTED_VERSION."""
    with pytest.raises(TransferError) as short:
        ReleaseTransfer(_SID, _PAIRS, role=Role.INITIATOR).receive(MAGIC[:3])
    assert short.value.code is UNEXPECTED
    with pytest.raises(TransferError) as other:  # with a version byte: another version
        ReleaseTransfer(_SID, _PAIRS, role=Role.INITIATOR).receive(b"\xf0XR\x02\x07")
    assert other.value.code is AbortCode.UNSUPPORTED_VERSION


def test_receipts_end_before_our_end_has_left_is_out_of_order() -> None:
    """RECEIPTS_END follows our END (§10): a peer cannot have it before our END was given out,
    so it is UNEXPECTED_MESSAGE; it was taken, and the transfer completed without our COUNT
    and END having left."""
    v = ReleaseTransfer(_SID, _PAIRS, role=Role.INITIATOR)
    v.next_frame()  # our DIGEST
    peer_digest = decided_pairs_digest(_SID, _PAIRS, sender=Role.RESPONDER)
    v.receive(MAGIC + bytes([DIGEST]) + peer_digest)
    v.send_releases([])  # COUNT and END queued, neither given out
    with pytest.raises(TransferError) as early:
        v.receive(MAGIC + bytes([RECEIPTS_END]) + (0).to_bytes(4, "big"))
    assert early.value.code is UNEXPECTED
    assert v.state is TransferState.ABORTED and v.result is None
