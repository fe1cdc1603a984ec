"""The machine-readable codes xlink's exceptions carry: :class:`AbortCode` (why a session was
aborted, spec xlink-psi-v2 §8) and :class:`RefusalReason` (why a peer was refused before any
session, docs/transport.md).

A leaf module: it imports nothing from xlink, so that :mod:`xlink.errors` (which imports it) is
a leaf too. Import the codes from where they are documented (``xlink.protocol.AbortCode``,
``xlink.transport.RefusalReason``, ``xlink.errors``); they are the same objects.
"""

from __future__ import annotations

from enum import Enum, IntEnum

__all__ = ["LOCAL_FAILURE", "AbortCode", "HubReason", "RefusalReason"]

LOCAL_FAILURE = "local failure"
"""The detail an ``INTERNAL_ERROR`` abort carries to the peer: what failed here (a store, a
file) is audited, never told."""


class AbortCode(IntEnum):
    """Why a session was aborted. See protocols/xlink-psi-v2.md §8 for each code's meaning.

    The numeric values are on the wire (in the ``Abort`` message) and in audit entries, so they
    are part of the protocol and never renumbered.
    """

    # Framing and encoding.
    MALFORMED_MESSAGE = 1
    FRAME_TOO_LARGE = 2
    TRUNCATED = 3
    UNSUPPORTED_VERSION = 4
    UNEXPECTED_MESSAGE = 5
    UNKNOWN_MESSAGE = 6
    # Handshake agreement.
    UNSUPPORTED_SUITE = 10
    MOU_MISMATCH = 11
    SCHEMA_MISMATCH = 12
    PARTY_MISMATCH = 13
    MODE_MISMATCH = 14
    BAD_SET_SIZE = 15
    ROLE_MISMATCH = 16
    # Exchange.
    INVALID_ELEMENT = 20
    IDENTITY_ELEMENT = 21
    DUPLICATE_ELEMENT = 22
    WRONG_COUNT = 23
    CHUNK_OUT_OF_ORDER = 24
    CHUNK_REPLAYED = 25
    BAD_REVEAL = 26
    CONFIRMATION_FAILED = 27
    BAD_COMMITMENT = 28
    # Session level.
    PEER_ABORTED = 40
    TIMEOUT = 41
    CONNECTION_LOST = 42
    INTERNAL_ERROR = 50
    # Release transfer (xlink-release-v1 §10): never in a PSI Abort message.
    DECISION_MISMATCH = 60
    TOO_MANY_RELEASES = 61
    BAD_RELEASE = 62
    # Real-time query (xlink-query-v1 §8): never in a PSI Abort message.
    QUOTA_EXHAUSTED = 70
    BAD_TABLE = 71
    PERIOD_ENDED = 72


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
    NOBODY_LISTENING = "nobody-listening"
    """``connect``: the partner's machine answered, but nothing listened on the port until
    the timeout (connections refused on every retry)."""


class HubReason(Enum):
    """Why the hub refused a connection or ended a job (protocols/xlink-hub-v1.md §6).

    The values are on the wire (the hub's ``REFUSED`` message), in the hub's job table and in
    audit entries, so they are part of the protocol."""

    MALFORMED = "malformed"
    """A hub message that does not decode, or one that is not allowed at this point."""
    NOT_A_PARTY = "not-a-party"
    """The hello names an agency the multilateral MOU does not."""
    BAD_SIGNATURE = "bad-signature"
    """The hello's signature does not verify under the key the MOU names for that agency, or
    the hub's welcome does not verify under the hub key the MOU names."""
    STALE = "stale"
    """The hello's time is too far from the hub's clock."""
    NO_TERMS = "no-terms"
    """The two agencies have no terms in the multilateral MOU: the hub routes nothing between
    them."""
    PEER_OFFLINE = "peer-offline"
    """The partner asked for is not connected to the hub."""
    UNKNOWN_JOB = "unknown-job"
    """A session connection names a job the hub did not give this agency."""
    DUPLICATE = "duplicate"
    """A second control connection, or a second session connection for the same job and
    agency."""
    TIMEOUT = "timeout"
    """The other side of a job did not come in time."""
    PEER_FAILED = "peer-failed"
    """The other agency of a job reported a failure or went away."""
    HUB_RESTARTED = "hub-restarted"
    """The hub stopped while the job was running; it runs again."""
    BUSY = "busy"
    """Too many real-time queries of this pair in flight at the hub: ask again shortly."""
    CONFLICT = "conflict"
    """A checkpoint contradicting one the hub already keeps for that log (same or earlier
    entry with other content, or another audit key): kept as evidence, never cosigned."""
