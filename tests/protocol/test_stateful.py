"""Random event orders never reach an undefined state (spec: xlink-psi-v1 §5).

Illegal local calls raise ``LocalProtocolError``, peer garbage raises ``RemoteProtocolError``,
nothing else escapes, and a pair left to finish agrees on the result.
"""

from __future__ import annotations

import contextlib

from _support import pair, token_set
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from xlink.errors import LocalProtocolError, RemoteProtocolError
from xlink.protocol import AbortCode, Mode, PsiResult, PsiSession, State, run_pair
from xlink.protocol._state import TRANSITIONS

TOKENS_A = token_set([("a1", [("passport", 1), ("name_dob", 2)]), ("a2", [("passport", 3)])])
TOKENS_B = token_set([("b1", [("passport", 1)]), ("b2", [("name_dob", 2)])])
STATES_IN_TABLE = {s for s, _ in TRANSITIONS} | {n for _, n in TRANSITIONS.values()}


class SessionPairMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.mode = Mode.PSI
        self.a, self.b = pair(TOKENS_A, TOKENS_B, bucket=2, chunk=2)
        self.seen: list[bytes] = []
        self.tampered = False

    def _sessions(self, first: bool) -> tuple[PsiSession, PsiSession]:
        return (self.a, self.b) if first else (self.b, self.a)

    @rule(first=st.booleans())
    def initiate(self, first: bool) -> None:
        s, _ = self._sessions(first)
        with contextlib.suppress(LocalProtocolError):
            s.initiate()

    @rule(first=st.booleans())
    def deliver(self, first: bool) -> None:
        sender, receiver = self._sessions(first)
        message = sender.next_message()
        if message is None:
            return
        self.seen.append(message)
        try:
            receiver.receive_message(message)
        except RemoteProtocolError:
            self.tampered = True  # only after garbage or a replay
        except LocalProtocolError:
            assert receiver.done

    @rule(first=st.booleans(), data=st.binary(max_size=80))
    def garbage(self, first: bool, data: bytes) -> None:
        s, _ = self._sessions(first)
        try:
            s.receive_message(data)
        except RemoteProtocolError:
            self.tampered = True
        except LocalProtocolError:
            assert s.done
        else:
            self.tampered = True  # a well-formed stray message (e.g. an Abort) may be accepted

    @precondition(lambda self: bool(self.seen))
    @rule(first=st.booleans(), index=st.integers(min_value=0))
    def replay(self, first: bool, index: int) -> None:
        s, _ = self._sessions(first)
        self.tampered = True
        with contextlib.suppress(RemoteProtocolError, LocalProtocolError):
            s.receive_message(self.seen[index % len(self.seen)])

    @rule(first=st.booleans())
    def local_abort(self, first: bool) -> None:
        s, _ = self._sessions(first)
        try:
            s.abort(AbortCode.TIMEOUT, "test")
            self.tampered = True
        except LocalProtocolError:
            assert s.done

    @invariant()
    def states_are_defined(self) -> None:
        for s in (self.a, self.b):
            assert s.state in STATES_IN_TABLE
            assert s.done == (s.state in (State.COMPLETE, State.ABORTED))
            if s.state is State.COMPLETE:
                assert s.result is not None

    def teardown(self) -> None:
        if self.tampered or self.a.done or self.b.done:
            return
        if self.a.state is State.IDLE and self.b.state is not State.IDLE:
            return
        try:
            ra, rb = run_pair(self.a, self.b)
        except LocalProtocolError:
            # b was initiated as well: two initiators, or a responder called initiate first.
            return
        assert isinstance(ra, PsiResult) and isinstance(rb, PsiResult)
        assert ra.matched_tokens == rb.matched_tokens == 2


SessionPairMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None
)
TestSessionPair = SessionPairMachine.TestCase
