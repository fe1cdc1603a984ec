"""Helpers shared by the CLI sub-commands: output in text or JSON, progress wiring."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

from xlink.cli.progress import Progress

__all__ = ["emit_json", "progress_reporter"]


def emit_json(obj: object) -> None:
    """Print one JSON document on standard output (sorted keys, for diffable scripts)."""
    json.dump(obj, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")


def progress_reporter(enabled: bool) -> tuple[Callable[[str, int], None], Callable[[], None]]:
    """A ``(step, n)`` callback drawing one progress line per step, and a function closing it."""
    bars: dict[str, Progress] = {}

    def report(step: str, n: int) -> None:
        if not enabled:
            return
        if step not in bars:
            for bar in bars.values():
                bar.close()
            bars.clear()
            bars[step] = Progress(step)
        bars[step](n)

    def close() -> None:
        for bar in bars.values():
            bar.close()
        bars.clear()

    return report, close
