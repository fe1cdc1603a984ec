"""``connect`` retries a connection nobody answers until its timeout; TLS and pin refusals are
final. Real sockets on 127.0.0.1; each message names the address and says what happened."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time

import pytest
from _transport_support import Identities

from xlink.crypto.tls_certs import TlsIdentity
from xlink.transport import FramedConnection, PeerRefused, RefusalReason, connect, serve_once
from xlink.transport.errors import NOBODY_LISTENING
from xlink.transport.tls import server_context


def free_port() -> int:
    """A port that was free a moment ago: nobody listens on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _connect(identities: Identities, port: int, timeout: float) -> FramedConnection:
    """CA-RCMP connecting to US-DHS, as ``xlink match`` does."""
    return await connect(
        "127.0.0.1",
        port,
        identity=identities.ca,
        peer_cert_pem=identities.us.cert_pem,
        pinned_sha256=identities.us.fingerprint,
        timeout=timeout,
    )


def _refusal(identities: Identities, port: int, timeout: float) -> tuple[PeerRefused, float]:
    start = time.monotonic()
    with pytest.raises(PeerRefused) as info:
        asyncio.run(_connect(identities, port, timeout))
    return info.value, time.monotonic() - start


def test_nobody_listening_is_retried_until_the_timeout(identities: Identities) -> None:
    port = free_port()
    error, elapsed = _refusal(identities, port, 1.5)
    assert 1.2 <= elapsed < 4.0
    assert error.reason is NOBODY_LISTENING
    assert str(error) == f"nobody listening at 127.0.0.1:{port} (retried for 1.5 s)"
    assert "peer refused" not in str(error)


@pytest.mark.xfail(
    not hasattr(RefusalReason, "NOBODY_LISTENING"),
    reason="RefusalReason.NOBODY_LISTENING is not in xlink.error_codes yet",
    strict=True,
)
def test_nobody_listening_has_its_own_refusal_reason(identities: Identities) -> None:
    error, _ = _refusal(identities, free_port(), 0.3)
    assert error.reason.value == "nobody-listening"


def test_a_partner_that_starts_late_is_reached(identities: Identities) -> None:
    port = free_port()

    async def scenario() -> tuple[bytes | None, float]:
        async def serve_late() -> FramedConnection:
            await asyncio.sleep(0.7)
            return await serve_once(
                "127.0.0.1",
                port,
                identity=identities.us,
                peer_cert_pem=identities.ca.cert_pem,
                pinned_sha256=identities.ca.fingerprint,
                timeout=10.0,
            )

        start = time.monotonic()
        server = asyncio.create_task(serve_late())
        client = await _connect(identities, port, 10.0)
        elapsed = time.monotonic() - start
        served = await server
        await client.send(b"ping")
        received = await served.receive()
        await asyncio.gather(client.close(), served.close())
        return received, elapsed

    received, elapsed = asyncio.run(scenario())
    assert received == b"ping"
    assert 0.7 <= elapsed < 5.0


async def _tls_server(
    identity: TlsIdentity, trusts: TlsIdentity, accepted: list[int]
) -> tuple[asyncio.Server, int]:
    """A TLS server that counts the TCP connections it accepts (before any handshake)."""
    ctx = server_context(identity, trusts.cert_pem)
    handshakes: set[asyncio.Task[None]] = set()

    async def handshake(writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            await writer.start_tls(ctx)
            await asyncio.sleep(0.5)
        writer.transport.abort()

    def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        task = asyncio.create_task(handshake(writer))
        handshakes.add(task)
        task.add_done_callback(handshakes.discard)

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    return server, int(server.sockets[0].getsockname()[1])


def test_a_certificate_the_mou_does_not_pin_is_refused_at_once(identities: Identities) -> None:
    """The intruder's certificate passes TLS (the client was told to trust it) but is not the
    pinned one: refused at once, one connection, no retry for the remaining 10 s."""
    accepted: list[int] = []

    async def scenario() -> tuple[BaseException | FramedConnection, float, int]:
        server, port = await _tls_server(identities.intruder, identities.ca, accepted)
        start = time.monotonic()
        try:
            result: BaseException | FramedConnection = await connect(
                "127.0.0.1",
                port,
                identity=identities.ca,
                peer_cert_pem=identities.intruder.cert_pem,
                pinned_sha256=identities.us.fingerprint,
                timeout=10.0,
            )
        except PeerRefused as exc:
            result = exc
        elapsed = time.monotonic() - start
        await asyncio.sleep(0.3)  # time enough for a retry to show up, had there been one
        server.close()
        await server.wait_closed()
        return result, elapsed, port

    result, elapsed, port = asyncio.run(scenario())
    assert isinstance(result, PeerRefused)
    assert result.reason is RefusalReason.FINGERPRINT_MISMATCH
    assert str(result) == f"certificate at 127.0.0.1:{port} is not the one the MOU pins"
    assert elapsed < 2.0
    assert len(accepted) == 1


def test_a_tls_refusal_is_final_and_names_the_address(identities: Identities) -> None:
    """The server's certificate is not the one the client trusts: the handshake fails once."""
    accepted: list[int] = []

    async def scenario() -> tuple[BaseException | FramedConnection, float, int]:
        server, port = await _tls_server(identities.intruder, identities.ca, accepted)
        start = time.monotonic()
        try:
            result: BaseException | FramedConnection = await _connect(identities, port, 10.0)
        except PeerRefused as exc:
            result = exc
        elapsed = time.monotonic() - start
        server.close()
        await server.wait_closed()
        return result, elapsed, port

    result, elapsed, port = asyncio.run(scenario())
    assert isinstance(result, PeerRefused)
    assert result.reason is RefusalReason.CERTIFICATE_INVALID
    assert str(result).startswith(f"TLS handshake with 127.0.0.1:{port} refused: ")
    assert elapsed < 2.0 and len(accepted) == 1


def test_a_name_that_does_not_resolve_is_not_retried(identities: Identities) -> None:
    start = time.monotonic()
    with pytest.raises(PeerRefused) as info:
        asyncio.run(
            connect(
                "no-such-host.invalid",
                4433,
                identity=identities.ca,
                peer_cert_pem=identities.us.cert_pem,
                pinned_sha256=identities.us.fingerprint,
                timeout=1.0,
            )
        )
    assert info.value.reason is RefusalReason.CONNECT_FAILED
    assert "no-such-host.invalid" in str(info.value)
    assert time.monotonic() - start < 3.0  # at once, or (no resolver at all) within the timeout


def test_connect_refuses_bad_arguments(identities: Identities) -> None:
    with pytest.raises(ValueError):
        asyncio.run(_connect(identities, free_port(), 0))


def test_serve_once_says_nobody_came_within_the_timeout(identities: Identities) -> None:
    with pytest.raises(PeerRefused) as info:
        asyncio.run(
            serve_once(
                "127.0.0.1",
                0,
                identity=identities.us,
                peer_cert_pem=identities.ca.cert_pem,
                pinned_sha256=identities.ca.fingerprint,
                timeout=0.2,
            )
        )
    error = info.value
    assert error.reason is RefusalReason.NO_PEER and error.detail == "no peer connected"
    assert str(error).startswith("no partner connected within 0.2 s (listening at 127.0.0.1:")
