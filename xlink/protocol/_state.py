"""The PSI session state machine as data (spec: xlink-psi-v2 §5, table "Transitions").

Everything a session may do is a :class:`Trigger`; :data:`TRANSITIONS` maps ``(state, trigger)``
to the next state and the roles allowed to take that step. A pair that is not in the table is
illegal: a local call raises :class:`~xlink.errors.LocalProtocolError`, a received message
aborts with ``UNEXPECTED_MESSAGE``. Every change of state, aborts included (``fail``,
``recv Abort``), goes through :func:`next_state`. The spec carries the same table in markdown
and a test checks that the two are equal.
"""

from __future__ import annotations

from enum import Enum
from typing import Final

from xlink.protocol.config import Role

__all__ = ["TERMINAL", "TRANSITIONS", "State", "Trigger", "next_state"]


class State(Enum):
    """Where a session is (spec §5)."""

    IDLE = "IDLE"
    AWAIT_HELLO = "AWAIT_HELLO"
    EXCHANGE = "EXCHANGE"
    CONFIRM = "CONFIRM"
    REVEAL = "REVEAL"
    COMPLETE = "COMPLETE"
    ABORTED = "ABORTED"


class Trigger(Enum):
    """What makes a session move: a local call, a message sent or received, or a milestone."""

    INITIATE = "initiate"
    SEND_HELLO = "send Hello"
    RECV_HELLO = "recv Hello"
    SEND_ELEMENTS = "send Elements"
    RECV_ELEMENTS = "recv Elements"
    SEND_REBLINDED = "send Reblinded"
    RECV_REBLINDED = "recv Reblinded"
    MATCHED = "matched"
    COUNTED = "counted"
    SEND_CONFIRM_REQUEST = "send ConfirmRequest"
    RECV_CONFIRM_REQUEST = "recv ConfirmRequest"
    SEND_CONFIRM_RESPONSE = "send ConfirmResponse"
    RECV_CONFIRM_RESPONSE = "recv ConfirmResponse"
    CONFIRMED = "confirmed"
    SEND_COMMIT = "send Commit"
    RECV_COMMIT = "recv Commit"
    SEND_REVEAL = "send Reveal"
    RECV_REVEAL = "recv Reveal"
    REVEALED = "revealed"
    SEND_ABORT = "send Abort"
    RECV_ABORT = "recv Abort"
    FAIL = "fail"


_I: Final = frozenset({Role.INITIATOR})
_R: Final = frozenset({Role.RESPONDER})
_BOTH: Final = frozenset({Role.INITIATOR, Role.RESPONDER})

TRANSITIONS: Final[dict[tuple[State, Trigger], tuple[frozenset[Role], State]]] = {
    (State.IDLE, Trigger.INITIATE): (_I, State.AWAIT_HELLO),
    (State.IDLE, Trigger.RECV_HELLO): (_R, State.EXCHANGE),
    (State.IDLE, Trigger.RECV_ABORT): (_BOTH, State.ABORTED),
    (State.IDLE, Trigger.FAIL): (_BOTH, State.ABORTED),
    (State.AWAIT_HELLO, Trigger.SEND_HELLO): (_I, State.AWAIT_HELLO),
    (State.AWAIT_HELLO, Trigger.RECV_HELLO): (_I, State.EXCHANGE),
    (State.AWAIT_HELLO, Trigger.RECV_ABORT): (_I, State.ABORTED),
    (State.AWAIT_HELLO, Trigger.FAIL): (_I, State.ABORTED),
    (State.EXCHANGE, Trigger.SEND_HELLO): (_R, State.EXCHANGE),
    (State.EXCHANGE, Trigger.SEND_ELEMENTS): (_BOTH, State.EXCHANGE),
    (State.EXCHANGE, Trigger.RECV_ELEMENTS): (_BOTH, State.EXCHANGE),
    (State.EXCHANGE, Trigger.SEND_REBLINDED): (_BOTH, State.EXCHANGE),
    (State.EXCHANGE, Trigger.RECV_REBLINDED): (_BOTH, State.EXCHANGE),
    (State.EXCHANGE, Trigger.MATCHED): (_BOTH, State.CONFIRM),
    (State.EXCHANGE, Trigger.COUNTED): (_BOTH, State.COMPLETE),
    (State.EXCHANGE, Trigger.RECV_ABORT): (_BOTH, State.ABORTED),
    (State.EXCHANGE, Trigger.FAIL): (_BOTH, State.ABORTED),
    (State.CONFIRM, Trigger.SEND_CONFIRM_REQUEST): (_BOTH, State.CONFIRM),
    (State.CONFIRM, Trigger.RECV_CONFIRM_REQUEST): (_BOTH, State.CONFIRM),
    (State.CONFIRM, Trigger.SEND_CONFIRM_RESPONSE): (_BOTH, State.CONFIRM),
    (State.CONFIRM, Trigger.RECV_CONFIRM_RESPONSE): (_BOTH, State.CONFIRM),
    (State.CONFIRM, Trigger.CONFIRMED): (_BOTH, State.REVEAL),
    (State.CONFIRM, Trigger.RECV_ABORT): (_BOTH, State.ABORTED),
    (State.CONFIRM, Trigger.FAIL): (_BOTH, State.ABORTED),
    (State.REVEAL, Trigger.SEND_COMMIT): (_BOTH, State.REVEAL),
    (State.REVEAL, Trigger.RECV_COMMIT): (_BOTH, State.REVEAL),
    (State.REVEAL, Trigger.SEND_REVEAL): (_BOTH, State.REVEAL),
    (State.REVEAL, Trigger.RECV_REVEAL): (_BOTH, State.REVEAL),
    (State.REVEAL, Trigger.REVEALED): (_BOTH, State.COMPLETE),
    (State.REVEAL, Trigger.RECV_ABORT): (_BOTH, State.ABORTED),
    (State.REVEAL, Trigger.FAIL): (_BOTH, State.ABORTED),
    (State.ABORTED, Trigger.SEND_ABORT): (_BOTH, State.ABORTED),
}
"""``(state, trigger) -> (roles allowed, next state)``; anything else is illegal (spec §5)."""

TERMINAL: Final = frozenset({State.COMPLETE, State.ABORTED})


def next_state(role: Role, state: State, trigger: Trigger) -> State | None:
    """The state after ``trigger`` in ``state`` for ``role``, or None if the step is illegal."""
    entry = TRANSITIONS.get((state, trigger))
    if entry is None or role not in entry[0]:
        return None
    return entry[1]
