"""Release transfer v1: the decided-pairs digest, then sealed releases and their receipts, both
ways, on the connection that just carried a PSI session (xlink-release-v1 §10; docs/transport.md,
"Release transfer").

Every frame starts with :data:`RELEASE_MAGIC`; a PSI message starts with its protocol version
byte (0x02), so the two kinds of frame cannot be confused. First each side sends DIGEST, the
:func:`decided_pairs_digest` of its decided matches, and reads the peer's
(:func:`agree_decided_pairs`): when they differ the transfer ends (``DECISION_MISMATCH``)
before any release is built or sent. Then (:func:`transfer_releases`) each side sends COUNT,
at most as many releases as it decided matches (more: ``TOO_MANY_RELEASES``), its releases and
END, answers each of the peer's releases with RECEIPT or REFUSED, then RECEIPTS_END. A frame
of release transfer v0 (magic ``f0 58 52 54``) is refused with ``UNSUPPORTED_VERSION``.
:class:`TransferGate` is the connection as the session driver sees it, so that release frames
arriving before our own session is done are held back rather than dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import struct
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from xlink.errors import LocalProtocolError, RemoteProtocolError
from xlink.protocol.abort import AbortCode
from xlink.release.seal import SealedRelease
from xlink.transport.errors import TransportTimeout
from xlink.transport.stream import Connection

__all__ = [
    "DST_DECIDED_PAIRS",
    "RELEASE_MAGIC",
    "DecisionMismatch",
    "TransferError",
    "TransferGate",
    "TransferResult",
    "agree_decided_pairs",
    "decided_pairs_digest",
    "exchange_labels",
    "label_handles",
    "transfer_releases",
]

_MAGIC_FAMILY: Final = b"\xf0XR"
RELEASE_MAGIC: Final = _MAGIC_FAMILY + b"\x01"
"""First bytes of every release-transfer-v1 frame: ``f0 58 52`` then the version byte ``01``
(v0 had ``54``, "T"). A PSI message starts with its protocol version byte (0x02), so the two
kinds of frame cannot be confused."""

DST_DECIDED_PAIRS: Final = b"xlink-release/decided-pairs"
"""The label of :func:`decided_pairs_digest`."""

_COUNT, _RELEASE, _END, _RECEIPT, _REFUSED, _RECEIPTS_END, _DIGEST, _LABELS, _LABEL_ANSWERS = range(
    1, 10
)
LABEL_CHUNK: Final = 16384
"""Most points in one LABELS or LABEL_ANSWERS frame (512 KiB)."""
_U32: Final = struct.Struct(">I")
_DIGEST_SIZE: Final = 32
_SESSION_ID_SIZE: Final = 16


class TransferError(RemoteProtocolError):
    """The peer broke release transfer v1: a frame out of order, a count that disagrees
    (``UNEXPECTED_MESSAGE``), more releases than we decided matches (``TOO_MANY_RELEASES``),
    another version of the transfer (``UNSUPPORTED_VERSION``)."""

    def __init__(self, detail: str, code: AbortCode = AbortCode.UNEXPECTED_MESSAGE) -> None:
        super().__init__(code, detail)


class DecisionMismatch(TransferError):
    """The peer's decided-pairs digest is not ours (``DECISION_MISMATCH``): the two sides did
    not decide the same matches, so neither releases anything."""

    def __init__(self) -> None:
        super().__init__("the peer decided other matches", AbortCode.DECISION_MISMATCH)


def decided_pairs_digest(session_id: bytes, pairs: Iterable[Iterable[bytes]]) -> bytes:
    """The digest both sides compare before any release (xlink-release-v1 §10.1)::

        SHA-256(lp("xlink-release/decided-pairs") || session_id || u32(n)
                || for each pair, in ascending order of its sorted handles' concatenation:
                   u32(h) || handle_1 || ... || handle_h)

    with each pair's ``h`` handles sorted ascending; ``pairs`` are the decided matches' shared
    handles (:attr:`xlink.decide.DecidedMatch.handles`), in any order. ``ValueError`` for a
    session id that is not 16 bytes or a handle that is not bytes.
    """
    if type(session_id) is not bytes or len(session_id) != _SESSION_ID_SIZE:
        raise ValueError(f"session_id must be {_SESSION_ID_SIZE} bytes")
    encoded = []
    for pair in pairs:
        handles = list(pair)
        if any(type(h) is not bytes for h in handles):
            raise ValueError("handles must be bytes")
        encoded.append((b"".join(sorted(handles)), len(handles)))
    encoded.sort()
    digest = hashlib.sha256(_U32.pack(len(DST_DECIDED_PAIRS)) + DST_DECIDED_PAIRS)
    digest.update(session_id)
    digest.update(_U32.pack(len(encoded)))
    for joined, count in encoded:
        digest.update(_U32.pack(count))
        digest.update(joined)
    return digest.digest()


class TransferGate:
    """The connection as :func:`run_session` sees it: its close is deferred (the release
    transfer follows on the same connection), and a release-transfer frame that arrives
    before our session is done is held back here instead of reaching the session driver,
    which would drop it."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.held: deque[bytes] = deque()
        self.decided: int | None = None
        """Our number of decided matches, once :func:`agree_decided_pairs` found the peer's
        decided pairs equal to ours; None before."""

    async def send(self, message: bytes) -> None:
        await self.conn.send(message)

    async def receive(self) -> bytes | None:
        if not self.held:
            message = await self.conn.receive()
            if message is None or not message.startswith(_MAGIC_FAMILY):
                return message
            self.held.append(message)
        # The peer's session is over: nothing more for ours. Wait to be cancelled.
        await asyncio.get_running_loop().create_future()
        raise AssertionError("unreachable")  # pragma: no cover

    async def close(self, timeout: float | None = None) -> None:
        return None  # the runner closes the connection once the transfer is over

    async def next_transfer_frame(self, idle_timeout: float) -> bytes:
        """The peer's next release transfer v1 frame (one held back first). Raises
        :class:`TransferError` for a closed connection, a frame of another transfer version
        (``UNSUPPORTED_VERSION``) or anything else (``UNEXPECTED_MESSAGE``);
        :class:`~xlink.transport.TransportTimeout` after ``idle_timeout`` seconds of silence."""
        message: bytes | None
        if self.held:
            message = self.held.popleft()
        else:
            try:
                async with asyncio.timeout(idle_timeout):
                    message = await self.conn.receive()
            except TimeoutError:
                raise TransportTimeout(f"no release frame for {idle_timeout:g} s") from None
        if message is None:
            raise TransferError("the peer closed the connection during the release transfer")
        if message.startswith(_MAGIC_FAMILY) and not message.startswith(RELEASE_MAGIC):
            raise TransferError("not release transfer v1", AbortCode.UNSUPPORTED_VERSION)
        if not message.startswith(RELEASE_MAGIC) or len(message) < len(RELEASE_MAGIC) + 1:
            raise TransferError("not a release transfer frame")
        return message


def _frame(kind: int, body: bytes = b"") -> bytes:
    return RELEASE_MAGIC + bytes([kind]) + body


class _Outbox:
    """Frames to send, sent by a task of their own while the caller keeps reading, so two
    sides with much to send never block each other. ``put`` queues a frame; ``finish`` waits
    (at most ``idle_timeout``) for everything queued to be sent; ``close`` stops the task."""

    def __init__(self, gate: TransferGate) -> None:
        self._gate = gate
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._task = asyncio.create_task(self._send_all())

    async def _send_all(self) -> None:
        while (frame := await self._queue.get()) is not None:
            await self._gate.send(frame)

    def put(self, frame: bytes) -> None:
        self._queue.put_nowait(frame)

    async def finish(self, idle_timeout: float) -> None:
        self._queue.put_nowait(None)
        async with asyncio.timeout(idle_timeout):
            await self._task

    async def close(self) -> None:
        if not self._task.done():
            self._task.cancel()
        with contextlib.suppress(BaseException):
            await self._task


@dataclass
class TransferResult:
    peer_releases: list[bytes]
    answers: list[tuple[bool, bytes]]  # per release of ours: (receipt?, receipt or reason)


async def agree_decided_pairs(
    gate: TransferGate,
    session_id: bytes,
    pairs: Sequence[Iterable[bytes]],
    idle_timeout: float,
) -> None:
    """The first step of release transfer v1: send DIGEST, the :func:`decided_pairs_digest` of
    our decided matches ``pairs`` (their shared handles) in session ``session_id``, and check
    that the peer's first frame is DIGEST with the same digest (``hmac.compare_digest``). Then
    ``gate`` allows :func:`transfer_releases` at most ``len(pairs)`` releases from the peer.

    Raises :class:`DecisionMismatch` when the digests differ (nothing else has been sent);
    :class:`TransferError` when the peer's first frame is not a DIGEST (``UNEXPECTED_MESSAGE``)
    or is of another transfer version (``UNSUPPORTED_VERSION``), or the peer closed the
    connection; :class:`~xlink.transport.TransportTimeout` after ``idle_timeout`` seconds of
    silence; ``ValueError`` as :func:`decided_pairs_digest`; :class:`LocalProtocolError` if
    called twice on one gate.
    """
    if gate.decided is not None:
        raise LocalProtocolError("the decided pairs were already agreed on this connection")
    ours = decided_pairs_digest(session_id, pairs)
    await gate.send(_frame(_DIGEST, ours))
    frame = await gate.next_transfer_frame(idle_timeout)
    kind, body = frame[len(RELEASE_MAGIC)], frame[len(RELEASE_MAGIC) + 1 :]
    if kind != _DIGEST or len(body) != _DIGEST_SIZE:
        raise TransferError(f"expected the decided-pairs digest, got frame {kind}")
    if not hmac.compare_digest(body, ours):
        raise DecisionMismatch()
    gate.decided = len(pairs)


async def transfer_releases(
    gate: TransferGate,
    ours: Sequence[SealedRelease],
    store_one: Callable[[bytes], tuple[bool, bytes]],
    idle_timeout: float,
    encode: Callable[[SealedRelease], bytes] | None = None,
) -> TransferResult:
    """Release transfer v1 after :func:`agree_decided_pairs`: send COUNT, our releases, END;
    answer each of the peer's releases with ``store_one(data)`` — ``(True, receipt)`` or
    ``(False, reason)`` — as RECEIPT or REFUSED, then RECEIPTS_END; read the same from the peer.
    ``encode`` turns each of our releases into the RELEASE frame's body (the runner labels
    them, :mod:`xlink.release.label`; default: the sealed bytes as they are).

    Raises :class:`TransferError`: a COUNT above our number of decided matches
    (``TOO_MANY_RELEASES``, before any of the peer's releases is stored), a frame out of order
    or a count that disagrees (``UNEXPECTED_MESSAGE``); :class:`~xlink.transport.TransportTimeout`
    after ``idle_timeout`` seconds of silence; :class:`LocalProtocolError` if the decided pairs
    were not agreed first, or if ``ours`` has more releases than we decided matches.
    """
    decided = gate.decided
    if decided is None:
        raise LocalProtocolError("agree on the decided pairs before transferring releases")
    if len(ours) > decided:
        raise LocalProtocolError("more releases than decided matches")
    frames = [
        _frame(_COUNT, _U32.pack(len(ours))),
        *(_frame(_RELEASE, s.data if encode is None else encode(s)) for s in ours),
        _frame(_END),
    ]
    outbox = _Outbox(gate)
    for frame in frames:
        outbox.put(frame)
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
                if expected > decided:
                    raise TransferError(
                        f"{expected} releases announced for {decided} decided matches",
                        AbortCode.TOO_MANY_RELEASES,
                    )
            elif kind == _RELEASE and expected is not None and not peer_done:
                if len(peer_releases) >= expected:
                    raise TransferError("more releases than announced")
                peer_releases.append(body)
                ok, answer = store_one(body)
                outbox.put(_frame(_RECEIPT if ok else _REFUSED, answer))
            elif kind == _END and expected is not None and not peer_done:
                if len(peer_releases) != expected:
                    raise TransferError("fewer releases than announced")
                peer_done = True
                outbox.put(_frame(_RECEIPTS_END, _U32.pack(expected)))
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
        await outbox.finish(idle_timeout)
    finally:
        await outbox.close()
    return TransferResult(peer_releases, answers)


def label_handles(pairs: Iterable[Iterable[bytes]]) -> list[bytes]:
    """The handles of the decided pairs in the order both sides use for the label exchange
    (xlink-release-v1 §10.2): pairs in the order of :func:`decided_pairs_digest`, handles
    ascending within a pair, each handle once (at its first place)."""
    ordered = sorted(sorted(pair) for pair in pairs)
    ordered.sort(key=b"".join)
    seen: set[bytes] = set()
    out = []
    for pair in ordered:
        for handle in pair:
            if handle not in seen:
                seen.add(handle)
                out.append(handle)
    return out


async def exchange_labels(
    gate: TransferGate,
    handles: Sequence[bytes],
    *,
    request: Callable[[Sequence[bytes], int], bytes],
    answer: Callable[[bytes], bytes],
    outputs: Callable[[Sequence[bytes], bytes, int], list[bytes]],
    idle_timeout: float,
) -> dict[bytes, bytes]:
    """The label evaluation of release transfer v1 (§10.2), after :func:`agree_decided_pairs`:
    both sides hold the same ``handles`` (:func:`label_handles` of the agreed pairs). Each
    sends LABELS frames, ``u32(seq) || points`` with ``request(handles[chunk], chunk.start)``,
    at most
    :data:`LABEL_CHUNK` points each; answers each of the peer's with LABEL_ANSWERS,
    ``u32(seq) || answer(points)``; and finalises the answers to its own with ``outputs``.
    Returns handle -> the OPRF output under the peer's key (``PsiSession.labels``: ``request``,
    ``answer``, ``outputs``).

    Sending runs beside receiving, so two sides with much to send never block each other.
    Raises :class:`TransferError` for a frame out of order (``UNEXPECTED_MESSAGE``) or a chunk
    of the wrong size (``WRONG_COUNT``), the :class:`~xlink.errors.RemoteProtocolError` s of
    the callbacks (a bad point), :class:`~xlink.transport.TransportTimeout` after
    ``idle_timeout`` seconds of silence, :class:`LocalProtocolError` if the decided pairs
    were not agreed first."""
    if gate.decided is None:
        raise LocalProtocolError("agree on the decided pairs before exchanging labels")
    spans = [
        range(i, min(i + LABEL_CHUNK, len(handles))) for i in range(0, len(handles), LABEL_CHUNK)
    ]
    requests = [
        _frame(_LABELS, _U32.pack(seq) + request(handles[span.start : span.stop], span.start))
        for seq, span in enumerate(spans)
    ]
    outbox = _Outbox(gate)
    for frame in requests:
        outbox.put(frame)
    answers: list[bytes | None] = [None] * len(spans)
    answered_peer = 0
    try:
        while answered_peer < len(spans) or any(a is None for a in answers):
            frame = await gate.next_transfer_frame(idle_timeout)
            kind, body = frame[len(RELEASE_MAGIC)], frame[len(RELEASE_MAGIC) + 1 :]
            if kind not in (_LABELS, _LABEL_ANSWERS) or len(body) < 4:
                raise TransferError(f"unexpected frame {kind} during the label exchange")
            seq, points = _U32.unpack(body[:4])[0], body[4:]
            if kind == _LABELS:
                if seq != answered_peer or seq >= len(spans):
                    raise TransferError("label request out of order")
                if len(points) != 32 * len(spans[seq]):
                    raise TransferError("wrong number of label points", AbortCode.WRONG_COUNT)
                outbox.put(_frame(_LABEL_ANSWERS, _U32.pack(seq) + answer(points)))
                answered_peer += 1
            else:
                if seq >= len(spans) or answers[seq] is not None:
                    raise TransferError("label answer out of order")
                answers[seq] = points
        await outbox.finish(idle_timeout)
    finally:
        await outbox.close()
    out: dict[bytes, bytes] = {}
    for span, got in zip(spans, answers, strict=True):
        chunk = handles[span.start : span.stop]
        assert got is not None
        out.update(zip(chunk, outputs(chunk, got, span.start), strict=True))
    return out
