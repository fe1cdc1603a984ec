"""Length-prefixed framing of protocol messages on a byte stream (spec: xlink-psi-v2 §6.1).

A frame is a 4-byte big-endian length followed by that many bytes of message. Framing is kept
apart from the session so that the session is message-oriented and a transport that already
delimits messages (a test pair, a message queue) can skip it.
"""

from __future__ import annotations

from typing import Final

from xlink.errors import RemoteProtocolError
from xlink.protocol.abort import AbortCode
from xlink.protocol.limits import MAX_MESSAGE_SIZE

__all__ = ["FRAME_HEADER_SIZE", "FrameDecoder", "encode_frame"]

FRAME_HEADER_SIZE: Final = 4


def encode_frame(message: bytes) -> bytes:
    """Prefix ``message`` with its 4-byte big-endian length. Raises ``ValueError`` if it is
    larger than :data:`~xlink.protocol.limits.MAX_MESSAGE_SIZE`."""
    if len(message) > MAX_MESSAGE_SIZE:
        raise ValueError("message larger than MAX_MESSAGE_SIZE")
    return len(message).to_bytes(FRAME_HEADER_SIZE, "big") + message


class FrameDecoder:
    """Incremental decoder: :meth:`feed` bytes as they arrive, get whole message payloads back.

    Raises :class:`~xlink.errors.RemoteProtocolError` with ``FRAME_TOO_LARGE`` as soon as a
    header announces more than ``max_frame`` bytes (before buffering them), and with
    ``TRUNCATED`` from :meth:`close` if the stream ends inside a frame.
    """

    __slots__ = ("_buffer", "_max_frame")

    def __init__(self, max_frame: int = MAX_MESSAGE_SIZE) -> None:
        if max_frame < 1:
            raise ValueError("max_frame must be >= 1")
        self._max_frame = max_frame
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Append ``data``; return every frame payload now complete, in order."""
        self._buffer += data
        out: list[bytes] = []
        while len(self._buffer) >= FRAME_HEADER_SIZE:
            size = int.from_bytes(self._buffer[:FRAME_HEADER_SIZE], "big")
            if size > self._max_frame:
                raise RemoteProtocolError(AbortCode.FRAME_TOO_LARGE, "frame exceeds the limit")
            end = FRAME_HEADER_SIZE + size
            if len(self._buffer) < end:
                break
            out.append(bytes(self._buffer[FRAME_HEADER_SIZE:end]))
            del self._buffer[:end]
        return out

    @property
    def pending(self) -> int:
        """Bytes buffered that do not yet form a whole frame."""
        return len(self._buffer)

    def close(self) -> None:
        """Declare the end of the stream; raises ``TRUNCATED`` if a partial frame is buffered."""
        if self._buffer:
            raise RemoteProtocolError(AbortCode.TRUNCATED, "stream ended inside a frame")
