"""`xlink check`: the preflight names what would fail before a partner connects."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from xlink.ceremony import CeremonyFiles, demo_ceremony
from xlink.cli.main import main
from xlink.crypto.rand import system_random

DATA = Path(__file__).resolve().parents[2] / "xlink" / "data"
PASSPHRASE = "preflight passphrase, not secret"


@pytest.fixture(scope="module")
def ceremony(tmp_path_factory: pytest.TempPathFactory) -> CeremonyFiles:
    return demo_ceremony(
        tmp_path_factory.mktemp("ceremony"),
        passphrase=PASSPHRASE.encode(),
        now=datetime.now(UTC),
        rng=system_random,
    )


def _run(
    capsys: pytest.CaptureFixture[str], c: CeremonyFiles, work: Path, *extra: str, **kw: str
) -> tuple[int, list[dict[str, object]]]:
    argv = [
        "check", "--agency", "CA-RCMP", "--keys", str(c.keys["CA-RCMP"]), "--mou", str(c.mou),
        "--peer-bundle", str(c.bundles[kw.get("bundle", "US-DHS")]), "--workdir", str(work),
        "--json", *extra,
    ]  # fmt: skip
    code = main(argv)
    doc = json.loads(capsys.readouterr().out)
    assert doc["exit_code"] == code and doc["ok"] is (code == 0)
    return code, doc["checks"]


def test_everything_ready(
    ceremony: CeremonyFiles,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("XLINK_PASSPHRASE", PASSPHRASE)
    files = [str(DATA / "ca_watchlist.csv"), str(DATA / "ca_sex_offenders.csv")]
    code, checks = _run(capsys, ceremony, tmp_path / "w", "--listen", "127.0.0.1:0", *files)
    assert code == 0 and all(c["ok"] for c in checks)
    # 503 and 4, not the manifest's 500 and 7: by default (--bad-field drop-field) the rows
    # whose only fault is an impossible date or a handling code C without conditions load
    assert "503 records (3 with bad fields left out), 4 rows rejected" in str(checks[1]["detail"])
    assert not (tmp_path / "w" / "audit.db").exists()  # nothing audited, nothing opened
    assert "column(s) named like a field" not in str(checks[1]["detail"])
    assert "without a source grading" not in str(checks[1]["detail"])


def test_a_list_whose_columns_are_kept_in_the_payload_is_pointed_to_prepare(
    ceremony: CeremonyFiles,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A list given without its mapping of DOB and Sex loads, with no date of birth or sex to
    match on: the check still passes, and says so."""
    monkeypatch.setenv("XLINK_PASSPHRASE", PASSPHRASE)
    listed = tmp_path / "list.csv"
    listed.write_text("record_id,category,family_name,DOB,Sex\nA1,watchlist,Lee,1980-01-02,F\n")
    code, checks = _run(capsys, ceremony, tmp_path / "w", "--listen", "127.0.0.1:0", str(listed))
    assert code == 0
    assert "2 column(s) named like a field kept in the payload" in str(checks[1]["detail"])
    # and the MOU requires a source grading to release a watchlist record: it has none
    assert "1 record(s) without a source grading, which the MOU requires to release them " in str(
        checks[1]["detail"]
    )
    assert "(watchlist 1): their matches would be denied grading-missing" in str(
        checks[1]["detail"]
    )


@pytest.mark.parametrize(
    ("change", "failing", "code", "says"),
    [
        ("passphrase", 0, 3, "passphrase"),
        ("bundle", 0, 3, "a bundle for CA-RCMP, not US-DHS"),
        ("file", 1, 3, "nope.csv"),
        ("port", 3, 3, "cannot listen on"),
    ],
)
def test_the_first_failure_is_named_and_the_rest_not_checked(
    ceremony: CeremonyFiles,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    change: str,
    failing: int,
    code: int,
    says: str,
) -> None:
    monkeypatch.setenv("XLINK_PASSPHRASE", "wrong" * 5 if change == "passphrase" else PASSPHRASE)
    files = [str(DATA / "ca_watchlist.csv")]
    if change == "file":
        files.append(str(tmp_path / "nope.csv"))
    where = ["--listen", "192.0.2.1:1"] if change == "port" else ["--peer", "127.0.0.1:9"]
    bundle = "CA-RCMP" if change == "bundle" else "US-DHS"
    got, checks = _run(capsys, ceremony, tmp_path / "w", *where, *files, bundle=bundle)
    assert got == code
    assert [c["ok"] for c in checks[:failing]] == [True] * failing
    assert checks[failing]["ok"] is False and says in str(checks[failing]["detail"])
    assert all(c["ok"] is None for c in checks[failing + 1 :])


def test_a_dask_cluster_is_started_and_its_workers_checked(
    ceremony: CeremonyFiles,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("XLINK_PASSPHRASE", PASSPHRASE)
    files = [str(DATA / "ca_watchlist.csv")]
    where = ["--peer", "127.0.0.1:9", "--dask", "local"]
    code, checks = _run(capsys, ceremony, tmp_path / "w", *where, *files)
    assert code == 0, checks
    assert checks[-1]["check"] == "Dask cluster" and checks[-1]["ok"] is True
    assert "each gave the known answers" in str(checks[-1]["detail"])
    # A worker that computes differently (here: this process speaks one suite less, so its
    # known answers changed) fails the preflight as serve and match would fail: exit code 3.
    monkeypatch.setattr("xlink.crypto.workers.SUITES", ())
    code, checks = _run(capsys, ceremony, tmp_path / "w", *where, *files)
    assert code == 3 and checks[-1]["ok"] is False
    assert "compute the group operations differently" in str(checks[-1]["detail"])


def test_a_file_of_rejects_is_named_without_the_scratch_rejects_file(
    ceremony: CeremonyFiles,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The check loads into a scratch directory it removes: its refusal of a file whose every
    row is rejected named the rejects file there, which no longer existed."""
    monkeypatch.setenv("XLINK_PASSPHRASE", PASSPHRASE)
    bad = tmp_path / "bad.csv"
    bad.write_text("record_id,category,family_name\n1,suspect,Smith\n")
    got, checks = _run(capsys, ceremony, tmp_path / "w", "--peer", "127.0.0.1:9", str(bad))
    detail = str(checks[1]["detail"])
    assert got == 3 and "every row (1) was rejected" in detail
    assert "every reason is in" not in detail and "line 2, field 'category'" in detail
