"""The hub against a dishonest agency's sequences of messages, on real sockets on 127.0.0.1
(spec: xlink-hub-v1 §2-§7).

The other fuzzers drive a state machine object; the hub's is only reachable through its
listening socket, so this serves a real :class:`~xlink.hub.Hub` (a fresh one, workdir and
schedule for each example) and speaks to it as the three agencies of the bundled hub MOU, whose
keys the test holds: control connections (the real ``open_control``), session and query
connections, and raw connections on which anything at all is sent. Between honest steps
(connect, schedule a round, report, open a job's two sessions and see them spliced, offer a
checkpoint) hypothesis sends:

* before the hello: every other message type (a REPORT or CHECKPOINT before HELLO, the hub's
  own CHALLENGE, WELCOME, JOB ... reflected), hellos with one member changed (another agency,
  a stranger, another signer, a bit of the signature, another hub id, an earlier challenge's
  nonce, another TLS binding, the wrong purpose for the channel, a stale time), replays of
  earlier hellos, a hello and a second one at once, garbage, a cut frame, an oversized header,
  another preamble;
* on a welcomed control connection: replays of anything any agency sent (a second hello,
  another agency's REPORT), reflections of the hub's own frames, REPORTs of another job,
  another agency's, an earlier attempt's or of none, checkpoints of a log without terms, under
  another audit key, endorsed by another, badly signed, lower, again, and one byte changed,
  cut frames, oversized headers, random bytes;
* session hellos for another agency's job, an earlier attempt, a query job not its own, a
  second time; queries to itself, to a stranger, to an offline partner, beyond the limit.

Checks, after every step (each step bounded by ``_fuzzing.timed``):

* every answer before the welcome is REFUSED with the reason the spec gives (§4, §5, §8) or,
  for a frame cut short by the sender, a close; a well-formed REPORT or CHECKPOINT on a control
  connection keeps it (a CHECKPOINT gets COSIGNED or the REFUSED §7 gives), anything else there
  ends it, and the hub drops that agency's control and fails its running jobs (§6);
* no task of the hub ends in an exception that is not ours, the dispatcher never fails, no
  handshake is left counted;
* a job is ``done`` only when both its agencies reported ``ok`` for its current attempt on
  their own control connections; it leaves ``running`` otherwise only on a failed REPORT of one
  of them (with its reason) or when one's control connection ended (``peer-failed``), and it
  does leave then; a running job's two agencies are connected;
* SPLICED comes only on two sessions of one attempt (or the asker's and the holder's of one
  query) and joins exactly those two; a query JOB reaches a holder only for a welcomed query;
* the checkpoints kept and the contradicting ones kept as evidence are exactly those §7 keeps,
  and each COSIGNED verifies under the hub key.

``read_frame`` on random streams raises only xlink's own errors (the ``@given`` test at the
end; ``decode`` on garbled messages is tested beside the vectors, ``test_hub_vectors.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path

from _fuzzing import STEP_BUDGET_S, fuzz_settings, timed
from _hub import NOW, clock, running_hub
from hypothesis import event, given
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from xlink.audit import Checkpoint, PublishedCheckpoint
from xlink.audit._encoding import to_micros
from xlink.crypto._public_docs import audit_endorsement_message
from xlink.crypto.keys import SealingKey, SigningKey
from xlink.crypto.rand import DeterministicRandom
from xlink.error_codes import HubReason
from xlink.errors import ConnectionLost, HubError, XlinkError
from xlink.hub import Hub, HubAddress
from xlink.hub.client import open_control
from xlink.hub.schedule import MAX_CONFLICTS_KEPT, JobState
from xlink.hub.wire import (
    MAX_HUB_FRAME,
    PREAMBLE_CONTROL,
    PREAMBLE_PLAIN,
    TLS_READY,
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
    read_frame,
    sign_hello,
    verify,
    welcome_message,
)
from xlink.policy.template import PartyKeys, load_hub_template
from xlink.protocol.config import Role
from xlink.protocol.framing import encode_frame
from xlink.transport.tls import bound_client_context

# -- one MOU and its keys, made in memory (no key files: each example serves a fresh hub) -------

_RNG = DeterministicRandom("hub message sequences")
_TEMPLATE = load_hub_template()
AGENCIES = tuple(sorted(_TEMPLATE.agency_ids))
STRANGER = "XX-ROGUE"
KEYS = {a: SigningKey.generate(_RNG) for a in (*AGENCIES, STRANGER)}
HUB_KEY = SigningKey.generate(_RNG)
MOU = _TEMPLATE.fill(
    {
        a: PartyKeys(KEYS[a].verify_key, SealingKey.generate(_RNG).public_key, _RNG(32))
        for a in AGENCIES
    },
    hub_key=HUB_KEY.verify_key,
    schema_digest=bytes(32),
    valid_from=NOW.date(),
    valid_until=NOW.date() + timedelta(days=2),
)
HUB_ID = MOU.hub.hub_id
AUDIT = [SigningKey.generate(_RNG) for _ in range(2)]  # an agency's audit key, and another
SKEW_US = 5 * 60 * 10**6
LOGS = (*AGENCIES, STRANGER, HUB_ID)
WAIT = 3.0  # seconds for the hub to do what a step asks, well within the step budget


def _published(audit: SigningKey, seq: int, head: int, prev: int = 0) -> PublishedCheckpoint:
    unsigned = Checkpoint(seq, bytes([head]) * 32, NOW, prev, 100, bytes(64))
    signed = replace(unsigned, signature=audit.sign(unsigned.message()))
    return PublishedCheckpoint(audit.verify_key, signed)


def _endorsed(agency: str, published: PublishedCheckpoint, signer: SigningKey) -> bytes:
    return signer.sign(audit_endorsement_message(agency, published.audit_key))


def _text(published: PublishedCheckpoint) -> str:
    return json.dumps(published.to_json(), sort_keys=True)


def _barrier(agency: str) -> bytes:
    """A CHECKPOINT of the agency's own "log" (no terms): answered REFUSED no-terms at once and
    changing nothing, so its answer tells that everything sent before it was handled."""
    published = _published(AUDIT[0], 1, 0)
    return encode(CheckpointOffer(agency, published, _endorsed(agency, published, KEYS[agency])))


# -- our side of a connection --------------------------------------------------------------------


@dataclass(eq=False)
class Conn:
    """One connection of ours: its streams, every hub frame read on it (control: all of them;
    session: SPLICED or REFUSED, then the partner's bytes), and whether the hub ended it."""

    agency: str
    purpose: Purpose
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    job: bytes = b""
    peer: str = ""
    frames: list[tuple[bytes, HubMessage]] = field(default_factory=list)
    data: bytearray = field(default_factory=bytearray)
    closed: bool = False
    bad: str = ""  # the hub sent something that is not a hub message
    task: asyncio.Task[None] | None = None
    ended_seen: bool = False
    partner: tuple[object, ...] | None = None  # a session: its partner's side, waiting before
    addr: tuple[object, ...] = ()

    @property
    def spliced(self) -> bool:
        return any(isinstance(m, Spliced) for _, m in self.frames)

    async def pump(self) -> None:
        try:
            if self.purpose is Purpose.CONTROL:
                while True:
                    self._keep(await read_frame(self.reader, self._raw))
            else:
                message = await read_frame(self.reader, self._raw)
                self._keep(message)
                if isinstance(message, Spliced):
                    while chunk := await self.reader.read(4096):
                        self.data += chunk
        except HubError as exc:
            self.bad = f"{exc!r}"
        except (ConnectionLost, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self.closed = True

    def _raw(self, data: bytes) -> None:
        self._last_raw = data

    def _keep(self, message: HubMessage) -> None:
        self.frames.append((self._last_raw, message))

    def close(self) -> None:
        self.writer.transport.abort()


class Ended(Exception):
    """The hub closed the connection instead of answering."""


# -- the machine ---------------------------------------------------------------------------------


class HubFuzz(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(lambda _loop, ctx: self.errors.append(repr(ctx)))
        self.loop.set_task_factory(self._task)
        self.errors: list[str] = []
        self.base = Path(tempfile.mkdtemp(prefix="hubfuzz-", dir=_TMP))
        self.hub = Hub(MOU, HUB_KEY, self.base / "hub", clock=clock, rng=DeterministicRandom(0))
        self.serving = self.loop.create_task(
            self.hub.serve("127.0.0.1", 0, on_listening=self._bound), name="fuzz serve"
        )
        self.port = 0
        self.run(self._until(lambda: self.port != 0))
        self.address = HubAddress("127.0.0.1", self.port, MOU.hub)
        self.links: dict[str, Conn] = {}  # each agency's current control connection
        self.conns: list[Conn] = []  # every connection welcomed, control or not
        self.sent: list[bytes] = []  # every frame an agency sent (for replays)
        self.heard: list[bytes] = []  # every frame the hub sent (for reflections)
        self.nonces: list[bytes] = []  # every challenge's nonce
        self.ok: dict[bytes, set[str]] = {}  # attempt -> agencies that reported ok on their own
        self.failed: dict[bytes, list[tuple[str, str]]] = {}  # attempt -> (agency, reason)
        self.ended: dict[str, int] = dict.fromkeys(AGENCIES, 0)  # control connections ended
        self.rows: dict[bytes, tuple[str, bytes | None, dict[str, int]]] = {}
        self.history: list[bytes] = []  # attempts seen running
        self.kept: dict[tuple[str, str], list[tuple[int, str, bytes]]] = {}
        self.conflicts: dict[str, set[tuple[str, int, str]]] = {a: set() for a in AGENCIES}
        self.queries_welcomed: dict[tuple[str, str], int] = {}
        self.offered: dict[str, list[CheckpointOffer]] = {}
        self.log = _Records()
        logging.getLogger("xlink.hub").addHandler(self.log)

    # -- plumbing ----------------------------------------------------------------------------

    def _task(self, loop: asyncio.AbstractEventLoop, coro, context=None):  # type: ignore[no-untyped-def]
        task = asyncio.Task(coro, loop=loop, context=context)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[object]) -> None:
        if task.get_name().startswith("fuzz") or task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.errors.append(f"a hub task ended in {exc!r}")

    def _bound(self, port: int) -> None:
        self.port = port

    def run(self, coro) -> object:  # type: ignore[no-untyped-def]
        async def bounded() -> object:
            async with asyncio.timeout(STEP_BUDGET_S):
                return await coro

        return timed(lambda _: self.loop.run_until_complete(bounded()), b"")

    async def _until(self, condition, what: str = "") -> None:  # type: ignore[no-untyped-def]
        deadline = time.perf_counter() + WAIT
        while not condition():
            assert time.perf_counter() < deadline, f"the hub did not {what} in {WAIT} s"
            await asyncio.sleep(0.001)

    def _watch(self, conn: Conn) -> Conn:
        conn.addr = tuple(conn.writer.get_extra_info("sockname") or ())
        conn.task = self.loop.create_task(conn.pump(), name="fuzz pump")
        self.conns.append(conn)
        return conn

    async def _open(self, tls: bool) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(PREAMBLE_CONTROL if tls else PREAMBLE_PLAIN)
        if not tls:
            return reader, writer, b""
        assert await reader.readexactly(1) == TLS_READY
        await writer.start_tls(bound_client_context(), server_hostname="")
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        return reader, writer, hashlib.sha256(der).digest()

    async def _challenge(self, reader: asyncio.StreamReader) -> Challenge:
        raw: list[bytes] = []
        challenge = await read_frame(reader, raw.append)
        assert isinstance(challenge, Challenge) and challenge.hub_id == HUB_ID, challenge
        assert challenge.nonce not in self.nonces, "a challenge nonce used twice"
        self.nonces.append(challenge.nonce)
        self.heard += raw
        return challenge

    async def _answer(self, reader: asyncio.StreamReader) -> HubMessage:
        raw: list[bytes] = []
        try:
            message = await read_frame(reader, raw.append)
        except (ConnectionLost, OSError, asyncio.IncompleteReadError):
            raise Ended from None
        self.heard += raw
        return message

    def _hello(
        self,
        agency: str,
        purpose: Purpose,
        nonce: bytes,
        binding: bytes,
        *,
        job: bytes = b"",
        peer: str = "",
        signer: str | None = None,
        hub_id: str = HUB_ID,
        skew_us: int = 0,
    ) -> Hello:
        return sign_hello(
            KEYS[signer or agency],
            hub_id,
            nonce,
            agency=agency,
            purpose=purpose,
            job=job,
            peer=peer,
            time_us=to_micros(NOW) + skew_us,
            nonce=_RNG(32),
            binding=binding,
        )

    def _expect_hello(self, hello: Hello, nonce: bytes, binding: bytes) -> HubReason | None:
        """What §4-§5 make of ``hello`` on a connection with this challenge and binding: the
        REFUSED reason, or None (welcomed)."""
        if hello.agency not in AGENCIES:
            return HubReason.BAD_SIGNATURE
        signed = hello_message(HUB_ID, nonce, hello, binding)
        if not verify(KEYS[hello.agency].verify_key, hello.signature, signed):
            return HubReason.BAD_SIGNATURE
        if (hello.purpose is Purpose.CONTROL) != bool(binding):
            return HubReason.MALFORMED
        if abs(hello.time_us - to_micros(NOW)) > SKEW_US:
            return HubReason.STALE
        hub = self.hub
        if hello.purpose is Purpose.SESSION:
            query = hub.queries.get(hello.job)
            row = hub.schedule.by_attempt(hello.job)
            mine = (query is not None and query.holder == hello.agency) or (
                query is None
                and row is not None
                and row.state == JobState.RUNNING
                and hello.agency in row.agencies
            )
            if not mine:
                return HubReason.UNKNOWN_JOB
            if (hello.job, hello.agency) in hub.waiting:
                return HubReason.DUPLICATE
        elif hello.purpose is Purpose.QUERY:
            terms = MOU.terms_for(hello.agency, hello.peer)
            if terms is None or terms.query_quota_per_day <= 0:
                return HubReason.NO_TERMS
            if hello.peer not in hub.controls:
                return HubReason.PEER_OFFLINE
            if hub._in_flight.get((hello.agency, hello.peer), 0) >= 2:
                return HubReason.BUSY
        return None

    async def _send_hello(
        self, tls: bool, make, then: bytes = b"", cut: int | None = None
    ) -> tuple[HubReason | str | None, Conn | None]:  # type: ignore[no-untyped-def]
        """Open a connection, send what ``make(nonce, binding)`` gives (a Hello, or the raw
        payload of a frame), and check the answer against the spec. Returns what was expected
        and the welcomed connection (or None)."""
        reader, writer, binding = await self._open(tls)
        challenge = await self._challenge(reader)
        made = make(challenge.nonce, binding)
        payload = encode(made) if isinstance(made, Hello) else made
        frame = encode_frame(payload)
        self.sent.append(frame)
        try:
            hello = decode(payload)
        except HubError:
            hello = None
        partner: tuple[object, ...] | None = None
        if cut is not None:  # the frame cut short, then the end of our side
            writer.write(frame[: cut % len(frame)])
            if not writer.can_write_eof():  # TLS: a close_notify, and nothing more to read
                writer.close()
                return "closed", None
            writer.write_eof()
            expected: HubReason | str | None = "closed"
        elif hello is None or not isinstance(hello, Hello):
            writer.write(frame + then)
            expected = HubReason.MALFORMED
        else:
            expected = self._expect_hello(hello, challenge.nonce, binding)
            if expected is None and hello.purpose is Purpose.SESSION:
                partner = self._waiting_partner(hello)
            writer.write(frame + then)
        try:
            answer = await self._answer(reader)
        except Ended:
            writer.transport.abort()
            assert expected == "closed", f"closed without an answer; expected {expected}"
            return expected, None
        if expected is None:
            assert isinstance(answer, Welcome), f"{answer} to a hello the spec welcomes"
            assert isinstance(hello, Hello)
            signed = welcome_message(HUB_ID, challenge.nonce, hello, binding)
            assert verify(HUB_KEY.verify_key, answer.signature, signed)
            conn = Conn(hello.agency, hello.purpose, reader, writer, hello.job, hello.peer)
            conn.partner = partner
            return expected, self._watch(conn)
        assert isinstance(answer, Refused), f"{answer}: expected REFUSED {expected}"
        assert answer.reason is expected, f"REFUSED {answer.reason}, spec: {expected}"
        with contextlib.suppress(Ended):  # then it closes
            extra = await self._answer(reader)
            raise AssertionError(f"{extra} after REFUSED")
        writer.transport.abort()
        return expected, None

    def _took(self, conn: Conn, message: HubMessage | None) -> None:
        """Note what a control connection's agency sent (the hub takes it as that agency's)."""
        if isinstance(message, Report):
            if message.ok:
                self.ok.setdefault(message.job, set()).add(conn.agency)
            else:
                self.failed.setdefault(message.job, []).append((conn.agency, message.reason))

    async def _control_send(self, conn: Conn, frames: bytes, message: HubMessage | None) -> None:
        """Send on a welcomed control connection and check the hub's reaction: a REPORT is
        taken silently, a CHECKPOINT answered, anything else ends the connection."""
        answers = len([m for _, m in conn.frames if isinstance(m, Cosigned | Refused)])
        conn.writer.write(frames)
        if isinstance(message, Report):
            self._took(conn, message)
            message = None
            conn.writer.write(encode_frame(_barrier(conn.agency)))
            expected: object = Refused(HubReason.NO_TERMS, "")
        elif isinstance(message, CheckpointOffer):
            expected = self._expect_offer(conn.agency, message)
        else:
            if not _whole(frames):  # a frame cut short: our end follows (the hub must let go)
                conn.writer.close()
            await self._until(lambda: conn.closed, "close a control connection on garbage")
            refusals = [m for _, m in conn.frames if isinstance(m, Refused)][answers:]
            assert all(r.reason is HubReason.MALFORMED for r in refusals), refusals
            return

        def answered() -> bool:
            got = [m for _, m in conn.frames if isinstance(m, Cosigned | Refused)]
            return len(got) > answers or conn.closed

        await self._until(answered, "answer a checkpoint")
        got = [m for _, m in conn.frames if isinstance(m, Cosigned | Refused)][answers:]
        assert not conn.closed or got, "a control connection ended on a well-formed message"
        assert got[0] == expected, f"answered {got[0]}, spec: {expected}"
        event(f"control answered {type(got[0]).__name__}")

    def _expect_offer(self, agency: str, offer: CheckpointOffer) -> HubMessage:
        """§7, from what this agency offered before."""
        if MOU.terms_for(agency, offer.log) is None:
            return Refused(HubReason.NO_TERMS, "")
        published = offer.published
        endorsed = audit_endorsement_message(agency, published.audit_key)
        if not verify(KEYS[agency].verify_key, offer.endorsement, endorsed) or not verify(
            published.audit_key, published.checkpoint.signature, published.checkpoint.message()
        ):
            return Refused(HubReason.BAD_SIGNATURE, "")
        kept = self.kept.setdefault((agency, offer.log), [])
        text, seq = _text(published), published.checkpoint.seq
        for s, t, cosig in kept:
            if (s, t) == (seq, text):
                return Cosigned(offer.log, seq, cosig)  # offered again: the same answer
        if kept:
            first = PublishedCheckpoint.from_json(json.loads(kept[0][1]))
            if seq <= kept[-1][0] or first.audit_key != published.audit_key:
                same_log = [c for c in self.conflicts[agency] if c[0] == offer.log]
                if len(same_log) < MAX_CONFLICTS_KEPT:
                    self.conflicts[agency].add((offer.log, seq, text))
                return Refused(HubReason.CONFLICT, "")
        cosig = HUB_KEY.sign(cosign_message(HUB_ID, agency, offer))
        kept.append((seq, text, cosig))
        return Cosigned(offer.log, seq, cosig)

    # -- set-up and tear-down ----------------------------------------------------------------

    @initialize(
        connected=st.one_of(st.just(set(AGENCIES)), st.sets(st.sampled_from(AGENCIES))),
        rounds=st.sampled_from([1, 1, 0]),
    )
    def build(self, connected: set[str], rounds: int) -> None:
        for agency in sorted(connected):
            self.connect(agency)
        for _ in range(rounds):
            self.add_round()

    def teardown(self) -> None:
        try:
            for conn in self.conns:
                conn.close()
            self.serving.cancel()
            pending = asyncio.all_tasks(self.loop)  # the hub's connections too, as at its exit
            for task in pending:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        finally:
            logging.getLogger("xlink.hub").removeHandler(self.log)
            self.loop.close()
            self.hub.close()
            shutil.rmtree(self.base, ignore_errors=True)

    # -- honest steps ------------------------------------------------------------------------

    @rule(agency=st.sampled_from(AGENCIES))
    def connect(self, agency: str) -> None:
        """A control connection through the real client; a second one replaces the first."""

        async def go() -> None:
            link = await open_control(
                self.address,
                agency=agency,
                signing_key=KEYS[agency],
                clock=clock,
                rng=DeterministicRandom(len(self.conns)),
            )
            self.links[agency] = self._watch(
                Conn(agency, Purpose.CONTROL, link.reader, link.writer)
            )

        self.run(go())

    @rule()
    def add_round(self) -> None:
        self.hub.add_round()

    @rule(agency=st.sampled_from(AGENCIES))
    def drop_control(self, agency: str) -> None:
        """The agency's control connection ends (§6: its running jobs fail)."""
        link = self.links.get(agency)
        if link is not None and not link.closed:
            link.close()
            self.run(self._until(lambda: link.closed))

    def _attempts(self) -> list[bytes]:
        running = [r.attempt for r in self.hub.schedule.jobs(state=JobState.RUNNING)]
        return [a for a in running if a is not None] + list(self.hub.queries) + self.history

    @rule(
        agency=st.sampled_from(AGENCIES),
        pick=st.integers(0, 63),
        ok=st.booleans(),
        why=st.integers(),
    )
    def report(self, agency: str, pick: int, ok: bool, why: int) -> None:
        """A REPORT of a running attempt (the agency's own or not), an earlier one or none."""
        link = self.links.get(agency)
        if link is None or link.closed:
            return
        attempts = self._attempts()
        job = attempts[pick % len(attempts)] if attempts and pick < 48 else _RNG(16)
        reason = "" if ok else ["", "peer-failed", "tls-failed", "x"][why % 4]
        message = Report(job, ok, reason)
        self.sent.append(encode_frame(encode(message)))
        self.run(self._control_send(link, encode_frame(encode(message)), message))

    @rule(agency=st.sampled_from(AGENCIES), pick=st.integers(0, 63), data=st.data())
    def session(self, agency: str, pick: int, data: st.DataObject) -> None:
        """A session hello naming a job: a running attempt (the agency's, or another's), a
        query job, an earlier attempt, or no job at all."""
        attempts = self._attempts()
        job = attempts[pick % len(attempts)] if attempts and pick < 56 else _RNG(16)

        async def go() -> None:
            _, conn = await self._send_hello(
                False,
                lambda n, b: self._hello(agency, Purpose.SESSION, n, b, job=job),
            )
            if conn is not None:
                await self._check_splice(conn)

        self.run(go())

    @rule(pick=st.integers(0, 7), outcome=st.sampled_from(["ok", "ok", "one", "fail"]))
    def exchange(self, pick: int, outcome: str) -> None:
        """A running job done honestly: both sessions, spliced, then both REPORTs (ok; or only
        one agency's; or a failure)."""
        rows = self.hub.schedule.jobs(state=JobState.RUNNING)
        if not rows:
            return
        row = rows[pick % len(rows)]
        job = row.attempt
        assert job is not None

        async def go() -> None:
            for agency in row.agencies:
                _, conn = await self._send_hello(
                    False, lambda n, b, a=agency: self._hello(a, Purpose.SESSION, n, b, job=job)
                )
                if conn is not None:
                    await self._check_splice(conn)
            for agency in row.agencies[: 1 if outcome == "one" else 2]:
                link = self.links[agency]
                message = Report(job, outcome != "fail", "" if outcome != "fail" else "tls-failed")
                frame = encode_frame(encode(message))
                self.sent.append(frame)
                await self._control_send(link, frame, message)

        self.run(go())

    @rule(agency=st.sampled_from(AGENCIES), peer=st.sampled_from(LOGS), answer=st.booleans())
    def query(self, agency: str, peer: str, answer: bool) -> None:
        """A query to a partner (or to itself, a stranger, the hub), and perhaps the holder's
        session for the query JOB the hub gives it."""

        async def go() -> None:
            holder = self.links.get(peer)
            before = _query_jobs(holder, agency) if holder is not None else []
            _, conn = await self._send_hello(
                False, lambda n, b: self._hello(agency, Purpose.QUERY, n, b, peer=peer)
            )
            if conn is None:
                return
            pair = (agency, peer)
            self.queries_welcomed[pair] = self.queries_welcomed.get(pair, 0) + 1
            assert holder is not None and not holder.closed
            await self._until(
                lambda: len(_query_jobs(holder, agency)) > len(before),
                "give the holder its query job",
            )
            job = _query_jobs(holder, agency)[-1]
            assert job.role is Role.RESPONDER
            if answer:
                _, side = await self._send_hello(
                    False, lambda n, b: self._hello(peer, Purpose.SESSION, n, b, job=job.job)
                )
                assert side is not None, "the holder's session for its query job refused"
                await self._check_splice(side)

        self.run(go())

    def _waiting_partner(self, hello: Hello) -> tuple[object, ...] | None:
        """Where the other side of ``hello``'s job waits at the hub, not yet spliced (the
        address of one of our connections), or None."""
        query = self.hub.queries.get(hello.job)
        if query is not None:
            other = query.asker
        else:
            row = self.hub.schedule.by_attempt(hello.job)
            assert row is not None
            other = row.responder if hello.agency == row.initiator else row.initiator
        waiting = self.hub.waiting.get((hello.job, other))
        if waiting is None or waiting.spliced.is_set():
            return None
        return tuple(waiting.writer.get_extra_info("peername"))

    async def _check_splice(self, conn: Conn) -> None:
        """SPLICED comes to a session exactly when its partner's side was waiting, and joins
        exactly those two (a few bytes each way)."""
        if conn.partner is None:
            await asyncio.sleep(0.002)
            assert not conn.spliced, "spliced with nobody of its job"
            return
        (other,) = [c for c in self.conns if c.addr == conn.partner]
        await self._until(lambda: conn.spliced or conn.closed, "splice a job's two sides")
        assert conn.spliced, "not spliced with its partner"
        if other.closed:
            return
        await self._until(lambda: other.spliced or other.closed, "splice the other side")
        assert other.spliced or other.closed
        if other.closed:
            return
        conn.writer.write(b"ping " + conn.agency.encode())
        other.writer.write(b"pong " + other.agency.encode())
        await self._until(
            lambda: (
                (other.data.endswith(b"ping " + conn.agency.encode()) or other.closed)
                and (conn.data.endswith(b"pong " + other.agency.encode()) or conn.closed)
            ),
            "copy a splice's bytes",
        )

    @rule(pick=st.integers(0, 63), both=st.booleans())
    def close_session(self, pick: int, both: bool) -> None:
        sessions = [c for c in self.conns if c.purpose is not Purpose.CONTROL and not c.closed]
        if not sessions:
            return
        conn = sessions[pick % len(sessions)]
        conn.close()
        if both:
            for c in sessions:
                if c.job == conn.job and c.spliced:
                    c.close()

    @rule(
        agency=st.sampled_from(AGENCIES),
        log=st.sampled_from(LOGS),
        audit=st.integers(0, 1),
        seq=st.integers(1, 5),
        head=st.integers(0, 1),
        endorser=st.sampled_from((*AGENCIES, STRANGER)),
        forged=st.integers(0, 7),
        again=st.integers(0, 15),
    )
    def offer(
        self,
        agency: str,
        log: str,
        audit: int,
        seq: int,
        head: int,
        endorser: str,
        forged: int,
        again: int,
    ) -> None:
        """A CHECKPOINT: mostly the agency's own audit key endorsed by itself, sometimes
        another signer, another audit key, a bad checkpoint signature."""
        link = self.links.get(agency)
        if link is None or link.closed:
            return
        published = _published(AUDIT[audit], seq, head, prev=seq - 1 if seq > 1 else 0)
        if forged == 0:
            bad = replace(published.checkpoint, signature=bytes(64))
            published = PublishedCheckpoint(published.audit_key, bad)
        signer = KEYS[endorser if forged == 1 else agency]
        message = CheckpointOffer(log, published, _endorsed(agency, published, signer))
        offered = self.offered.setdefault(agency, [])
        if again < 8 and offered:  # one offered before, again
            message = offered[again % len(offered)]
        offered.append(message)
        self.sent.append(encode_frame(encode(message)))
        self.run(self._control_send(link, encode_frame(encode(message)), message))

    # -- hostile steps -----------------------------------------------------------------------

    @rule(
        tls=st.booleans(),
        agency=st.sampled_from((*AGENCIES, STRANGER)),
        how=st.integers(0, 15),
        pick=st.integers(0, 255),
        k=st.integers(0, 2**16),
    )
    def hostile_hello(self, tls: bool, agency: str, how: int, pick: int, k: int) -> None:
        """Instead of a good hello: another message (a REPORT or CHECKPOINT before the hello,
        the hub's own frames reflected), a hello with one member changed, a replay, garbage,
        a cut frame, a second hello behind the first."""
        purpose = Purpose.CONTROL if tls else [Purpose.SESSION, Purpose.QUERY][k % 2]
        attempts = self._attempts()
        job = attempts[pick % len(attempts)] if attempts else bytes(16)
        job = job if purpose is Purpose.SESSION else b""
        peer = AGENCIES[k % 3] if purpose is Purpose.QUERY else ""
        pool = self.sent + self.heard
        cut: int | None = None
        then = b""

        def hello(n: bytes, b: bytes, **kw: object) -> Hello:
            args: dict[str, object] = {"job": job, "peer": peer, **kw}
            return self._hello(agency, args.pop("purpose", purpose), n, b, **args)  # type: ignore[arg-type]

        if how == 0 and pool:  # any frame sent before, by us or by the hub
            make = lambda n, b: pool[pick % len(pool)][4:]  # noqa: E731
        elif how == 1:  # another agency's key (or a stranger's) signing
            make = lambda n, b: hello(n, b, signer=[*AGENCIES, STRANGER][k % 4])  # noqa: E731
        elif how == 2:  # a bit of the signature changed
            make = lambda n, b: _flip_signature(hello(n, b), k)  # noqa: E731
        elif how == 3:  # another hub's id
            make = lambda n, b: hello(n, b, hub_id="CA-OTHER-HUB")  # noqa: E731
        elif how == 4:  # an earlier challenge's nonce (a replayed or precomputed hello)
            old = self.nonces[pick % len(self.nonces)] if self.nonces else bytes(32)
            make = lambda n, b: hello(old, b)  # noqa: E731
        elif how == 5:  # another TLS binding (someone in the middle), or none
            make = lambda n, b: hello(n, hashlib.sha256(b).digest() if b else bytes(32))  # noqa: E731
        elif how == 6:  # the wrong purpose for this channel, well signed
            wrong = Purpose.SESSION if tls else Purpose.CONTROL
            make = lambda n, b: hello(  # noqa: E731
                n, b, purpose=wrong, job=bytes(16) if tls else b"", peer=""
            )
        elif how == 7:  # a time off the hub's clock, at the limit or past it
            skew = [SKEW_US, -SKEW_US, SKEW_US + 1, -SKEW_US - 1, -to_micros(NOW)][k % 5]
            make = lambda n, b: hello(n, b, skew_us=skew)  # noqa: E731
        elif how == 8:  # a byte of a good hello changed
            make = lambda n, b: _flip(encode(hello(n, b)), k)  # noqa: E731
        elif how == 9:  # a good hello cut short, then the end of our side
            make, cut = (lambda n, b: encode(hello(n, b))), k
        elif how == 10:  # random bytes
            make = lambda n, b: _random(k)  # noqa: E731
        elif how == 11:  # a good hello, and a second one (or a REPORT) right behind it
            second = pool[pick % len(pool)] if pool else encode_frame(_barrier(AGENCIES[0]))
            make, then = (lambda n, b: hello(n, b)), second
        elif how == 12:  # a replay of an earlier hello, byte for byte
            hellos = [f for f in self.sent if len(f) > 5 and f[5] == 0x97]
            make = lambda n, b: hellos[pick % len(hellos)][4:] if hellos else b"\x01"  # noqa: E731
        else:  # a good hello
            make = lambda n, b: hello(n, b)  # noqa: E731
        event(f"hostile hello {how} {'tls' if tls else 'plain'}")

        async def go() -> None:
            expected, conn = await self._send_hello(tls, make, then=then, cut=cut)
            event(f"hello answered {expected}")
            if conn is None:
                return
            if conn.purpose is Purpose.CONTROL:
                self.links[conn.agency] = conn
                if then:  # the second message, read as a control message
                    try:
                        message: HubMessage | None = decode(then[4:])
                    except HubError:
                        message = None
                    await self._control_send(conn, b"", message)
            elif conn.purpose is Purpose.SESSION and not then:
                await self._check_splice(conn)
            elif conn.purpose is Purpose.QUERY:
                pair = (conn.agency, conn.peer)
                self.queries_welcomed[pair] = self.queries_welcomed.get(pair, 0) + 1

        self.run(go())

    @rule(
        agency=st.sampled_from(AGENCIES),
        how=st.integers(0, 9),
        pick=st.integers(0, 255),
        k=st.integers(0, 2**16),
    )
    def hostile_control(self, agency: str, how: int, pick: int, k: int) -> None:
        """On a welcomed control connection: a replay of anything any agency sent, a reflection
        of the hub's frames, a frame with a byte changed, cut, oversized, or random bytes."""
        link = self.links.get(agency)
        if link is None or link.closed:
            return
        pool = self.sent if how % 2 == 0 else self.heard + [f for f, _ in link.frames]
        base = pool[pick % len(pool)] if pool else encode_frame(_barrier(agency))
        if how in (0, 1):
            frames = base
        elif how in (2, 3):
            frames = encode_frame(_flip(base[4:], k))
        elif how == 4:
            frames = base[: 1 + k % (len(base) - 1)]  # cut, then our end
        elif how == 5:
            frames = (MAX_HUB_FRAME + 1 + k).to_bytes(4, "big") + base[4:]
        elif how == 6:
            frames = _random(k)
        elif how == 7:  # one more byte inside the frame
            frames = encode_frame(base[4:] + bytes([k % 256]))
        else:  # a message of the other kinds, made afresh
            frames = encode_frame(encode(_made(k, self._attempts())))
        try:
            message: HubMessage | None = decode(frames[4:]) if len(frames) >= 4 else None
            if int.from_bytes(frames[:4], "big") != len(frames) - 4:
                message = None  # not one whole frame: a cut frame, or bytes beyond it
        except HubError:
            message = None
        event(f"hostile control {how} {type(message).__name__}")
        self.run(self._control_send(link, frames, message))

    @rule(how=st.integers(0, 4), k=st.integers(0, 2**16))
    def hostile_preamble(self, how: int, k: int) -> None:
        """Another preamble, a control preamble and no TLS, or nothing after the preamble."""

        async def go() -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            if how == 0:
                writer.write(_random(k)[:8].ljust(8, b"\x00"))
            elif how == 1:
                writer.write(PREAMBLE_CONTROL + _random(k))  # not a TLS ClientHello
            elif how == 2:
                writer.write(PREAMBLE_CONTROL)
            elif how == 3:
                writer.write(PREAMBLE_PLAIN)
            else:
                writer.write(PREAMBLE_PLAIN[: k % 8])
            writer.write_eof()
            got = await reader.read()
            frames = got[1:] if got[:1] == TLS_READY and how in (1, 2) else got
            if frames and how != 3:
                assert decode(frames[4:]) == Refused(HubReason.MALFORMED, ""), frames
            elif frames:  # the challenge, then nothing
                assert isinstance(decode(frames[4:]), Challenge)
            writer.transport.abort()

        self.run(go())

    # -- checks ------------------------------------------------------------------------------

    @invariant()
    def settled(self) -> None:
        """Let the hub act on what it was sent (start due jobs, drop ended connections), then
        check what it did."""
        if not hasattr(self, "hub"):
            return
        self.hub._dispatch()

        def caught_up() -> bool:
            live = {a for a, c in self.links.items() if not c.closed}
            return set(self.hub.controls) == live and self.hub._handshakes == 0

        self.run(self._until(caught_up, "drop an ended control connection"))
        assert not self.errors, self.errors
        assert not self.log.bad, self.log.bad
        for conn in self.conns:
            assert not conn.bad, f"the hub sent {conn.bad}"
        for agency, link in self.links.items():
            if link.closed and not link.ended_seen:
                link.ended_seen = True
                self.ended[agency] += 1
        self._check_jobs()
        self._check_checkpoints()
        self._check_job_messages()

    def _check_jobs(self) -> None:
        hub = self.hub
        for row in hub.schedule.jobs():
            before = self.rows.get(row.job)
            now = (row.state, row.attempt, dict(self.ended))
            self.rows[row.job] = now
            event(f"job {row.state}")
            if row.state == JobState.RUNNING:
                assert set(row.agencies) <= set(hub.controls), f"running without {row.agencies}"
                assert row.attempt is not None
                if row.attempt not in self.history:
                    self.history.append(row.attempt)
            if before is None:
                assert row.state in (JobState.PENDING, JobState.RUNNING)
                continue
            state, attempt, ended = before
            if state == JobState.DONE:
                assert (row.state, row.attempt) == (state, attempt), "a done job changed"
            if state != JobState.RUNNING or attempt is None:
                continue
            oks = self.ok.get(attempt, set())
            fails = [(a, r) for a, r in self.failed.get(attempt, []) if a in row.agencies]
            gone = [a for a in row.agencies if self.ended[a] > ended[a]]
            if row.state == JobState.DONE:
                assert row.attempt == attempt
                assert set(row.agencies) <= oks, f"done on the reports of {oks} only"
                continue
            if row.state == JobState.RUNNING and row.attempt == attempt:
                assert not fails and not gone, f"still running after {fails} / {gone} left"
                assert not set(row.agencies) <= oks, "both reported ok: not done"
                now = (row.state, row.attempt, ended)  # its agencies' endings still count
                self.rows[row.job] = now
                continue
            # the attempt ended without success: a failed REPORT of one of its agencies, or one
            # of their control connections ended
            assert fails or gone, f"attempt ended ({row.state}, {row.reason}) for no reason"
            reasons = {r or HubReason.PEER_FAILED.value for _, r in fails}
            if gone:
                reasons.add(HubReason.PEER_FAILED.value)
            assert row.reason in reasons, f"recorded {row.reason!r}, sent {reasons}"

    def _check_checkpoints(self) -> None:
        for (agency, log), kept in self.kept.items():
            texts = self.hub.schedule.checkpoints(agency, log)
            assert texts == [t for _, t, _ in kept], f"kept {texts}"
        for agency in AGENCIES:
            assert self.hub.schedule.conflicts(agency) == len(self.conflicts[agency]), (
                "a checkpoint kept as evidence of a rewritten log that contradicts nothing"
            )

    def _check_job_messages(self) -> None:
        started = {a for a in self.history}
        rows = {r.attempt: r for r in self.hub.schedule.jobs() if r.attempt is not None}
        for conn in self.conns:
            if conn.purpose is not Purpose.CONTROL:
                continue
            queries: dict[str, int] = {}
            for _, m in conn.frames:
                if isinstance(m, Job) and m.kind is JobKind.EXCHANGE:
                    assert m.job in started or m.job in rows, "a JOB of no attempt"
                    row = rows.get(m.job)
                    if row is not None:
                        assert conn.agency in row.agencies and m.peer in row.agencies
                        assert (m.role is Role.INITIATOR) == (conn.agency == row.initiator)
                elif isinstance(m, Job):
                    queries[m.peer] = queries.get(m.peer, 0) + 1
            for asker, n in queries.items():
                assert n <= self.queries_welcomed.get((asker, conn.agency), 0), (
                    "a query JOB for a query the hub did not welcome"
                )


def _whole(frames: bytes) -> bool:
    """Whether the hub can tell ``frames`` is bad without waiting for more: an oversized
    header, or a whole frame at its start."""
    if len(frames) < 4:
        return False
    size = int.from_bytes(frames[:4], "big")
    return size > MAX_HUB_FRAME or len(frames) >= 4 + size


def _query_jobs(holder: Conn | None, asker: str) -> list[Job]:
    if holder is None:
        return []
    return [
        m
        for _, m in holder.frames
        if isinstance(m, Job) and m.kind is JobKind.QUERY and m.peer == asker
    ]


def _flip(data: bytes, k: int) -> bytes:
    if not data:
        return b"\x01"
    i = k % len(data)
    return data[:i] + bytes([data[i] ^ (1 << (k >> 8) % 8)]) + data[i + 1 :]


def _flip_signature(hello: Hello, k: int) -> Hello:
    sig = bytearray(hello.signature)
    sig[k % 64] ^= 1 << (k >> 6) % 8
    return replace(hello, signature=bytes(sig))


def _random(k: int) -> bytes:
    return DeterministicRandom(f"junk {k}")(1 + k % 97)


def _made(k: int, attempts: list[bytes]) -> HubMessage:
    """A well-formed hub message of a kind the hub sends, or a hello, made afresh."""
    job = attempts[k % len(attempts)] if attempts else bytes(16)
    sig = bytes([k % 256]) * 64
    return [
        Challenge(HUB_ID, bytes(32)),
        Welcome(sig),
        Refused(HubReason.TIMEOUT, ""),
        Job(job, JobKind.EXCHANGE, AGENCIES[k % 3], Role.INITIATOR),
        Spliced(),
        Cosigned(AGENCIES[k % 3], 1 + k % 5, sig),
        Hello(AGENCIES[k % 3], Purpose.CONTROL, b"", "", to_micros(NOW), bytes(32), sig),
    ][k % 7]


class _Records(logging.Handler):
    """The hub's log: a dispatcher that failed (an exception it swallowed) is a defect here."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.bad: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "dispatch failed" in record.getMessage():
            self.bad.append(record.getMessage())


_SHM = "/dev/shm"
_TMP = _SHM if os.path.isdir(_SHM) and os.access(_SHM, os.W_OK) else None


HubFuzz.TestCase.settings = fuzz_settings(steps=8, examples=150)  # ~9 s: the suite budget
TestHubFuzz = HubFuzz.TestCase


# -- the decoder on any bytes ------------------------------------------------------------------


@given(st.binary(max_size=200))
def test_read_frame_raises_only_our_errors(stream: bytes) -> None:
    async def main() -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(stream)
        reader.feed_eof()
        with contextlib.suppress(HubError, ConnectionLost):
            while True:
                await read_frame(reader)

    try:
        asyncio.run(main())
    except XlinkError as exc:  # pragma: no cover - a failure message
        raise AssertionError(f"{exc!r}") from exc


# -- what the machine above found, kept as plain cases --------------------------------------------


def test_an_earlier_checkpoint_offered_again_gets_its_cosignature_and_is_no_conflict() -> None:
    """§7: the same checkpoint offered again gets the same answer. The hub compared an offer
    with the latest checkpoint it kept only, so an earlier one offered again (seq 1 after seq
    2) was refused ``conflict`` and kept as evidence of a rewritten log that it contradicts in
    nothing."""

    def offer(seq: int) -> CheckpointOffer:
        published = _published(AUDIT[0], seq, 0, seq - 1)
        return CheckpointOffer(
            "US-DHS", published, _endorsed("CA-RCMP", published, KEYS["CA-RCMP"])
        )

    async def main(hub: Hub) -> list[object]:
        async with running_hub(hub) as port:
            link = await open_control(
                HubAddress("127.0.0.1", port, MOU.hub),
                agency="CA-RCMP",
                signing_key=KEYS["CA-RCMP"],
                clock=clock,
                rng=DeterministicRandom(1),
            )
            answers: list[object] = []
            for seq in (1, 2, 1, 2):
                await link.send(offer(seq))
                try:
                    answers.append(await link.recv())
                except HubError as exc:
                    answers.append(exc.reason)
            link.close()
            return answers

    with tempfile.TemporaryDirectory(dir=_TMP) as tmp:
        hub = Hub(MOU, HUB_KEY, Path(tmp), clock=clock, rng=DeterministicRandom(0))
        try:
            first, second, again, latest = asyncio.run(main(hub))
            assert isinstance(first, Cosigned) and isinstance(second, Cosigned)
            assert again == first and latest == second
            assert hub.schedule.conflicts("CA-RCMP") == 0
            assert len(hub.schedule.checkpoints("CA-RCMP", "US-DHS")) == 2
        finally:
            hub.close()
