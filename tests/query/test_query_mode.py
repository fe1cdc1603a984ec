"""The query mode end to end in one process (the real Agency path over a memory pair): a
traveller on the holder's registry is found, fuzzy like the batch path, and its release
stored; one who is not learns no-match; a re-run delivers nothing twice; both audit logs hold
counts, never content; officer approval gives pending, then the release."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import dataclasses
import re
import shutil
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from _officers import approve, enrol_agency_officers
from _query_agencies import CA, DATA, US, QueryPair, query_pair, truth_pairs
from _stalling import cancelled_after, long_work

from xlink.agency import QueryOutcome, QueryService, exchange_in_process
from xlink.agency._query import QueryClient, ask
from xlink.audit import AuditEvent, AuditLog
from xlink.error_codes import LOCAL_FAILURE, AbortCode
from xlink.errors import InputError, InternalProtocolError, LoadError, PeerAborted
from xlink.linkage.tokens import TokenSetBuilder
from xlink.query.table import HolderTable
from xlink.records.model import BirthDate
from xlink.transport import memory_pair

PAIRS = truth_pairs()
HIT = sorted(PAIRS)[:6]
MISS = ["USTR-00002", "USTR-00004", "USTR-00005"]  # on no list of the bundled truth
assert not set(MISS) & set(PAIRS)
_HEX_RUN = re.compile(r"[0-9a-f]{16,}")


def _run(pair: QueryPair, service: QueryService, ids: list[str], name: str) -> QueryOutcome:
    side = pair.travellers(ids, name)

    async def both() -> QueryOutcome:
        a, b = memory_pair()
        _, outcome = await asyncio.gather(service.handle(b), ask(pair.asker, a, side))
        return outcome

    return asyncio.run(both())


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> tuple[QueryPair, list[QueryOutcome]]:
    base = tmp_path_factory.mktemp("query-straight")
    with query_pair(base) as pair:
        service = pair.holder.query_service(pair.registry)
        first = _run(pair, service, HIT + MISS, "first.csv")
        again = _run(pair, service, HIT + MISS, "again.csv")
        yield pair, [first, again]


def test_travellers_on_the_registry_are_found_and_released(
    straight: tuple[QueryPair, list[QueryOutcome]],
) -> None:
    pair, (first, _) = straight
    by_id = {a.record_id: a for a in first.answers}
    found = [t for t in HIT if by_id[t].matched]
    # The bundled pairs carry corruptions (a compound name dropped, a nickname, day and month
    # swapped); what the schema's decision finds of them is what the batch path finds
    # (test_the_query_decides_what_the_batch_exchange_decides).
    assert len(found) >= 3
    for t in found:
        assert by_id[t].fate == "sent" and by_id[t].category == "sex_offender"
    assert not any(by_id[t].matched for t in MISS)
    assert first.received == len(found)
    held = pair.asker.store.list(now=pair.asker.clock())
    assert sorted(r.own_record_id for r in held) == sorted(found)
    assert {r.category.value for r in held} == {"sex_offender"}


def test_asking_again_delivers_nothing_twice(
    straight: tuple[QueryPair, list[QueryOutcome]],
) -> None:
    _, (first, again) = straight
    assert again.table_fetched == 0  # the copy of the table was current
    before = {a.record_id: a for a in first.answers if a.matched}
    after = {a.record_id: a for a in again.answers if a.matched}
    assert before.keys() == after.keys()
    assert all(a.fate == "delivered" for a in after.values())
    assert again.received == 0


def test_audit_logs_hold_counts_never_content(
    straight: tuple[QueryPair, list[QueryOutcome]],
) -> None:
    pair, (first, _) = straight
    for agency in (pair.holder, pair.asker):
        with AuditLog.open(agency.workdir / "audit.db", signing_key=None) as log:
            entries = list(log.entries())
        kinds = {e.kind for e in entries}
        assert {
            AuditEvent.QUERY_STARTED,
            AuditEvent.QUERY_EVALUATED,
            AuditEvent.QUERY_ENDED,
        } <= kinds
        # Digests, fingerprints, handles and session ids are random hex, in which a year such as
        # 1980 turns up by chance (one CI run in a few): mask them before looking for content.
        text = _HEX_RUN.sub("<hex>", repr([dict(e.fields) for e in entries]))
        for word in ("USTR-", "CASO-", "González", "1980"):
            assert word not in text
    with AuditLog.open(pair.holder.workdir / "audit.db", signing_key=None) as log:
        evaluated = sum(
            int(e.fields["evaluations"])
            for e in log.entries()
            if e.kind is AuditEvent.QUERY_EVALUATED
        )
    assert evaluated == 2 * first.evaluations


def test_officer_approval_gives_pending_then_the_release(tmp_path: Path) -> None:
    with query_pair(tmp_path, approval_required=True) as pair:
        service = pair.holder.query_service(pair.registry)
        first = _run(pair, service, HIT, "a.csv")
        matched = [a for a in first.answers if a.matched]
        assert matched and all(a.fate == "queued" for a in matched)
        assert first.received == 0
        queue = pair.holder.queue
        pending = queue.pending(now=pair.holder.clock())
        assert len(pending) == len(matched)
        enrol_agency_officers(pair.holder, pair.holder.clock())
        for item in pending:
            approve(queue, item.item_id, agency=CA, now=pair.holder.clock())
        second = _run(pair, service, HIT, "b.csv")
        assert [a.fate for a in second.answers if a.matched] == ["sent"] * len(matched)
        assert second.received == len(matched)
        third = _run(pair, service, HIT, "c.csv")
        assert [a.fate for a in third.answers if a.matched] == ["delivered"] * len(matched)


def test_the_query_decides_what_the_batch_exchange_decides(tmp_path: Path) -> None:
    """Same schema, scoring and decision as the batch path: a manifest asked about gives the
    travellers the batch exchange of that manifest against the registry decides."""
    ids = sorted(PAIRS)[:20] + MISS
    with query_pair(tmp_path / "batch") as pair:
        side = pair.travellers(ids)
        batch, _ = asyncio.run(
            exchange_in_process((pair.asker, side), (pair.holder, pair.registry))
        )
        matches = (tmp_path / "batch" / US / "matches").glob("*.csv")
        decided_batch = set()
        for path in matches:
            lines = path.read_text(encoding="utf-8").splitlines()
            header = lines[0].split(",")
            column = header.index("own_record_id")
            decided_batch |= {line.split(",")[column] for line in lines[1:]}
    with query_pair(tmp_path / "query") as pair:
        service = pair.holder.query_service(pair.registry)
        outcome = _run(pair, service, ids, "m.csv")
    decided_query = {a.record_id for a in outcome.answers if a.matched}
    assert batch.decided == len(decided_batch) > 0
    assert decided_query == decided_batch


def test_a_new_month_rotates_the_key_and_the_table(tmp_path: Path) -> None:
    """The holder's key is per MOU and month: a session in the next month uses a new key and
    table, the asker's copy of last month's table is not used, and the answers are the same."""
    with query_pair(tmp_path) as pair:
        service = pair.holder.query_service(pair.registry)
        before = _run(pair, service, HIT, "a.csv")
        old_entries = service.table.entries
        old_period = service.period
        real_clock = pair.holder.clock
        later = real_clock() + timedelta(days=32)
        pair.holder.clock = lambda: later  # type: ignore[method-assign]
        after = _run(pair, service, HIT, "b.csv")
        pair.holder.clock = real_clock  # type: ignore[method-assign]
        assert service.period != old_period == before.period
        assert after.period == service.period
        assert after.table_fetched == old_entries == service.table.entries  # fetched anew
        assert [a.matched for a in after.answers] == [a.matched for a in before.answers]
        assert (pair.holder.workdir / "query" / f"table-{service.period}.npz").exists()


def _next_month(now: datetime) -> datetime:
    """The first instant of the UTC month after ``now``'s."""
    first = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return (first + timedelta(days=32)).replace(day=1)


def _asked_across_the_month(
    pair: QueryPair,
    service: QueryService,
    ids: list[str],
    then: Callable[[], object] = lambda: None,
) -> QueryOutcome:
    """Open a session (an officer's terminal), move both clocks half an hour into the next
    month (within the hour a session outlives its month) and let another session move the
    shared service there, call ``then()``, and only then ask about ``ids`` in the first
    session."""
    real_clock = pair.holder.clock
    later = _next_month(real_clock()) + timedelta(minutes=30)
    side = pair.travellers(ids, "across.csv")

    async def across() -> QueryOutcome:
        a, b = memory_pair()
        first = asyncio.create_task(service.handle(b))
        async with QueryClient(pair.asker, a) as client:
            pair.holder.clock = pair.asker.clock = lambda: later  # type: ignore[method-assign]
            c, d = memory_pair()
            second = asyncio.create_task(service.handle(d))
            async with QueryClient(pair.asker, c):
                pass
            await second
            then()
            outcome = await client.ask(side)
        await first
        return outcome

    try:
        return asyncio.run(across())
    finally:
        pair.holder.clock = pair.asker.clock = real_clock  # type: ignore[method-assign]


def test_a_session_open_across_the_month_keeps_its_period(tmp_path: Path) -> None:
    """An officer's terminal keeps one session open (QueryClient) while another session moves
    the shared service into the next month: the open session's later evaluations used the new
    month's key against its copy of the old month's table, and travellers on the list came
    back no-match, with no error. A session keeps the key and table of its month (spec §4.2)."""
    with query_pair(tmp_path) as pair:
        service = pair.holder.query_service(pair.registry)
        expected = _run(pair, service, HIT, "a.csv")
        assert any(a.matched for a in expected.answers)
        outcome = _asked_across_the_month(pair, service, HIT)
        assert service.period != outcome.period == expected.period
        assert [a.matched for a in outcome.answers] == [a.matched for a in expected.answers]


def test_a_session_is_answered_an_hour_past_its_month_and_no_longer(tmp_path: Path) -> None:
    """A session kept open (one request inside each idle timeout is enough) was answered on
    its first month's key and table for as long as it was kept: months later, lookups on a
    list long changed. Past an hour after its month, a request is refused (PERIOD_ENDED)
    before anything is evaluated; within the hour it is answered as before."""
    with query_pair(tmp_path) as pair:
        service = pair.holder.query_service(pair.registry)
        real_clock = pair.holder.clock
        start = real_clock()
        month_end = _next_month(start)
        side = pair.travellers(HIT, "c.csv")

        async def held() -> tuple[QueryOutcome, BaseException | None]:
            a, b = memory_pair()
            serving = asyncio.create_task(service.handle(b))
            error: BaseException | None = None
            async with QueryClient(pair.asker, a) as client:
                pair.holder.clock = lambda: month_end + timedelta(minutes=59)  # type: ignore[method-assign]
                within = await client.ask(side)
                pair.holder.clock = lambda: month_end + timedelta(minutes=61)  # type: ignore[method-assign]
                try:
                    await client.ask(side)
                except PeerAborted as exc:
                    error = exc
            await asyncio.gather(serving, return_exceptions=True)
            return within, error

        try:
            within, error = asyncio.run(held())
        finally:
            pair.holder.clock = real_clock  # type: ignore[method-assign]
        assert within.matched >= 3 and within.period == start.strftime("%Y-%m")
        assert isinstance(error, PeerAborted) and error.code is AbortCode.PERIOD_ENDED
        with AuditLog.open(pair.holder.workdir / "audit.db", signing_key=None) as log:
            evaluated = sum(
                int(e.fields["evaluations"])
                for e in log.entries()
                if e.kind is AuditEvent.QUERY_EVALUATED
            )
            ended = [e.fields for e in log.entries() if e.kind is AuditEvent.QUERY_ENDED]
        assert evaluated == within.evaluations  # nothing spent on the refused request
        assert [f["code"] for f in ended] == ["PERIOD_ENDED"]


def _registry_with_changed(pair: QueryPair, ids: set[str]) -> Path:
    """The bundled registry with the records ``ids`` describing someone else."""
    with (DATA / "ca_sex_offenders.csv").open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    header = rows[0]
    for row in rows[1:]:
        if row[0] in ids:
            row[header.index("Family Name")] = "Quixotova"
            row[header.index("Given Name")] = "Zenobia"
            row[header.index("Date of Birth")] = "01/01/1950"
            row[header.index("Passport No")] = "999999999"
    folder = pair.base / "changed"
    folder.mkdir()
    out = folder / "ca_sex_offenders.csv"
    with out.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(rows)
    shutil.copy(DATA / "ca_sex_offenders.mapping.json", folder / "ca_sex_offenders.mapping.json")
    return out


def test_a_record_changed_after_the_month_changed_is_not_released_on_its_old_tokens(
    tmp_path: Path,
) -> None:
    """A session kept open across the month change decides on its month's table; the list is
    then updated, changing the records it finds into other people. Within one month that
    update removes their entries (nothing released); across the month, the old table was not
    updated, and their new content was released on their old tokens."""
    with query_pair(tmp_path) as pair:
        service = pair.holder.query_service(pair.registry)
        changed = pair.holder.prepare([_registry_with_changed(pair, {PAIRS[t] for t in HIT})])
        outcome = _asked_across_the_month(pair, service, HIT, lambda: service.update(changed))
        assert outcome.matched >= 3  # decided on the old month's table, as the session began
        assert outcome.received == 0


def test_a_holder_that_lost_its_table_is_fetched_again_whole(tmp_path: Path) -> None:
    """The holder loses its table file and rebuilds it within the month from another list,
    then updates it: the asker's copy (version 1 of the old table) plus the changes since
    version 1 do not give the table WELCOME announces; the asker fetches it whole in the same
    session and answers as before."""
    with query_pair(tmp_path) as pair:
        service = pair.holder.query_service(pair.registry)
        before = _run(pair, service, HIT, "a.csv")
        service.table_path.unlink()
        other = pair.holder.prepare([DATA / "ca_watchlist.csv"])
        rebuilt = pair.holder.query_service(other)
        rebuilt.update(pair.registry)
        assert rebuilt.table.version == 2
        after = _run(pair, rebuilt, HIT, "b.csv")
        assert after.table_fetched == rebuilt.table.entries
        assert [a.matched for a in after.answers] == [a.matched for a in before.answers]


def test_a_refused_update_leaves_the_open_sessions_table_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An update the MOU's bound refuses (the table would grow past what an asker fetches)
    was applied to the table in place, then the service went back to the saved copy; a
    session open meanwhile kept the changed table, and the travellers it had found were
    refused as no longer listed. A refused update touches nothing."""
    with query_pair(tmp_path) as pair:
        service = pair.holder.query_service(pair.registry)
        changed = pair.holder.prepare([_registry_with_changed(pair, {PAIRS[t] for t in HIT})])
        entries = service.table.entries
        monkeypatch.setattr("xlink.agency._query_months.table_bound", lambda *_: entries)
        side = pair.travellers(HIT, "open.csv")

        async def open_session() -> QueryOutcome:
            a, b = memory_pair()
            serving = asyncio.create_task(service.handle(b))
            async with QueryClient(pair.asker, a) as client:
                with pytest.raises(InputError, match=f"lets an asker fetch at most {entries}"):
                    service.update(changed)
                outcome = await client.ask(side)
            await serving
            return outcome

        outcome = asyncio.run(open_session())
        assert outcome.matched >= 3 and outcome.received == outcome.matched
        assert (service.table.version, service.table.entries) == (1, entries)
        assert service.side is not changed


def _moved_a_month(pair: QueryPair) -> Callable[[], None]:
    """Move both clocks half an hour into the next month; returns the undo."""
    real = pair.holder.clock
    later = _next_month(real()) + timedelta(minutes=30)
    pair.holder.clock = pair.asker.clock = lambda: later  # type: ignore[method-assign]

    def undo() -> None:
        pair.holder.clock = pair.asker.clock = real  # type: ignore[method-assign]

    return undo


def test_open_sessions_are_answered_while_the_new_months_table_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first session of a month builds the month's table (an OPRF evaluation per token of
    the list: minutes for a large one). It was built on the event loop, and every session
    open meanwhile went unanswered until it was done. It is built on a worker thread now."""
    steps: list[str] = []
    go_on = threading.Event()
    build = HolderTable.build

    def slow_build(*args: Any, **kwargs: Any) -> HolderTable:
        steps.append("build started")
        go_on.wait(timeout=10)  # the old code held the event loop here
        steps.append("build done")
        return build(*args, **kwargs)

    with query_pair(tmp_path) as pair:
        service = pair.holder.query_service(pair.registry)
        monkeypatch.setattr(HolderTable, "build", slow_build)
        side = pair.travellers(HIT, "open.csv")

        async def meanwhile() -> tuple[QueryOutcome, QueryOutcome]:
            a, b = memory_pair()
            first = asyncio.create_task(service.handle(b))
            async with QueryClient(pair.asker, a) as client:
                undo = _moved_a_month(pair)
                c, d = memory_pair()
                second = asyncio.create_task(service.handle(d))  # moves the service
                while "build started" not in steps:
                    await asyncio.sleep(0.01)
                answered = await client.ask(side)
                steps.append("answered")
                go_on.set()
                async with QueryClient(pair.asker, c) as other:
                    moved = await other.ask(side)
                await second
            await first
            undo()
            return answered, moved

        answered, moved = asyncio.run(meanwhile())
        assert steps == ["build started", "answered", "build done"]
        assert answered.matched >= 3 and answered.period != moved.period == service.period
        assert [a.matched for a in moved.answers] == [a.matched for a in answered.answers]


def test_a_month_that_cannot_be_entered_leaves_the_service_in_the_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The new month's table is refused (larger than an asker fetches under the MOU). The
    service had already taken the new month's key and kept the old month's table: the next
    sessions were answered with a key that is not the table's, every traveller no-match. Now
    the session is refused as a local failure (audited), the service stays in its month, and
    the next session tries the move again. A table a bound refuses is refused before it is
    built (an OPRF evaluation per token), not after."""
    built: list[int] = []
    build = HolderTable.build
    with query_pair(tmp_path) as pair:
        service = pair.holder.query_service(pair.registry)
        before = _run(pair, service, HIT, "a.csv")
        old = service.period
        undo = _moved_a_month(pair)
        try:
            monkeypatch.setattr(
                HolderTable, "build", lambda *a, **k: built.append(1) or build(*a, **k)
            )
            monkeypatch.setattr("xlink.agency._query_months.table_bound", lambda *_: 0)
            with pytest.raises(InternalProtocolError) as refused:
                _run(pair, service, HIT, "b.csv")
            assert refused.value.detail == LOCAL_FAILURE
            assert service.period == old and service.table.version == 1 and not built
            monkeypatch.undo()
            after = _run(pair, service, HIT, "c.csv")
        finally:
            undo()
        assert service.period == after.period != old
        assert [a.matched for a in after.answers] == [a.matched for a in before.answers]
        with AuditLog.open(pair.holder.workdir / "audit.db", signing_key=None) as log:
            aborted = [e.fields for e in log.entries() if e.kind is AuditEvent.SESSION_ABORTED]
        assert [(f["code"], f["side"]) for f in aborted] == [("INTERNAL_ERROR", "LOCAL")]


def test_a_move_its_event_loop_did_not_outlive_does_not_refuse_the_later_sessions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session starts the new month's build, then its event loop ends before the build does
    (the session cancelled, the loop closed). The service kept that loop's future of the
    build, and every later session of the month, on a new loop, was refused waiting for it."""
    go_on, done = threading.Event(), threading.Event()
    build = HolderTable.build

    def slow_build(*args: Any, **kwargs: Any) -> HolderTable:
        go_on.wait(timeout=20)
        try:
            return build(*args, **kwargs)
        finally:
            done.set()

    with query_pair(tmp_path) as pair:
        service = pair.holder.query_service(pair.registry)
        before = _run(pair, service, HIT, "a.csv")
        monkeypatch.setattr(HolderTable, "build", slow_build)
        undo = _moved_a_month(pair)
        try:
            loop = asyncio.new_event_loop()

            async def start_then_drop() -> None:
                _, b = memory_pair()
                task = asyncio.create_task(service.handle(b))
                await asyncio.sleep(0.2)  # the move is under way on its worker thread
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

            loop.run_until_complete(start_then_drop())
            loop.close()
            go_on.set()
            assert done.wait(timeout=30)
            later = [_run(pair, service, HIT, name) for name in ("b.csv", "c.csv")]
        finally:
            undo()
        assert [o.period for o in later] == [service.period] * 2 != [before.period] * 2
        assert [a.matched for a in later[0].answers] == [a.matched for a in before.answers]


def test_a_list_updated_during_the_move_is_what_the_new_month_answers_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The list is updated (the records the travellers match changed into other people)
    while the new month's table is being built from the list as it was: the new month's
    table is brought up to date before it is used, and nothing is released."""
    started, go_on = threading.Event(), threading.Event()
    build = HolderTable.build

    def slow_build(*args: Any, **kwargs: Any) -> HolderTable:
        started.set()
        go_on.wait(timeout=20)
        return build(*args, **kwargs)

    with query_pair(tmp_path) as pair:
        service = pair.holder.query_service(pair.registry)
        assert _run(pair, service, HIT, "a.csv").received >= 3
        changed = pair.holder.prepare([_registry_with_changed(pair, {PAIRS[t] for t in HIT})])
        monkeypatch.setattr(HolderTable, "build", slow_build)
        side = pair.travellers(HIT, "moved.csv")

        async def moved() -> QueryOutcome:
            c, d = memory_pair()
            serving = asyncio.create_task(service.handle(d))
            while not started.is_set():
                await asyncio.sleep(0.01)
            service.update(changed)  # on the loop, during the build
            go_on.set()
            async with QueryClient(pair.asker, c) as client:
                outcome = await client.ask(side)
            await serving
            return outcome

        undo = _moved_a_month(pair)
        try:
            outcome = asyncio.run(moved())
        finally:
            undo()
        assert service.table.version == 2 and service.side is changed
        assert outcome.received == 0


def test_a_lazy_service_makes_its_month_in_its_first_session_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``query_service(side, lazy=True)`` (what a server that makes a service per connection
    uses) makes no table when it is made; its first session makes it, on a worker thread, and
    answers as an eager service does. An update before any session enters the month first."""
    on_main: list[bool] = []
    build = HolderTable.build

    def noted(*args: Any, **kwargs: Any) -> HolderTable:
        on_main.append(threading.current_thread() is threading.main_thread())
        return build(*args, **kwargs)

    with query_pair(tmp_path) as pair:
        expected = _run(pair, pair.holder.query_service(pair.registry), HIT, "a.csv")
        shutil.rmtree(pair.holder.workdir / "query")  # no saved table: the month is built
        monkeypatch.setattr(HolderTable, "build", noted)
        lazy = pair.holder.query_service(pair.registry, lazy=True)
        assert on_main == [] and lazy.period == ""
        outcome = _run(pair, lazy, HIT, "b.csv")
        assert on_main == [False] and lazy.period == outcome.period == expected.period
        assert [a.matched for a in outcome.answers] == [a.matched for a in expected.answers]
        updated = pair.holder.query_service(pair.registry, lazy=True)
        assert updated.update(pair.registry).version == 1 and updated.period == lazy.period


def test_a_service_made_on_another_thread_says_so_and_blames_no_file(tmp_path: Path) -> None:
    """An integrator built the service with ``asyncio.to_thread`` (the table is CPU-bound):
    the agency's audit log belongs to the thread that opened it, and the error said the quota
    store ``cannot be used`` and should be moved aside, a healthy file. It names the thread
    and ``lazy=True`` now; the quota store is left alone."""
    with query_pair(tmp_path) as pair:
        with pytest.raises(InputError, match="opened in another thread") as refused:
            asyncio.run(asyncio.to_thread(pair.holder.query_service, pair.registry))
        assert "lazy=True" in str(refused.value) and "move it aside" not in str(refused.value)
        # on the agency's own thread the same call serves, the quota store as it was
        assert pair.holder.query_service(pair.registry).quota_left() > 0


def test_a_traveller_built_in_code_is_asked_about_as_one_loaded_from_a_file(
    tmp_path: Path,
) -> None:
    """An integrator asking about a traveller from its own system had to write a file first:
    ``Agency.prepare`` took only paths. ``prepare_records`` takes ``PersonRecord`` objects
    and gives the same side (the same tokens) and the same answer; a record id twice is
    refused."""
    with query_pair(tmp_path) as pair:
        from_file = pair.travellers(HIT, "file.csv")
        built = pair.asker.prepare_records(from_file.records)
        assert [r.record_id for r in built.records] == [r.record_id for r in from_file.records]
        assert built.tokens.record_ids == from_file.tokens.record_ids
        assert built.tokens.values == from_file.tokens.values
        service = pair.holder.query_service(pair.registry)

        async def both(side: Any) -> QueryOutcome:
            a, b = memory_pair()
            _, outcome = await asyncio.gather(service.handle(b), ask(pair.asker, a, side))
            return outcome

        by_file, by_code = asyncio.run(both(from_file)), asyncio.run(both(built))
        matched = [(a.record_id, a.matched, a.score) for a in by_code.answers]
        assert matched == [(a.record_id, a.matched, a.score) for a in by_file.answers]
        assert sum(a.matched for a in by_code.answers) >= 3
        # what the loaders refuse of a row is refused here too, by position, never by value
        first = from_file.records[0]
        with pytest.raises(LoadError, match=r"1 record id\(s\) given more than once"):
            pair.asker.prepare_records([*from_file.records, first])
        hidden = dataclasses.replace(first, record_id="CA\x1b[2J\u202e1")  # a terminal, reordered
        with pytest.raises(LoadError, match=r"control or invisible character: record\(s\) at 1$"):
            pair.asker.prepare_records([from_file.records[1], hidden])
        unborn = dataclasses.replace(first, birth_date=BirthDate(datetime.now(UTC).year + 1))
        with pytest.raises(LoadError, match=r"after the date of the load: record\(s\) at 0") as e:
            pair.asker.prepare_records([unborn])
        assert first.record_id not in str(e.value)


def test_a_move_nobody_waits_for_any_more_is_stopped_and_made_again_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The only session waiting for the new month's table goes (its connection dropped, the
    server stopping): the build ran on to its end on the service's thread, and a stopping
    process could not exit meanwhile. It now ends at its next progress report; the next
    session makes the month again and answers as before."""
    reports: list[int] = []
    build = HolderTable.build

    def slow_build(key: Any, tokens: Any, *, progress: Any = None) -> HolderTable:
        long_work(progress, reports, "building the query table")
        return build(key, tokens, progress=progress)

    with query_pair(tmp_path) as pair:
        service = pair.holder.query_service(pair.registry)
        before = _run(pair, service, HIT, "a.csv")
        monkeypatch.setattr(HolderTable, "build", slow_build)
        undo = _moved_a_month(pair)
        try:
            started = time.monotonic()
            asyncio.run(cancelled_after(service.handle(memory_pair()[1]), 0.3))
            assert service._moving is not None  # the move nobody took, its build ended:
            assert service._moving.work.exception(timeout=10) is not None  # stopped
            assert time.monotonic() - started < 1.5 and len(reports) < 100
            monkeypatch.setattr(HolderTable, "build", build)
            after = _run(pair, service, HIT, "b.csv")
        finally:
            undo()
        assert after.period == service.period != before.period
        assert [a.matched for a in after.answers] == [a.matched for a in before.answers]


def test_travellers_sharing_a_record_id_are_refused_before_anything_is_spent(
    straight: tuple[QueryPair, list[QueryOutcome]],
) -> None:
    """An answer is given by record id, and the asker's decision keeps a pair by its
    traveller's id: a manifest naming one id twice (built through the API, which the loaders
    would have refused) is refused before an evaluation is spent."""
    pair, _ = straight
    side = pair.travellers(HIT[:2], "twice.csv")
    tokens = side.tokens
    builder = TokenSetBuilder(tokens.key_names)
    for _ in range(2):
        for r, rid in enumerate(tokens.record_ids):
            builder.add_record(
                rid,
                [
                    (tokens.key_names[tokens.key_index[i]], tokens.value(i))
                    for i in range(len(tokens))
                    if tokens.record_index[i] == r
                ],
            )
    twice = dataclasses.replace(side, tokens=builder.build(), hashed=None)
    service = pair.holder.query_service(pair.registry)

    async def both() -> None:
        a, b = memory_pair()
        serving = asyncio.create_task(service.handle(b))
        async with QueryClient(pair.asker, a) as client:
            left = client.quota_left
            with pytest.raises(InputError, match="same record id"):
                await client.ask(twice)
            assert client.quota_left == left
        await serving

    asyncio.run(both())
