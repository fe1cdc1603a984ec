"""``xlink hub serve``: the relay and scheduler agencies connect to outbound (docs/hub.md).

The hub authenticates each connection (an agency's hello signed with the key the multilateral
MOU names for it; the hub's welcome signed with the hub key the MOU names), keeps each
agency's standing *control* connection, starts scheduled jobs when both agencies are
connected, and splices the two *session* connections of a job together. From then on it only
copies bytes: the two agencies run their own mutual TLS, pinned by the MOU, through it. So
the hub sees who talks to whom, when, and how many bytes — never a record, a token or a key.

Everything an agency can make the hub hold is bounded: handshakes in progress
(:data:`MAX_HANDSHAKES`, each within :data:`HELLO_TIMEOUT`), one control connection per
agency, session connections only for a running job's own agencies, queries in flight per pair
(:data:`MAX_QUERIES_PER_PAIR`), a splice's idle time and a query's whole duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from xlink._workdir import workdir_lock
from xlink.audit._encoding import to_micros
from xlink.crypto.keys import SigningKey
from xlink.crypto.rand import RandomSource
from xlink.crypto.tls_certs import make_tls_identity
from xlink.error_codes import HubReason
from xlink.errors import ConnectionLost, HubError, InputError, XlinkError
from xlink.hub.checkpoints import cosign_offer
from xlink.hub.relay import Waiting, splice
from xlink.hub.schedule import (
    MAX_CHECKPOINTS_PER_DAY,
    MIN_EVERY,
    JobRow,
    JobState,
    Schedule,
)
from xlink.hub.wire import (
    NONCE_SIZE,
    PREAMBLE_CONTROL,
    PREAMBLE_PLAIN,
    PREAMBLE_SIZE,
    TLS_READY,
    Challenge,
    CheckpointOffer,
    Hello,
    HubMessage,
    Job,
    JobKind,
    Purpose,
    Refused,
    Report,
    Welcome,
    encode,
    hello_message,
    keepalive,
    read_frame,
    verify,
    welcome_message,
)
from xlink.policy.multilateral import MultilateralMou, multilateral_digest
from xlink.protocol.config import Role
from xlink.protocol.framing import encode_frame
from xlink.transport.tls import bound_server_context

__all__ = ["DEFAULT_JOB_TIMEOUT", "MAX_HELLO_SKEW", "Capture", "Hub"]

log = logging.getLogger("xlink.hub")

MAX_HELLO_SKEW: Final = timedelta(minutes=5)
"""How far a hello's time may be from the hub's clock."""
DEFAULT_JOB_TIMEOUT: Final = 600.0
"""Seconds a job may run (or wait for its second agency) before it is failed and retried."""
HELLO_TIMEOUT: Final = 5.0
"""Seconds a new connection has to send its hello."""
MAX_HANDSHAKES: Final = 64
"""Connections that have not yet been welcomed, at most; more are closed at once."""
QUERY_WAIT: Final = 15.0
"""Seconds a fan-out query waits for the partner's agent to come on the relay."""
QUERY_DEADLINE: Final = 600.0
"""Seconds a relayed query session may last in all."""
MAX_QUERIES_PER_PAIR: Final = 2
"""Real-time queries of one asker to one holder relayed at once; more are refused (busy)."""
STOP_GRACE = 10.0
"""Seconds a stopping hub waits for its connections to end, each recording what it must in the
schedule; one still running then (a connection that ignored its cancellation) is left behind,
logged, rather than keeping ``serve`` from returning. It is the embedder's to deal with: an
``asyncio.run`` still waits for it when the loop ends, and it must not use the schedule once
the hub is closed."""

Capture = Callable[[str, bytes], None]
"""``capture(where, data)``: every byte the hub receives, for tests that scan what it saw."""


@dataclass(slots=True)
class _Control:
    writer: asyncio.StreamWriter


@dataclass(frozen=True, slots=True)
class _QueryJob:
    asker: str
    holder: str


class Hub:
    """One hub, serving one multilateral MOU from ``workdir`` (``schedule.db``; one hub per
    workdir at a time)."""

    def __init__(
        self,
        mou: MultilateralMou,
        key: SigningKey,
        workdir: Path,
        *,
        clock: Callable[[], datetime],
        rng: RandomSource,
        job_timeout: float = DEFAULT_JOB_TIMEOUT,
        every: timedelta | None = None,
        capture: Capture | None = None,
    ) -> None:
        if key.verify_key != mou.hub.verify_key:
            raise XlinkError("this hub key is not the one the multilateral MOU names")
        if every is not None and every < MIN_EVERY:
            raise InputError(
                f"a round every {every} is too often: at least every {MIN_EVERY} (the hub "
                f"cosigns at most {MAX_CHECKPOINTS_PER_DAY} checkpoints of a log a day)"
            )
        self.mou = mou
        self.hub_id = mou.hub.hub_id
        self.key = key
        self.clock = clock
        self.rng = rng
        self.job_timeout = job_timeout
        self.every = every
        self.capture = capture
        workdir.mkdir(parents=True, exist_ok=True)
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(workdir_lock(workdir))
        try:
            self.schedule = self._stack.enter_context(
                Schedule.open(workdir / "schedule.db", now=clock(), recover=True)
            )
            self.schedule.bind_mou(multilateral_digest(mou))
        except BaseException:
            self._stack.close()
            raise
        self.controls: dict[str, _Control] = {}
        self.waiting: dict[tuple[bytes, str], Waiting] = {}
        self.queries: dict[bytes, _QueryJob] = {}
        self._in_flight: dict[tuple[str, str], int] = {}
        self._handshakes = 0
        self._connections: set[asyncio.Task[None]] = set()  # one per connection, as it runs
        self._closing = False  # serve is ending its connections
        self._expired = False
        # The control port's TLS identity: made afresh at each start (no file to keep), and
        # authenticated to agencies by the welcome, which signs its SHA-256 (§4).
        now = clock()
        identity = make_tls_identity(
            self.hub_id,
            not_before=now - timedelta(days=1),
            not_after=now + timedelta(days=3650),
            key_seed=rng(32),
        )
        self._tls = bound_server_context(identity)
        self._binding = identity.fingerprint
        self._wake = asyncio.Event()

    def close(self) -> None:
        self._stack.close()

    # -- the server --------------------------------------------------------------------------

    async def serve(
        self, host: str, port: int, *, on_listening: Callable[[int], object] | None = None
    ) -> None:
        """Accept agencies on ``host:port`` and run the schedule, until cancelled; then end every
        connection (each recording what it must in the schedule) before returning, waiting at
        most :data:`STOP_GRACE` seconds for them."""
        self._closing = False
        server = await asyncio.start_server(self._accept, host, port)
        try:
            if on_listening is not None:
                on_listening(server.sockets[0].getsockname()[1])
            await self._dispatch_forever()
        finally:
            server.close()
            for waiting in list(self.waiting.values()):
                waiting.abort()
            for control in list(self.controls.values()):
                control.writer.transport.abort()
            # each connection's own clean-up (an agency's departure recorded) runs now, while
            # the schedule is open: a caller closes the hub once this returns, so a second
            # cancel does not cut this short, and a connection accepted but not yet started
            # finds the hub closing (_accept)
            self._closing = True
            cancelled = False
            loop = asyncio.get_running_loop()
            deadline = loop.time() + STOP_GRACE
            while self._connections:
                left = deadline - loop.time()
                if left <= 0:
                    log.warning(
                        "%d connection(s) still running %g s after the hub stopped: left behind",
                        len(self._connections),
                        STOP_GRACE,
                    )
                    break
                connections = list(self._connections)
                for task in connections:
                    task.cancel()
                try:
                    await asyncio.wait(connections, timeout=left)
                except asyncio.CancelledError:
                    cancelled = True
            if cancelled:
                raise asyncio.CancelledError

    def add_round(self) -> int:
        """Schedule one exchange for every pair with terms, due now."""
        number = self.schedule.add_round(self.mou.pairs(), now=self.clock(), rng=self.rng)
        self._wake.set()
        return number

    async def _dispatch_forever(self) -> None:
        while True:
            try:
                self._dispatch()
            except Exception as exc:  # a locked or full database: log it, try again
                log.warning("dispatch failed (%s); retrying", type(exc).__name__)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.5):
                    await self._wake.wait()

    def _dispatch(self) -> None:
        now = self.clock()
        if not self.mou.is_valid_on(now.date()):
            if not self._expired:
                log.warning("the multilateral MOU is not valid today: no job starts")
            self._expired = True
            return
        self._expired = False
        if self.every is not None:
            last = self.schedule.last_round()
            if last is None or last[1] + self.every <= now:
                self.schedule.add_round(self.mou.pairs(), now=now, rng=self.rng)
        for job in self.schedule.started_before(now - timedelta(seconds=self.job_timeout)):
            self._fail(job, HubReason.TIMEOUT.value)
        running = self.schedule.jobs(state=JobState.RUNNING)
        busy = {agency for row in running for agency in row.agencies}
        for row in self.schedule.runnable(set(self.controls), busy, now=now):
            self._start(row)

    def _start(self, row: JobRow) -> None:
        attempt = self.schedule.start(row.job, now=self.clock(), rng=self.rng)
        log.info("job %s: %s with %s", attempt.hex()[:8], row.initiator, row.responder)
        kind = JobKind.EXCHANGE
        self._send_control(row.initiator, Job(attempt, kind, row.responder, Role.INITIATOR))
        self._send_control(row.responder, Job(attempt, kind, row.initiator, Role.RESPONDER))

    def _fail(self, job: bytes, reason: str) -> None:
        row = self.schedule.get(job)
        if row is None or row.state != JobState.RUNNING:
            return
        state = self.schedule.fail(job, reason, now=self.clock())
        log.info("job %s: %s (%s)", (row.attempt or job).hex()[:8], reason, state)
        self._finished(row)

    def _finished(self, row: JobRow) -> None:
        """The attempt ended: close whatever of it is still at the hub."""
        if row.attempt is not None:
            for agency in row.agencies:
                waiting = self.waiting.pop((row.attempt, agency), None)
                if waiting is not None:
                    waiting.abort()
        self._wake.set()

    def _send_control(self, agency: str, message: HubMessage) -> None:
        control = self.controls.get(agency)
        if control is not None:
            control.writer.write(encode_frame(encode(message)))

    # -- one connection ----------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            if not self._closing:
                await self._connection(reader, writer)
        finally:
            self._connections.discard(task)
            writer.transport.abort()  # also when cancelled mid-handshake (safe twice)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._handshakes >= MAX_HANDSHAKES:
            writer.transport.abort()
            return
        keepalive(writer.get_extra_info("socket"))
        self._handshakes += 1
        try:
            binding = await self._open_channel(reader, writer)
            hello = await self._authenticate(reader, writer, binding)
        except (
            HubError,
            ConnectionLost,
            OSError,
            TimeoutError,
            asyncio.IncompleteReadError,
            ssl.SSLError,
        ) as exc:
            if isinstance(exc, HubError):
                with contextlib.suppress(Exception):
                    writer.write(encode_frame(encode(Refused(exc.reason, ""))))
                    await writer.drain()
            writer.transport.abort()
            return
        finally:
            self._handshakes -= 1
        try:
            if hello.purpose is Purpose.CONTROL:
                await self._control(hello.agency, reader, writer)
            elif hello.purpose is Purpose.SESSION:
                await self._session(hello, reader, writer)
            else:
                await self._query(hello, reader, writer)
        except (
            HubError,
            ConnectionLost,
            OSError,
            asyncio.IncompleteReadError,
            ConnectionError,
        ) as exc:
            log.info("%s connection of %s ended: %s", hello.purpose.value, hello.agency,
                     type(exc).__name__)  # fmt: skip
        finally:
            writer.transport.abort()

    async def _read(self, reader: asyncio.StreamReader, where: str) -> HubMessage:
        capture = self.capture
        if capture is None:
            return await read_frame(reader)
        return await read_frame(reader, lambda data: capture(where, data))

    async def _open_channel(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bytes:
        """Read the agency's preamble (§3): a control connection turns to TLS (returns the
        binding, our certificate's SHA-256), a session or query connection stays as it is
        (returns ``b""``). Raises ``TimeoutError`` or :class:`HubError` (``malformed``)."""
        async with asyncio.timeout(HELLO_TIMEOUT):
            preamble = await reader.readexactly(PREAMBLE_SIZE)
            if preamble == PREAMBLE_PLAIN:
                return b""
            if preamble != PREAMBLE_CONTROL:
                raise HubError(HubReason.MALFORMED, "not an xlink-hub-v1 preamble")
            writer.write(TLS_READY)
            await writer.drain()
            await writer.start_tls(self._tls)
        return self._binding

    async def _authenticate(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, binding: bytes
    ) -> Hello:
        nonce = self.rng(NONCE_SIZE)
        writer.write(encode_frame(encode(Challenge(self.hub_id, nonce))))
        async with asyncio.timeout(HELLO_TIMEOUT):
            hello = await self._read(reader, "hello")
        if not isinstance(hello, Hello):
            raise HubError(HubReason.MALFORMED, "expected a hello")
        try:
            party = self.mou.party(hello.agency)
        except KeyError:
            # Refused as a bad signature: the hub does not tell a stranger who the parties are.
            log.info("refused a hello: not a party")
            raise HubError(HubReason.BAD_SIGNATURE) from None
        signed = hello_message(self.hub_id, nonce, hello, binding)
        if not verify(party.verify_key, hello.signature, signed):
            # A wrong key, or a hello signed over another TLS certificate than ours: someone
            # in the middle of the control connection.
            log.info("refused a hello of %s: bad signature", hello.agency)
            raise HubError(HubReason.BAD_SIGNATURE)
        if (hello.purpose is Purpose.CONTROL) != bool(binding):
            raise HubError(HubReason.MALFORMED, "control connections only, over TLS")
        if abs(hello.time_us - to_micros(self.clock())) > MAX_HELLO_SKEW.total_seconds() * 1e6:
            raise HubError(HubReason.STALE)
        self._admit(hello)
        welcome = self.key.sign(welcome_message(self.hub_id, nonce, hello, binding))
        writer.write(encode_frame(encode(Welcome(welcome))))
        await writer.drain()
        return hello

    def _admit(self, hello: Hello) -> None:
        """Refuse what this (authenticated) hello asks for before welcoming it."""
        if hello.purpose is Purpose.SESSION:
            query = self.queries.get(hello.job)
            if query is not None:
                if hello.agency != query.holder:
                    raise HubError(HubReason.UNKNOWN_JOB)
            else:
                row = self.schedule.by_attempt(hello.job)
                if (
                    row is None
                    or row.state != JobState.RUNNING
                    or (hello.agency not in row.agencies)
                ):
                    raise HubError(HubReason.UNKNOWN_JOB)
            if (hello.job, hello.agency) in self.waiting:
                raise HubError(HubReason.DUPLICATE)
        elif hello.purpose is Purpose.QUERY:
            terms = self.mou.terms_for(hello.agency, hello.peer) if hello.peer else None
            if terms is None or terms.query_quota_per_day <= 0:
                raise HubError(HubReason.NO_TERMS)
            if hello.peer not in self.controls:
                raise HubError(HubReason.PEER_OFFLINE)
            if self._in_flight.get((hello.agency, hello.peer), 0) >= MAX_QUERIES_PER_PAIR:
                raise HubError(HubReason.BUSY)

    async def _control(
        self, agency: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        old = self.controls.get(agency)
        if old is not None:  # a reconnect: the new connection replaces the old one
            old.writer.transport.abort()
        self.controls[agency] = _Control(writer)
        log.info("%s connected", agency)
        self._wake.set()
        try:
            while True:
                message = await self._read(reader, f"control:{agency}")
                if isinstance(message, Report):
                    self._report(agency, message)
                elif isinstance(message, CheckpointOffer):
                    answer = cosign_offer(
                        self.schedule, self.mou, self.key, agency, message, now=self.clock()
                    )
                    writer.write(encode_frame(encode(answer)))
                    await writer.drain()  # an agency that does not read slows only itself
                else:
                    raise HubError(HubReason.MALFORMED, "not a control message")
        finally:
            current = self.controls.get(agency)
            if current is not None and current.writer is writer:
                del self.controls[agency]
                log.info("%s disconnected", agency)
                for row in self.schedule.jobs(state=JobState.RUNNING):
                    if agency in row.agencies:
                        self._fail(row.job, HubReason.PEER_FAILED.value)

    def _report(self, agency: str, report: Report) -> None:
        row = self.schedule.by_attempt(report.job)
        if row is None or row.state != JobState.RUNNING:
            return  # a query job, or an earlier attempt: nothing to record
        state = self.schedule.report(
            row.job, agency, ok=report.ok, reason=report.reason, now=self.clock()
        )
        log.info("job %s: %s reported %s -> %s", report.job.hex()[:8], agency,
                 "ok" if report.ok else report.reason, state)  # fmt: skip
        if state != JobState.RUNNING:
            self._finished(row)

    async def _session(
        self, hello: Hello, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        key = (hello.job, hello.agency)
        me = Waiting(reader, writer)
        self.waiting[key] = me
        query = self.queries.get(hello.job)
        if query is not None:
            other = query.holder if hello.agency == query.asker else query.asker
        else:
            row = self.schedule.by_attempt(hello.job)
            if row is None:
                raise HubError(HubReason.UNKNOWN_JOB)
            other = row.responder if hello.agency == row.initiator else row.initiator
        partner = self.waiting.get((hello.job, other))
        try:
            if partner is None:
                timeout = QUERY_WAIT if query is not None else self.job_timeout
                try:
                    async with asyncio.timeout(timeout):
                        await me.spliced.wait()
                except TimeoutError:
                    writer.write(encode_frame(encode(Refused(HubReason.TIMEOUT, ""))))
                    await writer.drain()
                    return
                if not me.aborted:
                    await me.finished.wait()  # the partner's handler copies for both
                return
            partner.spliced.set()
            try:
                deadline = QUERY_DEADLINE if query is not None else None
                await splice(
                    hello.job,
                    (hello.agency, me),
                    (other, partner),
                    deadline=deadline,
                    capture=self.capture,
                )
            finally:
                partner.finished.set()
        finally:
            if self.waiting.get(key) is me:
                del self.waiting[key]

    async def _query(
        self, hello: Hello, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        job = self.rng(16)
        pair = (hello.agency, hello.peer)
        self.queries[job] = _QueryJob(hello.agency, hello.peer)
        self._in_flight[pair] = self._in_flight.get(pair, 0) + 1
        try:
            self._send_control(hello.peer, Job(job, JobKind.QUERY, hello.agency, Role.RESPONDER))
            # The asker waits as the query job's other side; the holder's session connection
            # splices to it.
            side = Hello(
                hello.agency, Purpose.SESSION, job, "", hello.time_us, hello.nonce, hello.signature
            )
            await self._session(side, reader, writer)
        finally:
            self.queries.pop(job, None)
            self._in_flight[pair] -= 1
            if not self._in_flight[pair]:
                del self._in_flight[pair]
