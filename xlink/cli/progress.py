"""A dependency-free progress line for long CLI steps.

It draws on standard error only when standard error is a terminal, so ``--json`` output on
standard output and logs in CI stay clean. It never shows record contents, only counts.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """``Progress("hashing", total)(done)`` redraws ``hashing  45% 4500/10000  3.2s``."""

    def __init__(
        self, label: str, total: int | None = None, *, stream: TextIO | None = None
    ) -> None:
        self.label = label
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty()
        self._start = time.monotonic()
        self._last = 0.0

    def __call__(self, done: int, total: int | None = None) -> None:
        if total is not None:
            self.total = total
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.1 and (self.total is None or done < self.total):
            return
        self._last = now
        elapsed = now - self._start
        if self.total:
            pct = 100.0 * done / self.total
            line = f"{self.label:<24} {pct:5.1f}% {done}/{self.total}  {elapsed:.1f}s"
        else:
            line = f"{self.label:<24} {done}  {elapsed:.1f}s"
        self.stream.write("\r" + line)
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
