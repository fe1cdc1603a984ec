"""``xlink conformance agent``: xlink itself as the implementation under test
(protocols/conformance.md §3). Any other implementation plays the same part by following the
same contract: listen on pinned mutual TLS with the kit's agent keys, run one whole exchange
(xlink-psi-v2, then release transfer v3) per connection in the role it was given, one
connection at a time, and append one JSON line per connection to the outcomes file.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from xlink.audit import AuditEvent
from xlink.conformance.kit import AGENT_AGENCY, Kit
from xlink.conformance.model import AGENT_ROLES
from xlink.crypto.rand import RandomSource
from xlink.errors import InputError, PeerAborted, ProtocolError, XlinkError
from xlink.protocol.config import Role
from xlink.transport.connect import serve_pinned
from xlink.transport.stream import FramedConnection

__all__ = ["ROLES", "fresh_workdir", "outcome_record", "run_agent"]

ROLES = AGENT_ROLES
"""The agent's roles: the two of xlink-psi-v2, and the holder of xlink-query-v1."""


def fresh_workdir(workdir: Path) -> None:
    """Refuse a working directory that is not empty: every connection (and every case) must
    start from a fresh state, and an earlier run's folders would be reused."""
    if workdir.exists() and any(workdir.iterdir()):
        raise InputError(
            f"{workdir}: not empty (an earlier run's state would be reused); give a new --workdir"
        )


def outcome_record(
    connection: int, role: str, error: BaseException | None, audit_kinds: Counter[AuditEvent]
) -> dict[str, Any]:
    """The outcome line of one connection (protocols/conformance.md §3.3): how the exchange
    ended (``completed``; ``aborted`` with the agent's code; ``peer-aborted`` with the code of
    the runner's Abort) and, from the agent's own audit
    entries of that connection, what it released, stored and refused."""
    if error is None:
        outcome, code = "completed", None
    elif isinstance(error, PeerAborted):
        outcome, code = "peer-aborted", error.code.name
    elif isinstance(error, ProtocolError):
        outcome, code = "aborted", getattr(getattr(error, "code", None), "name", "INTERNAL_ERROR")
    else:
        outcome, code = "aborted", "INTERNAL_ERROR"
    return {
        "connection": connection,
        "role": role,
        "outcome": outcome,
        "code": code,
        "released": audit_kinds[AuditEvent.RELEASE_SENT],
        "stored": audit_kinds[AuditEvent.RELEASE_RECEIVED],
        "refused": audit_kinds[AuditEvent.RECEIVE_DENIED],
    }


async def run_agent(
    kit: Kit,
    *,
    role: str,
    host: str,
    port: int,
    workdir: Path,
    outcomes: Path,
    clock: Callable[[], datetime],
    rng: RandomSource,
    idle_timeout: float = 2.0,
    max_connections: int | None = None,
    on_listening: Callable[[int], object] | None = None,
) -> int:
    """Serve the runner as the kit's agent (``US-DHS``) in ``role`` on ``host:port`` until
    cancelled or ``max_connections`` served: one exchange per connection (``initiator``,
    ``responder``), or one query session (``holder``: the agent's list is the one asked
    about), one after another, each from a fresh state (its own working directory
    ``workdir/NNNN``: no release, ledger, quota or budget carried from an earlier
    connection). Returns the connections served."""
    if role not in ROLES:
        raise InputError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    fresh_workdir(workdir)
    lock = asyncio.Lock()
    served = 0
    with kit.open_agency(AGENT_AGENCY, workdir / "listener", clock=clock, rng=rng) as listener:
        side = listener.prepare(kit.files[AGENT_AGENCY])
        tls = listener.tls_options()

    async def on_connection(conn: FramedConnection) -> None:
        nonlocal served
        async with lock:
            served += 1
            number = served
            error: BaseException | None = None
            with kit.open_agency(
                AGENT_AGENCY, workdir / f"{number:04d}", clock=clock, rng=rng
            ) as agency:
                try:
                    if role == "holder":
                        service = agency.query_service(side)
                        await service.handle(conn, idle_timeout=idle_timeout)
                    else:
                        psi_role = Role[role.upper()]
                        await agency.exchange(conn, side, role=psi_role, idle_timeout=idle_timeout)
                except XlinkError as exc:  # audited by the exchange
                    error = exc
                except Exception as exc:
                    error = exc
                kinds = Counter(e.kind for e in agency.audit.entries())
            line = json.dumps(outcome_record(number, role, error, kinds), sort_keys=True)
            with outcomes.open("a", encoding="utf-8") as f:
                f.write(line + "\n")

    return await serve_pinned(
        host,
        port,
        **tls,
        on_connection=on_connection,
        on_listening=on_listening,
        max_connections=max_connections,
    )
