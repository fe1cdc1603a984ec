"""Writing the log: checkpoint schedule, atomicity, writers sharing a file, reading back, and
an independent verifier written from docs/audit.md alone."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import struct
from datetime import timedelta, timezone
from pathlib import Path

import pytest
from _audit_support import KEY, SESSION, T0, build_log, event
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from xlink.audit import AuditEvent, AuditLog, verify_log
from xlink.crypto.keys import SigningKey


class FlakyKey(SigningKey):
    """Signs ``ok`` times, then raises ``error`` (a failure in the middle of an append)."""

    __slots__ = ("error", "ok")

    def __init__(self, seed: bytes, ok: int, error: BaseException) -> None:
        super().__init__(seed)
        self.ok = ok
        self.error = error

    def sign(self, message: bytes) -> bytes:
        if self.ok == 0:
            raise self.error
        self.ok -= 1
        return super().sign(message)


def _checkpoint_seqs(path: Path) -> list[int]:
    log = AuditLog.open(path, signing_key=None)
    try:
        return [c.seq for c in log.checkpoints()]
    finally:
        log.close()


def test_checkpoint_schedule(audit_dir: Path) -> None:
    path = build_log(audit_dir / "a.db", 10, every=4)
    assert _checkpoint_seqs(path) == [1, 5, 9, 10]
    with AuditLog.open(path, signing_key=KEY, checkpoint_every=4) as log:
        for i in range(11, 15):
            log.append(*event(i), now=T0)
        assert log.checkpoint(now=T0) is not None
        cp = log.checkpoint(now=T0 + timedelta(1))  # already one at the head: no new one
        assert cp is not None and cp.seq == 14 and cp.time == T0 and cp.prev_seq == 10
    assert _checkpoint_seqs(path) == [1, 5, 9, 10, 14]
    assert verify_log(path, KEY.verify_key).ok


def test_empty_log(audit_dir: Path) -> None:
    with AuditLog.open(audit_dir / "a.db", signing_key=KEY) as log:
        assert log.checkpoint(now=T0) is None
    report = verify_log(audit_dir / "a.db", KEY.verify_key)
    assert report.ok and report.entries == 0 and report.checkpoints == 0


def test_closing_checkpoint_carries_the_head_time(audit_dir: Path) -> None:
    path = build_log(audit_dir / "a.db", 3, every=100)
    log = AuditLog.open(path, signing_key=None)
    last = log.last_checkpoint()
    entries = list(log.entries())
    log.close()
    assert last is not None and last.seq == 3 and last.time == entries[-1].time
    KEY.verify_key.verify(last.signature, last.message())


def test_entries_read_back(audit_dir: Path) -> None:
    paris = timezone(timedelta(hours=1))
    with AuditLog.open(audit_dir / "a.db", signing_key=KEY) as log:
        written = log.append(
            AuditEvent.SIZES,
            {"session": SESSION, "own": 3, "own_padded": 1024, "peer_padded": 2048},
            now=T0.astimezone(paris),
        )
        assert written.time == T0 and written.time.tzinfo is not None
        assert list(log.entries()) == [written]
        assert dict(written.fields)["session"] == SESSION.hex()


def test_time_must_be_aware(audit_dir: Path) -> None:
    with AuditLog.open(audit_dir / "a.db", signing_key=KEY) as log, pytest.raises(ValueError):
        log.append(*event(1), now=T0.replace(tzinfo=None))


def test_read_only_without_a_signing_key(audit_dir: Path) -> None:
    path = build_log(audit_dir / "a.db", 2)
    log = AuditLog.open(path, signing_key=None)
    with pytest.raises(ValueError, match="read-only"):
        log.append(*event(3), now=T0)
    with pytest.raises(ValueError, match="read-only"):
        log.checkpoint(now=T0)
    log.close()


def test_checkpoint_interval_is_fixed_per_log(audit_dir: Path) -> None:
    path = build_log(audit_dir / "a.db", 2, every=4)
    with pytest.raises(ValueError, match="checkpoint_every=4"):
        AuditLog.open(path, signing_key=KEY, checkpoint_every=5)
    for bad in (0, -1, 10**7, True):
        with pytest.raises(ValueError):
            AuditLog.open(audit_dir / "b.db", signing_key=KEY, checkpoint_every=bad)


@pytest.mark.parametrize("error", [RuntimeError("hsm offline"), KeyboardInterrupt()])
def test_a_failure_mid_append_leaves_the_log_verifiable(
    audit_dir: Path, error: BaseException
) -> None:
    path = audit_dir / "a.db"
    seed = bytes(range(32))
    log = AuditLog.open(path, signing_key=FlakyKey(seed, 1, error), checkpoint_every=3)
    for i in (1, 2, 3):  # checkpoint at 1; the next one is due at 4
        log.append(*event(i), now=T0)
    with pytest.raises(type(error)):
        log.append(*event(4), now=T0)  # entry written, checkpoint signing fails: rolled back
    assert [e.seq for e in log.entries()] == [1, 2, 3]
    report = verify_log(path, KEY.verify_key)
    assert report.ok and report.entries == 3 and report.covered == 1
    log._key = KEY  # the signer is back
    assert log.append(*event(4), now=T0).seq == 4
    log.close()
    assert verify_log(path, KEY.verify_key).ok
    assert _checkpoint_seqs(path) == [1, 4]


def test_two_writers_on_one_file_keep_one_chain(audit_dir: Path) -> None:
    path = audit_dir / "a.db"
    a = AuditLog.open(path, signing_key=KEY, checkpoint_every=3)
    b = AuditLog.open(path, signing_key=KEY, checkpoint_every=3)
    seqs = [(a if i % 2 else b).append(*event(i), now=T0).seq for i in range(1, 9)]
    a.close()
    b.close()
    assert seqs == list(range(1, 9))
    assert verify_log(path, KEY.verify_key).ok
    assert _checkpoint_seqs(path) == [1, 4, 7, 8]


def test_append_only_triggers_stop_accidents(audit_dir: Path) -> None:
    path = build_log(audit_dir / "a.db", 2)
    conn = sqlite3.connect(path)
    for sql in ("UPDATE audit_entries SET time_us = 0", "DELETE FROM audit_checkpoints"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute(sql)
    conn.close()


def _lp(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def test_an_independent_verifier_written_from_the_docs(audit_dir: Path) -> None:
    """Recompute every hash and signature with hashlib, struct and raw Ed25519 only."""
    path = build_log(audit_dir / "a.db", 10)
    conn = sqlite3.connect(path)
    prev = bytes(32)
    heads = {}
    for seq, time_us, kind, fields, prev_hash, stored in conn.execute(
        "SELECT * FROM audit_entries ORDER BY seq"
    ):
        body = b"".join(
            _lp(name.encode())
            + (b"\x01" + struct.pack(">Q", v) if isinstance(v, int) else b"\x02" + _lp(v.encode()))
            for name, v in sorted(json.loads(fields).items())
        )
        data = (
            _lp(b"xlink/v1/audit-entry")
            + prev
            + struct.pack(">Qq", seq, time_us)
            + _lp(kind.encode())
            + struct.pack(">I", len(json.loads(fields)))
            + body
        )
        assert prev_hash == prev and hashlib.sha256(data).digest() == stored
        prev = heads[seq] = stored
    public = Ed25519PublicKey.from_public_bytes(bytes(KEY.verify_key))
    for seq, head, time_us, prev_seq, interval, signature in conn.execute(
        "SELECT * FROM audit_checkpoints ORDER BY seq"
    ):
        message = (
            _lp(b"xlink/v1/audit-checkpoint")
            + struct.pack(">Q", seq)
            + head
            + struct.pack(">qQI", time_us, prev_seq, interval)
        )
        public.verify(signature, message)
        assert heads[seq] == head
    conn.close()


def test_entries_of_some_kinds_only_are_those_entries_in_order(tmp_path: Path) -> None:
    path = build_log(tmp_path / "audit.db", n=12)
    with AuditLog.open(path, signing_key=None) as log:
        every = list(log.entries())
        wanted = {AuditEvent.MATCHES, AuditEvent.RELEASE_SENT}
        some = list(log.entries(kinds=wanted))
        assert some == [e for e in every if e.kind in wanted] and some
        assert list(log.entries(after=5, kinds=wanted)) == [e for e in some if e.seq > 5]
        assert list(log.entries(kinds=())) == []
