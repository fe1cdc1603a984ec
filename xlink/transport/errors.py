"""The transport's errors, in the one tree rooted at :class:`~xlink.errors.XlinkError`.

A peer that refuses or fails authentication never reaches a session: :class:`PeerRefused`.
A peer that goes silent or away during a session is the peer's fault as far as this side can
tell, so :class:`TransportTimeout` and :class:`ConnectionLost` are
:class:`~xlink.errors.RemoteProtocolError` with the abort codes of spec xlink-psi-v2 §8
(``TIMEOUT``, ``CONNECTION_LOST``); an auditor records them like any other abort.
"""

from __future__ import annotations

from enum import Enum

from xlink.errors import RemoteProtocolError, XlinkError
from xlink.protocol.abort import AbortCode

__all__ = ["ConnectionLost", "PeerAborted", "PeerRefused", "RefusalReason", "TransportTimeout"]


class RefusalReason(Enum):
    """Why a connection was refused before any protocol message (docs/transport.md)."""

    NO_CERTIFICATE = "no-certificate"
    """The peer presented no certificate."""
    CERTIFICATE_INVALID = "certificate-invalid"
    """The peer's certificate did not verify: expired, not yet valid, or not the trusted one."""
    FINGERPRINT_MISMATCH = "fingerprint-mismatch"
    """The handshake succeeded but the certificate is not the one the MOU pins."""
    TLS_FAILURE = "tls-failure"
    """Any other TLS failure (protocol version, cipher, alert, connection reset)."""
    TIMEOUT = "handshake-timeout"
    """No connection or no completed handshake within the time allowed."""
    NO_PEER = "no-peer"
    """``serve_once``: no peer authenticated within the time allowed (nobody connected, or
    every connection was refused)."""
    TOO_MANY_HANDSHAKES = "too-many-handshakes"
    """``serve_once``: a connection came while every handshake slot was busy; closed at once."""
    CONNECT_FAILED = "connect-failed"
    """``connect``: no TCP connection could be made (refused, unreachable, unresolvable)."""


class PeerRefused(XlinkError):
    """The peer could not be authenticated; no session was started. ``reason`` says why in a
    machine-readable way; the message names no certificate content."""

    def __init__(self, reason: RefusalReason, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"peer refused: {reason.value}" + (f" ({detail})" if detail else ""))


class TransportTimeout(RemoteProtocolError):
    """A read, a write or the session itself made no progress within its timeout."""

    def __init__(self, detail: str) -> None:
        super().__init__(AbortCode.TIMEOUT, detail)


class ConnectionLost(RemoteProtocolError):
    """The connection ended (closed, reset, TLS alert) before the session was done."""

    def __init__(self, detail: str) -> None:
        super().__init__(AbortCode.CONNECTION_LOST, detail)


class PeerAborted(RemoteProtocolError):
    """The peer sent an Abort; ``code`` is the peer's reason (spec §6.8)."""
