"""Two sessions wired together in memory (spec: xlink-psi-v2 §5; h11's ConnectionPair).

For tests, examples and benchmarks: no transport, no framing, strictly alternating so neither
side runs ahead of the other by more than one message.
"""

from __future__ import annotations

from collections.abc import Callable

from xlink.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from xlink.protocol._state import State
from xlink.protocol.config import Role
from xlink.protocol.events import CardinalityResult, Event, PsiResult
from xlink.protocol.session import PsiSession

__all__ = ["run_pair"]

Result = PsiResult | CardinalityResult


def run_pair(
    a: PsiSession,
    b: PsiSession,
    *,
    observer: Callable[[PsiSession, bytes], None] | None = None,
    on_events: Callable[[PsiSession, list[Event]], None] | None = None,
    on_error: Callable[[PsiSession, ProtocolError], None] | None = None,
) -> tuple[Result, Result]:
    """Run ``a`` and ``b`` to completion and return ``(a.result, b.result)``.

    Calls ``initiate()`` on whichever is the initiator if it has not started. Each round moves
    at most one message each way. If a side rejects a message, the Abort it queued is delivered
    to the other side and the ``RemoteProtocolError`` is re-raised. Raises
    ``LocalProtocolError`` if the pair stalls (a bug). ``observer(sender, message)`` sees every
    message before it is delivered (the vector generator records transcripts with it);
    ``on_events(session, events)`` gets every event list a session returns, and
    ``on_error(session, error)`` every protocol error a session raises (an auditor needs both).
    """

    def deliver(receiver: PsiSession, message: bytes) -> None:
        try:
            events = receiver.receive_message(message)
        except ProtocolError as exc:
            if on_error is not None:
                on_error(receiver, exc)
            raise
        if on_events is not None:
            on_events(receiver, events)

    for s in (a, b):
        if s.role is Role.INITIATOR and s.state is State.IDLE:
            s.initiate()
    while not (a.done and b.done):
        moved = False
        for sender, receiver in ((a, b), (b, a)):
            try:
                message = sender.next_message()
            except ProtocolError as exc:  # a local failure while preparing a message
                if on_error is not None:
                    on_error(sender, exc)
                raise
            if message is None:
                continue
            moved = True
            if observer is not None:
                observer(sender, message)
            if receiver.done:
                continue
            try:
                deliver(receiver, message)
            except RemoteProtocolError:
                reply = receiver.next_message()
                if reply is not None and not sender.done:
                    deliver(sender, reply)
                raise
        if not moved:
            raise LocalProtocolError("session pair stalled")
    if a.result is None or b.result is None:
        raise LocalProtocolError("a session finished without a result (aborted)")
    return a.result, b.result
