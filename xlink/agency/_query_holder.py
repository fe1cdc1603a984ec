"""The holder's side of the real-time query mode (xlink-query-v1 §5, §7.2, §7.5;
docs/query.md): :class:`QueryService` keeps the agency's list as a table of OPRF entries under
its key of the month and answers each asker connection with a
:class:`~xlink.query.HolderSession`: the table (or what changed since the asker's copy),
blinded evaluations counted against the MOU's ``query_quota_per_day``, and, for the records
the asker decided and proves it matched, the batch path's releases."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, date
from typing import TYPE_CHECKING

from xlink.agency._query_check import HolderChecks
from xlink.agency._query_common import (
    _FATES,
    LINGER,
    _abort_for,
    _config,
    _flush,
    _quota,
    _receive,
    audit_unopened,
    period_of,
    period_over,
)
from xlink.agency._query_months import HolderMonths, _Move
from xlink.agency._quota import DayQuota
from xlink.audit import AuditEvent
from xlink.audit.history import query_evaluations_on
from xlink.crypto.oprf9497 import OprfKey
from xlink.decide import DecidedMatch, Decision
from xlink.error_codes import LOCAL_FAILURE, AbortCode
from xlink.errors import (
    InputError,
    InternalProtocolError,
    InvalidElement,
    ProtocolError,
    RemoteProtocolError,
)
from xlink.linkage._derive import TokenDeriver
from xlink.linkage.schema import schema_digest
from xlink.prepare import PreparedSide
from xlink.progress import ProgressFn
from xlink.protocol.limits import MAX_MESSAGE_SIZE
from xlink.query.session import (
    AskerLeft,
    EvaluationRequested,
    Fate,
    HolderSession,
    ReceiptsReceived,
    ReleaseAnswer,
    ReleaseRequested,
    TableRequested,
)
from xlink.query.table import TAG_SIZE, HolderTable, UpdateStats
from xlink.release import settle_receipts
from xlink.release.label import per_handle
from xlink.release.recipe import Fate as ReleaseFate
from xlink.release.recipe import ReleaseBatch, audit_denied
from xlink.transport import Connection
from xlink.transport.stream import linger

if TYPE_CHECKING:
    from xlink.agency._agency import Agency

__all__ = ["QueryServed", "QueryService"]


# -- the holder ----------------------------------------------------------------------------------


@dataclass
class QueryServed:
    """What one asker connection did on the holder's side (counts only)."""

    session_id: str | None = None
    evaluations: int = 0
    requested: int = 0
    released: int = 0
    outcome: str = "aborted"
    code: str | None = None


class QueryService(HolderChecks, HolderMonths):
    """The holder's side of the query mode for one agency and its list, for the current key
    period: the table (built, or loaded and brought up to date with the list), the key, the
    daily quota; :meth:`handle` answers one asker connection."""

    def __init__(
        self,
        agency: Agency,
        side: PreparedSide,
        *,
        progress: ProgressFn | None = None,
        lazy: bool = False,
    ) -> None:
        if schema_digest(side.schema) != agency.mou.schema_digest:
            raise InputError("these records were prepared with another linkage schema")
        self.agency = agency
        self.side = side = agency.releasable(side)
        self.quota = _quota(agency)
        self._records = {r.record_id: r for r in side.records}
        # the schema's weights, for every score the holder computes (§7.5)
        self._weights = (agency.schema.weights(), agency.schema.disagreement_weights())
        self._deriver = TokenDeriver(agency.schema)  # the households of the records decided
        self._progress = progress
        self._moving: _Move | None = None
        self.period = ""  # no month yet: the first session enters it (lazy)
        if not lazy:
            self._use(self._month_of(period_of(agency.clock()), side))
        self._quota = DayQuota(
            agency.workdir / "query",
            agency.peer_id,
            self.quota,
            lambda day: query_evaluations_on(agency.audit, agency.peer_id, day),
            today=agency.clock().astimezone(UTC).date(),
        )
        self._claims = agency.day_claims()

    def update(self, side: PreparedSide, *, progress: ProgressFn | None = None) -> UpdateStats:
        """Bring the table to a changed list (added, removed, changed records): only the
        changed records are evaluated again (measured in bench/query_bench.py). Records of a
        category the MOU does not list are left out, as when the service was made."""
        if schema_digest(side.schema) != self.agency.mou.schema_digest:
            raise InputError("these records were prepared with another linkage schema")
        side = self.agency.releasable(side)
        if not self.period:  # a lazy service no session has used yet: its month first
            self._use(self._month_of(period_of(self.agency.clock()), self.side))
        # refused before the table is touched: the list is served as it was, also to the
        # sessions open now, not as a table askers would refuse
        path = self.table_path
        stats = self.table.update(
            side.tokens,
            progress=progress,
            check_entries=lambda entries: self._check_bound(entries, path),
        )
        self.side = side
        self._records = {r.record_id: r for r in side.records}
        self.table.save(self.table_path, check=self._check)
        return stats

    def quota_left(self) -> int:
        """The evaluations left today (UTC) for the partner, as every query service of the
        agency has spent them (:class:`~xlink.agency._quota.DayQuota`)."""
        return self._quota.left(self._today())

    async def handle(
        self,
        conn: Connection,
        *,
        idle_timeout: float = 60.0,
        served: QueryServed | None = None,
    ) -> QueryServed:
        """Answer one asker over ``conn`` until it says BYE, then close. Raises the
        :class:`~xlink.errors.ProtocolError` that ended it (audited with its code). A session
        that starts in a new month first moves the key and the table to it. ``served``, when
        given, is the one filled in and returned (so that a caller has its counts when the
        session ends with an error too)."""
        agency = self.agency
        if period_of(agency.clock()) != self.period:
            try:
                await self._enter(period_of(agency.clock()))
            except Exception as exc:  # the new month's table: a full disk, a table too large
                with contextlib.suppress(BaseException):
                    await asyncio.shield(conn.close(timeout=1.0))
                local = InternalProtocolError(LOCAL_FAILURE)
                audit_unopened(agency, local)
                raise local from exc
        # The month this session declares is the one it answers in, with that month's key and
        # table, even once another session has moved the service to the next (spec §4.2); and
        # the version it declares is the one it serves, even if the table is updated while the
        # answer is still being sent.
        key, table = self._key, self.table
        view = table.view()
        try:
            quota_left = self.quota_left()
        except InternalProtocolError as exc:  # the quota store failed: nothing is answered
            with contextlib.suppress(BaseException):
                await asyncio.shield(conn.close(timeout=1.0))
            audit_unopened(agency, exc)
            raise
        session = HolderSession(
            _config(agency, asker=agency.peer_id, holder=agency.agency_id),
            period=self.period,
            table_version=view.version,
            entries=view.entries,
            table_digest=view.digest,
            quota_left=quota_left,
            rng=agency.rng,
        )
        served = QueryServed() if served is None else served
        failure: ProtocolError | None = None
        batch: _Outgoing | None = None
        answered: dict[int, ReleaseAnswer] = {}  # table index -> its fate in this session
        try:
            while not session.done:
                events = session.receive(await _receive(conn, idle_timeout))
                if served.session_id is None and session.session_id is not None:
                    served.session_id = session.session_id.hex()
                    self._audit(AuditEvent.QUERY_STARTED, session, mou=agency.mou.id)
                if any(isinstance(e, (EvaluationRequested, ReleaseRequested)) for e in events):
                    self._within_period(session)
                for event in events:
                    if isinstance(event, TableRequested):
                        width = TAG_SIZE + table.label_size
                        session.send_table(
                            view.delta(event.since, chunk=(MAX_MESSAGE_SIZE - 64) // width),
                            version=view.version,
                            total=view.entries,
                        )
                    elif isinstance(event, EvaluationRequested):
                        await self._evaluate(session, key, event, served)
                    elif isinstance(event, ReleaseRequested):
                        batch = self._releases(session, table, event, served, answered)
                    elif isinstance(event, ReceiptsReceived) and batch is not None:
                        settle_receipts(
                            batch.batch,
                            event.answers,
                            mou=agency.mou,
                            now=agency.clock(),
                            queue=agency.queue,
                            audit=agency.audit,
                        )
                        batch = None
                    elif isinstance(event, AskerLeft):
                        served.outcome = "completed"
                await _flush(conn, session)
        except ProtocolError as exc:
            failure = exc
            served.code = (
                exc.code.name if isinstance(exc, RemoteProtocolError) else "INTERNAL_ERROR"
            )
            tell = _abort_for(session, exc)
            with contextlib.suppress(BaseException):
                await asyncio.shield(_flush(conn, session))
            if tell:
                await linger(conn.receive, LINGER)
            raise
        finally:
            with contextlib.suppress(BaseException):
                await asyncio.shield(conn.close(timeout=1.0))
            if session.session_id is not None:
                fields: dict[str, object] = {
                    "outcome": served.outcome,
                    "evaluations": served.evaluations,
                    "released": served.released,
                }
                if served.code is not None:
                    fields["code"] = served.code
                self._audit(AuditEvent.QUERY_ENDED, session, **fields)
            else:
                audit_unopened(agency, failure)
        return served

    def _audit(self, kind: AuditEvent, session: HolderSession, **fields: object) -> None:
        agency = self.agency
        assert session.session_id is not None
        base: dict[str, object] = {"session": session.session_id, "role": "RESPONDER"}
        if kind is not AuditEvent.QUERY_ENDED:
            base["peer"] = agency.peer_id
        agency.audit.append(kind, {**base, **fields}, now=agency.clock())

    async def _evaluate(
        self,
        session: HolderSession,
        key: OprfKey,
        event: EvaluationRequested,
        served: QueryServed,
    ) -> None:
        count = event.count
        self._within_quota(session, count)
        # The evaluation runs on a worker thread (libsodium releases the GIL) while the audit
        # entry is written and synced here: both are done before the answer leaves. The
        # evaluations count against the quota once asked, valid or not.
        work = asyncio.get_running_loop().run_in_executor(None, key.blind_evaluate, event.blinded)
        try:
            self._spend(session, count, served)
        finally:
            with contextlib.suppress(InvalidElement):
                await asyncio.shield(work)  # never leave the thread running unobserved
        try:
            evaluated = work.result()
        except InvalidElement as exc:
            code = AbortCode.IDENTITY_ELEMENT if exc.identity else AbortCode.INVALID_ELEMENT
            session.abort(code, f"element {exc.index}")
            raise RemoteProtocolError(code, f"element {exc.index}: {exc.reason}") from None
        session.answer_evaluation(evaluated)

    def _within_period(self, session: HolderSession) -> None:
        """Refuse a request in a session whose month is over by more than
        :data:`~xlink.agency._query_common.PERIOD_GRACE` (spec §4.2, ``PERIOD_ENDED``): a
        session kept open could otherwise be answered on an old month's key and table without
        end, its lookups and one-to-one on a list that has changed since."""
        if not period_over(session.period, self.agency.clock()):
            return
        detail = f"the session's month {session.period} is over: start a new session"
        session.abort(AbortCode.PERIOD_ENDED, detail)
        raise RemoteProtocolError(AbortCode.PERIOD_ENDED, detail)

    def _within_quota(self, session: HolderSession, count: int) -> None:
        """Take ``count`` evaluations from the day's quota, shared with the agency's other
        query services; refuse (audited, ``QUOTA_EXHAUSTED``) when fewer are left."""
        try:
            if self._quota.take(self._today(), count):
                return
        except InternalProtocolError:
            session.abort(AbortCode.INTERNAL_ERROR, LOCAL_FAILURE)
            raise
        agency = self.agency
        fields = {"peer": agency.peer_id, "reason": "quota-exhausted", "evaluations": count}
        assert session.session_id is not None
        agency.audit.append(
            AuditEvent.QUERY_REFUSED,
            {**fields, "session": session.session_id, "role": "RESPONDER"},
            now=agency.clock(),
        )
        session.abort(AbortCode.QUOTA_EXHAUSTED, "the MOU's daily query quota is used up")
        raise RemoteProtocolError(AbortCode.QUOTA_EXHAUSTED, f"{count} evaluations asked")

    def _spend(self, session: HolderSession, count: int, served: QueryServed) -> None:
        """Audit ``count`` evaluations taken from the day's quota (:meth:`_within_quota`)."""
        served.evaluations += count
        self._audit(AuditEvent.QUERY_EVALUATED, session, evaluations=count)

    def _releases(
        self,
        session: HolderSession,
        table: HolderTable,
        event: ReleaseRequested,
        served: QueryServed,
        answered: dict[int, ReleaseAnswer],
    ) -> _Outgoing:
        """Decide and answer a RELEASE_REQUEST (spec §7.5). Its handles count against the
        quota, one evaluation each (checking a claim evaluates the record's tokens), so that
        requests cannot be repeated without bound; a record answered before in this session
        (``answered``, by table index) gets its earlier fate again, a release sent as
        ``DELIVERED``, and nothing is released, sealed or audited anew."""
        count = sum(len(hit.handles) for hit in event.hits)
        self._within_quota(session, count)
        self._spend(session, count, served)
        agency = self.agency
        assert session.session_id is not None
        session_id = session.session_id
        outputs: dict[bytes, bytes] = {}
        matches: list[DecidedMatch] = []
        positions: list[int] = []  # request position of each match
        repeated: dict[int, ReleaseAnswer] = {}
        refused: list[tuple[bytes, str]] = []  # (first handle, reason) of each not decided
        listed = self._listed_now(table, event.hits)
        try:
            # committed before the answers leave: a restart forgets no claim (item 5)
            with self._claims.request(self._today()) as claims:
                for position, hit in enumerate(event.hits):
                    if hit.record in answered:
                        repeated[position] = answered[hit.record]
                        continue
                    match = self._decide_hit(session, table, listed, claims, position, hit, outputs)
                    if isinstance(match, str):  # a record not listed: its handles unchecked
                        unchecked = match == "not-listed"
                        refused.append((bytes(16) if unchecked else hit.handles[0], match))
                    else:
                        matches.append(match)
                        positions.append(position)
        except InternalProtocolError:
            session.abort(AbortCode.INTERNAL_ERROR, LOCAL_FAILURE)
            raise
        for handle, reason in refused:  # as the batch path audits what it does not release
            audit_denied(agency.audit, session_id, handle, reason, agency.clock())
        served.requested += len(event.hits)
        decision = Decision(session_id, agency.mou.match_threshold, len(event.hits), tuple(matches))
        batch = agency.release(decision, [self._records[m.local_record_id] for m in matches])
        answers = [ReleaseAnswer(Fate.NOT_DECIDED)] * len(event.hits)
        sealed = iter(batch.sealed)
        for position, fate in zip(positions, batch.fates, strict=True):
            release_id = fate.release_id or bytes(16)
            record = event.hits[position].record
            if fate.fate is ReleaseFate.SENT:
                release = next(sealed)
                frame = agency.hand_over(release, session_id, per_handle(outputs.__getitem__))
                served.released += 1
                answers[position] = ReleaseAnswer(Fate.SENT, release_id, frame)
                answered[record] = ReleaseAnswer(Fate.DELIVERED, release_id)
            else:
                answers[position] = ReleaseAnswer(_FATES[fate.fate], release_id)
                # queued by this request: a repeat finds it awaiting approval
                again = Fate.PENDING if fate.fate is ReleaseFate.QUEUED else _FATES[fate.fate]
                answered[record] = ReleaseAnswer(again, release_id)
        for position, answer in repeated.items():
            answers[position] = answer
        session.send_releases(answers)
        return _Outgoing(batch)

    def _today(self) -> date:
        return self.agency.clock().astimezone(UTC).date()


@dataclass
class _Outgoing:
    batch: ReleaseBatch
