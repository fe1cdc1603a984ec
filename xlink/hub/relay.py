"""The hub's relay (xlink-hub-v1 §5): one side of a job waiting at the hub, and the splice
that copies two such sides' bytes into each other — bounded in idle time, after a half-close,
and (for a query) in all. What passes is the two agencies' own TLS: the relay never looks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from xlink.hub.wire import Spliced, encode
from xlink.protocol.framing import encode_frame

__all__ = ["COPY_SIZE", "HALF_CLOSE_GRACE", "SPLICE_IDLE", "Waiting", "splice"]

log = logging.getLogger("xlink.hub")

SPLICE_IDLE: Final = 300.0
"""Seconds a spliced connection may carry nothing in either direction before it is closed."""
HALF_CLOSE_GRACE: Final = 5.0
"""Seconds the other direction may go on after one side closed its half of a splice."""
COPY_SIZE: Final = 1 << 16

Capture = Callable[[str, bytes], None]


@dataclass(slots=True)
class Waiting:
    """One side of a job (or query) at the hub: woken when spliced or when the job ends."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    spliced: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    aborted: bool = False

    def abort(self) -> None:
        self.aborted = True
        self.spliced.set()
        self.finished.set()
        self.writer.transport.abort()


async def splice(
    job: bytes,
    first: tuple[str, Waiting],
    second: tuple[str, Waiting],
    *,
    deadline: float | None,
    capture: Capture | None,
) -> None:
    """Send SPLICED to both sides, then copy each one's bytes to the other until one side
    closes (the other then has :data:`HALF_CLOSE_GRACE`), a direction idles past
    :data:`SPLICE_IDLE`, or ``deadline`` seconds pass (None: no limit); then close both."""
    (a, wa), (b, wb) = first, second
    for w in (wa, wb):
        w.writer.write(encode_frame(encode(Spliced())))
    log.info("job %s: spliced %s and %s", job.hex()[:8], a, b)
    copies = {
        asyncio.ensure_future(_copy(wa.reader, wb.writer, f"relay:{a}>{b}", capture)),
        asyncio.ensure_future(_copy(wb.reader, wa.writer, f"relay:{b}>{a}", capture)),
    }
    try:
        async with asyncio.timeout(deadline):
            _, pending = await asyncio.wait(copies, return_when=asyncio.FIRST_COMPLETED)
            if pending:  # one side closed its half: the other may finish, briefly
                await asyncio.wait(pending, timeout=HALF_CLOSE_GRACE)
    except TimeoutError:
        log.info("job %s: the splice reached its deadline", job.hex()[:8])
    finally:
        for task in copies:
            task.cancel()
        await asyncio.gather(*copies, return_exceptions=True)
        for w in (wa, wb):
            w.writer.transport.abort()


async def _copy(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    where: str,
    capture: Capture | None,
) -> None:
    try:
        while True:
            async with asyncio.timeout(SPLICE_IDLE):
                data = await reader.read(COPY_SIZE)
            if not data:
                break
            if capture is not None:
                capture(where, data)
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (OSError, ConnectionError, TimeoutError):
        writer.transport.abort()
