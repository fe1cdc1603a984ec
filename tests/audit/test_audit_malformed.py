"""Whatever the file holds, verification answers ok=False with a reason, never an exception."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from _audit_support import KEY, attacker, build_log

from xlink.audit import verify_log

CP_COLUMNS = "seq, head_hash, time_us, prev_seq, interval, signature"


def _plain_tables(path: Path, entry: tuple[object, ...], checkpoint: tuple[object, ...]) -> None:
    """Tables without types (not STRICT), as an attacker or a foreign tool might create."""
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE audit_entries (seq, time_us, kind, fields, prev_hash, entry_hash)"
        )
        conn.execute(f"CREATE TABLE audit_checkpoints ({CP_COLUMNS})")
        conn.execute("INSERT INTO audit_entries VALUES (?, ?, ?, ?, ?, ?)", entry)
        conn.execute("INSERT INTO audit_checkpoints VALUES (?, ?, ?, ?, ?, ?)", checkpoint)
    conn.close()


GOOD_ENTRY = (1, 0, "SESSION_COMPLETED", '{"session":"' + "00" * 16 + '"}', bytes(32), bytes(32))
GOOD_CP = (1, bytes(32), 0, 0, 4, bytes(64))


@pytest.mark.parametrize(
    ("entry", "checkpoint", "first_bad"),
    [
        ((1.5, *GOOD_ENTRY[1:]), GOOD_CP, 1),  # seq not an integer
        (("1", *GOOD_ENTRY[1:]), GOOD_CP, 1),
        ((1, "noon", *GOOD_ENTRY[2:]), GOOD_CP, 1),  # time as text
        ((1, 2**62 * 1.0, *GOOD_ENTRY[2:]), GOOD_CP, 1),
        ((*GOOD_ENTRY[:4], "00" * 32, bytes(32)), GOOD_CP, 1),  # hash as text
        ((*GOOD_ENTRY[:4], bytes(31), bytes(32)), GOOD_CP, 1),
        ((1, 0, 7, *GOOD_ENTRY[3:]), GOOD_CP, 1),  # kind not text
        ((1, 0, "NOT_A_KIND", *GOOD_ENTRY[3:]), GOOD_CP, 1),
        ((1, 0, "SESSION_COMPLETED", b"{}", bytes(32), bytes(32)), GOOD_CP, 1),
        ((1, 0, "SESSION_COMPLETED", "not json", bytes(32), bytes(32)), GOOD_CP, 1),
        ((1, 0, "SESSION_COMPLETED", "[" * 100_000, bytes(32), bytes(32)), GOOD_CP, 1),
        ((1, 0, "SESSION_COMPLETED", '{"session":1.0}', bytes(32), bytes(32)), GOOD_CP, 1),
        ((1, 0, "SESSION_COMPLETED", '["session"]', bytes(32), bytes(32)), GOOD_CP, 1),
        ((0, *GOOD_ENTRY[1:]), GOOD_CP, 0),  # seq out of range
        ((-(2**63), *GOOD_ENTRY[1:]), GOOD_CP, -(2**63)),
        (GOOD_ENTRY, ("x", *GOOD_CP[1:]), None),  # checkpoint seq not an integer
        (GOOD_ENTRY, (0, *GOOD_CP[1:]), None),
    ],
)
def test_malformed_rows(
    audit_dir: Path,
    entry: tuple[object, ...],
    checkpoint: tuple[object, ...],
    first_bad: int | None,
) -> None:
    path = audit_dir / "odd.db"
    _plain_tables(path, entry, checkpoint)
    report = verify_log(path, KEY.verify_key)
    assert not report.ok and report.reason
    assert report.first_bad_seq == first_bad, report.reason


@pytest.mark.parametrize("column", ["head_hash", "time_us", "prev_seq", "interval", "signature"])
def test_malformed_checkpoint_columns(audit_dir: Path, column: str) -> None:
    path = build_log(audit_dir / "a.db")
    with attacker(path) as db:
        db.execute("CREATE TABLE t AS SELECT * FROM audit_checkpoints")
        db.execute("DROP TABLE audit_checkpoints")
        db.execute("ALTER TABLE t RENAME TO audit_checkpoints")
        db.execute(f"UPDATE audit_checkpoints SET {column} = 'text' WHERE seq = 5")
    report = verify_log(path, KEY.verify_key)
    assert not report.ok and report.first_bad_seq == 2, report.reason


def _write(content: bytes) -> Callable[[Path], object]:
    return lambda path: path.write_bytes(content)


def _sql(*statements: str) -> Callable[[Path], object]:
    def make(path: Path) -> None:
        with sqlite3.connect(path) as conn:
            for statement in statements:
                conn.execute(statement)
        conn.close()

    return make


@pytest.mark.parametrize(
    "make",
    [
        _write(b""),  # an empty file is an empty SQLite database: no tables
        _write(b"this is not a database, but it is long enough to be mistaken for one" * 20),
        _write(b"SQLite format 3\x00" + b"\xff" * 4000),
        _sql("CREATE TABLE audit_entries (seq INTEGER PRIMARY KEY)"),
        _sql(f"CREATE TABLE audit_checkpoints ({CP_COLUMNS})"),
    ],
)
def test_unusable_databases(audit_dir: Path, make: Callable[[Path], object]) -> None:
    path = audit_dir / "odd.db"
    make(path)
    report = verify_log(path, KEY.verify_key)
    assert not report.ok and report.reason and report.first_bad_seq is None


def test_a_missing_file_is_an_error_not_a_verdict(audit_dir: Path) -> None:
    with pytest.raises(FileNotFoundError):
        verify_log(audit_dir / "nope.db", KEY.verify_key)
    assert not (audit_dir / "nope.db").exists()  # and verification created nothing


def test_verification_never_writes(audit_dir: Path) -> None:
    path = build_log(audit_dir / "a.db")
    before = path.read_bytes()
    path.chmod(0o444)
    try:
        assert verify_log(path, KEY.verify_key).ok
    finally:
        path.chmod(0o644)
    assert path.read_bytes() == before
