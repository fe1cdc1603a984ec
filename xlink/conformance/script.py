"""How the runner plays a case: an honest xlink exchange whose outgoing frames pass through
rewrite rules (:class:`Rewrite`), or a raw play on the TLS connection (:class:`RawPlay`).

The runner is the library's own :meth:`~xlink.agency.Agency.exchange`, so everything it sends
that a case does not change is what a conforming peer sends; a rule replaces, drops, repeats or
adds frames at one point of that conversation. The frames a case sends are built from the live
conversation (the runner's own honest frame at that point), never replayed from another
session, so each case reaches the agent in the state its requirement names.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import msgpack

from xlink.agency import Agency, QueryClient
from xlink.conformance.model import Observation
from xlink.error_codes import AbortCode
from xlink.errors import PeerAborted, XlinkError
from xlink.prepare import PreparedSide
from xlink.protocol.codec import decode_message, encode_message
from xlink.protocol.config import SessionConfig
from xlink.protocol.messages import Hello, MessageType
from xlink.query.messages import QUERY_VERSION, QueryType, ReleasesMessage
from xlink.query.messages import decode as query_decode
from xlink.release.transfer import RELEASE_MAGIC, FrameType, split_frame
from xlink.transport.stream import FramedConnection

__all__ = [
    "At",
    "ByRole",
    "Kind",
    "Play",
    "PlayContext",
    "QueryRewrite",
    "RawPlay",
    "Rewrite",
    "abort_received",
    "kind_of",
    "pack",
    "releases_on_wire",
    "with_top_bit",
]

Kind = MessageType | FrameType | QueryType
Mutation = Callable[[bytes, "RuleContext"], list[bytes]]


def pack(*body: object) -> bytes:
    """A PSI message (version byte 0x02, then the msgpack array ``body``) as given: the way to
    write a message the codec would refuse to encode."""
    packed: bytes = msgpack.packb(list(body), use_bin_type=True)
    return b"\x02" + packed


def kind_of(frame: bytes) -> Kind | None:
    """The message type of a PSI message or a query frame, or the frame type of a transfer
    frame (None for anything else)."""
    if frame[:1] == bytes([QUERY_VERSION]):
        try:
            return QueryType(msgpack.unpackb(frame[1:])[0])
        except (ValueError, TypeError, IndexError, KeyError, msgpack.UnpackException):
            return None
    if frame.startswith(RELEASE_MAGIC):
        try:
            return split_frame(frame)[0]
        except XlinkError:
            return None
    if frame[:1] == b"\x02":
        try:
            return MessageType(msgpack.unpackb(frame[1:])[0])
        except (ValueError, TypeError, IndexError, KeyError, msgpack.UnpackException):
            return None
    return None


def releases_on_wire(frames: Iterable[bytes]) -> int:
    """The releases among ``frames`` (what an agent sent): each RELEASE frame of a release
    transfer, and each labelled release a query holder's RELEASES message carries (one per
    fate ``SENT``, xlink-query-v1 §6.12). A RELEASES message that does not decode carries
    none an asker could open."""
    count = 0
    for frame in frames:
        kind = kind_of(frame)
        if kind is FrameType.RELEASE:
            count += 1
        elif kind is QueryType.RELEASES:
            try:
                message = query_decode(frame)
            except XlinkError:
                continue
            if isinstance(message, ReleasesMessage):
                count += len(message.frames)
    return count


class Sent(dict[tuple[type, int], list[bytes]]):
    """Frames by kind. PSI message types and transfer frame types are both small integers
    (``MessageType.ELEMENTS == FrameType.RELEASE``), so each is keyed by its enum too."""

    def of(self, kind: Kind) -> list[bytes]:
        """The frames of ``kind`` (empty when none)."""
        return self.get((type(kind), int(kind)), [])

    def __getitem__(self, kind: object) -> list[bytes]:
        assert isinstance(kind, MessageType | FrameType | QueryType)
        return super().__getitem__((type(kind), int(kind)))

    def add(self, kind: Kind, frame: bytes) -> None:
        self.setdefault((type(kind), int(kind)), []).append(frame)


@dataclass
class RuleContext:
    """What a rule may look at: the runner's honest frames sent so far, by kind (the current
    one not yet among them), the runner's Hello, and the suite's memory across cases."""

    sent: Sent = field(default_factory=Sent)
    hello: Hello | None = None
    memory: dict[str, Any] = field(default_factory=dict)

    def chunks(self) -> int:
        """How many Elements chunks the runner sends (from its Hello)."""
        assert self.hello is not None
        return -(-self.hello.padded_size // self.hello.chunk_size)


@dataclass(frozen=True)
class At:
    """Apply ``do`` to the runner's ``nth`` honest frame of ``kind`` (0: the first; -1: the
    last Elements chunk) and send what it returns instead. Fires once."""

    kind: Kind
    do: Mutation
    nth: int = 0


class _Scripted:
    """The runner's connection as its exchange sees it: outgoing frames through the rules,
    incoming ones recorded."""

    def __init__(
        self,
        conn: FramedConnection,
        rules: tuple[At, ...],
        seen: Observation,
        memory: dict[str, Any],
    ) -> None:
        self._conn = conn
        self._pending = list(rules)
        self._seen = seen
        self.context = RuleContext(memory=memory)

    async def send(self, message: bytes) -> None:
        ctx = self.context
        kind = kind_of(message)
        out = [message]
        if kind is MessageType.HELLO and ctx.hello is None:
            decoded = decode_message(message)
            assert isinstance(decoded, Hello)
            ctx.hello = decoded
        if kind is not None:
            count = len(ctx.sent.of(kind))
            for rule in self._pending:
                nth = rule.nth if rule.nth >= 0 else ctx.chunks() + rule.nth
                if type(rule.kind) is type(kind) and rule.kind == kind and nth == count:
                    self._pending.remove(rule)
                    out = rule.do(message, ctx)
                    break
            ctx.sent.add(kind, message)
        for frame in out:
            await self._conn.send(frame)

    async def receive(self) -> bytes | None:
        frame = await self._conn.receive()
        if frame is not None:
            self._seen.received.append(frame)
        return frame

    @property
    def unplayed(self) -> int:
        """The rules that never fired: the conversation ended before their frame."""
        return len(self._pending)

    async def close(self, timeout: float | None = None) -> None:
        """Read what the agent still sends until it closes (at most ``DRAIN`` seconds), then
        close: an Abort it sends as the runner finishes (after the runner's last frame) is
        what the case is about."""
        with contextlib.suppress(XlinkError, TimeoutError):
            async with asyncio.timeout(DRAIN):
                while (frame := await self._conn.receive()) is not None:
                    self._seen.received.append(frame)
        await self._conn.close(timeout)


DRAIN: Final = 1.0
"""Seconds the runner waits, at the end of a played case, for the agent to close."""


@dataclass
class PlayContext:
    """Everything a play needs: the open connection to the agent, the runner's agency and
    prepared list, the session configuration of the runner's role, the idle timeout, the
    observation to fill in and the suite's memory across cases."""

    conn: FramedConnection
    agency: Agency
    side: PreparedSide
    disjoint_side: PreparedSide
    agent_list: PreparedSide
    """The agent's own list, prepared by the runner: a reflecting peer's set has the agent's
    size, so that its mirrored messages line up with the agent's."""
    config: SessionConfig
    idle_timeout: float
    seen: Observation
    memory: dict[str, Any]
    role: str = "responder"
    """The agent's role."""


class Play(Protocol):
    async def __call__(self, ctx: PlayContext) -> None: ...


async def observe(ctx: PlayContext, run: Awaitable[Any], start: float) -> None:
    """Await the runner's side of a case (``run``: its exchange or query session) and record
    how it ended: its outcome, or the error it ended with and the agent's Abort code (raised,
    or among the frames received), and the time since ``start``."""
    seen = ctx.seen
    try:
        seen.outcome = await run
    except PeerAborted as exc:
        seen.error, seen.peer_abort = exc, exc.code
    except XlinkError as exc:
        seen.error = exc
    finally:
        seen.elapsed = time.perf_counter() - start
    seen.peer_abort = seen.peer_abort or abort_received(seen.received)


@dataclass(frozen=True)
class Rewrite:
    """Run the runner's honest exchange with the agent, through ``rules``; with the runner's
    list that shares nobody with the agent's when ``disjoint``. ``record``: keep the frames
    the runner sent under this name in the suite's memory (the first time)."""

    rules: tuple[At, ...] = ()
    disjoint: bool = False
    record: str | None = None

    async def __call__(self, ctx: PlayContext) -> None:
        scripted = _Scripted(ctx.conn, self.rules, ctx.seen, ctx.memory)
        side = ctx.disjoint_side if self.disjoint else ctx.side
        start = time.perf_counter()
        await observe(
            ctx,
            ctx.agency.exchange(scripted, side, config=ctx.config, idle_timeout=ctx.idle_timeout),
            start,
        )
        ctx.seen.unplayed = scripted.unplayed
        if self.record is not None:
            ctx.memory.setdefault(self.record, scripted.context.sent)


@dataclass(frozen=True)
class QueryRewrite:
    """Ask the agent (a query holder) about the runner's list as an honest asker, through
    ``rules``: HELLO, TABLE_REQUEST, EVALUATE, RELEASE_REQUEST, RECEIPTS, BYE."""

    rules: tuple[At, ...] = ()

    async def __call__(self, ctx: PlayContext) -> None:
        scripted = _Scripted(ctx.conn, self.rules, ctx.seen, ctx.memory)

        async def session() -> Any:
            async with QueryClient(ctx.agency, scripted, idle_timeout=ctx.idle_timeout) as client:
                return await client.ask(ctx.side)

        await observe(ctx, session(), time.perf_counter())
        ctx.seen.unplayed = scripted.unplayed


@dataclass(frozen=True)
class ByRole:
    """The play of the agent's role (the sanity cases: an exchange, or a query session)."""

    plays: dict[str, Play]

    async def __call__(self, ctx: PlayContext) -> None:
        await self.plays[ctx.role](ctx)


@dataclass(frozen=True)
class RawPlay:
    """Send bytes on the TLS connection by hand (``action``), then read what the agent sends
    until its Abort, until it closes or until ``wait`` seconds pass."""

    action: Callable[[PlayContext], Awaitable[None]]
    wait: float = 10.0

    async def __call__(self, ctx: PlayContext) -> None:
        start = time.perf_counter()
        wait = max(self.wait, 4 * ctx.seen.idle_timeout + 2)
        try:
            await self.action(ctx)
            async with asyncio.timeout(wait):
                while (frame := await ctx.conn.receive()) is not None:
                    ctx.seen.received.append(frame)
                    ctx.seen.peer_abort = ctx.seen.peer_abort or abort_received([frame])
                    if ctx.seen.peer_abort is not None:
                        break  # the session is over: close, as a peer does on an Abort
        except TimeoutError:
            ctx.seen.notes.append(f"the agent kept the connection open for {wait:g} s")
        except XlinkError as exc:
            ctx.seen.error = exc
        finally:
            ctx.seen.elapsed = time.perf_counter() - start
            await ctx.conn.close(timeout=1.0)


def abort_received(frames: list[bytes]) -> AbortCode | None:
    """The code of the first Abort (PSI) or ABORT (query) among ``frames`` (an unknown code as
    PEER_ABORTED)."""
    for frame in frames:
        kind = kind_of(frame)
        if kind is MessageType.ABORT or kind is QueryType.ABORT:
            try:
                msg = decode_message(frame) if kind is MessageType.ABORT else query_decode(frame)
            except XlinkError:
                return AbortCode.PEER_ABORTED
            return _abort_code(getattr(msg, "code", 0))
    return None


def _abort_code(value: int) -> AbortCode:
    try:
        return AbortCode(value)
    except ValueError:
        return AbortCode.PEER_ABORTED


def with_top_bit(points: bytes, index: int = 0) -> bytes:
    """``points`` (32-byte encodings) with bit 255 of point ``index`` set: not canonical in any
    of xlink's groups, and the same ristretto255 element to libsodium 1.0.18, which ignores the
    bit. The mutation of every "bit 255" case, vectors and live cases alike."""
    end = 32 * index + 31
    return points[:end] + bytes([points[end] | 0x80]) + points[end + 1 :]


def replace_fields(message: bytes, **changes: object) -> bytes:
    """The PSI message ``message`` with some fields changed, re-encoded by the codec."""
    decoded: Any = decode_message(message)
    return encode_message(dataclasses.replace(decoded, **changes))
