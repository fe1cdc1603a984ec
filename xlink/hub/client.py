"""An agency's side of the hub (protocols/xlink-hub-v1.md §4–5): connect out to the hub, prove
who we are, check that it is the hub the multilateral MOU names, and, once the hub has
spliced us to the partner, run the partner's and our own mutual TLS through it — the same
pinned handshake as a direct connection (:func:`xlink.transport.handshake.tls_on_socket`)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import ssl
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from xlink.audit._encoding import to_micros
from xlink.crypto.keys import SigningKey
from xlink.crypto.rand import RandomSource
from xlink.error_codes import HubReason
from xlink.errors import HubError
from xlink.hub.wire import (
    NONCE_SIZE,
    PREAMBLE_CONTROL,
    PREAMBLE_PLAIN,
    TLS_READY,
    Challenge,
    HubMessage,
    Purpose,
    Refused,
    Spliced,
    Welcome,
    encode,
    keepalive,
    read_frame,
    recv_message,
    send_message,
    sign_hello,
    verify,
    welcome_message,
)
from xlink.policy.multilateral import HubParty
from xlink.protocol.config import Role
from xlink.protocol.framing import encode_frame
from xlink.transport.connect import _NoConnection, _open_tcp
from xlink.transport.errors import RefusalReason, refused
from xlink.transport.handshake import tls_on_socket
from xlink.transport.stream import FramedConnection
from xlink.transport.tls import bound_client_context

__all__ = ["HubAddress", "HubLink", "open_control", "open_hub", "relayed"]

HELLO_TIMEOUT = 10.0


class HubAddress:
    """Where the hub listens and who it must be: ``host``, ``port`` and the MOU's hub party."""

    __slots__ = ("host", "hub", "port")

    def __init__(self, host: str, port: int, hub: HubParty) -> None:
        self.host, self.port, self.hub = host, port, hub

    def __str__(self) -> str:
        return f"hub {self.hub.hub_id} at {self.host}:{self.port}"


class HubLink:
    """A connection to the hub that carries hub messages: an agency's control connection,
    over TLS bound to the hub's signed welcome (xlink-hub-v1 §4)."""

    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send(self, message: HubMessage) -> None:
        self.writer.write(encode_frame(encode(message)))
        await self.writer.drain()

    async def recv(self) -> HubMessage:
        """The next message; a REFUSED is raised as :class:`HubError` with its reason."""
        message = await read_frame(self.reader)
        if isinstance(message, Refused):
            raise HubError(message.reason, message.detail)
        return message

    def close(self) -> None:
        self.writer.transport.abort()


async def _handshake(
    recv: Callable[[], Awaitable[HubMessage]],
    send: Callable[[HubMessage], Awaitable[None]],
    address: HubAddress,
    *,
    agency: str,
    signing_key: SigningKey,
    purpose: Purpose,
    clock: Callable[[], datetime],
    rng: RandomSource,
    job: bytes,
    peer: str,
    binding: bytes,
) -> None:
    """CHALLENGE, HELLO, WELCOME (§4); raises :class:`HubError`."""
    challenge = await recv()
    if not isinstance(challenge, Challenge) or challenge.hub_id != address.hub.hub_id:
        raise HubError(HubReason.MALFORMED, f"{address} did not send its challenge")
    hello = sign_hello(
        signing_key,
        address.hub.hub_id,
        challenge.nonce,
        agency=agency,
        purpose=purpose,
        job=job,
        peer=peer,
        time_us=to_micros(clock()),
        nonce=rng(NONCE_SIZE),
        binding=binding,
    )
    await send(hello)
    welcome = await recv()
    message = welcome_message(address.hub.hub_id, challenge.nonce, hello, binding)
    if not isinstance(welcome, Welcome) or not verify(
        address.hub.verify_key, welcome.signature, message
    ):
        raise HubError(HubReason.BAD_SIGNATURE, f"{address} is not the hub the MOU names")


async def _tcp(address: HubAddress) -> socket.socket:
    try:
        sock = await _open_tcp(address.host, address.port)
    except _NoConnection as failure:
        raise refused(
            RefusalReason.CONNECT_FAILED,
            failure.detail,
            message=f"cannot reach {address}: {failure.detail}",
        ) from None
    keepalive(sock)
    return sock


async def open_hub(
    address: HubAddress,
    *,
    agency: str,
    signing_key: SigningKey,
    purpose: Purpose,
    clock: Callable[[], datetime],
    rng: RandomSource,
    job: bytes = b"",
    peer: str = "",
    timeout: float = HELLO_TIMEOUT,
) -> socket.socket:
    """A TCP connection to the hub on which it has welcomed ``agency`` for ``purpose``
    (``session`` or ``query``: the connection is then spliced to the partner, whose TLS with
    ours runs over it; for ``control`` see :func:`open_control`).

    Raises :class:`~xlink.errors.PeerRefused` when the hub cannot be reached and
    :class:`~xlink.errors.HubError` when it refuses us (its reason) or is not the hub the
    MOU names (``bad-signature``)."""
    if purpose is Purpose.CONTROL:
        raise ValueError("a control connection is opened with open_control")
    sock = await _tcp(address)
    try:
        async with asyncio.timeout(timeout):
            await asyncio.get_running_loop().sock_sendall(sock, PREAMBLE_PLAIN)
            await _handshake(
                lambda: recv_message(sock),
                lambda m: send_message(sock, m),
                address,
                agency=agency,
                signing_key=signing_key,
                purpose=purpose,
                clock=clock,
                rng=rng,
                job=job,
                peer=peer,
                binding=b"",
            )
    except TimeoutError:
        sock.close()
        raise HubError(HubReason.TIMEOUT, f"{address} did not answer the hello") from None
    except BaseException:
        sock.close()
        raise
    return sock


async def open_control(
    address: HubAddress,
    *,
    agency: str,
    signing_key: SigningKey,
    clock: Callable[[], datetime],
    rng: RandomSource,
    timeout: float = HELLO_TIMEOUT,
) -> HubLink:
    """``agency``'s control connection to the hub: TLS 1.3, with the hello and the hub's
    welcome both signing the SHA-256 of the certificate the hub presented, so that nobody on
    the path can sit in the middle (§4). Raises as :func:`open_hub` does."""
    sock = await _tcp(address)
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            await loop.sock_sendall(sock, PREAMBLE_CONTROL)
            ready = await loop.sock_recv(sock, len(TLS_READY))
            if ready != TLS_READY:
                raise HubError(HubReason.MALFORMED, f"{address} did not start TLS")
            reader, writer = await asyncio.open_connection(
                sock=sock, ssl=bound_client_context(), server_hostname=""
            )
    except TimeoutError:
        sock.close()
        raise HubError(HubReason.TIMEOUT, f"{address} did not answer") from None
    except (ssl.SSLError, OSError) as exc:
        sock.close()
        raise HubError(HubReason.MALFORMED, f"TLS with {address} failed") from exc
    except BaseException:
        sock.close()
        raise
    link = HubLink(reader, writer)
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:
            raise HubError(HubReason.MALFORMED, f"{address} presented no certificate")
        async with asyncio.timeout(timeout):
            await _handshake(
                link.recv,
                link.send,
                address,
                agency=agency,
                signing_key=signing_key,
                purpose=Purpose.CONTROL,
                clock=clock,
                rng=rng,
                job=b"",
                peer="",
                binding=hashlib.sha256(der).digest(),
            )
    except TimeoutError:
        link.close()
        raise HubError(HubReason.TIMEOUT, f"{address} did not answer the hello") from None
    except BaseException:
        link.close()
        raise
    return link


async def relayed(
    sock: socket.socket,
    *,
    role: Role,
    tls: dict[str, Any],
    where: str,
    wait: float,
) -> FramedConnection:
    """Wait (at most ``wait`` seconds) for the hub to splice ``sock`` to the partner, then run
    the MOU-pinned mutual TLS with the partner through it: we are the TLS server when we
    respond. ``tls`` is :meth:`Agency.tls_options`."""
    try:
        async with asyncio.timeout(wait):
            message = await recv_message(sock)
        if not isinstance(message, Spliced):
            raise HubError(HubReason.MALFORMED, "expected the hub to splice the partner")
    except TimeoutError:
        sock.close()
        raise HubError(HubReason.TIMEOUT, f"{where}: the partner did not come") from None
    except BaseException:
        with contextlib.suppress(OSError):
            sock.close()
        raise
    return await tls_on_socket(sock, server=role is Role.RESPONDER, where=where, **tls)
