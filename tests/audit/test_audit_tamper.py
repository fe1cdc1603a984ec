"""One test per kind of tampering: each names exactly the first bad entry (docs/audit.md,
"What verification detects"). The standard log has 10 entries, checkpoint_every=4, and
checkpoints at entries 1, 5, 9 and 10 (the closing one)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from _audit_support import KEY, OTHER_KEY, attacker, build_log, replace_entries, rows

from xlink.audit import VerifyReport, verify_log
from xlink.audit._encoding import encode_fields, entry_hash


@pytest.fixture
def log(audit_dir: Path) -> Path:
    return build_log(audit_dir / "audit.db")


def _bad(path: Path, seq: int, *, key: object = KEY) -> VerifyReport:
    report = verify_log(path, KEY.verify_key if key is KEY else OTHER_KEY.verify_key)
    assert not report.ok
    assert report.first_bad_seq == seq, report.reason
    assert report.reason is not None and report.reason.startswith(f"entry {seq}: ")
    return report


def _rehash(rows_: list[list[object]], start: int, stop: int | None = None) -> None:
    """Recompute hashes and links of rows ``start:stop``, as a format-aware attacker would."""
    for i in range(start, len(rows_) if stop is None else stop):
        seq, time_us, kind, fields, _prev, _hash = rows_[i]
        prev = rows_[i - 1][5] if i else bytes(32)
        assert isinstance(fields, str) and isinstance(kind, str)
        digest = entry_hash(
            prev,  # type: ignore[arg-type]
            seq,  # type: ignore[arg-type]
            time_us,  # type: ignore[arg-type]
            kind,
            json.loads(fields),
        )
        rows_[i] = [seq, time_us, kind, fields, prev, digest]


def test_intact_log_verifies(log: Path) -> None:
    assert verify_log(log, KEY.verify_key) == VerifyReport(True, 10, 4, None, None, covered=10)


def test_modify_a_field(log: Path) -> None:
    with attacker(log) as db:
        db.execute("""UPDATE audit_entries SET fields = replace(fields, '"pairs":2', '"pairs":3')
                      WHERE seq = 4""")
    assert "hash does not match its content" in (_bad(log, 4).reason or "")


def test_modify_a_time(log: Path) -> None:
    with attacker(log) as db:
        db.execute("UPDATE audit_entries SET time_us = time_us - 1 WHERE seq = 6")
    _bad(log, 6)


def test_modify_a_kind(log: Path) -> None:
    with attacker(log) as db:
        db.execute("UPDATE audit_entries SET kind = 'RECEIPT_SENT' WHERE seq = 6")
    _bad(log, 6)  # RELEASE_SENT -> RECEIPT_SENT: same fields, so only the hash tells


def test_modify_a_stored_hash(log: Path) -> None:
    with attacker(log) as db:
        db.execute("UPDATE audit_entries SET entry_hash = zeroblob(32) WHERE seq = 3")
    _bad(log, 3)


def test_modify_an_entry_and_rehash_it(log: Path) -> None:
    with attacker(log) as db:
        table = [list(r) for r in rows(db, "audit_entries")]
        table[5][1] = int(table[5][1]) + 60_000_000  # type: ignore[call-overload]
        _rehash(table, 5, 6)  # entry 7 still names the original entry 6
        replace_entries(db, table)
    assert "chained to" in (_bad(log, 6).reason or "")


def test_rewrite_the_chain_after_a_modification(log: Path) -> None:
    with attacker(log) as db:
        table = [list(r) for r in rows(db, "audit_entries")]
        table[5][3] = encode_fields(
            {"session": "00" * 16, "handle": "11" * 16, "digest": "22" * 32}
        )
        _rehash(table, 5)
        replace_entries(db, table)
    # The chain is consistent again, so only the checkpoints tell: 1..5 are vouched for by the
    # one at 5, and 6..9 no longer match the one at 9. Had entry 7 been the one modified, entry
    # 6 would still be named: the earliest entry that may differ.
    assert "do not match the signed checkpoint at entry 9" in (_bad(log, 6).reason or "")


def test_delete_an_entry_in_the_middle(log: Path) -> None:
    with attacker(log) as db:
        db.execute("DELETE FROM audit_entries WHERE seq = 6")
    assert "is missing" in (_bad(log, 6).reason or "")


def test_delete_an_entry_and_renumber(log: Path) -> None:
    with attacker(log) as db:
        table = [list(r) for r in rows(db, "audit_entries")]
        del table[5]
        for i, row in enumerate(table):
            row[0] = i + 1
        replace_entries(db, table)
    _bad(log, 6)


def test_insert_a_forged_entry(log: Path) -> None:
    forged = [7, 0, "RECORD_READ", encode_fields({"handle": "ab" * 16, "purpose": "x"})]
    with attacker(log) as db:
        table = [list(r) for r in rows(db, "audit_entries")]
        for row in table[6:]:
            row[0] = int(row[0]) + 1  # type: ignore[call-overload]
        table.insert(6, [*forged, table[5][5], hashlib.sha256(b"forged").digest()])
        replace_entries(db, table)
    _bad(log, 7)


def test_insert_a_well_formed_forged_entry(log: Path) -> None:
    """Correctly hashed and linked: entry 8 betrays it, being the former 7 renumbered."""
    forged = [7, 0, "RECORD_READ", encode_fields({"handle": "ab" * 16, "purpose": "x"})]
    with attacker(log) as db:
        table = [list(r) for r in rows(db, "audit_entries")]
        for row in table[6:]:
            row[0] = int(row[0]) + 1  # type: ignore[call-overload]
        table.insert(6, [*forged, table[5][5], b""])
        _rehash(table, 6)
        original = rows(db, "audit_entries")
        for i in range(7, len(table)):  # later entries keep their stored hashes and links
            table[i][4:] = original[i - 1][4:]
        replace_entries(db, table)
    assert "was inserted" in (_bad(log, 7).reason or "")


def test_reorder_two_entries(log: Path) -> None:
    with attacker(log) as db:
        table = [list(r) for r in rows(db, "audit_entries")]
        table[5][1:], table[6][1:] = table[6][1:], table[5][1:]
        replace_entries(db, table)
    _bad(log, 6)


@pytest.mark.parametrize(
    ("sql", "first_bad", "reason"),
    [
        pytest.param("DELETE FROM audit_entries WHERE seq >= 8", 8, "truncated", id="truncate"),
        pytest.param("DELETE FROM audit_entries WHERE seq = 10", 10, "", id="drop-last-entry"),
        pytest.param(
            "DELETE FROM audit_checkpoints WHERE seq = 5",
            5,
            "checkpoint was deleted",
            id="delete-checkpoint",
        ),
        pytest.param(
            "DELETE FROM audit_checkpoints WHERE seq = 1", 1, "", id="delete-first-checkpoint"
        ),
        pytest.param("DELETE FROM audit_checkpoints", 1, "", id="delete-every-checkpoint"),
    ],
)
def test_deletions(log: Path, sql: str, first_bad: int, reason: str) -> None:
    with attacker(log) as db:
        db.execute(sql)
    assert reason in (_bad(log, first_bad).reason or "")


def test_delete_the_last_checkpoint_when_a_long_tail_remains(audit_dir: Path) -> None:
    path = build_log(audit_dir / "audit.db", 8, close=False)  # checkpoints at 1, 5; tail 6..8
    assert verify_log(path, KEY.verify_key).ok
    with attacker(path) as db:
        db.execute("DELETE FROM audit_checkpoints WHERE seq = 5")
    assert "checkpoint was deleted" in (_bad(path, 2).reason or "")


def test_forge_a_checkpoint_signature(log: Path) -> None:
    with attacker(log) as db:
        db.execute("UPDATE audit_checkpoints SET signature = randomblob(64) WHERE seq = 9")
    assert "does not verify" in (_bad(log, 6).reason or "")


def test_move_a_checkpoint_head(log: Path) -> None:
    with attacker(log) as db:
        head = db.execute("SELECT entry_hash FROM audit_entries WHERE seq = 8").fetchone()[0]
        db.execute("UPDATE audit_checkpoints SET head_hash = ?, seq = 8 WHERE seq = 9", (head,))
    _bad(log, 6)


def test_insert_a_forged_checkpoint(log: Path) -> None:
    with attacker(log) as db:
        head = db.execute("SELECT entry_hash FROM audit_entries WHERE seq = 7").fetchone()[0]
        db.execute("INSERT INTO audit_checkpoints VALUES (7, ?, 0, 5, 4, randomblob(64))", (head,))
    _bad(log, 6)


def test_swap_the_verify_key(log: Path) -> None:
    assert "wrong key" in (_bad(log, 1, key=OTHER_KEY).reason or "")


def test_a_log_signed_by_another_key(audit_dir: Path) -> None:
    path = build_log(audit_dir / "other.db", key=OTHER_KEY)
    _bad(path, 1)


# -- what needs an external anchor (docs/audit.md): these verify, and say so -----------------


def test_truncating_the_unsigned_tail_is_not_detected(audit_dir: Path) -> None:
    path = build_log(audit_dir / "audit.db", 8, close=False)  # checkpoints at 1, 5
    with attacker(path) as db:
        db.execute("DELETE FROM audit_entries WHERE seq > 6")
    report = verify_log(path, KEY.verify_key)
    assert report.ok and report.entries == 6 and report.covered == 5


def test_truncating_back_to_a_checkpoint_with_its_successors_is_not_detected(
    log: Path,
) -> None:
    with attacker(log) as db:
        db.execute("DELETE FROM audit_entries WHERE seq > 7")
        db.execute("DELETE FROM audit_checkpoints WHERE seq > 5")
    report = verify_log(log, KEY.verify_key)
    assert report.ok and report.entries == 7 and report.covered == 5


def test_deleting_the_closing_checkpoint_is_not_detected(log: Path) -> None:
    """Every entry is still intact; entry 10 is merely no longer signed."""
    with attacker(log) as db:
        db.execute("DELETE FROM audit_checkpoints WHERE seq = 10")
    report = verify_log(log, KEY.verify_key)
    assert report.ok and report.covered == 9
