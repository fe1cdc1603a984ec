"""Run one exchange between two prepared sides in one process (no network).

For analysts' scripts, the demo, tests and evaluation: both agencies' sessions are driven by the
in-memory pair (:func:`xlink.protocol.run_pair`) — the same state machines, messages and
checks as over a network, without the transport. Real two-machine exchanges use the TLS
transport instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from xlink.audit import AuditLog
from xlink.audit.session import SessionAuditor
from xlink.crypto.rand import RandomSource, system_random
from xlink.errors import ProtocolError
from xlink.linkage.schema import LinkageSchema, schema_digest
from xlink.linkage.tokens import TokenSet
from xlink.protocol.bound import RevealBound
from xlink.protocol.config import DEFAULT_CHUNK_SIZE, Mode, Role, SessionConfig
from xlink.protocol.events import CardinalityResult, Event, PsiResult
from xlink.protocol.pair import run_pair
from xlink.protocol.session import PsiSession

__all__ = ["Party", "exchange_in_memory"]

Result = PsiResult | CardinalityResult


@dataclass(frozen=True, slots=True)
class Party:
    """One side of an in-memory exchange: its agency id, tokens, source of randomness and,
    optionally, the audit log its session is written to."""

    party_id: str
    tokens: TokenSet
    rng: RandomSource = system_random
    audit: AuditLog | None = None


def exchange_in_memory(
    initiator: Party,
    responder: Party,
    *,
    schema: LinkageSchema,
    mou_id: str,
    mou_digest: bytes,
    mode: Mode = Mode.PSI,
    padding_bucket: int = 1024,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    observer: Callable[[PsiSession, bytes], None] | None = None,
    clock: Callable[[], datetime] | None = None,
    reveal_bound: RevealBound | None = None,
) -> tuple[Result, Result]:
    """Run a full session between the two parties and return ``(initiator's, responder's)``
    results. Both sides use ``schema`` (its digest goes into the handshake) and are bound to
    ``mou_id``/``mou_digest``.

    A party with an ``audit`` log gets its session's start, sizes, match counts and end (or
    abort, with its code and which side detected it) written there, timed by ``clock``.

    ``reveal_bound`` (:func:`xlink.decide.reveal_bound_for`) makes both Reveals minimal: only
    records that can still reach the threshold are revealed (spec xlink-psi-v2 §6.7). Leave it
    ``None`` only to fit weights on a development split, which needs every pattern.

    Raises :class:`~xlink.errors.RemoteProtocolError` if either side aborts (which, between two
    honest in-memory parties, means a bug) and ``ValueError`` for an invalid configuration
    (including an audit log without a ``clock``).
    """
    if clock is None and (initiator.audit is not None or responder.audit is not None):
        raise ValueError("an audited exchange needs a clock")
    digest = schema_digest(schema)

    def config(role: Role, me: str, peer: str) -> SessionConfig:
        return SessionConfig(
            role=role,
            mode=mode,
            party_id=me,
            peer_id=peer,
            mou_id=mou_id,
            mou_digest=mou_digest,
            schema_digest=digest,
            padding_bucket=padding_bucket,
            chunk_size=chunk_size,
            reveal_bound=reveal_bound,
        )

    a = PsiSession(
        config(Role.INITIATOR, initiator.party_id, responder.party_id),
        initiator.tokens,
        rng=initiator.rng,
    )
    b = PsiSession(
        config(Role.RESPONDER, responder.party_id, initiator.party_id),
        responder.tokens,
        rng=responder.rng,
    )
    auditors: dict[int, SessionAuditor] = {}
    for party, session in ((initiator, a), (responder, b)):
        if party.audit is not None:
            assert clock is not None
            auditors[id(session)] = SessionAuditor(
                party.audit, session, own_tokens=len(party.tokens), clock=clock
            )

    def on_events(session: PsiSession, events: list[Event]) -> None:
        if (auditor := auditors.get(id(session))) is not None:
            auditor.record(events)

    def on_error(session: PsiSession, error: ProtocolError) -> None:
        if (auditor := auditors.get(id(session))) is not None:
            auditor.record_error(error)

    return run_pair(a, b, observer=observer, on_events=on_events, on_error=on_error)
