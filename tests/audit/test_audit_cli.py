"""``xlink audit verify``: exit codes 0 / 7 / 3, the first bad entry named, JSON output."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from _audit_support import KEY, OTHER_KEY, attacker, build_log

from xlink.cli.exitcodes import ExitCode
from xlink.cli.main import main
from xlink.crypto.keyfiles import AUDIT_ENDORSEMENT_FILE, PUBLIC_BUNDLE_FILE, AgencyKeys
from xlink.crypto.rand import system_random

HEX = bytes(KEY.verify_key).hex()


@pytest.fixture
def log(audit_dir: Path) -> Path:
    return build_log(audit_dir / "audit.db")


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["audit", "--help"], ["audit", "verify", "--help"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "usage: xlink audit verify" in out and "HEX_OR_FILE" in out


def test_intact_log_exits_0(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "verify", str(log), "--key", HEX]) == ExitCode.OK
    assert "intact, 10 entries, 4 checkpoints" in capsys.readouterr().out


def test_unsigned_tail_is_reported(audit_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = build_log(audit_dir / "a.db", 7, close=False)
    assert main(["audit", "verify", str(path), "--key", HEX]) == ExitCode.OK
    assert "entries 6..7 follow the last checkpoint: not signed yet" in capsys.readouterr().out


def test_tampered_log_exits_7_naming_the_entry(
    log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with attacker(log) as db:
        db.execute("UPDATE audit_entries SET time_us = time_us + 1 WHERE seq = 3")
    assert int(ExitCode.TAMPERED) == 7
    assert main(["audit", "verify", str(log), "--key", HEX]) == ExitCode.TAMPERED
    assert "TAMPERED: entry 3: hash does not match its content" in capsys.readouterr().out


def test_wrong_key_exits_7(log: Path) -> None:
    other = bytes(OTHER_KEY.verify_key).hex()
    assert main(["audit", "verify", str(log), "--key", other]) == ExitCode.TAMPERED


def test_key_from_a_file_and_json(
    log: Path, audit_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keyfile = audit_dir / "audit.pub"
    keyfile.write_text(HEX.upper() + "\n")
    with attacker(log) as db:
        db.execute("DELETE FROM audit_entries WHERE seq = 4")
    assert main(["audit", "verify", str(log), "--key", str(keyfile), "--json"]) == 7
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["first_bad_seq"] == 4
    assert report["entries"] == 9 and report["checkpoints"] == 4
    assert report["reason"].startswith("entry 4: is missing")


def test_missing_log_exits_3(audit_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "verify", str(audit_dir / "no.db"), "--key", HEX]) == ExitCode.INPUT
    assert "no such audit log" in capsys.readouterr().err


@pytest.mark.parametrize("key", ["00" * 31, "zz" * 32, "/nonexistent/key.pub"])
def test_unusable_key_exits_3(log: Path, key: str) -> None:
    assert main(["audit", "verify", str(log), "--key", key]) == ExitCode.INPUT


def test_key_file_without_a_key_exits_3(log: Path, audit_dir: Path) -> None:
    keyfile = audit_dir / "k"
    keyfile.write_text("not a key")
    assert main(["audit", "verify", str(log), "--key", str(keyfile)]) == ExitCode.INPUT


def test_not_a_database_exits_7(audit_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = audit_dir / "x.db"
    path.write_text("hello" * 1000)
    assert main(["audit", "verify", str(path), "--key", HEX]) == ExitCode.TAMPERED
    assert "TAMPERED" in capsys.readouterr().out


def _key_directory(directory: Path, keys: AgencyKeys) -> Path:
    """The public half of a key directory: public.json and the endorsed audit-key.json."""
    directory.mkdir()
    (directory / PUBLIC_BUNDLE_FILE).write_text(keys.public_bundle().to_json())
    (directory / AUDIT_ENDORSEMENT_FILE).write_text(keys.audit_endorsement())
    return directory


def test_verify_key_from_the_key_directory(
    audit_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--keys DIR``: the audit verify key the agency's signing key endorsed
    (audit-key.json), the key ``xlink serve`` signs its audit log with; a log signed with the
    agency's signing key instead does not verify."""
    now = datetime.now(UTC)
    ours, theirs = (
        AgencyKeys.generate(agency, rng=system_random, now=now, valid_days=2)
        for agency in ("US-DHS", "CA-RCMP")
    )
    keys_dir = _key_directory(audit_dir / "keys", ours)
    other_dir = _key_directory(audit_dir / "other", theirs)
    path = build_log(audit_dir / "agency.db", key=ours.audit_key)
    assert main(["audit", "verify", str(path), "--keys", str(keys_dir)]) == ExitCode.OK
    assert "intact, 10 entries, 4 checkpoints" in capsys.readouterr().out
    assert main(["audit", "verify", str(path), "--keys", str(other_dir), "--json"]) == 7
    report = json.loads(capsys.readouterr().out)
    assert not report["ok"]
    assert report["key_fingerprint"] == theirs.audit_key.verify_key.fingerprint()
    signed_by_agency_key = build_log(audit_dir / "old.db", key=ours.signing_key)
    assert main(["audit", "verify", str(signed_by_agency_key), "--keys", str(keys_dir)]) == 7
    assert main(["audit", "verify", str(path), "--keys", str(audit_dir / "none")]) == 3
    assert "--keys: no such key directory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["audit", "verify", str(path), "--keys", str(keys_dir), "--key", HEX])
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_bundle_is_refused_with_a_clear_error(
    log: Path, audit_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--bundle`` is gone: a bundle's verify key is the agency's signing key, which no
    longer signs audit logs. Saying so beats verifying against the wrong key."""
    bundle = audit_dir / "public.json"
    bundle.write_text("{}")
    assert main(["audit", "verify", str(log), "--bundle", str(bundle)]) == ExitCode.INPUT
    err = capsys.readouterr().err
    assert "--bundle" in err and "--keys DIR" in err and "audit key" in err
