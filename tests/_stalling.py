"""A stalling peer for the attack tests: one that sends a little inside each idle timeout, to
hold a session, a release transfer or a query table fetch open, and a runner that times how
long the side under test lasts against it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from xlink.errors import XlinkError
from xlink.transport.stream import Connection, MemoryConnection, memory_pair


async def drip(
    conn: Connection,
    receive: Callable[[bytes], object],
    next_message: Callable[[], bytes | None],
    *,
    every: float,
    stop_after: float,
) -> None:
    """A stalling peer on ``conn``: whatever arrives goes to ``receive`` as it comes, and its
    own next message (``next_message()``, None: nothing yet) leaves one each ``every``
    seconds, until ``stop_after`` seconds have passed (or a send fails)."""

    async def read() -> None:
        while (message := await conn.receive()) is not None:
            receive(message)

    reading = asyncio.create_task(read())
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        while loop.time() - start < stop_after:
            message = next_message()
            if message is not None:
                await conn.send(message)
            await asyncio.sleep(every)
    finally:
        reading.cancel()
        await asyncio.gather(reading, return_exceptions=True)


def against_a_stalling_peer(
    victim: Callable[[MemoryConnection], Awaitable[object]],
    peer: Callable[[MemoryConnection], Awaitable[object]],
) -> tuple[XlinkError | None, float]:
    """Run ``victim`` on one end of a memory pair beside ``peer`` on the other: the xlink error
    that ended the victim (None if it returned) and the seconds it ran. The peer is cancelled
    once the victim is done."""

    async def run() -> tuple[XlinkError | None, float]:
        ours, theirs = memory_pair()
        loop = asyncio.get_running_loop()
        start = loop.time()
        stalling = asyncio.create_task(peer(theirs))  # type: ignore[arg-type]
        error: XlinkError | None = None
        try:
            await victim(ours)
        except XlinkError as exc:
            error = exc
        elapsed = loop.time() - start
        stalling.cancel()
        await asyncio.gather(stalling, return_exceptions=True)
        return error, elapsed

    return asyncio.run(run())


def long_work(progress: Callable[..., object] | None, reports: list[int], phase: str) -> None:
    """Three seconds of work that reports its progress every 10 ms, as a list's preparation or
    a query table's build does, each report counted in ``reports``: it ends early only when
    ``progress`` raises (:func:`xlink.progress.stopping`)."""
    for done in range(300):
        time.sleep(0.01)
        if progress is not None:
            progress(phase, done, 300)
        reports.append(done)


async def cancelled_after(work: Awaitable[object], delay: float) -> bool:
    """Start ``work``, cancel it after ``delay`` seconds (a connection dropped, Ctrl-C) and
    wait until it has ended; whether it ended cancelled (not done before)."""
    task = asyncio.ensure_future(work)
    await asyncio.sleep(delay)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return task.cancelled()
