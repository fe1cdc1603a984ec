"""An agency's side of the hub (protocols/xlink-hub-v1.md §4–5): connect out to the hub, prove
who we are, check that it is the hub the multilateral MOU names, and, once the hub has
spliced us to the partner, run the partner's and our own mutual TLS through it — the same
pinned handshake as a direct connection (:func:`xlink.transport.driver.tls_on_socket`)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from datetime import datetime
from typing import Any

from xlink.audit._encoding import to_micros
from xlink.crypto.keys import SigningKey
from xlink.crypto.rand import RandomSource
from xlink.error_codes import HubReason
from xlink.errors import HubError
from xlink.hub.wire import (
    NONCE_SIZE,
    Challenge,
    Purpose,
    Spliced,
    Welcome,
    keepalive,
    recv_message,
    send_message,
    sign_hello,
    verify,
    welcome_message,
)
from xlink.policy.multilateral import HubParty
from xlink.protocol.config import Role
from xlink.transport.driver import _NoConnection, _open_tcp, tls_on_socket
from xlink.transport.errors import RefusalReason, refused
from xlink.transport.stream import FramedConnection

__all__ = ["HubAddress", "open_hub", "relayed"]

HELLO_TIMEOUT = 10.0


class HubAddress:
    """Where the hub listens and who it must be: ``host``, ``port`` and the MOU's hub party."""

    __slots__ = ("host", "hub", "port")

    def __init__(self, host: str, port: int, hub: HubParty) -> None:
        self.host, self.port, self.hub = host, port, hub

    def __str__(self) -> str:
        return f"hub {self.hub.hub_id} at {self.host}:{self.port}"


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
    """A TCP connection to the hub on which it has welcomed ``agency`` for ``purpose``.

    Raises :class:`~xlink.errors.PeerRefused` when the hub cannot be reached and
    :class:`~xlink.errors.HubError` when it refuses us (its reason) or is not the hub the
    MOU names (``bad-signature``)."""
    try:
        sock = await _open_tcp(address.host, address.port)
    except _NoConnection as failure:
        raise refused(
            RefusalReason.CONNECT_FAILED,
            failure.detail,
            message=f"cannot reach {address}: {failure.detail}",
        ) from None
    keepalive(sock)
    try:
        async with asyncio.timeout(timeout):
            challenge = await recv_message(sock)
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
            )
            await send_message(sock, hello)
            welcome = await recv_message(sock)
        message = welcome_message(address.hub.hub_id, challenge.nonce, hello)
        if not isinstance(welcome, Welcome) or not verify(
            address.hub.verify_key, welcome.signature, message
        ):
            raise HubError(HubReason.BAD_SIGNATURE, f"{address} is not the hub the MOU names")
    except TimeoutError:
        sock.close()
        raise HubError(HubReason.TIMEOUT, f"{address} did not answer the hello") from None
    except BaseException:
        sock.close()
        raise
    return sock


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
