"""The holder's side of xlink-query-v1 as a sans-I/O state machine (spec §7.2)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import pairwise

from xlink.crypto.rand import RandomSource
from xlink.error_codes import AbortCode
from xlink.errors import LocalProtocolError
from xlink.query import messages as M
from xlink.query._base import _Session
from xlink.query.events import (
    HANDLE_SIZE,
    NONCE_SIZE,
    PERIOD_PATTERN,
    AskerLeft,
    EvaluationRequested,
    Fate,
    HolderEvent,
    QueryConfig,
    ReceiptsReceived,
    ReleaseAnswer,
    ReleaseRequested,
    RequestedHit,
    SessionState,
    TableRequested,
    session_id_of,
)

__all__ = ["MAX_TABLE_REQUESTS", "HolderSession"]

#: TABLE_REQUESTs a session answers (spec §7.2): the delta since the asker's copy, then the
#: whole table if the merged copy is refused (§7.3). A third is ``UNEXPECTED_MESSAGE``: each
#: costs the holder a table's worth of sending and nothing of the quota.
MAX_TABLE_REQUESTS = 2


class HolderSession(_Session):
    """The holder's side. After each event the caller answers with the matching call
    (:meth:`send_table`, :meth:`answer_evaluation`, :meth:`send_releases`, or
    :meth:`abort`, e.g. ``QUOTA_EXHAUSTED``) before the next frame is received."""

    def __init__(
        self,
        config: QueryConfig,
        *,
        period: str,
        table_version: int,
        entries: int,
        table_digest: bytes,
        quota_left: int,
        rng: RandomSource,
    ) -> None:
        super().__init__(config)
        if len(table_digest) != 32:
            raise ValueError("a table digest is 32 bytes")
        self._table_digest = table_digest
        if not PERIOD_PATTERN.fullmatch(period):
            raise ValueError("a period is YYYY-MM")
        self.period = period
        self._table_version = table_version
        self._entries = entries
        self._quota_left = quota_left
        self._nonce = rng(NONCE_SIZE)
        self._released = 0  # frames of the outstanding RELEASES
        self._asked = 0  # elements of the EVALUATE, or records of the RELEASE_REQUEST, due
        self._tables = 0  # TABLE_REQUESTs answered

    def receive(self, frame: bytes) -> list[HolderEvent]:
        message = self._decode(frame)
        state = self.state
        if isinstance(message, M.Hello) and state is SessionState.WAITING:
            return self._on_hello(message)
        if state is SessionState.READY:
            if isinstance(message, M.TableRequest):
                if message.since > self._table_version:
                    raise self._fail(AbortCode.BAD_TABLE, "asks from a version not served yet")
                if self._tables == MAX_TABLE_REQUESTS:
                    raise self._fail(
                        AbortCode.UNEXPECTED_MESSAGE,
                        f"more than {MAX_TABLE_REQUESTS} TABLE_REQUESTs in one session",
                    )
                self._tables += 1
                self.state = SessionState.TABLE
                return [TableRequested(message.since)]
            if isinstance(message, M.Evaluate):
                self._check_request(message.request)
                self.state = SessionState.EVALUATING
                self._asked = len(message.blinded) // 32
                return [EvaluationRequested(message.request, message.blinded)]
            if isinstance(message, M.ReleaseRequest):
                self._check_request(message.request)
                hits = self._hits(message)
                self._asked = len(hits)
                self.state = SessionState.RELEASING
                return [ReleaseRequested(message.request, hits)]
            if isinstance(message, M.Bye):
                self.state = SessionState.CLOSED
                return [AskerLeft()]
        if (
            isinstance(message, M.ReceiptsMessage)
            and state is SessionState.RELEASING
            and self._released < 0  # releases sent, receipts awaited
        ):
            return self._on_receipts(message)
        raise self._unexpected(message)

    def _on_hello(self, hello: M.Hello) -> list[HolderEvent]:
        c = self.config
        if hello.mou_id != c.mou_id or hello.mou_digest != c.mou_digest:
            raise self._fail(AbortCode.MOU_MISMATCH, "another MOU")
        if hello.schema_digest != c.schema_digest:
            raise self._fail(AbortCode.SCHEMA_MISMATCH, "another linkage schema")
        if hello.asker != c.asker or hello.holder != c.holder:
            raise self._fail(AbortCode.PARTY_MISMATCH, "another pair of agencies")
        self.session_id = session_id_of(c, hello.nonce, self._nonce, self.period)
        self._out.append(
            M.encode(
                M.Welcome(
                    self._nonce,
                    self.period,
                    self._table_version,
                    self._entries,
                    self._table_digest,
                    self._quota_left,
                    c.keys,
                )
            )
        )
        self.state = SessionState.READY
        return []

    def _hits(self, message: M.ReleaseRequest) -> tuple[RequestedHit, ...]:
        n = len(message.records) // 4
        size = self.config.presence_size
        if len(message.presence) != n * size or len(message.counts) != n:
            raise self._fail(AbortCode.MALFORMED_MESSAGE, "RELEASE_REQUEST: counts disagree")
        counts = list(message.counts)
        if 0 in counts or sum(counts) * HANDLE_SIZE != len(message.handles):
            raise self._fail(AbortCode.MALFORMED_MESSAGE, "RELEASE_REQUEST: handle counts")
        hits = []
        position = 0
        seen: set[int] = set()
        for i, count in enumerate(counts):
            record = int.from_bytes(message.records[4 * i : 4 * i + 4], "big")
            handles = tuple(
                message.handles[HANDLE_SIZE * (position + k) : HANDLE_SIZE * (position + k + 1)]
                for k in range(count)
            )
            position += count
            if any(a >= b for a, b in pairwise(handles)):
                raise self._fail(
                    AbortCode.MALFORMED_MESSAGE, "RELEASE_REQUEST: handles not ascending"
                )
            if record in seen:
                raise self._fail(AbortCode.MALFORMED_MESSAGE, "RELEASE_REQUEST: duplicates")
            seen.add(record)
            presence = message.presence[size * i : size * (i + 1)]
            if int.from_bytes(presence, "little") >> self.config.keys:
                raise self._fail(AbortCode.MALFORMED_MESSAGE, "RELEASE_REQUEST: a key not named")
            hits.append(RequestedHit(record, presence, handles))
        return tuple(hits)

    def _on_receipts(self, message: M.ReceiptsMessage) -> list[HolderEvent]:
        expected = -self._released
        if message.request != self._request:
            raise self._fail(AbortCode.UNEXPECTED_MESSAGE, "receipts for another request")
        if len(message.oks) != expected or len(message.answers) != expected:
            raise self._fail(AbortCode.WRONG_COUNT, f"{expected} answers expected")
        if any(b not in (0, 1) for b in message.oks):
            raise self._fail(AbortCode.MALFORMED_MESSAGE, "RECEIPTS: an answer flag not 0 or 1")
        self._released = 0
        self.state = SessionState.READY
        answers = tuple((bool(ok), a) for ok, a in zip(message.oks, message.answers, strict=True))
        return [ReceiptsReceived(message.request, answers)]

    # -- the caller's answers ------------------------------------------------------------------

    def _expect(self, state: SessionState, what: str) -> None:
        if self.state is not state:
            raise LocalProtocolError(f"{what} in state {self.state.value}")

    def send_table(self, chunks: Iterable[bytes], *, version: int, total: int) -> None:
        """Queue the table entries since the requested version, then TABLE_END. The chunks
        are read and encoded as their frames are taken (:meth:`next_frame`), not here: a
        session holds the frame being sent, not a copy of the whole table, so an asker that
        asks and stops reading costs the holder little."""
        self._expect(SessionState.TABLE, "send_table")

        def frames() -> Iterator[bytes]:
            count = 0
            for count, chunk in enumerate(chunks, start=1):
                yield M.encode(M.TableChunk(count, chunk))
            yield M.encode(M.TableEnd(count, version, total))

        self._out.append(frames())
        self.state = SessionState.READY

    def answer_evaluation(self, evaluated: bytes) -> None:
        self._expect(SessionState.EVALUATING, "answer_evaluation")
        if len(evaluated) != 32 * self._asked:
            raise LocalProtocolError(f"{self._asked} evaluated elements expected")
        self._out.append(M.encode(M.Evaluated(self._request, evaluated)))
        self.state = SessionState.READY

    def send_releases(self, answers: Sequence[ReleaseAnswer]) -> None:
        """One answer per requested record, in the request's order."""
        self._expect(SessionState.RELEASING, "send_releases")
        if self._released:
            raise LocalProtocolError("releases already sent")
        if len(answers) != self._asked:
            raise LocalProtocolError(f"{self._asked} answers expected, one per requested record")
        frames = tuple(a.frame for a in answers if a.fate is Fate.SENT)
        self._out.append(
            M.encode(
                M.ReleasesMessage(
                    self._request,
                    bytes(int(a.fate) for a in answers),
                    b"".join(a.release_id for a in answers),
                    frames,
                )
            )
        )
        if frames:
            self._released = -len(frames)
        else:
            self.state = SessionState.READY
