"""`xlink query serve|ask|manifest` end to end over mutual TLS on 127.0.0.1.

One holder for the module: `xlink query serve` as a process (CA-RCMP, its bundled watchlist and
sex-offender registry), keys and a signed MOU from xlink.ceremony.demo_ceremony, straight-through
release. The asker (US-DHS) runs `xlink query ask` / `manifest` through `xlink.cli.main.main` in
this process, in one workdir.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from xlink.ceremony import CeremonyFiles, demo_ceremony
from xlink.cli.exitcodes import ExitCode
from xlink.cli.main import build_parser, main
from xlink.crypto.rand import system_random

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "xlink" / "data"
CA, US = "CA-RCMP", "US-DHS"
HOLDER_FILES = [DATA / "ca_sex_offenders.csv", DATA / "ca_watchlist.csv"]
PASSPHRASE = "query cli passphrase, not secret"
ENV_VAR = "XLINK_QUERY_CLI_PASS"
QUOTA = 100_000  # OPRF evaluations a day: a 500-traveller manifest takes about 13,500


@dataclass
class Holder:
    ceremony: CeremonyFiles
    base: Path
    port: int
    process: subprocess.Popen[str]

    def asker(self, *args: str) -> list[str]:
        """The common options of `xlink query ask|manifest` for US-DHS asking this holder."""
        c = self.ceremony
        return [
            "--agency", US,
            "--keys", str(c.keys[US]),
            "--mou", str(c.mou),
            "--peer-bundle", str(c.bundles[CA]),
            "--workdir", str(self.base / US),
            "--passphrase-env", ENV_VAR,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--timeout", "20",
            *args,
        ]  # fmt: skip


def _truth() -> dict[str, str]:
    """US traveller id -> CA registry id of the same person (xlink/data/truth.csv)."""
    with (DATA / "truth.csv").open(encoding="utf-8", newline="") as f:
        return {
            r["us_record_id"]: r["ca_record_id"]
            for r in csv.DictReader(f)
            if r["ca_file"] == "ca_sex_offenders.csv" and r["us_file"] == "us_travellers.csv"
        }


def _row(name: str, column: str, value: str) -> dict[str, str]:
    with (DATA / name).open(encoding="utf-8-sig", newline="") as f:
        return next(r for r in csv.DictReader(f) if r[column] == value)


@pytest.fixture(scope="module")
def holder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Holder]:
    base = tmp_path_factory.mktemp("query-cli")
    c = demo_ceremony(
        base / "ceremony",
        passphrase=PASSPHRASE.encode(),
        now=datetime.now(UTC),
        rng=system_random,
        approval_required=False,
        query_quota_per_day=QUOTA,
    )
    port_file = base / "port"
    # two records of a category the bundled MOU does not list: loaded, then kept out
    other = base / "ca_other.jsonl"
    other.write_text(
        "".join(
            json.dumps({"record_id": f"CA-OTHER-{i}", "category": "other", "family_name": n}) + "\n"
            for i, n in enumerate(("Neumann", "Okafor"))
        ),
        encoding="utf-8",
    )
    serve = [
        sys.executable, "-m", "xlink.cli.main", "query", "serve",
        "--agency", CA,
        "--keys", str(c.keys[CA]),
        "--mou", str(c.mou),
        "--peer-bundle", str(c.bundles[US]),
        "--workdir", str(base / CA),
        "--passphrase-env", ENV_VAR,
        "--port", "0",
        "--port-file", str(port_file),
        *(str(f) for f in (*HOLDER_FILES, other)),
    ]  # fmt: skip
    process = subprocess.Popen(
        serve,
        env={**os.environ, ENV_VAR: PASSPHRASE},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "query serve never listened"
            time.sleep(0.05)
        yield Holder(c, base, int(port_file.read_text()), process)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, PASSPHRASE)


def _stored(holder: Holder, capsys: pytest.CaptureFixture[str]) -> dict[str, str | None]:
    """The asker's store: release id -> the own record it matched (`xlink store list`)."""
    c = holder.ceremony
    workdir = str(holder.base / US)
    args = [
        "store", "list", "--workdir", workdir, "--mou", str(c.mou), "--keys", str(c.keys[US]),
        "--passphrase-env", ENV_VAR, "--json",
    ]  # fmt: skip
    code = main(args)
    out = capsys.readouterr().out
    assert code == ExitCode.OK
    return {r["release_id"]: r["own_record_id"] for r in json.loads(out)}


@pytest.mark.usefixtures("env")
def test_a_traveller_on_the_registry_is_matched_and_released(
    holder: Holder, capsys: pytest.CaptureFixture[str]
) -> None:
    # A traveller whose registry counterpart the bundled truth names, asked about with flags.
    traveller = next(t for t, ca in sorted(_truth().items()) if ca == "CASO-00007")
    row = _row("us_travellers.csv", "pax_id", traveller)
    month, day, year = row["dob"].split("/")  # the US file writes MM/DD/YYYY
    flags = [
        "--family", row["surname"],
        "--given", row["given_names"],
        "--dob", f"{year}-{month}-{day}",
        "--sex", row["sex"],
        "--document", row["passport_number"],
        "--nationality", row["nationality"],
    ]  # fmt: skip

    assert main(["query", "ask", *holder.asker(*flags, "--json")]) == ExitCode.OK
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is True and (out["agency"], out["holder"]) == (US, CA)
    assert out["travellers"] == out["matched"] == out["released"] == out["received"] == 1
    assert 0 < out["evaluations"] < 40 and out["table_entries"] > 0
    (answer,) = out["answers"]
    assert answer["record_id"] == "traveller-1" and answer["matched"] is True
    assert answer["fate"] == "sent" and answer["category"] == "sex_offender"
    # The release is in the asker's store, filed under the traveller it matched; no registry
    # id reaches the asker.
    assert _stored(holder, capsys) == {answer["release_id"]: "traveller-1"}
    assert "CASO-" not in json.dumps(out)

    # Asked again (text output): a match, delivered before, nothing stored twice.
    assert main(["query", "ask", *holder.asker(*flags, "--id", "again")]) == ExitCode.OK
    text = capsys.readouterr().out
    assert f"again: match (score {answer['score']}): delivered before" in text
    assert answer["release_id"] in text
    assert len(_stored(holder, capsys)) == 1


@pytest.mark.usefixtures("env")
def test_a_manifest_finds_the_travellers_on_the_holders_lists(
    holder: Holder, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = str(DATA / "us_travellers.csv")
    assert main(["query", "manifest", *holder.asker(manifest, "--json")]) == ExitCode.OK
    out = json.loads(capsys.readouterr().out)
    # 501 of 502 rows: the row with birth year 1700 loads without it (--bad-field drop-field,
    # the default); the row without a name is still rejected
    assert out["travellers"] == 501 and out["rejected"] == 1
    matched = {a["record_id"]: a for a in out["answers"]}
    assert len(matched) == out["matched"] >= 30
    assert all(a["matched"] and a["record_id"].startswith("USTR-") for a in matched.values())
    # Straight-through: every match is released now, or was before (the test above).
    assert out["released"] + out["delivered_before"] == out["matched"]
    assert out["released"] == out["received"] and out["pending"] == out["denied"] == 0
    assert set(out["released_by_category"]) <= {"sex_offender", "watchlist"}
    found = set(_truth()) & set(matched)
    assert len(found) >= 0.7 * len(_truth())
    stored = _stored(holder, capsys)
    for a in matched.values():
        if a["fate"] == "sent":
            assert stored[a["release_id"]] == a["record_id"]
    assert "CASO-" not in json.dumps(out) and "CAWL-" not in json.dumps(out)

    # The text summary, once more: everything was delivered before.
    assert main(["query", "manifest", *holder.asker(manifest)]) == ExitCode.OK
    text = capsys.readouterr().out
    n = out["matched"]
    assert f"matched {n}: released 0 (none), pending approval 0, denied 0, " in text
    assert f"delivered before {n}" in text
    lines = [line for line in text.splitlines() if line.startswith("USTR-")]
    assert sorted(line.split(":")[0] for line in lines) == sorted(matched)


@pytest.mark.usefixtures("env")
def test_a_bad_traveller_flag_is_a_usage_error_naming_the_field(
    holder: Holder, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = ["--family", "Neumann", "--given", "Wolfgang", "--dob", "2000-02-31"]
    assert main(["query", "ask", *holder.asker(*bad)]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "--dob: field 'birth_date': impossible date" in err
    # The loaders' rejects file would hold the traveller: it is not left behind.
    assert not list((holder.base / US / "rejects").glob("query-traveller*"))

    assert main(["query", "ask", *holder.asker(*bad, "--json")]) == ExitCode.USAGE
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False and doc["exit_code"] == ExitCode.USAGE
    assert "birth_date" in doc["error"]["detail"]

    # JSON with a field that is not a canonical name, and no traveller at all.
    unknown = ["--traveller", '{"surname": "Neumann", "birth_date": "2000-05-12"}']
    assert main(["query", "ask", *holder.asker(*unknown)]) == ExitCode.USAGE
    assert "unknown field(s) 'surname'" in capsys.readouterr().err
    assert main(["query", "ask", *holder.asker()]) == ExitCode.USAGE
    assert "no traveller" in capsys.readouterr().err


def test_the_holder_prints_its_table_and_stops_on_sigterm(holder: Holder) -> None:
    # Last: it ends the module's holder.
    holder.process.send_signal(signal.SIGTERM)
    out, err = holder.process.communicate(timeout=20)
    assert holder.process.returncode == ExitCode.INTERRUPTED, err
    # 503: the bundled lists' three rows whose only fault is a field load without it
    assert f"{CA} query table for {US}" in out and "503 records, " in out
    assert "withheld 2 records: their category is not in the MOU" in out
    assert f"listening on 127.0.0.1:{holder.port}" in out
    assert f"quota {QUOTA} OPRF evaluations per UTC day" in out
    assert "xlink: interrupted" in err
    # a line per asker connection, counts only (it printed nothing until it was stopped)
    served = re.findall(
        r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ session [0-9a-f]{16}…: (\S+).*, (\d+) evaluations, "
        r"(\d+) of (\d+) requested released$",
        out,
        re.M,
    )
    assert served and ("completed", "0", "0", "0") not in served
    assert any(int(released) > 0 for _, _, released, _ in served)
    assert "USTR-" not in out and "CAWL-" not in out  # no traveller, no record


def test_the_commands_docs_show_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every `xlink` command of docs/query.md's console blocks, and of the query section of
    docs/cli.md, parses (the way tests/docs/test_quickstart.py checks the quickstart's)."""
    spec = importlib.util.spec_from_file_location(
        "_quickstart_blocks", ROOT / "tests" / "docs" / "test_quickstart.py"
    )
    assert spec is not None and spec.loader is not None
    blocks = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, blocks)  # its dataclasses look themselves up
    spec.loader.exec_module(blocks)
    cli = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    section = cli[cli.index("## `xlink query`") : cli.index("## `xlink check`")]
    parser = build_parser()
    seen = []
    for text in ((ROOT / "docs" / "query.md").read_text(encoding="utf-8"), section):
        for line, command in blocks.console_commands(text):
            words = shlex.split(command)
            assert words[0] == "xlink", (line, command)
            try:
                parser.parse_args(words[1:])
            except SystemExit:
                pytest.fail(f"line {line}: {command!r} does not parse")
            seen.append(" ".join(words[1:3]))
    assert set(seen) == {
        "query serve",
        "query ask",
        "query manifest",
        "releases pending",
        "releases approve",
    }
