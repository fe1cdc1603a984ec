"""The months of a query holder (xlink-query-v1 §4.2, §5.2), mixed into
:class:`~xlink.agency._query_holder.QueryService`: each month's key and table, made whole on a
worker thread while the sessions already open are answered, and taken in one step, so that a
month that cannot be made leaves the service in the one it was."""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from xlink.agency._query_common import (
    DST_TABLE_CHECK,
    TABLE_ENTRIES_PER_SET_ELEMENT,
    _period_key,
    table_bound,
)
from xlink.crypto.oprf9497 import OprfKey
from xlink.errors import InputError
from xlink.prepare import PreparedSide
from xlink.progress import ProgressFn, stopping
from xlink.query.table import HolderTable

if TYPE_CHECKING:
    from xlink.agency._agency import Agency

__all__ = ["HolderMonths"]

log = logging.getLogger("xlink.query")


class HolderMonths:
    """The month :class:`~xlink.agency._query_holder.QueryService` answers new sessions in
    (``period``, ``table``: "" and none until a lazy service's first session) and the move to
    the next one."""

    agency: Agency
    side: PreparedSide  # the list as it is now
    period: str
    table: HolderTable
    table_path: Path
    _key: OprfKey
    _check: bytes
    _progress: ProgressFn | None
    _moving: _Move | None

    def _month_of(
        self, period: str, side: PreparedSide, stop: threading.Event | None = None
    ) -> _Month:
        """The key and table of ``period`` for the list ``side``: the saved table if it is
        this key's, brought up to date with the list, else a new one (a new month: the key
        rotates, the table with it). Changes nothing of the service (:meth:`_use` does), so it
        runs on a worker thread while other sessions are answered, and a month that cannot be
        entered leaves the service in the one it was. Once ``stop`` is set (nobody waits for
        the move any more) it ends at its next progress report."""
        progress = self._progress if stop is None else stopping(self._progress, stop)
        key = _period_key(self.agency, period)
        check = key.evaluate(DST_TABLE_CHECK)[:16]
        folder = self.agency.workdir / "query"
        folder.mkdir(exist_ok=True)
        path = folder / f"table-{period}.npz"
        table = HolderTable.load(path, key, check=check)
        if table is None:  # an entry per token: refused before the work, not after it
            self._check_bound(len(side.tokens), path)
            table = HolderTable.build(key, side.tokens, progress=progress)
        else:
            table.update(
                side.tokens,
                progress=progress,
                check_entries=lambda entries: self._check_bound(entries, path),
            )
        self._check_bound(table.entries, path)
        table.save(path, check=check)
        return _Month(period, key, check, path, table)

    def _use(self, month: _Month) -> None:
        """Answer new sessions in ``month``, with its key and table."""
        self.period, self._key, self._check = month.period, month.key, month.check
        self.table_path, self.table = month.path, month.table

    async def _enter(self, period: str) -> None:
        """Move the service to ``period`` (:meth:`_month_of` on a worker thread): the event
        loop goes on answering the sessions already open meanwhile, and sessions that start
        during the move wait for the same one. A list updated during the move is brought into
        the new table before it is used. A move that failed is tried again by the next
        session (its cause is logged for the operator); one that every session waiting for it
        stopped waiting for (their connections gone, the server stopping) is stopped."""
        moving = self._moving
        if moving is None or moving.period != period or _failed(moving.work):
            side, stop = self.side, threading.Event()
            # a thread for the move alone, which ends with it: the service keeps no pool
            builder = ThreadPoolExecutor(1, thread_name_prefix="xlink-query-month")
            work = builder.submit(self._month_of, period, side, stop)
            builder.shutdown(wait=False)
            moving = self._moving = _Move(period, side, work, stop)
        moving.waiting += 1
        try:
            month = await asyncio.shield(asyncio.wrap_future(moving.work))
        except asyncio.CancelledError:
            if moving.waiting == 1 and not moving.work.done():
                moving.stop.set()
            raise
        except Exception as exc:
            log.warning("the query table of %s cannot be made: %s", period, exc)
            raise
        finally:
            moving.waiting -= 1
            if moving.work.done() and self._moving is moving:
                self._moving = None
        if self.period == period:
            return  # another session waiting for the same move took it first
        if self.side is not moving.side:  # updated meanwhile: only its changes, here
            month.table.update(
                self.side.tokens,
                check_entries=lambda entries: self._check_bound(entries, month.path),
            )
            month.table.save(month.path, check=month.check)
        self._use(month)

    def _check_bound(self, entries: int, path: Path) -> None:
        """Refuse a table larger than an asker will fetch under the MOU (spec §6.5)."""
        bound = table_bound(self.agency, self.agency.agency_id)
        if entries > bound:
            raise InputError(
                f"the query table has {entries} entries; the MOU {self.agency.mou.id} "
                f"lets an asker fetch at most {bound} ({TABLE_ENTRIES_PER_SET_ELEMENT} times "
                "this agency's max_set_size). If the month's updates made it so (a removed "
                f"record's entries stay), delete {path} to build it again without "
                "them (askers fetch it whole); else the MOU's max_set_size is too small"
            )


def _failed(work: Future[_Month]) -> bool:
    return work.done() and (work.cancelled() or work.exception() is not None)


@dataclass
class _Move:
    """A move of the service to ``period`` under way: the list it is built from, the build
    (a thread's future, not an event loop's, so that a loop ended during a build, a service
    used from one asyncio.run after another, leaves nothing the next loop cannot wait for),
    what stops it, and the sessions waiting for it."""

    period: str
    side: PreparedSide
    work: Future[_Month]
    stop: threading.Event
    waiting: int = 0


@dataclass(frozen=True)
class _Month:
    """The key period a query service answers in: its key, the table check, the saved
    table's path and the table."""

    period: str
    key: OprfKey
    check: bytes
    path: Path
    table: HolderTable
