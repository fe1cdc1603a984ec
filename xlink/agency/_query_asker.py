"""The asker's side of the real-time query mode (xlink-query-v1 §5.3, §7.3, §7.4;
docs/query.md): :class:`QueryClient` keeps its copy of the holder's table current, blinds its
travellers' tokens, looks the outputs up, scores and decides the candidates with the MOU's
schema exactly as the batch path does, asks for the decided records' releases and stores
them."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Self, TypeVar

from xlink.agency._query_answers import TravellerAnswer, _collect_releases, _decide
from xlink.agency._query_common import (
    EVALUATE_CHUNK,
    EVALUATE_WINDOW,
    LINGER,
    _abort_for,
    _config,
    _flush,
    _lp,
    _only,
    _receive,
    audit_unopened,
    table_bound,
)
from xlink.audit import AuditEvent
from xlink.crypto import oprf9497
from xlink.error_codes import LOCAL_FAILURE, AbortCode
from xlink.errors import (
    ConnectionLost,
    InputError,
    InvalidElement,
    PeerAborted,
    ProtocolError,
    QuotaExhausted,
    RemoteProtocolError,
)
from xlink.linkage.schema import schema_digest
from xlink.policy import mou_digest
from xlink.prepare import PreparedSide
from xlink.progress import ProgressFn
from xlink.query.messages import MAX_EVALUATE
from xlink.query.session import (
    AskerSession,
    EvaluationAnswered,
    SessionState,
    TableChunkReceived,
    TableComplete,
    Welcomed,
)
from xlink.query.table import AskerTable
from xlink.transport import Connection
from xlink.transport.driver import MIN_PACE, time_limit, within_limit
from xlink.transport.stream import linger

if TYPE_CHECKING:
    from pathlib import Path

    from xlink.agency._agency import Agency

__all__ = ["QueryClient", "QueryOutcome", "TravellerAnswer", "ask"]


# -- the asker -----------------------------------------------------------------------------------


@dataclass
class QueryOutcome:
    """What one query session gave the asker. Counts and the per-traveller answers; no holder
    record id, no holder data beyond the releases in the store."""

    agency: str
    holder: str
    session_id: str
    period: str
    travellers: int
    evaluations: int
    table_entries: int
    table_fetched: int
    candidates: int
    answers: tuple[TravellerAnswer, ...] = ()
    received: int = 0
    refused_by_us: int = 0
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def matched(self) -> int:
        return sum(a.matched for a in self.answers)


def _table_meta(agency: Agency, period: str) -> bytes:
    return (
        _lp(agency.peer_id.encode())
        + _lp(period.encode())
        + mou_digest(agency.mou)
        + agency.mou.schema_digest
    )


class QueryClient:
    """An open query session with the holder at the other end of ``conn``: the copy of its
    table brought up to date once (:meth:`open`), then any number of :meth:`ask` calls (an
    officer's terminal keeps one open), then :meth:`close` (BYE). Use ``async with``.

    Every end is audited (``QUERY_ENDED`` with the session's totals); a protocol error aborts
    the session with its code and is raised, e.g. :class:`~xlink.errors.PeerAborted` with
    ``QUOTA_EXHAUSTED``."""

    def __init__(
        self,
        agency: Agency,
        conn: Connection,
        *,
        idle_timeout: float = 60.0,
        progress: ProgressFn | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.agency = agency
        self._conn = conn
        self._idle = idle_timeout
        self._progress = progress
        self._tick = clock
        self.session = AskerSession(
            _config(agency, asker=agency.agency_id, holder=agency.peer_id),
            rng=agency.rng,
        )
        self.table = AskerTable(len(agency.schema.key_names))
        self.period = ""
        self.quota_left = 0
        """The holder's evaluations left today, as its WELCOME said, less what we spent since."""
        self.fetched = 0
        self._totals = {"evaluations": 0, "records": 0, "matched": 0, "received": 0}
        self._ended = False

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            await self.close()
        else:
            await self._end(_outcome_of(exc), exc)

    async def _guard(self, work: Awaitable[_T]) -> _T:
        try:
            return await work
        except BaseException as exc:
            await self._end(_outcome_of(exc), exc)
            raise

    async def open(self) -> None:
        """HELLO / WELCOME, then the table: the copy in ``WORKDIR/query/`` if it is this
        period's and current, else what changed since it (or all of it)."""
        await self._guard(self._open())

    async def _open(self) -> None:
        agency, session, conn = self.agency, self.session, self._conn
        session.start()
        await _flush(conn, session)
        welcome = _only(session.receive(await _receive(conn, self._idle)), Welcomed)
        agency.audit.append(
            AuditEvent.QUERY_STARTED,
            {
                "session": welcome.session_id,
                "peer": agency.peer_id,
                "role": "INITIATOR",
                "mou": agency.mou.id,
            },
            now=agency.clock(),
        )
        self.period = welcome.period
        self.quota_left = welcome.quota_left
        # the copies apart from the agency's own table (table-YYYY-MM.npz, when it holds too):
        # a holder whose id is "table" must not name one of them
        folder = agency.workdir / "query" / "copies"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{_safe(agency.peer_id)}-{welcome.period}.npz"
        meta = _table_meta(agency, welcome.period)
        table = AskerTable.load(path, meta=meta)
        keys = len(agency.schema.key_names)
        if table is None or table.keys != keys or table.version > welcome.table_version:
            table = AskerTable(keys)
        if table.digest != welcome.table_digest:
            bound = table_bound(agency, agency.peer_id)
            if welcome.entries > bound:  # before anything is fetched (spec §6.5)
                detail = f"a table of {welcome.entries} entries; the MOU bounds it at {bound}"
                session.abort(AbortCode.BAD_TABLE, detail)
                raise RemoteProtocolError(AbortCode.BAD_TABLE, detail)
            if table.version == welcome.table_version:  # same version, other table: refetch
                table = AskerTable(keys)
            # The fetch has a time limit in all (both attempts): ten idle timeouts plus
            # WELCOME's entries at MIN_PACE a second, so that a holder sending one entry inside
            # each idle timeout cannot hold us for as many timeouts as its table has entries
            # (a week for 10,000).
            limit_s = time_limit(welcome.entries, self._idle, MIN_PACE)
            table = await within_limit(
                self._fetch(conn, session, welcome, table), limit_s, "the table fetch"
            )
            table.save(path, meta=meta)
            _drop_other_periods(folder, agency.peer_id, path)
        self.table = table

    async def _fetch(
        self, conn: Connection, session: AskerSession, welcome: Welcomed, table: AskerTable
    ) -> AskerTable:
        """Our copy ``table`` brought to WELCOME's table (spec §5.3): the changes since it, or,
        when they do not make that table (the holder lost and rebuilt it within the month),
        the whole table, once, in this session."""
        try:
            self.fetched = await _fetch_table(
                conn, session, table, welcome, self._idle, self._progress
            )
        except RemoteProtocolError as exc:
            aborted = session.state is SessionState.ABORTED  # more than the whole table
            if exc.code is not AbortCode.BAD_TABLE or table.version == 0 or aborted:
                raise
            table = AskerTable(table.keys)
            self.fetched = await _fetch_table(
                conn, session, table, welcome, self._idle, self._progress
            )
        return table

    async def ask(self, travellers: PreparedSide) -> QueryOutcome:
        """Ask about ``travellers`` (the asker's own records: one traveller or a manifest):
        evaluate their tokens, look them up, decide, ask for the decided records' releases and
        store them. The session stays open. Raises ``InputError`` before anything is spent for
        travellers of another schema or two travellers with one record id."""
        if schema_digest(travellers.schema) != self.agency.mou.schema_digest:
            raise InputError("these travellers were prepared with another linkage schema")
        if self.session.session_id is None:
            raise InputError("the query session is not open")
        ids = travellers.tokens.record_ids
        if len(set(ids)) != len(ids):  # an answer is given by id: one traveller each
            raise InputError("two of these travellers have the same record id")
        needed = len(travellers.tokens)
        if needed > self.quota_left:
            # Refused before anything is spent: the holder would refuse it part way.
            fields = {
                "peer": self.agency.peer_id,
                "reason": "quota-exhausted",
                "evaluations": needed,
            }
            self.agency.audit.append(
                AuditEvent.QUERY_REFUSED,
                {**fields, "session": self.session.session_id, "role": "INITIATOR"},
                now=self.agency.clock(),
            )
            raise QuotaExhausted(
                f"this query needs {needed} OPRF evaluations and the partner's quota has "
                f"{self.quota_left} left today (UTC)"
            )
        return await self._guard(self._ask(travellers))

    async def _ask(self, travellers: PreparedSide) -> QueryOutcome:
        agency, session, conn = self.agency, self.session, self._conn
        assert session.session_id is not None
        started = self._tick()
        records = len(travellers.tokens.record_ids)
        # what this ask spent and got, counted as it happens: an ask that ends part way (the
        # holder aborts, or sends a release that ends the session) is in QUERY_ENDED's totals
        counts = {"evaluations": 0, "records": records, "matched": 0, "received": 0}
        try:
            outputs = await _evaluate_all(conn, session, travellers, self._idle, agency, counts)
            evaluated = self._tick()
            decision, candidates = _decide(
                agency, session.session_id, travellers, self.table, outputs
            )
            counts["matched"] = len(decision.matches)
            # the holder counts each handle a release request names against its quota (§8)
            budget = self.quota_left - counts["evaluations"]
            answers, refused = await _collect_releases(
                conn, session, agency, travellers, decision, outputs, self._idle, budget, counts
            )
        finally:
            self.quota_left -= counts["evaluations"]
            for name, value in counts.items():
                self._totals[name] += value
        done = self._tick()
        received = counts["received"]
        return QueryOutcome(
            agency=agency.agency_id,
            holder=agency.peer_id,
            session_id=session.session_id.hex(),
            period=self.period,
            travellers=records,
            evaluations=counts["evaluations"],
            table_entries=self.table.entries,
            table_fetched=self.fetched,
            candidates=candidates,
            answers=answers,
            received=received,
            refused_by_us=refused,
            phases={
                "evaluate": round(evaluated - started, 6),
                "decide_and_release": round(done - evaluated, 6),
                "total": round(done - started, 6),
            },
        )

    async def close(self) -> None:
        """BYE, then close the connection (audited as completed)."""
        if self._ended:
            return
        self.session.close()
        with contextlib.suppress(ProtocolError, OSError):
            await _flush(self._conn, self.session)
        await self._end("completed", None)

    async def _end(self, outcome: str, exc: BaseException | None) -> None:
        if self._ended:
            return
        self._ended = True
        session = self.session
        tell = _abort_for(session, exc)
        ours = outcome == "aborted" and not isinstance(exc, ProtocolError)
        if ours and not session.done:  # our own failure (a full disk): the holder is told so
            session.abort(AbortCode.INTERNAL_ERROR, LOCAL_FAILURE)
            tell = True
        if session.state is SessionState.READY:  # e.g. refused locally: say BYE
            session.close()
        if tell or isinstance(exc, ProtocolError) or session.state is SessionState.CLOSED:
            with contextlib.suppress(BaseException):
                await asyncio.shield(_flush(self._conn, session))
        if tell:
            await linger(self._conn.receive, LINGER)
        with contextlib.suppress(BaseException):
            await asyncio.shield(self._conn.close(timeout=1.0))
        if session.session_id is None:
            audit_unopened(self.agency, exc)
            return
        fields: dict[str, object] = {
            "session": session.session_id,
            "outcome": outcome,
            "role": "INITIATOR",
            **self._totals,
        }
        if isinstance(exc, ProtocolError) or ours:
            fields["code"] = (
                exc.code.name if isinstance(exc, RemoteProtocolError) else "INTERNAL_ERROR"
            )
        agency = self.agency
        agency.audit.append(AuditEvent.QUERY_ENDED, fields, now=agency.clock())


def _outcome_of(exc: BaseException) -> str:
    if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, QuotaExhausted | InputError):
        return "refused"
    return "aborted"


async def ask(
    agency: Agency,
    conn: Connection,
    travellers: PreparedSide,
    *,
    idle_timeout: float = 60.0,
    progress: ProgressFn | None = None,
) -> QueryOutcome:
    """One whole query session over ``conn``: :class:`QueryClient` opened, one
    :meth:`~QueryClient.ask` about ``travellers``, closed."""
    async with QueryClient(agency, conn, idle_timeout=idle_timeout, progress=progress) as client:
        return await client.ask(travellers)


def _safe(agency_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in agency_id)


def _drop_other_periods(folder: Path, holder: str, kept: Path) -> None:
    """Delete the copies of ``holder``'s table of other periods than ``kept``'s: the asker
    keeps one copy per holder (spec §5.3), so that a holder naming a new period in every
    WELCOME costs it a download per session, as the MOU's bound allows, and no disk beyond
    one table."""
    own = re.compile(re.escape(_safe(holder)) + r"-[0-9]{4}-[0-9]{2}\.npz")
    for path in folder.iterdir():
        if path != kept and own.fullmatch(path.name):
            path.unlink(missing_ok=True)


_T = TypeVar("_T")


async def _fetch_table(
    conn: Connection,
    session: AskerSession,
    table: AskerTable,
    welcome: Welcomed,
    idle_timeout: float,
    progress: ProgressFn | None,
) -> int:
    """Fetch what changed in the holder's table since our copy and merge it (spec §5.3);
    an answer of more entries than WELCOME's whole table is ``BAD_TABLE`` at the chunk that
    passes it, so that a holder cannot fill our memory with chunks that never end."""
    session.request_table(table.version)
    await _flush(conn, session)
    tags, labels = [], []
    fetched = 0
    while True:
        events = session.receive(await _receive(conn, idle_timeout))
        for event in events:
            if isinstance(event, TableChunkReceived):
                try:
                    t, lab = AskerTable.parse_chunk(event.entries, table.label_size)
                except RemoteProtocolError as exc:
                    session.abort(exc.code, exc.detail)
                    raise
                fetched += len(t)
                if fetched > welcome.entries:  # a delta is never larger than the whole table
                    detail = f"more entries than the {welcome.entries} of WELCOME's table"
                    session.abort(AbortCode.BAD_TABLE, detail)
                    raise RemoteProtocolError(AbortCode.BAD_TABLE, detail)
                tags.append(t)
                labels.append(lab)
                if progress is not None:
                    progress("fetching the partner's query table", fetched, None)
            elif isinstance(event, TableComplete):
                import numpy as np

                all_tags = np.concatenate(tags) if tags else np.zeros(0, dtype=np.uint64)
                all_labels = (
                    np.concatenate(labels)
                    if labels
                    else np.zeros((0, table.label_size), dtype=np.uint8)
                )
                try:
                    table.merge(
                        all_tags,
                        all_labels,
                        version=event.version,
                        total=event.total,
                        digest=welcome.table_digest,
                    )
                except RemoteProtocolError:
                    if table.version == 0:  # the whole table is not what WELCOME announced
                        session.abort(AbortCode.BAD_TABLE, "the table is not the one announced")
                    raise  # a delta that does not fit our copy: the caller fetches it all
                return fetched


async def _evaluate_all(
    conn: Connection,
    session: AskerSession,
    travellers: PreparedSide,
    idle_timeout: float,
    agency: Agency,
    counts: dict[str, int],
) -> list[bytes]:
    """The OPRF output of every token of ``travellers`` (in token order)."""
    tokens = travellers.tokens
    values = [tokens.value(i) for i in range(len(tokens))]
    outputs: list[bytes] = []
    waiting: deque[oprf9497.BlindState] = deque()

    async def take_answer() -> None:
        state = waiting.popleft()
        answer = _only(session.receive(await _receive(conn, idle_timeout)), EvaluationAnswered)
        try:
            outputs.extend(oprf9497.finalize(state, answer.evaluated))
        except InvalidElement as exc:
            code = AbortCode.IDENTITY_ELEMENT if exc.identity else AbortCode.INVALID_ELEMENT
            session.abort(code, f"element {exc.index}")
            raise RemoteProtocolError(code, f"evaluated element {exc.index}") from None

    # Blinding the next chunk overlaps the holder's evaluation of the one before.
    chunk = min(MAX_EVALUATE, max(EVALUATE_CHUNK, -(-len(values) // 8)))
    for start in range(0, len(values), chunk):
        part = values[start : start + chunk]
        state, blinded = oprf9497.blind(part, agency.rng)
        session.evaluate(blinded)
        await _send_or_surface(conn, session)
        waiting.append(state)
        counts["evaluations"] += len(part)
        assert session.session_id is not None
        agency.audit.append(
            AuditEvent.QUERY_EVALUATED,
            {"session": session.session_id, "evaluations": len(part), "role": "INITIATOR"},
            now=agency.clock(),
        )
        if len(waiting) >= EVALUATE_WINDOW:
            await take_answer()
    while waiting:
        await take_answer()
    return outputs


async def _send_or_surface(conn: Connection, session: AskerSession) -> None:
    """Send what is due; if the holder has closed meanwhile (it aborted, e.g. the quota ran
    out part way), its ABORT is read and raised instead of a bare connection error."""
    try:
        await _flush(conn, session)
    except ConnectionLost as lost:
        try:
            async with asyncio.timeout(1.0):
                while (frame := await conn.receive()) is not None:
                    session.receive(frame)  # the holder's ABORT raises PeerAborted here
        except PeerAborted:
            raise
        except (ProtocolError, TimeoutError, OSError):
            pass
        raise lost from None
