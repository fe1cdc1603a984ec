"""Message rewrites a dishonest partner applies to what its own (honest) session sends."""

from __future__ import annotations

from collections.abc import Callable

from xlink.conformance.cases_session import rotate_reblinded as rotate_chunk
from xlink.protocol.codec import decode_message, encode_message
from xlink.protocol.messages import ConfirmResponse, Reblinded
from xlink.transport.stream import Connection

Rewrite = Callable[[bytes], bytes]


class Rewriting:
    """A partner's connection: every message it sends goes through ``rewrite`` first."""

    def __init__(self, conn: Connection, rewrite: Rewrite) -> None:
        self._conn, self._rewrite = conn, rewrite

    async def send(self, message: bytes) -> None:
        await self._conn.send(self._rewrite(message))

    async def receive(self) -> bytes | None:
        return await self._conn.receive()

    async def close(self, timeout: float | None = None) -> None:
        await self._conn.close(timeout)


def rotate_reblinded(message: bytes) -> bytes:
    """Every PSI answer of a chunk moved one position on (honest values, wrong positions):
    the conformance suite's rewrite, on every Reblinded chunk."""
    if message[:1] != b"\x02" or not isinstance(decode_message(message), Reblinded):
        return message  # a release transfer frame, or another PSI message
    (rotated,) = rotate_chunk(message)
    return rotated


def swap_confirmation_answers(message: bytes) -> bytes:
    """The first two answers of a ConfirmResponse swapped."""
    if message[:1] != b"\x02":  # a release transfer frame
        return message
    msg = decode_message(message)
    if isinstance(msg, ConfirmResponse) and len(msg.points) >= 128:
        p = msg.points
        return encode_message(ConfirmResponse(msg.seq, p[64:128] + p[:64] + p[128:]))
    return message
