"""xlink-query-v1 as two sans-I/O state machines: bytes in, events out (spec: xlink-query-v1 §7).

The asker (:class:`AskerSession`) connects to the holder (:class:`HolderSession`); the holder
answers every request in order, and only EVALUATEs may be outstanding several at a time (so
that the asker's blinding overlaps the holder's work): every other request is answered before
the next is sent.

* ``HELLO`` / ``WELCOME``: both bind the session to the MOU, the schema, the two agencies and
  the holder's key period; the session id is a hash of both nonces and those.
* ``TABLE_REQUEST`` / ``TABLE_CHUNK``... ``TABLE_END``: the table entries written since the
  version the asker holds (§5).
* ``EVALUATE`` / ``EVALUATED``: blinded elements in, evaluated elements out (RFC 9497 OPRF,
  §4); counted against the holder's daily quota.
* ``RELEASE_REQUEST`` / ``RELEASES`` / ``RECEIPTS``: for the records the asker decided, the
  holder's labelled releases and the asker's receipts.
* ``BYE`` ends the session; ``ABORT`` (either side) ends it with a code.

Like :class:`~xlink.protocol.session.PsiSession`, a session never touches a socket, a clock,
a key or a store: the caller evaluates, looks up, decides and releases. Anything the peer
should not have sent (malformed, another version, out of order, replayed, a count that
disagrees) raises :class:`~xlink.errors.RemoteProtocolError` with its code; the session is
then ABORTED with an ``ABORT`` queued for the peer (take it with :meth:`next_frame`), and
gives nothing more. A received ``ABORT`` raises :class:`~xlink.errors.PeerAborted`.
"""

from __future__ import annotations

import hashlib
import re
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum, IntEnum
from itertools import pairwise
from typing import Final

from xlink.crypto.rand import RandomSource
from xlink.error_codes import AbortCode
from xlink.errors import LocalProtocolError, PeerAborted, QuotaExhausted, RemoteProtocolError
from xlink.protocol.abort import sanitize_detail
from xlink.query import messages as M
from xlink.query.table import label_size_for

__all__ = [
    "DST_HANDLE",
    "DST_SESSION",
    "AskerSession",
    "EvaluationAnswered",
    "EvaluationRequested",
    "Fate",
    "HolderSession",
    "QueryConfig",
    "ReceiptsReceived",
    "ReleaseAnswer",
    "ReleaseRequested",
    "ReleasesReceived",
    "RequestedHit",
    "SessionState",
    "TableComplete",
    "TableRequested",
    "Welcomed",
    "query_handle",
]

DST_SESSION: Final = b"xlink-query-v1/session-id"
DST_HANDLE: Final = b"xlink-query-v1/handle"
NONCE_SIZE: Final = 16
HANDLE_SIZE: Final = 16
_PERIOD: Final = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")


def _lp(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def query_handle(session_id: bytes, output: bytes) -> bytes:
    """The 16-byte handle of one matched token in a query session (§4.3): only a party that
    holds the token's OPRF output can compute it."""
    return hashlib.sha256(_lp(DST_HANDLE) + session_id + output).digest()[:HANDLE_SIZE]


@dataclass(frozen=True, slots=True)
class QueryConfig:
    """What both sides must agree on: the MOU, its digest, the schema digest and number of
    keys, and the two agencies."""

    mou_id: str
    mou_digest: bytes
    schema_digest: bytes
    keys: int
    asker: str
    holder: str

    @property
    def presence_size(self) -> int:
        return label_size_for(self.keys) - 4


class SessionState(Enum):
    WAITING = "waiting"  # holder: for HELLO; asker: for WELCOME
    READY = "ready"  # no request outstanding
    TABLE = "table"  # asker asked for the table / holder is sending it
    EVALUATING = "evaluating"
    RELEASING = "releasing"  # holder: releases due or receipts awaited; asker: releases awaited
    RECEIPTS = "receipts"  # asker: receipts due
    CLOSED = "closed"
    ABORTED = "aborted"


class Fate(IntEnum):
    """What the holder did for one record of a release request (§6.12, §7.5)."""

    SENT = 1
    QUEUED = 2
    PENDING = 3
    DENIED = 4
    DELIVERED = 5
    NOT_DECIDED = 6


@dataclass(frozen=True, slots=True)
class RequestedHit:
    """One record the asker asks the release of: the holder's table index, the keys the
    asker's record has (bitmap), and the handles of the tokens that matched."""

    record: int
    presence: bytes
    handles: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class ReleaseAnswer:
    """The holder's answer for one requested record."""

    fate: Fate
    release_id: bytes = bytes(16)
    frame: bytes = b""


# -- events ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TableRequested:
    since: int


@dataclass(frozen=True, slots=True)
class EvaluationRequested:
    request: int
    blinded: bytes

    @property
    def count(self) -> int:
        return len(self.blinded) // 32


@dataclass(frozen=True, slots=True)
class ReleaseRequested:
    request: int
    hits: tuple[RequestedHit, ...]


@dataclass(frozen=True, slots=True)
class ReceiptsReceived:
    request: int
    answers: tuple[tuple[bool, bytes], ...]


@dataclass(frozen=True, slots=True)
class AskerLeft:
    pass


@dataclass(frozen=True, slots=True)
class Welcomed:
    session_id: bytes
    period: str
    table_version: int
    entries: int
    table_digest: bytes
    quota_left: int


@dataclass(frozen=True, slots=True)
class TableChunkReceived:
    entries: bytes


@dataclass(frozen=True, slots=True)
class TableComplete:
    version: int
    total: int


@dataclass(frozen=True, slots=True)
class EvaluationAnswered:
    request: int
    evaluated: bytes


@dataclass(frozen=True, slots=True)
class ReleasesReceived:
    request: int
    answers: tuple[ReleaseAnswer, ...]


HolderEvent = TableRequested | EvaluationRequested | ReleaseRequested | ReceiptsReceived | AskerLeft
AskerEvent = Welcomed | TableChunkReceived | TableComplete | EvaluationAnswered | ReleasesReceived


def session_id_of(
    config: QueryConfig, asker_nonce: bytes, holder_nonce: bytes, period: str
) -> bytes:
    """§7.1: the 16-byte session id both sides derive."""
    return hashlib.sha256(
        _lp(DST_SESSION)
        + asker_nonce
        + holder_nonce
        + config.mou_digest
        + config.schema_digest
        + _lp(period.encode())
        + _lp(config.asker.encode())
        + _lp(config.holder.encode())
    ).digest()[:16]


class _Session:
    def __init__(self, config: QueryConfig) -> None:
        self.config = config
        self.state = SessionState.WAITING
        self.session_id: bytes | None = None
        self._out: deque[bytes] = deque()
        self._request = 0  # the last request number used

    def next_frame(self) -> bytes | None:
        return self._out.popleft() if self._out else None

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
        if not _PERIOD.fullmatch(period):
            raise ValueError("a period is YYYY-MM")
        self.period = period
        self._table_version = table_version
        self._entries = entries
        self._quota_left = quota_left
        self._nonce = rng(NONCE_SIZE)
        self._released = 0  # frames of the outstanding RELEASES
        self._asked = 0  # elements of the EVALUATE, or records of the RELEASE_REQUEST, due

    def receive(self, frame: bytes) -> list[HolderEvent]:
        message = self._decode(frame)
        state = self.state
        if isinstance(message, M.Hello) and state is SessionState.WAITING:
            return self._on_hello(message)
        if state is SessionState.READY:
            if isinstance(message, M.TableRequest):
                if message.since > self._table_version:
                    raise self._fail(AbortCode.BAD_TABLE, "asks from a version not served yet")
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
        """Queue the table entries since the requested version, then TABLE_END."""
        self._expect(SessionState.TABLE, "send_table")
        count = 0
        for count, chunk in enumerate(chunks, start=1):
            self._out.append(M.encode(M.TableChunk(count, chunk)))
        self._out.append(M.encode(M.TableEnd(count, version, total)))
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
        if isinstance(message, M.Welcome) and state is SessionState.WAITING:
            if not _PERIOD.fullmatch(message.period):
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
