"""The SQLite plumbing shared by xlink's embedded stores (audit log, approval queue, recipient
store): owner-only files, explicit transactions, and a transaction that is rolled back on any
exception — even ``KeyboardInterrupt`` — so a half-made change never reaches the file."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["SqliteStore", "connect", "transaction"]


class SqliteStore:
    """Base of the embedded stores: owns one connection and closes it as a context manager.
    Subclasses set ``_conn`` and may extend :meth:`close` (which must stay idempotent)."""

    __slots__ = ("_conn",)
    _conn: sqlite3.Connection

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the database. Idempotent."""
        self._conn.close()


def connect(path: str | Path, *, read_only: bool = False) -> sqlite3.Connection:
    """Open ``path`` with autocommit off (transactions are explicit, see :func:`transaction`).

    A new database file is created with mode 0600: these files hold audit trails, queued
    releases and released records. ``read_only`` opens an existing file without write access.
    Raises ``sqlite3.Error`` (or ``OSError``) when the file cannot be opened.
    """
    p = Path(path)
    if read_only:
        conn = sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True)
    else:
        if not p.exists():
            os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o600))
        conn = sqlite3.connect(p)
    conn.isolation_level = None
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``; ``ROLLBACK`` on any exception, which is re-raised."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
