"""A query session against sequences of well-formed messages: the peer's, in another order,
again, or with one plausible field changed (spec: xlink-query-v1 §6, §7).

``tests/protocol/test_query_session.py`` checks each message and each local refusal; this
drives the state machines instead. A victim session V (the asker, or the holder) talks to an
honest peer P, both driven by callers that answer every event at once as the agency's do (the
asker: a plan of table requests, pipelined EVALUATEs, release requests and receipts, then
BYE). Between honest deliveries hypothesis injects messages into V: replays of anything
either side sent (V's own too: the wrong role), and honest messages with one field changed
(request numbers, chunk numbers and counts, element and fate counts, fates, periods, keys,
MOU, parties, presence bits, handles out of order, a record twice, receipt flags, ABORT
codes), or the bytes of one cut or with another version byte. A model of the spec's checks
(§6.4-§6.15, §7.2, §7.3), kept from V's side only, says whether V must accept each message or
abort, and with which code. Checks after every step:

* V accepts what the model accepts and aborts with its code; a peer's message raises only
  ``RemoteProtocolError`` (``PeerAborted`` for an ABORT, ``QuotaExhausted`` for its
  ``QUOTA_EXHAUSTED``), never ``LocalProtocolError`` while V is live, nor anything else;
* once done (CLOSED, ABORTED), V raises ``LocalProtocolError`` and changes nothing;
* after an abort V gives exactly one ABORT with its code (none for the peer's ABORT), then
  nothing;
* the asker reports each EVALUATED for its oldest outstanding EVALUATE, with its element
  count, and RELEASES with one answer per requested record and one frame per SENT fate; the
  holder reports requests numbered 1, 2, ..., release requests of distinct records with
  ascending handles and known keys, RECEIPTS only after RELEASES with frames, one per frame;
* each receive is fast.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import deque
from typing import Any

import pytest
from _fuzzing import fuzz_settings, timed
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from xlink.crypto.rand import DeterministicRandom
from xlink.error_codes import AbortCode
from xlink.errors import LocalProtocolError, PeerAborted, QuotaExhausted, RemoteProtocolError
from xlink.query import messages as M
from xlink.query.session import (
    AskerLeft,
    AskerSession,
    EvaluationAnswered,
    EvaluationRequested,
    Fate,
    HolderSession,
    QueryConfig,
    ReceiptsReceived,
    ReleaseAnswer,
    ReleaseRequested,
    ReleasesReceived,
    RequestedHit,
    SessionState,
    TableChunkReceived,
    TableComplete,
    TableRequested,
    Welcomed,
)

CONFIG = QueryConfig(
    mou_id="ca-us-test",
    mou_digest=bytes(range(32)),
    schema_digest=bytes(range(32, 64)),
    keys=3,
    asker="agency-ca",
    holder="agency-us",
)
PERIOD = "2025-01"
TABLE_VERSION = 2
ENTRIES = 10
DIGEST = bytes(range(64, 96))
HANDLES = [bytes([i]) * 16 for i in range(1, 8)]


U = AbortCode.UNEXPECTED_MESSAGE


def sha(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


# -- the honest callers --------------------------------------------------------------------------


@dataclasses.dataclass
class AskerCaller:
    """Takes the next step of its plan whenever the session is READY; sends receipts at once."""

    s: AskerSession
    plan: deque[tuple[str, int]]
    log: list[tuple[str, Any]] = dataclasses.field(default_factory=list)

    def act(self) -> None:
        s = self.s
        if s.state is SessionState.RECEIPTS:
            n = s._pending
            s.send_receipts([(i % 2 == 0, b"receipt-%d" % i) for i in range(n)])
            self.log.append(("receipts", n))
        while s.state is SessionState.READY and self.plan:
            what, n = self.plan.popleft()
            if what == "table":
                s.request_table(n % (TABLE_VERSION + 1))
                self.log.append(("table", None))
            elif what == "evaluate":  # n EVALUATEs, pipelined
                for j in range(1 + n % 3):
                    count = 1 + (n + j) % 3
                    request = s.evaluate(b"".join(sha(b"b", bytes([j, i])) for i in range(count)))
                    self.log.append(("evaluate", (request, count)))
            elif what == "release":
                hits = [
                    RequestedHit(7 + i, bytes([1 + (i + n) % 7]), tuple(HANDLES[i : i + 1 + n % 3]))
                    for i in range(1 + n % 3)
                ]
                request = s.request_releases(hits)
                self.log.append(("release", (request, len(hits))))
            elif what == "bye":
                s.close()
                self.log.append(("bye", None))


@dataclasses.dataclass
class HolderCaller:
    """Answers each event of its session at once (the agency's holder)."""

    s: HolderSession
    chunks: int

    def act(self, events: list[Any]) -> None:
        s = self.s
        for e in events:
            if isinstance(e, TableRequested):
                s.send_table(
                    [bytes([i]) * 24 for i in range(self.chunks)],
                    version=TABLE_VERSION,
                    total=ENTRIES,
                )
            elif isinstance(e, EvaluationRequested):
                s.answer_evaluation(
                    b"".join(sha(e.blinded[i : i + 32]) for i in range(0, len(e.blinded), 32))
                )
            elif isinstance(e, ReleaseRequested):
                answers = []
                for i, hit in enumerate(e.hits):
                    fate = Fate(1 + (hit.record + i + e.request) % 6)
                    answers.append(
                        ReleaseAnswer(
                            fate,
                            sha(bytes([i]))[:16],
                            b"frame-%d" % hit.record if fate is Fate.SENT else b"",
                        )
                    )
                s.send_releases(answers)


# -- the model of V: what the spec says V must do with each message ------------------------------


@dataclasses.dataclass
class HolderModel:
    phase: str = "WAITING"  # WAITING, READY, DUE (an answer), RECEIPTS, CLOSED, ABORTED
    request: int = 0
    tables: int = 0
    frames_out: int = 0  # frames of the RELEASES the receipts answer
    expected_events: list[type] = dataclasses.field(default_factory=list)

    def check(self, m: M.QueryMessage) -> AbortCode | tuple[AbortCode, ...] | None:
        self.expected_events = []
        if isinstance(m, M.Abort):
            return None  # raised as PeerAborted: checked apart
        if self.phase == "WAITING":
            if not isinstance(m, M.Hello):
                return U
            c = CONFIG
            if m.mou_id != c.mou_id or m.mou_digest != c.mou_digest:
                return AbortCode.MOU_MISMATCH
            if m.schema_digest != c.schema_digest:
                return AbortCode.SCHEMA_MISMATCH
            if m.asker != c.asker or m.holder != c.holder:
                return AbortCode.PARTY_MISMATCH
            self.phase = "READY"
            return None
        if self.phase == "READY":
            if isinstance(m, M.TableRequest):
                if m.since > TABLE_VERSION and self.tables >= 2:
                    return (AbortCode.BAD_TABLE, U)  # which check first: not said
                if m.since > TABLE_VERSION:
                    return AbortCode.BAD_TABLE
                if self.tables >= 2:
                    return U
                self.tables += 1
                self.expected_events = [TableRequested]
                return None
            if isinstance(m, M.Evaluate | M.ReleaseRequest):
                if m.request <= self.request:
                    return AbortCode.CHUNK_REPLAYED
                if m.request > self.request + 1:
                    return AbortCode.CHUNK_OUT_OF_ORDER
                self.request += 1
                if isinstance(m, M.ReleaseRequest):
                    code = _release_request_code(m)
                    if code is not None:
                        return code
                    self.expected_events = [ReleaseRequested]
                else:
                    self.expected_events = [EvaluationRequested]
                return None
            if isinstance(m, M.Bye):
                self.phase = "CLOSED"
                self.expected_events = [AskerLeft]
                return None
            return U
        if self.phase == "DUE":  # the caller's answer is due (§7.2)
            return U
        if self.phase == "RECEIPTS":
            if not isinstance(m, M.ReceiptsMessage):
                return U
            if m.request != self.request:
                return U
            if len(m.oks) != self.frames_out or len(m.answers) != self.frames_out:
                return AbortCode.WRONG_COUNT
            if any(b not in (0, 1) for b in m.oks):
                return AbortCode.MALFORMED_MESSAGE
            self.phase = "READY"
            self.expected_events = [ReceiptsReceived]
            return None
        raise AssertionError(f"model asked in {self.phase}")


def _release_request_code(m: M.ReleaseRequest) -> AbortCode | None:
    """§6.11, after the request number."""
    n = len(m.records) // 4
    size = CONFIG.presence_size
    if len(m.presence) != n * size or len(m.counts) != n:
        return AbortCode.MALFORMED_MESSAGE
    if 0 in m.counts or 16 * sum(m.counts) != len(m.handles):
        return AbortCode.MALFORMED_MESSAGE
    seen, at = set(), 0
    for i, count in enumerate(m.counts):
        handles = [m.handles[16 * (at + j) : 16 * (at + j + 1)] for j in range(count)]
        at += count
        record = m.records[4 * i : 4 * i + 4]
        if handles != sorted(set(handles)) or record in seen:
            return AbortCode.MALFORMED_MESSAGE
        seen.add(record)
        if int.from_bytes(m.presence[size * i : size * (i + 1)], "little") >> CONFIG.keys:
            return AbortCode.MALFORMED_MESSAGE
    return None


@dataclasses.dataclass
class AskerModel:
    phase: str = "WAITING"  # WAITING, READY, TABLE, EVALUATING, RELEASING, RECEIPTS, CLOSED, ...
    chunks: int = 0
    evaluations: deque[tuple[int, int]] = dataclasses.field(default_factory=deque)
    release: tuple[int, int] = (0, 0)  # the outstanding RELEASE_REQUEST: number, records
    expected_events: list[type] = dataclasses.field(default_factory=list)

    def called(self, what: str, arg: Any) -> None:
        """The caller's request (the honest asker's plan)."""
        if what == "table":
            self.phase, self.chunks = "TABLE", 0
        elif what == "evaluate":
            self.evaluations.append(arg)
            self.phase = "EVALUATING"
        elif what == "release":
            self.release = arg
            self.phase = "RELEASING"
        elif what == "receipts":
            self.phase = "READY"
        elif what == "bye":
            self.phase = "CLOSED"

    def check(self, m: M.QueryMessage) -> AbortCode | tuple[AbortCode, ...] | None:
        self.expected_events = []
        if isinstance(m, M.Abort):
            return None
        if self.phase == "WAITING" and isinstance(m, M.Welcome):
            if not (
                len(m.period) == 7
                and m.period[:4].isdigit()
                and m.period[4] == "-"
                and m.period[5:] in {f"{i:02d}" for i in range(1, 13)}
                and m.period.isascii()
            ):
                return AbortCode.MALFORMED_MESSAGE
            if m.keys != CONFIG.keys:
                return AbortCode.SCHEMA_MISMATCH
            self.welcome = m
            self.phase = "READY"
            self.expected_events = [Welcomed]
            return None
        if self.phase == "TABLE" and isinstance(m, M.TableChunk):
            if m.seq <= self.chunks:
                return AbortCode.CHUNK_REPLAYED
            if m.seq > self.chunks + 1:
                return AbortCode.CHUNK_OUT_OF_ORDER
            self.chunks += 1
            self.expected_events = [TableChunkReceived]
            return None
        if self.phase == "TABLE" and isinstance(m, M.TableEnd):
            if m.chunks != self.chunks:
                return AbortCode.WRONG_COUNT
            if (m.version, m.total) != (self.welcome.table_version, self.welcome.entries):
                return AbortCode.BAD_TABLE
            self.phase = "READY"
            self.expected_events = [TableComplete]
            return None
        if self.phase == "EVALUATING" and isinstance(m, M.Evaluated):
            request, count = self.evaluations[0]
            if m.request != request:
                return U
            if len(m.evaluated) != 32 * count:
                return AbortCode.WRONG_COUNT
            self.evaluations.popleft()
            if not self.evaluations:
                self.phase = "READY"
            self.expected_events = [EvaluationAnswered]
            return None
        if self.phase == "RELEASING" and isinstance(m, M.ReleasesMessage):
            request, n = self.release
            if m.request != request:
                return U
            if len(m.fates) != n or len(m.release_ids) != 16 * n:
                return AbortCode.WRONG_COUNT
            if any(not 1 <= f <= 6 for f in m.fates):
                return AbortCode.MALFORMED_MESSAGE
            if sum(f == Fate.SENT for f in m.fates) != len(m.frames):
                return AbortCode.WRONG_COUNT
            self.phase = "RECEIPTS" if m.frames else "READY"
            self.expected_events = [ReleasesReceived]
            return None
        return U


# -- the messages a hostile peer makes of honest ones --------------------------------------------


def _tweak(m: M.QueryMessage, how: int, k: int) -> M.QueryMessage:
    r = dataclasses.replace
    d = k % 5 - 2  # -2 .. 2
    if isinstance(m, M.Hello):
        choices: list[Any] = [
            dict(mou_id="other-mou"),
            dict(mou_digest=bytes(32)),
            dict(schema_digest=bytes(32)),
            dict(asker=m.holder, holder=m.asker),
            dict(asker="someone-else"),
            dict(nonce=bytes([k % 256]) * 16),
        ]
    elif isinstance(m, M.Welcome):
        choices = [
            dict(period=["2025-13", "2025-00", "25-01-1", "2025/01", "2024-12"][k % 5]),
            dict(keys=max(0, m.keys + d)),
            dict(table_version=max(0, m.table_version + d)),
            dict(entries=max(0, m.entries + d)),
            dict(quota_left=0),
            dict(nonce=bytes([k % 256]) * 16),
        ]
    elif isinstance(m, M.TableRequest):
        choices = [dict(since=TABLE_VERSION + 1 + k % 3), dict(since=k % (TABLE_VERSION + 1))]
    elif isinstance(m, M.TableChunk):
        choices = [dict(seq=max(0, m.seq + d)), dict(seq=0), dict(entries=m.entries[:1])]
    elif isinstance(m, M.TableEnd):
        choices = [
            dict(chunks=max(0, m.chunks + d)),
            dict(version=max(0, m.version + d)),
            dict(total=max(0, m.total + d)),
        ]
    elif isinstance(m, M.Evaluate | M.Evaluated):
        field = "blinded" if isinstance(m, M.Evaluate) else "evaluated"
        data = getattr(m, field)
        choices = [
            dict(request=max(0, m.request + d)),
            dict(request=0),
            {field: data + data[:32]},
            {field: data[:-32] or data},
            {field: data[32:] + data[:32]},
        ]
    elif isinstance(m, M.ReleaseRequest):
        n = len(m.records) // 4
        first = m.counts[0]
        last = m.handles[16 * first - 16 : 16 * first]
        choices = [
            dict(request=max(0, m.request + d)),
            dict(presence=m.presence + b"\x01"),
            dict(presence=m.presence[:-1] or b"\x01\x01"),
            dict(counts=m.counts + b"\x01"),
            dict(counts=b"\x00" + m.counts[1:]),
            dict(handles=m.handles + HANDLES[6]),
            # the first record's last handle moved to its front: not ascending
            dict(handles=last + m.handles[: 16 * first - 16] + m.handles[16 * first :]),
            dict(handles=m.handles[:16] * first + m.handles[16 * first :]),  # a handle repeated
            dict(records=m.records[:4] * n),  # a record twice when n > 1
            dict(presence=bytes([1 << (CONFIG.keys + k % (8 - CONFIG.keys))]) + m.presence[1:]),
        ]
    elif isinstance(m, M.ReleasesMessage):
        fates = bytes(m.fates)
        flip = bytes([Fate.QUEUED if f == Fate.SENT else Fate.SENT for f in fates[:1]]) + fates[1:]
        choices = [
            dict(request=max(0, m.request + d)),
            dict(fates=fates + bytes([1 + k % 6]), release_ids=m.release_ids + bytes(16)),
            dict(fates=fates[:-1] or fates, release_ids=m.release_ids[:-16] or m.release_ids),
            dict(fates=fates + bytes([2])),
            dict(release_ids=m.release_ids + bytes(16)),
            dict(fates=bytes([[0, 7, 255][k % 3]]) + fates[1:]),
            dict(frames=(*m.frames, b"extra")),
            dict(frames=m.frames[:-1]),
            dict(fates=flip),
            dict(fates=bytes([Fate.SENT]) * len(fates), frames=(b"f",) * len(fates)),
        ]
    elif isinstance(m, M.ReceiptsMessage):
        choices = [
            dict(request=max(0, m.request + d)),
            dict(oks=m.oks + b"\x01", answers=(*m.answers, b"r")),
            dict(oks=m.oks[:-1], answers=m.answers[:-1]),
            dict(oks=bytes([2 + k % 250]) + m.oks[1:]),
            dict(answers=(*m.answers, b"r")),
        ]
    elif isinstance(m, M.Abort):
        return M.Abort(
            int([k % 256, AbortCode.QUOTA_EXHAUSTED, 200 + k % 50][how % 3]), "x" * (k % 7)
        )
    else:
        return M.Bye() if how % 2 else M.Abort(int(AbortCode.TIMEOUT), "")
    return r(m, **choices[how % len(choices)])


class QueryFuzz(RuleBasedStateMachine):
    @initialize(
        victim=st.sampled_from(["asker", "holder"]),
        plan=st.lists(
            st.tuples(st.sampled_from(["table", "evaluate", "release"]), st.integers(0, 8)),
            max_size=5,
        ),
        bye=st.booleans(),
        chunks=st.integers(0, 3),
        warmup=st.integers(0, 5),
        lazy=st.booleans(),
    )
    def build(
        self,
        victim: str,
        plan: list[tuple[str, int]],
        bye: bool,
        chunks: int,
        warmup: int,
        lazy: bool,
    ) -> None:
        holder = HolderSession(
            CONFIG,
            period=PERIOD,
            table_version=TABLE_VERSION,
            entries=ENTRIES,
            table_digest=DIGEST,
            quota_left=50,
            rng=DeterministicRandom("holder"),
        )
        asker = AskerSession(CONFIG, rng=DeterministicRandom("asker"))
        self.asker = AskerCaller(asker, deque(plan + ([("bye", 0)] if bye else [])))
        self.holder = HolderCaller(holder, chunks)
        self.victim = victim
        self.v: AskerSession | HolderSession = asker if victim == "asker" else holder
        self.p: AskerSession | HolderSession = holder if victim == "asker" else asker
        self.model: AskerModel | HolderModel = AskerModel() if victim == "asker" else HolderModel()
        self.pool: list[bytes] = []
        self.v_aborts = 0  # ABORTs V gave out
        self.abort_code: AbortCode | None = None  # the code V's ABORT must carry
        self.peer_aborted = False
        self.requests: list[int] = []  # holder victim: request numbers reported
        self.lazy = lazy  # V's caller acts only when told (v_act), not at once
        self.due: list[Any] = []  # holder victim: events its caller has not answered
        asker.start()
        self._asker_called()
        lazy_later, self.lazy = lazy, False
        for _ in range(warmup):
            self.pump(1, False)
        self.lazy = lazy_later
        event(f"start {victim} {self.v.state.value}")

    # -- the callers ----------------------------------------------------------------------

    def _asker_called(self) -> None:
        before = len(self.asker.log)
        if not self.asker.s.done:
            self.asker.act()
        if self.victim == "asker":
            assert isinstance(self.model, AskerModel)
            for what, arg in self.asker.log[before:]:
                self.model.called(what, arg)

    def _events(self, events: list[Any], message: M.QueryMessage) -> None:
        """Check V's events on ``message`` against the model, then V's caller answers them."""
        got = [type(e) for e in events]
        assert got == self.model.expected_events, (
            f"events {got}, model {self.model.expected_events}"
        )
        if self.victim == "holder":
            assert isinstance(self.model, HolderModel)
            for e in events:
                if isinstance(e, EvaluationRequested | ReleaseRequested):
                    self.requests.append(e.request)
                    assert self.requests == list(range(1, len(self.requests) + 1))
                if isinstance(e, ReleaseRequested):
                    records = [h.record for h in e.hits]
                    assert len(set(records)) == len(records)
                    for h in e.hits:
                        assert 1 <= len(h.handles) <= 255
                        assert list(h.handles) == sorted(set(h.handles))
                        assert int.from_bytes(h.presence, "little") >> CONFIG.keys == 0
                if isinstance(e, ReceiptsReceived):
                    assert len(e.answers) == self.model.frames_out
            self.due += events
            if not self.lazy:
                self.v_act()
            elif any(not isinstance(e, ReceiptsReceived | AskerLeft) for e in events):
                self.model.phase = "DUE"
        else:
            assert isinstance(self.model, AskerModel)
            for e in events:  # the model checked EVALUATED answers the oldest, in full
                if isinstance(e, ReleasesReceived):
                    assert isinstance(message, M.ReleasesMessage)
                    assert len(e.answers) == self.model.release[1]
                    assert bytes(a.fate for a in e.answers) == message.fates
                    assert b"".join(a.release_id for a in e.answers) == message.release_ids
                    sent = [a.frame for a in e.answers if a.fate is Fate.SENT]
                    assert sent == list(message.frames)
                    assert all(a.frame == b"" for a in e.answers if a.fate is not Fate.SENT)
                if isinstance(e, EvaluationAnswered):
                    assert isinstance(message, M.Evaluated)
                    assert (e.request, e.evaluated) == (message.request, message.evaluated)
            if not self.lazy:
                self.v_act()

    @rule()
    def v_act(self) -> None:
        """V's caller takes its decisions: the holder answers its events, the asker sends
        its receipts and the next requests of its plan."""
        if self.victim == "holder":
            assert isinstance(self.model, HolderModel)
            events, self.due = self.due, []
            v = self.holder.s
            if v.done:
                return
            self.holder.act(events)
            if self.model.phase == "DUE":
                self.model.phase = "READY"
            if v.state is SessionState.RELEASING:  # RELEASES with frames out: receipts due
                self.model.phase = "RECEIPTS"
                self.model.frames_out = -v._released
            assert v.state.name == {"RECEIPTS": "RELEASING"}.get(
                self.model.phase, self.model.phase
            ), f"V {v.state}, model {self.model.phase}"
        else:
            if self.asker.s.done:
                return
            self._asker_called()
            assert self.asker.s.state.name == self.model.phase, (
                f"V {self.asker.s.state}, model {self.model.phase}"
            )

    # -- delivery with checks ---------------------------------------------------------------

    def _to_v(self, data: bytes) -> None:
        v = self.v
        before, was_done = v.state, v.done
        queued_before = list(v._out)
        try:
            message: M.QueryMessage | None = M.decode(data)
        except RemoteProtocolError as exc:
            message, decode_code = None, exc.code
        expected: Any = None
        if not was_done:
            expected = decode_code if message is None else self.model.check(message)
        try:
            events = timed(v.receive, data)
        except LocalProtocolError as exc:
            event(f"refused while {before.value}")
            assert was_done, f"LocalProtocolError while {before}: {exc}"
            assert v.state is before and list(v._out) == queued_before
            return
        except PeerAborted as exc:
            assert not was_done and isinstance(message, M.Abort)
            assert v.state is SessionState.ABORTED and v.next_frame() is None
            known = message.code in {int(c) for c in AbortCode}
            assert exc.code == (message.code if known else AbortCode.PEER_ABORTED)
            assert isinstance(exc, QuotaExhausted) == (exc.code is AbortCode.QUOTA_EXHAUSTED)
            self.peer_aborted = True
            self.model.phase = "ABORTED"
            event(f"peer ABORT in {before.value}")
            return
        except RemoteProtocolError as exc:
            assert not was_done, f"RemoteProtocolError while {before}"
            assert v.state is SessionState.ABORTED
            assert expected is not None, (
                f"{exc.code.name} ({exc.detail}) in {before}, model accepts "
                f"{(message or data)!r:.200}"
            )
            allowed = expected if isinstance(expected, tuple) else (expected,)
            assert exc.code in allowed, (
                f"{exc.code.name} ({exc.detail}) in {before}, spec {expected} on "
                f"{(message or data)!r:.200}"
            )
            self.abort_code = exc.code
            self.model.phase = "ABORTED"
            event(f"abort {exc.code.name} in {before.value}")
            return
        assert not was_done, f"accepted a message while {before}"
        assert expected is None, f"accepted {message!r:.200} in {before}; spec {expected}"
        assert message is not None
        self._events(events, message)

    def _to_p(self, data: bytes) -> None:
        if self.p.done:
            return
        try:
            events = self.p.receive(data)
        except (RemoteProtocolError, LocalProtocolError):
            return
        if self.p is self.holder.s:
            self.holder.act(events)
        else:
            self._asker_called()

    def _v_next(self) -> bytes | None:
        f = self.v.next_frame()
        if f is not None and self.v.state is SessionState.ABORTED:
            message = M.decode(f)
            assert isinstance(message, M.Abort), f"{message!r:.100} given out after the abort"
            self.v_aborts += 1
            assert self.v_aborts == 1, "a second ABORT"
            assert not self.peer_aborted, "an ABORT in answer to an ABORT"
            assert message.code == self.abort_code
        return f

    @rule(steps=st.one_of(st.integers(1, 3), st.integers(1, 30)), hold_v=st.booleans())
    def pump(self, steps: int, hold_v: bool) -> None:
        """Honest progress both ways; with hold_v V's messages wait."""
        for _ in range(steps):
            moved = False
            if not hold_v:
                m = self._v_next()
                if m is not None:
                    moved = True
                    self.pool.append(m)
                    if self.v.state is not SessionState.ABORTED:
                        self._to_p(m)
            m = self.p.next_frame()
            if m is not None:
                moved = True
                self.pool.append(m)
                self._to_v(m)
            if not moved:
                break

    @rule(n=st.integers(1, 4))
    def v_to_p(self, n: int) -> None:
        """V's messages to P only (P's answers wait)."""
        for _ in range(n):
            m = self._v_next()
            if m is None:
                return
            self.pool.append(m)
            if self.v.state is not SessionState.ABORTED:
                self._to_p(m)

    @rule()
    def p_take(self) -> None:
        """P's next message, taken and not delivered (lost, or in flight: an injection may
        deliver it, as it is or changed)."""
        m = self.p.next_frame()
        if m is not None:
            self.pool.append(m)

    @precondition(lambda self: bool(self.pool))
    @rule(
        what=st.integers(0, 55),
        i=st.integers(0, 255),
        how=st.integers(0, 50),
        k=st.integers(0, 1000),
    )
    def inject(self, what: int, i: int, how: int, k: int) -> None:
        """A replay of a message either side sent (of the last few or of any), one of them with
        a field changed, its bytes cut or another version byte; or a local abort."""
        recent = self.pool[-1 - i % min(8, len(self.pool))]
        base = recent if what % 2 == 0 else self.pool[i % len(self.pool)]
        if what >= 44:  # P's next message, changed on its way
            nxt = self.p.next_frame()
            if nxt is None:
                return
            self.pool.append(nxt)
            base, what = nxt, 14
        if what < 14:
            event("inject replay")
            self._to_v(base)
        elif what < 36:
            message = _tweak(M.decode(base), how, k)
            event(f"inject crafted {type(message).__name__}")
            try:
                data = M.encode(message)  # only well-formed messages
            except ValueError:
                return
            self._to_v(data)
        elif what < 39:
            self._to_v(
                [base[: k % max(1, len(base))], b"\x50" + base[1:], base + b"\x00"][what % 3]
            )
        elif what < 42:
            code = [k % 256, AbortCode.QUOTA_EXHAUSTED, AbortCode.UNEXPECTED_MESSAGE][what % 3]
            self._to_v(M.encode(M.Abort(int(code), "peer")))
        else:
            if not self.v.done:
                self.v.abort(AbortCode.TIMEOUT, "local")
                self.abort_code = AbortCode.TIMEOUT
                self.model.phase = "ABORTED"

    @invariant()
    def checks(self) -> None:
        if not hasattr(self, "v"):
            return
        event(f"V {self.victim} {self.v.state.value}")


QueryFuzz.TestCase.settings = fuzz_settings(steps=30)
TestQueryFuzz = QueryFuzz.TestCase


def test_an_asker_not_started_takes_no_welcome() -> None:
    """A WELCOME answers our HELLO: one that comes before start() answers nothing. It was
    taken: the asker became READY with a session id of a nonce it never sent, and start() was
    then refused."""
    asker = AskerSession(CONFIG, rng=DeterministicRandom("asker"))
    welcome = M.encode(M.Welcome(bytes(16), "2025-01", 2, 10, bytes(32), 50, CONFIG.keys))
    with pytest.raises(RemoteProtocolError) as early:
        asker.receive(welcome)
    assert early.value.code is AbortCode.UNEXPECTED_MESSAGE
    assert asker.state is SessionState.ABORTED and asker.session_id is None
