"""The confirmation round of PSI mode: each side proves, per claimed match, that the peer's
answer for it is bound to a token the peer holds (spec: xlink-psi-v2 §4.4, §6.9, §6.10, §7.5).

For every own matched handle ``h`` (token ``t``, hashed to the point ``Q`` of the suite's
group: edwards25519 for suite 1, ristretto255 for suite 2) the requester sends ``R = [r]Q``
with a fresh scalar ``r``. The evaluator answers ``[k]R`` with its PSI key ``k``. The requester
checks that the value of ``[k_own / r][k]R`` (its Montgomery u-coordinate for suite 1, spec
§4.4; for suite 2, §4.6: the point's encoding squared and multiplied by ``2**254`` through
X25519, after dividing by ``2**254`` first) — the doubly-blinded value of ``t`` recomputed
from a fresh, blinded evaluation — gives back ``h``. A peer that moved matches onto
tokens it does not hold (permuted answers), or reflected our own values, cannot produce
``[k]R`` consistent with ``h`` without knowing ``t``: the check fails and the session aborts
with ``CONFIRMATION_FAILED``. The evaluator answers exactly as many points as it matched
itself (``m``). A dishonest requester can put a guessed token's point in place of a claim and
compare the answer with our Elements: up to ``m`` membership tests a session, reported as
``Progress("peer_claims", ...)`` so that they are audited and budgeted (spec §6.9, §10).

:class:`OwnConfirmation` then stays with the completed session as the record of our confirmed
matches: the label evaluation of spec §7.5 (after the decision, only for the decided pairs'
handles) blinds, evaluates and finalises through it.
"""

from __future__ import annotations

import hmac
from collections import deque
from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from xlink.crypto.oprf import (
    OprfGroup,
    OprfScalar,
    blind_points,
    blind_scalar,
    evaluate_points,
    scalar_product_with_inverses,
    unblind_point,
)
from xlink.crypto.suite import Ciphersuite, InvalidElement
from xlink.crypto.workers import GroupWorkers
from xlink.errors import RemoteProtocolError
from xlink.linkage.tokens import TOKEN_SIZE, TokenSet
from xlink.protocol import _keys
from xlink.protocol import limits as L
from xlink.protocol._matching import element_error
from xlink.protocol._reveal import OwnMatches
from xlink.protocol.abort import AbortCode
from xlink.protocol.messages import ConfirmRequest, ConfirmResponse

__all__ = ["OwnConfirmation", "PeerConfirmation", "SessionLabels"]

_HANDLE: Final = np.dtype((np.void, L.HANDLE_SIZE))


class OwnConfirmation:
    """Our side as requester: builds ConfirmRequest chunks and checks the peer's answers."""

    __slots__ = (
        "_answered",
        "_dst",
        "_first",
        "_handles",
        "_key",
        "_seed",
        "_sent",
        "_suite",
        "_tags",
        "_tokens",
        "_transcript",
        "_workers",
        "chunks",
    )

    def __init__(
        self,
        matches: OwnMatches,
        tokens: TokenSet,
        *,
        suite: Ciphersuite,
        dst: bytes,
        group_scalar: bytes,
        transcript: bytes,
        seed: bytes,
        workers: GroupWorkers | None = None,
        chunk: int = L.MAX_CONFIRM_POINTS,
    ) -> None:
        self._seed = seed
        self._workers = workers if workers is not None else GroupWorkers(1)
        # One token per handle (all tokens carrying a handle have the same value), as indices:
        # no Python object per match.
        self._tokens: TokenSet = tokens
        self._first: npt.NDArray[np.int32] = matches.tokens[matches.offsets[:-1]].astype(np.int32)
        self._handles: npt.NDArray[np.uint8] = matches.handles
        self._suite, self._dst = suite, dst
        self._key = OprfScalar(suite.requester_scalar(group_scalar))
        self._transcript = transcript
        self._tags = (
            _keys.reblinded_hasher(transcript, 0),
            _keys.reblinded_hasher(transcript, 1),
        )
        n = len(self._handles)
        self.chunks = max(1, -(-n // chunk))
        self._sent = self._answered = 0

    @property
    def done(self) -> bool:
        return self._answered == self.chunks

    @property
    def pending(self) -> bool:
        return self._sent < self.chunks

    def _token(self, i: int) -> bytes:
        t = int(self._first[i])
        return bytes(self._tokens.values[TOKEN_SIZE * t : TOKEN_SIZE * (t + 1)])

    def _range(self, seq: int) -> range:
        n = len(self._handles)
        size = -(-n // self.chunks) if n else 0
        return range(seq * size, min(n, (seq + 1) * size))

    def _blinds(self, span: range) -> list[bytes]:
        return [blind_scalar(self._seed, _keys.DST_CONFIRM_BLIND, i) for i in span]

    def next_request(self) -> ConfirmRequest:
        """The next request chunk: one blinded point per claimed token (spec §6.9)."""
        seq = self._sent
        span = self._range(seq)
        tokens = b"".join(self._token(i) for i in span)
        points = self._workers.hash_to_points(self._suite, self._dst, tokens)
        blinded = self._workers.multiply(self._suite, b"".join(self._blinds(span)), points)
        self._sent += 1
        return ConfirmRequest(seq, self._sent == self.chunks, blinded)

    def on_response(self, msg: ConfirmResponse) -> None:
        """Check one answer chunk (spec §6.10). Raises ``RemoteProtocolError``:
        ``CHUNK_REPLAYED``/``CHUNK_OUT_OF_ORDER`` for a bad ``seq`` or an answer to a chunk not
        yet sent, ``WRONG_COUNT`` for the wrong number of answers, ``INVALID_ELEMENT`` /
        ``IDENTITY_ELEMENT`` for a bad point, ``CONFIRMATION_FAILED`` when an answer does not
        lead back to the handle we matched."""
        if msg.seq < self._answered:
            raise RemoteProtocolError(AbortCode.CHUNK_REPLAYED, "ConfirmResponse replayed")
        if msg.seq > self._answered or msg.seq >= self._sent:
            raise RemoteProtocolError(AbortCode.CHUNK_OUT_OF_ORDER, "ConfirmResponse out of order")
        span = self._range(msg.seq)
        if len(msg.points) != L.POINT_SIZE * len(span):
            raise RemoteProtocolError(AbortCode.WRONG_COUNT, "wrong number of answers")
        tag_i, tag_r = self._tags
        try:
            inverses = b"".join(self._key.divided_by(self._blinds(span)))
            unblinded = self._workers.multiply(self._suite, inverses, msg.points)
        except InvalidElement as exc:
            raise element_error(exc) from None
        us = self._workers.confirmed_values(self._suite, unblinded)
        for j, i in enumerate(span):
            u = us[32 * j : 32 * (j + 1)]
            handle = _keys.match_handle(self._transcript, tag_i(u), tag_r(u))
            if not hmac.compare_digest(handle, self._handles[i].tobytes()):
                raise RemoteProtocolError(
                    AbortCode.CONFIRMATION_FAILED,
                    "an answer does not confirm the match the peer claimed",
                )
        self._answered += 1

    def _indices(self, handles: Sequence[bytes]) -> npt.NDArray[np.intp]:
        """The index of each handle among our matched handles, in one search. Raises
        ``KeyError`` for a handle we did not match."""
        view = self._handles.view(_HANDLE).ravel()
        if not handles:
            return np.zeros(0, dtype=np.intp)
        if not len(view) or any(len(h) != L.HANDLE_SIZE for h in handles):
            raise KeyError("not a matched handle of this session")
        keys = np.frombuffer(b"".join(handles), dtype=_HANDLE)
        found = np.minimum(np.searchsorted(view, keys), len(view) - 1)
        if not bool((view[found] == keys).all()):
            raise KeyError("not a matched handle of this session")
        return found

    def _label_inputs(self, pairs: Sequence[Sequence[bytes]]) -> bytes:
        """The label input (:func:`~xlink.protocol._keys.label_input`) of each pair, joined.
        Raises ``KeyError`` for a handle we did not match, ``ValueError`` for a pair with no
        handle or one handle twice."""
        ordered = [sorted(pair) for pair in pairs]
        if any(not pair or len(set(pair)) != len(pair) for pair in ordered):
            raise ValueError("a pair is a non-empty set of handles")
        tokens = self._first[self._indices([h for pair in ordered for h in pair])].tolist()
        values, out, at = self._tokens.values, [], 0
        for pair in ordered:
            held = tokens[at : at + len(pair)]
            at += len(pair)
            out.append(
                _keys.label_input([values[TOKEN_SIZE * t : TOKEN_SIZE * (t + 1)] for t in held])
            )
        return b"".join(out)

    def label_request(self, pairs: Sequence[Sequence[bytes]], start: int = 0) -> bytes:
        """``[b_i]Q_i`` for each decided pair, in order: ``Q_i`` the point of the pair's label
        input (the tokens behind its handles), ``b_i`` the label blind of the pair's index
        ``i = start, start + 1, ...`` in the whole list (spec §7.5). Raises ``KeyError`` for a
        handle we did not match."""
        points = self._suite.hash_to_points(
            self._dst, self._label_inputs(pairs), _keys.LABEL_INPUT_SIZE
        )
        return blind_points(points, self._label_blinds(start, len(pairs)), self._suite.group)

    def label_outputs(
        self, pairs: Sequence[Sequence[bytes]], answers: bytes, start: int = 0
    ) -> list[bytes]:
        """The OPRF output of each pair from the peer's ``answers`` to :meth:`label_request`
        (same order). Raises ``RemoteProtocolError``: ``WRONG_COUNT`` for the wrong number of
        answers, ``INVALID_ELEMENT`` / ``IDENTITY_ELEMENT`` for a bad point."""
        if len(answers) != L.POINT_SIZE * len(pairs):
            raise RemoteProtocolError(AbortCode.WRONG_COUNT, "wrong number of label answers")
        inverses = scalar_product_with_inverses(_ONE, self._label_blinds(start, len(pairs)))
        inputs = self._label_inputs(pairs)
        out = []
        try:
            for i, inverse in enumerate(inverses):
                evaluated = unblind_point(
                    inverse, answers[32 * i : 32 * (i + 1)], self._suite.group, i
                )
                size = _keys.LABEL_INPUT_SIZE
                value = inputs[size * i : size * (i + 1)]
                out.append(_keys.oprf_output(self._transcript, value, evaluated))
        except InvalidElement as exc:
            raise element_error(exc) from None
        return out

    def pair_tokens(self, pair: Sequence[bytes]) -> list[tuple[str, bytes]]:
        """Our ``(key name, token)`` behind each of a pair's handles, in the pair's order.
        Raises ``KeyError`` for a handle we did not match."""
        tokens, out = self._tokens, []
        for i in self._indices(pair):
            t = int(self._first[i])
            value = bytes(tokens.values[TOKEN_SIZE * t : TOKEN_SIZE * (t + 1)])
            out.append((tokens.key_names[tokens.key_index[t]], value))
        return out

    def own_output(self, pair: Sequence[bytes], key: OprfScalar) -> bytes:
        """The OPRF output of a decided pair's label input under our own session key ``key``:
        what the peer obtains for its copy of the tokens (spec §7.5). Raises ``KeyError`` for
        a handle we did not match."""
        value = self._label_inputs((pair,))
        point = self._suite.hash_to_points(self._dst, value, _keys.LABEL_INPUT_SIZE)
        return _keys.oprf_output(self._transcript, value, key.multiply(point, self._suite.group))

    @property
    def group(self) -> OprfGroup:
        """The group of the confirmation round and the labels (the suite's)."""
        return self._suite.group

    def _label_blinds(self, start: int, n: int) -> list[bytes]:
        return [blind_scalar(self._seed, _keys.DST_LABEL_BLIND, i) for i in range(start, start + n)]


_ONE: Final = (1).to_bytes(32, "little")


class PeerConfirmation:
    """Our side as evaluator: answers the peer's ConfirmRequest chunks, exactly as many points
    as we matched ourselves."""

    __slots__ = (
        "_count",
        "_expected",
        "_key",
        "_next_seq",
        "_suite",
        "_workers",
        "answers",
        "finished",
    )

    def __init__(
        self,
        expected: int,
        psi_scalar: bytes,
        *,
        suite: Ciphersuite,
        workers: GroupWorkers | None = None,
    ) -> None:
        self._expected = expected
        self._key = OprfScalar(psi_scalar)
        self._suite = suite
        self._workers = workers if workers is not None else GroupWorkers(1)
        self._count = 0
        self._next_seq = 0
        self.answers: deque[ConfirmResponse] = deque()
        self.finished = False

    @property
    def done(self) -> bool:
        return self.finished and not self.answers

    @property
    def received(self) -> int:
        return self._next_seq

    @property
    def evaluated(self) -> int:
        """Points answered so far."""
        return self._count

    @property
    def expected(self) -> int:
        """Points the peer must send: our number of matched values."""
        return self._expected

    def on_request(self, msg: ConfirmRequest) -> None:
        """Check and answer one request chunk (spec §6.9 receiver rules). Raises
        ``RemoteProtocolError``: ``CHUNK_REPLAYED``/``CHUNK_OUT_OF_ORDER`` for a bad ``seq``,
        ``WRONG_COUNT`` for a chunk after the final one, an empty chunk that is not final, or
        more (or, on the final chunk, fewer) points than we matched, ``INVALID_ELEMENT`` /
        ``IDENTITY_ELEMENT`` for a point that is not a canonical element of the suite's group
        other than the identity."""
        if msg.seq < self._next_seq:
            raise RemoteProtocolError(AbortCode.CHUNK_REPLAYED, "ConfirmRequest replayed")
        if msg.seq > self._next_seq:
            raise RemoteProtocolError(AbortCode.CHUNK_OUT_OF_ORDER, "ConfirmRequest out of order")
        if self.finished:
            raise RemoteProtocolError(AbortCode.WRONG_COUNT, "ConfirmRequest after the final one")
        n = len(msg.points) // 32
        if (n == 0 and not msg.final) or self._count + n > self._expected:
            raise RemoteProtocolError(AbortCode.WRONG_COUNT, "more claims than matches")
        if msg.final and self._count + n != self._expected:
            raise RemoteProtocolError(AbortCode.WRONG_COUNT, "fewer claims than matches")
        try:
            answers = self._workers.evaluate(self._suite, self._key, msg.points)
        except InvalidElement as exc:
            raise element_error(exc) from None
        self._count += n
        self._next_seq += 1
        self.finished = msg.final
        self.answers.append(ConfirmResponse(msg.seq, answers))


class SessionLabels:
    """The label evaluation of a completed session (spec §7.5), from ``PsiSession.labels``:
    our confirmed matches and our session OPRF key. A *pair* is the matched handles of one
    decided pair; its label is evaluated once, on the tokens behind all of them."""

    __slots__ = ("_key", "_matches")

    def __init__(self, matches: OwnConfirmation, key: OprfScalar) -> None:
        self._matches, self._key = matches, key

    def request(self, pairs: Sequence[Sequence[bytes]], start: int = 0) -> bytes:
        """One blinded point per pair (matched handles, in the order both sides agreed), for
        the peer to evaluate with its session OPRF key; ``start`` is the index of ``pairs[0]``
        in the whole list (its blinds are the list's). Raises ``KeyError`` for a handle we did
        not match."""
        return self._matches.label_request(pairs, start)

    def answer(self, points: bytes) -> bytes:
        """``[s]R`` for each of the peer's points, with our session OPRF key ``s``. The caller
        bounds the count (the release transfer answers exactly one point per decided pair).
        Raises ``RemoteProtocolError`` (``INVALID_ELEMENT`` / ``IDENTITY_ELEMENT``) for a bad
        point."""
        try:
            return evaluate_points((self._key,), points, self._matches.group)
        except InvalidElement as exc:
            raise element_error(exc) from None

    def outputs(
        self, pairs: Sequence[Sequence[bytes]], answers: bytes, start: int = 0
    ) -> list[bytes]:
        """The OPRF output, under the peer's key, of each pair's tokens, from its answers to
        :meth:`request`: key material only a holder of all of them can compute. Raises
        ``RemoteProtocolError`` for a wrong count or a bad point."""
        return self._matches.label_outputs(pairs, answers, start)

    def own_output(self, pair: Sequence[bytes]) -> bytes:
        """The OPRF output of a pair's tokens under our own key: what the peer obtains from
        :meth:`outputs` for its copy. Raises ``KeyError`` for a handle we did not match."""
        return self._matches.own_output(pair, self._key)

    def tokens(self, pair: Sequence[bytes]) -> list[tuple[str, bytes]]:
        """Our ``(key name, token)`` behind each of a pair's handles (the tokens its label is
        evaluated on). Local: never sent. Raises ``KeyError`` for a handle we did not match."""
        return self._matches.pair_tokens(pair)
