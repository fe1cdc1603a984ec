"""A store or an audit log damaged on disk (random bytes, cut short) is the user's to restore,
not a bug: one line naming the file and exit 3, not a sqlite3 traceback and exit 70."""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from xlink._sqlite import connect, damaged_as_input
from xlink.audit import AuditLog
from xlink.ceremony import demo_ceremony
from xlink.cli.exitcodes import ExitCode
from xlink.cli.main import main
from xlink.crypto.keyfiles import AgencyKeys
from xlink.crypto.rand import system_random
from xlink.errors import DamagedDatabase, InputError
from xlink.policy import accept_mou, load_mou
from xlink.store import ReleaseStore

PASSPHRASE = "stores are read by officers 7"


def _damage(path: Path, how: str) -> None:
    for extra in ("-wal", "-shm"):
        Path(f"{path}{extra}").unlink(missing_ok=True)
    if how == "random":
        path.write_bytes(os.urandom(4096))
    else:  # cut short: the header stays, the pages it names do not
        path.write_bytes(path.read_bytes()[:1500])


@pytest.mark.parametrize("how", ["random", "cut"])
@pytest.mark.parametrize("damaged", ["store.db", "audit.db"])
def test_a_damaged_store_or_audit_log_is_named_and_exits_3(
    tmp_path: Path,
    damaged: str,
    how: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = datetime.now(UTC)
    ceremony = demo_ceremony(
        tmp_path / "ceremony", passphrase=PASSPHRASE.encode(), now=now, rng=system_random
    )
    keys = AgencyKeys.load(ceremony.keys["US-DHS"], PASSPHRASE.encode())
    mou = accept_mou(load_mou(ceremony.mou), local_agency="US-DHS", today=now.date())
    work = tmp_path / "work"
    work.mkdir()
    with AuditLog.open(work / "audit.db", signing_key=keys.audit_key) as audit:
        ReleaseStore.open(
            work / "store.db", mou=mou, sealing_key=keys.sealing_key, signing_key=None, audit=audit
        ).close()
    _damage(work / damaged, how)
    monkeypatch.setenv("XLINK_PASSPHRASE", PASSPHRASE)
    argv = ["store", "list", "--workdir", str(work), "--keys", str(ceremony.keys["US-DHS"])]
    code = main([*argv, "--mou", str(ceremony.mou)])
    err = capsys.readouterr().err
    assert code == ExitCode.INPUT, err
    assert "Traceback" not in err and damaged in err and "not a database xlink can read" in err


def test_only_a_damaged_file_is_input_other_sqlite_errors_pass(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    path.write_bytes(b"SQLite format 3\x00" + os.urandom(84))  # a header that lies
    with pytest.raises(InputError, match=r"x\.db: not a database xlink can read") as raised:
        connect(path).execute("SELECT * FROM sqlite_master").fetchall()
    # and to code that handles a store that fails (the query service), a store that failed
    assert isinstance(raised.value, DamagedDatabase | sqlite3.DatabaseError)
    assert isinstance(raised.value, sqlite3.DatabaseError)
    with pytest.raises(sqlite3.OperationalError), damaged_as_input(path):
        raise sqlite3.OperationalError("database is locked")
