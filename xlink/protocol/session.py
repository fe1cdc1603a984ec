"""The sans-I/O PSI session: bytes in, events out (spec: xlink-psi-v2 §5-§7).

A :class:`PsiSession` never touches a socket, a clock or randomness it was not given. The caller
moves messages: :meth:`PsiSession.next_message` yields the next message to send (computing at
most one chunk of blinding work), :meth:`PsiSession.receive_message` takes one message from the
peer (at most one chunk of work) and returns events. Transitions follow
:data:`xlink.protocol._state.TRANSITIONS`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from xlink.crypto.oprf import OprfScalar
from xlink.crypto.rand import RandomSource
from xlink.crypto.suite import BlindingKey, InvalidElement, get_suite
from xlink.crypto.workers import GroupWorkers
from xlink.error_codes import LOCAL_FAILURE
from xlink.errors import InternalProtocolError, LocalProtocolError, RemoteProtocolError
from xlink.linkage.tokens import TokenSet
from xlink.protocol import _keys
from xlink.protocol import limits as L
from xlink.protocol._confirm import OwnConfirmation, PeerConfirmation, SessionLabels
from xlink.protocol._matching import (
    check_seq,
    chunk_len,
    element_error,
    matched_handles,
    own_matches,
)
from xlink.protocol._own_set import OwnSet
from xlink.protocol._reveal import OwnMatches, RevealWriter, record_key_sets
from xlink.protocol._reveal_reader import PeerRevealReader
from xlink.protocol._sets import (
    Rows,
    has_duplicates,
    lookup_sorted,
    rows_of,
    sort_rows_in_place,
    sorted_has_duplicates,
)
from xlink.protocol._state import TERMINAL, State, Trigger, next_state
from xlink.protocol.abort import AbortCode, sanitize_detail
from xlink.protocol.codec import decode_message, encode_message
from xlink.protocol.config import Mode, Role, SessionConfig, padded_size
from xlink.protocol.events import (
    Aborted,
    CardinalityResult,
    Event,
    ExchangeComplete,
    HandshakeComplete,
    Progress,
    PsiResult,
)
from xlink.protocol.handshake import check_peer_hello, make_hello
from xlink.protocol.hashed import HashedTokens, dst_id
from xlink.protocol.messages import (
    Abort,
    Commit,
    ConfirmRequest,
    ConfirmResponse,
    Elements,
    Hello,
    Message,
    Reblinded,
    Reveal,
)

__all__ = ["InternalProtocolError", "PsiSession", "sanitize_detail"]

_T = TypeVar("_T")


_RECV_TRIGGER = {
    Hello: Trigger.RECV_HELLO,
    Elements: Trigger.RECV_ELEMENTS,
    Reblinded: Trigger.RECV_REBLINDED,
    Reveal: Trigger.RECV_REVEAL,
    Abort: Trigger.RECV_ABORT,
    ConfirmRequest: Trigger.RECV_CONFIRM_REQUEST,
    ConfirmResponse: Trigger.RECV_CONFIRM_RESPONSE,
    Commit: Trigger.RECV_COMMIT,
}


class PsiSession:
    """One party's side of one xlink-psi-v2 session (spec §5).

    Construction deduplicates the token values, fixes the padded size and draws, in this order
    (spec §5.3): the 32-byte nonce, the 32-byte blinding scalar, the shuffle keys and the dummy
    tokens. Raises ``ValueError`` if the padded set would exceed ``MAX_SET_SIZE``, the suite
    is unknown, or a record has more than ``MAX_HANDLES_PER_RECORD`` tokens (its reveal entry
    could not be sent, spec §6.3, §6.7).

    Failures: a message the peer should not have sent raises
    :class:`~xlink.errors.RemoteProtocolError`; a local failure while processing or producing a
    message raises :class:`InternalProtocolError`. Either way the session is then ABORTED and
    has queued an Abort for the peer (take it with :meth:`next_message`). Calls the current
    state does not allow raise :class:`~xlink.errors.LocalProtocolError` and change nothing.
    """

    def __init__(
        self,
        config: SessionConfig,
        tokens: TokenSet,
        *,
        rng: RandomSource,
        workers: GroupWorkers | None = None,
        hashed: HashedTokens | None = None,
    ) -> None:
        try:
            self._suite = get_suite(config.suite_id)
        except KeyError:
            raise ValueError("unknown ciphersuite") from None
        self.config = config
        records = np.asarray(memoryview(tokens.record_index))
        if len(records) and int(np.bincount(records).max()) > L.MAX_HANDLES_PER_RECORD:
            raise ValueError(
                f"a record has more than MAX_HANDLES_PER_RECORD ({L.MAX_HANDLES_PER_RECORD}) tokens"
            )
        self._tokens = tokens
        # Which keys each record has (the Reveal's key presence, spec §6.7), built now while
        # memory is low rather than at the end of the exchange.
        self._key_sets = record_key_sets(tokens) if config.mode is Mode.PSI else None
        self._rng = rng
        self._state = State.IDLE
        self.result: PsiResult | CardinalityResult | None = None
        self._dst = _keys.hash_to_group_dst(self._suite.name, config.mou_digest)

        self._workers = workers if workers is not None else GroupWorkers(1)
        self._own = OwnSet(tokens, hashed, dst_id(config.suite_id, config.mou_digest))
        size = padded_size(self._own.distinct_count, config.padding_bucket)
        if size > L.MAX_SET_SIZE:
            raise ValueError("padded set larger than MAX_SET_SIZE")
        if size > config.max_own_set_size:
            raise ValueError(
                f"padded set of {size} is above the MOU's bound of {config.max_own_set_size}"
            )
        self._own_total = size
        self._nonce = rng(L.NONCE_SIZE)
        self._key = BlindingKey.generate(rng)
        self._oprf_key = OprfScalar.generate(rng)
        self._confirm_seed = rng(32)
        self._own.shuffle(size, rng)
        self._own_chunks = -(-size // config.chunk_size)
        self._own_sent = self._own_returned = 0
        # The peer's answers for our slots: 16-byte direction-tagged hashes (spec §4.5).
        self._own_double: Rows | None = np.zeros((size, L.REBLINDED_SIZE), dtype=np.uint8)

        self._outbox: deque[bytes] = deque()
        self._hello_initiator = self._hello_responder = self._transcript = b""
        self.session_id: bytes | None = None
        self._peer: Hello | None = None
        self._peer_total = self._peer_chunks = self._peer_received = 0
        self._peer_chunk = 1
        # The peer's doubly-blinded set, sorted in place once complete (PSI returns are queued
        # with their bytes; CARDINALITY returns, data None, are cut from the sorted set).
        self._peer_double: Rows | None = None
        self._return_queue: deque[tuple[int, bytes | None]] = deque()
        self._returned = 0
        self._sorted_returns: npt.NDArray[np.void] = np.zeros(0, dtype=np.dtype((np.void, 16)))
        self._data_complete = False
        self._reveal_writer: RevealWriter | None = None
        self._reveal_reader: PeerRevealReader | None = None
        self._matches: OwnMatches | None = None
        self._own_confirm: OwnConfirmation | None = None
        self._peer_confirm: PeerConfirmation | None = None
        self._commit: bytes | None = None
        self._labels: OwnConfirmation | None = None
        self._matched_tokens = 0
        self._revealed: tuple[str, ...] = ()

    # -- public API -------------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    @property
    def role(self) -> Role:
        return self.config.role

    @property
    def done(self) -> bool:
        """True once the session is COMPLETE or ABORTED (spec §5)."""
        return self._state in TERMINAL

    @property
    def padded_size(self) -> int:
        """This party's padded set size, as its Hello declares it."""
        return self._own_total

    @property
    def peer_padded_size(self) -> int:
        """The peer's padded set size, as its Hello declared it; 0 before its Hello."""
        return self._peer_total

    @property
    def labels(self) -> SessionLabels:
        """The label evaluation of this completed session (spec §7.5): request, answer and
        finalise one OPRF output per pair of matched handles. Raises ``LocalProtocolError`` before
        COMPLETE (or after an abort)."""
        if self._labels is None or self._state is not State.COMPLETE:
            raise LocalProtocolError("labels need a completed PSI session")
        return SessionLabels(self._labels, self._oprf_key)

    def initiate(self) -> None:
        """Queue the initiator's Hello. Raises ``LocalProtocolError`` for a responder or when
        the session has already started (spec §5.2)."""
        self._step(Trigger.INITIATE)
        self._hello_initiator = self._own_hello()
        self._outbox.append(self._hello_initiator)

    def abort(self, code: AbortCode, detail: str) -> None:
        """End the session locally (e.g. on a transport timeout) and queue an Abort for the
        peer. Raises ``LocalProtocolError`` if the session is already finished."""
        if self.done:
            raise LocalProtocolError("session is already finished")
        self._fail(code, detail)

    def next_message(self) -> bytes | None:
        """The next message to send, or None when nothing is due until a message arrives.

        Order of preference: the Hello, the Abort, re-blinded peer chunks, own element chunks
        (one chunk of hashing and blinding per call), reveal chunks. Raises
        :class:`InternalProtocolError` (session ABORTED, Abort queued) if preparing the message
        fails locally, e.g. a token hashed to the identity (spec §4.1).
        """
        if self._outbox:
            data = self._outbox.popleft()
            if self._state is not State.ABORTED:
                self._step(Trigger.SEND_HELLO)
            else:
                self._step(Trigger.SEND_ABORT)
            return data
        if self._state is State.EXCHANGE:
            return self._guarded(self._exchange_message)
        if self._state is State.CONFIRM:
            return self._guarded(self._confirm_message)
        if self._state is State.REVEAL:
            return self._guarded(self._reveal_message)
        return None

    def receive_message(self, message: bytes) -> list[Event]:
        """Process one message from the peer and return the events it caused.

        Raises ``LocalProtocolError`` if the session is finished (``TypeError`` if ``message``
        is not bytes); neither changes the session. If the message is not allowed, queues an
        Abort for the peer, moves to ABORTED and raises ``RemoteProtocolError`` with the abort
        code. If processing fails locally, queues an Abort with ``INTERNAL_ERROR``, moves to
        ABORTED and raises :class:`InternalProtocolError`. A received Abort ends the session
        without an answer (spec §6.8). Nothing else escapes.
        """
        if self.done:
            raise LocalProtocolError("session is already finished")
        if not isinstance(message, bytes | bytearray | memoryview):
            raise TypeError("a message is bytes")
        data = bytes(message)
        return self._guarded(lambda: self._receive(data))

    # -- internals ----------------------------------------------------------------------------

    def _guarded(self, work: Callable[[], _T]) -> _T:
        """Run ``work``; turn a peer's fault or a local failure into an abort (spec §8)."""
        try:
            return work()
        except RemoteProtocolError as exc:
            if self._state not in TERMINAL:
                self._fail(exc.code, exc.detail)
            raise
        except Exception as exc:  # a local failure: INTERNAL_ERROR, never a silent stall
            if self._state not in TERMINAL:  # the peer is told nothing of what failed here
                self._fail(AbortCode.INTERNAL_ERROR, LOCAL_FAILURE)
            raise InternalProtocolError(f"{LOCAL_FAILURE}: {type(exc).__name__}") from exc

    def _receive(self, message: bytes) -> list[Event]:
        decoded = decode_message(message)
        trigger = _RECV_TRIGGER[type(decoded)]
        if next_state(self.role, self._state, trigger) is None:
            raise RemoteProtocolError(
                AbortCode.UNEXPECTED_MESSAGE,
                f"{decoded.TYPE.name} not allowed in {self._state.value}",
            )
        return self._dispatch(decoded)

    def _step(self, trigger: Trigger) -> None:
        nxt = next_state(self.role, self._state, trigger)
        if nxt is None:
            raise LocalProtocolError(f"{trigger.value} not allowed in {self._state.value}")
        self._state = nxt

    def _fail(self, code: AbortCode, detail: str) -> None:
        """Take the ``fail`` transition and queue our Abort (spec §5.5, §6.8)."""
        self._step(Trigger.FAIL)
        self._outbox.clear()
        self._release()
        self._outbox.append(encode_message(Abort(int(code), sanitize_detail(detail))))

    def _release(self) -> None:
        """Drop the working sets of a session that has ended, and a result known before it
        ended (an aborted session has none, spec §5.4)."""
        self.result = None
        self._return_queue.clear()
        self._reveal_writer = self._reveal_reader = None
        self._own_confirm = self._peer_confirm = None
        self._matches = self._labels = None
        self._own_double = self._peer_double = None

    def _own_hello(self) -> bytes:
        return encode_message(
            make_hello(self.config, padded_size=self._own_total, nonce=self._nonce)
        )

    def _dispatch(self, message: Message) -> list[Event]:
        if isinstance(message, Hello):
            return self._on_hello(message)
        if isinstance(message, Elements):
            return self._on_elements(message)
        if isinstance(message, Reblinded):
            return self._on_reblinded(message)
        if isinstance(message, Reveal):
            return self._on_reveal(message)
        if isinstance(message, ConfirmRequest):
            return self._on_confirm_request(message)
        if isinstance(message, ConfirmResponse):
            return self._on_confirm_response(message)
        if isinstance(message, Commit):
            return self._on_commit(message)
        # An Abort: end the session without answering it (spec §6.8).
        self._step(Trigger.RECV_ABORT)
        self._outbox.clear()
        self._release()
        try:
            code = AbortCode(message.code)
        except ValueError:
            code = AbortCode.PEER_ABORTED
        return [Aborted(code, sanitize_detail(message.detail), by_peer=True)]

    def _on_hello(self, hello: Hello) -> list[Event]:
        check_peer_hello(self.config, hello)
        self._peer = hello
        if self.role is Role.RESPONDER:
            self._hello_initiator = encode_message(hello)
            self._hello_responder = self._own_hello()
            self._outbox.append(self._hello_responder)
        else:
            self._hello_responder = encode_message(hello)
        self._step(Trigger.RECV_HELLO)
        self._transcript = _keys.transcript_hash(self._hello_initiator, self._hello_responder)
        self.session_id = _keys.session_id_of(self._transcript)
        # Each peer element's value is tagged for our side (to match our own slots), then for
        # the peer's (what we send back): never the group element itself (spec §4.5).
        self._tag_prefixes = (
            _keys.reblinded_prefix(self._transcript, self.role.value),
            _keys.reblinded_prefix(self._transcript, 1 - self.role.value),
        )
        self._peer_total = hello.padded_size
        self._peer_chunk = hello.chunk_size
        self._peer_chunks = -(-hello.padded_size // hello.chunk_size)
        self._peer_double = np.zeros((hello.padded_size, 32), dtype=np.uint8)  # pages on use
        return [HandshakeComplete(self.session_id, hello.sender_id, hello.padded_size)]

    def _on_elements(self, msg: Elements) -> list[Event]:
        check_seq(msg.seq, self._peer_received, self._peer_chunks, "Elements")
        want = chunk_len(self._peer_total, self._peer_chunk, msg.seq)
        if len(msg.elements) != want * 32:
            raise RemoteProtocolError(AbortCode.WRONG_COUNT, "wrong number of elements")
        try:
            tagged = self._workers.blind_and_tag(
                self._suite, self._key, msg.elements, self._tag_prefixes, L.REBLINDED_SIZE
            )
        except InvalidElement as exc:
            raise element_error(exc) from None
        if has_duplicates(rows_of(msg.elements)):
            raise RemoteProtocolError(AbortCode.DUPLICATE_ELEMENT, "duplicate element in chunk")
        peer = self._peer_double
        assert peer is not None  # allocated with the Hello
        start = msg.seq * self._peer_chunk
        rows = rows_of(tagged, 2 * L.REBLINDED_SIZE)  # our tag, then the peer's, per element
        peer[start : start + want] = rows
        sent = rows[:, L.REBLINDED_SIZE :].tobytes()
        self._peer_received += 1
        if self._peer_received == self._peer_chunks:
            # One in-place sort serves the duplicate check and the matching (§7).
            sort_rows_in_place(peer)
            if sorted_has_duplicates(peer):
                raise RemoteProtocolError(AbortCode.DUPLICATE_ELEMENT, "duplicate element in set")
            if self.config.mode is Mode.CARDINALITY:
                # Sorted order depends only on the set, so the peer cannot map values back.
                self._sorted_returns = np.sort(
                    np.ascontiguousarray(peer[:, L.REBLINDED_SIZE :])
                    .view(np.dtype((np.void, L.REBLINDED_SIZE)))
                    .ravel()
                )
                self._return_queue.extend((seq, None) for seq in range(self._peer_chunks))
        if self.config.mode is Mode.PSI:
            self._return_queue.append((msg.seq, sent))
        del peer  # matching may release the set
        self._step(Trigger.RECV_ELEMENTS)
        events: list[Event] = [Progress("peer_elements", self._peer_received, self._peer_chunks)]
        return self._after_receive(events)

    def _on_reblinded(self, msg: Reblinded) -> list[Event]:
        check_seq(msg.seq, self._own_returned, self._own_chunks, "Reblinded")
        if msg.seq >= self._own_sent:
            raise RemoteProtocolError(AbortCode.CHUNK_OUT_OF_ORDER, "Reblinded before Elements")
        c = self.config.chunk_size
        if len(msg.elements) != chunk_len(self._own_total, c, msg.seq) * L.REBLINDED_SIZE:
            raise RemoteProtocolError(AbortCode.WRONG_COUNT, "wrong number of elements")
        rows = rows_of(msg.elements, L.REBLINDED_SIZE)
        own = self._own_double
        assert own is not None  # kept until matching
        own[msg.seq * c : msg.seq * c + len(rows)] = rows
        self._own_returned += 1
        if self._own_returned == self._own_chunks and has_duplicates(own):
            raise RemoteProtocolError(AbortCode.DUPLICATE_ELEMENT, "duplicate re-blinded element")
        del own  # matching may release the set
        self._step(Trigger.RECV_REBLINDED)
        events: list[Event] = [Progress("own_elements", self._own_returned, self._own_chunks)]
        return self._after_receive(events)

    def _on_reveal(self, msg: Reveal) -> list[Event]:
        reader = self._reveal_reader
        assert reader is not None  # REVEAL state implies matching is done
        reader.feed(msg)
        self._step(Trigger.RECV_REVEAL)
        # The peer's number of Reveal chunks is known only from its final chunk.
        total = reader.received if reader.finished else None
        events: list[Event] = [Progress("reveal", reader.received, total)]
        if reader.finished:
            assert self.session_id is not None
            pairs = reader.pairs(self._tokens)
            # the reader stays until the session ends, so that a Reveal or a Commit after the
            # final chunk is refused for what it is (spec §6.7, §6.11), not as our failure
            self.result = PsiResult(self.session_id, self._matched_tokens, pairs, self._revealed)
            events.append(ExchangeComplete(self.result))
        self._advance()
        return events

    def _on_commit(self, msg: Commit) -> list[Event]:
        reader = self._reveal_reader
        assert reader is not None  # REVEAL state implies the reader exists
        reader.expect(msg.digest)
        self._step(Trigger.RECV_COMMIT)
        self._advance()
        return []

    def _on_confirm_request(self, msg: ConfirmRequest) -> list[Event]:
        evaluator = self._peer_confirm
        assert evaluator is not None  # CONFIRM state implies matching is done
        evaluator.on_request(msg)
        self._step(Trigger.RECV_CONFIRM_REQUEST)
        # Each point answered is a membership test the peer can make against our set (spec
        # §9): reported so that the auditor logs and counts it (ORACLE_QUERY).
        events: list[Event] = [Progress("peer_claims", evaluator.evaluated, evaluator.expected)]
        self._advance()
        return events

    def _on_confirm_response(self, msg: ConfirmResponse) -> list[Event]:
        own = self._own_confirm
        assert own is not None
        own.on_response(msg)
        self._step(Trigger.RECV_CONFIRM_RESPONSE)
        events: list[Event] = [Progress("confirm", own._answered, own.chunks)]
        if own.done:
            self._labels = own
        self._advance()
        return events

    def _after_receive(self, events: list[Event]) -> list[Event]:
        if (
            not self._data_complete
            and self._own_returned == self._own_chunks
            and self._peer_received == self._peer_chunks
        ):
            self._data_complete = True
            assert self._own_double is not None and self._peer_double is not None
            assert self.session_id is not None
            if self.config.mode is Mode.CARDINALITY:
                found = lookup_sorted(self._own_double, self._peer_double)
                self.result = CardinalityResult(self.session_id, int((found >= 0).sum()))
                events.append(ExchangeComplete(self.result))
            else:
                self._prepare_confirmation()
                self._peer_double = None  # the pending returns carry their own bytes
        self._advance()
        return events

    def _prepare_confirmation(self) -> None:
        assert self._own_double is not None and self._peer_double is not None
        distinct = self._own.distinct_count
        perm, inverse = self._own.take_order()
        handles, sources = matched_handles(
            self._transcript, self.role.value, self._own_double, self._peer_double, perm, distinct
        )
        self._own_double = None
        del perm  # released before the next step
        matches = own_matches(handles, sources, inverse, distinct)
        del inverse
        self._matched_tokens = len(matches)
        self._matches = matches
        group_scalar = self._key.group_scalar()
        self._own_confirm = OwnConfirmation(
            matches,
            self._tokens,
            suite=self._suite,
            dst=self._dst,
            group_scalar=group_scalar,
            transcript=self._transcript,
            seed=self._confirm_seed,
            workers=self._workers,
        )
        self._peer_confirm = PeerConfirmation(
            len(matches), group_scalar, suite=self._suite, workers=self._workers
        )

    def _prepare_reveal(self) -> None:
        """Entering REVEAL: build the whole (minimal) Reveal, commit to it (spec §6.7, §6.11)."""
        matches = self._matches
        assert matches is not None
        self._matches = None
        writer = RevealWriter(
            matches,
            self._tokens,
            self._rng,
            self.config.reveal_chunk_records,
            self._key_sets,
            bound=self.config.reveal_bound,
        )
        if len(writer.revealed_records) > max(self._own_total, L.MIN_REVEAL_CAP):
            # Only records that share every matched value with others can get here; the peer
            # would refuse the Reveal (spec §6.7): fail locally, saying why.
            raise ValueError("more records to reveal than the Reveal cap (spec §6.7)")
        self._commit = writer.commit(self._transcript, self.role.value, self._rng)
        self._reveal_writer = writer
        self._reveal_reader = PeerRevealReader(
            matches,
            self._tokens,
            self._key_sets,
            transcript=self._transcript,
            peer_role=1 - self.role.value,
            own_revealed=None if self.config.reveal_bound is None else writer.revealed_records,
            max_entries=max(self._peer_total, L.MIN_REVEAL_CAP),
        )
        ids = self._tokens.record_ids
        self._revealed = tuple(ids[i] for i in writer.revealed_records.tolist())

    def _confirm_message(self) -> bytes | None:
        evaluator, own = self._peer_confirm, self._own_confirm
        assert evaluator is not None and own is not None
        if evaluator.answers:
            answer = evaluator.answers.popleft()
            self._step(Trigger.SEND_CONFIRM_RESPONSE)
            self._advance()
            return encode_message(answer)
        if own.pending:
            request = own.next_request()
            self._step(Trigger.SEND_CONFIRM_REQUEST)
            self._advance()
            return encode_message(request)
        return None

    def _exchange_message(self) -> bytes | None:
        message = self._next_exchange_message()
        self._advance()
        return message

    def _reveal_message(self) -> bytes | None:
        if self._commit is not None:
            digest, self._commit = self._commit, None
            self._step(Trigger.SEND_COMMIT)
            return encode_message(Commit(digest))
        writer, reader = self._reveal_writer, self._reveal_reader
        # Our Reveal only once the peer has committed to its own (spec §6.11).
        if writer is None or writer.exhausted or (reader is not None and not reader.committed):
            return None
        chunk = writer.next_chunk()
        self._step(Trigger.SEND_REVEAL)
        self._advance()
        return encode_message(chunk)

    def _next_exchange_message(self) -> bytes | None:
        if self._return_queue:
            seq, data = self._return_queue.popleft()
            if data is None:
                start = seq * self._peer_chunk
                n = chunk_len(self._peer_total, self._peer_chunk, seq)
                data = self._sorted_returns[start : start + n].tobytes()
            self._returned += 1
            self._step(Trigger.SEND_REBLINDED)
            return encode_message(Reblinded(seq, data))
        if self._own_sent < self._own_chunks:
            seq = self._own_sent
            blinded = self._own.chunk(
                seq,
                self.config.chunk_size,
                workers=self._workers,
                suite=self._suite,
                key=self._key,
                dst=self._dst,
            )
            self._own_sent += 1
            if self._own_sent == self._own_chunks:
                self._own.all_sent()
            self._step(Trigger.SEND_ELEMENTS)
            return encode_message(Elements(seq, blinded))
        return None

    def _advance(self) -> None:
        """Take the milestone transitions whose conditions now hold (spec §5.4)."""
        all_sent = (
            self._own_sent == self._own_chunks
            and self._returned == self._peer_chunks
            and not self._outbox
        )
        if self._state is State.EXCHANGE and self._data_complete and all_sent:
            self._step(Trigger.MATCHED if self.config.mode is Mode.PSI else Trigger.COUNTED)
            self._peer_double = None  # matched, and every return has been sent
        if (
            self._state is State.CONFIRM
            and self._own_confirm is not None
            and self._own_confirm.done
            and self._peer_confirm is not None
            and self._peer_confirm.done
        ):
            self._step(Trigger.CONFIRMED)
            self._own_confirm = self._peer_confirm = None
            self._prepare_reveal()
        if (
            self._state is State.REVEAL
            and self._commit is None
            and self._reveal_writer is not None
            and self._reveal_writer.exhausted
            and self.result is not None
        ):
            self._step(Trigger.REVEALED)
            self._reveal_reader = None
