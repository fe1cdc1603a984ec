"""Progress: the library's ProgressFn and PhaseTracker (xlink.progress) and the CLI's reporter
(xlink.cli.progress): one line per phase, periodic plain lines off a terminal, rich on one,
per-phase timings. A fake clock and fake streams make every line exact."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest

from xlink.cli._common import phase_timings, progress_reporter
from xlink.cli.exitcodes import ExitCode
from xlink.cli.main import main
from xlink.cli.progress import ProgressReporter, format_seconds
from xlink.prepare import prepare_side
from xlink.progress import PhaseTracker, ProgressFn, count_progress, no_progress


class Clock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Stream(io.StringIO):
    def __init__(self, tty: bool = False) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty

    def lines(self) -> list[str]:
        return self.getvalue().splitlines()


def plain(clock: Clock, stream: Stream, interval: float = 10.0) -> ProgressReporter:
    return ProgressReporter(stream=stream, clock=clock, interval=interval, heartbeat=False)


# -- plain lines (standard error is not a terminal) ----------------------------------------


def test_one_line_per_phase_when_the_phase_switches() -> None:
    clock, stream = Clock(), Stream()
    reporter = plain(clock, stream)
    for done in range(0, 30_001, 10_000):  # a file of unknown length, 1 s per 10,000 rows
        reporter("loading ca.csv", done)
        clock.now += 1
    reporter("deriving match tokens", 0, 3000)
    assert stream.lines() == ["[xlink] loading ca.csv: 30000 done in 4.0 s (7500/s)"]
    clock.now += 2
    reporter("deriving match tokens", 3000, 3000)  # reaching the total ends the phase
    assert stream.lines()[1:] == ["[xlink] deriving match tokens: 3000 done in 2.0 s (1500/s)"]
    reporter.close()
    assert len(stream.lines()) == 2


def test_periodic_lines_with_count_rate_and_eta() -> None:
    clock, stream = Clock(), Stream()
    reporter = plain(clock, stream)
    phase = "loading ca_watchlist.csv"
    for t, done in [(0, 0), (4, 8000), (10, 20_000), (15, 30_000), (20, 40_000), (25, 50_000)]:
        clock.now = 100.0 + t
        reporter(phase, done, 50_000)
    assert stream.lines() == [
        "[xlink] loading ca_watchlist.csv: 20000/50000 (40%), 2000/s, ETA 15 s",
        "[xlink] loading ca_watchlist.csv: 40000/50000 (80%), 2000/s, ETA 5 s",
        "[xlink] loading ca_watchlist.csv: 50000 done in 25 s (2000/s)",
    ]


def test_alternating_psi_phases_stay_one_line_each() -> None:
    """The PSI reports its own and its peer's chunks in turn: no line per switch."""
    clock, stream = Clock(), Stream()
    reporter = plain(clock, stream, interval=100.0)
    for chunk in range(1, 41):
        reporter("PSI peer elements", chunk, 40)
        clock.now += 0.5
        reporter("PSI own elements", chunk, 40)
        clock.now += 0.5
    reporter.close()
    assert stream.lines() == [
        "[xlink] PSI peer elements: 40 done in 39 s (1.0/s)",
        "[xlink] PSI own elements: 40 done in 39 s (1.0/s)",
    ]


def test_a_silent_phase_shows_life_and_its_end() -> None:
    clock, stream = Clock(), Stream()
    reporter = plain(clock, stream)
    reporter("waiting for the partner", 0)
    for t in (5, 10, 15, 21, 25):
        clock.now = 100.0 + t
        reporter.tick()  # what the heartbeat thread does every second
    clock.now = 100.0 + 32
    reporter.close()
    assert stream.lines() == [
        "[xlink] waiting for the partner: 10 s so far",
        "[xlink] waiting for the partner: 21 s so far",
        "[xlink] waiting for the partner: done in 32 s",
    ]


def test_the_heartbeat_thread_writes_while_nothing_is_reported() -> None:
    stream = Stream()
    reporter = ProgressReporter(stream=stream, interval=0.05)
    reporter("waiting for the partner", 0)
    deadline = time.monotonic() + 5
    while "so far" not in stream.getvalue() and time.monotonic() < deadline:
        time.sleep(0.02)
    reporter.close()
    assert "[xlink] waiting for the partner: " in stream.getvalue()
    assert "so far" in stream.getvalue()
    assert stream.lines()[-1].startswith("[xlink] waiting for the partner: done in ")


def test_close_marks_unfinished_phases_stopped() -> None:
    clock, stream = Clock(), Stream()
    reporter = plain(clock, stream)
    reporter("PSI confirm", 1, 4)
    clock.now += 2
    reporter("PSI confirm", 2, 4)
    clock.now += 1
    reporter.close()
    assert stream.lines() == ["[xlink] PSI confirm: stopped at 2/4 (50%) after 3.0 s"]


def test_a_failure_inside_with_shows_the_phase_stopped() -> None:
    clock, stream = Clock(), Stream()
    with pytest.raises(RuntimeError), plain(clock, stream) as reporter:
        reporter("loading broken.csv", 0)
        clock.now += 1
        raise RuntimeError("load failed")
    assert stream.lines() == ["[xlink] loading broken.csv: stopped after 1.0 s"]


def test_timings_per_phase() -> None:
    clock, stream = Clock(), Stream()
    reporter = plain(clock, stream)
    reporter("loading a.csv", 0)
    clock.now += 3
    reporter("deriving match tokens", 0, 10)  # ends loading (unknown total) at 3 s
    clock.now += 1.5
    assert reporter.timings() == {"loading a.csv": 3.0, "deriving match tokens": 1.5}
    reporter("deriving match tokens", 10, 10)
    clock.now += 10  # nothing runs: nothing grows
    reporter("deriving match tokens", 10, 10)  # a repeat of an ended phase: ignored
    reporter("releasing", 0)
    clock.now += 0.25
    reporter.close()
    assert reporter.timings() == {
        "loading a.csv": 3.0,
        "deriving match tokens": 1.5,
        "releasing": 0.25,
    }
    assert phase_timings(reporter) == reporter.timings()
    assert stream.getvalue().count("deriving match tokens") == 1


def test_a_phase_that_runs_twice_adds_up() -> None:
    clock = Clock()
    tracker = PhaseTracker(clock)
    tracker.update("deriving match tokens", 0, 5)
    clock.now += 2
    tracker.update("deriving match tokens", 5, 5)
    tracker.update("deriving match tokens", 0, 7)  # the second agency of a demo
    clock.now += 3
    tracker.update("deriving match tokens", 7, 7)
    assert tracker.timings() == {"deriving match tokens": 5.0}


def test_disabled_draws_nothing_but_times() -> None:
    clock, stream = Clock(), Stream(tty=True)
    reporter = ProgressReporter(enabled=False, stream=stream, clock=clock)
    reporter("loading a.csv", 10)
    clock.now += 2
    reporter.note("a note")
    reporter.close()
    assert stream.getvalue() == ""
    assert reporter.timings() == {"loading a.csv": 2.0}


def test_notes_are_prefixed_lines() -> None:
    stream = Stream()
    reporter = plain(Clock(), stream)
    reporter.note("left: 5000 records loaded in 1.2 s")
    assert stream.lines() == ["[xlink] left: 5000 records loaded in 1.2 s"]


def test_formatting() -> None:
    assert format_seconds(0.04) == "0.0 s"
    assert format_seconds(9.94) == "9.9 s"
    assert format_seconds(12.4) == "12 s"
    assert format_seconds(5.2, whole=True) == "6 s"
    assert format_seconds(185) == "3 min 05 s"
    assert format_seconds(7620) == "2 h 07 min"


# -- the terminal: rich ---------------------------------------------------------------------


def test_a_terminal_is_drawn_by_rich() -> None:
    from rich.progress import Progress

    clock, stream = Clock(), Stream(tty=True)
    reporter = ProgressReporter(stream=stream, clock=clock)
    assert reporter.tty
    reporter("PSI peer elements", 1, 4)
    assert isinstance(reporter.renderer, Progress)
    for chunk in range(2, 5):
        clock.now += 1
        reporter("PSI own elements", chunk - 1, 4)
        reporter("PSI peer elements", chunk, 4)
    clock.now += 1
    reporter("PSI own elements", 4, 4)
    tasks = reporter.renderer.tasks
    assert [t.description for t in tasks] == ["PSI peer elements", "PSI own elements"]
    assert all(t.finished for t in tasks)
    reporter.close()
    assert reporter.renderer is None
    out = stream.getvalue()
    assert "PSI peer elements" in out and "4/4 (100%)" in out
    assert "\x1b[" in out  # drawn with terminal control sequences, not plain lines
    assert "[xlink]" not in out
    assert reporter.timings() == {"PSI peer elements": 3.0, "PSI own elements": 3.0}


def test_a_phase_name_is_not_rich_markup() -> None:
    stream = Stream(tty=True)
    reporter = ProgressReporter(stream=stream, clock=Clock())
    reporter("loading data[bold].csv", 1, 1)
    reporter.close()
    assert "data[bold].csv" in stream.getvalue()


# -- the API callers use ---------------------------------------------------------------------


def test_progress_reporter_is_a_progress_fn_and_unpacks_as_before() -> None:
    reporter = progress_reporter(False)
    fn: ProgressFn = reporter
    fn("PSI reveal", 1)
    report, close = progress_reporter(False)
    report("loading a.csv", 5)
    report("loading a.csv", 10, 10)
    close()
    assert list(report.timings()) == ["loading a.csv"]


def test_count_progress_and_no_progress() -> None:
    calls: list[tuple[str, int, int | None]] = []

    def record(phase: str, done: int, total: int | None = None) -> None:
        calls.append((phase, done, total))

    count = count_progress(record, "generating records", 20)
    assert count is not None
    count(10)
    count(20)
    assert calls == [("generating records", 10, 20), ("generating records", 20, 20)]
    assert count_progress(None, "x") is None
    no_progress("anything", 1, 2)


def _csv(path: Path, rows: int) -> Path:
    lines = ["record_id,category,family_name,given_name,birth_date"]
    lines += [f"{i},watchlist,Name{i},Given{i},1980-01-{1 + i % 28:02d}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_prepare_side_reports_totals(tmp_path: Path) -> None:
    calls: list[tuple[str, int, int | None]] = []

    def record(phase: str, done: int, total: int | None = None) -> None:
        calls.append((phase, done, total))

    path = _csv(tmp_path / "ca.csv", 25)
    path.write_text(path.read_text() + "\n\n", encoding="utf-8")  # blank lines: 27 lines
    side = prepare_side([path], progress=record)
    assert side.loaded == 25
    loading = [c for c in calls if c[0] == "loading ca.csv"]
    assert loading[0] == ("loading ca.csv", 0, 27)  # lines less the header: an upper bound
    assert loading[-1] == ("loading ca.csv", 25, 25)  # then the rows actually read
    tokens = [c for c in calls if c[0] == "deriving match tokens"]
    assert tokens[0] == ("deriving match tokens", 0, 25)
    assert tokens[-1] == ("deriving match tokens", 25, 25)


def test_prepare_json_has_phases(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _csv(tmp_path / "ca.csv", 30)
    code = main(["prepare", str(path), "--json", "--rejects-dir", str(tmp_path / "rej")])
    assert code == ExitCode.OK
    captured = capsys.readouterr()
    phases = json.loads(captured.out)["phases"]
    assert list(phases) == ["deriving match tokens", "finding likely duplicates", "loading ca.csv"]
    assert all(isinstance(s, float) and s >= 0 for s in phases.values())
    assert captured.err == ""  # --json: nothing drawn


def test_prepare_without_json_logs_each_phase_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _csv(tmp_path / "ca.csv", 30)
    assert main(["prepare", str(path), "--no-duplicates"]) == ExitCode.OK
    err = capsys.readouterr().err.splitlines()
    assert [line.split(":")[0] for line in err] == [
        "[xlink] loading ca.csv",
        "[xlink] deriving match tokens",
    ]
    assert err[0].startswith("[xlink] loading ca.csv: 30 done in ")


def test_synth_logs_its_phase(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synth", "--n", "50", "--seed", "1", "--out", str(tmp_path / "d")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("[xlink] generating records: 100 done in ")
