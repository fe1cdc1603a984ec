"""``xlink store`` (registered here on a bare parser: the lead wires it into xlink.cli.main)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from _store_support import (
    AUDIT_KEY,
    CA,
    MOU,
    SEALING,
    SESSION,
    SIGNING,
    T0,
    US,
    make_record,
    open_store,
    seal,
)

from xlink.audit import AuditEvent, AuditLog
from xlink.cli import cmd_store
from xlink.cli.exitcodes import ExitCode
from xlink.errors import InputError
from xlink.policy import dump_mou, sign_mou
from xlink.records.model import Category
from xlink.store import TLP2_MARKINGS

NOW = "2026-03-02T12:00:00+00:00"
LATE = "2026-06-15T12:00:00+00:00"  # past the 90 days of sex_offender records
READER = AUDIT_KEY.verify_key.fingerprint()


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="xlink")
    sub = parser.add_subparsers(dest="command", required=True)
    cmd_store.register(sub)
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


@pytest.fixture
def files(tmp_path: Path) -> list[str]:
    """``--store``, ``--mou``, ``--sealing-key``, ``--audit``, ``--audit-key`` for US."""
    mou_file = tmp_path / "mou.json"
    signed = sign_mou(sign_mou(MOU, CA, SIGNING[CA]), US, SIGNING[US])
    mou_file.write_text(dump_mou(signed, "json"))
    (tmp_path / "sealing.key").write_text(SEALING[US].secret().hex())
    (tmp_path / "audit.key").write_text(AUDIT_KEY.seed().hex())
    with open_store(tmp_path / "store.db") as store:
        store.receive(seal(make_record(1)), expected_session_id=SESSION, now=T0)
        store.receive(
            seal(make_record(2, category=Category.SEX_OFFENDER)),
            expected_session_id=SESSION,
            now=T0,
        )
    return [
        "--store", str(tmp_path / "store.db"), "--mou", str(mou_file),
        "--sealing-key", str(tmp_path / "sealing.key"),
        "--audit", str(tmp_path / "audit.db"), "--audit-key", str(tmp_path / "audit.key"),
    ]  # fmt: skip


def test_list_read_purge(files: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    one = make_record(1).release_id.hex()
    assert _run("store", "list", *files, "--now", NOW) == ExitCode.OK
    out = capsys.readouterr().out
    assert "2 release(s) stored" in out and one in out and "EXPIRED" not in out
    code = _run(
        "store", "read", one, "--purpose", "border-security", "--reader", READER,
        *files, "--now", NOW, "--json",
    )  # fmt: skip
    assert code == ExitCode.OK
    doc = json.loads(capsys.readouterr().out)
    assert doc["fields"]["family_name"] == ["Dąbrowski"] and doc["caveats"]["tlp"] == "AMBER"
    code = _run(
        "store", "read", one, "--purpose", "marketing", "--reader", READER,
        *files, "--now", NOW, "--json",
    )  # fmt: skip
    assert code == ExitCode.POLICY == 5
    assert json.loads(capsys.readouterr().out) == {"denied": ["purpose-not-allowed"]}
    assert _run("store", "purge", *files, "--now", LATE, "--json") == ExitCode.OK
    assert json.loads(capsys.readouterr().out) == {"purged": 1}
    assert _run("store", "list", *files, "--now", LATE, "--json") == ExitCode.OK
    assert [m["release_id"] for m in json.loads(capsys.readouterr().out)] == [one]
    audit = Path(files[files.index("--audit") + 1])
    with AuditLog.open(audit, signing_key=None) as log:
        kinds = [e.kind for e in log.entries()]
    assert kinds == [
        AuditEvent.RECORD_READ, AuditEvent.READ_DENIED, AuditEvent.PURGE, AuditEvent.PURGE,
    ]  # fmt: skip


def test_export(files: list[str], tmp_path: Path) -> None:
    out = tmp_path / "bundle.json"
    argv = ["--purpose", "border-security", "--reader", READER, *files, "--now", NOW]
    assert _run("store", "export", *argv, "--out", str(out)) == ExitCode.OK
    first = out.read_text()
    assert _run("store", "export", *argv, "--out", str(out)) == ExitCode.OK
    assert out.read_text() == first  # reproducible
    bundle = json.loads(first)
    refs = {r for o in bundle["objects"] for r in o.get("object_marking_refs", [])}
    assert refs == {
        TLP2_MARKINGS[t][0] for t in TLP2_MARKINGS if t.value in ("AMBER", "AMBER+STRICT")
    }


def test_bad_input(files: list[str], tmp_path: Path) -> None:
    with pytest.raises(InputError):
        _run("store", "read", "xyz", "--purpose", "p", "--reader", READER, *files, "--now", NOW)
    with pytest.raises(InputError):
        _run("store", "list", *files, "--now", "yesterday")
    bad = [*files]
    bad[bad.index("--store") + 1] = str(tmp_path / "nope.db")
    with pytest.raises(InputError):
        _run("store", "list", *bad)
    (tmp_path / "other.key").write_text("00" * 32)
    bad = [*files]
    bad[bad.index("--sealing-key") + 1] = str(tmp_path / "other.key")
    with pytest.raises(InputError):
        _run("store", "list", *bad)
    # an MOU outside its validity is a policy refusal
    assert _run("store", "list", *files, "--now", "2030-01-01T00:00:00+00:00") == ExitCode.POLICY


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["store", "--help"], ["store", "read", "--help"], ["store", "export", "--help"]):
        with pytest.raises(SystemExit) as exc:
            _run(*argv)
        assert exc.value.code == 0
    assert "--purpose" in capsys.readouterr().out
