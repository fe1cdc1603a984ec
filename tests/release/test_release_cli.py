"""``xlink releases`` and ``xlink source resolve`` (registered here on a bare parser: the
lead wires them into xlink.cli.main)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from _release_support import APPROVER, MOU, SIGNING, T0, release_record

from xlink.audit import AuditEvent, AuditLog, verify_log
from xlink.ceremony import demo_ceremony
from xlink.cli import cmd_releases, cmd_source
from xlink.cli.exitcodes import ExitCode
from xlink.crypto.keyfiles import load_public_bundle
from xlink.crypto.rand import DeterministicRandom, system_random
from xlink.errors import InputError
from xlink.release import ApprovalQueue, SourceHandleKey, make_source_handle

NOW = "2026-03-01T12:00:00+00:00"
DATA = Path(__file__).resolve().parents[2] / "xlink" / "data"


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="xlink")
    sub = parser.add_subparsers(dest="command", required=True)
    cmd_releases.register(sub)
    cmd_source.register(sub)
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


@pytest.fixture
def queue_file(tmp_path: Path) -> Path:
    path = tmp_path / "queue.db"
    with ApprovalQueue.open(path) as q:
        for i in (1, 2):
            record = release_record(release_id=DeterministicRandom(i)(16))
            q.enqueue(record, record_id=f"CAWL-{i}", mou=MOU, now=T0)
    return path


def test_pending_approve_deny(queue_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    q = str(queue_file)
    assert _run("releases", "pending", "--queue", q, "--now", NOW) == ExitCode.OK
    out = capsys.readouterr().out
    assert "2 release(s)" in out and "CAWL-1" in out and "deadline 2026-03-03T12:00" in out
    assert "OVERDUE" not in out
    assert _run("releases", "pending", "--queue", q, "--now", "2026-03-04T00:00:00+00:00") == 0
    assert capsys.readouterr().out.count("OVERDUE") == 2
    assert _run("releases", "approve", "1", "--queue", q, "--approver", APPROVER, "--now", NOW) == 0
    assert "release 1 approved" in capsys.readouterr().out
    audit, key = queue_file.parent / "audit.db", queue_file.parent / "audit.key"
    key.write_text(SIGNING["CA-RCMP"].seed().hex())
    code = _run(
        "releases", "deny", "2", "--reason", "insufficient-grounds", "--queue", q,
        "--approver", APPROVER, "--audit", str(audit), "--audit-key", str(key), "--json",
    )  # fmt: skip
    assert code == 0
    assert json.loads(capsys.readouterr().out)["state"] == "DENIED"
    with AuditLog.open(audit, signing_key=None) as log:
        assert [e.kind for e in log.entries()] == [AuditEvent.RELEASE_DENIED]
    assert _run("releases", "pending", "--queue", q, "--json", "--now", NOW) == 0
    assert json.loads(capsys.readouterr().out) == []
    with pytest.raises(InputError):
        _run("releases", "approve", "2", "--queue", q, "--approver", APPROVER)
    with pytest.raises(InputError):
        _run("releases", "approve", "9", "--queue", q, "--approver", "bob")
    with pytest.raises(InputError):
        _run("releases", "pending", "--queue", str(queue_file.parent / "nope.db"))


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["releases", "--help"],
        ["releases", "deny", "--help"],
        ["source", "resolve", "--help"],
    ):
        with pytest.raises(SystemExit) as exc:
            _run(*argv)
        assert exc.value.code == 0
    assert "--key-file" in capsys.readouterr().out


def test_source_resolve(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = SourceHandleKey(b"\x05" * 32)
    key_file = tmp_path / "handle.key"
    key_file.write_text(key.secret().hex())
    handle = make_source_handle(key, "RCMP-SRC-6624", DeterministicRandom("cli"))
    files = [str(DATA / "ca_watchlist.csv"), str(DATA / "ca_sex_offenders.csv")]
    assert _run("source", "resolve", handle.hex(), "--key-file", str(key_file), *files) == 0
    assert capsys.readouterr().out.strip() == "RCMP-SRC-6624"
    other = make_source_handle(key, "FBI-SRC-0001", DeterministicRandom("cli"))
    code = _run("source", "resolve", other.hex(), "--key-file", str(key_file), *files, "--json")
    assert code == ExitCode.INPUT
    assert json.loads(capsys.readouterr().out)["resolved"] is False
    with pytest.raises(InputError):
        _run("source", "resolve", "abcd", "--key-file", str(key_file), *files)


def test_approve_with_a_key_dir(
    queue_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--keys DIR``: the agency's signing key signs the ``--audit`` log (no --audit-key)."""
    passphrase = "correct horse battery staple"
    monkeypatch.setenv("XLINK_PASSPHRASE", passphrase)
    ceremony = demo_ceremony(
        queue_file.parent / "ceremony",
        passphrase=passphrase.encode(),
        now=datetime.now(UTC),
        rng=system_random,
    )
    keys, audit, q = str(ceremony.keys["CA-RCMP"]), queue_file.parent / "audit.db", str(queue_file)
    base = ["--queue", q, "--approver", APPROVER, "--now", NOW]
    assert _run("releases", "approve", "1", *base, "--keys", keys, "--audit", str(audit)) == 0
    assert "release 1 approved" in capsys.readouterr().out
    report = verify_log(audit, load_public_bundle(ceremony.bundles["CA-RCMP"]).verify_key)
    assert report.ok and report.entries == 1
    key_file = queue_file.parent / "audit.key"
    key_file.write_text(SIGNING["CA-RCMP"].seed().hex())
    deny = ["releases", "deny", "2", "--reason", "insufficient-grounds", *base]
    with pytest.raises(InputError, match="--keys and --audit-key"):
        _run(*deny, "--keys", keys, "--audit", str(audit), "--audit-key", str(key_file))
    with pytest.raises(InputError, match="give --audit PATH too"):
        _run(*deny, "--keys", keys)
    with pytest.raises(InputError, match="--audit: give the log's signing key"):
        _run(*deny, "--audit", str(audit))
    with pytest.raises(InputError, match="give the audit log too"):
        _run(*deny, "--audit-key", str(key_file))
    with ApprovalQueue.open(queue_file) as queue:
        assert [i.item_id for i in queue.pending(T0)] == [2]


def test_source_resolve_writes_nothing_next_to_the_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A lookup must not leave a rejects file beside the agency's own files (it did, inside
    # the installed package's sample data).
    for name in ("ca_watchlist.csv", "ca_watchlist.mapping.json"):
        (tmp_path / name).write_bytes((DATA / name).read_bytes())
    key_file = tmp_path / "handle.key"
    key_file.write_text((b"\x05" * 32).hex())
    handle = make_source_handle(SourceHandleKey(b"\x05" * 32), "X", DeterministicRandom("w"))
    before = sorted(p.name for p in tmp_path.iterdir())
    _run("source", "resolve", handle.hex(), "--key-file", str(key_file),
         str(tmp_path / "ca_watchlist.csv"), "--json")  # fmt: skip
    capsys.readouterr()
    assert sorted(p.name for p in tmp_path.iterdir()) == before
