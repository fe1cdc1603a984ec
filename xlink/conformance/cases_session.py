"""Cases about the session as a whole: timing (silence, slow drip, early close), sizes (a frame
above the limit), ordering (a message after an Abort) and the dishonest-partner attacks that
are not one frame changed (reflection, re-randomised reflection, permuted answers, a copied
Reveal, a release from another session)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from xlink.conformance.model import Observation
from xlink.conformance.script import (
    At,
    PlayContext,
    RawPlay,
    Rewrite,
    RuleContext,
    kind_of,
    observe,
)
from xlink.crypto.suite import DEFAULT_SUITE, BlindingKey
from xlink.errors import InputError, XlinkError
from xlink.protocol import limits as L
from xlink.protocol.codec import decode_message, encode_message
from xlink.protocol.config import Role
from xlink.protocol.framing import encode_frame
from xlink.protocol.messages import Abort, Elements, MessageType, Reblinded, Reveal
from xlink.protocol.session import PsiSession
from xlink.release.transfer import FrameType
from xlink.transport.stream import FramedConnection

__all__ = ["Mirror", "honest_hello", "rotate_reblinded"]


async def honest_hello(ctx: PlayContext) -> bytes:
    """The runner's honest Hello for this connection (as responder, after reading the
    agent's)."""
    session = PsiSession(ctx.config, ctx.side.tokens, rng=ctx.agency.rng)
    if ctx.config.role is Role.INITIATOR:
        session.initiate()
    else:
        first = await ctx.conn.receive()
        if first is None:
            raise XlinkError("the agent closed before its Hello")
        ctx.seen.received.append(first)
        session.receive_message(first)
    hello = session.next_message()
    if hello is None:
        raise InputError(
            "the agent's first message is not the Hello of the role opposite to the runner's: "
            "is --role the role the agent was started in?"
        )
    return hello


async def silence(ctx: PlayContext) -> None:
    """Send nothing at all."""


def slow_drip(ctx: PlayContext) -> Any:
    """The honest Hello, one byte at a time, a third of the agent's idle timeout apart, for at
    most five idle timeouts."""

    async def action(ctx: PlayContext) -> None:
        frame = encode_frame(await honest_hello(ctx))
        idle = ctx.seen.idle_timeout
        try:
            for i in range(min(len(frame), 15)):
                await ctx.conn.write_raw(frame[i : i + 1])
                await asyncio.sleep(idle / 3)
        except XlinkError:
            pass  # the agent closed: what is wanted

    return action(ctx)


async def early_close(ctx: PlayContext) -> None:
    """The honest Hello, then the connection closed at once."""
    await ctx.conn.send(await honest_hello(ctx))
    await ctx.conn.close(timeout=0)


async def oversize_frame(ctx: PlayContext) -> None:
    """A frame header announcing one byte more than MAX_MESSAGE_SIZE, and a few bytes."""
    await ctx.conn.write_raw((L.MAX_MESSAGE_SIZE + 1).to_bytes(4, "big") + b"\x02" * 64)


async def message_after_abort(ctx: PlayContext) -> None:
    """The honest Hello, an Abort (TIMEOUT, 41), then an Elements chunk."""
    await ctx.conn.send(await honest_hello(ctx))
    await ctx.conn.send(encode_message(Abort(41, "conformance: aborting")))
    await ctx.conn.send(encode_message(Elements(0, (9).to_bytes(32, "little"))))


class _Mirroring:
    """The runner's connection playing back what the agent sent: the bytes of the runner's
    messages of a type in ``kinds`` are replaced by the agent's of the same type, in the same
    positions (re-chunked to the runner's chunks), Elements through ``transform``; a message
    whose bytes have not arrived yet is held until they have, and sent before the runner's
    session sees the agent's message that brought them (so what it sends next follows)."""

    def __init__(
        self,
        conn: FramedConnection,
        kinds: tuple[type, ...],
        transform: Callable[[bytes], bytes],
        seen: Observation,
    ) -> None:
        self._conn, self._kinds, self._transform, self._seen = conn, kinds, transform, seen
        self._theirs: dict[type, bytearray] = {k: bytearray() for k in kinds}
        self._used: dict[type, int] = dict.fromkeys(kinds, 0)
        self._held: list[Any] = []
        self._lock = asyncio.Lock()

    def _field(self, msg: Any) -> bytes:
        return bytes(msg.elements) if isinstance(msg, Elements | Reblinded) else b""

    async def _pump(self) -> None:
        """Send every held message whose bytes have arrived (in order within its kind)."""
        waiting: set[type] = set()
        for head in list(self._held):
            kind = type(head)
            if kind in waiting:
                continue
            if isinstance(head, Reveal):
                if not self._theirs[Reveal]:
                    waiting.add(kind)
                    continue
                out = bytes(self._theirs[Reveal])
            else:
                need, start = len(self._field(head)), self._used[kind]
                if len(self._theirs[kind]) < start + need:
                    waiting.add(kind)
                    continue
                data = bytes(self._theirs[kind][start : start + need])
                self._used[kind] = start + need
                if isinstance(head, Elements):
                    data = self._transform(data)
                out = encode_message(dataclasses.replace(head, elements=data))
            self._held.remove(head)
            await self._conn.send(out)

    async def send(self, message: bytes) -> None:
        kind = kind_of(message)
        async with self._lock:
            if isinstance(kind, MessageType) and kind is not MessageType.ABORT:
                msg = decode_message(message)
                if isinstance(msg, self._kinds):
                    self._held.append(msg)
                    await self._pump()
                    return
            await self._conn.send(message)

    async def receive(self) -> bytes | None:
        frame = await self._conn.receive()
        if frame is not None:
            self._seen.received.append(frame)
            kind = kind_of(frame)
            if isinstance(kind, MessageType) and kind.name in ("ELEMENTS", "REBLINDED", "REVEAL"):
                msg = decode_message(frame)
                if isinstance(msg, self._kinds):
                    if isinstance(msg, Reveal):
                        if not self._theirs[Reveal]:
                            self._theirs[Reveal] += frame
                    else:
                        self._theirs[type(msg)] += self._field(msg)
                    async with self._lock:
                        await self._pump()
        return frame

    async def close(self, timeout: float | None = None) -> None:
        await self._conn.close(timeout)


@dataclass(frozen=True)
class Mirror:
    """Run the runner's exchange with its messages of ``kinds`` replaced by the agent's own
    (reflection), through ``transform``. With ``agent_list``, the runner's set is the agent's
    own list: the same size, so every reflected chunk lines up, and a peer that answered
    honestly instead of reflecting would match every record (the case would fail)."""

    kinds: tuple[type, ...]
    transform: Callable[[bytes], bytes] = lambda b: b
    agent_list: bool = False

    async def __call__(self, ctx: PlayContext) -> None:
        conn = _Mirroring(ctx.conn, self.kinds, self.transform, ctx.seen)
        side = ctx.agent_list if self.agent_list else ctx.side
        exchange = ctx.agency.exchange(conn, side, config=ctx.config, idle_timeout=ctx.idle_timeout)
        await observe(ctx, exchange, time.perf_counter())


_SCALAR: Final = BlindingKey(b"\x05" * 32)


def rerandomise(elements: bytes) -> bytes:
    """Elements multiplied by a scalar the runner knows (a re-randomised reflection)."""
    return DEFAULT_SUITE.blind(_SCALAR, elements)


def rotate_reblinded(message: bytes, _c: RuleContext | None = None) -> list[bytes]:
    """A Reblinded chunk's answers moved one position on (honest values, wrong positions)."""
    msg = decode_message(message)
    assert isinstance(msg, Reblinded)
    size = L.REBLINDED_SIZE
    values = [msg.elements[i : i + size] for i in range(0, len(msg.elements), size)]
    return [encode_message(Reblinded(msg.seq, b"".join(values[1:] + values[:1])))]


def old_release(_m: bytes, c: RuleContext) -> list[bytes]:
    """The runner's first release of the first sanity case (another session) in place of
    this session's first."""
    return [c.memory["sanity"][FrameType.RELEASE][0]]


SESSION_PLAYS: Final = {
    "silence": RawPlay(silence),
    "prompt_abort": RawPlay(silence),
    "slow_drip": RawPlay(slow_drip),
    "early_close": RawPlay(early_close, wait=5.0),
    "oversize_frame": RawPlay(oversize_frame),
    "message_after_abort": RawPlay(message_after_abort),
    "reflection": Mirror((Elements, Reblinded), agent_list=True),
    "rerandomised_reflection": Mirror((Elements, Reblinded), rerandomise, agent_list=True),
    "permuted_answers": Rewrite((At(MessageType.REBLINDED, rotate_reblinded),)),
    "copied_reveal": Mirror((Reveal,)),
    "unsolicited_release": Rewrite((At(FrameType.RELEASE, old_release),)),
}
