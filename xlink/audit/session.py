"""Writing one party's PSI session into its audit log, from the session's events.

Any driver of a :class:`~xlink.protocol.PsiSession` — the in-memory pair, the network transport,
an agency's own service — passes every event list it gets from the session to
:meth:`SessionAuditor.record`, and every :class:`~xlink.errors.ProtocolError` it catches to
:meth:`SessionAuditor.record_error`. The log then holds, for each session: its start (peer, MOU,
role, mode, digests), the sizes, the match counts, and its completion or its abort with the
coded reason and which side detected it — opaque ids and counts only, never a token or a name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from xlink.audit._log import AuditLog
from xlink.audit._vocab import AuditEvent
from xlink.audit.history import SetSizeHistory
from xlink.errors import ProtocolError, RemoteProtocolError
from xlink.identifiers import check_agency_id, check_mou_id
from xlink.protocol import State
from xlink.protocol.abort import AbortCode
from xlink.protocol.events import (
    Aborted,
    CardinalityResult,
    Event,
    ExchangeComplete,
    HandshakeComplete,
    Progress,
    PsiResult,
)
from xlink.protocol.session import PsiSession

__all__ = ["SessionAuditor"]


class SessionAuditor:
    """Appends a session's milestones to ``audit``; ``clock`` supplies each entry's time.

    ``own_tokens`` is the number of token values the party put into the session (before
    padding), ``withheld`` the records left out of it because the MOU does not list their
    category (:meth:`xlink.agency.Agency.releasable`), written with the sizes so that the log
    says what was kept out. Each milestone is written once, however often it is reported. The
    completion (``MATCHES``, ``SESSION_COMPLETED``) is written when the result is known, the
    peer's last message accepted, which may be before our own last message has gone (spec
    §5.4): a session that aborts then gets its ``SESSION_ABORTED`` after it. With the
    ``history`` of past sessions with this peer (:func:`~xlink.audit.history.set_size_history`),
    a peer padded size far above its usual one is also written as ``SET_SIZE_ALARM``.

    Raises :class:`~xlink.errors.IdentifierError` at once when the session's ``peer_id`` or
    ``mou_id`` is not an identifier the log can hold (:mod:`xlink.identifiers`, the MOU's
    rules), rather than in the middle of the session.
    """

    def __init__(
        self,
        audit: AuditLog,
        session: PsiSession,
        *,
        own_tokens: int,
        clock: Callable[[], datetime],
        history: SetSizeHistory | None = None,
        withheld: int = 0,
    ) -> None:
        check_agency_id(session.config.peer_id, what="peer_id")
        check_mou_id(session.config.mou_id, what="mou_id")
        self._audit = audit
        self._session = session
        self._history = history
        self._own = own_tokens
        self._withheld = withheld
        self._clock = clock
        self._started = False
        self._completed = False
        self._aborted = False
        self._evaluated = 0

    def record(self, events: Iterable[Event]) -> None:
        """Write the milestones among ``events`` (as returned by ``receive_message``)."""
        for event in events:
            if isinstance(event, HandshakeComplete):
                self._start(event)
            elif isinstance(event, ExchangeComplete):
                self._complete(event.result)
            elif isinstance(event, Aborted):
                self._abort(event.code, by_peer=event.by_peer)
            elif isinstance(event, Progress) and event.phase == "peer_claims":
                self._evaluations(event.done)

    def record_error(self, error: ProtocolError) -> None:
        """Write the abort for an error the session raised (we detected the fault), or for a
        local failure (``LocalProtocolError``: recorded as ``INTERNAL_ERROR``)."""
        code = error.code if isinstance(error, RemoteProtocolError) else AbortCode.INTERNAL_ERROR
        self._abort(code, by_peer=False)

    def _now(self) -> datetime:
        return self._clock()

    def _start(self, event: HandshakeComplete) -> None:
        if self._started:
            return
        self._started = True
        config = self._session.config
        self._audit.append(
            AuditEvent.SESSION_STARTED,
            {
                "session": event.session_id,
                "mou": config.mou_id,
                "peer": config.peer_id,
                "role": config.role,
                "mode": config.mode,
                "mou_digest": config.mou_digest,
                "schema_digest": config.schema_digest,
                "suite": config.suite_id,
            },
            now=self._now(),
        )
        self._audit.append(
            AuditEvent.SIZES,
            {
                "session": event.session_id,
                "own": self._own,
                "own_padded": self._session.padded_size,
                "peer_padded": event.peer_padded_size,
                **({"withheld": self._withheld} if self._withheld else {}),
            },
            now=self._now(),
        )
        history = self._history
        if history is not None and history.is_alarming(event.peer_padded_size):
            self._audit.append(
                AuditEvent.SET_SIZE_ALARM,
                {
                    "session": event.session_id,
                    "peer": config.peer_id,
                    "peer_padded": event.peer_padded_size,
                    "usual": history.usual_peer_size(),
                },
                now=self._now(),
            )

    def _evaluations(self, total: int) -> None:
        """The peer's confirmation requests we answered (xlink-psi-v2 §6.9): each one a
        membership test it could make with a guess, logged per chunk as ``ORACLE_QUERY``."""
        new, self._evaluated = total - self._evaluated, total
        session_id = self._session.session_id
        if new > 0 and session_id is not None:
            self._audit.append(
                AuditEvent.ORACLE_QUERY,
                {"session": session_id, "evaluations": new, "peer": self._session.config.peer_id},
                now=self._now(),
            )

    def _complete(self, result: PsiResult | CardinalityResult) -> None:
        if self._completed or self._aborted:
            return
        self._completed = True
        fields: dict[str, object] = {"session": result.session_id}
        if isinstance(result, PsiResult):
            fields["matched"] = result.matched_tokens
            fields["pairs"] = result.pair_count
        else:
            fields["matched"] = result.intersection_size
        self._audit.append(AuditEvent.MATCHES, fields, now=self._now())
        self._audit.append(
            AuditEvent.SESSION_COMPLETED, {"session": result.session_id}, now=self._now()
        )

    def _abort(self, code: AbortCode, *, by_peer: bool) -> None:
        # after the completion, only if the session ended aborted (it had its result, and then
        # did not send its own last message); not for a transport error after a complete one
        if self._aborted or (self._completed and self._session.state is State.COMPLETE):
            return
        self._aborted = True
        fields: dict[str, object] = {
            "code": code,
            "side": "PEER" if by_peer else "LOCAL",
            "peer": self._session.config.peer_id,
        }
        if self._session.session_id is not None:
            fields["session"] = self._session.session_id
        self._audit.append(AuditEvent.SESSION_ABORTED, fields, now=self._now())
