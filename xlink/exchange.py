"""Run one exchange between two prepared sides in one process (no network).

For analysts' scripts, the demo, tests and evaluation: both agencies' sessions are driven by the
in-memory pair (:func:`xlink.protocol.run_pair`) — the same state machines, messages and
checks as over a network, without the transport. Real two-machine exchanges use the TLS
transport instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from xlink.crypto.rand import RandomSource, system_random
from xlink.linkage.schema import LinkageSchema, schema_digest
from xlink.linkage.tokens import TokenSet
from xlink.protocol.config import Mode, Role, SessionConfig
from xlink.protocol.events import CardinalityResult, PsiResult
from xlink.protocol.pair import run_pair
from xlink.protocol.session import PsiSession

__all__ = ["Party", "exchange_in_memory"]

Result = PsiResult | CardinalityResult


@dataclass(frozen=True, slots=True)
class Party:
    """One side of an in-memory exchange: its agency id, tokens and source of randomness."""

    party_id: str
    tokens: TokenSet
    rng: RandomSource = system_random


def exchange_in_memory(
    initiator: Party,
    responder: Party,
    *,
    schema: LinkageSchema,
    mou_id: str,
    mou_digest: bytes,
    mode: Mode = Mode.PSI,
    padding_bucket: int = 1024,
    chunk_size: int = 2048,
    observer: Callable[[PsiSession, bytes], None] | None = None,
) -> tuple[Result, Result]:
    """Run a full session between the two parties and return ``(initiator's, responder's)``
    results. Both sides use ``schema`` (its digest goes into the handshake) and are bound to
    ``mou_id``/``mou_digest``.

    Raises :class:`~xlink.errors.RemoteProtocolError` if either side aborts (which, between two
    honest in-memory parties, means a bug) and ``ValueError`` for an invalid configuration.
    """
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
    return run_pair(a, b, observer=observer)
