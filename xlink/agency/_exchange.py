"""The exchange itself (:meth:`Agency.exchange <xlink.agency.Agency.exchange>`): the PSI
session, the decision, the label exchange, releases both ways with receipts, and the audit
of how the run ended."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from xlink._sqlite import Batch
from xlink.agency._inbound import Receiver, ending_on_dishonesty
from xlink.agency._matches import record_decision
from xlink.agency._outcome import AgencyOutcome
from xlink.agency._transfer import (
    ExchangeClaims,
    agree_and_label,
    transfer_counts,
    withhold_unreciprocated,
)
from xlink.audit import AuditEvent, AuditLog, verify_log
from xlink.audit.history import SetSizeHistory, set_size_history
from xlink.audit.session import SessionAuditor
from xlink.decide import Decision, decide
from xlink.errors import InputError, ProtocolError, RemoteProtocolError, SchemaMismatch
from xlink.linkage.schema import schema_digest
from xlink.prepare import PreparedSide
from xlink.progress import ProgressFn
from xlink.protocol.config import Role, SessionConfig
from xlink.protocol.events import Event, Progress, PsiResult
from xlink.protocol.session import PsiSession
from xlink.release.label import per_pair
from xlink.release.settle import ReceiptSettler
from xlink.transport import Connection, run_session
from xlink.transport.release_transfer import TransferGate, transfer_releases

if TYPE_CHECKING:
    from xlink.agency._agency import Agency

__all__ = ["run_ended", "run_exchange"]


def run_ended(
    agency: Agency,
    outcome: str,
    session: bytes | None,
    code: str | None = None,
    counts: tuple[int, int] | None = None,
) -> None:
    """Audit how a run ended (``RUN_ENDED``): completed, aborted, transfer-failed,
    interrupted or refused, with the session, the abort code and the counts when known."""
    fields: dict[str, object] = {"outcome": outcome, "peer": agency.peer_id, "mou": agency.mou.id}
    if session is not None:
        fields["session"] = session
    if code is not None:
        fields["code"] = code
    if counts is not None:
        fields["released"], fields["received"] = counts
    if agency.mou.reciprocal:  # the carried window's counts (xlink-release-v1 §10.5)
        with contextlib.suppress(sqlite3.Error):  # (the run's end is audited all the same)
            balance = agency.reciprocity()
            fields["given"], fields["credited"] = balance.given, balance.credited
    agency.audit.append(AuditEvent.RUN_ENDED, fields, now=agency.clock())


async def run_exchange(
    agency: Agency,
    conn: Connection,
    side: PreparedSide,
    *,
    role: Role | None,
    config: SessionConfig | None,
    idle_timeout: float,
    progress: ProgressFn | None,
) -> AgencyOutcome:
    """:meth:`Agency.exchange <xlink.agency.Agency.exchange>`, which documents it."""
    if config is None and role is None:
        await conn.close(timeout=1.0)
        raise ValueError("give the role or the session config")
    try:
        if schema_digest(side.schema) != agency.mou.schema_digest:
            raise SchemaMismatch("these records were prepared with another linkage schema")
        if config is None:
            assert role is not None
            config = agency.session_config(role)
        side = agency.releasable(side)
    except BaseException:
        with contextlib.suppress(BaseException):
            await asyncio.shield(conn.close(timeout=1.0))
        run_ended(agency, "refused", None)
        raise
    role = config.role
    phases: dict[str, float] = {}
    started = time.perf_counter()
    session_id: bytes | None = None
    outcome, code = "aborted", None
    try:
        gate = TransferGate(conn)
        try:
            session = PsiSession(
                config, side.tokens, rng=agency.rng, workers=agency.workers, hashed=side.hashed
            )
        except ValueError as exc:  # e.g. our own set above the MOU's bound
            raise InputError(f"cannot start the session: {exc}") from None
        auditor = _ProgressAuditor(
            agency.audit,
            session,
            own_tokens=len(side.tokens),
            clock=agency.clock,
            progress=progress,
            history=set_size_history(agency.audit, agency.peer_id),
            withheld=side.withheld,
        )
        result = await run_session(session, gate, auditor=auditor, idle_timeout=idle_timeout)
        if not isinstance(result, PsiResult):  # pragma: no cover - Mode.PSI
            raise InputError("the session did not produce a PSI result")
        session_id = result.session_id
        phases["psi"] = time.perf_counter() - started
        # off the event loop: deciding is seconds of CPU on a large session (and a partner
        # can push it to tens of seconds, docs/evaluation.md §6), and the hub agent runs other
        # partners' jobs on this loop meanwhile
        decision = await asyncio.to_thread(
            decide,
            result,
            agency.schema,
            agency.mou.match_threshold,
            weights=agency.mou.weights,
            links=agency.mou.links,
        )
        record_decision(agency.workdir / "matches", decision, agency.audit, agency.clock())
        outcome = "transfer-failed"
        mark = time.perf_counter()
        outcome_counts = await _transfer(
            agency, gate, session, decision, side, idle_timeout, progress
        )
        phases["transfer"] = time.perf_counter() - mark
        outcome = "completed"
    except (asyncio.CancelledError, KeyboardInterrupt):
        outcome = "interrupted"
        raise
    except RemoteProtocolError as exc:
        code = exc.code.name
        if outcome == "transfer-failed":  # the session's auditor wrote PSI aborts
            fields = {"code": code, "side": "LOCAL", "peer": agency.peer_id}
            if session_id is not None:
                fields["session"] = session_id.hex()
            agency.audit.append(AuditEvent.SESSION_ABORTED, fields, now=agency.clock())
        raise
    except ProtocolError:
        code = "INTERNAL_ERROR"
        raise
    finally:
        with contextlib.suppress(BaseException):  # even a second Ctrl-C: the end is audited
            await asyncio.shield(conn.close(timeout=1.0))
        counts = None
        if outcome == "completed":
            counts = (outcome_counts["released"], outcome_counts["received"])
        run_ended(agency, outcome, session_id, code, counts)
    report = verify_log(agency.audit.path, agency.keys.audit_key.verify_key)
    return AgencyOutcome(
        agency=agency.agency_id,
        peer=agency.peer_id,
        role="serve" if role is Role.RESPONDER else "match",
        mou_id=agency.mou.id,
        session_id=result.session_id.hex(),
        records=side.loaded,
        rejected=side.rejected,
        tokens=len(side.tokens),
        matched_tokens=result.matched_tokens,
        candidates=decision.candidates,
        decided=len(decision.matches),
        approval_required=agency.mou.approval_required,
        workdir=str(agency.workdir),
        audit_ok=report.ok,
        audit_entries=report.entries,
        audit_reason=report.reason,
        phases={k: round(v, 3) for k, v in phases.items()},
        withheld=side.withheld,
        unread_columns=side.unread_columns,
        **outcome_counts["fields"],
    )


async def _transfer(
    agency: Agency,
    gate: TransferGate,
    session: PsiSession,
    decision: Decision,
    side: PreparedSide,
    idle_timeout: float,
    progress: ProgressFn | None,
) -> dict[str, Any]:
    session_id = decision.session_id
    reciprocal = agency.mou.reciprocal
    peer_outputs = await agree_and_label(
        gate, session, decision, idle_timeout, reciprocal=reciprocal
    )
    overdue = agency.queue.audit_overdue(agency.clock())
    # The day's claims are read, applied and written (committed) before anything leaves,
    # with no lock held while the releases are built (a query service goes on meanwhile);
    # what a query session claimed in between is applied when they are written.
    claims = agency.day_claims()
    view = claims.snapshot(agency.clock().astimezone(UTC).date())
    day_claims = ExchangeClaims(agency, view, session.labels, decision, side)
    batch = agency.release(decision, side.records, day_claims=day_claims)
    claims.keep(view, lambda day: day_claims.replay(day, batch.fates))
    batch = day_claims.withdraw(batch, agency.audit, agency.clock())
    window = None
    if reciprocal:  # what the partner offers bounds what leaves, and what it gave paces it
        batch = await withhold_unreciprocated(
            gate,
            batch,
            decision,
            idle_timeout,
            audit=agency.audit,
            now=agency.clock(),
            given=agency.queue.given(i for i in batch.items if i is not None),
        )
        window = agency._reciprocal_window(batch.items)
    if progress is not None:  # releases sent now (queued, pending, denied ones are not)
        progress("releases sent", 0, len(batch.sealed))
    receiver = Receiver(
        agency, session_id, decision, per_pair(peer_outputs.__getitem__), reciprocal=reciprocal
    )
    # Each receipt is settled (audited, its checkpoint kept, the ledger marked) as it
    # arrives, in the transfer's batch: one that came in is recorded even if the
    # transfer fails after it. Our receipts leave once what they vouch for is committed.
    settler = ReceiptSettler(
        batch, mou=agency.mou, clock=agency.clock, queue=agency.queue, audit=agency.audit
    )
    transferred = await transfer_releases(
        gate,
        batch.sealed,
        ending_on_dishonesty(receiver.store_one, clock_goes_on=not reciprocal),
        idle_timeout,
        encode=agency._handing_over(session_id, per_pair(session.labels.own_output)),
        on_answer=settler.settle,
        batch=Batch(agency.audit, agency.store, agency.queue),  # the audit log commits first
        window=window,
    )
    if progress is not None:
        progress("releases sent", len(batch.sealed), len(batch.sealed))
    settled = settler.finish(transferred.answers)
    counted = transfer_counts(agency.workdir, decision, side, batch, receiver, overdue, settled)
    if reciprocal:
        assert gate.transfer is not None
        counted["fields"]["peer_offered"] = gate.transfer.peer_offer
        counted["fields"]["reciprocal_ahead"] = agency.reciprocity().ahead
    return counted


class _ProgressAuditor(SessionAuditor):
    """A session auditor that also reports the session's Progress events."""

    def __init__(
        self,
        audit: AuditLog,
        session: PsiSession,
        *,
        own_tokens: int,
        clock: Callable[[], datetime],
        progress: ProgressFn | None,
        history: SetSizeHistory | None = None,
        withheld: int = 0,
    ) -> None:
        super().__init__(
            audit, session, own_tokens=own_tokens, clock=clock, history=history, withheld=withheld
        )
        self._progress = progress

    def record(self, events: Iterable[Event]) -> None:
        events = list(events)
        super().record(events)
        if self._progress is not None:
            for event in events:
                if isinstance(event, Progress):
                    phase = f"PSI {event.phase.replace('_', ' ')}"
                    self._progress(phase, event.done, event.total)
