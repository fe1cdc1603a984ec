"""``xlink releases pending|approve|deny`` on a real key ceremony (every approval and denial
signed by an enrolled approver and audited in the agency's own log, which must exist: issue 14)
and ``xlink source resolve`` (registered here on a bare parser: the lead wires them into
xlink.cli.main)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from _release_support import CA, MOU, T0, release_record

from xlink.audit import AuditEvent, AuditLog, Entry, verify_log
from xlink.ceremony import demo_ceremony
from xlink.cli import cmd_officer, cmd_releases, cmd_source
from xlink.cli.exitcodes import ExitCode
from xlink.cli.main import main
from xlink.crypto.keyfiles import AgencyKeys, load_audit_verify_key
from xlink.crypto.rand import DeterministicRandom, system_random
from xlink.errors import DecryptionError, InputError
from xlink.officers import OfficerAction, act_message, load_officer_public
from xlink.release import ApprovalQueue, SourceHandleKey, make_source_handle
from xlink.release.handles import open_source_handle_key

NOW = T0.isoformat()  # the two releases were queued at T0; their deadline is two days later
ENROLLED = "2026-02-01T12:00:00+00:00"  # the officers' enrolments start before T0
# Decisions come after every listing of the tests (an act dated before the audit log's latest
# entry is refused: time-before-log).
DECIDED = "2026-03-04T01:00:00+00:00"
DATA = Path(__file__).resolve().parents[2] / "xlink" / "data"
PASSPHRASE = "releases are approved by officers 3"
OFFICER_PASSPHRASE = "an approver's own passphrase 5"


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="xlink")
    sub = parser.add_subparsers(dest="command", required=True)
    cmd_releases.register(sub)
    cmd_source.register(sub)
    cmd_officer.register(sub)
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


@dataclass(frozen=True)
class Queue:
    """CA-RCMP's workdir with two releases waiting for approval, and three officer keys made by
    ``xlink officer keygen``: an enrolled approver, an enrolled reader and a stranger."""

    keys: Path
    workdir: Path
    approver: Path
    reader: Path
    stranger: Path

    def base(self, workdir: Path | None = None) -> list[str]:
        where = self.workdir if workdir is None else workdir
        return ["--workdir", str(where), "--keys", str(self.keys)]

    def decide(self, action: str, item: int, officer: Path, *extra: str) -> int:
        """``xlink releases approve|deny ITEM`` as ``officer``, at ``DECIDED``, as the console
        script runs it (a failure is its exit code and, with ``--json``, its document)."""
        argv = [*self.base(), "--officer", str(officer), "--now", DECIDED, *extra]
        return main(["releases", action, str(item), *argv])

    def entries(self) -> list[Entry]:
        with AuditLog.open(self.workdir / "audit.db", signing_key=None) as log:
            return list(log.entries())

    def pending(self, capsys: pytest.CaptureFixture[str]) -> list[int]:
        assert _run("releases", "pending", *self.base(), "--now", NOW, "--json") == 0
        return [item["id"] for item in json.loads(capsys.readouterr().out)]


def _fingerprint(officer: Path) -> str:
    return load_officer_public(officer).verify_key.fingerprint()


@pytest.fixture
def queue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Queue]:
    monkeypatch.setenv("XLINK_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("XLINK_OFFICER_PASSPHRASE", OFFICER_PASSPHRASE)
    ceremony = demo_ceremony(
        tmp_path / "ceremony",
        passphrase=PASSPHRASE.encode(),
        now=datetime.now(UTC),
        rng=system_random,
    )
    keys = AgencyKeys.load(ceremony.keys[CA], PASSPHRASE.encode())
    work = tmp_path / "ca-work"
    work.mkdir()
    with (
        AuditLog.open(work / "audit.db", signing_key=keys.audit_key) as audit,
        ApprovalQueue.open(work / "queue.db", audit=audit) as q,
    ):
        for i in (1, 2):
            record = release_record(release_id=DeterministicRandom(i)(16))
            q.enqueue(record, record_id=f"CAWL-{i}", mou=MOU, now=T0)
    officers = {role: tmp_path / role for role in ("approver", "reader", "stranger")}
    for role, directory in officers.items():
        keygen = ["--name", f"Officer {role}", "--out", str(directory)]
        assert _run("officer", "keygen", *keygen) == ExitCode.OK
    made = Queue(ceremony.keys[CA], work, **officers)
    for role in ("approver", "reader"):
        enrol = [*made.base(), "--officer", str(officers[role]), "--role", role]
        assert _run("officer", "enrol", *enrol, "--now", ENROLLED) == ExitCode.OK
    yield made


def _signed_by(entry: Entry, officer: Path, action: OfficerAction, detail: str = "") -> bool:
    """Whether the entry's ``officer_sig`` is ``officer``'s signature over the act the entry
    records (xlink.officers.act_message rebuilt from what the entry holds)."""
    message = act_message(
        agency=CA,
        action=action,
        target=bytes.fromhex(str(entry.fields["handle"])),
        detail=detail,
        time=entry.time,
    )
    try:
        load_officer_public(officer).verify_key.verify(
            bytes.fromhex(str(entry.fields["officer_sig"])), message
        )
    except DecryptionError:
        return False
    return True


def test_an_enrolled_approver_approves_and_denies_and_each_is_audited(
    queue: Queue, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run("releases", "pending", *queue.base(), "--now", NOW) == ExitCode.OK
    out = capsys.readouterr().out
    assert "2 release(s)" in out and "CAWL-1" in out and "deadline 2026-03-03T12:00" in out
    assert "OVERDUE" not in out
    later = "2026-03-04T00:00:00+00:00"
    assert _run("releases", "pending", *queue.base(), "--now", later) == ExitCode.OK
    assert capsys.readouterr().out.count("OVERDUE") == 2
    assert [e.kind for e in queue.entries()].count(AuditEvent.RELEASE_OVERDUE) == 2

    assert queue.decide("approve", 1, queue.approver) == ExitCode.OK
    assert "release 1 approved" in capsys.readouterr().out
    deny = ["--reason", "insufficient-grounds", "--json"]
    assert queue.decide("deny", 2, queue.approver, *deny) == ExitCode.OK
    denied = json.loads(capsys.readouterr().out)
    assert denied["state"] == "DENIED" and denied["reason"] == "insufficient-grounds"
    assert denied["approver"] == _fingerprint(queue.approver)

    entries = queue.entries()
    decisions = [
        e for e in entries if e.kind in (AuditEvent.RELEASE_APPROVED, AuditEvent.RELEASE_DENIED)
    ]
    assert [e.kind for e in decisions] == [AuditEvent.RELEASE_APPROVED, AuditEvent.RELEASE_DENIED]
    assert all(e.fields["approver"] == _fingerprint(queue.approver) for e in decisions)
    approval, denial = decisions
    assert _signed_by(approval, queue.approver, OfficerAction.APPROVE)
    assert denial.fields["reason"] == "insufficient-grounds"
    assert _signed_by(denial, queue.approver, OfficerAction.DENY, "insufficient-grounds")
    assert not _signed_by(denial, queue.approver, OfficerAction.APPROVE)
    assert verify_log(queue.workdir / "audit.db", load_audit_verify_key(queue.keys)).ok

    assert queue.pending(capsys) == []
    capsys.readouterr()
    assert queue.decide("approve", 2, queue.approver) == ExitCode.INPUT
    assert "not PENDING" in capsys.readouterr().err
    assert queue.decide("approve", 9, queue.approver) == ExitCode.INPUT
    assert "no queued release with id 9" in capsys.readouterr().err


def test_waiting_lists_what_may_be_sent_and_is_not_delivered(
    queue: Queue, capsys: pytest.CaptureFixture[str]
) -> None:
    """``releases waiting``: an approved release until the partner's receipt for it is in
    (held back for a reciprocal partner, or its receipt lost), and nothing else."""

    def waiting() -> list[tuple[int, str]]:
        argv = ["releases", "waiting", *queue.base(), "--now", DECIDED, "--json"]
        assert _run(*argv) == ExitCode.OK
        return [(item["id"], item["state"]) for item in json.loads(capsys.readouterr().out)]

    assert waiting() == []  # both pending: an officer's to decide, not waiting to be sent
    assert _run("releases", "waiting", *queue.base(), "--now", DECIDED) == ExitCode.OK
    assert capsys.readouterr().out == "no release waiting to be delivered\n"
    assert queue.decide("approve", 1, queue.approver) == ExitCode.OK
    assert queue.decide("approve", 2, queue.approver) == ExitCode.OK
    capsys.readouterr()
    assert waiting() == [(1, "APPROVED"), (2, "APPROVED")]
    assert _run("releases", "waiting", *queue.base(), "--now", DECIDED) == ExitCode.OK
    assert capsys.readouterr().out.count("approved, not sent yet") == 2
    keys = AgencyKeys.load(queue.keys, PASSPHRASE.encode())
    later = datetime.fromisoformat(DECIDED)
    with (
        AuditLog.open(queue.workdir / "audit.db", signing_key=keys.audit_key) as audit,
        ApprovalQueue.open(queue.workdir / "queue.db", audit=audit) as q,
    ):
        q.take(1, now=later)
        q.take(2, now=later)
        q.mark_sent(2, bytes(16), now=later, session_id=bytes(16), receipt=b"its receipt")
    assert waiting() == [(1, "TAKEN")]
    assert _run("releases", "waiting", *queue.base(), "--now", DECIDED) == ExitCode.OK
    out = capsys.readouterr().out
    assert out.startswith("1 release(s) not delivered yet:") and "CAWL-1" in out
    assert "sent or held back, not receipted" in out and "CAWL-2" not in out


def test_an_unenrolled_approver_is_refused_and_the_refusal_audited(
    queue: Queue, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 14: a made-up approver approved a release and the log did not change."""
    assert queue.decide("approve", 1, queue.stranger, "--json") == ExitCode.POLICY
    out = json.loads(capsys.readouterr().out)
    assert (out["ok"], out["exit_code"]) == (False, ExitCode.POLICY)
    assert out["error"]["reasons"] == ["officer-not-enrolled"]
    last = queue.entries()[-1]
    assert last.kind is AuditEvent.DECISION_REFUSED
    assert last.fields["reason"] == "officer-not-enrolled"
    assert last.fields["approver"] == _fingerprint(queue.stranger)
    assert queue.pending(capsys) == [1, 2]  # still waiting for a real approver
    kinds = [e.kind for e in queue.entries()]
    assert AuditEvent.RELEASE_APPROVED not in kinds and AuditEvent.RELEASE_DENIED not in kinds
    # in text, the refusal says what to do about it (it read as a bare "denied by policy")
    assert queue.decide("approve", 1, queue.stranger) == ExitCode.POLICY
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "xlink: denied by policy: officer-not-enrolled"
    assert err[1].startswith("  this officer's key is not enrolled") and "officer enrol" in err[1]


def test_a_reader_is_not_an_approver(queue: Queue, capsys: pytest.CaptureFixture[str]) -> None:
    deny = ["--reason", "insufficient-grounds", "--json"]
    assert queue.decide("deny", 2, queue.reader, *deny) == ExitCode.POLICY
    out = json.loads(capsys.readouterr().out)
    assert (out["ok"], out["exit_code"]) == (False, ExitCode.POLICY)
    assert out["error"]["reasons"] == ["officer-not-authorised"]
    last = queue.entries()[-1]
    assert last.kind is AuditEvent.DECISION_REFUSED
    assert last.fields["reason"] == "officer-not-authorised"
    assert last.fields["approver"] == _fingerprint(queue.reader)
    assert queue.pending(capsys) == [1, 2]


def test_a_wrong_officer_passphrase_opens_nothing(
    queue: Queue, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = queue.entries()
    monkeypatch.setenv("XLINK_OFFICER_PASSPHRASE", "not the approver's passphrase 1")
    capsys.readouterr()
    assert queue.decide("approve", 1, queue.approver) == ExitCode.INPUT
    assert "cannot unlock" in capsys.readouterr().err
    assert queue.entries() == before
    assert queue.pending(capsys) == [1, 2]


def test_a_workdir_without_its_audit_log_is_refused(
    queue: Queue, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A decision needs the workdir's existing audit log; a typo does not start one."""
    typo = tmp_path / "ca-wrok"
    typo.mkdir()
    (typo / "queue.db").write_bytes((queue.workdir / "queue.db").read_bytes())
    officer = ["--officer", str(queue.approver), "--now", NOW]
    with pytest.raises(InputError, match=r"audit\.db does not exist"):
        _run("releases", "approve", "1", *queue.base(typo), *officer)
    with pytest.raises(InputError, match=r"audit\.db does not exist"):
        _run("releases", "pending", *queue.base(typo), "--now", NOW)
    assert not (typo / "audit.db").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match=r"queue\.db does not exist"):
        _run("releases", "pending", *queue.base(empty), "--now", NOW)
    assert not list(empty.iterdir())
    with pytest.raises(SystemExit) as exc:  # no --workdir: a usage error, nothing opened
        _run("releases", "approve", "1", "--keys", str(queue.keys), *officer)
    assert exc.value.code == 2
    assert queue.pending(capsys) == [1, 2]


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["releases", "--help"],
        ["releases", "deny", "--help"],
        ["source", "resolve", "--help"],
    ):
        with pytest.raises(SystemExit) as exc:
            _run(*argv)
        assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--officer" in out and "--workdir" in out and "--keys" in out


@pytest.fixture
def handle_key(queue: Queue) -> SourceHandleKey:
    """CA-RCMP's source-handle key, made as the first exchange makes it (wrapped under the
    sealing key, in the workdir)."""
    keys = AgencyKeys.load(queue.keys, PASSPHRASE.encode())
    return open_source_handle_key(queue.workdir, keys.sealing_key, rng=DeterministicRandom("h"))


def test_source_resolve(
    queue: Queue, handle_key: SourceHandleKey, capsys: pytest.CaptureFixture[str]
) -> None:
    handle = make_source_handle(handle_key, "RCMP-SRC-6624", DeterministicRandom("cli"))
    files = [str(DATA / "ca_watchlist.csv"), str(DATA / "ca_sex_offenders.csv")]
    assert _run("source", "resolve", handle.hex(), *queue.base(), *files) == 0
    assert capsys.readouterr().out.strip() == "RCMP-SRC-6624"
    other = make_source_handle(handle_key, "FBI-SRC-0001", DeterministicRandom("cli"))
    code = _run("source", "resolve", other.hex(), *queue.base(), *files, "--json")
    assert code == ExitCode.INPUT
    assert json.loads(capsys.readouterr().out)["resolved"] is False
    with pytest.raises(InputError):
        _run("source", "resolve", "abcd", *queue.base(), *files)
    # The key file on its own is not the key: it is wrapped under the sealing key.
    raw = (queue.workdir / "source-handle.key").read_bytes()
    assert handle_key.secret() not in raw and handle_key.secret().hex().encode() not in raw


def test_source_resolve_reads_an_older_plain_key_and_refuses_a_missing_one(
    queue: Queue, capsys: pytest.CaptureFixture[str]
) -> None:
    files = [str(DATA / "ca_watchlist.csv")]
    handle = make_source_handle(SourceHandleKey(b"\x05" * 32), "X", DeterministicRandom("w"))
    with pytest.raises(InputError, match="no source-handle key"):
        _run("source", "resolve", handle.hex(), *queue.base(), *files)
    (queue.workdir / "source-handle.key").write_text((b"\x05" * 32).hex() + "\n")
    code = _run("source", "resolve", handle.hex(), *queue.base(), *files, "--json")
    assert code == ExitCode.INPUT  # "X" is not a source of these files, but the key opened
    assert json.loads(capsys.readouterr().out)["resolved"] is False


def test_source_resolve_writes_nothing_next_to_the_files(
    queue: Queue, handle_key: SourceHandleKey, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A lookup must not leave a rejects file beside the agency's own files (it did, inside
    # the installed package's sample data).
    data = tmp_path / "data"
    data.mkdir()
    for name in ("ca_watchlist.csv", "ca_watchlist.mapping.json"):
        (data / name).write_bytes((DATA / name).read_bytes())
    handle = make_source_handle(handle_key, "X", DeterministicRandom("w"))
    before = sorted(p.name for p in data.iterdir())
    _run("source", "resolve", handle.hex(), *queue.base(), str(data / "ca_watchlist.csv"), "--json")
    capsys.readouterr()
    assert sorted(p.name for p in data.iterdir()) == before
