"""The CLI's progress reporter: one updating line per phase on a terminal, periodic log lines
elsewhere, and each phase's duration for ``--json`` output.

:class:`ProgressReporter` is a :class:`~xlink.progress.ProgressFn`: pass it as ``progress=`` to
:func:`~xlink.prepare.prepare_side`, :meth:`~xlink.agency.Agency.exchange` and friends. It draws on
standard error only, so ``--json`` output on standard output stays one clean document, and it
shows counts only, never record contents.

- Standard error is a terminal: rich draws one line per phase (bar, count/total, percentage,
  rate, elapsed time, time left); a phase that ends keeps its finished line. Phases that run
  side by side (the PSI's own and peer elements) are one line each.
- Otherwise (CI logs, ``2> run.log``): plain lines, ``[xlink] loading ca.csv: 20000/50000
  (40%), 5123/s, ETA 6 s`` at most every ``interval`` seconds (10) per running phase, also
  while the step is silent (a heartbeat thread), and one line when a phase ends.
- Disabled (``--json``, ``--quiet``): nothing is drawn, the phases are still timed.

:meth:`ProgressReporter.timings` gives each phase's duration in seconds. The clock is a
parameter (``clock=``), so are the stream and the terminal test.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, TextIO

from xlink.progress import PhaseState, PhaseTracker

if TYPE_CHECKING:
    from rich.progress import Progress as RichProgress
    from rich.progress import TaskID

__all__ = ["DEFAULT_INTERVAL", "ProgressReporter", "format_seconds"]

#: Seconds between two plain progress lines of one phase when standard error is not a terminal.
DEFAULT_INTERVAL = 10.0


def format_seconds(seconds: float, *, whole: bool = False) -> str:
    """``0.4 s``, ``12 s``, ``3 min 05 s``, ``2 h 07 min``; ``whole`` rounds short times up."""
    if seconds < 10 and not whole:
        return f"{seconds:.1f} s"
    total = math.ceil(seconds) if whole else round(seconds)
    if total < 60:
        return f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _format_rate(rate: float) -> str:
    if rate >= 10:
        return f"{rate:.0f}/s"
    if rate >= 0.1:
        return f"{rate:.1f}/s"
    return f"{rate:.2f}/s"


def _count(state: PhaseState) -> str:
    if state.total is None:
        return str(state.done)
    fraction = state.fraction()
    percent = 100 if fraction is None else math.floor(100 * fraction)
    return f"{state.done}/{state.total} ({percent}%)"


def running_line(state: PhaseState, now: float) -> str:
    """``loading ca.csv: 20000/50000 (40%), 5123/s, ETA 6 s`` (without the prefix)."""
    if state.done == 0 and state.total is None:
        return f"{state.name}: {format_seconds(state.elapsed(now))} so far"
    parts = [_count(state)]
    rate = state.rate(now)
    if rate is not None:
        parts.append(_format_rate(rate))
    eta = state.eta(now)
    if eta is not None:
        parts.append(f"ETA {format_seconds(eta, whole=True)}")
    return f"{state.name}: " + ", ".join(parts)


def ended_line(state: PhaseState, now: float, *, failed: bool = False) -> str:
    """``loading ca.csv: 50000 done in 9.8 s (5102/s)``, or ``stopped at ...`` when the phase
    ended before its total, or (``failed``) when the step failed before it was complete."""
    took = format_seconds(state.elapsed(now))
    if (state.total is not None and state.done < state.total) or (failed and not state.complete):
        if state.done == 0 and state.total is None:
            return f"{state.name}: stopped after {took}"
        return f"{state.name}: stopped at {_count(state)} after {took}"
    if state.done == 0:
        return f"{state.name}: done in {took}"
    rate = state.rate(now)
    speed = f" ({_format_rate(rate)})" if rate is not None else ""
    return f"{state.name}: {state.done} done in {took}{speed}"


def _is_terminal(stream: TextIO) -> bool:
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError, OSError):  # a closed or odd stream
        return False
    return bool(tty) and os.environ.get("TERM") != "dumb"


class ProgressReporter:
    """A :class:`~xlink.progress.ProgressFn` that draws phases on ``stream`` (default: standard
    error) and times them. ``enabled=False`` draws nothing. ``tty`` forces the terminal
    (rich) or the plain-line rendering; by default it is ``stream.isatty()``. ``clock`` is a
    monotonic clock in seconds; ``heartbeat=False`` turns off the thread that writes plain
    lines while a step is silent (tests call :meth:`tick` instead).

    Use it as ``reporter(phase, done, total)``, then :meth:`close` (or ``with``); for the
    callers written against the older ``report, close = progress_reporter(...)``, it also
    unpacks into ``(reporter, reporter.close)``.
    """

    def __init__(
        self,
        *,
        enabled: bool = True,
        stream: TextIO | None = None,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
        interval: float = DEFAULT_INTERVAL,
        heartbeat: bool = True,
        prefix: str = "[xlink]",
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be > 0")
        self.enabled = enabled
        self.stream: TextIO = stream if stream is not None else sys.stderr
        self.tty = _is_terminal(self.stream) if tty is None else tty
        self.clock = clock
        self.interval = interval
        self.prefix = prefix
        self._tracker = PhaseTracker(clock)
        self._lock = threading.RLock()
        self._heartbeat = heartbeat and enabled and not self.tty
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rich: RichProgress | None = None
        self._tasks: dict[str, TaskID] = {}
        # A forked child (xlink eval's second party) inherits the reporter, perhaps with its
        # lock held by a thread that did not survive the fork: there it draws nothing.
        self._pid = os.getpid()

    # -- the ProgressFn --------------------------------------------------------------------

    def __call__(self, phase: str, done: int, total: int | None = None) -> None:
        if os.getpid() != self._pid:
            return
        with self._lock:
            update = self._tracker.update(phase, done, total)
            if not self.enabled:
                return
            now = update.now
            if self.tty:
                self._draw(update.phase, update.ended)
                return
            for gone in update.ended:
                self._write(ended_line(gone, now))
            state = update.phase
            if (
                state is not None
                and state.ended is None
                and now - state.last_shown >= self.interval
            ):
                state.last_shown = now
                self._write(running_line(state, now))
            self._start_heartbeat()

    def tick(self) -> None:
        """Write a plain line for each running phase not shown for ``interval`` seconds (what
        the heartbeat thread does; nothing on a terminal or when disabled)."""
        if os.getpid() != self._pid:
            return
        with self._lock:
            if not self.enabled or self.tty:
                return
            now = self.clock()
            for state in self._tracker.running():
                if now - state.last_shown >= self.interval:
                    state.last_shown = now
                    self._write(running_line(state, now))

    def note(self, text: str) -> None:
        """A one-off status line (``[xlink] TEXT``; on a terminal, above the progress lines).
        Counts and file names only, like the phases."""
        if not self.enabled:
            return
        if os.getpid() != self._pid:  # a forked child: no lock, no display of its own
            self._write(text)
            return
        with self._lock:
            if self._rich is not None:
                self._rich.console.print(f"{self.prefix} {text}", markup=False, highlight=False)
            else:
                self._write(text)

    def close(self, *, failed: bool = False) -> None:
        """End every running phase (plain: one line each; terminal: the finished lines stay)
        and stop drawing; ``failed``: the step failed, so a phase still running is shown as
        stopped, not done (``with`` passes it). The reporter may be used again afterwards."""
        if os.getpid() != self._pid:
            return
        with self._lock:
            ended = self._tracker.close()
            if self.enabled and self.tty:
                self._draw(None, ended, failed=failed)
                if self._rich is not None:
                    self._rich.stop()
                    self._rich = None
                    self._tasks.clear()
            elif self.enabled:
                for state in ended:
                    self._write(ended_line(state, state.ended or 0.0, failed=failed))
            thread, self._thread = self._thread, None
            self._stop.set()
        if thread is not None:
            thread.join()

    def timings(self) -> dict[str, float]:
        """Seconds each phase took, by phase name, in the order they started (a phase still
        running: so far; a phase that ran twice: the sum). For ``"phases"`` in ``--json``."""
        with self._lock:
            return self._tracker.timings()

    @property
    def renderer(self) -> RichProgress | None:
        """The rich display while a terminal is being drawn on (None otherwise)."""
        return self._rich

    def __enter__(self) -> ProgressReporter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(failed=exc is not None)

    def __iter__(self) -> Iterator[Any]:
        """``report, close = progress_reporter(...)`` (the older shape) keeps working."""
        return iter((self, self.close))

    # -- plain lines -----------------------------------------------------------------------

    def _write(self, line: str) -> None:
        try:
            self.stream.write(f"{self.prefix} {line}\n")
            self.stream.flush()
        except (OSError, ValueError):  # stderr closed or gone: progress is not worth failing
            pass

    def _start_heartbeat(self) -> None:
        if not self._heartbeat or self._thread is not None:
            return
        self._stop = threading.Event()
        stop = self._stop
        step = min(1.0, self.interval)

        def beat() -> None:
            while not stop.wait(step):
                self.tick()

        self._thread = threading.Thread(target=beat, name="xlink-progress", daemon=True)
        self._thread.start()

    # -- the terminal (rich) ---------------------------------------------------------------

    def _draw(
        self, state: PhaseState | None, ended: tuple[PhaseState, ...], *, failed: bool = False
    ) -> None:
        progress = self._rich
        if progress is None:
            if state is None:
                return  # nothing was ever drawn
            progress = self._rich = _rich_progress(self.stream, self.clock)
            progress.start()
        for done in ended:
            task = self._tasks.pop(done.name, None)
            if task is None:  # started and ended in one report
                task = progress.add_task(done.name, total=None, count="")
            # A finished line: full bar (unless stopped short), the final count, elapsed time
            # frozen.
            final = max(done.done, done.total or 0, 1)
            full = done.complete or (done.total is None and not failed)
            rate = done.rate(done.ended or 0.0)
            progress.update(
                task,
                total=final,
                completed=final if full else done.done,
                count=_count(done) if done.done or done.total is not None else "",
                rate="" if rate is None else _format_rate(rate),
            )
            progress.stop_task(task)
        if state is not None and state.ended is None:
            task = self._tasks.get(state.name)
            if task is None:
                task = progress.add_task(state.name, total=state.total, count="")
                self._tasks[state.name] = task
            progress.update(
                task,
                total=state.total,
                completed=state.done,
                count=_count(state) if state.done or state.total is not None else "",
            )


def _rich_progress(stream: TextIO, clock: Callable[[], float]) -> RichProgress:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        ProgressColumn,
        Task,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        """Units per second (rich's own speed estimate over its recent samples)."""

        def render(self, task: Task) -> Text:
            final = task.fields.get("rate")  # an ended phase: its average, as in plain lines
            speed = task.finished_speed or task.speed
            text = final if final is not None else "" if speed is None else _format_rate(speed)
            return Text(str(text), style="progress.data.speed")

    console = Console(file=stream, force_terminal=True)
    return Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        TextColumn("{task.fields[count]}", markup=False),
        RateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        get_time=clock,
        transient=False,
    )
