"""The two state machines of xlink-query-v1 (protocols/xlink-query-v1.md §6, §7): the happy
path request by request, pipelined EVALUATEs answered in order, the caller's misuse refused
locally (LocalProtocolError, nothing sent, nothing changed), ABORT details cut to 200 UTF-8
bytes, the message limits, and every message's codec."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import pytest

from xlink.crypto.rand import DeterministicRandom
from xlink.error_codes import AbortCode
from xlink.errors import LocalProtocolError, PeerAborted, RemoteProtocolError
from xlink.protocol.limits import MAX_MESSAGE_SIZE
from xlink.query import messages as M
from xlink.query.session import (
    AskerSession,
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
    TableComplete,
    TableRequested,
    Welcomed,
    query_handle,
    session_id_of,
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
DIGEST = bytes(range(64, 96))
"""The table digest the holder announces (any 32 bytes: the session only carries it)."""


def _pair(*, table_version: int = 2) -> tuple[HolderSession, AskerSession]:
    holder = HolderSession(
        CONFIG,
        period=PERIOD,
        table_version=table_version,
        entries=10,
        table_digest=DIGEST,
        quota_left=50,
        rng=DeterministicRandom("holder"),
    )
    asker = AskerSession(CONFIG, rng=DeterministicRandom("asker"))
    return holder, asker


def _flush(source: HolderSession | AskerSession) -> list[bytes]:
    out = []
    while (frame := source.next_frame()) is not None:
        out.append(frame)
    return out


def _deliver(
    source: HolderSession | AskerSession, target: HolderSession | AskerSession
) -> list[Any]:
    events: list[Any] = []
    for frame in _flush(source):
        events += target.receive(frame)
    return events


def _ready() -> tuple[HolderSession, AskerSession]:
    holder, asker = _pair()
    asker.start()
    assert _deliver(asker, holder) == []
    (welcomed,) = _deliver(holder, asker)
    assert isinstance(welcomed, Welcomed)
    return holder, asker


def _state(session: HolderSession | AskerSession) -> SessionState:
    """The session's state (a call, so that type checkers do not narrow it)."""
    return session.state


def _hit(record: int, *handles: bytes) -> RequestedHit:
    return RequestedHit(record, b"\x05", handles)


# -- the happy path ---------------------------------------------------------------------------


def test_handshake_gives_both_the_same_session_id() -> None:
    holder, asker = _pair()
    assert _state(holder) is asker.state is SessionState.WAITING
    asker.start()
    (hello,) = _flush(asker)
    assert M.decode(hello) == M.Hello(
        DeterministicRandom("asker")(16),
        CONFIG.mou_id,
        CONFIG.mou_digest,
        CONFIG.schema_digest,
        CONFIG.asker,
        CONFIG.holder,
    )
    assert holder.receive(hello) == []
    assert _state(holder) is SessionState.READY
    (welcome,) = _flush(holder)
    assert M.decode(welcome) == M.Welcome(
        DeterministicRandom("holder")(16), PERIOD, 2, 10, DIGEST, 50, CONFIG.keys
    )
    (event,) = asker.receive(welcome)
    assert isinstance(event, Welcomed)
    assert (
        event.period,
        event.table_version,
        event.entries,
        event.table_digest,
        event.quota_left,
    ) == (PERIOD, 2, 10, DIGEST, 50)
    expected = session_id_of(
        CONFIG, DeterministicRandom("asker")(16), DeterministicRandom("holder")(16), PERIOD
    )
    assert holder.session_id == asker.session_id == event.session_id == expected
    assert _state(asker) is SessionState.READY


def test_table_request_chunks_and_end() -> None:
    holder, asker = _ready()
    asker.request_table(1)
    assert _state(asker) is SessionState.TABLE
    (requested,) = _deliver(asker, holder)
    assert requested == TableRequested(1)
    assert _state(holder) is SessionState.TABLE
    holder.send_table([b"a" * 13, b"b" * 26], version=2, total=10)
    assert _state(holder) is SessionState.READY
    events = _deliver(holder, asker)
    assert [type(e).__name__ for e in events] == [
        "TableChunkReceived",
        "TableChunkReceived",
        "TableComplete",
    ]
    assert events[0].entries == b"a" * 13 and events[1].entries == b"b" * 26
    assert events[2] == TableComplete(2, 10)
    assert _state(asker) is SessionState.READY


def test_an_empty_table_delta_is_table_end_alone() -> None:
    holder, asker = _ready()
    asker.request_table(2)
    _deliver(asker, holder)
    holder.send_table([], version=2, total=10)
    (frame,) = _flush(holder)
    assert M.decode(frame) == M.TableEnd(0, 2, 10)
    assert asker.receive(frame) == [TableComplete(2, 10)]


def test_pipelined_evaluations_are_answered_in_order() -> None:
    holder, asker = _ready()
    sizes = [1, 3, 2]
    numbers = [asker.evaluate(bytes([n]) * 32 * n) for n in sizes]
    assert numbers == [1, 2, 3]
    assert _state(asker) is SessionState.EVALUATING
    answered: list[Any] = []
    for frame in _flush(asker):
        (event,) = holder.receive(frame)
        assert isinstance(event, EvaluationRequested)
        assert event.count == sizes[event.request - 1]
        holder.answer_evaluation(bytes([0xE0 + event.request]) * 32 * event.count)
        for answer in _flush(holder):
            answered += asker.receive(answer)
    assert [e.request for e in answered] == [1, 2, 3]
    assert [len(e.evaluated) // 32 for e in answered] == sizes
    assert _state(asker) is holder.state is SessionState.READY


def test_the_holder_answers_each_request_before_the_next_frame() -> None:
    """The holder's caller answers an event before the next frame is received: a second
    EVALUATE while the first is unanswered is refused (UNEXPECTED_MESSAGE)."""
    holder, asker = _ready()
    asker.evaluate(bytes(32))
    asker.evaluate(bytes(64))
    first, second = _flush(asker)
    holder.receive(first)
    with pytest.raises(RemoteProtocolError) as raised:
        holder.receive(second)
    assert raised.value.code is AbortCode.UNEXPECTED_MESSAGE


def test_releases_then_receipts() -> None:
    holder, asker = _ready()
    h1, h2, h3 = (bytes([i]) * 16 for i in (1, 2, 3))
    number = asker.request_releases([_hit(4, h1, h2), _hit(9, h3)])
    assert number == 1 and asker.state is SessionState.RELEASING
    (requested,) = _deliver(asker, holder)
    assert isinstance(requested, ReleaseRequested)
    assert requested.request == 1
    assert requested.hits == (_hit(4, h1, h2), _hit(9, h3))
    release_id = bytes(range(16))
    holder.send_releases(
        [ReleaseAnswer(Fate.SENT, release_id, b"labelled"), ReleaseAnswer(Fate.QUEUED, b"q" * 16)]
    )
    assert _state(holder) is SessionState.RELEASING
    with pytest.raises(LocalProtocolError):
        holder.send_releases([ReleaseAnswer(Fate.DENIED), ReleaseAnswer(Fate.DENIED)])
    (received,) = _deliver(holder, asker)
    assert isinstance(received, ReleasesReceived)
    assert received.answers == (
        ReleaseAnswer(Fate.SENT, release_id, b"labelled"),
        ReleaseAnswer(Fate.QUEUED, b"q" * 16, b""),
    )
    assert _state(asker) is SessionState.RECEIPTS
    with pytest.raises(LocalProtocolError):
        asker.send_receipts([])  # one answer per SENT release
    asker.send_receipts([(True, b"receipt")])
    assert _state(asker) is SessionState.READY
    (receipts,) = _deliver(asker, holder)
    assert receipts == ReceiptsReceived(1, ((True, b"receipt"),))
    assert _state(holder) is SessionState.READY


def test_releases_without_a_sent_frame_need_no_receipts() -> None:
    holder, asker = _ready()
    asker.request_releases([_hit(0, b"h" * 16)])
    _deliver(asker, holder)
    holder.send_releases([ReleaseAnswer(Fate.NOT_DECIDED)])
    assert _state(holder) is SessionState.READY
    (received,) = _deliver(holder, asker)
    assert received.answers == (ReleaseAnswer(Fate.NOT_DECIDED, bytes(16), b""),)
    assert _state(asker) is SessionState.READY


def test_request_numbers_run_across_evaluations_and_release_requests() -> None:
    holder, asker = _ready()
    assert asker.evaluate(bytes(32)) == 1
    (requested,) = _deliver(asker, holder)
    assert requested.request == 1
    holder.answer_evaluation(bytes(32))
    _deliver(holder, asker)
    assert asker.request_releases([_hit(0, b"h" * 16)]) == 2
    (released,) = _deliver(asker, holder)
    assert released.request == 2


def test_bye_closes_both_sides() -> None:
    holder, asker = _ready()
    asker.close()
    assert _state(asker) is SessionState.CLOSED
    events = _deliver(asker, holder)
    assert [type(e).__name__ for e in events] == ["AskerLeft"]
    assert _state(holder) is SessionState.CLOSED
    assert holder.done and asker.done
    asker.close()  # closing twice is harmless
    assert _flush(asker) == []


# -- the caller's misuse: LocalProtocolError, nothing sent ---------------------------------------


def test_asker_requests_out_of_state_are_refused_locally() -> None:
    holder, asker = _pair()
    asker.start()
    for call in (
        lambda: asker.request_table(0),
        lambda: asker.evaluate(bytes(32)),
        lambda: asker.request_releases([_hit(0, b"h" * 16)]),
        lambda: asker.send_receipts([]),
    ):
        with pytest.raises(LocalProtocolError):
            call()
    (hello,) = _flush(asker)  # the HELLO only
    holder.receive(hello)
    _deliver(holder, asker)
    asker.request_table(0)
    with pytest.raises(LocalProtocolError):
        asker.evaluate(bytes(32))
    with pytest.raises(LocalProtocolError):
        asker.request_table(0)


def test_asker_cannot_ask_for_releases_while_evaluating() -> None:
    _, asker = _ready()
    asker.evaluate(bytes(32))
    with pytest.raises(LocalProtocolError):
        asker.request_releases([_hit(0, b"h" * 16)])
    with pytest.raises(LocalProtocolError):
        asker.request_table(0)
    asker.evaluate(bytes(32))  # another EVALUATE may be outstanding


def test_holder_answers_out_of_state_are_refused_locally() -> None:
    holder, _ = _ready()
    calls: list[Callable[[], object]] = [
        lambda: holder.send_table([], version=2, total=0),
        lambda: holder.answer_evaluation(bytes(32)),
        lambda: holder.send_releases([ReleaseAnswer(Fate.DENIED)]),
    ]
    for call in calls:
        with pytest.raises(LocalProtocolError):
            call()
    assert _flush(holder) == []
    assert _state(holder) is SessionState.READY


def test_start_twice_is_refused_locally() -> None:
    holder, asker = _pair()
    asker.start()
    with pytest.raises(LocalProtocolError):
        asker.start()
    (hello,) = _flush(asker)  # one HELLO
    holder.receive(hello)
    _deliver(holder, asker)
    with pytest.raises(LocalProtocolError):
        asker.start()
    assert _state(asker) is SessionState.READY and _flush(asker) == []
    _, aborted = _pair()
    aborted.abort(AbortCode.INTERNAL_ERROR, "before the start")
    _flush(aborted)
    with pytest.raises(LocalProtocolError):
        aborted.start()
    assert _flush(aborted) == []


def _still_ready_for_request_1(holder: HolderSession, asker: AskerSession) -> None:
    """After a refused call nothing was queued, the state is READY, and the next valid
    request still gets number 1 and is accepted by the holder."""
    assert _state(asker) is SessionState.READY and _flush(asker) == []
    assert asker.evaluate(bytes(32)) == 1
    (requested,) = _deliver(asker, holder)
    assert isinstance(requested, EvaluationRequested) and requested.request == 1


@pytest.mark.parametrize(
    "blinded",
    [b"", bytes(31), bytes(33), bytes(32 * (M.MAX_EVALUATE + 1))],
    ids=["empty", "31_bytes", "33_bytes", "16385_elements"],
)
def test_evaluate_of_a_bad_buffer_is_refused_locally(blinded: bytes) -> None:
    holder, asker = _ready()
    with pytest.raises(LocalProtocolError):
        asker.evaluate(blinded)
    _still_ready_for_request_1(holder, asker)


def test_evaluate_of_a_bad_buffer_while_evaluating_changes_nothing() -> None:
    _, asker = _ready()
    assert asker.evaluate(bytes(32)) == 1
    with pytest.raises(LocalProtocolError):
        asker.evaluate(bytes(40))
    assert _state(asker) is SessionState.EVALUATING
    assert asker.evaluate(bytes(64)) == 2
    assert [cast(M.Evaluate, M.decode(f)).request for f in _flush(asker)] == [1, 2]


_H = b"h" * 16
_BAD_HITS: dict[str, list[RequestedHit]] = {
    "no_hit": [],
    "1025_hits": [_hit(i, _H) for i in range(M.MAX_HITS + 1)],
    "no_handle": [_hit(0, _H), RequestedHit(1, b"\x05", ())],
    "256_handles": [RequestedHit(0, b"\x05", tuple(i.to_bytes(16, "big") for i in range(256)))],
    "presence_empty": [RequestedHit(0, b"", (_H,))],
    "presence_2_bytes": [RequestedHit(0, b"\x05\x00", (_H,))],
    # 1,024 records of 64 handles: the handles alone are 1 MiB, so the frame is larger.
    "larger_than_a_frame": [
        RequestedHit(i, b"\x05", tuple((i * 64 + j).to_bytes(16, "big") for j in range(64)))
        for i in range(M.MAX_HITS)
    ],
    # 1,024 records of 255 handles: the handles field is above its own limit.
    "handles_above_the_bin_limit": [
        RequestedHit(i, b"\x05", tuple((i * 255 + j).to_bytes(16, "big") for j in range(255)))
        for i in range(M.MAX_HITS)
    ],
}


@pytest.mark.parametrize("hits", list(_BAD_HITS.values()), ids=list(_BAD_HITS))
def test_a_bad_release_request_is_refused_locally(hits: list[RequestedHit]) -> None:
    holder, asker = _ready()
    with pytest.raises(LocalProtocolError):
        asker.request_releases(hits)
    _still_ready_for_request_1(holder, asker)


def test_the_largest_release_request_that_fits_is_sent() -> None:
    """1,024 records of 63 handles fit in one frame: the local refusal is only for what the
    holder could not receive."""
    holder, asker = _ready()
    hits = [
        RequestedHit(i, b"\x05", tuple((i * 63 + j).to_bytes(16, "big") for j in range(63)))
        for i in range(M.MAX_HITS)
    ]
    assert asker.request_releases(hits) == 1
    (requested,) = _deliver(asker, holder)
    assert isinstance(requested, ReleaseRequested) and requested.hits == tuple(hits)


@pytest.mark.parametrize("elements", [0, 1, 3], ids=["none", "one_short", "one_more"])
def test_an_evaluation_answer_of_another_size_is_refused_locally(elements: int) -> None:
    holder, asker = _ready()
    asker.evaluate(bytes(64))
    _deliver(asker, holder)
    with pytest.raises(LocalProtocolError):
        holder.answer_evaluation(bytes(32 * elements))
    assert _state(holder) is SessionState.EVALUATING and _flush(holder) == []
    holder.answer_evaluation(bytes([7]) * 64)
    (answered,) = _deliver(holder, asker)
    assert answered.request == 1 and answered.evaluated == bytes([7]) * 64


@pytest.mark.parametrize("answers", [0, 1, 3], ids=["none", "one_short", "one_more"])
def test_releases_not_one_per_requested_record_are_refused_locally(answers: int) -> None:
    holder, asker = _ready()
    asker.request_releases([_hit(4, _H), _hit(9, _H)])
    _deliver(asker, holder)
    with pytest.raises(LocalProtocolError):
        holder.send_releases([ReleaseAnswer(Fate.DENIED)] * answers)
    assert _state(holder) is SessionState.RELEASING and _flush(holder) == []
    holder.send_releases([ReleaseAnswer(Fate.DENIED), ReleaseAnswer(Fate.NOT_DECIDED)])
    assert _state(holder) is SessionState.READY
    (received,) = _deliver(holder, asker)
    assert [a.fate for a in received.answers] == [Fate.DENIED, Fate.NOT_DECIDED]


def test_a_done_session_receives_nothing() -> None:
    holder, asker = _ready()
    asker.abort(AbortCode.INTERNAL_ERROR, "local failure")
    assert _state(asker) is SessionState.ABORTED
    (abort,) = _flush(asker)
    assert M.decode(abort) == M.Abort(int(AbortCode.INTERNAL_ERROR), "local failure")
    asker.abort(AbortCode.TIMEOUT, "again")  # a second abort does nothing
    assert _flush(asker) == []
    with pytest.raises(LocalProtocolError):
        asker.receive(abort)
    with pytest.raises(PeerAborted) as raised:
        holder.receive(abort)
    assert raised.value.code is AbortCode.INTERNAL_ERROR
    assert _state(holder) is SessionState.ABORTED and _flush(holder) == []


def test_an_abort_replaces_what_was_queued() -> None:
    holder, asker = _pair()
    asker.start()
    holder.receive(_flush(asker)[0])  # WELCOME queued
    holder.abort(AbortCode.QUOTA_EXHAUSTED, "quota")
    (only,) = _flush(holder)
    assert M.decode(only) == M.Abort(int(AbortCode.QUOTA_EXHAUSTED), "quota")


def _holder(period: str = PERIOD, digest: bytes = DIGEST) -> HolderSession:
    return HolderSession(
        CONFIG,
        period=period,
        table_version=1,
        entries=0,
        table_digest=digest,
        quota_left=1,
        rng=DeterministicRandom("holder"),
    )


def test_a_bad_period_or_digest_is_refused_at_construction() -> None:
    for period in ("2025-13", "2025-00", "25-01", "2025-1", "2025/01"):
        with pytest.raises(ValueError):
            _holder(period=period)
    for digest in (b"", bytes(31), bytes(33)):
        with pytest.raises(ValueError):
            _holder(digest=digest)


@pytest.mark.parametrize(
    ("detail", "kept"),
    [("é" * 150, "é" * 100), ("a" + "é" * 150, "a" + "é" * 99), ("€" * 100, "€" * 66)],
    ids=["150_e_acute", "odd_offset", "three_byte_characters"],
)
def test_an_abort_detail_is_cut_to_200_utf8_bytes(detail: str, kept: str) -> None:
    """The detail is cut to 200 UTF-8 bytes (not characters), on a character boundary, so
    that the ABORT is one the peer accepts."""
    holder, asker = _ready()
    asker.abort(AbortCode.INTERNAL_ERROR, detail)
    assert _state(asker) is SessionState.ABORTED
    (frame,) = _flush(asker)
    abort = M.decode(frame)
    assert isinstance(abort, M.Abort) and abort.detail == kept
    assert len(abort.detail.encode()) <= M.MAX_DETAIL
    with pytest.raises(PeerAborted) as raised:
        holder.receive(frame)
    assert raised.value.code is AbortCode.INTERNAL_ERROR and raised.value.detail == kept
    assert _state(holder) is SessionState.ABORTED


def test_close_outside_ready_sends_no_bye() -> None:
    """As the reference does today: closing with a request outstanding ends the session
    without a BYE (the holder sees the connection end)."""
    _, asker = _ready()
    asker.evaluate(bytes(32))
    _flush(asker)
    asker.close()
    assert _state(asker) is SessionState.CLOSED and _flush(asker) == []


# -- limits and the codec ------------------------------------------------------------------------


def test_a_message_above_the_frame_limit_is_frame_too_large() -> None:
    holder, _ = _pair()
    with pytest.raises(RemoteProtocolError) as raised:
        holder.receive(b"\x51" + bytes(MAX_MESSAGE_SIZE))
    assert raised.value.code is AbortCode.FRAME_TOO_LARGE


@pytest.mark.parametrize(
    "body",
    [
        [6, 1, bytes(32 * (M.MAX_EVALUATE + 1))],
        [8, 1, bytes(4 * (M.MAX_HITS + 1)), b"\x01", b"\x01", bytes(16)],
        [12, 1, "x" * (M.MAX_DETAIL + 1)],
        [12, 1, "é" * 101],
        [2, bytes(16), "2025-01", 1, 1, bytes(32), 1, 1, 7],
        [2, bytes(16), "2025-01", 1, 1, bytes(33), 1, 1],
        [1, bytes(16), "m", bytes(32), bytes(32), "a", "b", 0],
    ],
    ids=[
        "evaluate_16385",
        "release_request_1025_records",
        "abort_detail_201",
        "abort_detail_202_bytes_of_101_characters",
        "welcome_extra",
        "welcome_digest_33",
        "hello_with_have_version",
    ],
)
def test_fields_beyond_their_limits_are_malformed(body: list[object]) -> None:
    import msgpack

    data = b"\x51" + cast(bytes, msgpack.packb(body, use_bin_type=True))
    with pytest.raises(RemoteProtocolError) as raised:
        M.decode(data)
    assert raised.value.code is AbortCode.MALFORMED_MESSAGE


def test_the_largest_evaluate_fits_in_a_frame() -> None:
    message = M.Evaluate(1, bytes(32 * M.MAX_EVALUATE))
    assert M.decode(M.encode(message)) == message
    assert len(M.encode(message)) <= MAX_MESSAGE_SIZE


MESSAGES: list[M.QueryMessage] = [
    M.Hello(bytes(16), "m", bytes(32), bytes(32), "a", "b"),
    M.Welcome(bytes(16), "2025-12", 3, 70000, bytes(range(32)), 0, 255),
    M.Welcome(bytes(16), "2025-12", 2**64 - 1, 2**64 - 1, bytes(32), 2**64 - 1, 255),
    M.TableRequest(0),
    M.TableChunk(1, b"\x00" * 13),
    M.TableEnd(0, 1, 0),
    M.Evaluate(7, bytes(64)),
    M.Evaluated(7, bytes(64)),
    M.ReleaseRequest(8, bytes(8), b"\x01\x02", b"\x01\x01", bytes(32)),
    M.ReleasesMessage(8, b"\x01\x06", bytes(32), (b"frame",)),
    M.ReceiptsMessage(8, b"\x01", (b"receipt",)),
    M.ReceiptsMessage(8, b"", ()),
    M.Bye(),
    M.Abort(70, "quota"),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips(message: M.QueryMessage) -> None:
    data = M.encode(message)
    assert data[0] == 0x51 and data[2] == int(message.TYPE)
    assert M.decode(data) == message


def test_types_are_numbered_as_specified() -> None:
    assert [(t.name, int(t)) for t in M.QueryType] == [
        ("HELLO", 1),
        ("WELCOME", 2),
        ("TABLE_REQUEST", 3),
        ("TABLE_CHUNK", 4),
        ("TABLE_END", 5),
        ("EVALUATE", 6),
        ("EVALUATED", 7),
        ("RELEASE_REQUEST", 8),
        ("RELEASES", 9),
        ("RECEIPTS", 10),
        ("BYE", 11),
        ("ABORT", 12),
    ]
    assert [(f.name, int(f)) for f in Fate] == [
        ("SENT", 1),
        ("QUEUED", 2),
        ("PENDING", 3),
        ("DENIED", 4),
        ("DELIVERED", 5),
        ("NOT_DECIDED", 6),
    ]


def test_a_peer_abort_detail_is_sanitized() -> None:
    holder, _ = _pair()
    with pytest.raises(PeerAborted) as raised:
        holder.receive(M.encode(M.Abort(23, "bad\x1b[31m\u202e")))
    assert raised.value.code is AbortCode.WRONG_COUNT
    assert "\x1b" not in raised.value.detail and "\u202e" not in raised.value.detail


def test_handles_depend_on_the_session() -> None:
    output = bytes(range(64))
    a, b = query_handle(bytes(16), output), query_handle(b"\x01" * 16, output)
    assert len(a) == len(b) == 16 and a != b


def test_a_third_table_request_in_a_session_aborts() -> None:
    """An honest asker asks for the table at most twice in a session (the delta, then the
    whole table after a refused merge); each costs the holder a table's sending and nothing of
    the quota, so a third is refused (``UNEXPECTED_MESSAGE``) and nothing more is sent."""
    holder, _ = _ready()
    for _ in range(2):
        holder.receive(M.encode(M.TableRequest(0)))
        holder.send_table([b"a" * 13], version=2, total=10)
        _flush(holder)
    with pytest.raises(RemoteProtocolError) as raised:
        holder.receive(M.encode(M.TableRequest(0)))
    assert raised.value.code is AbortCode.UNEXPECTED_MESSAGE
    assert _state(holder) is SessionState.ABORTED
    assert [type(M.decode(f)).__name__ for f in _flush(holder)] == ["Abort"]
