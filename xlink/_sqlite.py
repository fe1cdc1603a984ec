"""The SQLite plumbing shared by xlink's embedded stores (audit log, approval queue, recipient
store): owner-only files, explicit transactions, and a transaction that is rolled back on any
exception — even ``KeyboardInterrupt`` — so a half-made change never reaches the file.

A transaction opened while one is already open on the connection is a savepoint inside it
(rolled back alone on an exception), so that :class:`Batch` can hold one write transaction open
across many operations — each still all or nothing — and commit them with one sync of the file
(the release transfer: docs/transport.md, "Release transfer")."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Self

from xlink.errors import DamagedDatabase

__all__ = [
    "LOST",
    "Batch",
    "SqliteStore",
    "connect",
    "damaged_as_input",
    "setting_up",
    "transaction",
]


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
    Raises :class:`~xlink.errors.DamagedDatabase` for a file that is not a database (damaged,
    truncated, another kind of file: :func:`damaged_as_input`), ``sqlite3.Error`` (or
    ``OSError``) when the file cannot be opened otherwise (locked, unreadable).
    """
    p = Path(path)
    if read_only:
        conn = sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True)
    else:
        if not p.exists():
            os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o600))
        conn = sqlite3.connect(p)
    conn.isolation_level = None
    with _closed_on_failure(conn), damaged_as_input(p):
        conn.execute("PRAGMA schema_version")  # reads the header: refuses what is not one
    return conn


@contextmanager
def setting_up(path: str | Path, *, read_only: bool = False) -> Iterator[sqlite3.Connection]:
    """A new connection to ``path`` (:func:`connect`) for an opener to set up (its pragmas,
    tables, migrations): inside, a damaged file raises
    :class:`~xlink.errors.DamagedDatabase` (:func:`damaged_as_input`), and whatever is raised
    closes the connection first, so that a file that cannot be opened leaves none behind."""
    p = Path(path)
    conn = connect(p, read_only=read_only)
    with _closed_on_failure(conn), damaged_as_input(p):
        yield conn


@contextmanager
def _closed_on_failure(conn: sqlite3.Connection) -> Iterator[None]:
    try:
        yield
    except BaseException:
        conn.close()
        raise


@contextmanager
def damaged_as_input(path: Path) -> Iterator[None]:
    """Raise :class:`~xlink.errors.DamagedDatabase`, naming ``path``, for SQLite's "file is
    not a database" or "database disk image is malformed" inside: a damaged or foreign file
    is bad input, not a bug. Other SQLite errors (a locked database, a constraint) pass
    unchanged."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        if type(exc) is not sqlite3.DatabaseError:  # OperationalError, IntegrityError...
            raise
        raise DamagedDatabase(
            f"{path}: not a database xlink can read ({exc}): a damaged or truncated file, or "
            "another kind of file"
        ) from None


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``; ``ROLLBACK`` on any exception, which is re-raised.

    Inside a transaction already open on ``conn`` (a :class:`Batch`): a savepoint, released
    on success and rolled back to on any exception, so this part is all or nothing within the
    outer transaction, and durable when the outer one commits."""
    if conn.in_transaction:
        conn.execute("SAVEPOINT xlink_nested")
        try:
            yield
        except BaseException:
            if conn.in_transaction:  # SQLite may have rolled the whole transaction back
                conn.execute("ROLLBACK TO xlink_nested")
                conn.execute("RELEASE xlink_nested")
            raise
        conn.execute("RELEASE xlink_nested")
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


#: The message of the ``sqlite3.OperationalError`` raised when SQLite rolled back a batch's
#: transaction on its own (an I/O error, a full disk): what was written in it is gone, so
#: nothing that depends on it may be acknowledged. The same type as any other failed write.
LOST = "the batch's transaction was rolled back by SQLite"


class Batch:
    """One write transaction held open on each of several stores, committed by :meth:`flush`
    in the order given: each operation inside runs in a savepoint (:func:`transaction`), all
    or nothing as before, and becomes durable at the next flush — one sync per store instead
    of one per operation.

    The order is the order of dependence: a later store's writes are only committed once the
    earlier ones are (the audit log first: nothing is committed elsewhere whose audit entries
    are not). If committing one fails, the stores after it are rolled back and the error is
    raised. Use as a context manager: leaving it flushes, also on an exception (what was done
    before a failure stays done, as with one transaction per operation); a failure of the
    flush itself is raised. :meth:`open` begins the transactions again after a flush (a
    caller opens before each operation, so that no write lock is held while idle). A store
    already in a transaction when the batch opens (an outer batch) is left to that one."""

    __slots__ = ("_begun", "_conns")

    def __init__(self, *stores: SqliteStore) -> None:
        self._conns = tuple(store._conn for store in stores)
        self._begun: tuple[sqlite3.Connection, ...] | None = None

    @property
    def is_open(self) -> bool:
        return self._begun is not None

    def open(self) -> None:
        """Begin the transactions (nothing if they are open)."""
        if self._begun is not None:
            return
        begun: list[sqlite3.Connection] = []
        try:
            for conn in self._conns:
                if not conn.in_transaction:
                    conn.execute("BEGIN IMMEDIATE")
                    begun.append(conn)
        except BaseException:
            for conn in begun:
                conn.execute("ROLLBACK")
            raise
        self._begun = tuple(begun)

    def flush(self) -> None:
        """Commit the transactions the batch began, in order (nothing if it is not open).
        Raises ``sqlite3.OperationalError`` (:data:`LOST`) if SQLite ended one on its own,
        or the error of a failed commit, after rolling back the stores after the failed one.
        Either way the batch is then closed until :meth:`open`."""
        begun, self._begun = self._begun, None
        if begun is None:
            return
        failed: BaseException | None = None
        for conn in begun:
            if failed is not None:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                continue
            try:
                if not conn.in_transaction:
                    raise sqlite3.OperationalError(LOST)
                conn.execute("COMMIT")
            except BaseException as exc:
                failed = exc
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
        if failed is not None:
            raise failed

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.flush()
