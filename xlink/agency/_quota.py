"""The query holder's daily quota with one partner (xlink-query-v1 §8), shared by every query
service of the agency: a ``xlink query serve`` and the hub agent's service for a job, or two
services on one workdir, each answering sessions at once, take from one count, so that
together they answer no more evaluations a day than the MOU's ``query_quota_per_day``.

The count is kept in the workdir's ``query`` folder (:data:`QUOTA_FILE`), checked and spent in
one write transaction per request (:meth:`DayQuota.take`). The audit log stays the record of
what was answered, and the count never falls below it: a day the store has no count for (the
first session of the day, or a store lost or moved aside, whether or not a service is running)
starts from the evaluations the log holds for that day, and a service starting raises the
day's count to the log's (the store is written without a sync to disk, the audit entry of
each evaluation is synced: after a crash the log may be ahead).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Final

from xlink._sqlite import setting_up, transaction
from xlink.errors import InputError, InternalProtocolError

__all__ = ["QUOTA_FILE", "DayQuota"]

QUOTA_FILE: Final = "quota.db"
"""The quota's file, in the workdir's ``query`` folder."""

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS evaluations ("
    " day TEXT NOT NULL, peer TEXT NOT NULL, used INTEGER NOT NULL, PRIMARY KEY (day, peer))"
)
_RAISE = (
    "INSERT INTO evaluations VALUES (?, ?, ?) ON CONFLICT (day, peer)"
    " DO UPDATE SET used = max(used, excluded.used)"
)


class DayQuota:
    """``quota`` evaluations a UTC day for ``peer``, counted in ``folder`` for every service
    of the agency; ``audited(day)`` is what the audit log holds for a day
    (:func:`~xlink.audit.history.query_evaluations_on`), the floor of the count, written as
    the count of ``today`` now. Raises :class:`~xlink.errors.InputError` when the file cannot
    be used; :meth:`take` and :meth:`left` raise :class:`~xlink.errors.InternalProtocolError`
    when it fails later (the caller aborts the session, audited)."""

    def __init__(
        self,
        folder: Path,
        peer: str,
        quota: int,
        audited: Callable[[date], int],
        *,
        today: date,
    ) -> None:
        self.quota = quota
        self._peer = peer
        self._audited = audited
        self._path = folder / QUOTA_FILE
        try:  # the audit log's count first: its failure is not this store's
            counted = audited(today)
        except sqlite3.ProgrammingError as exc:
            raise InputError(
                "the agency's audit log cannot be read here"
                + (
                    ": it was opened in another thread (an Agency is used from the thread that "
                    "opened it; query_service(side, lazy=True) builds the table on a worker "
                    "thread, docs/embedding.md)"
                    if "thread" in str(exc)
                    else f" ({type(exc).__name__}: is the Agency closed?)"
                )
            ) from None
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with contextlib.closing(self._connect()) as conn, transaction(conn):
                conn.execute(_RAISE, (today.isoformat(), peer, counted))
        except (sqlite3.Error, OSError) as exc:
            raise InputError(
                f"the query quota store {self._path} cannot be used ({type(exc).__name__}); "
                "move it aside: the day's count is taken from the audit log again"
            ) from None

    def _connect(self) -> sqlite3.Connection:
        with setting_up(self._path) as conn:  # closed again if its setup fails
            conn.execute("PRAGMA synchronous = OFF")  # the audit log is the durable record
            conn.execute(_SCHEMA)  # a store removed while the service runs is made again
        return conn

    def _used(self, conn: sqlite3.Connection, day: date) -> tuple[int, bool]:
        """The day's count, and whether the store held it (else the audit log's)."""
        row = conn.execute(
            "SELECT used FROM evaluations WHERE day = ? AND peer = ?", (day.isoformat(), self._peer)
        ).fetchone()
        if row is None:
            return self._audited(day), False
        return int(row[0]), True

    def left(self, day: date) -> int:
        """The evaluations left on ``day``, as every service has spent them."""
        try:
            with contextlib.closing(self._connect()) as conn:
                return max(self.quota - self._used(conn, day)[0], 0)
        except (sqlite3.Error, OSError) as exc:
            raise InternalProtocolError(f"the quota store failed: {type(exc).__name__}") from None

    def take(self, day: date, count: int) -> bool:
        """Spend ``count`` evaluations of ``day`` if that many are left (True), else none
        (False): checked and spent in one write transaction, so that two services cannot both
        spend the last of the day. Days before ``day`` are forgotten."""
        try:
            with contextlib.closing(self._connect()) as conn, transaction(conn):
                used, stored = self._used(conn, day)
                spent = used + count <= self.quota
                if spent or not stored:  # a count taken from the log is kept, spent or not
                    conn.execute("DELETE FROM evaluations WHERE day < ?", (day.isoformat(),))
                    conn.execute(
                        _RAISE, (day.isoformat(), self._peer, used + (count if spent else 0))
                    )
                return spent
        except (sqlite3.Error, OSError) as exc:
            raise InternalProtocolError(f"the quota store failed: {type(exc).__name__}") from None
