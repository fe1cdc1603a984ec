"""Two sessions wired together in memory (spec: xlink-psi-v1 §5; h11's ConnectionPair).

For tests, examples and benchmarks: no transport, no framing, strictly alternating so neither
side runs ahead of the other by more than one message.
"""

from __future__ import annotations

from collections.abc import Callable

from xlink.errors import LocalProtocolError, RemoteProtocolError
from xlink.protocol._state import State
from xlink.protocol.config import Role
from xlink.protocol.events import CardinalityResult, PsiResult
from xlink.protocol.session import PsiSession

__all__ = ["run_pair"]

Result = PsiResult | CardinalityResult


def run_pair(
    a: PsiSession,
    b: PsiSession,
    *,
    observer: Callable[[PsiSession, bytes], None] | None = None,
) -> tuple[Result, Result]:
    """Run ``a`` and ``b`` to completion and return ``(a.result, b.result)``.

    Calls ``initiate()`` on whichever is the initiator if it has not started. Each round moves
    at most one message each way. If a side rejects a message, the Abort it queued is delivered
    to the other side and the ``RemoteProtocolError`` is re-raised. Raises
    ``LocalProtocolError`` if the pair stalls (a bug). ``observer(sender, message)`` sees every
    message before it is delivered (the vector generator records transcripts with it).
    """
    for s in (a, b):
        if s.role is Role.INITIATOR and s.state is State.IDLE:
            s.initiate()
    while not (a.done and b.done):
        moved = False
        for sender, receiver in ((a, b), (b, a)):
            message = sender.next_message()
            if message is None:
                continue
            moved = True
            if observer is not None:
                observer(sender, message)
            if receiver.done:
                continue
            try:
                receiver.receive_message(message)
            except RemoteProtocolError:
                reply = receiver.next_message()
                if reply is not None and not sender.done:
                    sender.receive_message(reply)
                raise
        if not moved:
            raise LocalProtocolError("session pair stalled")
    if a.result is None or b.result is None:
        raise LocalProtocolError("a session finished without a result (aborted)")
    return a.result, b.result
