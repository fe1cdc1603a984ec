"""Release transfer v3 as a sans-I/O state machine: bytes in, events out (xlink-release-v1 §10).

After a PSI session the two parties keep its connection and run, over it: ``DIGEST`` (the
decided pairs agree, §10.1), the label evaluation (``LABELS`` / ``LABEL_ANSWERS``, §10.2),
then ``COUNT``, ``RELEASE`` frames and ``END`` each way, every release answered by ``RECEIPT``
or ``REFUSED`` and the answers closed by ``RECEIPTS_END``. A :class:`ReleaseTransfer` is one
side of that; like :class:`~xlink.protocol.session.PsiSession` it never touches a socket, a
clock or a store. The caller moves frames and makes the local decisions:

* :meth:`ReleaseTransfer.next_frame` gives the next frame to send (None: nothing is due);
* :meth:`ReleaseTransfer.receive` takes one frame of the peer and returns events;
* :meth:`ReleaseTransfer.evaluate_labels` starts the label evaluation once the digests agree
  (:class:`DecisionsAgreed`), with the session's label functions;
* :meth:`ReleaseTransfer.send_releases` gives our encoded releases once the labels are
  evaluated (:class:`LabelsEvaluated`), or right after the agreement for an unlabelled
  transfer;
* :meth:`ReleaseTransfer.answer` answers the peer's release of a :class:`ReleaseReceived`
  event (our store's receipt or refusal) before the next frame is received.

Under an MOU with ``release.reciprocal`` (§10.5) the releases take two calls:
:meth:`ReleaseTransfer.offer` sends our COUNT (how many we could send); once the peer's is in
(state COUNTED), :meth:`ReleaseTransfer.send_releases` takes exactly
:attr:`ReleaseTransfer.to_send` of them, the fewer of the two offers, and
:meth:`ReleaseTransfer.next_frame` gives our releases only as far as a
:class:`ReciprocalWindow` allows, asked again after each of the peer's releases we answer
with a receipt that credits it (a refusal opens nothing, nor does a receipt for a copy the
store credited before: see :class:`Answer`). :class:`PerTransferWindow` lets release ``i``
out once ``i + 1 - RECIPROCAL_AHEAD`` are credited; an agency's window counts over every
exchange. Our answers do not wait behind our releases the window holds.

The transfer ends with :class:`TransferComplete` (state DONE). Every frame the peer should not
have sent (malformed, of another version, unknown, out of order, replayed, oversize, a count
that disagrees, a dishonest claim) raises :class:`TransferError` with its
:class:`~xlink.protocol.abort.AbortCode`; the machine is then ABORTED and gives no frame
any more, so nothing is released after an abort. Release transfer v3 has no abort frame: the
driver closes the connection. Calls the current state does not allow raise
:class:`~xlink.errors.LocalProtocolError` and change nothing.

The async driver over a connection is :mod:`xlink.transport.release_transfer`.
:class:`~xlink.errors.TransferError` and :class:`~xlink.errors.DecisionMismatch` live in the
one exception tree, :mod:`xlink.errors`, and are re-exported here.
"""

from __future__ import annotations

import hmac
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple, Protocol

from xlink.errors import (
    BadRelease,
    DecisionMismatch,
    LocalProtocolError,
    RemoteProtocolError,
    TransferError,
)
from xlink.protocol.abort import AbortCode
from xlink.protocol.config import Role
from xlink.release._frames import (
    DIGEST_SIZE,
    DST_DECIDED_PAIRS,
    LABEL_CHUNK,
    MAGIC_FAMILY,
    MAX_RECEIPT_SIZE,
    MAX_REFUSAL_SIZE,
    POINT_SIZE,
    RELEASE_MAGIC,
    SENDER_BYTE,
    U32,
    FrameType,
    check_magic,
    decided_pairs_digest,
    label_pairs,
    split_frame,
    transfer_frame,
)

__all__ = [
    "DST_DECIDED_PAIRS",
    "LABEL_CHUNK",
    "MAGIC_FAMILY",
    "MAX_RECEIPT_SIZE",
    "MAX_REFUSAL_SIZE",
    "RECIPROCAL_AHEAD",
    "RELEASE_MAGIC",
    "SENDER_BYTE",
    "Answer",
    "DecisionMismatch",
    "DecisionsAgreed",
    "FrameType",
    "LabelsEvaluated",
    "OffersCounted",
    "PerTransferWindow",
    "ReciprocalWindow",
    "ReleaseAnswered",
    "ReleaseReceived",
    "ReleaseTransfer",
    "TransferComplete",
    "TransferError",
    "TransferEvent",
    "TransferResult",
    "TransferState",
    "check_magic",
    "decided_pairs_digest",
    "label_pairs",
    "split_frame",
    "transfer_frame",
]


#: Under a reciprocal MOU (§10.5), the most releases of ours out beyond the peer's releases we
#: credited: what a peer that stops or cheats after its COUNT can have beyond what it gave.
#: An agency counts both over every exchange under the MOU (a :class:`ReciprocalWindow` of its
#: ledger), so a peer that cheats again in a later exchange gets no more.
RECIPROCAL_AHEAD = 8


class ReciprocalWindow(Protocol):
    """§10.5: how many of our releases, in the order we send them, may have left, once
    ``credited`` of the peer's releases in this transfer were answered with a receipt that
    credits it. Asked when our releases are given to the machine and after each crediting
    answer; what it returns never shrinks within a transfer."""

    def allowed(self, credited: int) -> int: ...


class PerTransferWindow:
    """The window of one transfer alone: :data:`RECIPROCAL_AHEAD` beyond this transfer's
    credits, nothing carried from an exchange before (what the conformance runner and a
    transfer without a ledger use)."""

    def allowed(self, credited: int) -> int:
        return credited + RECIPROCAL_AHEAD


class Answer(NamedTuple):
    """Our answer to one release of the peer (:meth:`ReleaseTransfer.answer`): ``ok`` with
    the receipt, or not with the refusal reason. ``credit`` (reciprocal, §10.5): whether a
    receipt opens our window; false for a copy of a release we hold that credited the peer
    before (an honest peer sends a release again after a lost receipt, and had it counted
    once; one that sends the same again and again is given nothing more of ours for it)."""

    ok: bool
    body: bytes
    credit: bool = True


class TransferState(Enum):
    """Where one side of the transfer is.

    AGREEING: our DIGEST is due or out, the peer's is awaited. AGREED: the peer's digest is the
    one we expect of its role for our decisions;
    waiting for the caller (:meth:`~ReleaseTransfer.evaluate_labels` or
    :meth:`~ReleaseTransfer.send_releases`). LABELLING: the label evaluation. LABELLED: its
    outputs are known; waiting for :meth:`~ReleaseTransfer.send_releases` (or, reciprocal,
    :meth:`~ReleaseTransfer.offer`). OFFERING (reciprocal): our COUNT is due or out, the
    peer's is awaited. COUNTED (reciprocal): both offers known; waiting for
    :meth:`~ReleaseTransfer.send_releases`. RELEASING: releases and answers both ways. DONE:
    the peer's END and RECEIPTS_END are in (frames of ours may still be due). ABORTED: ended by
    an error; nothing more is sent.
    """

    AGREEING = "agreeing"
    AGREED = "agreed"
    LABELLING = "labelling"
    LABELLED = "labelled"
    OFFERING = "offering"
    COUNTED = "counted"
    RELEASING = "releasing"
    DONE = "done"
    ABORTED = "aborted"


@dataclass
class TransferResult:
    """What a completed transfer moved: how many releases the peer sent (each was handed out
    as a :class:`ReleaseReceived` when it came, and is not kept: a partner padding each to the
    frame's limit would otherwise have us hold a mebibyte per decided match until the end)
    and the peer's answer to each of ours, ``(True, receipt)`` or ``(False, reason)``."""

    peer_releases: int
    answers: list[tuple[bool, bytes]]  # per release of ours: (receipt?, receipt or reason)


@dataclass(frozen=True, slots=True)
class DecisionsAgreed:
    """The peer's digest is the one we expect: both decided the same ``decided`` matches."""

    decided: int


@dataclass(frozen=True, slots=True)
class LabelsEvaluated:
    """The label evaluation is over: decided pair (its handles, ascending) -> its OPRF output
    under the peer's key."""

    outputs: Mapping[tuple[bytes, ...], bytes]


@dataclass(frozen=True, slots=True)
class OffersCounted:
    """Reciprocal (§10.5): our offer, the peer's, and how many each side sends (the fewer)."""

    ours: int
    peer: int
    to_send: int


@dataclass(frozen=True, slots=True)
class ReleaseReceived:
    """The peer's release number ``index`` (from 0): answer it with
    :meth:`ReleaseTransfer.answer` before receiving anything else."""

    index: int
    data: bytes


@dataclass(frozen=True, slots=True)
class ReleaseAnswered:
    """The peer answered our release number ``index``: ``ok`` with its receipt, or not with
    its reason."""

    index: int
    ok: bool
    answer: bytes


@dataclass(frozen=True, slots=True)
class TransferComplete:
    """Both sides' releases are in and answered."""

    result: TransferResult


TransferEvent = (
    DecisionsAgreed
    | LabelsEvaluated
    | OffersCounted
    | ReleaseReceived
    | ReleaseAnswered
    | TransferComplete
)


_Request = Callable[[Sequence[Sequence[bytes]], int], bytes]
_Answer = Callable[[bytes], bytes]
_Outputs = Callable[[Sequence[Sequence[bytes]], bytes, int], list[bytes]]


class ReleaseTransfer:
    """One side of one release transfer v3 (xlink-release-v1 §10), after the PSI session
    ``session_id`` in which this side, of ``role`` in that session, decided the matches
    ``pairs`` (each the shared handles of one decided match,
    :attr:`xlink.decide.DecidedMatch.handles`; any order).

    Construction queues our DIGEST (state AGREEING), which names our role; the peer's must be
    the digest of the same pairs naming the other role. Raises ``ValueError`` as
    :func:`decided_pairs_digest`.

    Send the DIGEST before reading the peer's first frame: the machine gives no frame after an
    abort, and a peer must have our digest to tell a mismatch (``DECISION_MISMATCH``) from a
    hang-up.

    ``reciprocal``: the MOU's ``release.reciprocal`` (§10.5); both sides must run alike.
    """

    def __init__(
        self,
        session_id: bytes,
        pairs: Iterable[Iterable[bytes]],
        *,
        role: Role,
        reciprocal: bool = False,
    ) -> None:
        decided = [tuple(pair) for pair in pairs]
        if not isinstance(role, Role):
            raise ValueError("role must be a Role")
        peer = Role.RESPONDER if role is Role.INITIATOR else Role.INITIATOR
        self._digest = decided_pairs_digest(session_id, decided, sender=role)
        self._peer_digest = decided_pairs_digest(session_id, decided, sender=peer)
        self.session_id = session_id
        self.pairs: tuple[tuple[bytes, ...], ...] = tuple(decided)
        self.decided = len(decided)
        """Our number of decided matches: the most releases the peer may send."""
        self.reciprocal = reciprocal
        self._offered: int | None = None  # our COUNT, reciprocal
        self.to_send: int | None = None
        """Reciprocal, once COUNTED: how many releases we send, the fewer of the two offers."""
        self.peer_offer: int | None = None
        """Reciprocal, once COUNTED: the peer's COUNT, the releases it could send."""
        self._state = TransferState.AGREEING
        self._agreed = False
        self._out: deque[bytes] = deque([transfer_frame(FrameType.DIGEST, self._digest)])
        # Our answers to the peer's releases (RECEIPT, REFUSED, RECEIPTS_END): after every
        # frame of ``_out``, or before our releases the reciprocal window holds (§10.5).
        self._answers_out: deque[bytes] = deque()
        # The label evaluation.
        self._pairs: tuple[tuple[bytes, ...], ...] = ()
        self._spans: list[range] = []
        self._answer_points: _Answer | None = None
        self._outputs_of: _Outputs | None = None
        self._requests_sent = 0  # our LABELS given out by next_frame
        self._requests_answered = 0  # the peer's LABELS we answered
        self._outputs: list[list[bytes] | None] = []
        self.peer_outputs: dict[tuple[bytes, ...], bytes] | None = None
        """Decided pair -> OPRF output under the peer's key, once LABELLED (None before)."""
        # The releases.
        self._ours = 0
        self._releases_sent = 0  # our RELEASE frames given out by next_frame
        self._end_sent = False  # our END given out by next_frame
        self._expected: int | None = None  # the peer's COUNT
        self._peer_releases = 0  # the peer's RELEASE frames received
        self._peer_done = False  # the peer's END is in
        self._credited = 0  # the peer's releases we answered with a receipt that credits
        self._window: ReciprocalWindow = PerTransferWindow()
        self._allowed = 0  # reciprocal: how many of ours the window lets out so far
        self._answers: list[tuple[bool, bytes]] = []
        self._receipts_done = False  # the peer's RECEIPTS_END is in
        self._pending: int | None = None  # the peer's release awaiting our answer
        self.result: TransferResult | None = None
        """What the transfer moved, once DONE (None before)."""

    # -- public API -------------------------------------------------------------------------

    @property
    def state(self) -> TransferState:
        return self._state

    @property
    def done(self) -> bool:
        """True once the transfer is DONE or ABORTED."""
        return self._state in (TransferState.DONE, TransferState.ABORTED)

    @property
    def agreed(self) -> bool:
        """True once the peer's digest was found the one expected (and after, even if the
        transfer was aborted later)."""
        return self._agreed

    @property
    def answers_queued(self) -> int:
        """Our answers (and RECEIPTS_END) not given out by :meth:`next_frame` yet."""
        return len(self._answers_out)

    @property
    def allowed(self) -> int:
        """Reciprocal (§10.5), once RELEASING: how many of our releases the window lets out
        so far (the first that many, in order); unbounded otherwise."""
        return self._allowed if self.reciprocal else self._ours

    @property
    def awaiting_answer(self) -> int | None:
        """The index of the peer's release that :meth:`answer` must answer next, or None."""
        return self._pending

    def next_frame(self, answers: int | None = None, releases: int | None = None) -> bytes | None:
        """The next frame to send, or None when nothing is due until a frame arrives or the
        caller acts (always None once ABORTED). Our answers to the peer's releases (RECEIPT,
        REFUSED, then RECEIPTS_END) follow our other frames, or go first while the reciprocal
        window holds our next release. ``answers``: how many more RECEIPT or REFUSED frames
        may leave now (None: any; a driver that makes answers durable first says how many
        are); ``releases``: how many of our releases may have left by now (None: as many as
        the window lets out; a driver whose window writes to a ledger says how many of those
        writes are durable). Our other frames never wait behind one that may not."""
        if self._state is TransferState.ABORTED:
            return None
        if self._out:
            kind = self._out[0][len(RELEASE_MAGIC)]
            if kind != FrameType.RELEASE or self._releases_sent < min(
                self.allowed, self._ours if releases is None else releases
            ):
                return self._ours_next(kind)
            # §10.5: no further ahead of the peer's releases; our answers go on meanwhile
        if not self._answers_out:
            return None
        kind = self._answers_out[0][len(RELEASE_MAGIC)]
        if answers is not None and answers <= 0 and kind != FrameType.RECEIPTS_END:
            return None
        return self._answers_out.popleft()

    def _ours_next(self, kind: int) -> bytes:
        frame = self._out.popleft()
        if kind == FrameType.RELEASE:
            self._releases_sent += 1
        elif kind == FrameType.END:
            self._end_sent = True
        elif kind == FrameType.LABELS:
            self._requests_sent += 1
        return frame

    def receive(self, frame: bytes) -> list[TransferEvent]:
        """Process one frame of the peer and return the events it caused.

        If the frame is not allowed, the machine moves to ABORTED (dropping every frame not
        yet given out) and raises :class:`TransferError` with the code; an error of a label
        function (a bad point: ``INVALID_ELEMENT``, ``IDENTITY_ELEMENT``) is raised as a
        :class:`TransferError` with its code, any other exception of theirs as it is, after
        the abort. Raises :class:`~xlink.errors.LocalProtocolError`, changing nothing, when
        the machine is ABORTED, waits for the caller (AGREED, LABELLED, or a release to
        answer), or ``TypeError`` if ``frame`` is not bytes. A frame after DONE is the peer's
        error (``UNEXPECTED_MESSAGE``).
        """
        if self._state is TransferState.ABORTED:
            raise LocalProtocolError("the release transfer was aborted")
        if self._state in (TransferState.AGREED, TransferState.LABELLED, TransferState.COUNTED):
            raise LocalProtocolError(f"the transfer waits for the caller ({self._state.value})")
        if self._pending is not None:
            raise LocalProtocolError("answer the peer's release before receiving more")
        if not isinstance(frame, bytes | bytearray | memoryview):
            raise TypeError("a frame is bytes")
        data = bytes(frame)
        try:
            kind, body = split_frame(data)
            return self._dispatch(kind, body)
        except TransferError:
            self._fail()
            raise
        except RemoteProtocolError as exc:  # a label function refused a point of the peer
            self._fail()
            raise TransferError(exc.detail, exc.code) from exc
        except Exception:
            self._fail()
            raise

    def evaluate_labels(
        self,
        *,
        request: _Request,
        answer: _Answer,
        outputs: _Outputs,
    ) -> list[TransferEvent]:
        """Start the label evaluation (xlink-release-v1 §10.2), once AGREED: queue our LABELS
        frames, ``u32(seq) || request(pairs[chunk], chunk.start)`` for each chunk of at most
        :data:`LABEL_CHUNK` pairs; answer the peer's with ``answer(points)``; turn the answers
        to ours into outputs with ``outputs(pairs[chunk], answers, chunk.start)``
        (``PsiSession.labels``: ``request``, ``answer``, ``outputs``). ``pairs`` is always
        :func:`label_pairs` of our decided pairs: the list fixes how many points the peer may
        have evaluated, so no caller can widen it.

        Returns ``[LabelsEvaluated({})]`` (state LABELLED) when there is no pair: nothing is
        sent. Raises :class:`~xlink.errors.LocalProtocolError` unless AGREED; the exceptions of
        ``request`` (nothing changed).
        """
        if self._state is not TransferState.AGREED:
            raise LocalProtocolError(f"labels are evaluated once agreed, not {self._state.value}")
        listed = tuple(label_pairs(self.pairs))
        spans = [
            range(i, min(i + LABEL_CHUNK, len(listed))) for i in range(0, len(listed), LABEL_CHUNK)
        ]
        requests = [
            transfer_frame(
                FrameType.LABELS,
                U32.pack(seq) + request(listed[span.start : span.stop], span.start),
            )
            for seq, span in enumerate(spans)
        ]
        self._pairs, self._spans = listed, spans
        self._answer_points, self._outputs_of = answer, outputs
        self._outputs = [None] * len(spans)
        self._out.extend(requests)
        self._state = TransferState.LABELLING
        return self._labels_progress()

    def offer(self, count: int) -> None:
        """Reciprocal (§10.5): queue our COUNT, the releases we could send (state OFFERING),
        from AGREED (an unlabelled transfer) or LABELLED; once the peer's COUNT is in (state
        COUNTED), :meth:`send_releases` takes :attr:`to_send` of them. Raises
        :class:`~xlink.errors.LocalProtocolError` for a transfer that is not reciprocal, in
        another state, or for a count outside ``0 .. decided`` (nothing changed)."""
        if not self.reciprocal:
            raise LocalProtocolError("only a reciprocal transfer offers before it sends")
        if self._state not in (TransferState.AGREED, TransferState.LABELLED):
            raise LocalProtocolError(f"releases are offered once agreed, not {self._state.value}")
        if not 0 <= count <= self.decided:
            raise LocalProtocolError("an offer of more releases than decided matches")
        self._offered = count
        self._out.append(transfer_frame(FrameType.COUNT, U32.pack(count)))
        self._state = TransferState.OFFERING

    def send_releases(
        self, releases: Sequence[bytes], *, window: ReciprocalWindow | None = None
    ) -> None:
        """Queue COUNT, our releases (the RELEASE bodies: labelled releases, §10.2) and END;
        from AGREED (an unlabelled transfer) or LABELLED. Reciprocal (§10.5): from COUNTED,
        exactly :attr:`to_send` releases, and no COUNT (:meth:`offer` sent it), paced by
        ``window`` (default :class:`PerTransferWindow`), asked now and after each crediting
        answer. Raises :class:`~xlink.errors.LocalProtocolError` in another state, for more
        releases than we decided matches, or (reciprocal) for another number than
        :attr:`to_send` (nothing changed)."""
        if self.reciprocal:
            if self._state is not TransferState.COUNTED:
                raise LocalProtocolError(f"releases are sent once counted, not {self._state.value}")
            if len(releases) != self.to_send:
                raise LocalProtocolError(f"{self.to_send} releases are due, not {len(releases)}")
        elif self._state not in (TransferState.AGREED, TransferState.LABELLED):
            raise LocalProtocolError(f"releases are sent once agreed, not {self._state.value}")
        if len(releases) > self.decided:
            raise LocalProtocolError("more releases than decided matches")
        bodies = [bytes(r) for r in releases]
        if self.reciprocal:
            self._window = PerTransferWindow() if window is None else window
            self._allowed = self._window.allowed(self._credited)
        self._ours = len(bodies)
        if not self.reciprocal:
            self._out.append(transfer_frame(FrameType.COUNT, U32.pack(len(bodies))))
        self._out.extend(transfer_frame(FrameType.RELEASE, b) for b in bodies)
        self._out.append(transfer_frame(FrameType.END))
        self._state = TransferState.RELEASING

    def answer(self, ok: bool, answer: bytes, credit: bool = True) -> None:
        """Answer the peer's release of the last :class:`ReleaseReceived` (the fields of an
        :class:`Answer`): ``(True, receipt)`` queues RECEIPT, ``(False, reason)`` REFUSED;
        reciprocal (§10.5), a receipt opens our window by one unless ``credit`` is false, and a
        refusal aborts the transfer instead, sending nothing more, and raises
        :class:`~xlink.errors.BadRelease` with the reason. Raises
        :class:`~xlink.errors.LocalProtocolError` when no release awaits an answer,
        ``ValueError`` for a reason longer than :data:`MAX_REFUSAL_SIZE` bytes (nothing
        changed either way)."""
        if self._pending is None:
            raise LocalProtocolError("no release of the peer awaits an answer")
        body = bytes(answer)
        if not ok and len(body) > MAX_REFUSAL_SIZE:
            raise ValueError(f"a refusal reason is at most {MAX_REFUSAL_SIZE} bytes")
        if not ok and self.reciprocal:  # §10.5: every refusal ends the transfer, unanswered
            self._fail()
            raise BadRelease(body.decode("ascii", "replace"))
        kind = FrameType.RECEIPT if ok else FrameType.REFUSED
        self._answers_out.append(transfer_frame(kind, body))
        self._pending = None
        if ok and credit:  # §10.5: a refusal opens no window (bad dates would earn ours)
            self._credited += 1
            if self.reciprocal:
                self._allowed = max(self._allowed, self._window.allowed(self._credited))

    def peer_closed(self) -> None:
        """The peer closed the connection. Before DONE that ends the transfer: raises
        :class:`TransferError` (``UNEXPECTED_MESSAGE``), ABORTED. Raises
        :class:`~xlink.errors.LocalProtocolError` once ABORTED."""
        if self._state is TransferState.ABORTED:
            raise LocalProtocolError("the release transfer was aborted")
        if self._state is not TransferState.DONE:
            self._fail()
            raise TransferError("the peer closed the connection during the release transfer")

    def abort(self) -> None:
        """End the transfer locally (a timeout, a failure of our own): ABORTED, and no frame
        is given any more. Raises :class:`~xlink.errors.LocalProtocolError` once done."""
        if self.done:
            raise LocalProtocolError("the release transfer is already finished")
        self._fail()

    # -- internals ----------------------------------------------------------------------------

    def _fail(self) -> None:
        self._state = TransferState.ABORTED
        self._out.clear()
        self._answers_out.clear()
        self._pending = None
        self._answer_points = self._outputs_of = None
        self._outputs = []

    def _dispatch(self, kind: FrameType, body: bytes) -> list[TransferEvent]:
        if self._state is TransferState.AGREEING:
            return self._on_digest(kind, body)
        if self._state is TransferState.LABELLING:
            return self._on_label_frame(kind, body)
        if self._state is TransferState.OFFERING:
            return self._on_offer(kind, body)
        if self._state is TransferState.RELEASING:
            return self._on_release_frame(kind, body)
        raise TransferError(f"frame {int(kind)} after the release transfer was done")

    def _on_digest(self, kind: FrameType, body: bytes) -> list[TransferEvent]:
        if kind is not FrameType.DIGEST or len(body) != DIGEST_SIZE:
            raise TransferError(f"expected the decided-pairs digest, got frame {int(kind)}")
        if not hmac.compare_digest(body, self._peer_digest):
            raise DecisionMismatch()  # another decision, or our own digest sent back
        self._agreed = True
        self._state = TransferState.AGREED
        return [DecisionsAgreed(self.decided)]

    def _on_label_frame(self, kind: FrameType, body: bytes) -> list[TransferEvent]:
        if kind not in (FrameType.LABELS, FrameType.LABEL_ANSWERS) or len(body) < U32.size:
            raise TransferError(f"unexpected frame {int(kind)} during the label exchange")
        seq, points = U32.unpack(body[: U32.size])[0], body[U32.size :]
        if kind is FrameType.LABELS:
            if seq != self._requests_answered or seq >= len(self._spans):
                raise TransferError("label request out of order")
            if len(points) != POINT_SIZE * len(self._spans[seq]):
                raise TransferError("wrong number of label points", AbortCode.WRONG_COUNT)
            assert self._answer_points is not None
            evaluated = self._answer_points(points)
            self._out.append(transfer_frame(FrameType.LABEL_ANSWERS, body[:4] + evaluated))
            self._requests_answered += 1
        else:
            if seq >= self._requests_sent or self._outputs[seq] is not None:
                raise TransferError("label answer out of order")
            span = self._spans[seq]
            if len(points) != POINT_SIZE * len(span):
                raise TransferError("wrong number of label answers", AbortCode.WRONG_COUNT)
            assert self._outputs_of is not None
            chunk = self._pairs[span.start : span.stop]
            got = self._outputs_of(chunk, points, span.start)
            if len(got) != len(chunk):
                raise ValueError("the outputs function gave the wrong number of outputs")
            self._outputs[seq] = got
        return self._labels_progress()

    def _labels_progress(self) -> list[TransferEvent]:
        if self._requests_answered < len(self._spans) or any(o is None for o in self._outputs):
            return []
        outputs: dict[tuple[bytes, ...], bytes] = {}
        for span, got in zip(self._spans, self._outputs, strict=True):
            assert got is not None
            outputs.update(zip(self._pairs[span.start : span.stop], got, strict=True))
        self.peer_outputs = outputs
        self._answer_points = self._outputs_of = None
        self._outputs = []
        self._state = TransferState.LABELLED
        return [LabelsEvaluated(outputs)]

    def _count(self, body: bytes) -> int:
        expected: int = U32.unpack(body)[0]
        if expected > self.decided:
            raise TransferError(
                f"{expected} releases announced for {self.decided} decided matches",
                AbortCode.TOO_MANY_RELEASES,
            )
        return expected

    def _on_offer(self, kind: FrameType, body: bytes) -> list[TransferEvent]:
        # Reciprocal: the peer's first frame after the labels is its COUNT, its offer.
        if kind is not FrameType.COUNT or len(body) != U32.size:
            raise TransferError(f"expected the peer's COUNT, got frame {int(kind)}")
        assert self._offered is not None
        offer = self.peer_offer = self._count(body)
        self.to_send = self._expected = min(offer, self._offered)
        self._state = TransferState.COUNTED
        return [OffersCounted(self._offered, offer, self.to_send)]

    def _on_release_frame(self, kind: FrameType, body: bytes) -> list[TransferEvent]:
        if (
            kind is FrameType.COUNT
            and self._expected is None
            and not self.reciprocal
            and len(body) == U32.size
        ):
            self._expected = self._count(body)
            return []
        if kind is FrameType.RELEASE and self._expected is not None and not self._peer_done:
            if self._peer_releases >= self._expected:
                raise TransferError("more releases than announced")
            index = self._peer_releases
            self._peer_releases += 1
            self._pending = index
            return [ReleaseReceived(index, body)]
        if kind is FrameType.END and self._expected is not None and not self._peer_done:
            if body:
                raise TransferError("END has no body")
            if self._peer_releases != self._expected:
                raise TransferError("fewer releases than announced")
            self._peer_done = True
            end = transfer_frame(FrameType.RECEIPTS_END, U32.pack(self._expected))
            self._answers_out.append(end)
            return self._releases_progress([])
        if kind is FrameType.REFUSED and self.reciprocal:
            raise TransferError("a refusal under a reciprocal transfer (§10.5 ends it instead)")
        if kind in (FrameType.RECEIPT, FrameType.REFUSED) and not self._receipts_done:
            if len(self._answers) >= self._ours:
                raise TransferError("more receipts than releases")
            if len(self._answers) >= self._releases_sent:
                raise TransferError("an answer to a release not sent yet")
            if kind is FrameType.REFUSED and len(body) > MAX_REFUSAL_SIZE:
                raise TransferError(f"a refusal reason longer than {MAX_REFUSAL_SIZE} bytes")
            if kind is FrameType.RECEIPT and len(body) > MAX_RECEIPT_SIZE:
                raise TransferError(f"a receipt longer than {MAX_RECEIPT_SIZE} bytes")
            answered = (kind is FrameType.RECEIPT, body)
            self._answers.append(answered)
            return [ReleaseAnswered(len(self._answers) - 1, *answered)]
        if kind is FrameType.RECEIPTS_END and not self._receipts_done and len(body) == 4:
            if not self._end_sent:  # it follows our END (§10): the peer cannot have it yet
                raise TransferError("RECEIPTS_END before our END was sent")
            if U32.unpack(body)[0] != self._ours or len(self._answers) != self._ours:
                raise TransferError("receipts do not answer every release")
            self._receipts_done = True
            return self._releases_progress([])
        raise TransferError(f"unexpected release transfer frame {int(kind)}")

    def _releases_progress(self, events: list[TransferEvent]) -> list[TransferEvent]:
        if self._peer_done and self._receipts_done:
            self.result = TransferResult(self._peer_releases, self._answers)
            self._state = TransferState.DONE
            events.append(TransferComplete(self.result))
        return events
