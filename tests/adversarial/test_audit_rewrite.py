"""An operator who holds the audit key rewrites its own audit log (DESIGN §7, insiders; issue
14): alone, the log still verifies; against the checkpoints its partner kept from its receipts
(xlink-release-v1 §8), it does not. Each attack below verifies as intact without the partner's
checkpoints — the first assertion of each test shows it — so each test fails on a verifier that
takes none (docs/audit.md, "Hash chain or Merkle log?").

The partner's copies go the real way: our log publishes a checkpoint at each receipt
(``AuditLog.publish``), the partner keeps each one in its own log
(``keep_partner_checkpoint``), exports them (``partner_checkpoints`` / ``dump_checkpoints``)
and the auditor loads the file (``load_checkpoints``)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from xlink.audit import (
    AuditEvent,
    AuditLog,
    PublishedCheckpoint,
    dump_checkpoints,
    load_checkpoints,
    verify_log,
)
from xlink.crypto.keys import SigningKey

US, CA = "US-DHS", "CA-RCMP"
AUDIT_KEY = SigningKey(hashlib.sha256(b"audit-rewrite/US-DHS audit key").digest())
PARTNER_KEY = SigningKey(hashlib.sha256(b"audit-rewrite/CA-RCMP audit key").digest())
OTHER_KEY = SigningKey(hashlib.sha256(b"audit-rewrite/someone else").digest())
T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
SESSION = bytes.fromhex("5e" * 16)
EVERY = 10


def _event(i: int) -> tuple[AuditEvent, dict[str, object]]:
    """Entry ``i`` of a day of exchanges: every third entry a RELEASE_SENT."""
    handle = i.to_bytes(16, "big")
    if i % 3 == 0:
        return AuditEvent.RELEASE_SENT, {"session": SESSION, "handle": handle, "digest": bytes(32)}
    if i % 3 == 1:
        return AuditEvent.RECORD_READ, {"handle": handle, "purpose": "border-screening"}
    return AuditEvent.RECEIPT_SENT, {"session": SESSION, "handle": handle, "digest": bytes(32)}


def _write_log(path: Path, n: int, receipts_at: tuple[int, ...]) -> list[PublishedCheckpoint]:
    """US-DHS's log of ``n`` entries; after entry k in ``receipts_at`` it issues a receipt,
    which carries the checkpoint it publishes then. Returns those checkpoints."""
    carried = []
    with AuditLog.open(path, signing_key=AUDIT_KEY, checkpoint_every=EVERY) as log:
        for i in range(1, n + 1):
            kind, fields = _event(i)
            log.append(kind, fields, now=T0 + timedelta(minutes=i))
            if i in receipts_at:
                published = log.publish(now=T0 + timedelta(minutes=i, seconds=30))
                assert published is not None
                carried.append(published)
    return carried


def _partner_export(work: Path, carried: list[PublishedCheckpoint]) -> Path:
    """CA-RCMP keeps each checkpoint as its receipt verifies, then exports them for US-DHS's
    auditor: the file the auditor is given."""
    with AuditLog.open(work / "ca-audit.db", signing_key=PARTNER_KEY) as partner:
        for n, published in enumerate(carried):
            assert partner.keep_partner_checkpoint(US, published, now=T0 + timedelta(hours=n))
        held = partner.partner_checkpoints(US)
    out = work / "us-checkpoints.json"
    out.write_text(dump_checkpoints(US, held))
    return out


def _anchors(path: Path) -> tuple[PublishedCheckpoint, ...]:
    return load_checkpoints(path.read_bytes()).checkpoints


def _rewrite_without(path: Path, kind: AuditEvent) -> int:
    """What an operator holding the audit key can do alone: drop every ``kind`` entry, then
    re-chain and re-sign the rest into a fresh file at ``path``. Returns the entries kept."""
    with AuditLog.open(path, signing_key=None) as log:
        kept = [e for e in log.entries() if e.kind is not kind]
    path.unlink()
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    with AuditLog.open(path, signing_key=AUDIT_KEY, checkpoint_every=EVERY) as log:
        for entry in kept:
            log.append(entry.kind, dict(entry.fields), now=entry.time)
    return len(kept)


def test_rechained_and_resigned_log_without_release_sent_is_detected(scratch: Path) -> None:
    """(i) 443 RELEASE_SENT entries removed, in the issue: here every third entry, the log
    re-chained and every checkpoint re-signed with the audit key."""
    path = scratch / "us-audit.db"
    carried = _write_log(path, 60, receipts_at=(2, 25, 47))
    export = _partner_export(scratch, carried)
    left = _rewrite_without(path, AuditEvent.RELEASE_SENT)
    assert left == 40
    assert verify_log(path, AUDIT_KEY.verify_key).ok  # alone, the rewrite passes

    report = verify_log(path, AUDIT_KEY.verify_key, partner_checkpoints=_anchors(export))
    assert not report.ok
    # The partner's checkpoint at entry 2 still matches (entries 1..2 were kept as they
    # were); the first RELEASE_SENT removed was entry 3: that is the first entry named.
    assert report.anchored == 2 and report.first_bad_seq == 3
    assert report.reason == (
        "entry 3: entries 3..25 do not match the partner's checkpoint at entry 25 "
        "(the log was rewritten and re-signed)"
    )


def test_truncation_back_to_an_earlier_checkpoint_is_detected(scratch: Path) -> None:
    """(ii) Entries and checkpoints after the checkpoint at entry 25 deleted: back to exactly
    a checkpoint, so nothing in the file says anything is missing."""
    path = scratch / "us-audit.db"
    carried = _write_log(path, 45, receipts_at=(5, 33))
    export = _partner_export(scratch, carried)
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"):
            db.execute(f'DROP TRIGGER "{name}"')
        assert db.execute("SELECT 1 FROM audit_checkpoints WHERE seq = 25").fetchone()
        db.execute("DELETE FROM audit_entries WHERE seq > 25")
        db.execute("DELETE FROM audit_checkpoints WHERE seq > 25")
    assert verify_log(path, AUDIT_KEY.verify_key).ok

    report = verify_log(path, AUDIT_KEY.verify_key, partner_checkpoints=_anchors(export))
    assert not report.ok and report.first_bad_seq == 26 and report.anchored == 5
    assert report.reason == (
        "entry 26: is missing (the log was truncated or replaced: the partner holds a "
        "checkpoint of entry 33)"
    )


@pytest.mark.parametrize("new_entries", [0, 3])
def test_a_log_deleted_and_replaced_by_a_new_one_is_detected(
    scratch: Path, new_entries: int
) -> None:
    """(iii) The file deleted and a new log started with the same key: empty, or with a few
    entries of its own. Both verify alone; the partner's checkpoints name entry 1."""
    path = scratch / "us-audit.db"
    carried = _write_log(path, 30, receipts_at=(1, 12))
    export = _partner_export(scratch, carried)
    for file in scratch.glob("us-audit.db*"):
        file.unlink()
    with AuditLog.open(path, signing_key=AUDIT_KEY, checkpoint_every=EVERY) as log:
        for i in range(1, new_entries + 1):
            kind, fields = _event(i + 100)
            log.append(kind, fields, now=T0 + timedelta(days=1, minutes=i))
    alone = verify_log(path, AUDIT_KEY.verify_key)
    assert alone.ok and alone.entries == new_entries

    report = verify_log(path, AUDIT_KEY.verify_key, partner_checkpoints=_anchors(export))
    assert not report.ok and report.first_bad_seq == 1 and report.anchored == 0
    assert report.reason is not None and report.reason.startswith("entry 1: ")


def test_a_forged_partner_checkpoint_is_reported_not_trusted(scratch: Path) -> None:
    """(iv) A checkpoint added to the partner's file with a made-up signature (here: one that
    would accuse the intact log of truncation), and one signed by another key: neither is
    used as evidence; both make the verification fail, with no entry named."""
    path = scratch / "us-audit.db"
    carried = _write_log(path, 30, receipts_at=(4, 17))
    export = _partner_export(scratch, carried)
    assert verify_log(path, AUDIT_KEY.verify_key, partner_checkpoints=_anchors(export)).ok

    doc = json.loads(export.read_text())
    forged = dict(doc["checkpoints"][-1], seq=80, prev_seq=30)  # signature not over seq 80
    doc["checkpoints"].append(forged)
    export.write_text(json.dumps(doc))
    report = verify_log(path, AUDIT_KEY.verify_key, partner_checkpoints=_anchors(export))
    assert not report.ok and report.first_bad_seq is None
    assert report.anchored == 17  # the genuine ones still vouch for the log
    assert report.reason == (
        "partner checkpoint 3 of 3 (entry 80) does not verify with the audit key (forged): "
        "not trusted"
    )

    other = _write_log(scratch / "other.db", 5, receipts_at=(5,))
    other_key = PublishedCheckpoint(OTHER_KEY.verify_key, other[0].checkpoint)
    report = verify_log(path, AUDIT_KEY.verify_key, partner_checkpoints=[*carried, other_key])
    assert not report.ok and report.first_bad_seq is None
    assert report.reason is not None and "another audit key" in report.reason


def test_entries_after_the_partners_last_checkpoint_remain_the_operators(scratch: Path) -> None:
    """The residual, stated as a test: entries written after the last checkpoint the partner
    holds can still be removed and re-signed unseen (docs/audit.md)."""
    path = scratch / "us-audit.db"
    carried = _write_log(path, 20, receipts_at=(10,))
    export = _partner_export(scratch, carried)
    with AuditLog.open(path, signing_key=None) as log:
        kept = list(log.entries())[:12]
    for file in scratch.glob("us-audit.db*"):
        file.unlink()
    with AuditLog.open(path, signing_key=AUDIT_KEY, checkpoint_every=EVERY) as log:
        for entry in kept:
            log.append(entry.kind, dict(entry.fields), now=entry.time)
    report = verify_log(path, AUDIT_KEY.verify_key, partner_checkpoints=_anchors(export))
    assert report.ok and report.anchored == 10 and report.entries == 12
