"""The ``xlink`` command: exit codes, JSON output, and files written where the user said."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from xlink.cli.exitcodes import ExitCode
from xlink.cli.main import main
from xlink.samples import sample_path


def _json_out(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    out = capsys.readouterr().out
    parsed = json.loads(out)
    assert isinstance(parsed, dict)
    return parsed


def test_console_script_is_installed_and_has_help() -> None:
    exe = Path(sys.executable).with_name("xlink")
    proc = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0
    commands = ("prepare", "eval", "schema", "demo", "releases", "store", "source", "audit")
    for command in (*commands, "keygen", "mou", "serve", "match", "synth", "query"):
        assert command in proc.stdout


@pytest.mark.parametrize(
    "command",
    [
        "prepare",
        "eval",
        "schema",
        "demo",
        "releases",
        "store",
        "source",
        "audit",
        "keygen",
        "mou",
        "serve",
        "match",
        "synth",
        "query",
        "query serve",
        "query ask",
        "query manifest",
    ],
)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*command.split(), "--help"])
    assert exc.value.code == 0
    assert "usage: xlink " + command in capsys.readouterr().out


def test_demo_summarises_both_agencies_and_writes_rejects_to_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    package_data = sample_path("ca_watchlist.csv").parent
    before = sorted(p.name for p in package_data.iterdir())
    assert main(["demo", "--in-process", "--out", str(tmp_path), "--json"]) == ExitCode.OK
    summary = _json_out(capsys)
    agencies = summary["agencies"]
    assert isinstance(agencies, list)
    by_name = {a["agency"]: a for a in agencies}
    # The manifest's 500/7 and 800/5 reject every bad row; by default (drop-field) the rows
    # whose only fault is a field a record may lack load without it (a date keeps what is
    # readable of it): CA's two impossible dates and its handling code C without conditions,
    # US's impossible date and year 1700.
    assert by_name["CA (RCMP/CBSA)"]["records"] == 503
    assert by_name["US (DHS/CBP)"]["records"] == 802
    assert by_name["CA (RCMP/CBSA)"]["rejected"] == 4
    assert by_name["US (DHS/CBP)"]["rejected"] == 3
    exchange = summary["exchange"]
    assert isinstance(exchange, dict)
    assert exchange["both_sides_agree"] is True
    assert exchange["decided_matches"] > 0
    assert exchange["candidate_pairs"] >= exchange["decided_matches"]
    truth = summary["ground_truth"]
    assert isinstance(truth, dict)
    # Measured 1.0 / 0.904 on the bundled data; a drop below these means a regression.
    assert truth["precision"] >= 0.99
    assert truth["recall"] >= 0.88
    rejects = sorted(p.name for p in tmp_path.rglob("*.rejects.csv"))
    assert rejects == [
        "ca_sex_offenders.rejects.csv",
        "ca_watchlist.rejects.csv",
        "us_travellers.rejects.csv",
        "us_watchlist.rejects.csv",
    ]
    # Nothing is written inside the installed package.
    assert sorted(p.name for p in package_data.iterdir()) == before


def test_prepare_reports_rejects_and_strict_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = sample_path("us_watchlist.csv")
    shutil.copy(src, tmp_path / "us.csv")
    shutil.copy(sample_path("us_watchlist.mapping.json"), tmp_path / "us.mapping.json")
    code = main(["prepare", str(tmp_path / "us.csv"), "--json", "--no-duplicates"])
    assert code == ExitCode.OK
    summary = _json_out(capsys)
    # 301 and 2: line 297's only fault is an impossible date of birth, so by default
    # (--bad-field drop-field) it loads with what is readable of it; the manifest's 300/3 is
    # reject-row's count
    assert summary["records"] == 301
    assert summary["rejected"] == 2
    assert (summary["with_field_errors"], summary["field_errors"]) == (1, 1)
    files = summary["files"]
    assert isinstance(files, list)
    assert Path(str(files[0]["rejects_path"])).is_file()
    field_errors = Path(str(files[0]["field_errors_path"]))
    assert field_errors == tmp_path / "us.field-errors.csv"
    assert field_errors.read_text().splitlines() == [
        "line,field,reason",
        "297,dob,impossible date (its year and month are readable)",
    ]
    assert summary["tokens_per_record"] > 5
    strict = ["prepare", str(tmp_path / "us.csv"), "--strict", "--no-duplicates", "--json"]
    assert main(strict) == ExitCode.REJECTS


def test_prepare_bad_field_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(sample_path("us_watchlist.csv"), tmp_path / "us.csv")
    shutil.copy(sample_path("us_watchlist.mapping.json"), tmp_path / "us.mapping.json")
    args = ["prepare", str(tmp_path / "us.csv"), "--no-duplicates"]
    assert main([*args, "--bad-field", "reject-row", "--json"]) == ExitCode.OK
    summary = _json_out(capsys)
    assert (summary["records"], summary["rejected"], summary["field_errors"]) == (300, 3, 0)
    assert not (tmp_path / "us.field-errors.csv").exists()
    assert main([*args, "--rejects-dir", str(tmp_path / "rej")]) == ExitCode.OK
    out = capsys.readouterr().out
    assert out.splitlines()[0] == (
        f"loaded 301 (1 with bad fields left out), rejected 2 (see rejects: "
        f"{tmp_path / 'rej' / 'us.rejects.csv'}; field errors: "
        f"{tmp_path / 'rej' / 'us.field-errors.csv'})"
    )
    with pytest.raises(SystemExit):
        main([*args, "--bad-field", "drop"])


def test_prepare_reads_the_clock_for_dates_of_birth_and_refuses_a_file_of_rejects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command passes its clock's date to the loaders: a date of birth after it is a field
    error. A file whose every row is rejected exits 3 (it exited 0 with no record), naming the
    first reject's line and field."""
    path = tmp_path / "list.csv"
    path.write_text(
        "record_id,category,family_name,given_name,birth_date\n"
        "1,watchlist,Smith,Ann,2199-03-04\n2,watchlist,Roe,Bo,1980-03-04\n"
    )
    assert main(["prepare", str(path), "--json", "--no-duplicates"]) == ExitCode.OK
    summary = _json_out(capsys)
    assert (summary["records"], summary["field_errors"]) == (2, 1)
    assert (tmp_path / "list.field-errors.csv").read_text().splitlines()[1] == (
        "2,birth_date,a date of birth after the date of the load"
    )
    path.write_text(path.read_text().replace("watchlist", "suspect"))
    assert main(["prepare", str(path), "--no-duplicates"]) == ExitCode.INPUT
    err = capsys.readouterr().err
    assert "every row (2) was rejected" in err and "line 2, field 'category'" in err
    assert "Smith" not in err and (tmp_path / "list.rejects.csv").is_file()
    # with --json, the failure is the one JSON document on standard output, as for serve/match
    assert main(["prepare", str(path), "--no-duplicates", "--json"]) == ExitCode.INPUT
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False and doc["exit_code"] == ExitCode.INPUT
    assert doc["error"]["type"] == "NothingLoaded" and "Smith" not in doc["error"]["detail"]


def test_an_interrupted_json_run_still_prints_its_one_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C during a --json run printed no document: a script reading standard output got
    nothing to parse. It gets the failure document, exit 130, 'interrupted'."""
    import xlink.cli.cmd_prepare as cmd_prepare

    def interrupted(*_args: object, **_kwargs: object) -> object:
        raise KeyboardInterrupt

    monkeypatch.setattr(cmd_prepare, "prepare_side", interrupted)
    path = tmp_path / "list.csv"
    path.write_text("record_id,category,family_name\nr1,watchlist,Novak\n")
    assert main(["prepare", str(path), "--json"]) == ExitCode.INTERRUPTED
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["ok"] is False and doc["exit_code"] == ExitCode.INTERRUPTED
    assert (doc["error"]["type"], doc["error"]["detail"]) == ("KeyboardInterrupt", "interrupted")
    assert "xlink: interrupted" in captured.err and "Traceback" not in captured.err


def test_prepare_missing_file_is_an_input_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["prepare", str(tmp_path / "missing.csv")]) == ExitCode.INPUT
    err = capsys.readouterr().err
    assert "missing.csv" in err
    assert "Traceback" not in err


def test_prepare_unknown_suffix_is_an_input_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "records.xlsx"
    path.write_bytes(b"PK\x03\x04")
    assert main(["prepare", str(path)]) == ExitCode.INPUT
    assert "unknown file type" in capsys.readouterr().err


def test_prepare_finds_duplicates_inside_one_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "dups.csv"
    path.write_text(
        "record_id,category,given_name,family_name,birth_date\n"
        "A1,watchlist,Dmitry,Ivanov,1980-03-14\n"
        "A2,watchlist,Dmitriy,Ivanov,1980-03-14\n"
        "A3,watchlist,Maria,Lopez,1975-01-02\n",
        encoding="utf-8",
    )
    assert main(["prepare", str(path), "--json"]) == ExitCode.OK
    summary = _json_out(capsys)
    pairs = [(d["left"], d["right"]) for d in summary["duplicates"]]  # type: ignore[union-attr, index]
    assert pairs == [("A1", "A2")]


def test_schema_reports_every_error_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "id": "",
                "version": 0,
                "keys": [
                    {"name": "a", "version": 1, "fields": ["no_such_field"]},
                    {"name": "a", "version": 1, "fields": ["family"], "m": 0.1, "u": 0.5},
                ],
            }
        ),
        encoding="utf-8",
    )
    assert main(["schema", str(bad)]) == ExitCode.INPUT
    err = capsys.readouterr().err
    assert err.count("\n  - ") >= 4, err


def test_schema_digest_of_the_default_schema_is_stable(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "--json"]) == ExitCode.OK
    first = _json_out(capsys)
    assert main(["schema", "--json"]) == ExitCode.OK
    assert _json_out(capsys)["digest"] == first["digest"]
    assert len(str(first["digest"])) == 64
    # the members that change tokens without changing the keys are shown
    assert first["placeholder_names"] is True and first["full_birth_dates"] is True
    assert first["min_evidence_groups"] == 2  # and the rule on what may decide a pair
    assert first["evidence"]["address"] == ["postcode", "street"]  # type: ignore[index]
    assert main(["schema"]) == ExitCode.OK
    out = capsys.readouterr().out
    assert "  placeholder_names, full_birth_dates\n" in out
    assert "  a decision needs agreement on 2 of: address (postcode, street); birth (" in out


def test_a_bug_exits_70_with_its_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import xlink.cli.cmd_schema as cmd_schema

    def broken(_args: object) -> int:
        raise ZeroDivisionError("simulated bug")

    monkeypatch.setattr(cmd_schema, "run", broken)
    assert main(["schema"]) == ExitCode.INTERNAL
    err = capsys.readouterr().err
    assert "ZeroDivisionError" in err and "internal error" in err


def test_prepare_names_records_that_cannot_match(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "thin.csv"
    path.write_text(
        "record_id,category,given_name,family_name,birth_date\n"
        "A1,watchlist,Dmitry,Ivanov,1980-03-14\n"
        "A2,watchlist,,Madonna,\n",
        encoding="utf-8",
    )
    assert main(["prepare", str(path), "--json", "--no-duplicates"]) == ExitCode.OK
    assert _json_out(capsys)["untokenised_records"] == ["A2"]
