"""A query session that fails outside the session machine (the transport's TIMEOUT here; also
FRAME_TOO_LARGE and TRUNCATED) still tells the peer with an ABORT carrying the code
(xlink-query-v1 §7: "a check fails: ABORT sent"), on both sides. Before, the holder and the
asker closed without one (found by the conformance suite's size.oversize_frame against a
holder)."""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import Iterator
from typing import Any, cast

import pytest
from _query_agencies import QueryPair, query_pair

from xlink.agency._query import ask
from xlink.crypto.rand import DeterministicRandom
from xlink.error_codes import AbortCode
from xlink.errors import RemoteProtocolError
from xlink.query import messages as M
from xlink.query.asker_session import AskerSession
from xlink.query.events import QueryConfig, TableRequested
from xlink.query.holder_session import HolderSession
from xlink.query.messages import Abort, Hello, decode
from xlink.transport import memory_pair


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> QueryPair:
    with query_pair(tmp_path_factory.mktemp("query-aborts")) as pair:
        yield pair  # type: ignore[misc]


def test_a_holder_that_times_out_sends_an_abort_with_timeout(pair: QueryPair) -> None:
    service = pair.holder.query_service(pair.registry)

    async def scenario() -> tuple[BaseException | None, bytes | None]:
        asker, holder = memory_pair()
        try:
            await service.handle(holder, idle_timeout=0.2)  # the asker sends nothing
        except RemoteProtocolError as exc:
            return exc, await asker.receive()
        return None, None

    error, frame = asyncio.run(scenario())
    assert isinstance(error, RemoteProtocolError) and error.code is AbortCode.TIMEOUT
    assert frame is not None
    message = decode(frame)
    assert isinstance(message, Abort) and message.code == AbortCode.TIMEOUT


def test_an_asker_that_times_out_sends_an_abort_with_timeout(pair: QueryPair) -> None:
    travellers = pair.travellers(["USTR-00002"], "one.csv")

    async def scenario() -> tuple[BaseException | None, list[bytes]]:
        asker, holder = memory_pair()
        try:
            await ask(pair.asker, asker, travellers, idle_timeout=0.2)  # no WELCOME comes
        except RemoteProtocolError as exc:
            frames = []
            while (frame := await holder.receive()) is not None:
                frames.append(frame)
            return exc, frames
        return None, []

    error, frames = asyncio.run(scenario())
    assert isinstance(error, RemoteProtocolError) and error.code is AbortCode.TIMEOUT
    messages = [decode(f) for f in frames]
    assert isinstance(messages[0], Hello)
    assert isinstance(messages[-1], Abort) and messages[-1].code == AbortCode.TIMEOUT


def test_a_table_answer_is_encoded_as_it_is_taken_not_all_at_once() -> None:
    """A holder session queued every frame of a table answer when asked: a partner that asks
    for the table and reads nothing held a copy of the whole table per session. Its frames
    are now made as they are taken: queuing a 64 MB answer allocates almost nothing, and the
    frames are the chunks, in order, then TABLE_END."""
    config = QueryConfig("MOU-1", bytes(32), bytes(32), 15, "US-DHS", "CA-RCMP")
    rng = DeterministicRandom("lazy table")
    holder = HolderSession(
        config, period="2026-12", table_version=1, entries=64, table_digest=bytes(32),
        quota_left=10, rng=rng,
    )  # fmt: skip
    asker = AskerSession(config, rng=rng)
    asker.start()
    holder.receive(_take(asker))
    asker.receive(_take(holder))
    asker.request_table(0)
    (requested,) = holder.receive(_take(asker))
    assert isinstance(requested, TableRequested)

    def chunks() -> Iterator[bytes]:
        for i in range(64):
            yield bytes([i]) * 1_000_000

    tracemalloc.start()
    try:
        holder.send_table(chunks(), version=1, total=64)
        queued = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert queued < 1 << 20
    frames = [M.decode(f) for f in iter(holder.next_frame, None)]
    assert [type(f) for f in frames] == [M.TableChunk] * 64 + [M.TableEnd]
    assert all(f.entries[:1] == bytes([i]) for i, f in enumerate(frames[:64]))
    assert frames[-1] == M.TableEnd(64, 1, 64)


def _take(session: Any) -> bytes:
    frame = session.next_frame()
    assert frame is not None
    return cast(bytes, frame)
