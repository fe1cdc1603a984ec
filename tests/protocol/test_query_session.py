"""The two state machines of xlink-query-v1 (protocols/xlink-query-v1.md §6, §7): the happy
path request by request, pipelined EVALUATEs answered in order, the caller's misuse refused
locally (LocalProtocolError, nothing sent), the message limits, and every message's codec."""

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


def _pair(*, table_version: int = 2, have_version: int = 0) -> tuple[HolderSession, AskerSession]:
    holder = HolderSession(
        CONFIG,
        period=PERIOD,
        table_version=table_version,
        entries=10,
        quota_left=50,
        rng=DeterministicRandom("holder"),
    )
    asker = AskerSession(CONFIG, have_version=have_version, rng=DeterministicRandom("asker"))
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
    assert isinstance(M.decode(hello), M.Hello)
    assert holder.receive(hello) == []
    assert _state(holder) is SessionState.READY
    (welcome,) = _flush(holder)
    (event,) = asker.receive(welcome)
    assert isinstance(event, Welcomed)
    assert (event.period, event.table_version, event.entries, event.quota_left) == (
        PERIOD,
        2,
        10,
        50,
    )
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


def test_a_bad_period_is_refused_at_construction() -> None:
    for period in ("2025-13", "2025-00", "25-01", "2025-1", "2025/01"):
        with pytest.raises(ValueError):
            HolderSession(
                CONFIG, period=period, table_version=1, entries=0, quota_left=1, rng=bytes
            )


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
        [2, bytes(16), "2025-01", 1, 1, 1, 1, 7],
    ],
    ids=["evaluate_16385", "release_request_1025_records", "abort_detail_201", "welcome_extra"],
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
    M.Hello(bytes(16), "m", bytes(32), bytes(32), "a", "b", 2**64 - 1),
    M.Welcome(bytes(16), "2025-12", 3, 70000, 0, 255),
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
