"""Opening the pinned mutual-TLS connection of a session (docs/transport.md).

:func:`connect` dials the partner (retrying while nothing listens yet), :func:`serve_once`
waits for the one pinned partner of an exchange, :func:`serve_pinned` serves the pinned
partner's connections side by side (the query holder). Each checks the MOU's certificate pin
before any protocol byte is exchanged; :func:`~xlink.transport.driver.run_session` then runs
the session over the connection.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Awaitable, Callable
from typing import Final

from xlink.crypto.tls_certs import FINGERPRINT_SIZE, TlsIdentity
from xlink.protocol.limits import MAX_MESSAGE_SIZE
from xlink.transport.errors import (
    NOBODY_LISTENING,
    PeerRefused,
    RefusalReason,
    refused,
)
from xlink.transport.handshake import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    _client_tls,
    _reset,
    _seconds,
    _server_handshake,
)
from xlink.transport.stream import FramedConnection
from xlink.transport.tls import client_context, server_context

__all__ = [
    "CONNECT_RETRY_FIRST",
    "CONNECT_RETRY_MAX",
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "DEFAULT_MAX_HANDSHAKES",
    "connect",
    "serve_once",
    "serve_pinned",
]

CONNECT_RETRY_FIRST: Final = 0.25
"""Seconds :func:`connect` waits before its second attempt; each wait then doubles..."""

CONNECT_RETRY_MAX: Final = 2.0
"""... up to this many seconds between two attempts."""

# Connection failures worth another attempt: the partner's machine or network may be coming
# up (its `xlink serve` not started yet, a route not there yet).
_RETRY_ERRNOS: Final = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ENETUNREACH,
        errno.EHOSTUNREACH,
        errno.ENETDOWN,
        errno.EHOSTDOWN,
        errno.ETIMEDOUT,
        errno.ECONNABORTED,
        errno.ECONNRESET,
    }
)


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _NoConnection(Exception):
    """One attempt to open the TCP connection failed: ``refused`` (someone answered and
    nothing listens), or the address was unreachable or did not resolve (``resolving``);
    ``final`` when retrying cannot help."""

    def __init__(
        self, detail: str, *, refused: bool = False, final: bool = False, resolving: bool = False
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.refused = refused
        self.final = final
        self.resolving = resolving


async def _open_tcp(host: str, port: int) -> socket.socket:
    """A connected TCP socket to ``host:port`` (each resolved address in turn), or
    :class:`_NoConnection`."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        temporary = exc.errno == socket.EAI_AGAIN
        detail = exc.strerror or "name not found"
        raise _NoConnection(detail, final=not temporary, resolving=True) from None
    was_refused, retry, detail = False, False, "no address"
    for family, type_, proto, _, sockaddr in infos:
        sock = socket.socket(family, type_, proto)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, sockaddr)
        except OSError as exc:
            sock.close()
            was_refused = was_refused or isinstance(exc, ConnectionRefusedError)
            retry = retry or exc.errno in _RETRY_ERRNOS
            detail = exc.strerror or type(exc).__name__
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    raise _NoConnection(detail, refused=was_refused, final=not (was_refused or retry))


async def connect(
    host: str,
    port: int,
    *,
    identity: TlsIdentity,
    peer_cert_pem: bytes,
    pinned_sha256: bytes,
    timeout: float,
    max_frame: int = MAX_MESSAGE_SIZE,
    write_timeout: float = 30.0,
    retry_first: float = CONNECT_RETRY_FIRST,
    retry_max: float = CONNECT_RETRY_MAX,
) -> FramedConnection:
    """Open a mutual-TLS 1.3 connection to the peer and check its certificate pin.

    A connection that cannot be made (refused: nothing listens on the port yet; network or
    host unreachable; a temporary name-resolution failure) is tried again after
    ``retry_first`` seconds, then twice as long each time up to ``retry_max``, until
    ``timeout`` seconds have passed since the call: the partner may start ``xlink serve``
    after us. Once a TCP connection exists, the TLS handshake and the pin check are tried
    once: their failures are final. The handshake gets what is left of ``timeout``, and at
    least ``min(timeout, DEFAULT_HANDSHAKE_TIMEOUT)`` seconds. Times are the event loop's.

    Raises :class:`PeerRefused`, whose message names ``HOST:PORT``: ``NOBODY_LISTENING``
    ("nobody listening at HOST:PORT (retried for 30 s)"), ``CONNECT_FAILED`` (still
    unreachable at the timeout, or a name that does not resolve), ``TIMEOUT`` (no answer at
    all, or a handshake that did not finish), ``TLS_FAILURE`` / ``CERTIFICATE_INVALID`` /
    ``NO_CERTIFICATE`` ("TLS handshake with HOST:PORT refused: ..."), ``FINGERPRINT_MISMATCH``
    ("certificate at HOST:PORT is not the one the MOU pins"). The server's verdict on *our*
    certificate arrives after the TLS 1.3 handshake: a refusal surfaces on the first read as
    :class:`ConnectionLost`. Raises ``ValueError`` for a non-positive ``timeout`` or a pin
    that is not 32 bytes.
    """
    if timeout <= 0:
        raise ValueError("timeout must be > 0")
    if len(pinned_sha256) != FINGERPRINT_SIZE:
        raise ValueError("pinned_sha256 must be 32 bytes")
    ctx = client_context(identity, peer_cert_pem)
    where = _address(host, port)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    delay = retry_first
    last: _NoConnection | None = None
    while True:
        try:
            async with asyncio.timeout_at(deadline):
                sock = await _open_tcp(host, port)
            break
        except TimeoutError:
            raise _gave_up(last, where, timeout) from None
        except _NoConnection as failure:
            last = failure
            if failure.final:
                what = f"resolve {host}" if failure.resolving else f"connect to {where}"
                raise refused(
                    RefusalReason.CONNECT_FAILED,
                    failure.detail,
                    message=f"cannot {what}: {failure.detail}",
                ) from None
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise _gave_up(last, where, timeout) from None
            await asyncio.sleep(min(delay, remaining))
            delay = min(2 * delay, retry_max)
    handshake_deadline = max(deadline, loop.time() + min(timeout, DEFAULT_HANDSHAKE_TIMEOUT))
    return await _client_tls(
        sock, ctx, where, host, pinned_sha256, handshake_deadline, timeout, max_frame, write_timeout
    )


def _gave_up(last: _NoConnection | None, where: str, timeout: float) -> PeerRefused:
    """The refusal of a :func:`connect` whose ``timeout`` passed before any TCP connection."""
    if last is None:  # the first attempt (or the name lookup) never answered
        return refused(
            RefusalReason.TIMEOUT,
            "connect",
            message=f"no answer from {where} within {_seconds(timeout)}",
        )
    if last.refused:
        return refused(
            NOBODY_LISTENING,
            "connection refused",
            message=f"nobody listening at {where} (retried for {_seconds(timeout)})",
        )
    return refused(
        RefusalReason.CONNECT_FAILED,
        last.detail,
        message=f"cannot reach {where}: {last.detail} (retried for {_seconds(timeout)})",
    )


DEFAULT_MAX_HANDSHAKES: Final = 8
"""Handshakes :func:`serve_once` runs at once; a connection beyond them is closed at once."""


async def serve_once(
    host: str,
    port: int,
    *,
    identity: TlsIdentity,
    peer_cert_pem: bytes,
    pinned_sha256: bytes,
    timeout: float,
    on_listening: Callable[[int], object] | None = None,
    on_refused: Callable[[PeerRefused], object] | None = None,
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    max_handshakes: int = DEFAULT_MAX_HANDSHAKES,
    max_frame: int = MAX_MESSAGE_SIZE,
    write_timeout: float = 30.0,
) -> FramedConnection:
    """Listen on ``host:port`` until the pinned peer authenticates, then stop listening.

    ``on_listening(port)`` is called once the socket is bound (``port=0`` picks a free one).
    Each accepted connection must finish the TLS 1.3 handshake (mutual authentication) and the
    pin check within ``handshake_timeout`` (and within the overall ``timeout``); at most
    ``max_handshakes`` run at once. A connection that fails is closed, reported to
    ``on_refused`` as a :class:`PeerRefused` — ``TIMEOUT`` (handshake not done in time),
    ``NO_CERTIFICATE``, ``CERTIFICATE_INVALID``, ``FINGERPRINT_MISMATCH``, ``TLS_FAILURE``, or
    ``TOO_MANY_HANDSHAKES`` (closed at once: every slot busy) — and the wait goes on: an idle
    connection, junk bytes or a wrong certificate cannot end it. The first connection that
    authenticates is returned; handshakes still running then are closed, unreported.

    Raises :class:`PeerRefused` (``NO_PEER``) when ``timeout`` passes with no authenticated
    peer; ``ValueError`` for a non-positive timeout, ``max_handshakes < 1`` or a
    ``pinned_sha256`` that is not 32 bytes; whatever ``on_refused`` raises (the wait ends).
    """
    if timeout <= 0 or handshake_timeout <= 0:
        raise ValueError("timeouts must be > 0")
    if max_handshakes < 1:
        raise ValueError("max_handshakes must be >= 1")
    if len(pinned_sha256) != FINGERPRINT_SIZE:
        raise ValueError("pinned_sha256 must be 32 bytes")
    ctx = server_context(identity, peer_cert_pem)
    authenticated: asyncio.Future[FramedConnection] = asyncio.get_running_loop().create_future()
    handshakes: set[asyncio.Task[None]] = set()
    refused_count = 0

    def refuse(error: PeerRefused) -> None:
        nonlocal refused_count
        refused_count += 1
        if on_refused is None:
            return
        try:
            on_refused(error)
        except Exception as exc:  # e.g. the audit log failed: that ends the wait
            if not authenticated.done():
                authenticated.set_exception(exc)

    async def handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            conn = await _server_handshake(
                reader, writer, ctx, pinned_sha256, handshake_timeout, max_frame, write_timeout
            )
        except PeerRefused as exc:
            _reset(writer)
            refuse(exc)
            return
        except asyncio.CancelledError:  # serve_once is returning
            _reset(writer)
            raise
        except Exception as exc:  # not the peer's doing: a bug ends the wait with it
            _reset(writer)
            if not authenticated.done():
                authenticated.set_exception(exc)
            return
        if authenticated.done():  # pragma: no cover - a second authenticated connection
            _reset(writer)
        else:
            authenticated.set_result(conn)

    def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if authenticated.done():
            writer.transport.abort()
        elif len(handshakes) >= max_handshakes:
            writer.transport.abort()
            refuse(PeerRefused(RefusalReason.TOO_MANY_HANDSHAKES, f"{max_handshakes} running"))
        else:
            task = asyncio.create_task(handshake(reader, writer))
            handshakes.add(task)
            task.add_done_callback(handshakes.discard)

    # TLS is started by hand after the accept, so that a failed handshake reaches us as an
    # exception instead of being logged and dropped by the server.
    server = await asyncio.start_server(on_connect, host, port, backlog=max_handshakes)
    bound = server.sockets[0].getsockname()[1]
    try:
        if on_listening is not None:
            on_listening(bound)
        await asyncio.wait([authenticated], timeout=timeout)
    except BaseException:
        if authenticated.done() and not authenticated.exception():
            await authenticated.result().close(timeout=0)
        raise
    finally:
        server.close()  # one peer, one session
        running = list(handshakes)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        if not authenticated.done():
            authenticated.cancel()
    if authenticated.cancelled():
        where = _address(host, bound)
        if refused_count:
            detail = f"{refused_count} refused"
            message = (
                f"no partner authenticated at {where} within {_seconds(timeout)} "
                f"({refused_count} connection(s) refused: see the audit log)"
            )
        else:
            detail = "no peer connected"
            message = f"no partner connected within {_seconds(timeout)} (listening at {where})"
        raise refused(RefusalReason.NO_PEER, detail, message=message)
    return authenticated.result()  # or what on_refused raised


async def serve_pinned(
    host: str,
    port: int,
    *,
    identity: TlsIdentity,
    peer_cert_pem: bytes,
    pinned_sha256: bytes,
    on_connection: Callable[[FramedConnection], Awaitable[object]],
    on_listening: Callable[[int], object] | None = None,
    on_refused: Callable[[PeerRefused], object] | None = None,
    max_connections: int | None = None,
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    max_handshakes: int = DEFAULT_MAX_HANDSHAKES,
    max_frame: int = MAX_MESSAGE_SIZE,
    write_timeout: float = 30.0,
) -> int:
    """Listen on ``host:port`` and run ``on_connection(conn)`` for every connection of the
    pinned peer, side by side, until cancelled or until ``max_connections`` have been served
    (None: for ever). The query holder's server (``xlink query serve``).

    Each accepted connection gets the checks of :func:`serve_once` (TLS 1.3, mutual
    authentication, the pin, ``handshake_timeout``, at most ``max_handshakes`` at once); a
    refused one goes to ``on_refused`` and the serving goes on. ``on_connection`` owns the
    connection (it closes it); an exception it raises is its own business and does not stop
    the server. Returns the number of connections served."""
    if handshake_timeout <= 0 or max_handshakes < 1:
        raise ValueError("handshake_timeout must be > 0 and max_handshakes >= 1")
    if len(pinned_sha256) != FINGERPRINT_SIZE:
        raise ValueError("pinned_sha256 must be 32 bytes")
    ctx = server_context(identity, peer_cert_pem)
    handshakes: set[asyncio.Task[None]] = set()
    running: set[asyncio.Task[None]] = set()
    served = 0
    finished = asyncio.Event()

    async def serve_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        try:
            conn = await _server_handshake(
                reader, writer, ctx, pinned_sha256, handshake_timeout, max_frame, write_timeout
            )
        except PeerRefused as exc:
            _reset(writer)
            if on_refused is not None:
                on_refused(exc)
            return
        if max_connections is not None and served >= max_connections:
            _reset(writer)
            return
        served += 1
        try:
            await on_connection(conn)
        except Exception:  # noqa: S110 - the handler audits its own failures
            pass
        finally:
            await conn.close(timeout=0)
            if max_connections is not None and served >= max_connections:
                finished.set()

    def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(handshakes) >= max_handshakes:
            writer.transport.abort()
            if on_refused is not None:
                on_refused(
                    PeerRefused(RefusalReason.TOO_MANY_HANDSHAKES, f"{max_handshakes} running")
                )
            return
        task = asyncio.create_task(serve_one(reader, writer))
        handshakes.add(task)
        task.add_done_callback(handshakes.discard)

    server = await asyncio.start_server(on_connect, host, port, backlog=max_handshakes)
    try:
        if on_listening is not None:
            on_listening(server.sockets[0].getsockname()[1])
        await finished.wait()
    finally:
        server.close()
        tasks = list(handshakes | running)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return served
