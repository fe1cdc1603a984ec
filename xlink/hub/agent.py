"""``xlink hub agent``: an agency's standing connection to the hub (docs/hub.md).

The agent connects out to the hub (no inbound firewall hole), keeps the connection up
(reconnecting with a backoff), and does what the hub's jobs say: an exchange with a partner
through the single exchange path (:meth:`xlink.agency.Agency.exchange`, one workdir per partner
under the agent's workdir), or the holder's side of a partner's real-time query. It reports
each job's end, and offers the audit checkpoint of each partner's log for the hub to cosign.

A job the agent has finished is recorded (``hub-agent.db``), so a job the hub gives again —
after a hub restart, say — is reported done without a second exchange.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from xlink._sqlite import SqliteStore, setting_up, transaction
from xlink.agency import Agency
from xlink.audit._encoding import to_micros
from xlink.crypto._public_docs import audit_endorsement_message
from xlink.crypto.keyfiles import AgencyKeys
from xlink.crypto.rand import RandomSource
from xlink.crypto.suite import DEFAULT_SUITE
from xlink.errors import HubError, PeerRefused, ProtocolError, XlinkError
from xlink.hub.client import HubAddress, open_control, open_hub, relayed
from xlink.hub.wire import (
    CheckpointOffer,
    Cosigned,
    Job,
    JobKind,
    Purpose,
    Refused,
    Report,
    cosign_message,
    encode,
    read_frame,
    verify,
)
from xlink.identifiers import REASON_CODE_RULE
from xlink.linkage.schema import schema_digest
from xlink.prepare import PreparedSide, StrPath
from xlink.progress import stopping
from xlink.protocol.framing import encode_frame
from xlink.records.validation import BadFieldPolicy
from xlink.transport.stream import FramedConnection

__all__ = ["AgentFiles", "HubAgent", "partner_workdir", "partners_of"]

log = logging.getLogger("xlink.hub.agent")

RECONNECT_FIRST: Final = 0.5
RECONNECT_MAX: Final = 30.0
MAX_QUEUED_PER_PARTNER: Final = 4
"""Jobs with one partner waiting in the agent at once; more from the hub are dropped."""
QUERY_STALE: Final = 15.0
"""Seconds after which a query job still waiting is dropped: its asker has given up."""
SESSION_WAIT: Final = 120.0
"""Seconds a job's session connection waits for the hub to splice the partner."""


def partner_workdir(workdir: Path, peer: str) -> Path:
    """The Agency workdir of exchanges with ``peer`` under an agent's (or asker's) workdir."""
    return workdir / "partners" / peer


@dataclass(frozen=True, slots=True)
class AgentFiles:
    """What an agency's side needs: its key directory and passphrase, the multilateral MOU,
    each partner's public bundle (by agency id), and the list it brings (files, mappings)."""

    agency: str
    keys_dir: Path
    passphrase: bytes = field(repr=False)
    mou: Path
    bundles: dict[str, Path]
    files: tuple[Path, ...]
    mappings: tuple[Path | None, ...] | None = None
    date_order: str | None = None
    bad_field: BadFieldPolicy = BadFieldPolicy.DROP_FIELD
    #: The PSI ciphersuite our exchanges propose (every partner must propose the same).
    suite_id: int = DEFAULT_SUITE.suite_id

    def open_agency(
        self,
        workdir: Path,
        peer: str,
        *,
        clock: Callable[[], datetime],
        rng: RandomSource,
        keys: AgencyKeys | None = None,
    ) -> Agency:
        """:meth:`Agency.open` for the pair (us, ``peer``) in its partner workdir (``keys``:
        ours, already opened with the passphrase, so as not to pay the KDF again)."""
        if peer not in self.bundles:
            raise XlinkError(f"no public bundle for {peer}")
        return Agency.open(
            partner_workdir(workdir, peer),
            agency=self.agency,
            peer=peer,
            keys_dir=self.keys_dir,
            passphrase=self.passphrase,
            mou_path=self.mou,
            peer_bundle_path=self.bundles[peer],
            clock=clock,
            rng=rng,
            keys=keys,
            suite_id=self.suite_id,
        )

    def load_keys(self) -> AgencyKeys:
        """Our keys, opened once with the passphrase."""
        keys = AgencyKeys.load(self.keys_dir, self.passphrase)
        if keys.agency_id != self.agency:
            raise XlinkError(f"{self.keys_dir}: the keys of {keys.agency_id}, not {self.agency}")
        return keys


class _AgentState(SqliteStore):
    """Jobs finished and checkpoints the hub cosigned (``hub-agent.db``)."""

    __slots__ = ()

    def __init__(self, path: Path) -> None:
        with setting_up(path) as conn:
            conn.executescript(
                "CREATE TABLE IF NOT EXISTS done (job BLOB PRIMARY KEY, peer TEXT NOT NULL,"
                " finished_us INTEGER NOT NULL);"
                "CREATE TABLE IF NOT EXISTS cosigned (log TEXT NOT NULL, seq INTEGER NOT NULL,"
                " signature BLOB NOT NULL, PRIMARY KEY (log, seq));"
            )
        self._conn = conn

    def is_done(self, job: bytes) -> bool:
        return self._conn.execute("SELECT 1 FROM done WHERE job = ?", (job,)).fetchone() is not None

    def mark_done(self, job: bytes, peer: str, now: datetime) -> None:
        with transaction(self._conn):
            self._conn.execute(
                "INSERT OR IGNORE INTO done (job, peer, finished_us) VALUES (?, ?, ?)",
                (job, peer, to_micros(now)),
            )

    def keep_cosignature(self, log_name: str, seq: int, signature: bytes) -> None:
        with transaction(self._conn):
            self._conn.execute(
                "INSERT OR IGNORE INTO cosigned (log, seq, signature) VALUES (?, ?, ?)",
                (log_name, seq, signature),
            )

    def cosigned(self) -> list[tuple[str, int]]:
        rows = self._conn.execute("SELECT log, seq FROM cosigned ORDER BY log, seq")
        return [(str(r[0]), int(r[1])) for r in rows]

    def done_jobs(self) -> int:
        row = self._conn.execute("SELECT COUNT(*) FROM done").fetchone()
        return int(row[0])


def _reason(exc: BaseException) -> str:
    """A reason code for a failed job (what a REPORT carries): never a message."""
    if isinstance(exc, HubError | PeerRefused):
        return str(exc.reason.value)
    code = getattr(exc, "code", None)
    if code is not None and hasattr(code, "name"):
        reason = str(code.name).lower().replace("_", "-")
    else:
        reason = type(exc).__name__.lower()
    return reason if REASON_CODE_RULE.pattern.fullmatch(reason) else "failed"


class HubAgent:
    """One agency's agent. :meth:`run` until cancelled."""

    def __init__(
        self,
        files: AgentFiles,
        address: HubAddress,
        workdir: StrPath,
        *,
        clock: Callable[[], datetime],
        rng: RandomSource,
        session_wait: float = SESSION_WAIT,
        idle_timeout: float = 60.0,
    ) -> None:
        self.files = files
        self.address = address
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self.rng = rng
        self.session_wait = session_wait
        self.idle_timeout = idle_timeout
        self._keys = files.load_keys()
        self._signing_key = self._keys.signing_key
        self.state = _AgentState(self.workdir / "hub-agent.db")
        self._sides: dict[bytes, PreparedSide] = {}
        self._preparing: dict[bytes, asyncio.Lock] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._pair_locks: dict[str, asyncio.Lock] = {}
        self._queued: dict[str, int] = {}
        self._offered: dict[tuple[str, int], CheckpointOffer] = {}
        #: Set once the hub has welcomed the control connection (tests and the demo wait on it).
        self.connected = asyncio.Event()

    def close(self) -> None:
        self.state.close()

    async def run(self) -> None:
        """Stay connected to the hub and run its jobs, until cancelled."""
        delay = RECONNECT_FIRST
        try:
            while True:
                try:
                    await self._connected_once()
                    delay = RECONNECT_FIRST
                except (XlinkError, OSError, asyncio.IncompleteReadError, ConnectionError) as exc:
                    what = "connection ended" if self.connected.is_set() else "cannot connect"
                    log.info(
                        "%s: hub %s (%s); trying again in %g s",
                        self.files.agency,
                        what,
                        type(exc).__name__,
                        delay,
                    )
                self.connected.clear()
                self._writer = None
                await asyncio.sleep(delay)
                delay = min(2 * delay, RECONNECT_MAX)
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _connected_once(self) -> None:
        link = await open_control(
            self.address,
            agency=self.files.agency,
            signing_key=self._signing_key,
            clock=self.clock,
            rng=self.rng,
        )
        self._writer = link.writer
        self.connected.set()
        log.info("%s: connected to %s", self.files.agency, self.address)
        try:
            while True:
                message = await read_frame(link.reader)
                if isinstance(message, Job):
                    self._take(message)
                elif isinstance(message, Cosigned):
                    self._cosigned(message)
                elif isinstance(message, Refused):  # of a checkpoint offer: nothing to keep
                    log.warning(
                        "%s: the hub refused a checkpoint (%s)",
                        self.files.agency,
                        message.reason.value,
                    )
        finally:
            link.close()

    def _take(self, job: Job) -> None:
        """Run a JOB the hub sent, within bounds a dishonest hub cannot stretch: only for a
        partner we hold a bundle for (the MOU's terms are checked when the pair opens), and at
        most :data:`MAX_QUEUED_PER_PARTNER` waiting per partner."""
        if job.peer not in self.files.bundles:
            log.info(
                "%s: a job with %s, for whom we have no bundle: refused",
                self.files.agency,
                job.peer,
            )
            if job.kind is JobKind.EXCHANGE:
                self._send(Report(job.job, False, "no-bundle"))
            return
        queued = self._queued.get(job.peer, 0)
        if queued >= MAX_QUEUED_PER_PARTNER:
            log.info("%s: too many jobs with %s waiting: one dropped", self.files.agency, job.peer)
            return
        self._queued[job.peer] = queued + 1
        self._spawn(self._job(job, asyncio.get_running_loop().time()))

    def _cosigned(self, message: Cosigned) -> None:
        """Keep the hub's cosignature of a checkpoint we offered, once it verifies under the
        hub key the MOU names over exactly that checkpoint."""
        offer = self._offered.get((message.log, message.seq))
        if offer is None:
            return
        signed = cosign_message(self.address.hub.hub_id, self.files.agency, offer)
        if not verify(self.address.hub.verify_key, message.signature, signed):
            log.warning("%s: a cosignature that does not verify: ignored", self.files.agency)
            return
        del self._offered[(message.log, message.seq)]
        self.state.keep_cosignature(message.log, message.seq, message.signature)

    def _spawn(self, work: Coroutine[object, object, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _send(self, message: Report | CheckpointOffer) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(encode_frame(encode(message)))

    async def _side(self, agency: Agency) -> PreparedSide:
        """Our list, prepared once with the MOU's schema (rejects in the agent's workdir), on a
        worker thread: the control connection and the other partners' jobs go on meanwhile
        (minutes for a large list), and jobs that need it at once wait for the one run."""
        digest = schema_digest(agency.schema)
        async with self._preparing.setdefault(digest, asyncio.Lock()):
            if digest not in self._sides:
                from xlink.prepare import prepare_side

                stop = threading.Event()  # the agent stopped (Ctrl-C): so does the thread
                try:
                    self._sides[digest] = await asyncio.to_thread(
                        prepare_side,
                        list(self.files.files),
                        schema=agency.schema,
                        mappings=list(self.files.mappings) if self.files.mappings else None,
                        date_order=self.files.date_order,
                        bad_field=self.files.bad_field,
                        rejects_dir=self.workdir / "rejects",
                        progress=stopping(None, stop),
                        today=self.clock().astimezone(UTC).date(),
                    )
                except asyncio.CancelledError:
                    stop.set()
                    raise
        return self._sides[digest]

    async def _job(self, job: Job, received: float) -> None:
        lock = self._pair_locks.setdefault(job.peer, asyncio.Lock())
        try:
            async with lock:
                self._queued[job.peer] -= 1
                if job.kind is JobKind.EXCHANGE:
                    if self.state.is_done(job.job):  # the same start given twice
                        self._send(Report(job.job, True, "already-done"))
                        return
                    await self._exchange(job)
                elif asyncio.get_running_loop().time() - received < QUERY_STALE:
                    await self._answer(job)
                # else: the asker has given up on this query by now
        except Exception as exc:  # every end of an exchange job is reported
            log.info(
                "%s: job %s with %s failed: %s",
                self.files.agency,
                job.job.hex()[:8],
                job.peer,
                type(exc).__name__,
            )
            if job.kind is JobKind.EXCHANGE:
                self._send(Report(job.job, False, _reason(exc)))

    def _open(self, peer: str) -> Agency:
        return self.files.open_agency(
            self.workdir, peer, clock=self.clock, rng=self.rng, keys=self._keys
        )

    async def _session(self, agency: Agency, job: Job) -> FramedConnection:
        sock = await open_hub(
            self.address,
            agency=self.files.agency,
            signing_key=self._signing_key,
            purpose=Purpose.SESSION,
            job=job.job,
            clock=self.clock,
            rng=self.rng,
        )
        return await relayed(
            sock,
            role=job.role,
            tls=agency.tls_options(),
            where=f"{job.peer} through the hub",
            wait=self.session_wait,
        )

    async def _exchange(self, job: Job) -> None:
        with self._open(job.peer) as a:
            side = await self._side(a)
            config = a.session_config(job.role)
            conn = await self._session(a, job)
            await a.exchange(
                conn,
                side,
                config=config,
                idle_timeout=self.idle_timeout,
            )
            published = a.audit.publish(now=self.clock())
        self.state.mark_done(job.job, job.peer, self.clock())
        self._send(Report(job.job, True, ""))
        if published is not None:
            endorsed = audit_endorsement_message(self.files.agency, published.audit_key)
            offer = CheckpointOffer(job.peer, published, self._signing_key.sign(endorsed))
            self._offered[(job.peer, published.checkpoint.seq)] = offer
            self._send(offer)

    async def _answer(self, job: Job) -> None:
        with self._open(job.peer) as a:
            # the month's table made by the session, off the event loop
            service = a.query_service(await self._side(a), lazy=True)
            conn = await self._session(a, job)
            with contextlib.suppress(ProtocolError):  # audited by the service
                await service.handle(conn, idle_timeout=self.idle_timeout)


def partners_of(mou_pairs: Sequence[tuple[str, str]], agency: str) -> list[str]:
    """The agencies ``agency`` has terms with, sorted."""
    return sorted({b if a == agency else a for a, b in mou_pairs if agency in (a, b)})
