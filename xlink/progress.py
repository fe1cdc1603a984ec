"""Progress of long steps, as the library reports it: a callback type and a tracker of phases.

Library code never prints. A long step calls a :class:`ProgressFn` with the name of its phase,
how much of it is done and, when known, the total: ``progress("deriving match tokens", 4000,
10000)``. Phases are named for people ("loading ca_watchlist.csv", "PSI peer elements") and
counts are records, rows or protocol chunks, never record contents. :data:`no_progress` reports
nothing. The CLI's reporter (:mod:`xlink.cli.progress`) draws the phases; a service embedding
xlink can pass any function of the same shape.

:class:`PhaseTracker` is the bookkeeping a reporter needs, with no I/O and an injectable clock:
which phases are running, since when, how far, their rate and time left, and how long each took.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "CountFn",
    "PhaseState",
    "PhaseTracker",
    "PhaseUpdate",
    "ProgressFn",
    "count_progress",
    "no_progress",
    "stopping",
]


class ProgressFn(Protocol):
    """``progress(phase, done, total=None)``: ``done`` units of ``phase`` are finished, out of
    ``total`` (None while unknown). Calls for one phase have non-decreasing ``done``; a phase
    whose ``total`` is known ends when ``done`` reaches it, one whose total is unknown when
    another phase starts. Must not raise; must be cheap (it is called every few thousand
    records or once per protocol chunk). The one that raises is :func:`stopping`'s."""

    def __call__(self, phase: str, done: int, total: int | None = None) -> None: ...


class _Stopped(Exception):
    """What a :func:`stopping` progress function raises once asked to stop."""


def stopping(progress: ProgressFn | None, stop: threading.Event) -> ProgressFn:
    """``progress`` for work on a worker thread whose caller may stop waiting (a cancelled
    task, a process shutting down): once ``stop`` is set, its next report raises instead, so
    the work ends there rather than run on for minutes, the process unable to exit meanwhile.
    The work must leave nothing half done when a report raises (its files written whole, or
    written again by the next run)."""

    def report(phase: str, done: int, total: int | None = None) -> None:
        if stop.is_set():
            raise _Stopped(phase)
        if progress is not None:
            progress(phase, done, total)

    return report


def no_progress(phase: str, done: int, total: int | None = None) -> None:
    """A :class:`ProgressFn` that reports nothing."""


CountFn = Callable[[int], None]
"""The per-count callback of :func:`~xlink.records.loaders.load_csv`,
:func:`~xlink.linkage.keys.derive_token_set` and :func:`~xlink.synth.build_synth`:
``progress(done)``."""


def count_progress(
    progress: ProgressFn | None, phase: str, total: int | None = None
) -> CountFn | None:
    """A :data:`CountFn` reporting ``done`` to ``progress`` as ``phase`` out of ``total``
    (None when ``progress`` is None, so the step does not even count)."""
    if progress is None:
        return None
    report = progress

    def count(done: int) -> None:
        report(phase, done, total)

    return count


@dataclass(slots=True)
class PhaseState:
    """One phase: when it started (clock seconds), how far it is, when it ended."""

    name: str
    started: float
    updated: float
    done: int = 0
    total: int | None = None
    ended: float | None = None
    #: Clock time of the last line a reporter wrote for this phase (reporters' bookkeeping).
    last_shown: float = 0.0

    @property
    def complete(self) -> bool:
        return self.total is not None and self.done >= self.total

    def elapsed(self, now: float) -> float:
        """Seconds from the start to the end, or to ``now`` while running."""
        return max(0.0, (self.ended if self.ended is not None else now) - self.started)

    def rate(self, now: float) -> float | None:
        """Units per second since the phase started; None before any unit or any time."""
        seconds = self.elapsed(now)
        if self.done <= 0 or seconds <= 0:
            return None
        return self.done / seconds

    def eta(self, now: float) -> float | None:
        """Seconds left at the average rate so far; None without a total or a rate."""
        rate = self.rate(now)
        if self.total is None or rate is None:
            return None
        return max(0, self.total - self.done) / rate

    def fraction(self) -> float | None:
        if not self.total:
            return None
        return min(1.0, self.done / self.total)


@dataclass(frozen=True, slots=True)
class PhaseUpdate:
    """What one report changed: the phase reported (None when the report was a repeat of a
    phase that already ended), whether it has just started, the phases that have just ended
    (in order; it may be among them), and the clock reading it was made at."""

    phase: PhaseState | None
    started: bool
    ended: tuple[PhaseState, ...]
    now: float


@dataclass
class PhaseTracker:
    """Which phases are running, and how long each took.

    A report of a new phase ends every running phase whose total is unknown (a file being
    loaded ends when the next step starts); a phase with a known total ends when ``done``
    reaches it, so phases that alternate (the PSI's own and peer elements, chunk by chunk) stay
    one phase each. A phase that has ended and is reported again with the same count is
    ignored; with another count it starts again, and its durations add up. :meth:`close` ends
    every phase still running. ``clock`` is any monotonic clock in seconds.
    """

    clock: Callable[[], float] = time.monotonic
    _running: dict[str, PhaseState] = field(default_factory=dict)
    _ended: dict[str, PhaseState] = field(default_factory=dict)
    _timings: dict[str, float] = field(default_factory=dict)

    def update(self, phase: str, done: int, total: int | None = None) -> PhaseUpdate:
        now = self.clock()
        state = self._running.get(phase)
        ended: list[PhaseState] = []
        started = False
        if state is None:
            last = self._ended.get(phase)
            if last is not None and last.done == done and total in (None, last.total):
                return PhaseUpdate(None, False, (), now)
            for other in list(self._running.values()):
                if other.total is None:
                    ended.append(self._end(other, now))
            state = PhaseState(phase, started=now, updated=now, last_shown=now)
            self._running[phase] = state
            self._timings.setdefault(phase, 0.0)
            started = True
        state.done = done
        if total is not None:
            state.total = total
        state.updated = now
        if state.complete:
            ended.append(self._end(state, now))
        return PhaseUpdate(state, started, tuple(ended), now)

    def close(self) -> tuple[PhaseState, ...]:
        """End every running phase (in the order they started) and return them."""
        now = self.clock()
        return tuple(self._end(state, now) for state in list(self._running.values()))

    def running(self) -> tuple[PhaseState, ...]:
        return tuple(self._running.values())

    def timings(self) -> dict[str, float]:
        """Seconds each phase took, by name in the order phases started: from its first report
        to its end (to now while it runs); a phase that ran more than once, the sum."""
        now = self.clock()
        out = dict(self._timings)
        for state in self._running.values():
            out[state.name] += state.elapsed(now)
        return out

    def _end(self, state: PhaseState, now: float) -> PhaseState:
        state.ended = now
        del self._running[state.name]
        self._ended[state.name] = state
        self._timings[state.name] += state.elapsed(now)
        return state
