"""xlink._sqlite: a transaction inside a transaction is a savepoint, and :class:`Batch` holds one
write transaction open on several stores and commits them in order (the release transfer's
batched commits)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from xlink._sqlite import LOST, Batch, SqliteStore, connect, transaction


class Store(SqliteStore):
    """A one-table store, as the audit log, the store and the ledger are built."""

    __slots__ = ("path",)

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn = connect(path)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER PRIMARY KEY) STRICT")

    def add(self, x: int) -> None:
        """One operation: all or nothing, as every write of the stores is."""
        with transaction(self._conn):
            self._conn.execute("INSERT INTO t (x) VALUES (?)", (x,))


def seen(path: Path) -> list[int]:
    """What another connection sees: only what is committed."""
    conn = sqlite3.connect(path)
    try:
        return [x for (x,) in conn.execute("SELECT x FROM t ORDER BY x")]
    finally:
        conn.close()


def test_operations_in_a_batch_are_committed_together_at_the_flush(tmp_path: Path) -> None:
    with Store(tmp_path / "a.db") as a, Store(tmp_path / "b.db") as b:
        batch = Batch(a, b)
        batch.open()
        for x in range(3):
            a.add(x)
            b.add(10 + x)
        assert seen(a.path) == seen(b.path) == []
        batch.flush()
        assert seen(a.path) == [0, 1, 2] and seen(b.path) == [10, 11, 12]
        a.add(3)  # after a flush, before open: on its own, as without a batch
        assert seen(a.path) == [0, 1, 2, 3]
        batch.open()
        batch.open()  # nothing if open
        b.add(13)
        batch.flush()
        batch.flush()  # nothing if closed
        assert seen(b.path) == [10, 11, 12, 13]


def test_an_operation_that_fails_in_a_batch_is_undone_alone(tmp_path: Path) -> None:
    with Store(tmp_path / "a.db") as a, Batch(a):
        a.add(1)
        with pytest.raises(sqlite3.IntegrityError):
            a.add(1)  # its savepoint is rolled back, the batch goes on
        with pytest.raises(KeyError), transaction(a._conn):
            a._conn.execute("INSERT INTO t (x) VALUES (2)")
            raise KeyError("half-made")
        a.add(3)
    assert seen(a.path) == [1, 3]


def test_leaving_a_batch_on_an_exception_keeps_what_was_done(tmp_path: Path) -> None:
    with Store(tmp_path / "a.db") as a:
        with pytest.raises(RuntimeError), Batch(a):
            a.add(1)
            raise RuntimeError("the transfer failed")
        assert seen(a.path) == [1]


def test_a_lost_transaction_commits_nothing_after_it(tmp_path: Path) -> None:
    """The first store's transaction ended under the batch (SQLite rolls back on some I/O
    errors): the flush raises, and the stores after it (which depend on it) are rolled back."""
    with Store(tmp_path / "a.db") as a, Store(tmp_path / "b.db") as b:
        batch = Batch(a, b)
        batch.open()
        a.add(1)
        b.add(2)
        a._conn.execute("ROLLBACK")
        with pytest.raises(sqlite3.OperationalError, match=LOST):
            batch.flush()
        assert seen(a.path) == seen(b.path) == []
        assert not a._conn.in_transaction and not b._conn.in_transaction
        batch.open()  # usable again
        a.add(3)
        batch.flush()
        assert seen(a.path) == [3]


def test_a_batch_inside_a_batch_leaves_the_commit_to_the_outer_one(tmp_path: Path) -> None:
    with Store(tmp_path / "a.db") as a, Store(tmp_path / "b.db") as b:
        outer = Batch(a)
        outer.open()
        with Batch(a, b):
            a.add(1)
            b.add(2)
        assert seen(a.path) == [] and seen(b.path) == [2]
        outer.flush()
        assert seen(a.path) == [1]
