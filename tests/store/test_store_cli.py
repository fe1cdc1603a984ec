"""``xlink store`` and ``xlink officer`` on a real key ceremony: every read and export is
signed by an enrolled officer and audited in the agency's own log, which must exist (issue 14:
officers, always audited, retention from authenticated data)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from _store_support import CA, SESSION, US, make_record

from xlink.audit import AuditEvent, AuditLog, verify_log
from xlink.ceremony import demo_ceremony
from xlink.cli import cmd_officer, cmd_store
from xlink.cli.exitcodes import ExitCode
from xlink.cli.main import main
from xlink.crypto.keyfiles import AgencyKeys, load_audit_verify_key
from xlink.crypto.rand import system_random
from xlink.errors import InputError
from xlink.officers import OfficerRegistry
from xlink.policy import accept_mou, load_mou
from xlink.records.model import Category
from xlink.release import seal_release, sign_release
from xlink.store import TLP2_MARKINGS, ReleaseStore

PASSPHRASE = "stores are read by officers 7"
OFFICER_PASSPHRASE = "an officer's own passphrase 9"


def _run(*argv: str) -> int:
    # Each command takes its passphrases out of the environment once read (docs/keys.md), as
    # a new process would find them set again.
    os.environ["XLINK_PASSPHRASE"] = PASSPHRASE
    os.environ["XLINK_OFFICER_PASSPHRASE"] = OFFICER_PASSPHRASE
    parser = argparse.ArgumentParser(prog="xlink")
    sub = parser.add_subparsers(dest="command", required=True)
    cmd_store.register(sub)
    cmd_officer.register(sub)
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


def _main(*argv: str) -> int:
    """As the console script runs a command: a failure becomes its exit code and, with
    ``--json``, the failure document."""
    os.environ["XLINK_PASSPHRASE"] = PASSPHRASE
    os.environ["XLINK_OFFICER_PASSPHRASE"] = OFFICER_PASSPHRASE
    return main(list(argv))


@dataclass(frozen=True)
class Custody:
    partner_keys: Path
    keys: Path
    mou: Path
    workdir: Path
    reader: Path
    approver: Path
    now: datetime

    def base(self) -> list[str]:
        return ["--workdir", str(self.workdir), "--keys", str(self.keys), "--mou", str(self.mou)]

    def as_reader(self, purpose: str = "border-security", officer: Path | None = None) -> list[str]:
        officer_dir = self.reader if officer is None else officer
        return [*self.base(), "--purpose", purpose, "--officer", str(officer_dir)]

    def kinds(self) -> list[AuditEvent]:
        with AuditLog.open(self.workdir / "audit.db", signing_key=None) as log:
            return [e.kind for e in log.entries()]


@pytest.fixture
def custody(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Custody]:
    """A real key ceremony; US-DHS's workdir (its audit log, as serve leaves it) with a
    watchlist and a sex-offender release from CA-RCMP; two officer keys made by ``xlink officer
    keygen``, the reader enrolled by ``xlink officer enrol``, the approver not."""
    monkeypatch.setenv("XLINK_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("XLINK_OFFICER_PASSPHRASE", OFFICER_PASSPHRASE)
    now = datetime.now(UTC)
    ceremony = demo_ceremony(
        tmp_path / "ceremony",
        passphrase=PASSPHRASE.encode(),
        now=now,
        rng=system_random,
        valid_days=200,  # so that a purge 100 days on is under the MOU still
    )
    ca_keys = AgencyKeys.load(ceremony.keys[CA], PASSPHRASE.encode())
    us_keys = AgencyKeys.load(ceremony.keys[US], PASSPHRASE.encode())
    mou = accept_mou(load_mou(ceremony.mou), local_agency=US, today=now.date())
    work = tmp_path / "us-work"
    work.mkdir()
    with (
        AuditLog.open(work / "audit.db", signing_key=us_keys.audit_key) as audit,
        ReleaseStore.open(
            work / "store.db",
            mou=mou,
            sealing_key=us_keys.sealing_key,
            signing_key=us_keys.signing_key,
            audit=audit,
        ) as store,
    ):
        for n, category in ((1, Category.WATCHLIST), (2, Category.SEX_OFFENDER)):
            policy = mou.policy_for(category)
            assert policy is not None
            record = make_record(
                n, category=category, mou=mou, mou_id=mou.id, created_at=now - timedelta(hours=1)
            )
            sealed = seal_release(sign_release(record, ca_keys.signing_key), mou)
            store.receive(sealed, expected_session_id=SESSION, now=now - timedelta(minutes=30))
    officers = {}
    for role in ("reader", "approver"):
        officers[role] = tmp_path / role
        assert (
            _run("officer", "keygen", "--name", f"Officer {role}", "--out", str(officers[role]))
            == 0
        )
    c = Custody(
        ceremony.keys[CA],
        ceremony.keys[US],
        ceremony.mou,
        work,
        officers["reader"],
        officers["approver"],
        now,
    )
    enrol = ["--workdir", str(work), "--keys", str(c.keys), "--officer", str(c.reader)]
    assert _run("officer", "enrol", *enrol, "--role", "reader") == ExitCode.OK
    yield c


def _denied(capsys: pytest.CaptureFixture[str]) -> list[str]:
    """The reasons of the failure document a refused ``--json`` command printed (exit 5)."""
    out = json.loads(capsys.readouterr().out)
    assert (out["ok"], out["exit_code"]) == (False, ExitCode.POLICY)
    reasons: list[str] = out["error"]["reasons"]
    return reasons


def _release_ids(custody: Custody, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    assert _run("store", "list", *custody.base(), "--json") == ExitCode.OK
    return {m["category"]: m["release_id"] for m in json.loads(capsys.readouterr().out)}


def test_an_enrolled_reader_reads_and_every_step_is_audited(
    custody: Custody, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = _release_ids(custody, capsys)
    one = ids["watchlist"]
    assert _run("store", "read", one, *custody.as_reader(), "--json") == ExitCode.OK
    doc = json.loads(capsys.readouterr().out)
    assert doc["fields"]["family_name"] == ["Dąbrowski"] and doc["caveats"]["tlp"] == "AMBER"
    assert _main("store", "read", one, *custody.as_reader("marketing"), "--json") == 5
    assert _denied(capsys) == ["purpose-not-allowed"]
    later = (custody.now + timedelta(days=100)).isoformat()  # past the sex offender's 90 days
    assert _run("store", "purge", *custody.base(), "--now", later, "--json") == ExitCode.OK
    assert json.loads(capsys.readouterr().out) == {"purged": 1}
    assert custody.kinds()[-5:] == [
        AuditEvent.KEY_EVENT,  # the enrolment
        AuditEvent.RECORD_READ,
        AuditEvent.READ_DENIED,
        AuditEvent.PURGE,
        AuditEvent.PURGE,
    ]
    verify_key = load_audit_verify_key(custody.keys)
    assert verify_log(custody.workdir / "audit.db", verify_key).ok


def test_an_unenrolled_officer_is_refused_and_audited(
    custody: Custody, capsys: pytest.CaptureFixture[str]
) -> None:
    one = _release_ids(custody, capsys)["watchlist"]
    stranger = custody.as_reader(officer=custody.approver)  # made, never enrolled
    assert _main("store", "read", one, *stranger, "--json") == ExitCode.POLICY
    assert _denied(capsys) == ["officer-not-enrolled"]
    assert custody.kinds()[-1] is AuditEvent.READ_DENIED
    # enrolled as an approver, still not a reader
    enrol = ["--workdir", str(custody.workdir), "--keys", str(custody.keys)]
    assert (
        _run("officer", "enrol", *enrol, "--officer", str(custody.approver), "--role", "approver")
        == 0
    )
    capsys.readouterr()
    assert _main("store", "read", one, *stranger, "--json") == ExitCode.POLICY
    assert _denied(capsys) == ["officer-not-authorised"]


def test_a_revoked_reader_is_refused(custody: Custody, capsys: pytest.CaptureFixture[str]) -> None:
    one = _release_ids(custody, capsys)["watchlist"]
    assert (
        _run(
            "officer",
            "list",
            "--workdir",
            str(custody.workdir),
            "--keys",
            str(custody.keys),
            "--json",
        )
        == 0
    )
    (enrolled,) = json.loads(capsys.readouterr().out)
    assert enrolled["roles"] == ["reader"] and enrolled["revoked_at"] is None
    base = ["--workdir", str(custody.workdir), "--keys", str(custody.keys)]
    assert _run("officer", "revoke", enrolled["fingerprint"], *base) == ExitCode.OK
    capsys.readouterr()
    assert _main("store", "read", one, *custody.as_reader(), "--json") == ExitCode.POLICY
    assert _denied(capsys) == ["officer-revoked"]
    kinds = custody.kinds()
    assert kinds[-2:] == [AuditEvent.KEY_EVENT, AuditEvent.READ_DENIED]


def test_an_unaudited_read_is_impossible(
    custody: Custody, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 14: a read needs the workdir's existing audit log; a typo does not start one."""
    one = _release_ids(custody, capsys)["watchlist"]
    typo = tmp_path / "us-wrok"
    typo.mkdir()
    (typo / "store.db").write_bytes((custody.workdir / "store.db").read_bytes())
    argv = custody.as_reader()
    argv[argv.index("--workdir") + 1] = str(typo)
    with pytest.raises(InputError, match=r"audit\.db does not exist"):
        _run("store", "read", one, *argv)
    assert not (typo / "audit.db").exists()
    with pytest.raises(SystemExit) as exc:  # no --workdir: a usage error, nothing opened
        _run("store", "read", one, "--keys", str(custody.keys), "--mou", str(custody.mou))
    assert exc.value.code == 2


def test_a_read_cannot_be_dated_before_the_clock(
    custody: Custody, capsys: pytest.CaptureFixture[str]
) -> None:
    one = _release_ids(custody, capsys)["watchlist"]
    earlier = (custody.now - timedelta(days=1)).isoformat()
    with pytest.raises(InputError, match="--now: a read cannot be dated earlier"):
        _run("store", "read", one, *custody.as_reader(), "--now", earlier)
    later = (custody.now + timedelta(days=1)).isoformat()
    assert _run("store", "read", one, *custody.as_reader(), "--now", later, "--json") == 0


def test_export_is_reproducible_and_audited(
    custody: Custody, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bundle.json"
    assert _run("store", "export", *custody.as_reader(), "--out", str(out)) == ExitCode.OK
    first = out.read_text()
    assert _run("store", "export", *custody.as_reader(), "--out", str(out)) == ExitCode.OK
    assert out.read_text() == first  # reproducible
    bundle = json.loads(first)
    refs = {r for o in bundle["objects"] for r in o.get("object_marking_refs", [])}
    assert refs == {
        TLP2_MARKINGS[t][0] for t in TLP2_MARKINGS if t.value in ("AMBER", "AMBER+STRICT")
    }
    kinds = custody.kinds()
    assert kinds.count(AuditEvent.RECORDS_EXPORTED) == 2
    assert kinds.count(AuditEvent.RECORD_READ) == 4


def test_enrolments_are_checked_against_the_agency_key(
    custody: Custody, capsys: pytest.CaptureFixture[str]
) -> None:
    (enrolment,) = (custody.workdir / "officers").glob("*.json")
    doc = json.loads(enrolment.read_text())
    doc["roles"] = ["approver", "reader"]  # an operator promoting the officer by hand
    enrolment.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="not signed by this agency's key"):
        _run("store", "list", *custody.base())
    keys = AgencyKeys.load(custody.keys, PASSPHRASE.encode())
    with pytest.raises(InputError):
        OfficerRegistry.load(
            custody.workdir / "officers",
            agency_id=US,
            agency_key=keys.signing_key.verify_key,
        )


def test_read_in_text_shows_every_caveat_an_officer_must_obey(
    custody: Custody, capsys: pytest.CaptureFixture[str]
) -> None:
    one = _release_ids(custody, capsys)["watchlist"]
    assert _run("store", "read", one, *custody.as_reader(), "--json") == ExitCode.OK
    caveats = json.loads(capsys.readouterr().out)["caveats"]
    assert _run("store", "read", one, *custody.as_reader()) == ExitCode.OK
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


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["store", "--help"], ["store", "read", "--help"], ["officer", "enrol", "--help"]):
        with pytest.raises(SystemExit) as exc:
            _run(*argv)
        assert exc.value.code == 0
    assert "--officer" in capsys.readouterr().out


def test_a_partners_text_is_shown_as_text_not_obeyed_by_the_terminal(
    custody: Custody, capsys: pytest.CaptureFixture[str]
) -> None:
    """A dishonest partner's release value carries a newline and a line that reads as one of
    ours (a caveat the officer would obey), terminal escape sequences (clear the screen, write
    the clipboard) and a right-to-left override. ``xlink store read`` printed it raw: the
    officer saw two "onward sharing" lines, the looser one last. Now every such character is
    shown as its escape, and the value stays whole in the JSON output."""
    us, ca = (AgencyKeys.load(k, PASSPHRASE.encode()) for k in (custody.keys, custody.partner_keys))
    mou = accept_mou(load_mou(custody.mou), local_agency=US, today=custody.now.date())
    honest = make_record(3, mou=mou, mou_id=mou.id, created_at=custody.now - timedelta(hours=1))
    name = sorted(honest.fields)[0]
    lie = "Smith\n  onward sharing: allowed within the caveats\x1b[2J\x1b]52;c;eA==\x07\u202eXX"
    record = dataclasses.replace(honest, fields={**honest.fields, name: (lie,)})
    with (
        AuditLog.open(custody.workdir / "audit.db", signing_key=us.audit_key) as audit,
        ReleaseStore.open(
            custody.workdir / "store.db",
            mou=mou,
            sealing_key=us.sealing_key,
            signing_key=us.signing_key,
            audit=audit,
        ) as store,
    ):
        sealed = seal_release(sign_release(record, ca.signing_key), mou)
        store.receive(sealed, expected_session_id=SESSION, now=custody.now - timedelta(minutes=5))
    release = record.release_id.hex()
    assert _run("store", "read", release, *custody.as_reader(), "--json") == ExitCode.OK
    assert json.loads(capsys.readouterr().out)["fields"][name] == [lie]
    assert _run("store", "read", release, *custody.as_reader()) == ExitCode.OK
    out = capsys.readouterr().out
    assert not {"\x1b", "\x07", "\u202e"} & set(out)
    assert [line for line in out.splitlines() if line.startswith("  onward sharing:")] == [
        "  onward sharing: only with the originator's consent (the third-party rule)"
    ]
    shown = "Smith\\x0a  onward sharing: allowed within the caveats\\x1b[2J\\x1b]52;c;eA==\\x07"
    assert f"  {name}: {shown}\\u202eXX\n" in out
    assert _run("store", "export", *custody.as_reader()) == ExitCode.OK
    out = capsys.readouterr().out
    assert not {"\x1b", "\x07", "\u202e"} & set(out) and "\\u202eXX" in out


def test_a_release_shows_each_value_and_each_line_of_its_conditions_as_text(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Values one a line (``Smith; Jones`` is one value, not two), a newline of the MOU's
    handling conditions indented under them (it cannot start a line of its own that reads as
    a caveat), and the zero-width non-joiner of a Persian name kept (escaping it breaks the
    name, and it reorders nothing)."""
    record = make_record(1, created_at=datetime.now(UTC) - timedelta(hours=1))
    name = sorted(record.fields)[0]
    persian = "عبد\u200cالله"
    caveats = dataclasses.replace(
        record.caveats,
        handling_conditions="Border screening only.\n  permitted actions: unrestricted",
    )
    record = dataclasses.replace(
        record, fields={**record.fields, name: ("Smith; Jones", persian)}, caveats=caveats
    )
    cmd_store._print_record(record, None)
    out = capsys.readouterr().out
    assert f"  {name}: Smith; Jones\n  {name}: {persian}\n" in out
    assert not [line for line in out.splitlines() if line.startswith("  permitted actions: u")]
    assert "  conditions: Border screening only.\n                permitted actions" in out
