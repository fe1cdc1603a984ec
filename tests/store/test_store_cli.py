"""``xlink store`` (registered here on a bare parser: the lead wires it into xlink.cli.main)."""

from __future__ import annotations

import argparse
import io
import json
from datetime import UTC, datetime
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

from xlink.audit import AuditEvent, AuditLog, verify_log
from xlink.ceremony import demo_ceremony
from xlink.cli import cmd_store
from xlink.cli.exitcodes import ExitCode
from xlink.crypto.keyfiles import AgencyKeys, load_public_bundle
from xlink.crypto.rand import system_random
from xlink.errors import InputError
from xlink.policy import accept_mou, dump_mou, load_mou, sign_mou
from xlink.records.model import Category
from xlink.release import seal_release, sign_release
from xlink.store import TLP2_MARKINGS, ReleaseStore

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


# ``--keys DIR``: the agency's key directory, as ``xlink keygen`` and ``xlink demo`` make it.

PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def demo_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A real key ceremony (keys for CA-RCMP and US-DHS, the MOU both signed) and US-DHS's
    store holding one watchlist release from CA-RCMP, made by ``ReleaseStore`` itself."""
    monkeypatch.setenv("XLINK_PASSPHRASE", PASSPHRASE)
    now = datetime.now(UTC)
    tmp_path = tmp_path / "demo"  # beside the files of the ``files`` fixture
    ceremony = demo_ceremony(
        tmp_path / "ceremony", passphrase=PASSPHRASE.encode(), now=now, rng=system_random
    )
    ca_keys = AgencyKeys.load(ceremony.keys[CA], PASSPHRASE.encode())
    us_keys = AgencyKeys.load(ceremony.keys[US], PASSPHRASE.encode())
    mou = accept_mou(load_mou(ceremony.mou), local_agency=US, today=now.date())
    record = make_record(1, mou=mou, mou_id=mou.id)
    sealed = seal_release(sign_release(record, ca_keys.signing_key), mou)
    with ReleaseStore.open(
        tmp_path / "store.db",
        mou=mou,
        sealing_key=us_keys.sealing_key,
        signing_key=us_keys.signing_key,
    ) as store:
        store.receive(sealed, expected_session_id=SESSION, now=now)
    return {
        "keys": ceremony.keys[US],
        "ca_keys": ceremony.keys[CA],
        "bundle": ceremony.bundles[US],
        "mou": ceremony.mou,
        "store": tmp_path / "store.db",
        "audit": tmp_path / "audit.db",
    }


def _with_keys(f: dict[str, Path], *extra: str) -> list[str]:
    return ["--store", str(f["store"]), "--mou", str(f["mou"]), "--keys", str(f["keys"]), *extra]


def test_keys_dir_lists_reads_and_signs_the_audit_log(
    demo_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run("store", "list", *_with_keys(demo_files), "--json") == ExitCode.OK
    (item,) = json.loads(capsys.readouterr().out)
    assert item["originator"] == CA and item["category"] == "watchlist"
    audit = ["--audit", str(demo_files["audit"])]  # no --audit-key: the keys' signing key
    code = _run(
        "store", "read", item["release_id"], "--purpose", "border-security",
        "--reader", READER, *_with_keys(demo_files, *audit), "--json",
    )  # fmt: skip
    assert code == ExitCode.OK
    assert json.loads(capsys.readouterr().out)["release_id"] == item["release_id"]
    verify_key = load_public_bundle(demo_files["bundle"]).verify_key
    report = verify_log(demo_files["audit"], verify_key)
    assert report.ok and report.entries == 1
    with AuditLog.open(demo_files["audit"], signing_key=None) as log:
        assert [e.kind for e in log.entries()] == [AuditEvent.RECORD_READ]


def test_keys_with_a_custom_passphrase_variable(
    demo_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("XLINK_PASSPHRASE")
    monkeypatch.setenv("MY_PASS", PASSPHRASE)
    argv = _with_keys(demo_files, "--passphrase-env", "MY_PASS")
    assert _run("store", "list", *argv) == ExitCode.OK
    assert "1 release(s) stored" in capsys.readouterr().out


def test_keys_errors(
    demo_files: dict[str, Path],
    files: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sealing = files[files.index("--sealing-key") + 1]
    audit_key = files[files.index("--audit-key") + 1]
    # --keys and --sealing-key together, or neither: a usage error naming both options
    for extra in (["--sealing-key", sealing], []):
        argv = _with_keys(demo_files) if extra else ["--store", str(demo_files["store"])]
        with pytest.raises(SystemExit) as exc:
            _run("store", "list", *argv, *extra, "--mou", str(demo_files["mou"]))
        assert exc.value.code == 2
        assert "--keys" in capsys.readouterr().err
    with pytest.raises(InputError, match="--keys and --audit-key"):
        _run("store", "purge", *_with_keys(demo_files, "--audit-key", audit_key))
    with pytest.raises(InputError, match="--audit: give the log's signing key"):
        _run("store", "purge", *files[:6], "--audit", str(demo_files["audit"]))
    with pytest.raises(InputError, match="not the sealing key of a party"):
        argv = _with_keys(demo_files)
        argv[argv.index("--mou") + 1] = files[files.index("--mou") + 1]  # another MOU
        _run("store", "list", *argv)
    with pytest.raises(InputError, match="not a key directory"):
        _run("store", "list", *_with_keys({**demo_files, "keys": demo_files["store"]}))
    monkeypatch.setenv("XLINK_PASSPHRASE", "not the passphrase")
    with pytest.raises(InputError, match="cannot decrypt"):
        _run("store", "list", *_with_keys(demo_files))
    monkeypatch.delenv("XLINK_PASSPHRASE")
    monkeypatch.setattr("sys.stdin", io.StringIO())
    with pytest.raises(InputError, match="no passphrase: set XLINK_PASSPHRASE"):
        _run("store", "list", *_with_keys(demo_files))
    assert not demo_files["audit"].exists()


def test_read_in_text_shows_every_caveat_an_officer_must_obey(
    files: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run("store", "list", *files, "--now", NOW, "--json") == ExitCode.OK
    one = json.loads(capsys.readouterr().out)[0]["release_id"]
    argv = ["--purpose", "border-security", "--reader", READER, *files, "--now", NOW]
    assert _run("store", "read", one, *argv, "--json") == ExitCode.OK
    caveats = json.loads(capsys.readouterr().out)["caveats"]
    assert _run("store", "read", one, *argv) == ExitCode.OK
    out = capsys.readouterr().out
    assert f"TLP:{caveats['tlp']}" in out and f"handling code {caveats['handling_code']}" in out
    if caveats["handling_conditions"]:
        assert f"conditions: {caveats['handling_conditions']}" in out
    assert f"permitted actions: {caveats['permitted_actions']}" in out
    for label in (
        "attribute the provider:",
        "notify affected parties:",
        "pass on only unmodified:",
        "encrypt at rest:",
        "onward sharing:",
        "source grading:",
    ):
        assert label in out
    assert f"retention: {caveats['retention_days']} days, expires " in out
