"""The hub's schedule (xlink-hub-v1 §6): rounds, who may start, reports, retries with backoff,
and a restart that loses no job and finishes none twice."""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xlink.crypto.rand import DeterministicRandom
from xlink.errors import DamagedDatabase
from xlink.hub.agent import _AgentState
from xlink.hub.schedule import JobState, Schedule

T0 = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)
PAIRS = [("CA-RCMP", "CA-CBSA"), ("CA-RCMP", "US-DHS"), ("US-DHS", "CA-CBSA")]
ALL = {"CA-RCMP", "CA-CBSA", "US-DHS"}
RNG = DeterministicRandom("attempts")


def _open(tmp_path: Path, max_attempts: int = 8, now: datetime = T0) -> Schedule:
    return Schedule.open(tmp_path / "schedule.db", now=now, max_attempts=max_attempts, recover=True)


def test_a_round_has_one_job_per_pair_the_first_in_sorted_order_responding(
    tmp_path: Path,
) -> None:
    with _open(tmp_path) as s:
        s.add_round([*PAIRS, ("CA-CBSA", "CA-RCMP")], now=T0, rng=DeterministicRandom(1))
        jobs = s.jobs()
    assert sorted((j.responder, j.initiator) for j in jobs) == [
        ("CA-CBSA", "CA-RCMP"),
        ("CA-CBSA", "US-DHS"),
        ("CA-RCMP", "US-DHS"),
    ]
    assert {j.state for j in jobs} == {JobState.PENDING}


def test_only_jobs_of_connected_free_agencies_start_one_per_agency(tmp_path: Path) -> None:
    with _open(tmp_path) as s:
        s.add_round(PAIRS, now=T0, rng=DeterministicRandom(1))
        assert s.runnable({"CA-RCMP"}, set(), now=T0) == []
        assert [j.agencies for j in s.runnable({"CA-RCMP", "US-DHS"}, set(), now=T0)] == [
            ("US-DHS", "CA-RCMP")
        ]
        assert s.runnable({"CA-RCMP", "US-DHS"}, {"US-DHS"}, now=T0) == []
        # Three agencies, three pairs: every pair shares an agency with every other.
        assert len(s.runnable(ALL, set(), now=T0)) == 1


def test_a_job_is_done_only_when_both_agencies_report_success(tmp_path: Path) -> None:
    with _open(tmp_path) as s:
        s.add_round(PAIRS[:1], now=T0, rng=DeterministicRandom(1))
        (job,) = s.jobs()
        s.start(job.job, now=T0, rng=RNG)
        assert s.report(job.job, job.initiator, ok=True, reason="", now=T0) == JobState.RUNNING
        assert s.report(job.job, "US-DHS", ok=True, reason="", now=T0) == JobState.RUNNING
        assert s.report(job.job, job.responder, ok=True, reason="", now=T0) == JobState.DONE


def test_a_failure_retries_after_a_doubling_backoff_then_gives_up(tmp_path: Path) -> None:
    with _open(tmp_path, max_attempts=3) as s:
        s.add_round(PAIRS[:1], now=T0, rng=DeterministicRandom(1))
        (job,) = s.jobs()
        now, waits = T0, []
        for _ in range(3):
            (ready,) = s.runnable(ALL, set(), now=now)
            s.start(ready.job, now=now, rng=RNG)
            state = s.report(job.job, job.initiator, ok=False, reason="timeout", now=now)
            row = s.get(job.job)
            assert row is not None
            waits.append(row.due - now)
            assert s.runnable(ALL, set(), now=now) == []
            now = row.due
        assert state == JobState.FAILED
        assert waits[:2] == [timedelta(seconds=2), timedelta(seconds=4)]
        assert row.reason == "timeout" and row.attempts == 3


def test_a_restart_puts_running_jobs_back_and_keeps_finished_ones(tmp_path: Path) -> None:
    with _open(tmp_path) as s:
        s.add_round(PAIRS, now=T0, rng=DeterministicRandom(1))
        first, second, _ = s.jobs()
        s.start(first.job, now=T0, rng=RNG)
        s.start(second.job, now=T0, rng=RNG)
        s.report(second.job, second.initiator, ok=True, reason="", now=T0)
        s.report(second.job, second.responder, ok=True, reason="", now=T0)
    later = T0 + timedelta(minutes=1)
    with _open(tmp_path, now=later) as s:
        states = {j.job: (j.state, j.reason) for j in s.jobs()}
        assert states[first.job] == (JobState.PENDING, "hub-restarted")
        assert states[second.job][0] == JobState.DONE
        (again,) = s.runnable(set(first.agencies), set(), now=later)
        assert again.job == first.job


def test_a_tool_opening_the_schedule_beside_the_hub_leaves_running_jobs_alone(
    tmp_path: Path,
) -> None:
    """``xlink hub schedule`` adds a round while the hub runs: it must not put the hub's
    running jobs back to pending (the hub would then drop both agencies' reports)."""
    with _open(tmp_path) as hub:
        hub.add_round(PAIRS[:1], now=T0, rng=DeterministicRandom(1))
        (job,) = hub.jobs()
        attempt = hub.start(job.job, now=T0, rng=RNG)
        with Schedule.open(tmp_path / "schedule.db", now=T0) as tool:
            tool.add_round(PAIRS, now=T0, rng=DeterministicRandom(2))
        assert hub.by_attempt(attempt) is not None
        assert hub.report(job.job, job.initiator, ok=True, reason="", now=T0) == JobState.RUNNING
        assert hub.report(job.job, job.responder, ok=True, reason="", now=T0) == JobState.DONE


def test_each_start_has_its_own_attempt_id(tmp_path: Path) -> None:
    with _open(tmp_path) as s:
        s.add_round(PAIRS[:1], now=T0, rng=DeterministicRandom(1))
        (job,) = s.jobs()
        first = s.start(job.job, now=T0, rng=RNG)
        s.fail(job.job, "timeout", now=T0)
        row = s.get(job.job)
        assert row is not None
        second = s.start(job.job, now=row.due, rng=RNG)
        assert first != second
        assert s.by_attempt(first) is None
        assert s.by_attempt(second) is not None


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 2), st.sampled_from(["ok", "fail", "start"]), st.booleans()),
        max_size=30,
    )
)
def test_no_sequence_of_events_finishes_a_job_without_two_successes(
    events: list[tuple[int, str, bool]],
) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp, _open(Path(tmp)) as s:
        s.add_round(PAIRS, now=T0, rng=DeterministicRandom(2))
        jobs = s.jobs()
        successes: dict[bytes, set[str]] = {j.job: set() for j in jobs}
        for index, action, first in events:
            job = jobs[index]
            agency = job.initiator if first else job.responder
            if action == "start":
                before = s.get(job.job)
                s.start(job.job, now=T0, rng=RNG)
                if before is not None and before.state == JobState.PENDING:
                    successes[job.job] = set()
            elif action == "ok":
                running = (row := s.get(job.job)) is not None and row.state == JobState.RUNNING
                s.report(job.job, agency, ok=True, reason="", now=T0)
                if running:
                    successes[job.job].add(agency)
            else:
                if (row := s.get(job.job)) is not None and row.state == JobState.RUNNING:
                    successes[job.job] = set()
                s.report(job.job, agency, ok=False, reason="x", now=T0)
        for row in s.jobs():
            if row.state == JobState.DONE:
                assert successes[row.job] == set(row.agencies)


def test_a_schedule_serves_one_multilateral_mou(tmp_path: Path) -> None:
    from xlink.errors import InputError

    with _open(tmp_path) as s:
        s.bind_mou(bytes(32))
        s.bind_mou(bytes(32))
        with pytest.raises(InputError, match="another multilateral MOU"):
            s.bind_mou(bytes([1]) * 32)


def test_a_new_round_adds_no_second_job_for_a_pair_still_waiting(tmp_path: Path) -> None:
    with _open(tmp_path) as s:
        s.add_round(PAIRS, now=T0, rng=DeterministicRandom(1))
        first = s.jobs()[0]
        s.start(first.job, now=T0, rng=RNG)
        s.report(first.job, first.initiator, ok=True, reason="", now=T0)
        s.report(first.job, first.responder, ok=True, reason="", now=T0)
        later = s.add_round(PAIRS, now=T0 + timedelta(days=1), rng=DeterministicRandom(2))
        new = [j for j in s.jobs() if j.round == later]
        assert [j.agencies for j in new] == [first.agencies]  # only the pair that was done


def _damage(path: Path, how: str) -> None:
    """Random bytes, a file cut short, a page of the jobs table overwritten (the header and the
    schema intact: only the restart's recovery reads it), or another program's database whose
    schema the schedule's script refuses."""
    if how == "random":
        path.write_bytes(os.urandom(4096))
    elif how == "cut":
        path.write_bytes(path.read_bytes()[:1500])
    elif how == "jobs page":
        with closing(sqlite3.connect(path)) as db:
            (size,) = db.execute("PRAGMA page_size").fetchone()
            (root,) = db.execute(
                "SELECT rootpage FROM sqlite_master WHERE name = 'jobs'"
            ).fetchone()
        data = bytearray(path.read_bytes())
        data[(root - 1) * size : root * size] = b"\xff" * size
        path.write_bytes(data)
    else:
        path.unlink()
        with closing(sqlite3.connect(path)) as db:
            db.executescript("CREATE TABLE other (a); CREATE INDEX rounds ON other (a);")


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[sqlite3.Connection]:
    """Every connection sqlite3.connect makes during the test."""
    opened: list[sqlite3.Connection] = []
    connect = sqlite3.connect

    def recording(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn: sqlite3.Connection = connect(*args, **kwargs)
        opened.append(conn)
        return conn

    monkeypatch.setattr(sqlite3, "connect", recording)
    return opened


def _all_closed(opened: list[sqlite3.Connection]) -> None:
    assert opened
    for conn in opened:
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            conn.execute("SELECT 1")


@pytest.mark.parametrize("how", ["random", "cut", "jobs page", "foreign schema"])
def test_a_schedule_that_cannot_be_opened_is_refused_and_its_connection_closed(
    tmp_path: Path, how: str, connections: list[sqlite3.Connection]
) -> None:
    """Schedule.open ran its setup outside the guard the other stores' openers have: a failing
    script or recovery left the connection open (the hub's workdir file held, for ever in a
    long-lived process) and a damaged page was a raw sqlite3 error, not DamagedDatabase."""
    with _open(tmp_path) as s:
        s.add_round(PAIRS, now=T0, rng=DeterministicRandom(1))
        job = s.jobs()[0]
        s.start(job.job, now=T0, rng=RNG)  # a running job: the restart's recovery updates it
    path = tmp_path / "schedule.db"
    _damage(path, how)
    connections.clear()
    expected: type[Exception] = (
        sqlite3.OperationalError if how == "foreign schema" else DamagedDatabase
    )
    with pytest.raises(expected):
        _open(tmp_path)
    _all_closed(connections)


def test_an_agent_state_that_cannot_be_set_up_leaves_no_connection_open(
    tmp_path: Path, connections: list[sqlite3.Connection]
) -> None:
    """The hub agent's own state file (hub-agent.db) had the same leak: another program's
    database whose schema its script refuses left the connection open."""
    path = tmp_path / "hub-agent.db"
    with closing(sqlite3.connect(path)) as db:
        db.executescript("CREATE TABLE other (a); CREATE INDEX done ON other (a);")
    connections.clear()
    with pytest.raises(sqlite3.OperationalError):
        _AgentState(path)
    _all_closed(connections)
