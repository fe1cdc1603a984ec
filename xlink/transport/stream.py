"""Message connections: length-prefixed frames over asyncio streams, and an in-memory pair.

Both implement :class:`Connection`, the interface the session driver uses: whole messages in and
out, typed errors, and a graceful close. Framing follows xlink-psi-v2 §6.1 and reuses the
protocol's :class:`~xlink.protocol.framing.FrameDecoder`, so the frame limit is enforced from
the 4-byte header, before the payload is buffered.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final, Protocol

from xlink.protocol.framing import FrameDecoder, encode_frame
from xlink.protocol.limits import MAX_MESSAGE_SIZE
from xlink.transport.errors import ConnectionLost, TransportTimeout

__all__ = [
    "LINGER_QUIET",
    "READ_SIZE",
    "Connection",
    "FramedConnection",
    "MemoryConnection",
    "linger",
    "memory_pair",
]

READ_SIZE: Final = 1 << 16
"""Bytes asked of the stream per read."""

WRITE_BUFFER_HIGH: Final = 4 * MAX_MESSAGE_SIZE
"""Bytes of our own frames the stream may hold unsent before :meth:`FramedConnection.send`
waits for the peer to read (asyncio's own default is 64 KiB for plain streams and 512 KiB for
TLS: less than one confirmation chunk)."""


LINGER_QUIET: Final = 0.1
"""Seconds without a message from the peer after which :func:`linger` stops reading."""


async def linger(receive: Callable[[], Awaitable[object]], timeout: float) -> None:
    """After sending our Abort: take and drop what the peer still sends (``receive``: the next
    message, or something else once the stream has ended or failed) until it closes or is
    quiet for :data:`LINGER_QUIET` seconds, for at most ``timeout`` seconds. Closing with the
    peer's messages in flight would reset the connection, and a reset can destroy our Abort in
    the peer's receive buffer before the peer reads it (it would see a lost connection, not
    our code). Never raises."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(timeout, 0.0)
    while (left := deadline - loop.time()) > 0:
        try:
            async with asyncio.timeout(min(LINGER_QUIET, left)):
                if not isinstance(await receive(), bytes):
                    return  # the peer closed (or the connection failed)
        except Exception:
            return


class Connection(Protocol):
    """A bidirectional, ordered, reliable channel of whole messages."""

    async def send(self, message: bytes) -> None:
        """Send one message. Raises ``TransportTimeout`` or ``ConnectionLost``."""
        ...

    async def receive(self) -> bytes | None:
        """The next message, or None at a clean end of stream. Raises ``TransportTimeout``,
        ``ConnectionLost``, or ``RemoteProtocolError`` (``FRAME_TOO_LARGE``, ``TRUNCATED``)."""
        ...

    async def close(self, timeout: float | None = None) -> None:
        """Close gracefully, waiting at most ``timeout`` seconds (None: the connection's own
        close timeout; 0: at once, without waiting for the peer). Never raises."""
        ...


class FramedConnection:
    """Frames over an asyncio stream pair (plain TCP or TLS).

    ``read_timeout`` bounds each wait for bytes (None: wait for ever; the session driver has
    its own idle timeout); ``write_timeout`` bounds each wait for the peer to take our bytes
    (backpressure: :meth:`send` returns only once the stream's buffer is below its high-water
    mark); ``close_timeout`` bounds the graceful close.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        max_frame: int = MAX_MESSAGE_SIZE,
        read_timeout: float | None = None,
        write_timeout: float = 30.0,
        close_timeout: float = 2.0,
    ) -> None:
        self._reader = reader
        self._writer = writer
        # Room for a few of our largest messages, so that a party computes its next chunk
        # while the peer is still busy with the last (docs/transport.md); sending resumes
        # once a whole message has gone, so a send that does wait waits for about 1 MiB.
        writer.transport.set_write_buffer_limits(
            high=WRITE_BUFFER_HIGH, low=WRITE_BUFFER_HIGH - MAX_MESSAGE_SIZE
        )
        self._decoder = FrameDecoder(max_frame)
        self._frames: deque[bytes] = deque()
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._close_timeout = close_timeout
        self._eof = False
        self._closed = False

    @property
    def ssl_object(self) -> ssl.SSLObject | None:
        """The TLS object of the stream, or None for plain TCP."""
        obj = self._writer.get_extra_info("ssl_object")
        return obj if isinstance(obj, ssl.SSLObject) else None

    async def send(self, message: bytes) -> None:
        await self.write_raw(encode_frame(message))

    async def write_raw(self, data: bytes) -> None:
        """Write ``data`` as it is, without a frame header: for conformance testing, which
        sends malformed and partial frames on purpose. Raises ``ConnectionLost``."""
        if self._closed or self._writer.is_closing():
            raise ConnectionLost("connection closed")
        try:
            self._writer.write(data)
            async with asyncio.timeout(self._write_timeout):
                await self._writer.drain()
        except TimeoutError:
            raise TransportTimeout("write timed out") from None
        except (ConnectionError, ssl.SSLError) as exc:
            raise ConnectionLost(f"write failed: {type(exc).__name__}") from None

    async def receive(self) -> bytes | None:
        while not self._frames:
            if self._eof:
                return None
            try:
                async with asyncio.timeout(self._read_timeout):
                    data = await self._reader.read(READ_SIZE)
            except TimeoutError:
                raise TransportTimeout("read timed out") from None
            except (ConnectionError, ssl.SSLError) as exc:
                raise ConnectionLost(f"read failed: {type(exc).__name__}") from None
            if not data:
                self._eof = True
                self._decoder.close()  # RemoteProtocolError(TRUNCATED) inside a frame
                return None
            self._frames.extend(self._decoder.feed(data))
        return self._frames.popleft()

    def buffered(self) -> bool:
        """True when a whole message is already read: :meth:`receive` returns it at once."""
        return bool(self._frames)

    async def close(self, timeout: float | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        limit = self._close_timeout if timeout is None else timeout
        writer = self._writer
        # Over TLS, close() sends close_notify before the FIN. A peer that is gone or stopped
        # reading must not hold us up: past the timeout the transport is aborted (RST).
        clean = False
        with contextlib.suppress(Exception):
            if limit <= 0:
                raise TimeoutError
            async with asyncio.timeout(limit):
                writer.close()
                await writer.wait_closed()
                clean = True
        if not clean:
            writer.transport.abort()


class MemoryConnection:
    """One end of an in-memory connection (for tests and examples): the same interface and
    error behaviour as :class:`FramedConnection`, without sockets. ``capacity`` messages may
    be in flight before :meth:`send` waits (backpressure)."""

    def __init__(
        self,
        inbox: asyncio.Queue[bytes | None],
        outbox: asyncio.Queue[bytes | None],
        *,
        read_timeout: float | None = None,
        write_timeout: float = 30.0,
        close_timeout: float = 2.0,
    ) -> None:
        self._inbox = inbox
        self._outbox = outbox
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._close_timeout = close_timeout
        self._eof = False
        self._closed = False

    async def send(self, message: bytes) -> None:
        if self._closed:
            raise ConnectionLost("connection closed")
        if len(message) > MAX_MESSAGE_SIZE:
            raise ValueError("message larger than MAX_MESSAGE_SIZE")
        try:
            async with asyncio.timeout(self._write_timeout):
                await self._outbox.put(bytes(message))
        except TimeoutError:
            raise TransportTimeout("write timed out") from None

    async def receive(self) -> bytes | None:
        if self._eof:
            return None
        try:
            async with asyncio.timeout(self._read_timeout):
                message = await self._inbox.get()
        except TimeoutError:
            raise TransportTimeout("read timed out") from None
        if message is None:
            self._eof = True
        return message

    def buffered(self) -> bool:
        """True when a message is waiting: :meth:`receive` returns it at once."""
        return not self._inbox.empty()

    async def close(self, timeout: float | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        limit = self._close_timeout if timeout is None else timeout
        # The end-of-stream marker may wait for room only briefly: a peer that stopped
        # reading must not hold up our close.
        with contextlib.suppress(TimeoutError, asyncio.QueueFull):
            if limit <= 0:
                self._outbox.put_nowait(None)
                return
            async with asyncio.timeout(limit):
                await self._outbox.put(None)


def memory_pair(
    *, capacity: int = 64, read_timeout: float | None = None, write_timeout: float = 30.0
) -> tuple[MemoryConnection, MemoryConnection]:
    """Two connected :class:`MemoryConnection` ends. Create them inside the event loop that
    uses them."""
    if capacity < 1:
        raise ValueError("capacity must be >= 1")
    a_to_b: asyncio.Queue[bytes | None] = asyncio.Queue(capacity)
    b_to_a: asyncio.Queue[bytes | None] = asyncio.Queue(capacity)
    return (
        MemoryConnection(b_to_a, a_to_b, read_timeout=read_timeout, write_timeout=write_timeout),
        MemoryConnection(a_to_b, b_to_a, read_timeout=read_timeout, write_timeout=write_timeout),
    )
