"""The hub's own messages (protocols/xlink-hub-v1.md): how an agency proves to the hub who it
is, how the hub proves it is the hub the MOU names, and what the hub tells an agency to do.

Every message is a frame (4-byte big-endian length, xlink-psi-v2 §6.1) holding one canonical
msgpack object (``xlink.canonical``: version byte 1, then an array whose first member is the
message type). Nothing here is ever about a record: the hub routes, it never reads. After
``SPLICED`` the bytes on a session connection are the partner's, end to end under the two
agencies' own mutual TLS, and no hub message follows.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Final, TypeVar

from xlink.audit._anchors import PublishedCheckpoint, make_checkpoint
from xlink.audit._encoding import to_micros
from xlink.canonical import Malformed, pack, unpack
from xlink.crypto.keys import SigningKey, VerifyKey
from xlink.error_codes import HubReason
from xlink.errors import ConnectionLost, DecryptionError, HubError
from xlink.identifiers import AGENCY_ID_RULE, REASON_CODE_RULE
from xlink.protocol.config import Role
from xlink.protocol.framing import FRAME_HEADER_SIZE, encode_frame

__all__ = [
    "BINDING_SIZE",
    "COSIGN_DST",
    "HELLO_DST",
    "HUB_WIRE_VERSION",
    "JOB_ID_SIZE",
    "MAX_HUB_FRAME",
    "NONCE_SIZE",
    "PREAMBLE_CONTROL",
    "PREAMBLE_PLAIN",
    "PREAMBLE_SIZE",
    "TLS_READY",
    "WELCOME_DST",
    "Challenge",
    "CheckpointOffer",
    "Cosigned",
    "Hello",
    "HubMessage",
    "Job",
    "JobKind",
    "Purpose",
    "Refused",
    "Report",
    "Spliced",
    "Welcome",
    "cosign_message",
    "decode",
    "encode",
    "hello_message",
    "keepalive",
    "read_frame",
    "recv_message",
    "send_message",
    "welcome_message",
]

HUB_WIRE_VERSION: Final = 1
PREAMBLE_CONTROL: Final = b"XLHUB1\x00C"
"""What an agency sends first on a control connection: TLS follows once the hub answers
:data:`TLS_READY` (§3)."""
PREAMBLE_PLAIN: Final = b"XLHUB1\x00P"
"""What an agency sends first on a session or query connection: the hub's CHALLENGE follows."""
PREAMBLE_SIZE: Final = 8
TLS_READY: Final = b"\x01"
BINDING_SIZE: Final = 32
MAX_HUB_FRAME: Final = 64 * 1024
"""The largest hub message; a larger frame header ends the connection before it is read."""
NONCE_SIZE: Final = 32
JOB_ID_SIZE: Final = 16
HELLO_DST: Final = b"xlink/v1/hub-hello"
WELCOME_DST: Final = b"xlink/v1/hub-welcome"
COSIGN_DST: Final = b"xlink/v1/hub-cosign"

_MAX_TEXT: Final = 256
_SIG: Final = 64


class Purpose(Enum):
    """What a connection to the hub is for (§3)."""

    CONTROL = "control"
    """The agency's standing connection: the hub sends it jobs, it reports back."""
    SESSION = "session"
    """One side of a job the hub gave: spliced to the partner's side of the same job."""
    QUERY = "query"
    """A real-time query to one partner: the hub gives the partner a query job and splices."""


class JobKind(Enum):
    EXCHANGE = "exchange"
    QUERY = "query"


@dataclass(frozen=True, slots=True)
class Challenge:
    hub_id: str
    nonce: bytes


@dataclass(frozen=True, slots=True)
class Hello:
    agency: str
    purpose: Purpose
    job: bytes  # JOB_ID_SIZE bytes for SESSION, empty otherwise
    peer: str  # the partner for QUERY, empty otherwise
    time_us: int
    nonce: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class Welcome:
    signature: bytes


@dataclass(frozen=True, slots=True)
class Refused:
    reason: HubReason
    detail: str


@dataclass(frozen=True, slots=True)
class Job:
    job: bytes
    kind: JobKind
    peer: str
    role: Role


@dataclass(frozen=True, slots=True)
class Report:
    job: bytes
    ok: bool
    reason: str


@dataclass(frozen=True, slots=True)
class Spliced:
    pass


@dataclass(frozen=True, slots=True)
class CheckpointOffer:
    """An agency's signed audit checkpoint of its log for exchanges with ``log`` (a partner's
    agency id), for the hub to keep and cosign. ``endorsement``: the agency's signature (by
    the signing key the MOU names) over its audit key, as in its ``audit-key.json``, so that
    the hub keeps only checkpoints signed by the agency's own audit key."""

    log: str
    published: PublishedCheckpoint
    endorsement: bytes


@dataclass(frozen=True, slots=True)
class Cosigned:
    log: str
    seq: int
    signature: bytes


HubMessage = (
    Challenge | Hello | Welcome | Refused | Job | Report | Spliced | CheckpointOffer | Cosigned
)

_TYPES: Final[dict[type, int]] = {
    Challenge: 1,
    Hello: 2,
    Welcome: 3,
    Refused: 4,
    Job: 5,
    Report: 6,
    Spliced: 7,
    CheckpointOffer: 8,
    Cosigned: 9,
}


def _body(message: HubMessage) -> list[object]:
    match message:
        case Challenge(hub_id, nonce):
            return [hub_id, nonce]
        case Hello(agency, purpose, job, peer, time_us, nonce, signature):
            return [agency, purpose.value, job, peer, time_us, nonce, signature]
        case Welcome(signature):
            return [signature]
        case Refused(reason, detail):
            return [reason.value, detail]
        case Job(job, kind, peer, role):
            return [job, kind.value, peer, role.name.lower()]
        case Report(job, ok, reason):
            return [job, ok, reason]
        case Spliced():
            return []
        case CheckpointOffer(log, published, endorsement):
            cp = published.checkpoint
            return [
                log,
                bytes(published.audit_key),
                cp.seq,
                cp.head_hash,
                to_micros(cp.time),
                cp.prev_seq,
                cp.interval,
                cp.signature,
                endorsement,
            ]
        case Cosigned(log, seq, signature):
            return [log, seq, signature]
    raise TypeError("not a hub message")  # pragma: no cover


def encode(message: HubMessage) -> bytes:
    """The canonical bytes of ``message`` (a frame's payload)."""
    return pack(HUB_WIRE_VERSION, [_TYPES[type(message)], *_body(message)])


def _bad(detail: str) -> HubError:
    return HubError(HubReason.MALFORMED, detail)


def _text(value: object, *, ident: bool = False, empty: bool = False) -> str:
    if not isinstance(value, str) or len(value) > _MAX_TEXT:
        raise _bad("a text member is not text")
    if empty and value == "":
        return value
    if ident and not AGENCY_ID_RULE.pattern.fullmatch(value):
        raise _bad("an agency id breaks the identifier rule")
    return value


def _bin(value: object, size: int, *, empty: bool = False) -> bytes:
    if not isinstance(value, bytes) or not (len(value) == size or (empty and value == b"")):
        raise _bad(f"a member is not {size} bytes")
    return value


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise _bad("a number is out of range")
    return value


_E = TypeVar("_E", bound=Enum)


def _enum(kind: type[_E], value: object) -> _E:
    try:
        return kind(value)
    except ValueError:
        raise _bad(f"not a {kind.__name__}") from None


def _decoded(kind: int, f: list[object]) -> HubMessage:
    shapes = {1: 2, 2: 7, 3: 1, 4: 2, 5: 4, 6: 3, 7: 0, 8: 9, 9: 3}
    if kind not in shapes:
        raise _bad("unknown message type")
    if len(f) != shapes[kind]:
        raise _bad("wrong number of members")
    if kind == 1:
        return Challenge(_text(f[0], ident=True), _bin(f[1], NONCE_SIZE))
    if kind == 2:
        purpose = _enum(Purpose, f[1])
        session, query = purpose is Purpose.SESSION, purpose is Purpose.QUERY
        job = _bin(f[2], JOB_ID_SIZE if session else 0)
        peer = _text(f[3], ident=True, empty=not query)
        if bool(peer) != query:
            raise _bad("a hello names a peer for a query, and only then")
        return Hello(
            _text(f[0], ident=True),
            purpose,
            job,
            peer,
            _count(f[4]),
            _bin(f[5], NONCE_SIZE),
            _bin(f[6], _SIG),
        )
    if kind == 3:
        return Welcome(_bin(f[0], _SIG))
    if kind == 4:
        return Refused(_enum(HubReason, f[0]), _text(f[1]))
    if kind == 5:
        if f[3] not in ("initiator", "responder"):
            raise _bad("not a role")
        role = Role.INITIATOR if f[3] == "initiator" else Role.RESPONDER
        return Job(_bin(f[0], JOB_ID_SIZE), _enum(JobKind, f[1]), _text(f[2], ident=True), role)
    if kind == 6:
        if not isinstance(f[1], bool):
            raise _bad("ok is not a boolean")
        reason = _text(f[2])
        if reason and not REASON_CODE_RULE.pattern.fullmatch(reason):
            raise _bad("a report's reason is not a reason code")
        return Report(_bin(f[0], JOB_ID_SIZE), f[1], reason)
    if kind == 7:
        return Spliced()
    if kind == 8:
        try:
            checkpoint = make_checkpoint(f[2], f[3], f[4], f[5], f[6], f[7])
            key = VerifyKey(_bin(f[1], 32))
        except (ValueError, TypeError):
            raise _bad("not a checkpoint") from None
        published = PublishedCheckpoint(key, checkpoint)
        return CheckpointOffer(_text(f[0], ident=True), published, _bin(f[8], _SIG))
    return Cosigned(_text(f[0], ident=True), _count(f[1]), _bin(f[2], _SIG))


def decode(payload: bytes) -> HubMessage:
    """The hub message in ``payload``; :class:`~xlink.errors.HubError` (``malformed``) for
    anything else, whatever the bytes."""
    if not payload or payload[0] != HUB_WIRE_VERSION:
        raise _bad("not xlink-hub-v1")
    try:
        body = unpack(
            payload[1:], max_size=MAX_HUB_FRAME, max_str=_MAX_TEXT, max_bin=64, max_array=16
        )
    except Malformed:
        raise _bad("not canonical msgpack") from None
    if not isinstance(body, list) or not body or isinstance(body[0], bool):
        raise _bad("not a hub message")
    if not isinstance(body[0], int):
        raise _bad("not a hub message")
    message = _decoded(body[0], body[1:])
    if encode(message) != payload:
        raise _bad("not the canonical encoding")
    return message


def _framed(dst: bytes, members: list[object]) -> bytes:
    return len(dst).to_bytes(4, "big") + dst + pack(HUB_WIRE_VERSION, members)


def _hello_members(hub_id: str, hub_nonce: bytes, hello: Hello, binding: bytes) -> list[object]:
    return [
        hub_id,
        hub_nonce,
        hello.agency,
        hello.purpose.value,
        hello.job,
        hello.peer,
        hello.time_us,
        hello.nonce,
        binding,
    ]


def hello_message(hub_id: str, hub_nonce: bytes, hello: Hello, binding: bytes = b"") -> bytes:
    """What an agency signs in its hello (§4): the hub's id and challenge, every member of the
    hello but the signature, and ``binding``: on a control connection the SHA-256 of the TLS
    certificate the hub presented, as the agency saw it (empty otherwise)."""
    return _framed(HELLO_DST, _hello_members(hub_id, hub_nonce, hello, binding))


def welcome_message(hub_id: str, hub_nonce: bytes, hello: Hello, binding: bytes = b"") -> bytes:
    """What the hub signs in its welcome (§4): the same members under another label, so the
    agency knows it reached the hub the MOU names, that the hub saw this very hello, and (on
    a control connection) that the TLS certificate it sees is the hub's own."""
    return _framed(WELCOME_DST, _hello_members(hub_id, hub_nonce, hello, binding))


def cosign_message(hub_id: str, agency: str, offer: CheckpointOffer) -> bytes:
    """What the hub signs when it keeps an agency's checkpoint (§7)."""
    return _framed(COSIGN_DST, [hub_id, agency, *_body(offer)])


def sign_hello(
    key: SigningKey,
    hub_id: str,
    hub_nonce: bytes,
    *,
    agency: str,
    purpose: Purpose,
    job: bytes,
    peer: str,
    time_us: int,
    nonce: bytes,
    binding: bytes = b"",
) -> Hello:
    unsigned = Hello(agency, purpose, job, peer, time_us, nonce, bytes(_SIG))
    signature = key.sign(hello_message(hub_id, hub_nonce, unsigned, binding))
    return Hello(agency, purpose, job, peer, time_us, nonce, signature)


def verify(key: VerifyKey, signature: bytes, message: bytes) -> bool:
    """True when ``signature`` verifies (the library's constant-time Ed25519 check)."""
    try:
        key.verify(signature, message)
    except DecryptionError:
        return False
    return True


# -- frames on a stream (the hub, and an agent's control connection) -------------------------


async def read_frame(
    reader: asyncio.StreamReader, seen: Callable[[bytes], object] | None = None
) -> HubMessage:
    """Read one hub message from ``reader``: a frame header announcing more than
    :data:`MAX_HUB_FRAME` ends the connection before anything more is read (``malformed``).
    ``seen(bytes)`` gets the frame as read (tests). Raises :class:`ConnectionLost` when the
    connection ends before a whole frame came."""
    try:
        header = await reader.readexactly(FRAME_HEADER_SIZE)
    except asyncio.IncompleteReadError as exc:
        where = "inside a frame" if exc.partial else "between frames"
        raise ConnectionLost(f"the connection ended {where}") from None
    size = int.from_bytes(header, "big")
    if size > MAX_HUB_FRAME:
        raise _bad("frame exceeds the limit")
    try:
        payload = await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        raise ConnectionLost("the connection ended inside a frame") from None
    if seen is not None:
        seen(header + payload)
    return decode(payload)


def keepalive(sock: object) -> None:
    """TCP keepalive on ``sock`` (a socket, or None), probing after 30 s of silence: a
    control connection whose other end vanished (a half-open connection) is noticed within
    about a minute instead of never."""
    if not isinstance(sock, socket.socket):
        return
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)


# -- frames on a raw socket (the agency's side, before its own TLS starts) -------------------


async def send_message(sock: socket.socket, message: HubMessage) -> None:
    await asyncio.get_running_loop().sock_sendall(sock, encode_frame(encode(message)))


async def _exactly(sock: socket.socket, size: int) -> bytes:
    loop = asyncio.get_running_loop()
    buf = bytearray()
    while len(buf) < size:
        chunk = await loop.sock_recv(sock, size - len(buf))
        if not chunk:
            raise ConnectionLost("the hub closed the connection")
        buf += chunk
    return bytes(buf)


async def recv_message(sock: socket.socket) -> HubMessage:
    """Read exactly one hub message from ``sock`` and not one byte more: what follows
    ``SPLICED`` is the partner's TLS, read by the TLS layer. A ``REFUSED`` is raised as
    :class:`HubError` with its reason."""
    size = int.from_bytes(await _exactly(sock, FRAME_HEADER_SIZE), "big")
    if size > MAX_HUB_FRAME:
        raise _bad("frame exceeds the limit")
    message = decode(await _exactly(sock, size))
    if isinstance(message, Refused):
        raise HubError(message.reason, message.detail)
    return message
