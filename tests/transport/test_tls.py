"""Mutual TLS 1.3 over real sockets on 127.0.0.1: who gets in and who is refused."""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from _transport_support import Identities
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from xlink.crypto.tls_certs import TlsIdentity, certificate_fingerprint, make_tls_identity
from xlink.transport import (
    ConnectionLost,
    FramedConnection,
    PeerRefused,
    RefusalReason,
    check_peer,
    connect,
    serve_once,
)

TIMEOUT = 5.0


@dataclass
class Outcome:
    server: FramedConnection | BaseException
    client: FramedConnection | BaseException
    client_read: object = None


async def _first_verdict(
    server_identity: TlsIdentity,
    server_trusts: TlsIdentity,
    port: asyncio.Future[int],
    server_pin: bytes | None = None,
) -> FramedConnection | PeerRefused:
    """serve_once, stopped at its first verdict: the connection it authenticated, or the
    refusal it reported for the first connection (serve_once itself would go on waiting for
    the pinned peer until its timeout: tests/adversarial/test_serve_junk.py)."""
    refused: asyncio.Future[PeerRefused] = asyncio.get_running_loop().create_future()

    def report(error: PeerRefused) -> None:
        if not refused.done():
            refused.set_result(error)

    server = asyncio.create_task(
        serve_once(
            "127.0.0.1",
            0,
            identity=server_identity,
            peer_cert_pem=server_trusts.cert_pem,
            pinned_sha256=server_pin or server_trusts.fingerprint,
            timeout=TIMEOUT,
            on_listening=port.set_result,
            on_refused=report,
        )
    )
    await asyncio.wait([server, refused], return_when=asyncio.FIRST_COMPLETED)
    if not server.done():
        server.cancel()
        await asyncio.gather(server, return_exceptions=True)
        return refused.result()
    return server.result()


async def _handshake(
    server_identity: TlsIdentity,
    server_trusts: TlsIdentity,
    client_identity: TlsIdentity,
    client_trusts: TlsIdentity,
    *,
    server_pin: bytes | None = None,
    client_pin: bytes | None = None,
) -> Outcome:
    """serve_once and connect against each other; each side's connection or error."""
    port: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    server = asyncio.create_task(_first_verdict(server_identity, server_trusts, port, server_pin))
    client = connect(
        "127.0.0.1",
        await port,
        identity=client_identity,
        peer_cert_pem=client_trusts.cert_pem,
        pinned_sha256=client_pin or client_trusts.fingerprint,
        timeout=TIMEOUT,
    )
    results = await asyncio.gather(server, client, return_exceptions=True)
    outcome = Outcome(*results)
    if isinstance(outcome.server, BaseException) and isinstance(outcome.client, FramedConnection):
        # TLS 1.3: the client's handshake is over before the server judges its certificate;
        # the refusal reaches the client on its first read.
        try:
            outcome.client_read = await asyncio.wait_for(outcome.client.receive(), TIMEOUT)
        except Exception as exc:
            outcome.client_read = exc
        await outcome.client.close()
    return outcome


async def _exchange_one(outcome: Outcome) -> bytes | None:
    """Client sends one message and reads the reply; closes both ends."""
    assert isinstance(outcome.server, FramedConnection)
    assert isinstance(outcome.client, FramedConnection)
    await outcome.client.send(b"ping")
    assert await outcome.server.receive() == b"ping"
    await outcome.server.send(b"pong")
    reply = await outcome.client.receive()
    await asyncio.gather(outcome.client.close(), outcome.server.close())
    return reply


def test_pinned_peers_connect_over_tls13(identities: Identities) -> None:
    async def scenario() -> tuple[Outcome, bytes | None, str | None]:
        outcome = await _handshake(identities.us, identities.ca, identities.ca, identities.us)
        assert isinstance(outcome.client, FramedConnection)
        assert outcome.client.ssl_object is not None
        version = outcome.client.ssl_object.version()
        return outcome, await _exchange_one(outcome), version

    _, reply, version = asyncio.run(scenario())
    assert reply == b"pong"
    assert version == "TLSv1.3"


def _us_server(
    identities: Identities,
) -> tuple[asyncio.Future[int], asyncio.Task[FramedConnection | PeerRefused]]:
    """The US side's serve_once, trusting Canada, up to its first verdict; call inside the
    running loop."""
    port: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    return port, asyncio.create_task(_first_verdict(identities.us, identities.ca, port))


def _raw_client_context(identities: Identities) -> ssl.SSLContext:
    """A plain TLS client context that trusts the US server and has no certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(cadata=identities.us.cert_pem.decode())
    return ctx


def test_client_without_certificate_is_refused(identities: Identities) -> None:
    async def scenario() -> tuple[BaseException | FramedConnection, bytes | BaseException]:
        port, server = _us_server(identities)
        # A raw TLS 1.3 client that trusts the server but has no certificate of its own.
        ctx = _raw_client_context(identities)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        reader, writer = await asyncio.open_connection("127.0.0.1", await port, ssl=ctx)
        served = await asyncio.gather(server, return_exceptions=True)
        try:
            read: bytes | BaseException = await asyncio.wait_for(reader.read(1), TIMEOUT)
        except (ssl.SSLError, ConnectionError) as exc:
            read = exc
        writer.transport.abort()
        return served[0], read

    server, read = asyncio.run(scenario())
    assert isinstance(server, PeerRefused)
    assert server.reason is RefusalReason.NO_CERTIFICATE
    # The client learns it from the server's alert (or a reset), never from application data.
    assert isinstance(read, BaseException) or read == b""


def test_client_with_unknown_certificate_is_refused(identities: Identities) -> None:
    outcome = asyncio.run(
        _handshake(identities.us, identities.ca, identities.intruder, identities.us)
    )
    assert isinstance(outcome.server, PeerRefused)
    assert outcome.server.reason is RefusalReason.CERTIFICATE_INVALID
    if isinstance(outcome.client, FramedConnection):
        # An alert or a reset (ConnectionLost) or a bare end of stream, never data.
        assert outcome.client_read is None or isinstance(outcome.client_read, ConnectionLost)


def test_certificate_that_is_trusted_but_not_pinned_is_refused(identities: Identities) -> None:
    """The TLS layer accepts the intruder (the server was told to trust it), but its
    fingerprint is not the MOU's pin: refused after the handshake, in constant time."""
    outcome = asyncio.run(
        _handshake(
            identities.us,
            identities.intruder,
            identities.intruder,
            identities.us,
            server_pin=identities.ca.fingerprint,
        )
    )
    assert isinstance(outcome.server, PeerRefused)
    assert outcome.server.reason is RefusalReason.FINGERPRINT_MISMATCH


def test_server_whose_fingerprint_is_not_pinned_is_refused_by_the_client(
    identities: Identities,
) -> None:
    outcome = asyncio.run(
        _handshake(
            identities.intruder,
            identities.ca,
            identities.ca,
            identities.intruder,
            client_pin=identities.us.fingerprint,
        )
    )
    assert isinstance(outcome.client, PeerRefused)
    assert outcome.client.reason is RefusalReason.FINGERPRINT_MISMATCH


def test_reissued_certificate_with_the_same_key_is_refused(identities: Identities) -> None:
    """Same key, same name, different certificate: whatever TLS decides, the pin refuses."""
    outcome = asyncio.run(
        _handshake(identities.us, identities.ca, identities.ca_twin, identities.us)
    )
    assert isinstance(outcome.server, PeerRefused)
    assert outcome.server.reason in {
        RefusalReason.CERTIFICATE_INVALID,
        RefusalReason.FINGERPRINT_MISMATCH,
    }


@pytest.mark.parametrize("mou_names", ["current", "expired"])
def test_expired_client_certificate_fails_the_handshake(
    identities: Identities, mou_names: str
) -> None:
    """OpenSSL checks validity: an expired certificate is refused even when the MOU pins it."""
    trusted = identities.ca if mou_names == "current" else identities.ca_expired
    outcome = asyncio.run(_handshake(identities.us, trusted, identities.ca_expired, identities.us))
    assert isinstance(outcome.server, PeerRefused)
    assert outcome.server.reason is RefusalReason.CERTIFICATE_INVALID
    if mou_names == "expired":  # OpenSSL's own verdict: the validity check, not the pin
        assert "expired" in outcome.server.detail


def test_expired_server_certificate_is_refused_by_the_client(
    identities: Identities, now: datetime
) -> None:
    expired = make_tls_identity(
        "US-DHS",
        not_before=now - timedelta(days=3),
        not_after=now - timedelta(seconds=1),
        key_seed=b"US-DHS expired seed, tests only",
    )
    outcome = asyncio.run(_handshake(expired, identities.ca, identities.ca, expired))
    assert isinstance(outcome.client, PeerRefused)
    assert outcome.client.reason is RefusalReason.CERTIFICATE_INVALID


def test_tls12_client_is_refused(identities: Identities) -> None:
    async def scenario() -> BaseException | FramedConnection:
        port, server = _us_server(identities)
        ctx = _raw_client_context(identities)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await asyncio.open_connection("127.0.0.1", await port, ssl=ctx)
        return (await asyncio.gather(server, return_exceptions=True))[0]

    server = asyncio.run(scenario())
    assert isinstance(server, PeerRefused)
    assert server.reason is RefusalReason.TLS_FAILURE


def test_nobody_connecting_times_out(identities: Identities) -> None:
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
    assert info.value.reason is RefusalReason.NO_PEER


def test_check_peer_rejects_a_short_pin(identities: Identities) -> None:
    with pytest.raises(ValueError):
        check_peer(None, b"short")  # type: ignore[arg-type]


# -- the certificates themselves ------------------------------------------------------------


def test_identity_is_a_self_signed_trust_anchor(identities: Identities, now: datetime) -> None:
    cert = x509.load_pem_x509_certificate(identities.ca.cert_pem)
    assert cert.subject == cert.issuer
    assert cert.subject.rfc4514_string() == "CN=CA-RCMP"
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and usage.value.key_cert_sign
    assert cert.not_valid_before_utc <= now <= cert.not_valid_after_utc
    der = cert.public_bytes(serialization.Encoding.DER)
    assert identities.ca.fingerprint == hashlib.sha256(der).digest()
    assert certificate_fingerprint(der) == identities.ca.fingerprint
    assert "BEGIN" not in repr(identities.ca)


def test_seeded_identity_is_reproducible() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = datetime(2027, 1, 1, tzinfo=UTC)
    seed = b"0123456789abcdef"
    a = make_tls_identity("X", not_before=start, not_after=end, key_seed=seed)
    b = make_tls_identity("X", not_before=start, not_after=end, key_seed=seed)
    c = make_tls_identity("X", not_before=start, not_after=end)
    assert a == b
    assert c.fingerprint != a.fingerprint


@pytest.mark.parametrize(
    ("agency", "start", "end", "seed"),
    [
        ("", datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC), None),
        ("X", datetime(2027, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC), None),
        ("X", datetime(2026, 1, 1), datetime(2027, 1, 1, tzinfo=UTC), None),
        ("X", datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC), b"short"),
    ],
)
def test_bad_identity_arguments_raise_value_error(
    agency: str, start: datetime, end: datetime, seed: bytes | None
) -> None:
    with pytest.raises(ValueError):
        make_tls_identity(agency, not_before=start, not_after=end, key_seed=seed)
