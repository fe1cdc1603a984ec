"""Random event orders follow the transition table exactly (spec: xlink-psi-v2 §5.5).

Two sessions (PSI or cardinality) are driven by random local calls, deliveries, replays and
garbage. After every step, each state change a session made is checked against the table: the
``(previous state, trigger)`` pair must be a row for the session's role and the state reached
must be that row's target, with no change of state outside those steps. Only
``LocalProtocolError`` (a call the state does not allow) and ``RemoteProtocolError`` (the peer's
fault) may escape; a received Abort is never answered; a pair left alone agrees on the result.
"""

from __future__ import annotations

import msgpack
from _support import config, token_set
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from xlink.crypto.rand import DeterministicRandom
from xlink.errors import LocalProtocolError, RemoteProtocolError
from xlink.linkage.tokens import TokenSet
from xlink.protocol import (
    AbortCode,
    CardinalityResult,
    Mode,
    PsiResult,
    PsiSession,
    Role,
    SessionConfig,
    State,
    run_pair,
)
from xlink.protocol._state import TERMINAL, TRANSITIONS, Trigger
from xlink.protocol.codec import decode_message
from xlink.protocol.messages import Abort

TOKENS_A = token_set([("a1", [("passport", 1), ("name_dob", 2)]), ("a2", [("passport", 3)])])
TOKENS_B = token_set([("b1", [("passport", 1)]), ("b2", [("name_dob", 2)])])


class RecordingSession(PsiSession):
    """A session that records every step it takes: ``(state before, trigger, state after)``."""

    def __init__(self, cfg: SessionConfig, tokens: TokenSet, seed: str) -> None:
        super().__init__(cfg, tokens, rng=DeterministicRandom(seed))
        self.steps: list[tuple[State, Trigger, State]] = []

    def _step(self, trigger: Trigger) -> None:
        before = self.state
        super()._step(trigger)  # an illegal step raises and changes nothing
        self.steps.append((before, trigger, self.state))


_msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.integers(0, 20)
    | st.binary(max_size=70)
    | st.sampled_from([b"\x09" * 32, b"\x09" * 64, b"\x00" * 32, b"\x01" * 16])
    | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=2)
    ),
    max_leaves=12,
)
# 0x02 then a msgpack array that starts like a message: a (mostly known) type and random fields.
structured_garbage = st.builds(
    lambda kind, fields: b"\x02" + msgpack.packb([kind, *fields], use_bin_type=True),
    st.integers(-1, 7),
    st.lists(_msgpack_values, max_size=13),
)


def _mutate(message: bytes, how: int, pos: int, value: int) -> bytes:
    """One small corruption of a real message: overwrite, xor, insert or delete a byte,
    truncate, or duplicate the tail."""
    i = pos % len(message)
    if how == 0:
        return message[:i] + bytes([value]) + message[i + 1 :]
    if how == 1:
        return message[:i] + bytes([message[i] ^ (1 << (value % 8))]) + message[i + 1 :]
    if how == 2:
        return message[:i] + bytes([value]) + message[i:]
    if how == 3:
        return message[:i] + message[i + 1 :]
    if how == 4:
        return message[:i]
    return message + message[i:]


class SessionPairMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[bytes] = []
        self.tampered = False

    @initialize(mode=st.sampled_from(list(Mode)))
    def build(self, mode: Mode) -> None:
        self.mode = mode
        cfg_a = config(Role.INITIATOR, mode, bucket=2, chunk=2)
        cfg_b = config(Role.RESPONDER, mode, bucket=2, chunk=3)
        self.a = RecordingSession(cfg_a, TOKENS_A, "a")
        self.b = RecordingSession(cfg_b, TOKENS_B, "b")
        self.checked = {id(self.a): (0, State.IDLE), id(self.b): (0, State.IDLE)}

    def _sessions(self, first: bool) -> tuple[RecordingSession, RecordingSession]:
        return (self.a, self.b) if first else (self.b, self.a)

    def _receive(self, s: RecordingSession, data: bytes) -> None:
        """Deliver ``data``; only the two protocol errors may escape, each when it should."""
        was_done = s.done
        try:
            s.receive_message(data)
        except RemoteProtocolError as exc:
            assert not was_done and s.state is State.ABORTED
            assert s.steps[-1][1] is Trigger.FAIL
            out = s.next_message()  # the Abort, with the code raised
            assert out is not None and s.next_message() is None
            abort = decode_message(out)
            assert isinstance(abort, Abort) and abort.code == int(exc.code)
            self.tampered = True
        except LocalProtocolError:
            assert was_done  # never an internal error here
        else:
            assert not was_done
            if s.steps and s.steps[-1][1] is Trigger.RECV_ABORT:
                assert s.state is State.ABORTED and s.next_message() is None  # no answer
                self.tampered = True

    @rule(first=st.booleans())
    def initiate(self, first: bool) -> None:
        s, _ = self._sessions(first)
        allowed = s.role is Role.INITIATOR and s.state is State.IDLE
        try:
            s.initiate()
            assert allowed
        except LocalProtocolError:
            assert not allowed

    @rule(first=st.booleans())
    def deliver(self, first: bool) -> None:
        sender, receiver = self._sessions(first)
        message = sender.next_message()
        if message is None:
            return
        self.seen.append(message)
        self._receive(receiver, message)

    @precondition(lambda self: bool(self.seen))
    @rule(
        first=st.booleans(),
        index=st.integers(min_value=0),
        how=st.integers(0, 5),
        pos=st.integers(min_value=0),
        value=st.integers(0, 255),
    )
    def mutated(self, first: bool, index: int, how: int, pos: int, value: int) -> None:
        s, _ = self._sessions(first)
        self.tampered = True
        self._receive(s, _mutate(self.seen[index % len(self.seen)], how, pos, value))

    @rule(first=st.booleans(), data=structured_garbage)
    def garbage(self, first: bool, data: bytes) -> None:
        s, _ = self._sessions(first)
        self.tampered = True
        self._receive(s, data)

    @precondition(lambda self: bool(self.seen))
    @rule(first=st.booleans(), index=st.integers(min_value=0))
    def replay(self, first: bool, index: int) -> None:
        s, _ = self._sessions(first)
        self.tampered = True
        self._receive(s, self.seen[index % len(self.seen)])

    @rule(first=st.booleans())
    def local_abort(self, first: bool) -> None:
        s, _ = self._sessions(first)
        was_done = s.done
        try:
            s.abort(AbortCode.TIMEOUT, "test")
            assert not was_done and s.steps[-1][1] is Trigger.FAIL
            self.tampered = True
        except LocalProtocolError:
            assert was_done

    @invariant()
    def steps_follow_the_table(self) -> None:
        for s in (self.a, self.b):
            count, state = self.checked[id(s)]
            for before, trigger, after in s.steps[count:]:
                assert before is state, "state changed outside the table"
                entry = TRANSITIONS.get((before, trigger))
                assert entry is not None and s.role in entry[0], (s.role, before, trigger)
                assert after is entry[1], (before, trigger, after)
                state = after
            assert s.state is state, "state changed outside the table"
            self.checked[id(s)] = (len(s.steps), state)
            assert s.done == (s.state in TERMINAL)
            if s.state is State.COMPLETE:
                assert s.result is not None

    def teardown(self) -> None:
        if self.tampered or self.a.done or self.b.done:
            return
        if self.a.state is State.IDLE and self.b.state is not State.IDLE:
            return
        ra, rb = run_pair(self.a, self.b)
        self.steps_follow_the_table()
        if self.mode is Mode.PSI:
            assert isinstance(ra, PsiResult) and isinstance(rb, PsiResult)
            assert ra.matched_tokens == rb.matched_tokens == 2
        else:
            assert isinstance(ra, CardinalityResult) and isinstance(rb, CardinalityResult)
            assert ra.intersection_size == rb.intersection_size == 2


SessionPairMachine.TestCase.settings = settings(
    max_examples=80, stateful_step_count=40, deadline=None
)
TestSessionPair = SessionPairMachine.TestCase
