"""The hub's schedule: every pairwise exchange it is to run, kept in SQLite so that a hub that
stops and starts again loses none and runs none twice (docs/hub.md, "Schedule").

A *round* is one exchange for every pair of agencies the multilateral MOU gives terms ("every
partner against every other"). Each exchange is a *job*: ``pending`` until both agencies are
connected and free, then ``running``, then ``done`` once both report success. A failure, a
timeout, an agency that drops or a hub restart sends it back to ``pending`` after a backoff,
until ``max_attempts``: then ``failed``. Nothing here sees a record or a token.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final, Self

from xlink._sqlite import SqliteStore, connect, setting_up, transaction
from xlink.audit._encoding import from_micros, to_micros
from xlink.crypto.rand import RandomSource
from xlink.error_codes import HubReason
from xlink.errors import InputError

__all__ = [
    "DEFAULT_MAX_ATTEMPTS",
    "MAX_CHECKPOINTS_PER_DAY",
    "MAX_CONFLICTS_KEPT",
    "MIN_EVERY",
    "JobRow",
    "JobState",
    "Schedule",
]

DEFAULT_MAX_ATTEMPTS: Final = 8
#: Contradicting checkpoints kept as evidence per (agency, log); later ones are refused alone.
MAX_CONFLICTS_KEPT: Final = 16
#: New checkpoints the hub keeps and cosigns per (agency, log) per UTC day: one comes after each
#: exchange job, and a pair runs a few a day at most; more are refused (``busy``).
MAX_CHECKPOINTS_PER_DAY: Final = 64
#: The shortest interval between scheduled rounds (``Hub(every=...)``): 48 rounds a day, each
#: checkpoint of a log cosigned.
MIN_EVERY: Final = timedelta(minutes=30)
RETRY_FIRST: Final = timedelta(seconds=2)
RETRY_MAX: Final = timedelta(minutes=10)

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rounds (
    round INTEGER PRIMARY KEY,
    created_us INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    job BLOB PRIMARY KEY,
    attempt BLOB UNIQUE,
    round INTEGER NOT NULL REFERENCES rounds(round),
    initiator TEXT NOT NULL,
    responder TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    due_us INTEGER NOT NULL,
    started_us INTEGER,
    initiator_ok INTEGER NOT NULL DEFAULT 0,
    responder_ok INTEGER NOT NULL DEFAULT 0,
    reason TEXT NOT NULL DEFAULT '',
    updated_us INTEGER NOT NULL,
    UNIQUE (round, initiator, responder)
);
CREATE TABLE IF NOT EXISTS conflicts (
    agency TEXT NOT NULL,
    log TEXT NOT NULL,
    seq INTEGER NOT NULL,
    published TEXT NOT NULL,
    received_us INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    agency TEXT NOT NULL,
    log TEXT NOT NULL,
    seq INTEGER NOT NULL,
    published TEXT NOT NULL,
    cosignature BLOB NOT NULL,
    received_us INTEGER NOT NULL,
    PRIMARY KEY (agency, log, seq)
);
"""


class JobState:
    PENDING: Final = "pending"
    RUNNING: Final = "running"
    DONE: Final = "done"
    FAILED: Final = "failed"


@dataclass(frozen=True, slots=True)
class JobRow:
    """One job. ``attempt`` names its current (or last) start: the id the hub's JOB and the
    agencies' session connections and reports carry, new at every start, so that nothing
    from an earlier attempt can act on a later one (xlink-hub-v1 §5.2)."""

    job: bytes
    attempt: bytes | None
    round: int
    initiator: str
    responder: str
    state: str
    attempts: int
    due: datetime
    reason: str

    @property
    def agencies(self) -> tuple[str, str]:
        return (self.initiator, self.responder)

    def as_json(self) -> dict[str, object]:
        return {
            "job": self.job.hex(),
            "round": self.round,
            "initiator": self.initiator,
            "responder": self.responder,
            "state": self.state,
            "attempts": self.attempts,
            "due": self.due.isoformat(),
            "reason": self.reason,
        }


_COLUMNS: Final = "job, attempt, round, initiator, responder, state, attempts, due_us, reason"


def _row(values: tuple[object, ...]) -> JobRow:
    job, attempt, rnd, ini, res, state, attempts, due_us, reason = values
    if not isinstance(job, bytes) or not isinstance(due_us, int):
        raise TypeError("not a job row")
    return JobRow(
        job,
        attempt if isinstance(attempt, bytes) else None,
        int(str(rnd)),
        str(ini),
        str(res),
        str(state),
        int(str(attempts)),
        from_micros(due_us),
        str(reason),
    )


class Schedule(SqliteStore):
    """The hub's job table (``schedule.db`` in the hub's working directory)."""

    __slots__ = ("_max_attempts",)

    def __init__(self, conn: sqlite3.Connection, max_attempts: int) -> None:
        self._conn = conn
        self._max_attempts = max_attempts

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        now: datetime,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        recover: bool = False,
    ) -> Self:
        """Open (or create) the schedule. With ``recover`` (the hub, at start, holding its
        workdir's lock): a job left ``running`` by a hub that stopped goes back to
        ``pending`` at once (reason ``hub-restarted``); it runs again, and the agencies' own
        ledgers make a second run deliver nothing twice. A tool that adds a round beside a
        running hub opens it without, so as not to pull the hub's running jobs from under
        it. Raises :class:`~xlink.errors.DamagedDatabase` if ``path`` is not a database
        xlink can read, ``sqlite3.Error`` if it cannot otherwise be used; either way the
        connection is closed."""
        with setting_up(path) as conn:
            conn.executescript(_SCHEMA)
            self = cls(conn, max_attempts)
            if recover:
                self._recover(now)
        return self

    @classmethod
    def read_only(cls, path: str | Path) -> Self:
        """Open an existing schedule to read it (``xlink hub status``) while the hub runs."""
        return cls(connect(path, read_only=True), DEFAULT_MAX_ATTEMPTS)

    def _recover(self, now: datetime) -> None:
        conn = self._conn
        with transaction(conn):
            conn.execute(
                "UPDATE jobs SET state = 'pending', initiator_ok = 0, responder_ok = 0,"
                " reason = ?, due_us = ?, updated_us = ? WHERE state = 'running'",
                (HubReason.HUB_RESTARTED.value, to_micros(now), to_micros(now)),
            )

    def bind_mou(self, digest: bytes) -> None:
        """Tie this schedule to one multilateral MOU (its digest): the first call records
        it; a later one with another digest raises :class:`~xlink.errors.InputError`, so
        that no round of one MOU is ever run under another."""
        with transaction(self._conn):
            self._conn.execute(
                "INSERT OR IGNORE INTO meta (name, value) VALUES ('mou_digest', ?)",
                (digest.hex(),),
            )
            row = self._conn.execute("SELECT value FROM meta WHERE name = 'mou_digest'").fetchone()
        if row[0] != digest.hex():
            raise InputError(
                "this hub workdir schedules exchanges under another multilateral MOU "
                f"(digest {str(row[0])[:16]}…); use a new workdir for a new MOU"
            )

    def add_round(
        self, pairs: Iterable[tuple[str, str]], *, now: datetime, rng: RandomSource
    ) -> int:
        """A new round: one pending job per pair, due ``now``. In each pair the agency first in
        sorted order answers (TLS server, PSI responder) and the other initiates. A pair whose
        job of an earlier round is still pending or running gets none: that job will do (an
        agency offline for a week does not come back to seven exchanges in a row)."""
        time_us = to_micros(now)
        with transaction(self._conn):
            cursor = self._conn.execute("INSERT INTO rounds (created_us) VALUES (?)", (time_us,))
            number = cursor.lastrowid
            if number is None:
                raise RuntimeError("SQLite gave no round number")
            waiting = set(
                self._conn.execute(
                    "SELECT responder, initiator FROM jobs WHERE state IN ('pending', 'running')"
                ).fetchall()
            )
            for pair in sorted({tuple(sorted(p)) for p in pairs}):
                if pair in waiting:
                    continue
                responder, initiator = pair
                self._conn.execute(
                    "INSERT INTO jobs (job, round, initiator, responder, state, due_us,"
                    " updated_us) VALUES (?, ?, ?, ?, 'pending', ?, ?)",
                    (rng(16), number, initiator, responder, time_us, time_us),
                )
        return number

    def last_round(self) -> tuple[int, datetime] | None:
        row = self._conn.execute(
            "SELECT round, created_us FROM rounds ORDER BY round DESC LIMIT 1"
        ).fetchone()
        return None if row is None else (int(row[0]), from_micros(int(row[1])))

    def jobs(self, *, state: str | None = None) -> list[JobRow]:
        query = f"SELECT {_COLUMNS} FROM jobs"  # noqa: S608 - constant column list
        args: tuple[object, ...] = ()
        if state is not None:
            query += " WHERE state = ?"
            args = (state,)
        rows = self._conn.execute(query + " ORDER BY round, due_us, initiator, responder", args)
        return [_row(tuple(r)) for r in rows]

    def get(self, job: bytes) -> JobRow | None:
        row = self._conn.execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE job = ?",  # noqa: S608 - constant column list
            (job,),
        ).fetchone()
        return None if row is None else _row(tuple(row))

    def runnable(self, online: set[str], busy: set[str], *, now: datetime) -> list[JobRow]:
        """Pending jobs now due whose two agencies are both connected and neither busy, in
        the order they should start (oldest round first), at most one per agency."""
        chosen: list[JobRow] = []
        taken = set(busy)
        for job in self.jobs(state=JobState.PENDING):
            if job.due > now:
                continue
            if set(job.agencies) <= online and not set(job.agencies) & taken:
                chosen.append(job)
                taken.update(job.agencies)
        return chosen

    def start(self, job: bytes, *, now: datetime, rng: RandomSource) -> bytes:
        """Start a pending job under a new attempt id, returned."""
        attempt = rng(16)
        with transaction(self._conn):
            self._conn.execute(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, started_us = ?,"
                " initiator_ok = 0, responder_ok = 0, updated_us = ?, attempt = ?"
                " WHERE job = ? AND state = 'pending'",
                (to_micros(now), to_micros(now), attempt, job),
            )
        return attempt

    def by_attempt(self, attempt: bytes) -> JobRow | None:
        """The job whose current start is ``attempt``; None for an old or unknown one."""
        row = self._conn.execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE attempt = ?",  # noqa: S608 - constant columns
            (attempt,),
        ).fetchone()
        return None if row is None else _row(tuple(row))

    def report(self, job: bytes, agency: str, *, ok: bool, reason: str, now: datetime) -> str:
        """One agency's report on a running job; returns the job's state after it (a job is
        done when both reported success; a failure sends it back for a retry)."""
        row = self.get(job)
        if row is None or row.state != JobState.RUNNING or agency not in row.agencies:
            return row.state if row is not None else ""
        if not ok:
            return self.fail(job, reason or HubReason.PEER_FAILED.value, now=now)
        column = "initiator_ok" if agency == row.initiator else "responder_ok"
        with transaction(self._conn):
            self._conn.execute(
                f"UPDATE jobs SET {column} = 1, updated_us = ? WHERE job = ?",  # noqa: S608
                (to_micros(now), job),
            )
            self._conn.execute(
                "UPDATE jobs SET state = 'done' WHERE job = ? AND initiator_ok = 1"
                " AND responder_ok = 1",
                (job,),
            )
        after = self.get(job)
        return after.state if after is not None else ""

    def fail(self, job: bytes, reason: str, *, now: datetime) -> str:
        """A running job did not finish: pending again after a backoff that doubles with each
        attempt, or failed for good after ``max_attempts``."""
        row = self.get(job)
        if row is None or row.state != JobState.RUNNING:
            return row.state if row is not None else ""
        final = row.attempts >= self._max_attempts
        delay = min(RETRY_FIRST * 2 ** max(row.attempts - 1, 0), RETRY_MAX)
        with transaction(self._conn):
            self._conn.execute(
                "UPDATE jobs SET state = ?, due_us = ?, reason = ?, initiator_ok = 0,"
                " responder_ok = 0, updated_us = ? WHERE job = ?",
                (
                    JobState.FAILED if final else JobState.PENDING,
                    to_micros(now + delay),
                    reason[:64],
                    to_micros(now),
                    job,
                ),
            )
        return JobState.FAILED if final else JobState.PENDING

    def started_before(self, moment: datetime) -> list[bytes]:
        rows = self._conn.execute(
            "SELECT job FROM jobs WHERE state = 'running' AND started_us < ?",
            (to_micros(moment),),
        )
        return [bytes(r[0]) for r in rows]

    # -- cosigned checkpoints ----------------------------------------------------------------

    def last_checkpoint(self, agency: str, log: str) -> tuple[int, str, bytes] | None:
        """The latest checkpoint kept for ``agency``'s log ``log``: (seq, its JSON, the
        hub's cosignature)."""
        row = self._conn.execute(
            "SELECT seq, published, cosignature FROM checkpoints WHERE agency = ? AND log = ?"
            " ORDER BY seq DESC LIMIT 1",
            (agency, log),
        ).fetchone()
        return None if row is None else (int(row[0]), str(row[1]), bytes(row[2]))

    def kept_checkpoint(self, agency: str, log: str, seq: int) -> tuple[str, bytes] | None:
        """The checkpoint kept for ``agency``'s log ``log`` at ``seq``: (its JSON, the hub's
        cosignature), or None."""
        row = self._conn.execute(
            "SELECT published, cosignature FROM checkpoints WHERE agency = ? AND log = ?"
            " AND seq = ?",
            (agency, log, seq),
        ).fetchone()
        return None if row is None else (str(row[0]), bytes(row[1]))

    def keep_checkpoint(
        self, agency: str, log: str, seq: int, published: str, cosignature: bytes, now: datetime
    ) -> None:
        with transaction(self._conn):
            self._conn.execute(
                "INSERT INTO checkpoints (agency, log, seq, published, cosignature,"
                " received_us) VALUES (?, ?, ?, ?, ?, ?)",
                (agency, log, seq, published, cosignature, to_micros(now)),
            )

    def keep_conflict(self, agency: str, log: str, seq: int, published: str, now: datetime) -> bool:
        """A checkpoint that contradicts what was kept (an earlier or equal seq with other
        content, or another audit key): evidence of a rewritten log, kept, never cosigned.
        The same one again is not kept twice, and at most :data:`MAX_CONFLICTS_KEPT` are kept
        per log: the first ones are the evidence, and a member that repeats them must not grow
        the hub's database without bound. Returns whether it was kept."""
        with transaction(self._conn):
            kept = self._conn.execute(
                "SELECT COUNT(*), SUM(seq = ? AND published = ?) FROM conflicts"
                " WHERE agency = ? AND log = ?",
                (seq, published, agency, log),
            ).fetchone()
            if int(kept[0]) >= MAX_CONFLICTS_KEPT or int(kept[1] or 0):
                return False
            self._conn.execute(
                "INSERT INTO conflicts (agency, log, seq, published, received_us)"
                " VALUES (?, ?, ?, ?, ?)",
                (agency, log, seq, published, to_micros(now)),
            )
        return True

    def checkpoints_on(self, agency: str, log: str, day: datetime) -> int:
        """How many checkpoints of ``agency``'s log ``log`` were kept on ``day``'s UTC day."""
        start = day.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        row = self._conn.execute(
            "SELECT COUNT(*) FROM checkpoints WHERE agency = ? AND log = ?"
            " AND received_us >= ? AND received_us < ?",
            (agency, log, to_micros(start), to_micros(start + timedelta(days=1))),
        ).fetchone()
        return int(row[0])

    def conflicts(self, agency: str) -> int:
        """How many contradicting checkpoints ``agency`` offered."""
        row = self._conn.execute(
            "SELECT COUNT(*) FROM conflicts WHERE agency = ?", (agency,)
        ).fetchone()
        return int(row[0])

    def checkpoints(self, agency: str, log: str) -> list[str]:
        """The checkpoints ``agency`` gave for its log of exchanges with ``log``, as the JSON
        of :meth:`PublishedCheckpoint.to_json`, oldest first."""
        rows = self._conn.execute(
            "SELECT published FROM checkpoints WHERE agency = ? AND log = ? ORDER BY seq",
            (agency, log),
        )
        return [str(r[0]) for r in rows]
