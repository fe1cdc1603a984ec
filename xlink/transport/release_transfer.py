"""Release transfer v0: sealed releases and their receipts, both ways, on the connection that
just carried a PSI session (docs/transport.md, "Release transfer v0").

Every frame starts with :data:`RELEASE_MAGIC`; a PSI message starts with its protocol version
byte (0x01), so the two kinds of frame cannot be confused. Each side sends COUNT, its releases
and END, answers each of the peer's releases with RECEIPT or REFUSED, then RECEIPTS_END.
:class:`TransferGate` is the connection as the session driver sees it, so that release frames
arriving before our own session is done are held back rather than dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from xlink.errors import RemoteProtocolError
from xlink.protocol.abort import AbortCode
from xlink.release.seal import SealedRelease
from xlink.transport.errors import TransportTimeout
from xlink.transport.stream import FramedConnection

__all__ = ["RELEASE_MAGIC", "TransferError", "TransferGate", "TransferResult", "transfer_releases"]

RELEASE_MAGIC: Final = b"\xf0XRT"
"""First bytes of every release-transfer-v0 frame. A PSI message starts with its protocol
version byte (0x01), so the two kinds of frame cannot be confused."""

_COUNT, _RELEASE, _END, _RECEIPT, _REFUSED, _RECEIPTS_END = range(1, 7)
_U32: Final = struct.Struct(">I")


class TransferError(RemoteProtocolError):
    """The peer broke release transfer v0 (a frame out of order, a count that disagrees)."""

    def __init__(self, detail: str) -> None:
        super().__init__(AbortCode.UNEXPECTED_MESSAGE, detail)


class TransferGate:
    """The connection as :func:`run_session` sees it: its close is deferred (the release
    transfer follows on the same connection), and a release-transfer frame that arrives
    before our session is done is held back here instead of reaching the session driver,
    which would drop it."""

    def __init__(self, conn: FramedConnection) -> None:
        self.conn = conn
        self.held: deque[bytes] = deque()

    async def send(self, message: bytes) -> None:
        await self.conn.send(message)

    async def receive(self) -> bytes | None:
        if not self.held:
            message = await self.conn.receive()
            if message is None or not message.startswith(RELEASE_MAGIC):
                return message
            self.held.append(message)
        # The peer's session is over: nothing more for ours. Wait to be cancelled.
        await asyncio.get_running_loop().create_future()
        raise AssertionError("unreachable")  # pragma: no cover

    async def close(self, timeout: float | None = None) -> None:
        return None  # the runner closes the connection once the transfer is over

    async def next_transfer_frame(self, idle_timeout: float) -> bytes:
        if self.held:
            return self.held.popleft()
        try:
            async with asyncio.timeout(idle_timeout):
                message = await self.conn.receive()
        except TimeoutError:
            raise TransportTimeout(f"no release frame for {idle_timeout:g} s") from None
        if message is None:
            raise TransferError("the peer closed the connection during the release transfer")
        if not message.startswith(RELEASE_MAGIC) or len(message) < len(RELEASE_MAGIC) + 1:
            raise TransferError("not a release transfer frame")
        return message


def _frame(kind: int, body: bytes = b"") -> bytes:
    return RELEASE_MAGIC + bytes([kind]) + body


@dataclass
class TransferResult:
    peer_releases: list[bytes]
    answers: list[tuple[bool, bytes]]  # per release of ours: (receipt?, receipt or reason)


async def transfer_releases(
    gate: TransferGate,
    ours: Sequence[SealedRelease],
    store_one: Callable[[bytes], tuple[bool, bytes]],
    idle_timeout: float,
) -> TransferResult:
    """Release transfer v0: send COUNT, our releases, END; answer each of the peer's releases
    with RECEIPT or REFUSED, then RECEIPTS_END; read the same from the peer."""
    outbox: asyncio.Queue[bytes | None] = asyncio.Queue()
    for frame in (
        _frame(_COUNT, _U32.pack(len(ours))),
        *(_frame(_RELEASE, s.data) for s in ours),
        _frame(_END),
    ):
        outbox.put_nowait(frame)

    async def sender() -> None:
        while (frame := await outbox.get()) is not None:
            await gate.send(frame)

    sending = asyncio.create_task(sender())
    peer_releases: list[bytes] = []
    answers: list[tuple[bool, bytes]] = []
    expected: int | None = None
    peer_done = receipts_done = False
    try:
        while not (peer_done and receipts_done):
            frame = await gate.next_transfer_frame(idle_timeout)
            kind, body = frame[len(RELEASE_MAGIC)], frame[len(RELEASE_MAGIC) + 1 :]
            if kind == _COUNT and expected is None and len(body) == 4:
                expected = _U32.unpack(body)[0]
            elif kind == _RELEASE and expected is not None and not peer_done:
                if len(peer_releases) >= expected:
                    raise TransferError("more releases than announced")
                peer_releases.append(body)
                ok, answer = store_one(body)
                outbox.put_nowait(_frame(_RECEIPT if ok else _REFUSED, answer))
            elif kind == _END and expected is not None and not peer_done:
                if len(peer_releases) != expected:
                    raise TransferError("fewer releases than announced")
                peer_done = True
                outbox.put_nowait(_frame(_RECEIPTS_END, _U32.pack(expected)))
                outbox.put_nowait(None)
            elif kind in (_RECEIPT, _REFUSED) and not receipts_done:
                if len(answers) >= len(ours):
                    raise TransferError("more receipts than releases")
                answers.append((kind == _RECEIPT, body))
            elif kind == _RECEIPTS_END and not receipts_done and len(body) == 4:
                if _U32.unpack(body)[0] != len(ours) or len(answers) != len(ours):
                    raise TransferError("receipts do not answer every release")
                receipts_done = True
            else:
                raise TransferError(f"unexpected release transfer frame {kind}")
        async with asyncio.timeout(idle_timeout):
            await sending
    finally:
        if not sending.done():
            sending.cancel()
        with contextlib.suppress(BaseException):
            await sending
    return TransferResult(peer_releases, answers)
