"""`serve_once` and `xlink serve` survive junk (issue 11, item 7): an idle TCP connection, a
client with the wrong certificate or more idle connections than there are handshake slots do
not end the wait; each is refused, reported (and audited by `run_agency`), and the pinned
partner that comes next still gets its session. Real TLS 1.3 sockets on 127.0.0.1.

On the code before this change, `serve_once` took the first connection and raised when it
failed, so the partner behind the junk was reset (`tls-failure`) and these tests fail.
"""

from __future__ import annotations

import asyncio
import csv
import shutil
import ssl
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from xlink.agency import AgencyOutcome, RoleName, run_agency
from xlink.audit import AuditEvent, AuditLog, verify_log
from xlink.ceremony import demo_ceremony
from xlink.crypto.keyfiles import load_audit_verify_key
from xlink.crypto.rand import system_random
from xlink.crypto.tls_certs import TlsIdentity, make_tls_identity
from xlink.transport import FramedConnection, PeerRefused, RefusalReason, connect, serve_once
from xlink.transport.connect import DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_MAX_HANDSHAKES

TIMEOUT = 5.0  # a hang fails the test instead of blocking it
DATA = Path(__file__).resolve().parents[2] / "xlink" / "data"


class Ids:
    """TLS identities around the real clock (OpenSSL checks validity against it)."""

    def __init__(self) -> None:
        now = datetime.now(UTC)

        def make(agency: str, seed: bytes) -> TlsIdentity:
            return make_tls_identity(
                agency, not_before=now - timedelta(days=1), not_after=now + timedelta(days=1),
                key_seed=seed,
            )  # fmt: skip

        self.us = make("US-DHS", b"junk tests: US-DHS tls key seed")
        self.ca = make("CA-RCMP", b"junk tests: CA-RCMP tls key seed")
        self.intruder = make("CA-RCMP", b"junk tests: intruder tls key seed")


@pytest.fixture(scope="module")
def ids() -> Ids:
    return Ids()


class Serving:
    """US-DHS's `serve_once` (pinning CA-RCMP) as a task, with every refusal it reports."""

    def __init__(
        self,
        ids: Ids,
        *,
        timeout: float = TIMEOUT,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    ) -> None:
        loop = asyncio.get_running_loop()
        self.port: asyncio.Future[int] = loop.create_future()
        self.refused: list[PeerRefused] = []
        self.changed = asyncio.Event()
        self.task = asyncio.create_task(
            serve_once(
                "127.0.0.1",
                0,
                identity=ids.us,
                peer_cert_pem=ids.ca.cert_pem,
                pinned_sha256=ids.ca.fingerprint,
                on_listening=self.port.set_result,
                on_refused=self._report,
                timeout=timeout,
                handshake_timeout=handshake_timeout,
            )
        )

    def _report(self, error: PeerRefused) -> None:
        self.refused.append(error)
        self.changed.set()

    async def refusals(self, count: int) -> list[RefusalReason]:
        """Wait until ``count`` connections have been refused; their reasons."""
        async with asyncio.timeout(TIMEOUT):
            while len(self.refused) < count:
                self.changed.clear()
                await self.changed.wait()
        return [e.reason for e in self.refused]


Idle = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _idle(port: int) -> Idle:
    """A plain TCP connection that never says a word."""
    return await asyncio.open_connection("127.0.0.1", port)


async def _closed(idle: Idle) -> bool:
    """Whether the server ended this idle connection (end of stream or reset); close it."""
    reader, writer = idle
    try:
        data = await asyncio.wait_for(reader.read(1), TIMEOUT)
    except ConnectionError:
        data = b""
    writer.transport.abort()
    return data == b""


async def _partner(ids: Ids, port: int) -> FramedConnection:
    return await connect(
        "127.0.0.1",
        port,
        identity=ids.ca,
        peer_cert_pem=ids.us.cert_pem,
        pinned_sha256=ids.us.fingerprint,
        timeout=TIMEOUT,
    )


async def _ping(server: FramedConnection, client: FramedConnection) -> None:
    """The authenticated channel works both ways; then close both ends."""
    await client.send(b"ping")
    assert await asyncio.wait_for(server.receive(), TIMEOUT) == b"ping"
    await server.send(b"pong")
    assert await asyncio.wait_for(client.receive(), TIMEOUT) == b"pong"
    await asyncio.gather(client.close(), server.close())


def _wrong_cert_context(
    intruder: TlsIdentity, server_cert_pem: bytes, tmp_path: Path
) -> ssl.SSLContext:
    """A TLS 1.3 client that trusts the server and presents ``intruder``, a certificate the
    server's MOU does not pin."""
    pem = tmp_path / "intruder.pem"
    pem.touch(mode=0o600)
    pem.write_bytes(intruder.cert_pem + b"\n" + intruder.key_pem)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.load_verify_locations(cadata=server_cert_pem.decode())
    ctx.load_cert_chain(pem)
    return ctx


async def _wrong_cert_client(ctx: ssl.SSLContext, port: int) -> None:
    """Connect with the wrong certificate; TLS 1.3 lets our handshake finish, the server's
    refusal shows up as the end of the stream (or an alert)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
    try:
        assert await asyncio.wait_for(reader.read(1), TIMEOUT) == b""
    except (ssl.SSLError, ConnectionError):
        pass
    finally:
        writer.transport.abort()


def test_an_idle_connection_does_not_block_the_partner(ids: Ids) -> None:
    async def scenario() -> None:
        port: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        serving = asyncio.create_task(
            serve_once(  # the default handshake timeout: far longer than this test
                "127.0.0.1",
                0,
                identity=ids.us,
                peer_cert_pem=ids.ca.cert_pem,
                pinned_sha256=ids.ca.fingerprint,
                timeout=TIMEOUT,
                on_listening=port.set_result,
            )
        )
        idle = await _idle(await port)  # accepted first (the accept queue is FIFO)
        client = await _partner(ids, await port)
        await _ping(await asyncio.wait_for(serving, TIMEOUT), client)
        # The idle connection was reset when the partner authenticated.
        assert await _closed(idle)

    asyncio.run(scenario())


def test_a_wrong_certificate_is_refused_and_reported_then_the_partner_gets_in(
    ids: Ids, tmp_path: Path
) -> None:
    ctx = _wrong_cert_context(ids.intruder, ids.us.cert_pem, tmp_path)

    async def scenario() -> list[RefusalReason]:
        serving = Serving(ids)
        port = await serving.port
        await _wrong_cert_client(ctx, port)
        reasons = await serving.refusals(1)
        assert not serving.task.done()  # still waiting
        client = await _partner(ids, port)
        await _ping(await asyncio.wait_for(serving.task, TIMEOUT), client)
        return reasons

    assert asyncio.run(scenario()) == [RefusalReason.CERTIFICATE_INVALID]


def test_more_idle_connections_than_handshake_slots(ids: Ids) -> None:
    surplus = 2

    async def scenario() -> Counter[RefusalReason]:
        serving = Serving(ids, handshake_timeout=0.3)
        port = await serving.port
        idle = [await _idle(port) for _ in range(DEFAULT_MAX_HANDSHAKES + surplus)]
        # The surplus is closed at once; the others hold their slot until their handshake
        # times out, and the wait goes on.
        reasons = Counter(await serving.refusals(DEFAULT_MAX_HANDSHAKES + surplus))
        assert not serving.task.done()
        client = await _partner(ids, port)
        await _ping(await asyncio.wait_for(serving.task, TIMEOUT), client)
        for connection in idle:  # each one reset when its handshake timed out
            assert await _closed(connection)
        return reasons

    assert asyncio.run(scenario()) == {
        RefusalReason.TOO_MANY_HANDSHAKES: surplus,
        RefusalReason.TIMEOUT: DEFAULT_MAX_HANDSHAKES,
    }


def test_nobody_valid_within_the_timeout_is_no_peer(ids: Ids, tmp_path: Path) -> None:
    ctx = _wrong_cert_context(ids.intruder, ids.us.cert_pem, tmp_path)

    async def scenario() -> tuple[BaseException | FramedConnection, list[RefusalReason]]:
        serving = Serving(ids, timeout=1.0, handshake_timeout=0.2)
        port = await serving.port
        idle = await _idle(port)
        await _wrong_cert_client(ctx, port)
        junk = await _idle(port)
        junk[1].write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # not TLS at all
        done = await asyncio.gather(serving.task, return_exceptions=True)
        assert await _closed(idle) and await _closed(junk)
        return done[0], [e.reason for e in serving.refused]

    served, reasons = asyncio.run(scenario())
    assert isinstance(served, PeerRefused)
    assert served.reason is RefusalReason.NO_PEER
    assert served.detail == "3 refused"
    assert sorted(r.value for r in reasons) == [
        "certificate-invalid",
        "handshake-timeout",
        "tls-failure",
    ]


@pytest.mark.parametrize(
    "kwargs",
    [{"timeout": 0.0}, {"handshake_timeout": 0.0}, {"max_handshakes": 0}],
)
def test_bad_limits_are_refused(ids: Ids, kwargs: dict[str, float]) -> None:
    async def scenario() -> None:
        await serve_once(
            "127.0.0.1",
            0,
            identity=ids.us,
            peer_cert_pem=ids.ca.cert_pem,
            pinned_sha256=ids.ca.fingerprint,
            **{"timeout": TIMEOUT, **kwargs},  # type: ignore[arg-type]
        )

    with pytest.raises(ValueError):
        asyncio.run(scenario())


# -- through run_agency: every refused connection is audited -----------------------------------


def _head(source: Path, directory: Path, rows: int) -> Path:
    """The first ``rows`` records of a bundled file, under the same name (fast sessions)."""
    directory.mkdir(parents=True, exist_ok=True)
    with source.open(encoding="utf-8", newline="") as f:
        lines = [row for _, row in zip(range(rows + 1), csv.reader(f), strict=False)]
    target = directory / source.name
    with target.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(lines)
    for mapping in source.parent.glob(source.stem + ".mapping.*"):  # its column mapping
        shutil.copy(mapping, directory / mapping.name)
    return target


def test_run_agency_audits_each_refused_connection_and_still_serves(tmp_path: Path) -> None:
    passphrase = b"junk tests passphrase, not secret"
    c = demo_ceremony(
        tmp_path / "ceremony",
        passphrase=passphrase,
        now=datetime.now(UTC),
        rng=system_random,
        approval_required=False,
    )
    files = {
        "US-DHS": [_head(DATA / "us_watchlist.csv", tmp_path / "us-data", 20)],
        "CA-RCMP": [_head(DATA / "ca_watchlist.csv", tmp_path / "ca-data", 20)],
    }
    ctx = _wrong_cert_context(Ids().intruder, (c.keys["US-DHS"] / "tls.crt").read_bytes(), tmp_path)

    async def agency(
        role: RoleName,
        agency: str,
        peer: str,
        port: int,
        on_listening: Callable[[int], object] | None = None,
    ) -> AgencyOutcome:
        return await run_agency(
            role,
            agency=agency,
            files=files[agency],
            keys_dir=c.keys[agency],
            passphrase=passphrase,
            mou_path=c.mou,
            peer_bundle_path=c.bundles[peer],
            host="127.0.0.1",
            port=port,
            workdir=tmp_path / agency,
            now_clock=lambda: datetime.now(UTC),
            rng=system_random,
            timeout=TIMEOUT,
            idle_timeout=TIMEOUT,
            on_listening=on_listening,
        )

    async def scenario() -> None:
        listening: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        serving = asyncio.create_task(
            agency("serve", "US-DHS", "CA-RCMP", 0, on_listening=listening.set_result)
        )

        def ended(task: asyncio.Task[AgencyOutcome]) -> None:
            if not listening.done():
                listening.set_exception(AssertionError(f"serve ended: {task.exception()!r}"))

        serving.add_done_callback(ended)
        port = await asyncio.wait_for(listening, TIMEOUT)
        idle = await _idle(port)
        await _wrong_cert_client(ctx, port)
        assert not serving.done()
        await asyncio.wait_for(
            asyncio.gather(serving, agency("match", "CA-RCMP", "US-DHS", port)), 4 * TIMEOUT
        )
        assert await _closed(idle)

    asyncio.run(scenario())
    us_verify_key = load_audit_verify_key(c.keys["US-DHS"])  # the audit key signs the log
    assert verify_log(tmp_path / "US-DHS" / "audit.db", us_verify_key).ok
    with AuditLog.open(tmp_path / "US-DHS" / "audit.db", signing_key=None) as log:
        entries = [(e.kind, dict(e.fields)) for e in log.entries()]
    kinds = [kind for kind, _ in entries]
    refused = [f for kind, f in entries if kind is AuditEvent.PEER_REFUSED]
    # The wrong certificate, audited as it was refused, before the partner's session; the
    # idle connection was closed when the partner came, not refused.
    assert refused == [
        {"peer": "CA-RCMP", "reason": "certificate-invalid", "mou": refused[0]["mou"],
         "role": "RESPONDER"},
    ], refused  # fmt: skip
    assert kinds.index(AuditEvent.PEER_REFUSED) < kinds.index(AuditEvent.SESSION_STARTED)
    assert AuditEvent.SESSION_COMPLETED in kinds
    assert AuditEvent.SESSION_ABORTED not in kinds
