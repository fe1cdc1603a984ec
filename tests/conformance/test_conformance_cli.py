"""`xlink conformance kit | agent | run | list` as an implementer runs them: the agent in its
own process, the runner in another, over mutual TLS on 127.0.0.1; the reports parse; a run
whose cases fail exits 4 and says which."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

XLINK = [sys.executable, "-m", "xlink.cli.main"]
CASES = ["psi.wrong_suite", "psi.duplicate_element", "transfer.digest_mismatch"]


def _xlink(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*XLINK, *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A kit in ``tmp_path/kit`` and `xlink conformance agent` serving it as responder."""
    made = _xlink("conformance", "kit", "kit", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        [*XLINK, "conformance", "agent", "--kit", "kit", "--role", "responder",
         "--listen", "127.0.0.1:0", "--workdir", "agent", "--outcomes", "outcomes.jsonl",
         "--idle-timeout", "1", "--port-file", str(port_file)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not port_file.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the agent did not start listening"
            time.sleep(0.05)
        yield tmp_path, int(port_file.read_text())
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=30)
        assert "Traceback" not in err, err


def _run(base: Path, port: int, role: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return _xlink(
        "conformance", "run", "--kit", "kit", "--peer", f"127.0.0.1:{port}", "--role", role,
        "--outcomes", "outcomes.jsonl", "--workdir", f"runner-{role}", "--idle-timeout", "1",
        "--cases", *CASES, *extra, cwd=base,
    )  # fmt: skip


def test_a_run_in_two_processes_passes_and_writes_its_reports(agent: tuple[Path, int]) -> None:
    base, port = agent
    done = _run(base, port, "responder", "--json", "report.json", "--junit", "junit.xml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "5 cases: 5 OK. PASSED."
    report = json.loads((base / "report.json").read_text())
    assert report["summary"]["passed"] and report["role"] == "responder"
    ids = [c["id"] for c in report["cases"]]
    assert ids == ["sanity.first", *CASES, "sanity.last"]
    wrong_suite = report["cases"][1]
    assert wrong_suite["verdict"] == "OK" and wrong_suite["abort_on_wire"] == "UNSUPPORTED_SUITE"
    assert wrong_suite["reported"]["code"] == "UNSUPPORTED_SUITE"
    suite = ET.parse(base / "junit.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "5" and suite.get("failures") == "0"


def test_a_runner_told_the_wrong_role_stops_after_the_first_case(
    agent: tuple[Path, int],
) -> None:
    """The runner told the wrong role (the agent was started as responder): it says so after
    the first case, exit 3, instead of failing every case."""
    base, port = agent
    done = _run(base, port, "initiator", "--failures-only")
    assert done.returncode == 3, done.stdout + done.stderr
    assert "the agent reports the role responder: run with --role responder" in done.stderr


def test_a_wrong_outcomes_path_stops_the_run_after_the_first_case(
    agent: tuple[Path, int],
) -> None:
    """Not 116 cases waiting for an outcome each: exit 3 and what to fix."""
    base, port = agent
    started = time.monotonic()
    done = _xlink(
        "conformance", "run", "--kit", "kit", "--peer", f"127.0.0.1:{port}", "--role",
        "responder", "--outcomes", "no-such.jsonl", "--workdir", "runner", "--idle-timeout",
        "1", cwd=base,
    )  # fmt: skip
    assert done.returncode == 3, done.stdout + done.stderr
    assert "no-such.jsonl: no outcome line came for the first case" in done.stderr
    assert time.monotonic() - started < 60


def test_list_prints_every_case_with_its_section(tmp_path: Path) -> None:
    done = _xlink("conformance", "list", "--role", "responder", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) >= 110
    assert lines[0].split()[:2] == ["1", "sanity.first"]
    assert any("psi.confirm_answers_swapped" in line and line.endswith("§6.10") for line in lines)


def test_a_failed_run_with_a_report_file_prints_no_json_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--json FILE`` names the run's report file, not a JSON mode: a failure prints its
    error on standard error only, not a failure document on standard output."""
    from xlink.cli.main import main

    argv = ["conformance", "run", "--kit", str(tmp_path / "nokit"), "--peer", "127.0.0.1:9",
            "--role", "initiator", "--outcomes", str(tmp_path / "o"), "--workdir",
            str(tmp_path / "w"), "--json", str(tmp_path / "r.json")]  # fmt: skip
    assert main(argv) == 3
    out, err = capsys.readouterr()
    assert out == "" and "cannot read the kit" in err
