"""One run at a time in an agency's working directory."""

from __future__ import annotations

import fcntl
import functools
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, cast

from xlink.errors import InputError
from xlink.prepare import StrPath

__all__ = ["one_run_per_workdir"]

P = ParamSpec("P")
T = TypeVar("T")


def one_run_per_workdir(
    run: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    """Decorate a coroutine function taking a keyword ``workdir``: hold an exclusive lock on
    ``WORKDIR/run.lock`` for the whole call, since two runs on one workdir would share its audit
    log, store, queue and the MOU's daily budget count. The call raises
    :class:`~xlink.errors.InputError` at once when another run holds it."""

    @functools.wraps(run)
    async def locked(*args: P.args, **kwargs: P.kwargs) -> T:
        work = Path(cast("StrPath", kwargs["workdir"]))
        work.mkdir(parents=True, exist_ok=True)
        with open(work / "run.lock", "a", encoding="ascii") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise InputError(f"{work}: another xlink run is using this workdir") from None
            result: T = await run(*args, **kwargs)
            return result

    return locked
