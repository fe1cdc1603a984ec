"""``xlink hub serve``: the relay and scheduler agencies connect to outbound (docs/hub.md).

The hub authenticates each connection (an agency's hello signed with the key the multilateral
MOU names for it; the hub's welcome signed with the hub key the MOU names), keeps each
agency's standing *control* connection, starts scheduled jobs when both agencies are
connected, and splices the two *session* connections of a job together. From then on it only
copies bytes: the two agencies run their own mutual TLS, pinned by the MOU, through it. So
the hub sees who talks to whom, when, and how many bytes — never a record, a token or a key.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from xlink.audit._encoding import to_micros
from xlink.crypto.keys import SigningKey
from xlink.crypto.rand import RandomSource
from xlink.error_codes import HubReason
from xlink.errors import HubError, XlinkError
from xlink.hub.schedule import JobRow, JobState, Schedule
from xlink.hub.wire import (
    MAX_HUB_FRAME,
    NONCE_SIZE,
    Challenge,
    CheckpointOffer,
    Cosigned,
    Hello,
    HubMessage,
    Job,
    JobKind,
    Purpose,
    Refused,
    Report,
    Spliced,
    Welcome,
    cosign_message,
    decode,
    encode,
    hello_message,
    verify,
    welcome_message,
)
from xlink.policy.multilateral import MultilateralMou
from xlink.protocol.config import Role
from xlink.protocol.framing import FRAME_HEADER_SIZE, encode_frame

__all__ = ["DEFAULT_JOB_TIMEOUT", "MAX_HELLO_SKEW", "Capture", "Hub"]

log = logging.getLogger("xlink.hub")

MAX_HELLO_SKEW: Final = timedelta(minutes=5)
"""How far a hello's time may be from the hub's clock."""
DEFAULT_JOB_TIMEOUT: Final = 600.0
"""Seconds a job may run (or wait for its second agency) before it is failed and retried."""
HELLO_TIMEOUT: Final = 10.0
QUERY_WAIT: Final = 15.0
"""Seconds a fan-out query waits for the partner's agent to come on the relay."""
COPY_SIZE: Final = 1 << 16

Capture = Callable[[str, bytes], None]
"""``capture(where, data)``: every byte the hub receives, for tests that scan what it saw."""


@dataclass(slots=True)
class _Control:
    writer: asyncio.StreamWriter
    task: asyncio.Task[None] | None = None


@dataclass(slots=True)
class _Waiting:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    spliced: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True, slots=True)
class _QueryJob:
    asker: str
    holder: str


class Hub:
    """One hub, serving one multilateral MOU from ``workdir`` (``schedule.db``)."""

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
        self.mou = mou
        self.hub_id = mou.hub.hub_id
        self.key = key
        self.clock = clock
        self.rng = rng
        self.job_timeout = job_timeout
        self.every = every
        self.capture = capture
        workdir.mkdir(parents=True, exist_ok=True)
        self.schedule = Schedule.open(workdir / "schedule.db", now=clock())
        self.controls: dict[str, _Control] = {}
        self.busy: set[str] = set()
        self.waiting: dict[tuple[bytes, str], _Waiting] = {}
        self.queries: dict[bytes, _QueryJob] = {}
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    def close(self) -> None:
        self.schedule.close()

    # -- the server --------------------------------------------------------------------------

    async def serve(
        self, host: str, port: int, *, on_listening: Callable[[int], object] | None = None
    ) -> None:
        """Accept agencies on ``host:port`` and run the schedule, until cancelled."""
        server = await asyncio.start_server(self._accept, host, port, limit=MAX_HUB_FRAME)
        try:
            if on_listening is not None:
                on_listening(server.sockets[0].getsockname()[1])
            await self._dispatch_forever()
        finally:
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def add_round(self) -> int:
        """Schedule one exchange for every pair with terms, due now."""
        number = self.schedule.add_round(self.mou.pairs(), now=self.clock(), rng=self.rng)
        self._wake.set()
        return number

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _dispatch_forever(self) -> None:
        while True:
            self._dispatch()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.5):
                    await self._wake.wait()

    def _dispatch(self) -> None:
        now = self.clock()
        if self.every is not None:
            last = self.schedule.last_round()
            if last is None or last[1] + self.every <= now:
                self.schedule.add_round(self.mou.pairs(), now=now, rng=self.rng)
        for job in self.schedule.started_before(now - timedelta(seconds=self.job_timeout)):
            self._fail(job, HubReason.TIMEOUT.value)
        for row in self.schedule.runnable(set(self.controls), self.busy, now=now):
            self._start(row)

    def _start(self, row: JobRow) -> None:
        self.schedule.start(row.job, now=self.clock())
        self.busy.update(row.agencies)
        log.info("job %s: %s with %s", row.job.hex()[:8], row.initiator, row.responder)
        self._send_control(
            row.initiator, Job(row.job, JobKind.EXCHANGE, row.responder, Role.INITIATOR)
        )
        self._send_control(
            row.responder, Job(row.job, JobKind.EXCHANGE, row.initiator, Role.RESPONDER)
        )

    def _fail(self, job: bytes, reason: str) -> None:
        row = self.schedule.get(job)
        if row is None or row.state != JobState.RUNNING:
            return
        state = self.schedule.fail(job, reason, now=self.clock())
        log.info("job %s: %s (%s)", job.hex()[:8], reason, state)
        self._finished(row)

    def _finished(self, row: JobRow) -> None:
        self.busy.difference_update(row.agencies)
        for agency in row.agencies:
            waiting = self.waiting.pop((row.job, agency), None)
            if waiting is not None:
                waiting.writer.transport.abort()
        self._wake.set()

    def _send_control(self, agency: str, message: HubMessage) -> None:
        control = self.controls.get(agency)
        if control is not None:
            control.writer.write(encode_frame(encode(message)))

    # -- one connection ----------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            hello = await self._authenticate(reader, writer)
        except (HubError, OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            if isinstance(exc, HubError):
                log.info("refused a connection: %s", exc.reason.value)
                with contextlib.suppress(Exception):
                    writer.write(encode_frame(encode(Refused(exc.reason, exc.detail))))
                    await writer.drain()
            writer.close()
            return
        try:
            if hello.purpose is Purpose.CONTROL:
                await self._control(hello.agency, reader, writer)
            elif hello.purpose is Purpose.SESSION:
                await self._session(hello, reader, writer)
            else:
                await self._query(hello, reader, writer)
        except (HubError, OSError, asyncio.IncompleteReadError, ConnectionError) as exc:
            log.info("%s connection of %s ended: %s", hello.purpose.value, hello.agency, exc)
        finally:
            writer.transport.abort()

    async def _read(self, reader: asyncio.StreamReader, where: str) -> HubMessage:
        header = await reader.readexactly(FRAME_HEADER_SIZE)
        size = int.from_bytes(header, "big")
        if size > MAX_HUB_FRAME:
            raise HubError(HubReason.MALFORMED, "frame exceeds the limit")
        payload = await reader.readexactly(size)
        if self.capture is not None:
            self.capture(where, header + payload)
        return decode(payload)

    async def _authenticate(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
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
            raise HubError(HubReason.NOT_A_PARTY, hello.agency) from None
        if not verify(party.verify_key, hello.signature, hello_message(self.hub_id, nonce, hello)):
            raise HubError(HubReason.BAD_SIGNATURE, hello.agency)
        if abs(hello.time_us - to_micros(self.clock())) > MAX_HELLO_SKEW.total_seconds() * 1e6:
            raise HubError(HubReason.STALE, "the hello's time is too far from the hub's clock")
        self._admit(hello)
        writer.write(
            encode_frame(encode(Welcome(self.key.sign(welcome_message(self.hub_id, nonce, hello)))))
        )
        await writer.drain()
        return hello

    def _admit(self, hello: Hello) -> None:
        """Refuse what this hello asks for before welcoming it."""
        if hello.purpose is Purpose.SESSION:
            row = self.schedule.get(hello.job)
            query = self.queries.get(hello.job)
            if query is not None:
                if hello.agency != query.holder:
                    raise HubError(HubReason.UNKNOWN_JOB, "not this agency's query")
            elif row is None or row.state != JobState.RUNNING or hello.agency not in row.agencies:
                raise HubError(HubReason.UNKNOWN_JOB, "no such running job for this agency")
            if (hello.job, hello.agency) in self.waiting:
                raise HubError(HubReason.DUPLICATE, "this side of the job is already here")
        elif hello.purpose is Purpose.QUERY:
            terms = self.mou.terms_for(hello.agency, hello.peer) if hello.peer else None
            if terms is None or terms.query_quota_per_day <= 0:
                raise HubError(HubReason.NO_TERMS, f"{hello.agency} and {hello.peer or '-'}")
            if hello.peer not in self.controls:
                raise HubError(HubReason.PEER_OFFLINE, hello.peer)

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
                    writer.write(encode_frame(encode(self._cosign(agency, message))))
                else:
                    raise HubError(HubReason.MALFORMED, "not a control message")
        finally:
            if self.controls.get(agency) is not None and self.controls[agency].writer is writer:
                del self.controls[agency]
                log.info("%s disconnected", agency)
                for row in self.schedule.jobs(state=JobState.RUNNING):
                    if agency in row.agencies:
                        self._fail(row.job, HubReason.PEER_FAILED.value)

    def _report(self, agency: str, report: Report) -> None:
        if report.job in self.queries:
            return
        row = self.schedule.get(report.job)
        if row is None or row.state != JobState.RUNNING:
            return
        state = self.schedule.report(
            report.job, agency, ok=report.ok, reason=report.reason, now=self.clock()
        )
        log.info(
            "job %s: %s reported %s -> %s",
            report.job.hex()[:8],
            agency,
            "ok" if report.ok else report.reason,
            state,
        )
        if state != JobState.RUNNING:
            self._finished(row)

    def _cosign(self, agency: str, offer: CheckpointOffer) -> HubMessage:
        try:
            offer.published.verify()
        except XlinkError:
            return Refused(HubReason.BAD_SIGNATURE, "the checkpoint does not verify")
        if offer.log == agency or offer.log not in self.mou.agency_ids:
            return Refused(HubReason.NOT_A_PARTY, offer.log)
        signature = self.key.sign(cosign_message(self.hub_id, agency, offer))
        self.schedule.keep_checkpoint(
            agency,
            offer.log,
            offer.published.checkpoint.seq,
            json.dumps(offer.published.to_json(), sort_keys=True),
            signature,
            self.clock(),
        )
        return Cosigned(offer.log, offer.published.checkpoint.seq, signature)

    async def _session(
        self, hello: Hello, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        me = _Waiting(reader, writer)
        self.waiting[(hello.job, hello.agency)] = me
        query = self.queries.get(hello.job)
        if query is not None:
            other = query.holder if hello.agency == query.asker else query.asker
        else:
            row = self.schedule.get(hello.job)
            assert row is not None
            other = row.responder if hello.agency == row.initiator else row.initiator
        partner = self.waiting.get((hello.job, other))
        try:
            if partner is None:
                timeout = QUERY_WAIT if query is not None else self.job_timeout
                try:
                    async with asyncio.timeout(timeout):
                        await me.spliced.wait()
                except TimeoutError:
                    writer.write(encode_frame(encode(Refused(HubReason.TIMEOUT, "no partner"))))
                    await writer.drain()
                    return
                await me.finished.wait()  # the partner's handler copies for both
                return
            partner.spliced.set()
            try:
                await self._splice(hello.job, (hello.agency, me), (other, partner))
            finally:
                partner.finished.set()
        finally:
            self.waiting.pop((hello.job, hello.agency), None)
            if query is not None:
                self.queries.pop(hello.job, None)

    async def _query(
        self, hello: Hello, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        job = self.rng(16)
        self.queries[job] = _QueryJob(hello.agency, hello.peer)
        self._send_control(hello.peer, Job(job, JobKind.QUERY, hello.agency, Role.RESPONDER))
        # The asker waits as the query job's other side; the holder's session connection
        # splices to it.
        await self._session(
            Hello(
                hello.agency, Purpose.SESSION, job, "", hello.time_us, hello.nonce, hello.signature
            ),
            reader,
            writer,
        )

    async def _splice(
        self,
        job: bytes,
        first: tuple[str, _Waiting],
        second: tuple[str, _Waiting],
    ) -> None:
        (a, wa), (b, wb) = first, second
        for w in (wa, wb):
            w.writer.write(encode_frame(encode(Spliced())))
        log.info("job %s: spliced %s and %s", job.hex()[:8], a, b)
        await asyncio.gather(
            self._copy(wa.reader, wb.writer, f"relay:{a}>{b}"),
            self._copy(wb.reader, wa.writer, f"relay:{b}>{a}"),
            return_exceptions=True,
        )
        for w in (wa, wb):
            w.writer.transport.abort()

    async def _copy(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, where: str
    ) -> None:
        try:
            while data := await reader.read(COPY_SIZE):
                if self.capture is not None:
                    self.capture(where, data)
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (OSError, ConnectionError):
            writer.transport.abort()
