"""A dishonest query holder against an honest asker: the asker's memory is bounded by what the
MOU lets a holder's table be and by what the holder announced (xlink-query-v1 §6.5, §5.3)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from _query_agencies import QueryPair, query_pair
from _rewrites import Rewriting
from _stalling import against_a_stalling_peer

import xlink.agency._query_asker as asker_module
from xlink.agency._query import ask
from xlink.agency._query_common import _config, period_of, table_bound
from xlink.audit import AuditEvent
from xlink.error_codes import AbortCode
from xlink.errors import RemoteProtocolError
from xlink.protocol.limits import MAX_MESSAGE_SIZE
from xlink.query import messages as M
from xlink.query.entries import label_size_for
from xlink.query.holder_session import HolderSession
from xlink.query.table import AskerTable
from xlink.transport import memory_pair
from xlink.transport.driver import MIN_PACE, time_limit


@pytest.fixture()
def pair(tmp_path: Path) -> Any:
    with query_pair(tmp_path) as p:
        yield p


async def _welcome(
    pair: QueryPair, conn: Any, entries: int, *, table_version: int = 1
) -> M.QueryMessage | None:
    """A made-up holder's start: it takes the HELLO, announces a table of ``entries`` entries
    and returns the asker's next message (None once it left)."""
    holder = pair.holder
    session = HolderSession(
        _config(holder, asker=holder.peer_id, holder=holder.agency_id),
        period=period_of(holder.clock()),
        table_version=table_version,
        entries=entries,
        table_digest=bytes(32),
        quota_left=1000,
        rng=holder.rng,
    )
    session.receive(await conn.receive())  # HELLO
    while (frame := session.next_frame()) is not None:  # WELCOME
        await conn.send(frame)
    request = await conn.receive()
    return None if request is None else M.decode(request)


def _lying_holder(pair: QueryPair, entries: int, chunks: int, sent: list[int]) -> Any:
    """A holder that announces a table of ``entries`` entries, then sends ``chunks`` full
    TABLE_CHUNKs of made-up entries (counted in ``sent``) and a TABLE_END."""
    holder = pair.holder
    width = 8 + label_size_for(len(holder.schema.key_names))
    chunk = os.urandom(width) * ((MAX_MESSAGE_SIZE - 64) // width)

    async def serve(conn: Any) -> None:
        if not isinstance(await _welcome(pair, conn, entries), M.TableRequest):
            return  # the asker aborted, or left
        for seq in range(1, chunks + 1):
            await conn.send(M.encode(M.TableChunk(seq, chunk)))
            sent.append(seq)
        await conn.send(M.encode(M.TableEnd(chunks, 1, entries)))

    return serve


def _asked(pair: QueryPair, holder: Any) -> BaseException | None:
    side = pair.travellers(["USTR-00022"])

    async def both() -> Any:
        a, b = memory_pair(capacity=4)
        _, outcome = await asyncio.gather(
            holder(b), ask(pair.asker, a, side, idle_timeout=10), return_exceptions=True
        )
        return outcome

    outcome = asyncio.run(both())
    return outcome if isinstance(outcome, BaseException) else None


def test_a_holder_that_sends_more_than_its_table_is_refused_at_the_chunk_that_passes_it(
    pair: QueryPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WELCOME says 10 entries; the holder streams 1 MiB chunks. The asker kept every chunk
    until TABLE_END, which a dishonest holder need never send (400 chunks: 400 MB)."""
    kept: list[int] = []
    parse = AskerTable.parse_chunk
    monkeypatch.setattr(
        AskerTable,
        "parse_chunk",
        lambda *a: kept.append(1) or parse(*a),  # type: ignore[func-returns-value]
    )
    sent: list[int] = []
    failed = _asked(pair, _lying_holder(pair, entries=10, chunks=50, sent=sent))
    assert isinstance(failed, RemoteProtocolError) and failed.code is AbortCode.BAD_TABLE
    assert "more entries than the 10" in str(failed)
    assert len(kept) == 1  # refused at the first chunk; what came after was not read


def test_a_holder_dripping_its_table_meets_the_fetchs_time_limit(pair: QueryPair) -> None:
    """A holder that announces 250 entries, then sends them one per TABLE_CHUNK, each inside
    the asker's idle timeout (0.05 s apart against 0.5 s): every chunk is valid and restarts
    the timeout, so the fetch had no end but the table's (at the MOU's bound and the default
    timeout, six months). The fetch's time limit (ten idle timeouts plus the entries at 250 a
    second: 6 s) ends it with TIMEOUT."""
    holder = pair.holder
    width = 8 + label_size_for(len(holder.schema.key_names))
    sent: list[int] = []

    async def dripping(conn: Any) -> None:
        assert isinstance(await _welcome(pair, conn, 250), M.TableRequest)
        for seq in range(1, 251):
            entry = seq.to_bytes(8, "big") + os.urandom(width - 8)
            await conn.send(M.encode(M.TableChunk(seq, entry)))
            sent.append(seq)
            await asyncio.sleep(0.05)

    side = pair.travellers(["USTR-00022"])
    error, elapsed = against_a_stalling_peer(
        lambda a: ask(pair.asker, a, side, idle_timeout=0.5), dripping
    )
    assert isinstance(error, RemoteProtocolError), f"the asker was held {len(sent)} chunks"
    assert error.code is AbortCode.TIMEOUT and "time limit" in error.detail
    assert 6.0 <= elapsed < 10.0 and len(sent) < 250


def test_a_delta_that_does_not_fit_gives_the_refetch_no_time_of_its_own(
    pair: QueryPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A holder drips a delta for most of the fetch's time limit, then ends it with changes
    that do not make its announced table (BAD_TABLE): the asker fetches the whole table again,
    and the holder drips that too. The limit is for the fetch in all; each attempt had one of
    its own (twice the time). A stand-in for the dripped fetches takes 0.9 of the limit each."""
    service = pair.holder.query_service(pair.registry)
    first = pair.travellers(["USTR-00002"], "first.csv")

    async def honest() -> None:
        a, b = memory_pair()
        await asyncio.gather(service.handle(b), ask(pair.asker, a, first))

    asyncio.run(honest())  # the asker now holds a copy of the table (version 1)
    idle, entries = 0.3, 250
    limit = time_limit(entries, idle, MIN_PACE)
    attempts: list[int] = []

    async def dripped(*_args: Any) -> int:
        attempts.append(1)
        await asyncio.sleep(0.9 * limit)
        if len(attempts) == 1:
            raise RemoteProtocolError(AbortCode.BAD_TABLE, "the changes do not make the table")
        return entries

    monkeypatch.setattr(asker_module, "_fetch_table", dripped)

    async def announcing(conn: Any) -> None:
        await _welcome(pair, conn, entries, table_version=2)
        while await conn.receive() is not None:
            pass

    side = pair.travellers(["USTR-00022"])
    error, elapsed = against_a_stalling_peer(
        lambda a: ask(pair.asker, a, side, idle_timeout=idle), announcing
    )
    assert len(attempts) == 2  # the whole table was asked for again
    assert isinstance(error, RemoteProtocolError) and error.code is AbortCode.TIMEOUT
    assert "time limit" in error.detail and elapsed < limit + 1.0


def test_a_holder_announcing_a_table_beyond_the_mou_is_refused_before_any_fetch(
    pair: QueryPair,
) -> None:
    bound = table_bound(pair.asker, pair.holder.agency_id)
    sent: list[int] = []
    failed = _asked(pair, _lying_holder(pair, entries=bound + 1, chunks=3, sent=sent))
    assert isinstance(failed, RemoteProtocolError) and failed.code is AbortCode.BAD_TABLE
    assert f"the MOU bounds it at {bound}" in str(failed)
    assert sent == []  # it asked for nothing


def test_a_holder_does_not_serve_a_table_an_asker_would_refuse(
    pair: QueryPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same bound on the holder's side: a clear error before it serves, not a session
    every asker aborts."""
    monkeypatch.setattr("xlink.agency._query_common.TABLE_ENTRIES_PER_SET_ELEMENT", 0)
    with pytest.raises(Exception, match="lets an asker fetch at most 0"):
        pair.holder.query_service(pair.registry)


def test_an_asker_audits_a_session_that_fails_before_welcome(pair: QueryPair) -> None:
    """A holder that answers HELLO with junk: the asker aborts, and audits it as the batch
    path would (it wrote nothing: no session id yet)."""

    async def junk(conn: Any) -> None:
        await conn.receive()  # HELLO
        await conn.send(b"\x01\x93\xff")
        await conn.receive()  # the asker's ABORT

    before = len(list(pair.asker.audit.entries()))
    failed = _asked(pair, junk)
    assert isinstance(failed, RemoteProtocolError)
    new = list(pair.asker.audit.entries())[before:]
    assert [(e.kind, dict(e.fields)) for e in new] == [
        (
            AuditEvent.SESSION_ABORTED,
            {"code": failed.code.name, "side": "LOCAL", "peer": pair.holder.agency_id},
        )
    ]


def test_a_holder_naming_a_new_period_each_session_leaves_one_copy_of_its_table(
    pair: QueryPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The asker does not compare WELCOME's period with its clock (spec §10), and its copies
    were kept per holder and period, never deleted: a holder naming another month in every
    session made the asker keep a whole table on disk per session. One copy per holder now
    (§5.3); a copy of another holder stays, and so do the asker's own holder tables, also
    when the holder's id is "table" (the copies were named as those)."""
    import xlink.agency._query_holder as holder_module

    monkeypatch.setattr(asker_module, "_safe", lambda agency_id: "table")
    query = pair.asker.workdir / "query"
    copies = query / "copies"
    copies.mkdir(parents=True)
    other = copies / "table-EAST-2101-01.npz"  # a holder whose id starts with this one's
    own = [query / "table-2101-01.npz", query / "table-2100-12.npz"]  # when it holds too
    for path in (other, *own):
        path.write_bytes(b"kept")
    said = {"period": ""}
    monkeypatch.setattr(holder_module, "period_of", lambda now: said["period"])
    for month in range(1, 7):
        said["period"] = f"2101-{month:02d}"
        asyncio.run(_one_session(pair, said["period"]))
        kept = sorted(p.name for p in copies.glob("*.npz"))
        assert kept == sorted([other.name, f"table-2101-{month:02d}.npz"])
    assert [p.read_bytes() for p in (other, *own)] == [b"kept"] * 3


async def _one_session(pair: QueryPair, period: str) -> None:
    """A query session opened (the table fetched and saved) and closed, in ``period``."""
    a, b = memory_pair()

    async def asker() -> None:
        async with asker_module.QueryClient(pair.asker, a, idle_timeout=5) as client:
            assert client.period == period and client.fetched > 0

    await asyncio.gather(
        pair.holder.query_service(pair.registry).handle(b, idle_timeout=5), asker()
    )


@pytest.mark.parametrize("version", [2**63, 2**64 - 1])
def test_a_table_version_beyond_a_signed_integer_is_kept_as_announced(
    pair: QueryPair, version: int
) -> None:
    """A table version is any u64 (spec §6.5, §6.8). The real table with only its version
    raised to 2^63 or more (the digest does not cover it) made the asker's save of its copy
    overflow a signed integer: a bare OverflowError, no abort code, and no session with that
    holder could end otherwise. The copy is kept now, under that version, and read back."""
    import dataclasses

    def rewrite(frame: bytes) -> bytes:
        message = M.decode(frame)
        if isinstance(message, M.Welcome):
            return M.encode(dataclasses.replace(message, table_version=version))
        if isinstance(message, M.TableEnd):
            return M.encode(dataclasses.replace(message, version=version))
        return frame

    async def session() -> tuple[int, int]:
        a, b = memory_pair()
        service = pair.holder.query_service(pair.registry)

        async def asker() -> tuple[int, int]:
            async with asker_module.QueryClient(pair.asker, a, idle_timeout=5) as client:
                return client.fetched, client.table.version

        _, got = await asyncio.gather(
            service.handle(Rewriting(b, rewrite), idle_timeout=5), asker()
        )
        return got

    fetched, kept = asyncio.run(session())
    assert fetched > 0 and kept == version
    fetched, kept = asyncio.run(session())
    assert fetched == 0 and kept == version  # the saved copy, read back: nothing fetched


def test_an_asker_that_fails_on_its_own_side_aborts_with_a_code(
    pair: QueryPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure of the asker's own (its copy of the table cannot be saved: a full disk) ended
    the session with BYE, so the holder recorded it as completed, and the asker's audit entry
    had no code. The holder is now told INTERNAL_ERROR, and both audit it."""

    def full_disk(*_: object, **__: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(AskerTable, "save", full_disk)

    async def session() -> tuple[Any, Any]:
        a, b = memory_pair()
        service = pair.holder.query_service(pair.registry)

        async def asker() -> None:
            async with asker_module.QueryClient(pair.asker, a, idle_timeout=5):
                pass

        served, asked = await asyncio.gather(
            service.handle(b, idle_timeout=5), asker(), return_exceptions=True
        )
        return served, asked

    served, asked = asyncio.run(session())
    assert isinstance(asked, OSError)
    assert isinstance(served, RemoteProtocolError) and served.code is AbortCode.INTERNAL_ERROR
    ended = [e for e in pair.asker.audit.entries() if e.kind is AuditEvent.QUERY_ENDED]
    assert ended[-1].fields["code"] == "INTERNAL_ERROR"
    assert ended[-1].fields["outcome"] == "aborted"
