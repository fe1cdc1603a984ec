"""Mutual TLS 1.3 on a TCP connection that is already there, pinned by the MOU
(docs/transport.md): the client's and the server's handshake, the pin check, and how a failure
is refused. :mod:`xlink.transport.connect` opens or accepts the connection and comes here;
:func:`tls_on_socket` does the same for a connection something else made (the hub's relay,
docs/hub.md)."""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Final

from xlink.crypto.tls_certs import FINGERPRINT_SIZE, TlsIdentity
from xlink.protocol.limits import MAX_MESSAGE_SIZE
from xlink.transport.errors import PeerRefused, RefusalReason, refused
from xlink.transport.stream import FramedConnection
from xlink.transport.tls import check_peer, client_context, refusal_from_ssl_error, server_context

__all__ = ["DEFAULT_HANDSHAKE_TIMEOUT", "tls_on_socket"]

DEFAULT_HANDSHAKE_TIMEOUT: Final = 10.0
"""Seconds :func:`serve_once` gives each accepted connection to finish its TLS handshake."""


def _seconds(value: float) -> str:
    return f"{value:g} s"


async def _client_tls(
    sock: socket.socket,
    ctx: ssl.SSLContext,
    where: str,
    server_hostname: str | None,
    pinned_sha256: bytes,
    handshake_deadline: float,
    timeout: float,
    max_frame: int,
    write_timeout: float,
) -> FramedConnection:
    """The client's TLS 1.3 handshake on the connected ``sock`` (which it owns from here) and
    the pin check, refused as :func:`connect` documents."""
    try:
        reader, writer = await asyncio.open_connection(sock=sock)
    except BaseException:
        sock.close()
        raise
    try:
        async with asyncio.timeout_at(handshake_deadline):
            await writer.start_tls(ctx, server_hostname=server_hostname)
    except TimeoutError:
        _reset(writer)
        raise refused(
            RefusalReason.TIMEOUT,
            "handshake",
            message=f"TLS handshake with {where} did not finish within {_seconds(timeout)}",
        ) from None
    except (ssl.SSLError, OSError) as exc:  # the TCP connection existed: a TLS failure
        _reset(writer)
        raise _tls_refused(refusal_from_ssl_error(exc), where) from None
    except BaseException:
        _reset(writer)
        raise
    try:
        return _pinned(reader, writer, pinned_sha256, max_frame, write_timeout)
    except PeerRefused as exc:
        raise _tls_refused(exc, where) from None


async def tls_on_socket(
    sock: socket.socket,
    *,
    server: bool,
    identity: TlsIdentity,
    peer_cert_pem: bytes,
    pinned_sha256: bytes,
    where: str,
    timeout: float | None = None,
    max_frame: int = MAX_MESSAGE_SIZE,
    write_timeout: float = 30.0,
) -> FramedConnection:
    """Mutual TLS 1.3 pinned by the MOU on a TCP socket that is already connected to the peer
    through something else (the hub's relay, docs/hub.md): the same contexts, handshake and
    pin check as :func:`connect` (``server=False``) and :func:`serve_once` (``server=True``),
    within ``timeout`` seconds (None: ``DEFAULT_HANDSHAKE_TIMEOUT``). ``where`` names the peer
    in messages. Takes ownership of ``sock``. Raises :class:`PeerRefused` as those do."""
    timeout = DEFAULT_HANDSHAKE_TIMEOUT if timeout is None else timeout
    if len(pinned_sha256) != FINGERPRINT_SIZE:
        sock.close()
        raise ValueError("pinned_sha256 must be 32 bytes")
    loop = asyncio.get_running_loop()
    if not server:
        ctx = client_context(identity, peer_cert_pem)
        deadline = loop.time() + timeout
        return await _client_tls(
            sock, ctx, where, None, pinned_sha256, deadline, timeout, max_frame, write_timeout
        )
    ctx = server_context(identity, peer_cert_pem)
    writers: list[asyncio.StreamWriter] = []
    reader = asyncio.StreamReader(limit=max(max_frame, 1 << 16))
    # A connected callback makes the protocol a server's: start_tls then takes the server side.
    protocol = asyncio.StreamReaderProtocol(reader, lambda _r, w: writers.append(w))
    try:
        await loop.connect_accepted_socket(lambda: protocol, sock)
    except BaseException:
        sock.close()
        raise
    (writer,) = writers
    try:
        return await _server_handshake(
            reader, writer, ctx, pinned_sha256, timeout, max_frame, write_timeout
        )
    except PeerRefused as exc:
        _reset(writer)
        raise _tls_refused(exc, where) from None
    except BaseException:
        _reset(writer)
        raise


def _tls_refused(error: PeerRefused, where: str) -> PeerRefused:
    """``error`` (a failed handshake or pin check by :func:`connect`) with its message saying
    what happened at ``where``."""
    reason, detail = error.reason, error.detail
    if reason is RefusalReason.FINGERPRINT_MISMATCH:
        message = f"certificate at {where} is not the one the MOU pins"
    elif reason is RefusalReason.NO_CERTIFICATE:
        message = f"TLS handshake with {where} refused: no certificate"
    elif reason is RefusalReason.CERTIFICATE_INVALID:
        message = f"TLS handshake with {where} refused: its certificate did not verify"
        message += f" ({detail})" if detail else ""
    else:
        message = f"TLS handshake with {where} refused: {detail or reason.value}"
    return refused(reason, detail, message=message)


async def _server_handshake(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    ctx: ssl.SSLContext,
    pinned_sha256: bytes,
    handshake_timeout: float,
    max_frame: int,
    write_timeout: float,
) -> FramedConnection:
    """The server's TLS 1.3 handshake on an accepted connection and the pin check; raises
    :class:`PeerRefused` with the reason."""
    try:
        async with asyncio.timeout(handshake_timeout):
            await writer.start_tls(ctx)
    except TimeoutError:
        raise PeerRefused(RefusalReason.TIMEOUT, "handshake") from None
    except (ssl.SSLError, OSError) as exc:
        raise refusal_from_ssl_error(exc) from None
    if writer.transport is None or writer.transport.is_closing():
        raise PeerRefused(RefusalReason.TLS_FAILURE, "closed during the handshake")
    return _pinned(reader, writer, pinned_sha256, max_frame, write_timeout)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Reset the connection (a refused or surplus peer gets no close_notify)."""
    transport = writer.transport
    if transport is not None:
        transport.abort()


def _pinned(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    pinned_sha256: bytes,
    max_frame: int,
    write_timeout: float,
) -> FramedConnection:
    ssl_object = writer.get_extra_info("ssl_object")
    try:
        if not isinstance(ssl_object, ssl.SSLObject):
            raise PeerRefused(RefusalReason.TLS_FAILURE, "not a TLS connection")
        check_peer(ssl_object, pinned_sha256)
    except (PeerRefused, ValueError):
        writer.transport.abort()
        raise
    return FramedConnection(reader, writer, max_frame=max_frame, write_timeout=write_timeout)
