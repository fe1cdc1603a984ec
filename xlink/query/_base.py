"""What both query state machines share: the outgoing frames, decoding with aborts, request
numbering (spec: xlink-query-v1 §6.15, §7)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from xlink.error_codes import AbortCode
from xlink.errors import LocalProtocolError, PeerAborted, QuotaExhausted, RemoteProtocolError
from xlink.protocol.abort import sanitize_detail
from xlink.query import messages as M
from xlink.query.events import (
    QueryConfig,
    SessionState,
)


class _Session:
    def __init__(self, config: QueryConfig) -> None:
        self.config = config
        self.state = SessionState.WAITING
        self.session_id: bytes | None = None
        # frames to send; an iterator is a run of frames made as they are taken (a table)
        self._out: deque[bytes | Iterator[bytes]] = deque()
        self._request = 0  # the last request number used

    def next_frame(self) -> bytes | None:
        while self._out:
            head = self._out[0]
            if isinstance(head, bytes):
                self._out.popleft()
                return head
            frame = next(head, None)
            if frame is not None:
                return frame
            self._out.popleft()
        return None

    @property
    def done(self) -> bool:
        return self.state in (SessionState.CLOSED, SessionState.ABORTED)

    def abort(self, code: AbortCode, detail: str) -> None:
        """End the session with ``code``: an ABORT is queued for the peer."""
        if self.done:
            return
        self._out.clear()
        text = sanitize_detail(detail).encode("utf-8")[: M.MAX_DETAIL].decode("utf-8", "ignore")
        self._out.append(M.encode(M.Abort(int(code), text)))
        self.state = SessionState.ABORTED

    def _fail(self, code: AbortCode, detail: str) -> RemoteProtocolError:
        self.abort(code, detail)
        return RemoteProtocolError(code, detail)

    def _decode(self, frame: bytes) -> M.QueryMessage:
        if self.done:
            raise LocalProtocolError(f"the session is {self.state.value}")
        try:
            message = M.decode(frame)
        except RemoteProtocolError as exc:
            self.abort(exc.code, exc.detail)
            raise
        if isinstance(message, M.Abort):
            self.state = SessionState.ABORTED
            self._out.clear()
            try:
                code = AbortCode(message.code)
            except ValueError:
                code = AbortCode.PEER_ABORTED
            if code is AbortCode.QUOTA_EXHAUSTED:
                raise QuotaExhausted(sanitize_detail(message.detail))
            raise PeerAborted(code, sanitize_detail(message.detail))
        return message

    def _check_request(self, number: int) -> None:
        expected = self._request + 1
        if number < expected:
            raise self._fail(AbortCode.CHUNK_REPLAYED, f"request {number} again")
        if number > expected:
            raise self._fail(AbortCode.CHUNK_OUT_OF_ORDER, f"request {number}, not {expected}")
        self._request = number

    def _unexpected(self, message: M.QueryMessage) -> RemoteProtocolError:
        return self._fail(
            AbortCode.UNEXPECTED_MESSAGE, f"{message.TYPE.name} in state {self.state.value}"
        )
