"""The sans-I/O PSI session: bytes in, events out (spec: xlink-psi-v1 §5-§7).

A :class:`PsiSession` never touches a socket, a clock or randomness it was not given. The caller
moves messages: :meth:`PsiSession.next_message` yields the next message to send (computing at
most one chunk of blinding work), :meth:`PsiSession.receive_message` takes one message from the
peer (at most one chunk of work) and returns events. Transitions follow
:data:`xlink.protocol._state.TRANSITIONS`.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import numpy.typing as npt

from xlink.crypto.rand import RandomSource
from xlink.crypto.suite import BlindingKey, InvalidElement, check_elements, get_suite
from xlink.errors import LocalProtocolError, RemoteProtocolError
from xlink.linkage.tokens import TOKEN_SIZE, TokenSet
from xlink.protocol import _keys
from xlink.protocol import limits as L
from xlink.protocol._reveal import OwnMatches, PeerRevealReader, reveal_chunks
from xlink.protocol._sets import (
    Rows,
    distinct_rows,
    has_duplicates,
    member_mask,
    random_permutation,
    rows_of,
    sorted_rows,
)
from xlink.protocol._state import TERMINAL, State, Trigger, next_state
from xlink.protocol.abort import AbortCode
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
from xlink.protocol.messages import Abort, Elements, Hello, Message, Reblinded, Reveal

__all__ = ["PsiSession"]

_RECV_TRIGGER = {
    Hello: Trigger.RECV_HELLO,
    Elements: Trigger.RECV_ELEMENTS,
    Reblinded: Trigger.RECV_REBLINDED,
    Reveal: Trigger.RECV_REVEAL,
    Abort: Trigger.RECV_ABORT,
}


def _chunk_len(total: int, chunk: int, seq: int) -> int:
    return min(chunk, total - seq * chunk)


class PsiSession:
    """One party's side of one xlink-psi-v1 session (spec §5).

    Construction deduplicates the token values, fixes the padded size and draws, in this order
    (spec §5.3): the 32-byte nonce, the 32-byte blinding scalar, the shuffle keys and the dummy
    tokens. Raises ``ValueError`` if the padded set would exceed ``MAX_SET_SIZE`` or the suite
    is unknown.
    """

    def __init__(self, config: SessionConfig, tokens: TokenSet, *, rng: RandomSource) -> None:
        try:
            self._suite = get_suite(config.suite_id)
        except KeyError:
            raise ValueError("unknown ciphersuite") from None
        self.config = config
        self._tokens = tokens
        self._rng = rng
        self._state = State.IDLE
        self.result: PsiResult | CardinalityResult | None = None
        self._dst = _keys.hash_to_group_dst(self._suite.name, config.mou_digest)

        distinct, self._inverse = distinct_rows(rows_of(tokens.values))
        self._distinct_count = len(distinct)
        size = padded_size(self._distinct_count, config.padding_bucket)
        if size > L.MAX_SET_SIZE:
            raise ValueError("padded set larger than MAX_SET_SIZE")
        self._own_total = size
        self._nonce = rng(L.NONCE_SIZE)
        self._key = BlindingKey.generate(rng)
        self._perm = random_permutation(size, rng)
        dummies = rows_of(rng(TOKEN_SIZE * (size - self._distinct_count)))
        self._sources = np.concatenate([distinct, dummies])
        self._own_chunks = -(-size // config.chunk_size)
        self._own_sent = 0
        self._own_returned = 0
        self._own_double = np.zeros((size, 32), dtype=np.uint8)

        self._outbox: deque[bytes] = deque()
        self._hello_initiator = b""
        self._hello_responder = b""
        self._transcript = b""
        self.session_id: bytes | None = None
        self._peer: Hello | None = None
        self._peer_total = 0
        self._peer_chunk = 1
        self._peer_chunks = 0
        self._peer_received = 0
        self._peer_double = bytearray()
        self._peer_returns: Rows | None = None
        self._return_queue: deque[int] = deque()
        self._returned = 0
        self._data_complete = False
        self._reveal_out: deque[Reveal] = deque()
        self._reveal_reader: PeerRevealReader | None = None
        self._matched_tokens = 0

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
        (one chunk of hashing and blinding per call), reveal chunks.
        """
        if self._outbox:
            data = self._outbox.popleft()
            if self._state is not State.ABORTED:
                self._step(Trigger.SEND_HELLO)
            else:
                self._step(Trigger.SEND_ABORT)
            return data
        if self._state is State.EXCHANGE:
            message = self._next_exchange_message()
            self._advance()
            return message
        if self._state is State.REVEAL and self._reveal_out:
            chunk = self._reveal_out.popleft()
            self._step(Trigger.SEND_REVEAL)
            self._advance()
            return encode_message(chunk)
        return None

    def receive_message(self, message: bytes) -> list[Event]:
        """Process one message from the peer and return the events it caused.

        Raises ``LocalProtocolError`` if the session is finished. If the message is not allowed,
        queues an Abort for the peer, moves to ABORTED and raises ``RemoteProtocolError`` with
        the abort code; nothing else escapes.
        """
        if self.done:
            raise LocalProtocolError("session is already finished")
        try:
            decoded = decode_message(message)
            trigger = _RECV_TRIGGER[type(decoded)]
            if next_state(self.role, self._state, trigger) is None:
                raise RemoteProtocolError(
                    AbortCode.UNEXPECTED_MESSAGE,
                    f"{decoded.TYPE.name} not allowed in {self._state.value}",
                )
            return self._dispatch(decoded)
        except RemoteProtocolError as exc:
            self._fail(exc.code, exc.detail)
            raise

    # -- internals ----------------------------------------------------------------------------

    def _step(self, trigger: Trigger) -> None:
        nxt = next_state(self.role, self._state, trigger)
        if nxt is None:
            raise LocalProtocolError(f"{trigger.value} not allowed in {self._state.value}")
        self._state = nxt

    def _fail(self, code: AbortCode, detail: str) -> None:
        self._outbox.clear()
        self._state = State.ABORTED
        safe = detail.encode("utf-8")[: L.MAX_DETAIL_BYTES].decode("utf-8", "ignore")
        self._outbox.append(encode_message(Abort(int(code), safe)))

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
        self._state = State.ABORTED
        try:
            code = AbortCode(message.code)
        except ValueError:
            code = AbortCode.PEER_ABORTED
        return [Aborted(code, message.detail, by_peer=True)]

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
        self._peer_total = hello.padded_size
        self._peer_chunk = hello.chunk_size
        self._peer_chunks = -(-hello.padded_size // hello.chunk_size)
        return [HandshakeComplete(self.session_id, hello.sender_id, hello.padded_size)]

    def _check_seq(self, seq: int, expected: int, total: int, what: str) -> None:
        if seq < expected:
            raise RemoteProtocolError(AbortCode.CHUNK_REPLAYED, f"{what} chunk replayed")
        if seq > expected:
            raise RemoteProtocolError(AbortCode.CHUNK_OUT_OF_ORDER, f"{what} chunk out of order")
        if seq >= total:
            raise RemoteProtocolError(AbortCode.WRONG_COUNT, f"more {what} chunks than declared")

    def _on_elements(self, msg: Elements) -> list[Event]:
        self._check_seq(msg.seq, self._peer_received, self._peer_chunks, "Elements")
        want = _chunk_len(self._peer_total, self._peer_chunk, msg.seq)
        if len(msg.elements) != want * 32:
            raise RemoteProtocolError(AbortCode.WRONG_COUNT, "wrong number of elements")
        try:
            reblinded = self._suite.blind(self._key, msg.elements)
        except InvalidElement as exc:
            raise _element_error(exc) from None
        if has_duplicates(rows_of(msg.elements)):
            raise RemoteProtocolError(AbortCode.DUPLICATE_ELEMENT, "duplicate element in chunk")
        self._peer_double += reblinded
        self._peer_received += 1
        if self._peer_received == self._peer_chunks:
            peer = rows_of(self._peer_double)
            if has_duplicates(peer):
                raise RemoteProtocolError(AbortCode.DUPLICATE_ELEMENT, "duplicate element in set")
            if self.config.mode is Mode.CARDINALITY:
                # Sorted order depends only on the set, so the peer cannot map values back.
                self._peer_returns = sorted_rows(peer)
                self._return_queue.extend(range(self._peer_chunks))
        if self.config.mode is Mode.PSI:
            self._return_queue.append(msg.seq)
        self._step(Trigger.RECV_ELEMENTS)
        events: list[Event] = [Progress("peer_elements", self._peer_received, self._peer_chunks)]
        return self._after_receive(events)

    def _on_reblinded(self, msg: Reblinded) -> list[Event]:
        self._check_seq(msg.seq, self._own_returned, self._own_chunks, "Reblinded")
        if msg.seq >= self._own_sent:
            raise RemoteProtocolError(AbortCode.CHUNK_OUT_OF_ORDER, "Reblinded before Elements")
        c = self.config.chunk_size
        if len(msg.elements) != _chunk_len(self._own_total, c, msg.seq) * 32:
            raise RemoteProtocolError(AbortCode.WRONG_COUNT, "wrong number of elements")
        try:
            check_elements(msg.elements)
        except InvalidElement as exc:
            raise _element_error(exc) from None
        rows = rows_of(msg.elements)
        self._own_double[msg.seq * c : msg.seq * c + len(rows)] = rows
        self._own_returned += 1
        if self._own_returned == self._own_chunks and has_duplicates(self._own_double):
            raise RemoteProtocolError(AbortCode.DUPLICATE_ELEMENT, "duplicate re-blinded element")
        self._step(Trigger.RECV_REBLINDED)
        events: list[Event] = [Progress("own_elements", self._own_returned, self._own_chunks)]
        return self._after_receive(events)

    def _on_reveal(self, msg: Reveal) -> list[Event]:
        reader = self._reveal_reader
        assert reader is not None  # REVEAL state implies matching is done
        reader.feed(msg)
        self._step(Trigger.RECV_REVEAL)
        events: list[Event] = [Progress("reveal", reader.received, reader.received)]
        if reader.finished:
            assert self.session_id is not None
            self.result = PsiResult(
                self.session_id, self._matched_tokens, reader.pairs(self._tokens)
            )
            events.append(ExchangeComplete(self.result))
        self._advance()
        return events

    def _after_receive(self, events: list[Event]) -> list[Event]:
        if (
            not self._data_complete
            and self._own_returned == self._own_chunks
            and self._peer_received == self._peer_chunks
        ):
            self._data_complete = True
            mask = member_mask(self._own_double, rows_of(self._peer_double))
            assert self.session_id is not None
            if self.config.mode is Mode.CARDINALITY:
                self.result = CardinalityResult(self.session_id, int(mask.sum()))
                events.append(ExchangeComplete(self.result))
            else:
                self._prepare_reveal(mask)
        self._advance()
        return events

    def _prepare_reveal(self, mask: npt.NDArray[np.bool_]) -> None:
        slots = np.nonzero(mask)[0]
        sources = self._perm[slots]
        real = sources < self._distinct_count
        handle_of: dict[int, bytes] = {
            int(src): _keys.match_handle(self._transcript, self._own_double[slot].tobytes())
            for slot, src in zip(slots[real], sources[real], strict=True)
        }
        self._matched_tokens = len(handle_of)
        matched = np.zeros(self._distinct_count, dtype=np.bool_)
        matched[sources[real]] = True
        token_idx = np.nonzero(matched[self._inverse])[0]
        token_handles = {int(i): handle_of[int(self._inverse[i])] for i in token_idx}
        matches = OwnMatches.build(self._tokens, token_handles)
        self._reveal_out.extend(reveal_chunks(matches, self._rng))
        self._reveal_reader = PeerRevealReader(matches)

    def _next_exchange_message(self) -> bytes | None:
        if self._return_queue:
            seq = self._return_queue.popleft()
            n = _chunk_len(self._peer_total, self._peer_chunk, seq)
            start = seq * self._peer_chunk
            if self._peer_returns is not None:
                data = self._peer_returns[start : start + n].tobytes()
            else:
                data = bytes(self._peer_double[start * 32 : (start + n) * 32])
            self._returned += 1
            self._step(Trigger.SEND_REBLINDED)
            return encode_message(Reblinded(seq, data))
        if self._own_sent < self._own_chunks:
            seq = self._own_sent
            c = self.config.chunk_size
            slots = self._perm[seq * c : seq * c + _chunk_len(self._own_total, c, seq)]
            elements = self._suite.hash_to_group(self._dst, self._sources[slots].tobytes())
            self._own_sent += 1
            self._step(Trigger.SEND_ELEMENTS)
            return encode_message(Elements(seq, self._suite.blind(self._key, elements)))
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
        if (
            self._state is State.REVEAL
            and not self._reveal_out
            and self._reveal_reader is not None
            and self._reveal_reader.finished
        ):
            self._step(Trigger.REVEALED)


def _element_error(exc: InvalidElement) -> RemoteProtocolError:
    if exc.identity:
        return RemoteProtocolError(AbortCode.IDENTITY_ELEMENT, f"element {exc.index}: {exc.reason}")
    return RemoteProtocolError(AbortCode.INVALID_ELEMENT, f"element {exc.index}: {exc.reason}")
