"""One run at a time in an agency's working directory."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from xlink.errors import InputError

__all__ = ["workdir_lock"]


@contextlib.contextmanager
def workdir_lock(workdir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``WORKDIR/run.lock`` while the block runs, since two runs on
    one workdir would share its audit log, store, ledger and the MOU's daily budget count.
    Raises :class:`~xlink.errors.InputError` at once when another run holds it."""
    with open(workdir / "run.lock", "a", encoding="ascii") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(f"{workdir}: another xlink run is using this workdir") from None
        yield
