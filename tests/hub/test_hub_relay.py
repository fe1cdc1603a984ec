"""Three agencies through a hub on 127.0.0.1, over real TCP and the agencies' own mutual TLS
(docs/hub.md): a round of every pair, what the hub saw, fan-out queries, the combined view."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import tempfile
import threading
import time
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from _hub import (
    AGENCIES,
    LISTS,
    NOW,
    HubWorld,
    make_world,
    run_round,
    running_agents,
    running_hub,
    until,
)
from _stalling import cancelled_after, long_work

import xlink.hub.server as hub_server
from xlink.crypto.rand import DeterministicRandom
from xlink.errors import InputError
from xlink.hub import ask_partners, partner_workdir
from xlink.hub.combined import combined_matches
from xlink.hub.schedule import JobState
from xlink.linkage.schema import load_default_schema
from xlink.prepare import prepare_side
from xlink.query.table import HolderTable
from xlink.samples import sample_path


@pytest.fixture(scope="module")
def round_done(tmp_path_factory: pytest.TempPathFactory) -> tuple[HubWorld, list[bytes]]:
    """One round through the hub, every byte the hub received captured."""
    world = make_world(tmp_path_factory.mktemp("hub-round"))
    seen: list[bytes] = []

    async def main() -> None:
        hub = world.hub(capture=lambda _where, data: seen.append(data))
        async with running_hub(hub) as port:
            agents = [world.agent(a, port) for a in AGENCIES]
            async with running_agents(agents):
                await run_round(hub)
                await until(lambda: all(a.state.cosigned() for a in agents), timeout=10)
        states = {(j.initiator, j.responder): j.state for j in hub.schedule.jobs()}
        hub.close()
        assert set(states.values()) == {JobState.DONE}, states
        assert len(states) == 3

    asyncio.run(main())
    return world, seen


def test_every_pair_exchanged_through_the_hub_and_wrote_its_matches(
    round_done: tuple[HubWorld, list[bytes]],
) -> None:
    world, _ = round_done
    for agency in AGENCIES:
        for peer in AGENCIES:
            if peer == agency:
                continue
            matches = list((partner_workdir(world.workdir(agency), peer) / "matches").glob("*.csv"))
            assert len(matches) == 1, (agency, peer)
    # The cross-border pairs of the bundled lists share people.
    us = partner_workdir(world.workdir("CA-CBSA"), "US-DHS") / "matches"
    with next(us.glob("*.csv")).open(encoding="utf-8") as f:
        assert len(list(csv.DictReader(f))) > 0


def _needles(agency: str) -> set[bytes]:
    """What the hub must never see of ``agency``: each record's id, names and birth date, and
    every token it derived (before blinding)."""
    needles: set[bytes] = set()
    for name in LISTS[agency]:
        with sample_path(name).open(encoding="utf-8") as f:
            for row in csv.DictReader(f):
                for column, value in row.items():
                    low = (column or "").lower()
                    wanted = any(k in low for k in ("id", "name", "birth", "dob", "surname"))
                    if wanted and len(value.strip()) >= 5:
                        needles.add(value.strip().encode("utf-8"))
    with tempfile.TemporaryDirectory() as rejects:  # never beside the bundled lists
        lists = [sample_path(n) for n in LISTS[agency]]
        side = prepare_side(lists, schema=load_default_schema(), rejects_dir=rejects)
    needles.update(side.tokens.value(i) for i in range(len(side.tokens)))
    return needles


def test_the_hub_never_saw_a_record_or_a_token(
    round_done: tuple[HubWorld, list[bytes]],
) -> None:
    _, seen = round_done
    blob = b"".join(seen)
    assert len(blob) > 50_000  # the exchanges did go through it
    for agency in AGENCIES:
        needles = _needles(agency)
        assert len(needles) > 500
        leaked = [n for n in needles if n in blob]
        assert leaked == [], f"{agency}: {len(leaked)} plaintext values in the hub's bytes"


def test_the_hub_cosigned_each_agencys_checkpoints_and_an_auditor_can_use_them(
    round_done: tuple[HubWorld, list[bytes]], tmp_path: Path
) -> None:
    from xlink.cli.main import main

    world, _ = round_done
    out = tmp_path / "rcmp-dhs.checkpoints.json"
    hub_dir = world.base / "hub-work"
    assert (
        main(
            [
                "hub",
                "export-checkpoints",
                "--workdir",
                str(hub_dir),
                "--agency",
                "CA-RCMP",
                "--partner",
                "US-DHS",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    workdir = partner_workdir(world.workdir("CA-RCMP"), "US-DHS")
    code = main(
        [
            "audit",
            "verify",
            str(workdir / "audit.db"),
            "--keys",
            str(world.ceremony.keys["CA-RCMP"]),
            "--partner-checkpoints",
            str(out),
        ]
    )
    assert code == 0


def test_the_combined_view_names_each_partner_that_matched_a_record(
    round_done: tuple[HubWorld, list[bytes]],
) -> None:
    world, _ = round_done
    rows = combined_matches(world.workdir("CA-CBSA"))
    assert rows and {p.partner for r in rows for p in r.partners} <= {"CA-RCMP", "US-DHS"}
    per_partner = {
        peer: sum(1 for r in rows if peer in {p.partner for p in r.partners})
        for peer in ("CA-RCMP", "US-DHS")
    }
    for peer, count in per_partner.items():
        matches = partner_workdir(world.workdir("CA-CBSA"), peer) / "matches"
        with next(matches.glob("*.csv")).open(encoding="utf-8") as f:
            file_rows = list(csv.DictReader(f))
        assert len({r["own_record_id"] for r in file_rows}) == count
        # Every match is there: a record matched twice by one partner keeps both releases.
        shown = [p for r in rows for p in r.partners if p.partner == peer]
        assert sorted(p.inbound_release_id for p in shown) == sorted(
            r["inbound_release_id"] for r in file_rows
        )
    two = combined_matches(world.workdir("CA-CBSA"), min_lists=2)
    assert all(r.lists == 2 for r in two)
    assert {r.own_record_id for r in two} == {r.own_record_id for r in rows if r.lists >= 2}


def test_a_fan_out_query_answers_per_partner_and_names_the_one_offline(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    travellers = sample_path("us_travellers.csv")

    async def main() -> None:
        hub = world.hub()
        async with running_hub(hub) as port:
            agents = [world.agent(a, port) for a in ("CA-RCMP", "CA-CBSA")]
            async with running_agents(agents):
                answers = await ask_partners(
                    world.files("US-DHS"),
                    world.address(port),
                    world.workdir("US-DHS"),
                    ["CA-RCMP", "CA-CBSA"],
                    [travellers],
                    clock=lambda: NOW,
                    rng_of=lambda p: DeterministicRandom(f"ask {p}"),
                )
                by = {a.partner: a for a in answers}
                assert by["CA-RCMP"].outcome is not None and by["CA-CBSA"].outcome is not None
                assert by["CA-CBSA"].outcome.travellers == by["CA-RCMP"].outcome.travellers > 0
                assert by["CA-CBSA"].outcome.matched > 0
                # Each answer was audited in its own pair's log; a query runs no PSI, so the
                # travellers were never hashed into the pair's PSI cache.
                for peer in ("CA-RCMP", "CA-CBSA"):
                    work = partner_workdir(world.workdir("US-DHS"), peer)
                    assert (work / "audit.db").exists()
                    assert list(work.glob("cache/h2g-*.bin")) == []
            # The agents are gone: the hub says so, per partner.
            offline = await ask_partners(
                world.files("US-DHS"),
                world.address(port),
                world.workdir("US-DHS"),
                ["CA-RCMP"],
                [travellers],
                clock=lambda: NOW,
                rng_of=lambda p: DeterministicRandom(f"ask again {p}"),
            )
            assert offline[0].outcome is None and offline[0].error == "peer-offline"
        hub.close()

    asyncio.run(main())


def test_an_agent_prepares_its_list_and_its_query_table_off_its_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An agent prepared its list (minutes for a large one) and made the month's query table
    (an OPRF evaluation per token) on its event loop: its control connection and every other
    partner's job stood still meanwhile, and an asker waiting at the hub could time out. Both
    now run on worker threads; the answer is the same."""
    world = make_world(tmp_path)
    agency_work = str(world.workdir("CA-RCMP"))
    on_the_loop: list[str] = []

    def watched(what: str, work: Any) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            mine = what == "table" or str(kwargs.get("rejects_dir", "")).startswith(agency_work)
            if mine and threading.current_thread() is threading.main_thread():
                on_the_loop.append(what)
            return work(*args, **kwargs)

        return run

    monkeypatch.setattr("xlink.prepare.prepare_side", watched("list", prepare_side))
    monkeypatch.setattr(HolderTable, "build", watched("table", HolderTable.build))

    async def main() -> int:
        hub = world.hub()
        async with running_hub(hub) as port, running_agents([world.agent("CA-RCMP", port)]):
            (answer,) = await ask_partners(
                world.files("US-DHS"),
                world.address(port),
                world.workdir("US-DHS"),
                ["CA-RCMP"],
                [sample_path("us_travellers.csv")],
                clock=lambda: NOW,
                rng_of=lambda p: DeterministicRandom(f"ask {p}"),
            )
        hub.close()
        assert answer.outcome is not None
        return answer.outcome.matched

    assert asyncio.run(main()) > 0
    assert on_the_loop == []


def test_a_partners_store_opens_only_under_that_partners_pair_view(
    round_done: tuple[HubWorld, list[bytes]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from _hub import PASSPHRASE

    from xlink.cli.main import main

    world, _ = round_done
    monkeypatch.setenv("XLINK_PASSPHRASE", PASSPHRASE.decode())
    workdir = partner_workdir(world.workdir("CA-RCMP"), "US-DHS")
    base = ["store", "list", "--workdir", str(workdir), "--keys",
            str(world.ceremony.keys["CA-RCMP"]), "--mou", str(world.ceremony.mou),
            "--now", NOW.isoformat(), "--json"]  # fmt: skip
    assert main([*base, "--peer", "US-DHS"]) == 0
    assert isinstance(json.loads(capsys.readouterr().out), list)
    assert main([*base, "--peer", "CA-CBSA"]) == 3
    assert "holds exchanges with US-DHS, not CA-CBSA" in capsys.readouterr().err


def test_an_agent_stopped_while_it_prepares_its_list_stops_promptly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C (the agent's tasks cancelled) while the list is prepared on its worker thread:
    asyncio.run waits for that thread, and it ran on for the whole preparation (minutes for a
    large list). The preparation now ends at its next progress report."""
    reports: list[int] = []

    def large_list(*args: Any, progress: Any = None, **kwargs: Any) -> Any:
        long_work(progress, reports, "loading")
        raise AssertionError("prepared to the end")

    monkeypatch.setattr("xlink.prepare.prepare_side", large_list)
    world = make_world(tmp_path)
    agent = world.agent("CA-RCMP", 1)

    async def stopped() -> None:
        with agent._open("US-DHS") as agency:
            assert await cancelled_after(agent._side(agency), 0.3)

    started = time.monotonic()
    asyncio.run(stopped())
    assert time.monotonic() - started < 1.5 and len(reports) < 100


def test_an_agent_loads_its_list_under_its_clock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent prepares its list itself, not through ``Agency.prepare``: it passed no date,
    so a date of birth after its clock was kept in a hub exchange alone."""
    seen: dict[str, Any] = {}

    def recorded(*args: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        return prepare_side(*args, **kwargs)

    monkeypatch.setattr("xlink.prepare.prepare_side", recorded)
    world = make_world(tmp_path)
    agent = world.agent("CA-RCMP", 1)

    async def side() -> None:
        with agent._open("US-DHS") as agency:
            await agent._side(agency)

    asyncio.run(side())
    assert seen["today"] == agent.clock().astimezone(UTC).date()


@pytest.mark.parametrize(
    "line",
    ["[" * 100_000 + "]" * 100_000, '{"own_record_id": ' + "9" * 5000 + "}", "{", "[1, 2]"],
    ids=["nested-deep", "huge-number", "cut", "not-a-row"],
)
def test_a_matches_file_garbled_in_place_is_named_with_its_line(tmp_path: Path, line: str) -> None:
    """A line nested too deep or holding a number too long raised RecursionError or
    ValueError out of ``combined_matches`` (``xlink hub combined``); every bad line is now an
    InputError naming the file and the line (blank lines counted)."""
    matches = tmp_path / "partners" / "US-CBP" / "matches"
    matches.mkdir(parents=True)
    good = json.dumps({"own_record_id": "R1", "own_category": "watchlist"})
    (matches / "s1.jsonl").write_text(f"{good}\n\n{line}\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"s1\.jsonl:3: not a matches row"):
        combined_matches(tmp_path)


def _connection_handlers() -> list[asyncio.Task[Any]]:
    return [
        t for t in asyncio.all_tasks() if getattr(t.get_coro(), "__qualname__", "") == "Hub._accept"
    ]


def test_a_hub_stopped_with_agencies_connected_ends_their_connections_before_it_returns(
    round_done: tuple[HubWorld, list[bytes]], tmp_path: Path
) -> None:
    """``Hub.serve`` cancelled used to return with its connections' tasks still running: an
    embedder that then closed the hub had them record the agency's departure in a closed
    database (``sqlite3.ProgrammingError`` in a task nobody awaits). Every connection now
    ends, its own clean-up done, before ``serve`` returns."""
    world, _ = round_done

    async def main() -> None:
        hub = world.hub(workdir=tmp_path / "hub")
        bound: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        serving = asyncio.create_task(hub.serve("127.0.0.1", 0, on_listening=bound.set_result))
        port = await bound
        agents = [world.agent(a, port, workdir=tmp_path / a) for a in AGENCIES[:2]]
        async with running_agents(agents):
            handlers = _connection_handlers()
            assert len(handlers) == 2
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)
            assert all(t.done() for t in handlers)
            hub.close()
        for t in handlers:
            assert t.cancelled() or t.exception() is None

    asyncio.run(main())


def test_a_connection_still_in_its_handshake_is_closed_when_the_hub_stops(
    round_done: tuple[HubWorld, list[bytes]], tmp_path: Path
) -> None:
    """A connection cancelled before its hello (here: one that sends nothing) kept its socket
    open once ``serve`` had returned: its clean-up ran only on the errors a handshake raises,
    not on cancellation. (It is also cancelled twice: ``serve`` still returns with every
    connection ended.)"""
    world, _ = round_done

    async def main() -> None:
        hub = world.hub(workdir=tmp_path / "hub")
        bound: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        serving = asyncio.create_task(hub.serve("127.0.0.1", 0, on_listening=bound.set_result))
        reader, writer = await asyncio.open_connection("127.0.0.1", await bound)
        await until(lambda: len(_connection_handlers()) == 1, timeout=5)
        serving.cancel()
        await asyncio.sleep(0)
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
        assert not _connection_handlers()
        hub.close()
        async with asyncio.timeout(2):
            assert await reader.read() == b""  # closed by the hub, not left open
        writer.close()

    asyncio.run(main())


def test_a_connection_that_ignores_its_cancellation_does_not_keep_serve_from_returning(
    round_done: tuple[HubWorld, list[bytes]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``serve`` re-cancelled its connections until none was left: one that swallowed its
    cancellation (none of the hub's own does; an embedder's could) kept it from ever returning.
    Now it waits :data:`~xlink.hub.server.STOP_GRACE` seconds, logs, and returns."""
    world, _ = round_done
    monkeypatch.setattr(hub_server, "STOP_GRACE", 0.5)

    released = asyncio.Event()

    async def stubborn() -> None:
        while not released.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(3600)

    async def main() -> None:
        hub = world.hub(workdir=tmp_path / "hub")
        bound: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        serving = asyncio.create_task(hub.serve("127.0.0.1", 0, on_listening=bound.set_result))
        await bound
        task = asyncio.create_task(stubborn())
        hub._connections.add(task)
        serving.cancel()
        try:
            await asyncio.wait({serving}, timeout=5)  # (a timeout here does not cancel it)
            assert serving.done() and not task.done()  # left behind, not waited for
        finally:
            released.set()  # so that it ends, whatever the assertion said
            task.cancel()
            hub._connections.discard(task)  # as the hub's own connections leave the set
            await asyncio.gather(task, serving, return_exceptions=True)
            hub.close()

    asyncio.run(main())
