"""How xlink starts worker processes: the one start-up shared by the party's group operations
(:mod:`xlink.crypto.workers`) and token derivation (:mod:`xlink.linkage._pool`).

- Workers are started with ``spawn``: each is a new interpreter, never a fork of a process that
  holds keys and threads, and a child of the caller (so its CPU time and memory are counted in
  the caller's ``RUSAGE_CHILDREN`` once it exits, as the benchmarks read them).
- They start with the caller's ``__main__`` out of sight: multiprocessing would otherwise make
  each new process import the script the caller runs, which a script without an
  ``if __name__ == "__main__"`` guard does not survive (it would run its exchange again). The
  workers need only xlink's modules.
- Every worker starts at once, so that none starts later, when ``__main__`` is back.
- Each worker exits when the process that started it is gone: a party killed outright (SIGKILL,
  a crash) cannot shut its pool down, and its workers would otherwise wait for work forever.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Final

__all__ = ["default_worker_count", "start_pool"]

_OWNER_POLL_S: Final = 1.0


def default_worker_count() -> int:
    """The cores this process may run on (its CPU affinity where the platform tells it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - platforms without sched_getaffinity
        return max(1, os.cpu_count() or 1)


def start_pool(
    count: int,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
) -> ProcessPoolExecutor:
    """A pool of ``count`` worker processes, all started when this returns; each runs
    ``initializer(*initargs)`` first (a module-level function: it is sent by reference)."""
    pool = ProcessPoolExecutor(
        max_workers=count,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(os.getpid(), initializer, initargs),
    )
    try:
        # The pool starts one process per task submitted while none is idle: one task each.
        with _main_module_hidden():
            started = [pool.submit(os.getpid) for _ in range(count)]
        for future in started:
            future.result()
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    return pool


def _start_worker(
    owner: int, initializer: Callable[..., None] | None, initargs: tuple[Any, ...]
) -> None:
    _exit_with_owner(owner)
    if initializer is not None:
        initializer(*initargs)


def _exit_with_owner(owner: int) -> None:
    """In a worker: exit once the process that started the pool is gone."""

    def watch() -> None:
        while _alive(owner):
            time.sleep(_OWNER_POLL_S)
        os._exit(0)

    threading.Thread(target=watch, name="xlink-owner-watch", daemon=True).start()


def _alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie, dead but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):  # gone, or the pid is another user's now
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):  # no /proc on this platform
        return True


@contextlib.contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Replace ``__main__`` by an empty module while processes start (multiprocessing makes
    a new process import the script ``__main__`` came from, when it has a file)."""
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main
