"""Network transport: asyncio TCP, TLS 1.3 with mutual authentication pinned by the MOU,
length-prefixed frames, and the loop that runs a session over it (docs/transport.md).

The protocol core never imports this package; this package drives it.
"""

from __future__ import annotations

from xlink.transport.connect import connect, serve_once, serve_pinned
from xlink.transport.driver import DEFAULT_MAX_BUFFERED, SessionObserver, run_session
from xlink.transport.errors import (
    ConnectionLost,
    PeerAborted,
    PeerRefused,
    RefusalReason,
    TransportTimeout,
)
from xlink.transport.stream import Connection, FramedConnection, MemoryConnection, memory_pair
from xlink.transport.tls import check_peer, client_context, server_context

__all__ = [
    "DEFAULT_MAX_BUFFERED",
    "Connection",
    "ConnectionLost",
    "FramedConnection",
    "MemoryConnection",
    "PeerAborted",
    "PeerRefused",
    "RefusalReason",
    "SessionObserver",
    "TransportTimeout",
    "check_peer",
    "client_context",
    "connect",
    "memory_pair",
    "run_session",
    "serve_once",
    "serve_pinned",
    "server_context",
]
