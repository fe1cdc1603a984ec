"""A query session that fails outside the session machine (the transport's TIMEOUT here; also
FRAME_TOO_LARGE and TRUNCATED) still tells the peer with an ABORT carrying the code
(xlink-query-v1 §7: "a check fails: ABORT sent"), on both sides. Before, the holder and the
asker closed without one (found by the conformance suite's size.oversize_frame against a
holder)."""

from __future__ import annotations

import asyncio

import pytest
from _query_agencies import QueryPair, query_pair

from xlink.agency._query import ask
from xlink.error_codes import AbortCode
from xlink.errors import RemoteProtocolError
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
