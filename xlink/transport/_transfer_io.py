"""The connection side of the release transfer (:mod:`xlink.transport.release_transfer`): the
connection as the PSI session driver sees it while a transfer may follow on it
(:class:`TransferGate`), and the task that sends the machine's frames while the caller reads
(:class:`Outbox`)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections import deque
from collections.abc import Awaitable
from typing import Final, TypeVar

from xlink.errors import RemoteProtocolError
from xlink.protocol.abort import AbortCode
from xlink.release.transfer import (
    MAGIC_FAMILY,
    RELEASE_MAGIC,
    FrameType,
    ReleaseTransfer,
    TransferError,
    check_magic,
)
from xlink.transport.errors import TransportTimeout
from xlink.transport.stream import Connection

__all__ = ["Outbox", "TransferGate"]

_T = TypeVar("_T")
_TYPE_AT: Final = len(RELEASE_MAGIC)
_ANSWERS: Final = frozenset({FrameType.RECEIPT, FrameType.REFUSED})


class TransferGate:
    """The connection as :func:`run_session` sees it: its close is deferred (the release
    transfer follows on the same connection), and a release-transfer frame that arrives
    before our session is done is held back here for the transfer instead of reaching the
    session. A peer sends one only once its session is over, after its last session message,
    so the driver, which delivers in order, is done with the session before it reaches the
    error that stands in for the frame; if it is not, the peer started the transfer early,
    and the session aborts with ``UNEXPECTED_MESSAGE`` at once. ``transfer`` is the
    :class:`ReleaseTransfer` of this connection, once :func:`agree_decided_pairs` (or
    :func:`run_transfer`) started it."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.held: deque[bytes] = deque()
        self.transfer: ReleaseTransfer | None = None
        self._deadline: float | None = None  # the transfer's time limit, on the loop's clock
        self._limit_s = 0.0

    def limit(self, seconds: float) -> None:
        """Give the transfer on this connection ``seconds`` from now in all: past them,
        :meth:`next_message` raises :class:`~xlink.transport.TransportTimeout` however often
        the peer sends."""
        self._limit_s = seconds
        self._deadline = asyncio.get_running_loop().time() + seconds

    @property
    def decided(self) -> int | None:
        """Our number of decided matches, once :func:`agree_decided_pairs` found the peer's
        decided pairs equal to ours; None before."""
        transfer = self.transfer
        return transfer.decided if transfer is not None and transfer.agreed else None

    async def send(self, message: bytes) -> None:
        await self.conn.send(message)

    async def receive(self) -> bytes | None:
        if not self.held:
            message = await self.conn.receive()
            if message is None or not message.startswith(MAGIC_FAMILY):
                return message
            self.held.append(message)
        # The peer's session is over: nothing more for ours (the driver's reader stops here).
        raise RemoteProtocolError(
            AbortCode.UNEXPECTED_MESSAGE, "a release transfer frame before the session's end"
        )

    async def close(self, timeout: float | None = None) -> None:
        return None  # the runner closes the connection once the transfer is over

    def buffered(self) -> bool:
        """True when the peer's next message is at hand (held back here, or already read by
        the connection): :meth:`next_message` returns it without waiting. False when unknown
        (a connection that cannot tell)."""
        if self.held:
            return True
        buffered = getattr(self.conn, "buffered", None)
        return bool(buffered()) if callable(buffered) else False

    async def next_message(self, idle_timeout: float) -> bytes | None:
        """The peer's next message (one held back first), None at the end of the stream;
        :class:`~xlink.transport.TransportTimeout` after ``idle_timeout`` seconds of
        silence."""
        if self.held:
            return self.held.popleft()
        return await self.within(self.conn.receive(), idle_timeout, "no release frame")

    async def within(self, waiting: Awaitable[_T], idle_timeout: float, silence: str) -> _T:
        """Await ``waiting`` for at most ``idle_timeout`` seconds and no later than the
        transfer's time limit (:meth:`limit`); :class:`~xlink.transport.TransportTimeout`
        (``silence`` and the timeout, or the limit) when it does not come in time."""
        wait, limited = idle_timeout, False
        if self._deadline is not None:
            left = self._deadline - asyncio.get_running_loop().time()
            if left < wait:
                wait, limited = max(left, 0.0), True
        try:
            async with asyncio.timeout(wait):
                return await waiting
        except TimeoutError:
            if limited:
                raise TransportTimeout(
                    f"the release transfer ran past its time limit of {self._limit_s:.0f} s"
                ) from None
            raise TransportTimeout(f"{silence} for {idle_timeout:g} s") from None

    async def next_transfer_frame(self, idle_timeout: float) -> bytes:
        """The peer's next release transfer v3 frame (one held back first). Raises
        :class:`TransferError` for a closed connection, a frame of another transfer version
        (``UNSUPPORTED_VERSION``) or anything else (``UNEXPECTED_MESSAGE``);
        :class:`~xlink.transport.TransportTimeout` after ``idle_timeout`` seconds of silence."""
        message = await self.next_message(idle_timeout)
        if message is None:
            raise TransferError("the peer closed the connection during the release transfer")
        check_magic(message)
        return message


class Outbox:
    """Sends the machine's frames from a task of its own while the caller keeps reading, so
    two sides with much to send never block each other. The task takes a frame from the
    machine only when it can send it, so nothing the machine drops at an abort goes out.
    ``wake`` after each change of the machine; ``finish`` waits (at most ``idle_timeout``)
    until every frame due is sent; ``close`` stops the task.

    ``gated``: the ``n``-th answer (RECEIPT, REFUSED) leaves once ``commit(k)``, ``k >= n``,
    said the writes behind it are durable; the machine keeps it until then
    (:meth:`~xlink.release.transfer.ReleaseTransfer.next_frame`), and frames of ours that
    may leave do not wait behind it. ``releases_gated``: so do our releases beyond those the
    reciprocal window let out (:attr:`~xlink.release.transfer.ReleaseTransfer.allowed`) at the
    last ``commit`` (or when the outbox was made: the driver commits first), the window
    having written to a ledger what it lets out, durable only then."""

    def __init__(
        self,
        gate: TransferGate,
        machine: ReleaseTransfer,
        *,
        gated: bool,
        releases_gated: bool = False,
    ) -> None:
        self._gate = gate
        self._machine = machine
        self._wake = asyncio.Event()
        self._finishing = False
        self._answers = 0  # answers taken from the machine
        self._committed = 0 if gated else sys.maxsize  # answers that may leave
        self._releases = machine.allowed if releases_gated else None  # ours that may go
        self._task = asyncio.create_task(self._send_all())

    async def _send_all(self) -> None:
        while True:
            frame = self._machine.next_frame(self._committed - self._answers, self._releases)
            if frame is not None:
                if frame[_TYPE_AT] in _ANSWERS:
                    self._answers += 1
                await self._gate.send(frame)
            elif self._finishing and not self._machine.answers_queued:
                return  # (an answer still queued waits for its commit, then leaves)
            else:
                self._wake.clear()
                await self._wake.wait()

    def wake(self) -> None:
        self._wake.set()

    def commit(self, answers: int) -> None:
        """The first ``answers`` answers given to the machine are durable: they may leave;
        and so are the window's writes for the releases it allows now (``releases_gated``)."""
        self._committed = max(self._committed, answers)
        if self._releases is not None:
            self._releases = self._machine.allowed
        self._wake.set()

    async def finish(self, idle_timeout: float) -> None:
        """Wait until every frame due is sent; :class:`~xlink.transport.TransportTimeout` if
        the peer takes none of them for ``idle_timeout`` seconds (it stopped reading)."""
        self._finishing = True
        self._wake.set()
        await self._gate.within(self._task, idle_timeout, "our frames not taken")

    async def close(self) -> None:
        if not self._task.done():
            self._task.cancel()
        with contextlib.suppress(BaseException):
            await self._task
