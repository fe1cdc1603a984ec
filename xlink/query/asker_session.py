"""The asker's side of xlink-query-v1 as a sans-I/O state machine (spec §7.3)."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from itertools import pairwise

from xlink.crypto.rand import RandomSource
from xlink.error_codes import AbortCode
from xlink.errors import LocalProtocolError
from xlink.query import messages as M
from xlink.query._base import _Session
from xlink.query.events import (
    NONCE_SIZE,
    PERIOD_PATTERN,
    AskerEvent,
    EvaluationAnswered,
    Fate,
    QueryConfig,
    ReleaseAnswer,
    ReleasesReceived,
    RequestedHit,
    SessionState,
    TableChunkReceived,
    TableComplete,
    Welcomed,
    session_id_of,
)

__all__ = ["AskerSession"]


class AskerSession(_Session):
    """The asker's side: :meth:`start`, then requests, each answered by one event."""

    def __init__(self, config: QueryConfig, *, rng: RandomSource) -> None:
        super().__init__(config)
        self._nonce = rng(NONCE_SIZE)
        self._welcome: M.Welcome | None = None
        self._started = False
        self._pending = 0  # hits of the outstanding RELEASE_REQUEST, then releases to answer
        self._evaluations: deque[tuple[int, int]] = deque()  # outstanding (request, elements)
        self._chunks = 0
        self._period = ""

    def start(self) -> None:
        """Queue the HELLO (once)."""
        if self.state is not SessionState.WAITING or self._started:
            raise LocalProtocolError("the session has started")
        self._started = True
        c = self.config
        self._out.append(
            M.encode(
                M.Hello(
                    self._nonce,
                    c.mou_id,
                    c.mou_digest,
                    c.schema_digest,
                    c.asker,
                    c.holder,
                )
            )
        )

    def receive(self, frame: bytes) -> list[AskerEvent]:
        message = self._decode(frame)
        state = self.state
        # a WELCOME answers our HELLO: before start() it answers nothing (UNEXPECTED_MESSAGE)
        if isinstance(message, M.Welcome) and state is SessionState.WAITING and self._started:
            if not PERIOD_PATTERN.fullmatch(message.period):
                raise self._fail(AbortCode.MALFORMED_MESSAGE, "WELCOME: not a period")
            if message.keys != self.config.keys:
                raise self._fail(AbortCode.SCHEMA_MISMATCH, "another number of keys")
            self._welcome = message
            self._period = message.period
            self.session_id = session_id_of(self.config, self._nonce, message.nonce, message.period)
            self.state = SessionState.READY
            return [
                Welcomed(
                    self.session_id,
                    message.period,
                    message.table_version,
                    message.entries,
                    message.table_digest,
                    message.quota_left,
                )
            ]
        if state is SessionState.TABLE:
            if isinstance(message, M.TableChunk):
                if message.seq != self._chunks + 1:
                    code = (
                        AbortCode.CHUNK_REPLAYED
                        if message.seq <= self._chunks
                        else AbortCode.CHUNK_OUT_OF_ORDER
                    )
                    raise self._fail(code, f"table chunk {message.seq}")
                self._chunks += 1
                return [TableChunkReceived(message.entries)]
            if isinstance(message, M.TableEnd):
                if message.chunks != self._chunks:
                    raise self._fail(AbortCode.WRONG_COUNT, "TABLE_END: another chunk count")
                assert self._welcome is not None
                if (message.version, message.total) != (
                    self._welcome.table_version,
                    self._welcome.entries,
                ):
                    raise self._fail(AbortCode.BAD_TABLE, "TABLE_END: not the table WELCOME named")
                self.state = SessionState.READY
                return [TableComplete(message.version, message.total)]
        if isinstance(message, M.Evaluated) and state is SessionState.EVALUATING:
            request, count = self._evaluations[0]
            if message.request != request:
                raise self._fail(AbortCode.UNEXPECTED_MESSAGE, "an answer to another request")
            if len(message.evaluated) != 32 * count:
                raise self._fail(AbortCode.WRONG_COUNT, f"{count} elements expected")
            self._evaluations.popleft()
            if not self._evaluations:
                self.state = SessionState.READY
            return [EvaluationAnswered(message.request, message.evaluated)]
        if isinstance(message, M.ReleasesMessage) and state is SessionState.RELEASING:
            return self._on_releases(message)
        raise self._unexpected(message)

    def _on_releases(self, message: M.ReleasesMessage) -> list[AskerEvent]:
        n = self._pending
        if message.request != self._request:
            raise self._fail(AbortCode.UNEXPECTED_MESSAGE, "releases for another request")
        if len(message.fates) != n or len(message.release_ids) != 16 * n:
            raise self._fail(AbortCode.WRONG_COUNT, f"{n} answers expected")
        try:
            fates = [Fate(f) for f in message.fates]
        except ValueError:
            raise self._fail(AbortCode.MALFORMED_MESSAGE, "RELEASES: an unknown fate") from None
        if sum(f is Fate.SENT for f in fates) != len(message.frames):
            raise self._fail(AbortCode.WRONG_COUNT, "RELEASES: frames and fates disagree")
        frames = iter(message.frames)
        answers = tuple(
            ReleaseAnswer(
                fate,
                message.release_ids[16 * i : 16 * (i + 1)],
                next(frames) if fate is Fate.SENT else b"",
            )
            for i, fate in enumerate(fates)
        )
        self._pending = len(message.frames)
        self.state = SessionState.RECEIPTS if message.frames else SessionState.READY
        return [ReleasesReceived(message.request, answers)]

    # -- the caller's requests -----------------------------------------------------------------

    def _ready(self, what: str) -> None:
        if self.state is not SessionState.READY:
            raise LocalProtocolError(f"{what} in state {self.state.value}")

    def request_table(self, since: int) -> None:
        self._ready("request_table")
        self._chunks = 0
        self._out.append(M.encode(M.TableRequest(since)))
        self.state = SessionState.TABLE

    def evaluate(self, blinded: bytes) -> int:
        """Queue one EVALUATE; returns its request number. Several may be outstanding (the
        holder answers them in order), so that blinding overlaps the holder's work."""
        if self.state is not SessionState.EVALUATING:
            self._ready("evaluate")
        if not blinded or len(blinded) % 32 or len(blinded) > 32 * M.MAX_EVALUATE:
            raise LocalProtocolError(f"an EVALUATE carries 1..{M.MAX_EVALUATE} whole elements")
        frame = M.encode(M.Evaluate(self._request + 1, blinded))
        self._request += 1
        self._evaluations.append((self._request, len(blinded) // 32))
        self._out.append(frame)
        self.state = SessionState.EVALUATING
        return self._request

    def request_releases(self, hits: Sequence[RequestedHit]) -> int:
        self._ready("request_releases")
        if not 1 <= len(hits) <= M.MAX_HITS or any(
            not 1 <= len(h.handles) <= 255
            or len(h.presence) != self.config.presence_size
            or int.from_bytes(h.presence, "little") >> self.config.keys
            or any(a >= b for a, b in pairwise(h.handles))
            for h in hits
        ):
            raise LocalProtocolError(
                f"1..{M.MAX_HITS} hits, each with 1..255 ascending handles and a presence "
                "bitmap of the schema's keys"
            )
        if len({h.record for h in hits}) != len(hits):
            raise LocalProtocolError("a record named twice")
        try:
            frame = M.encode(
                M.ReleaseRequest(
                    self._request + 1,
                    b"".join(h.record.to_bytes(4, "big") for h in hits),
                    b"".join(h.presence for h in hits),
                    bytes(len(h.handles) for h in hits),
                    b"".join(b"".join(h.handles) for h in hits),
                )
            )
        except ValueError as exc:
            raise LocalProtocolError(str(exc)) from None
        self._request += 1
        self._pending = len(hits)
        self._out.append(frame)
        self.state = SessionState.RELEASING
        return self._request

    def send_receipts(self, answers: Sequence[tuple[bool, bytes]]) -> None:
        """One answer per SENT release, in order: ``(True, receipt)`` or ``(False, reason)``."""
        if self.state is not SessionState.RECEIPTS:
            raise LocalProtocolError(f"send_receipts in state {self.state.value}")
        if len(answers) != self._pending:
            raise LocalProtocolError(f"{self._pending} answers expected")
        self._out.append(
            M.encode(
                M.ReceiptsMessage(
                    self._request,
                    bytes(int(ok) for ok, _ in answers),
                    tuple(a for _, a in answers),
                )
            )
        )
        self.state = SessionState.READY

    def close(self) -> None:
        if self.state is SessionState.READY:
            self._out.append(M.encode(M.Bye()))
        if not self.done:
            self.state = SessionState.CLOSED
