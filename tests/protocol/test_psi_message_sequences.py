"""A session against sequences of well-formed messages: the peer's, in another order, again, or
with one plausible field changed (spec: xlink-psi-v2 §5, §6).

Random bytes into the decoder raise only our own errors (tests/protocol/test_codec.py); this
drives the state machine instead. A victim session V talks to an honest peer P. Between honest
deliveries, hypothesis injects well-formed messages into V: replays of anything either side
sent (V's own too: the wrong role), and honest messages with one plausible field changed (seq,
final flag, element, point and handle payloads cut or stitched from real ones, Hello fields,
Commit digests, Abort codes). Checks after every delivery:

* only RemoteProtocolError (V not done before) or LocalProtocolError (V done before) escape;
  never InternalProtocolError (a peer's message must not be blamed on us), nothing else;
* after an abort V gives its Abort once, then nothing, and refuses every later message;
* a finished V changes nothing on a further message;
* V has no result once aborted, and holds one before COMPLETE only where the spec says it is
  known (cardinality at data complete, PSI once the peer's final Reveal is in);
* in PSI mode, V never matches a record the honest peer does not share;
* each receive_message is fast (no CPU blow-up from a small message).
"""

from __future__ import annotations

import dataclasses
import time

from _fuzzing import fuzz_settings
from _support import config, token_set
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from xlink.crypto.rand import DeterministicRandom
from xlink.errors import InternalProtocolError, LocalProtocolError, RemoteProtocolError
from xlink.protocol import AbortCode, Mode, PsiResult, PsiSession, Role, State
from xlink.protocol.codec import decode_message, encode_message
from xlink.protocol.messages import (
    Abort,
    Commit,
    ConfirmRequest,
    ConfirmResponse,
    Elements,
    Hello,
    Reblinded,
    Reveal,
)

TOKENS_A = token_set(
    [
        ("a1", [("passport", 1), ("name_dob", 2)]),
        ("a2", [("passport", 3)]),
        ("a3", [("surname_postcode", 7), ("name_dob", 8)]),
        ("a4", [("passport", 9)]),
    ]
)
TOKENS_B = token_set(
    [
        ("b1", [("passport", 1)]),
        ("b2", [("name_dob", 2)]),
        ("b3", [("surname_postcode", 7)]),
        ("b4", [("passport", 9), ("name_dob", 8)]),
        ("b5", [("passport", 11), ("surname_postcode", 12)]),  # A has none of these
    ]
)
# Records of each side that truly share a token with the other side.
TRUE_A = {"a1", "a3", "a4"}
TRUE_B = {"b1", "b2", "b3", "b4"}
STEP_BUDGET_S = 5.0


def _cut(data: bytes, unit: int, n: int) -> bytes:
    """``n`` units of ``data`` (repeated if needed), at least one unit."""
    n = max(1, n)
    if not data:
        data = b"\x00" * unit
    out = (data * (n // max(1, len(data) // unit) + 2))[: n * unit]
    return out


def _tweak(msg: object, how: int, k: int, pool_bytes: bytes) -> object:
    """One plausible change to a well-formed message."""
    if isinstance(msg, Hello):
        choices = [
            dict(padded_size=max(2, (msg.padded_size + 2 * (k % 5 - 2)) // 2 * 2)),
            dict(padded_size=2 * (1 + k % 8)),
            dict(chunk_size=1 + k % 5),
            dict(nonce=bytes([k % 256]) * 32),
            dict(role=1 - msg.role),
            dict(padded_size=1 << 24, chunk_size=1 + k % 3),
        ]
        return dataclasses.replace(msg, **choices[how % len(choices)])
    if isinstance(msg, Elements | Reblinded):
        unit = 32 if isinstance(msg, Elements) else 16
        n = len(msg.elements) // unit
        choices = [
            dict(seq=msg.seq + (k % 5) - 2 if msg.seq + (k % 5) - 2 >= 0 else 0),
            dict(elements=_cut(msg.elements[unit:] + msg.elements[:unit], unit, n)),
            dict(elements=_cut(msg.elements, unit, n + 1 - (k % 3))),
            dict(elements=_cut(pool_bytes[: len(pool_bytes) // unit * unit], unit, n)),
            dict(elements=_cut(msg.elements[:unit], unit, n)),
        ]
        return dataclasses.replace(msg, **choices[how % len(choices)])
    if isinstance(msg, ConfirmRequest):
        n = len(msg.points) // 32
        choices = [
            dict(seq=max(0, msg.seq + (k % 3) - 1)),
            dict(final=not msg.final),
            dict(points=_cut(msg.points, 32, n - 1 + (k % 3)) if n - 1 + (k % 3) > 0 else b""),
            dict(points=_cut(pool_bytes[: len(pool_bytes) // 32 * 32], 32, n)),
            dict(points=b"", final=True),
        ]
        return dataclasses.replace(msg, **choices[how % len(choices)])
    if isinstance(msg, ConfirmResponse):
        n = len(msg.points) // 32
        choices = [
            dict(seq=max(0, msg.seq + (k % 3) - 1)),
            dict(points=_cut(msg.points[32:] + msg.points[:32], 32, n) if n else b""),
            dict(points=_cut(pool_bytes[: len(pool_bytes) // 32 * 32], 32, n) if n else b""),
            dict(points=msg.points + msg.points[:32]),
        ]
        return dataclasses.replace(msg, **choices[how % len(choices)])
    if isinstance(msg, Reveal):
        recs = msg.records
        choices = [
            dict(seq=max(0, msg.seq + (k % 3) - 1)),
            dict(final=not msg.final, salt=b"" if msg.final else bytes(32)),
            dict(
                records=recs + recs[:1],
                presence=msg.presence + msg.presence[: len(msg.presence) // max(1, len(recs))],
            ),
            dict(records=recs[1:], presence=msg.presence[len(msg.presence) // max(1, len(recs)) :]),
            dict(records=tuple(reversed(recs)), presence=msg.presence),
            dict(salt=bytes([k % 256]) * 32 if msg.final else b""),
            dict(records=(), presence=b"", final=True, salt=bytes(32)),
        ]
        return dataclasses.replace(msg, **choices[how % len(choices)])
    if isinstance(msg, Commit):
        return Commit(bytes([k % 256]) * 32)
    if isinstance(msg, Abort):
        return Abort(k % 256, "x" * (k % 7))
    return msg


class PsiFuzz(RuleBasedStateMachine):
    @initialize(
        mode=st.sampled_from(list(Mode)),
        victim=st.sampled_from(list(Role)),
        chunks=st.tuples(st.integers(1, 4), st.integers(1, 4)),
        reveal_chunk=st.integers(1, 3),
        goal_name=st.sampled_from(
            ["IDLE", "EXCHANGE", "EXCHANGE+", "CONFIRM", "REVEAL", "REVEAL+"]
        ),
    )
    def build(
        self, mode: Mode, victim: Role, chunks: tuple[int, int], reveal_chunk: int, goal_name: str
    ) -> None:
        self.mode = mode
        ca = dataclasses.replace(
            config(Role.INITIATOR, mode, bucket=2, chunk=chunks[0]),
            reveal_chunk_records=reveal_chunk,
        )
        cb = dataclasses.replace(
            config(Role.RESPONDER, mode, bucket=2, chunk=chunks[1]),
            reveal_chunk_records=reveal_chunk,
        )
        a = PsiSession(ca, TOKENS_A, rng=DeterministicRandom("fa"))
        b = PsiSession(cb, TOKENS_B, rng=DeterministicRandom("fb"))
        self.v, self.p = (a, b) if victim is Role.INITIATOR else (b, a)
        self.truth = TRUE_A if victim is Role.INITIATOR else TRUE_B
        self.pool: list[bytes] = []
        self.p_broken = False
        self.v_abort_seen = False
        self.v_committed = False  # V has sent its Commit: its Reveal chunks come next
        if self.p.role is Role.INITIATOR:
            self.p.initiate()
        else:
            self.v.initiate()
        # Honest progress up to the target state (the "+" variants go a few steps further);
        # a cardinality session has no CONFIRM or REVEAL: its last steps instead.
        if mode is Mode.CARDINALITY and goal_name.startswith(("CONFIRM", "REVEAL")):
            goal_name = "EXCHANGE+"
        goal = State[goal_name.rstrip("+")]
        order = [State.IDLE, State.AWAIT_HELLO, State.EXCHANGE, State.CONFIRM, State.REVEAL]
        extra = 3 if goal_name.endswith("+") else 0
        for _ in range(400):
            if self.v.done or (
                self.v.state in order and order.index(self.v.state) >= order.index(goal)
            ):
                if extra == 0:
                    break
                extra -= 1
            before = len(self.pool)
            self.pump(1, True)
            if len(self.pool) == before:
                break
        event(f"start {self.v.state.value}")

    # -- delivery with checks ---------------------------------------------------------------

    def _to_v(self, data: bytes) -> None:
        v = self.v
        was_done, before = v.done, v.state
        t0 = time.perf_counter()
        try:
            v.receive_message(data)
        except InternalProtocolError as exc:
            raise AssertionError(
                f"peer message blamed on us: {exc!r} from {before} on {decode_message(data)!r:.200}"
            ) from exc
        except RemoteProtocolError:
            assert not was_done
            assert v.state is State.ABORTED
        except LocalProtocolError:
            assert was_done, "LocalProtocolError while not done"
            assert v.state is before
        else:
            assert not was_done, f"accepted a message while {before}"
        assert time.perf_counter() - t0 < STEP_BUDGET_S

    def _to_p(self, data: bytes) -> None:
        if self.p.done:
            return
        try:
            self.p.receive_message(data)
        except (RemoteProtocolError, LocalProtocolError):
            self.p_broken = True

    def _v_next(self) -> bytes | None:
        try:
            message = self.v.next_message()
        except InternalProtocolError as exc:
            raise AssertionError(f"V failed locally preparing a message: {exc!r}") from exc
        if message is not None and isinstance(decode_message(message), Commit):
            self.v_committed = True
        return message

    @rule(steps=st.integers(1, 60), hold_v=st.booleans())
    def pump(self, steps: int, hold_v: bool) -> None:
        """Honest progress both ways; with hold_v, V's own Reveal chunks wait (the window in
        which V has the peer's whole Reveal but has not sent all of its own)."""
        for _ in range(steps):
            moved = False
            if not (hold_v and self.v.state is State.REVEAL and self.v_committed):
                m = self._v_next()
                if m is not None:
                    moved = True
                    self.pool.append(m)
                    if self.v.state is not State.ABORTED:
                        self._to_p(m)
                    else:
                        self.v_abort_seen = True
            m = None if self.p.done else self.p.next_message()
            if m is not None:
                moved = True
                self.pool.append(m)
                self._to_v(m)
            if not moved:
                break

    @rule()
    def v_initiate(self) -> None:
        if self.v.role is Role.INITIATOR:
            try:
                self.v.initiate()
                assert not self.v.done
            except LocalProtocolError:
                pass

    @rule(n=st.integers(1, 4))
    def p_to_v(self, n: int) -> None:
        for _ in range(n):
            if self.p.done and self.p.state is State.COMPLETE and self.p.next_message() is None:
                return
            m = self.p.next_message()
            if m is None:
                return
            self.pool.append(m)
            self._to_v(m)

    @rule(n=st.integers(1, 4))
    def v_to_p(self, n: int) -> None:
        for _ in range(n):
            m = self._v_next()
            if m is None:
                return
            if self.v.state is State.ABORTED:
                assert isinstance(decode_message(m), Abort)
                assert not self.v_abort_seen, "second message after abort"
                self.v_abort_seen = True
            self.pool.append(m)
            self._to_p(m)

    @precondition(lambda self: bool(self.pool))
    @rule(i=st.integers(min_value=0), recent=st.booleans())
    def replay(self, i: int, recent: bool) -> None:
        """A message sent before, of the last few (the state's own) or of any."""
        self._to_v(
            self.pool[-1 - i % min(8, len(self.pool))] if recent else self.pool[i % len(self.pool)]
        )

    @precondition(lambda self: bool(self.pool))
    @rule(i=st.integers(min_value=0), how=st.integers(0, 50), k=st.integers(0, 1000))
    def crafted(self, i: int, how: int, k: int) -> None:
        base = decode_message(self.pool[i % len(self.pool)])
        blobs = b"".join(
            getattr(decode_message(m), f, b"")
            for m in self.pool
            for f in ("elements", "points")
            if isinstance(getattr(decode_message(m), f, None), bytes)
        )
        msg = _tweak(base, how, k, blobs)
        try:
            data = encode_message(msg)  # only well-formed messages
        except ValueError:
            return
        self._to_v(data)

    @rule(code=st.integers(0, 255))
    def peer_abort(self, code: int) -> None:
        self._to_v(encode_message(Abort(code, "bye")))

    @rule()
    def local_abort(self) -> None:
        try:
            self.v.abort(AbortCode.TIMEOUT, "t")
        except LocalProtocolError:
            assert self.v.done

    @invariant()
    def checks(self) -> None:
        if not hasattr(self, "v"):
            return
        v = self.v
        event(f"V state {v.state.value}")
        # A result is known before COMPLETE (cardinality at data complete, PSI once the peer's
        # final Reveal is in: §5.4), and an aborted session has none.
        if v.result is not None and v.state is not State.COMPLETE:
            known = State.EXCHANGE if self.mode is Mode.CARDINALITY else State.REVEAL
            assert v.state is known, f"result held in state {v.state}"
        if v.state is State.COMPLETE:
            assert v.result is not None
            if isinstance(v.result, PsiResult):
                got = {p.local_record_id for p in v.result.pairs}
                assert got <= self.truth, f"matched records the peer does not hold: {got}"


PsiFuzz.TestCase.settings = fuzz_settings(steps=60)
TestPsiFuzz = PsiFuzz.TestCase
