"""Release transfer v3 over the connection that just carried a PSI session: the async driver of
the sans-I/O :class:`~xlink.release.transfer.ReleaseTransfer` (xlink-release-v1 §10;
docs/transport.md, "Release transfer").

Every frame starts with :data:`RELEASE_MAGIC`; a PSI message starts with its protocol version
byte (0x02), so the two kinds of frame cannot be confused. First each side sends DIGEST, the
:func:`decided_pairs_digest` of its decided matches naming its role, and reads the peer's
(:func:`agree_decided_pairs`): unless it is the digest of the same matches naming the peer's
role the transfer ends (``DECISION_MISMATCH``) before any release is built or sent. Then the
label evaluation (:func:`exchange_labels`), and (:func:`transfer_releases`) each side sends
COUNT, at most as many releases as it decided matches (more: ``TOO_MANY_RELEASES``), its
releases and END, answers each of the peer's releases with RECEIPT or REFUSED, then
RECEIPTS_END. Under an MOU with ``release.reciprocal`` (§10.5) :func:`offer_releases` sends
COUNT first and returns how many releases each side sends, the fewer of the two offers, and
our releases leave no more than ``RECIPROCAL_AHEAD`` ahead of the peer's. A frame of release
transfer v0 (magic ``f0 58 52 54``) is refused with ``UNSUPPORTED_VERSION``.
:func:`run_transfer` runs the three steps in one call.
:class:`TransferGate` is the connection as the session driver sees it, so that release frames
arriving before our own session is done are held back rather than dropped.

The rules (which frame when, every check and its abort code) are the machine's; this module
only moves frames: it sends from a task of its own while it reads, so two sides with much to
send never block each other, and answers the peer's releases with the caller's ``store_one``.

With a ``batch`` (:class:`Commits`), :func:`transfer_releases` commits the writes of many
releases at once, each commit before anything that depends on it leaves: our releases after
their ``RELEASE_SENT`` entries, an answer after the writes behind it (answers are held back
until then); otherwise when nothing more has arrived, every :data:`MAX_UNCOMMITTED`
operations, at the end and when the transfer fails.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Final, Protocol

from xlink.errors import LocalProtocolError
from xlink.protocol.config import Role
from xlink.release.seal import SealedRelease
from xlink.release.transfer import (
    DST_DECIDED_PAIRS,
    LABEL_CHUNK,
    RELEASE_MAGIC,
    Answer,
    DecisionMismatch,
    ReciprocalWindow,
    ReleaseAnswered,
    ReleaseReceived,
    ReleaseTransfer,
    TransferError,
    TransferEvent,
    TransferResult,
    TransferState,
    decided_pairs_digest,
    label_pairs,
)
from xlink.transport._transfer_io import Outbox, TransferGate
from xlink.transport.driver import time_limit

__all__ = [
    "DST_DECIDED_PAIRS",
    "LABEL_CHUNK",
    "MAX_UNCOMMITTED",
    "MIN_TRANSFER_PACE",
    "RELEASE_MAGIC",
    "Commits",
    "DecisionMismatch",
    "LabelFunctions",
    "TransferError",
    "TransferGate",
    "TransferResult",
    "agree_decided_pairs",
    "decided_pairs_digest",
    "exchange_labels",
    "label_pairs",
    "offer_releases",
    "run_transfer",
    "transfer_releases",
    "transfer_time_limit",
]

StoreOne = Callable[[bytes], Answer]
OnAnswer = Callable[[int, bool, bytes], object]

MAX_UNCOMMITTED: Final = 1024
"""Most operations (releases stored or refused, answers settled) in one commit of a batch."""

MIN_TRANSFER_PACE: Final = 20.0
"""The least pace, in decided matches a second, that a release transfer is given in all
(:func:`transfer_time_limit`); an honest transfer here moves some hundreds a second each way
(docs/PERFORMANCE.md)."""


class Commits(Protocol):
    """Writes grouped into one transaction per store (:class:`xlink._sqlite.Batch`): ``open``
    before an operation, ``flush`` commits (or raises: then nothing that depends on it leaves)."""

    def open(self) -> None: ...

    def flush(self) -> None: ...


class LabelFunctions(Protocol):
    """The label evaluation of a completed session, as ``PsiSession.labels`` gives it."""

    def request(self, pairs: Sequence[Sequence[bytes]], start: int = 0) -> bytes: ...

    def answer(self, points: bytes) -> bytes: ...

    def outputs(
        self, pairs: Sequence[Sequence[bytes]], answers: bytes, start: int = 0
    ) -> list[bytes]: ...


def _abort(machine: ReleaseTransfer) -> None:
    if not machine.done:
        machine.abort()


async def _receive_one(
    gate: TransferGate,
    machine: ReleaseTransfer,
    idle_timeout: float,
    before_waiting: Callable[[], object] | None = None,
) -> list[TransferEvent]:
    """The events of the peer's next frame; ``before_waiting`` is called first when that frame
    is not at hand (none held or buffered, and none arrives at once)."""
    if before_waiting is None or gate.buffered():
        message = await gate.next_message(idle_timeout)
    else:
        message = await _next_or(gate.next_message(idle_timeout), before_waiting)
    if message is None:
        machine.peer_closed()  # raises before DONE
        return []
    return machine.receive(message)


async def _next_or(
    receiving: Awaitable[bytes | None], before_waiting: Callable[[], object]
) -> bytes | None:
    """Await ``receiving``; if it cannot complete at once (what the connection has read, and
    what the socket has, polled once), call ``before_waiting`` first."""
    task = asyncio.ensure_future(receiving)
    try:
        await asyncio.wait((task,), timeout=0)
        if not task.done():
            before_waiting()
        return await task
    except BaseException:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise


def transfer_time_limit(decided: int, idle_timeout: float, min_pace: float) -> float:
    """Seconds a release transfer of ``decided`` decided matches may take in all, counted from
    its start: :data:`~xlink.transport.driver.LIMIT_GRACE_IDLES` idle timeouts, plus the
    matches at ``min_pace`` a second (:data:`MIN_TRANSFER_PACE`): :func:`~xlink.transport.
    driver.time_limit`."""
    return time_limit(decided, idle_timeout, min_pace)


async def _agree(
    gate: TransferGate, machine: ReleaseTransfer, idle_timeout: float, limit_s: float
) -> None:
    """Start the transfer's time limit (``limit_s`` from now); send our DIGEST, then read the
    peer's: the DIGEST goes out before anything is read, so that a peer that decided otherwise
    learns it from our digest, not from our hang-up."""
    gate.limit(limit_s)
    try:
        while (frame := machine.next_frame()) is not None:
            await gate.send(frame)
        await _receive_one(gate, machine, idle_timeout)
    except BaseException:
        _abort(machine)
        raise


async def _exchange(
    gate: TransferGate,
    machine: ReleaseTransfer,
    idle_timeout: float,
    *,
    until: TransferState,
    store_one: StoreOne | None = None,
    on_answer: OnAnswer | None = None,
    batch: Commits | None = None,
    window_writes: bool = False,
) -> None:
    """Send the machine's frames while reading the peer's until the machine reaches ``until``
    (answering each release of the peer with ``store_one``, handing each answer to ours to
    ``on_answer`` as it arrives), then wait until every frame due is sent. With ``batch``:
    each of those operations runs in it, and our answers leave once it is flushed (see the
    module's docstring for when); with ``window_writes`` too, our releases the reciprocal window
    lets out once it is flushed (the window wrote to the batch)."""
    outbox = Outbox(gate, machine, gated=batch is not None, releases_gated=window_writes)
    given = 0  # answers given to the machine
    pending = 0  # operations in the batch since its last flush

    def flush() -> None:
        nonlocal pending
        if batch is not None and pending:
            batch.flush()
        pending = 0
        outbox.commit(given)

    try:
        while machine.state is not until:
            outbox.wake()
            if pending >= MAX_UNCOMMITTED:
                flush()
            waiting = flush if pending else None
            for event in await _receive_one(gate, machine, idle_timeout, waiting):
                if isinstance(event, ReleaseReceived):
                    if store_one is None:  # pragma: no cover - the machine sent no releases
                        raise LocalProtocolError("a release arrived with no store to take it")
                    if batch is not None:
                        batch.open()
                        pending += 1
                    machine.answer(*store_one(event.data))
                    given += 1
                elif isinstance(event, ReleaseAnswered) and on_answer is not None:
                    if batch is not None:
                        batch.open()
                        pending += 1
                    on_answer(event.index, event.ok, event.answer)
        flush()
        await outbox.finish(idle_timeout)
    except BaseException:
        _abort(machine)
        if batch is not None:  # what was done stays done; its answers are never sent
            with contextlib.suppress(Exception):
                batch.flush()
        raise
    finally:
        await outbox.close()


async def agree_decided_pairs(
    gate: TransferGate,
    session_id: bytes,
    pairs: Sequence[Iterable[bytes]],
    idle_timeout: float,
    *,
    role: Role,
    min_pace: float = MIN_TRANSFER_PACE,
    reciprocal: bool = False,
) -> None:
    """The first step of release transfer v3: send DIGEST, the :func:`decided_pairs_digest` of
    our decided matches ``pairs`` (their shared handles) in session ``session_id``, where we
    were ``role``, and check that the peer's first frame is DIGEST with the digest of the same
    pairs from the other role (``hmac.compare_digest``). Then ``gate`` allows
    :func:`transfer_releases` at most ``len(pairs)`` releases from the peer.

    Raises :class:`DecisionMismatch` when the peer's digest is not that one, for another
    decision or our own digest sent back (nothing else has been sent);
    :class:`TransferError` when the peer's first frame is not a DIGEST (``UNEXPECTED_MESSAGE``)
    or is of another transfer version (``UNSUPPORTED_VERSION``), or the peer closed the
    connection; :class:`~xlink.transport.TransportTimeout` after ``idle_timeout`` seconds of
    silence; ``ValueError`` as :func:`decided_pairs_digest`; :class:`LocalProtocolError` if
    called twice on one gate.

    The whole transfer on ``gate`` (this step and the next two) is given
    :func:`transfer_time_limit` from now, ``min_pace`` decided matches a second: past it, the
    next wait for the peer raises :class:`~xlink.transport.TransportTimeout` however often the
    peer sends (one frame inside each idle timeout would otherwise hold the connection for
    as many idle timeouts as there are decided matches).

    ``reciprocal``: the MOU's ``release.reciprocal``; then :func:`offer_releases` comes before
    :func:`transfer_releases`.
    """
    if gate.decided is not None:
        raise LocalProtocolError("the decided pairs were already agreed on this connection")
    machine = ReleaseTransfer(session_id, pairs, role=role, reciprocal=reciprocal)
    limit_s = transfer_time_limit(machine.decided, idle_timeout, min_pace)
    gate.transfer = machine
    await _agree(gate, machine, idle_timeout, limit_s)


def _started(gate: TransferGate, what: str) -> ReleaseTransfer:
    machine = gate.transfer
    if machine is None or gate.decided is None:
        raise LocalProtocolError(f"agree on the decided pairs before {what}")
    return machine


async def exchange_labels(
    gate: TransferGate,
    *,
    request: Callable[[Sequence[Sequence[bytes]], int], bytes],
    answer: Callable[[bytes], bytes],
    outputs: Callable[[Sequence[Sequence[bytes]], bytes, int], list[bytes]],
    idle_timeout: float,
) -> dict[tuple[bytes, ...], bytes]:
    """The label evaluation of release transfer v3 (§10.2), after :func:`agree_decided_pairs`:
    both sides hold the same list of pairs (:func:`label_pairs` of the agreed pairs). Each sends
    LABELS frames, ``u32(seq) || points`` with ``request(pairs[chunk], chunk.start)``, at most
    :data:`LABEL_CHUNK` points each; answers each of the peer's with LABEL_ANSWERS,
    ``u32(seq) || answer(points)``; and finalises the answers to its own with ``outputs``.
    Returns decided pair -> the OPRF output under the peer's key (``PsiSession.labels``:
    ``request``, ``answer``, ``outputs``).

    Sending runs beside receiving, so two sides with much to send never block each other.
    Raises :class:`TransferError` for a frame out of order (``UNEXPECTED_MESSAGE``), a chunk
    of the wrong size (``WRONG_COUNT``) or a bad point of the peer (the code the callbacks
    give: ``INVALID_ELEMENT``, ``IDENTITY_ELEMENT``), :class:`~xlink.transport.TransportTimeout`
    after ``idle_timeout`` seconds of silence, :class:`LocalProtocolError` if the decided pairs
    were not agreed first (or the labels were already exchanged)."""
    machine = _started(gate, "exchanging labels")
    machine.evaluate_labels(request=request, answer=answer, outputs=outputs)
    await _exchange(gate, machine, idle_timeout, until=TransferState.LABELLED)
    assert machine.peer_outputs is not None
    return machine.peer_outputs


async def offer_releases(gate: TransferGate, count: int, idle_timeout: float) -> int:
    """Reciprocal release (§10.5), after :func:`agree_decided_pairs` (and
    :func:`exchange_labels`): send COUNT, the ``count`` releases we could send, and read the
    peer's. Returns how many releases each side sends, the fewer of the two: exactly that many
    of ours go to :func:`transfer_releases`, and the rest stay with us.

    Raises :class:`TransferError` when the peer's next frame is not a COUNT
    (``UNEXPECTED_MESSAGE``) or announces more releases than we decided matches
    (``TOO_MANY_RELEASES``); :class:`~xlink.transport.TransportTimeout` after ``idle_timeout``
    seconds of silence; :class:`LocalProtocolError` if the decided pairs were not agreed
    first, the transfer is not reciprocal, or ``count`` is above our decided matches."""
    machine = _started(gate, "offering releases")
    machine.offer(count)
    await _exchange(gate, machine, idle_timeout, until=TransferState.COUNTED)
    assert machine.to_send is not None
    return machine.to_send


async def transfer_releases(
    gate: TransferGate,
    ours: Sequence[SealedRelease],
    store_one: StoreOne,
    idle_timeout: float,
    encode: Callable[[SealedRelease], bytes] | None = None,
    on_answer: OnAnswer | None = None,
    *,
    batch: Commits | None = None,
    window: ReciprocalWindow | None = None,
) -> TransferResult:
    """Release transfer v3 after :func:`agree_decided_pairs` (and :func:`exchange_labels`):
    send COUNT, our releases, END; answer each of the peer's releases with ``store_one(data)``
    — an :class:`~xlink.release.transfer.Answer`, ``(True, receipt)`` or ``(False, reason)``,
    and whether a receipt credits the peer (§10.5) — as RECEIPT or REFUSED, then RECEIPTS_END;
    read the same from the peer. ``encode`` turns each of our releases into the RELEASE
    frame's body (the runner labels them, :mod:`xlink.release.label`; default: the sealed
    bytes as they are). ``on_answer(index, ok, answer)`` gets each of the peer's answers to
    ours as it arrives (:class:`~xlink.release.ReceiptSettler` settles it then). ``batch``
    commits what those three write in few commits (the module's docstring).

    Under a reciprocal MOU, :func:`offer_releases` came first and ``ours`` holds exactly the
    number it returned; no COUNT is sent here. ``window`` paces them (default: the
    transfer's own, :class:`~xlink.release.transfer.PerTransferWindow`); with ``batch`` it
    writes in the batch (an agency's ledger), and the releases it allows leave once that is
    committed.

    Raises :class:`TransferError`: a COUNT above our number of decided matches
    (``TOO_MANY_RELEASES``, before any of the peer's releases is stored), a frame out of order
    or a count that disagrees (``UNEXPECTED_MESSAGE``); :class:`~xlink.transport.TransportTimeout`
    after ``idle_timeout`` seconds of silence; :class:`LocalProtocolError` if the decided pairs
    were not agreed first, or if ``ours`` has more releases than we decided matches;
    ``ValueError`` for a refusal reason of ``store_one`` longer than 200 bytes. Whatever
    ``store_one`` raises (:class:`~xlink.errors.BadRelease`, from the agency's
    ``ending_on_dishonesty``) ends the transfer the same way: the machine aborted, ``batch``
    flushed, the answers it held never sent, nothing more of ours sent.
    """
    machine = _started(gate, "transferring releases")
    decided = gate.decided
    assert decided is not None
    if len(ours) > decided:
        raise LocalProtocolError("more releases than decided matches")
    if machine.reciprocal and len(ours) != machine.to_send:
        raise LocalProtocolError(f"{machine.to_send} releases are due, not {len(ours)}")
    if batch is not None:
        batch.open()
    try:
        try:
            bodies = [s.data if encode is None else encode(s) for s in ours]
            machine.send_releases(bodies, window=window)
        finally:
            if batch is not None:  # what encode and the window wrote is durable first
                batch.flush()
    except BaseException:
        _abort(machine)
        raise
    await _exchange(
        gate,
        machine,
        idle_timeout,
        until=TransferState.DONE,
        store_one=store_one,
        on_answer=on_answer,
        batch=batch,
        window_writes=window is not None and batch is not None,
    )
    assert machine.result is not None
    return machine.result


async def run_transfer(
    gate: TransferGate,
    machine: ReleaseTransfer,
    *,
    labels: LabelFunctions | None,
    releases: Callable[[Mapping[tuple[bytes, ...], bytes]], Sequence[bytes]],
    store_one: StoreOne,
    idle_timeout: float,
    min_pace: float = MIN_TRANSFER_PACE,
) -> TransferResult:
    """The whole release transfer in one call, with ``machine`` (fresh: our DIGEST not yet
    sent) on ``gate``: the digests (:func:`agree_decided_pairs`), the label evaluation with
    ``labels`` (``PsiSession.labels``; None: no label evaluation, releases unlabelled), then
    ``releases(outputs)`` — called once, with the peer's outputs, after the labels and before
    anything more is sent: it builds and encodes our releases — and the releases both ways
    (:func:`transfer_releases`, each of the peer's answered with ``store_one``). With a
    reciprocal ``machine`` (§10.5) only the first ``to_send`` of them leave; the result's
    ``answers`` says how many.

    Raises what the three steps raise; :class:`LocalProtocolError` if ``gate`` already has a
    transfer or ``machine`` has started. The time limit is as :func:`agree_decided_pairs`'s."""
    if gate.transfer is not None:
        raise LocalProtocolError("this connection already has a release transfer")
    if machine.state is not TransferState.AGREEING:
        raise LocalProtocolError("run_transfer needs a fresh ReleaseTransfer")
    limit_s = transfer_time_limit(machine.decided, idle_timeout, min_pace)
    gate.transfer = machine
    await _agree(gate, machine, idle_timeout, limit_s)
    outputs: Mapping[tuple[bytes, ...], bytes] = {}
    if labels is not None:
        machine.evaluate_labels(
            request=labels.request, answer=labels.answer, outputs=labels.outputs
        )
        await _exchange(gate, machine, idle_timeout, until=TransferState.LABELLED)
        assert machine.peer_outputs is not None
        outputs = machine.peer_outputs
    try:
        bodies = releases(outputs)
        if machine.reciprocal:  # §10.5: what the peer offers bounds what we send
            bodies = bodies[: await offer_releases(gate, len(bodies), idle_timeout)]
        machine.send_releases(bodies)
    except BaseException:
        _abort(machine)
        raise
    await _exchange(gate, machine, idle_timeout, until=TransferState.DONE, store_one=store_one)
    assert machine.result is not None
    return machine.result
