"""Published and partner checkpoints (docs/audit.md, "Partner checkpoints"): publishing one at
the head, keeping the partner's (countersigned in our chain), exporting them, loading an
exported file (fuzzed), verifying against them, and the CLI commands around them."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sqlite3
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest
from _audit_support import KEY, OTHER_KEY, T0, build_log
from hypothesis import given, settings
from hypothesis import strategies as st

from xlink.audit import (
    CHECKPOINTS_FORMAT,
    AuditEvent,
    AuditLog,
    PublishedCheckpoint,
    dump_checkpoints,
    load_checkpoints,
    make_checkpoint,
    verify_log,
)
from xlink.cli.exitcodes import ExitCode
from xlink.cli.main import main
from xlink.errors import DecryptionError, InputError

PEER = "US-DHS"
HEX = bytes(KEY.verify_key).hex()


def _published(
    path: Path, n: int = 6, *, at: tuple[int, ...] = (2, 6)
) -> list[PublishedCheckpoint]:
    """A log of ``n`` entries signed with KEY, publishing a checkpoint after each entry in
    ``at`` (as each receipt would carry one)."""
    out = []
    with AuditLog.open(path, signing_key=KEY, checkpoint_every=4) as log:
        for i in range(1, n + 1):
            log.append(AuditEvent.SESSION_COMPLETED, {"session": bytes([i]) * 16}, now=T0)
            if i in at:
                published = log.publish(now=T0 + timedelta(seconds=i))
                assert published is not None
                out.append(published)
    return out


def test_publish_signs_at_the_head_once(audit_dir: Path) -> None:
    with AuditLog.open(audit_dir / "a.db", signing_key=KEY) as log:
        assert log.publish(now=T0) is None  # nothing logged: nothing to commit to
        log.append(AuditEvent.SESSION_COMPLETED, {"session": bytes(16)}, now=T0)
        log.append(AuditEvent.SESSION_COMPLETED, {"session": bytes(16)}, now=T0)
        first = log.publish(now=T0 + timedelta(seconds=1))
        again = log.publish(now=T0 + timedelta(seconds=2))
    assert first is not None and first == again
    assert first.checkpoint.seq == 2 and first.checkpoint.prev_seq == 1
    assert first.audit_key == KEY.verify_key
    first.verify()


def test_a_checkpoint_published_as_signed_is_the_one_kept_and_verifies(audit_dir: Path) -> None:
    """``publish`` does not verify a checkpoint it has just signed (a receipt's checkpoint is
    checked once on each side): it is the row the log keeps, and verifies with the key it
    names on its own; a changed copy is checked again."""
    with AuditLog.open(audit_dir / "a.db", signing_key=KEY) as log:
        log.append(AuditEvent.SESSION_COMPLETED, {"session": bytes(16)}, now=T0)
        log.append(AuditEvent.SESSION_COMPLETED, {"session": bytes(16)}, now=T0)
        published = log.publish(now=T0 + timedelta(seconds=1))
        assert published is not None and published.checkpoint == log.last_checkpoint()
    KEY.verify_key.verify(published.checkpoint.signature, published.checkpoint.message())
    moved = dataclasses.replace(published.checkpoint, seq=published.checkpoint.seq + 1)
    with pytest.raises(DecryptionError):
        dataclasses.replace(published, checkpoint=moved).verify()


def test_keeping_a_partner_checkpoint_countersigns_it_once(audit_dir: Path) -> None:
    carried = _published(audit_dir / "theirs.db")
    with AuditLog.open(audit_dir / "ours.db", signing_key=OTHER_KEY) as ours:
        session, handle = b"\x05" * 16, b"\x07" * 16
        assert ours.keep_partner_checkpoint(
            PEER, carried[0], now=T0, session=session, handle=handle
        )
        assert not ours.keep_partner_checkpoint(PEER, carried[0], now=T0)  # a resent receipt
        assert ours.keep_partner_checkpoint(PEER, carried[1], now=T0)
        forged = dataclasses.replace(
            carried[1], checkpoint=dataclasses.replace(carried[1].checkpoint, seq=9)
        )
        with pytest.raises(DecryptionError):
            ours.keep_partner_checkpoint(PEER, forged, now=T0)
        entries = [e for e in ours.entries() if e.kind is AuditEvent.CHECKPOINT_RECEIVED]
        assert ours.partner_checkpoints(PEER) == tuple(carried)
        assert ours.partner_checkpoints("CA-RCMP") == ()
    assert len(entries) == 2
    assert dict(entries[0].fields) == {
        "peer": PEER,
        "seq": carried[0].checkpoint.seq,
        "digest": carried[0].checkpoint.head_hash.hex(),
        "fingerprint": KEY.verify_key.fingerprint(),
        "session": session.hex(),
        "handle": handle.hex(),
    }
    assert verify_log(audit_dir / "ours.db", OTHER_KEY.verify_key).ok


def test_partner_checkpoints_are_append_only(audit_dir: Path) -> None:
    carried = _published(audit_dir / "theirs.db")
    with AuditLog.open(audit_dir / "ours.db", signing_key=OTHER_KEY) as ours:
        ours.keep_partner_checkpoint(PEER, carried[0], now=T0)
    with closing(sqlite3.connect(audit_dir / "ours.db")) as db:
        for sql in ("DELETE FROM partner_checkpoints", "UPDATE partner_checkpoints SET seq = 1"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                db.execute(sql)


def test_a_log_written_before_partner_checkpoints_reads_as_none(audit_dir: Path) -> None:
    path = build_log(audit_dir / "old.db")
    with closing(sqlite3.connect(path)) as db:
        db.execute("DROP TABLE partner_checkpoints")
        db.commit()
    with AuditLog.open(path, signing_key=None) as log:
        assert log.partner_checkpoints(PEER) == ()


def test_signed_by_tells_which_key_signs_the_log(audit_dir: Path) -> None:
    """One log, one checkpoint key: an agency refuses to write on a log begun under another
    key (its signing key, before the audit key), which mixed could not be verified."""
    path = build_log(audit_dir / "a.db")
    with AuditLog.open(path, signing_key=None) as log:
        assert log.signed_by(KEY.verify_key) and not log.signed_by(OTHER_KEY.verify_key)
    with AuditLog.open(audit_dir / "empty.db", signing_key=KEY) as log:
        assert log.signed_by(OTHER_KEY.verify_key)  # no checkpoint yet: any key may start it


def test_export_round_trip_and_verification(audit_dir: Path) -> None:
    carried = _published(audit_dir / "theirs.db", 9, at=(3, 8))
    loaded = load_checkpoints(dump_checkpoints(PEER, reversed(carried)))
    assert loaded.agency == PEER and loaded.checkpoints == tuple(carried)
    report = verify_log(audit_dir / "theirs.db", KEY.verify_key, partner_checkpoints=carried)
    assert report.ok and report.anchored == 8 and report.entries == 9


_GOOD = dump_checkpoints(
    PEER,
    [
        PublishedCheckpoint(
            KEY.verify_key,
            make_checkpoint(3, b"\x01" * 32, 0, 1, 100, b"\x02" * 64),
        )
    ],
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_as_a_checkpoints_file_raise_only_input_error(data: bytes) -> None:
    with contextlib.suppress(InputError):
        load_checkpoints(data)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_checkpoints_files_raise_only_input_error(data: st.DataObject) -> None:
    """A valid file with characters changed: it loads, or raises InputError, never another
    exception (a JSON number where hex is expected, a huge integer, a nested list...)."""
    text = bytearray(_GOOD.encode())
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(text) - 1))
        text[i] = data.draw(st.sampled_from(b'0123456789abcdef"[]{},:-.eE \\x'))
    with contextlib.suppress(InputError):
        load_checkpoints(bytes(text))


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=12,
    )
)
def test_any_json_member_values_raise_only_input_error(value: object) -> None:
    for member in ("agency", "checkpoints", "format"):
        doc = json.loads(_GOOD)
        doc[member] = value
        with contextlib.suppress(InputError):
            load_checkpoints(json.dumps(doc))
    for member in ("seq", "audit_key", "time_us", "prev_seq", "interval", "signature"):
        doc = json.loads(_GOOD)
        doc["checkpoints"][0][member] = value
        with contextlib.suppress(InputError):
            load_checkpoints(json.dumps(doc))


def test_a_checkpoints_file_of_another_format_is_refused() -> None:
    doc = json.loads(_GOOD)
    assert doc["format"] == CHECKPOINTS_FORMAT
    for bad in ({**doc, "format": "x"}, {**doc, "extra": 1}, [doc], {**doc, "agency": "a b"}):
        with pytest.raises(InputError):
            load_checkpoints(json.dumps(bad))


# -- the CLI -------------------------------------------------------------------------------------


def _partner_workdir(audit_dir: Path, carried: list[PublishedCheckpoint]) -> Path:
    work = audit_dir / "partner"
    work.mkdir()
    with AuditLog.open(work / "audit.db", signing_key=OTHER_KEY) as partner:
        for published in carried:
            partner.keep_partner_checkpoint(PEER, published, now=T0)
    return work


def test_export_then_verify_with_the_partners_checkpoints(
    audit_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ours = audit_dir / "ours.db"
    carried = _published(ours, 10, at=(3, 7))
    work = _partner_workdir(audit_dir, carried)
    out = audit_dir / "us-checkpoints.json"
    argv = ["audit", "export-checkpoints", "--workdir", str(work), "--peer", PEER]
    assert main([*argv, "--out", str(out)]) == ExitCode.OK
    assert f"2 checkpoints of {PEER}'s audit log written to" in capsys.readouterr().out
    assert main([*argv, "--out", str(out)]) == ExitCode.INPUT  # never overwritten
    assert "already exists" in capsys.readouterr().err

    verify = ["audit", "verify", str(ours), "--key", HEX, "--partner-checkpoints", str(out)]
    assert main(verify) == ExitCode.OK
    text = capsys.readouterr().out
    assert "matches the 2 checkpoints US-DHS's partner kept (up to entry 7)" in text
    assert "entries 8..10 follow the partner's last checkpoint" in text

    with closing(sqlite3.connect(ours, isolation_level=None)) as db:
        for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"):
            db.execute(f'DROP TRIGGER "{name}"')
        db.execute("DELETE FROM audit_entries WHERE seq > 4")
        db.execute("DELETE FROM audit_checkpoints WHERE seq > 4")
    assert main([*verify, "--json"]) == ExitCode.TAMPERED
    report = json.loads(capsys.readouterr().out)
    assert report["first_bad_seq"] == 5 and report["anchored"] == 3
    assert report["partner_checkpoints"] == 2


def test_cli_refuses_an_unreadable_checkpoints_file(
    audit_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ours = build_log(audit_dir / "ours.db")
    bad = audit_dir / "bad.json"
    bad.write_text("not json")
    for path in (bad, audit_dir / "none.json"):
        argv = ["audit", "verify", str(ours), "--key", HEX, "--partner-checkpoints", str(path)]
        assert main(argv) == ExitCode.INPUT
        assert "--partner-checkpoints" in capsys.readouterr().err
    argv = ["audit", "export-checkpoints", "--workdir", str(audit_dir / "no"), "--peer", PEER]
    assert main([*argv, "--out", str(audit_dir / "x.json")]) == ExitCode.INPUT
