"""The transport's errors, in the one tree rooted at :class:`~xlink.errors.XlinkError` (defined
in :mod:`xlink.errors`, re-exported here).

A peer that refuses or fails authentication never reaches a session: :class:`PeerRefused`.
A peer that goes silent or away during a session is the peer's fault as far as this side can
tell, so :class:`TransportTimeout` and :class:`ConnectionLost` are
:class:`~xlink.errors.RemoteProtocolError` with the abort codes of spec xlink-psi-v2 §8
(``TIMEOUT``, ``CONNECTION_LOST``); an auditor records them like any other abort.
"""

from __future__ import annotations

from xlink.error_codes import RefusalReason
from xlink.errors import ConnectionLost, PeerAborted, PeerRefused, TransportTimeout

__all__ = [
    "NOBODY_LISTENING",
    "ConnectionLost",
    "PeerAborted",
    "PeerRefused",
    "RefusalReason",
    "TransportTimeout",
    "refused",
]


def refused(reason: RefusalReason, detail: str = "", *, message: str) -> PeerRefused:
    """A :class:`PeerRefused` for ``reason`` and ``detail`` whose message is ``message``: what
    happened, said for people and naming the address (``nobody listening at HOST:PORT
    (retried for 30 s)``), never certificate content. ``reason`` stays the audit code."""
    error = PeerRefused(reason, detail)
    error.args = (message,)
    return error


NOBODY_LISTENING: RefusalReason = RefusalReason.NOBODY_LISTENING
"""The reason :func:`~xlink.transport.connect.connect` gives when the partner's machine kept
refusing the connection (nothing listening on the port) until the timeout."""
