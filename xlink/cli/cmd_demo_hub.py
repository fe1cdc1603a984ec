"""``xlink demo --hub``: three agencies through an information-sharing hub (docs/hub.md).

Keys for CA-RCMP, CA-CBSA, US-DHS and the hub, the bundled multilateral MOU filled and signed
by all three, then five processes on 127.0.0.1 — ``xlink hub serve`` and one ``xlink hub
agent`` per agency, each agency with bundled lists of its own — run one round (every pair
with terms, relayed end to end), then US-DHS fans a flight manifest out to both Canadian
agencies (``xlink hub ask``), and each agency's combined view is read (``xlink hub matches``).
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from xlink.ceremony import HubCeremonyFiles, hub_ceremony
from xlink.cli._common import emit_json, progress_reporter
from xlink.cli._demo_common import (
    PASS_ENV,
    agency_env,
    demo_passphrase,
    output_dir,
    start_process,
    stop_processes,
    wait_port,
    xlink_argv,
)
from xlink.cli.exitcodes import ExitCode
from xlink.crypto.rand import system_random
from xlink.errors import InputError
from xlink.hub.schedule import JobState, Schedule
from xlink.samples import sample_path

__all__ = ["HUB_LISTS", "MANIFEST", "run_hub_demo"]

HUB_LISTS: dict[str, tuple[str, ...]] = {
    "CA-RCMP": ("ca_sex_offenders.csv",),
    "CA-CBSA": ("ca_watchlist.csv",),
    "US-DHS": ("us_watchlist.csv", "us_travellers.csv"),
}
"""Each agency's bundled lists in the hub demo."""
MANIFEST = "us_travellers.csv"
"""The flight manifest US-DHS (CBP) fans out to the Canadian agencies."""
_ROUND_DEADLINE_S = 120.0


def _agency_args(agency: str, c: HubCeremonyFiles, out: Path, port: int) -> list[str]:
    bundles = [x for peer, b in c.bundles.items() if peer != agency for x in ("--bundle", str(b))]
    return [
        "--agency", agency, "--keys", str(c.keys[agency]), "--mou", str(c.mou), *bundles,
        "--hub", f"127.0.0.1:{port}", "--workdir", str(out / agency.lower()),
        "--passphrase-env", PASS_ENV,
    ]  # fmt: skip


def _records_matched(folder: Path) -> int:
    """Our records a partner matched, from that pair's matches files (a record matched by two
    of the partner's records counts once)."""
    records: set[str] = set()
    for path in folder.glob("*.csv"):
        with path.open(encoding="utf-8", newline="") as f:
            records.update(row["own_record_id"] for row in csv.DictReader(f))
    return len(records)


def run_hub_demo(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    out = output_dir(args.out, "xlink-hub-demo-")
    passphrase = demo_passphrase()
    report, close = progress_reporter(not args.json)
    report("keys and the signed multilateral MOU", 0, 1)
    c = hub_ceremony(
        out / "ceremony",
        passphrase=passphrase.encode(),
        now=datetime.now(UTC),
        rng=system_random,
        approval_required=False,  # a demo cannot wait for officers' approvals
    )
    report("keys and the signed multilateral MOU", 1, 1)
    env = agency_env(passphrase)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    hub_dir = out / "hub"
    summary: dict[str, Any] = {"mode": "hub", "output_dir": str(out), "mou": str(c.mou)}
    try:
        port_file = out / "hub.port"
        procs["hub"] = start_process(xlink_argv(
            "hub", "serve", "--mou", str(c.mou), "--key", str(c.hub_key),
            "--workdir", str(hub_dir), "--listen", "127.0.0.1:0", "--port-file", str(port_file),
            "--round", "--passphrase-env", PASS_ENV,
        ), out, "hub", env)  # fmt: skip
        port = wait_port(port_file, procs["hub"], start + 30)
        if port is None:
            raise InputError("the hub did not start (see hub.log)")
        summary["port"] = port
        for agency, lists in HUB_LISTS.items():
            argv = xlink_argv("hub", "agent", *_agency_args(agency, c, out, port),
                              *(str(sample_path(n)) for n in lists))  # fmt: skip
            procs[agency] = start_process(argv, out, f"{agency}-agent", env)
        jobs = _wait_round(hub_dir, procs, report, start + _ROUND_DEADLINE_S)
        summary["round"] = [j.as_json() for j in jobs]
        report("fan-out query (US-DHS asks CA-RCMP and CA-CBSA)", 0, 1)
        asked = subprocess.run(  # noqa: S603
            xlink_argv("hub", "ask", *_agency_args("US-DHS", c, out, port), "--json",
                       str(sample_path(MANIFEST))),
            capture_output=True, env=env, timeout=120, check=False,
        )  # fmt: skip
        report("fan-out query (US-DHS asks CA-RCMP and CA-CBSA)", 1, 1)
        # a failed command's document (ok false) has no partners: the round is then not ok
        summary["query"] = json.loads(asked.stdout or b"{}").get("partners", [])
        summary["combined"] = {}
        for agency in HUB_LISTS:
            shown = subprocess.run(  # noqa: S603
                xlink_argv("hub", "matches", "--workdir", str(out / agency.lower()), "--json"),
                capture_output=True, env=env, timeout=60, check=False,
            )  # fmt: skip
            records = json.loads(shown.stdout or b"{}").get("records", [])
            summary["combined"][agency] = {
                "records_matched": len(records),
                "on_two_lists": sum(1 for r in records if r["lists"] >= 2),
                "by_partner": {
                    peer: _records_matched(out / agency.lower() / "partners" / peer / "matches")
                    for peer in HUB_LISTS
                    if peer != agency
                },
            }
    finally:
        stop_processes(procs)
        close()
    summary["wall_s"] = round(time.perf_counter() - start, 2)
    ok = all(j["state"] == JobState.DONE for j in summary["round"]) and all(
        p["ok"] for p in summary["query"]
    )
    summary["ok"] = ok and bool(summary["query"])
    if args.json:
        emit_json(summary)
    else:
        _print(summary)
    return ExitCode.OK if summary["ok"] else ExitCode.PROTOCOL


def _wait_round(
    hub_dir: Path,
    procs: dict[str, subprocess.Popen[bytes]],
    report: Any,
    deadline: float,
) -> list[Any]:
    db = hub_dir / "schedule.db"
    while time.perf_counter() < deadline:
        if db.exists():
            with Schedule.read_only(db) as schedule:
                jobs = schedule.jobs()
            finished = [j for j in jobs if j.state in (JobState.DONE, JobState.FAILED)]
            if jobs:
                report("round of pairwise exchanges through the hub", len(finished), len(jobs))
                if len(finished) == len(jobs):
                    return jobs
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise InputError(f"{name} stopped (exit {proc.returncode}); see its log")
        time.sleep(0.2)
    raise InputError("the round did not finish in time (see hub.log and the agents' logs)")


def _print(summary: dict[str, Any]) -> None:
    print(f"\nHub demo: three agencies through hub CA-PS-HUB on 127.0.0.1:{summary['port']}")
    print(f"  multilateral MOU: {summary['mou']}")
    print("\nRound 1, every pair with terms, relayed end to end (the hub sees only ciphertext):")
    for j in summary["round"]:
        print(f"  {j['initiator']:8} <-> {j['responder']:8}  {j['state']}"
              f" ({j['attempts']} attempt(s))")  # fmt: skip
    print(f"\nFan-out query: US-DHS asked about its flight manifest ({MANIFEST}); a release")
    print("  delivered in the round is not sent again:")
    for p in summary["query"]:
        if p["ok"]:
            fates = Counter(a["fate"] for a in p["answers"] if a["matched"])
            how = ", ".join(f"{n} {fate}" for fate, n in sorted(fates.items()))
            print(
                f"  {p['partner']:8} {p['matched']} of {len(p['answers'])} traveller(s) "
                f"matched ({how}); {p['received']} new release(s) stored under its caveats"
            )
        else:
            print(f"  {p['partner']:8} no answer: {p['error']}")
    print("\nCombined view per agency (xlink hub matches): own records matched, by partner")
    for agency, c in summary["combined"].items():
        parts = ", ".join(f"{peer} {n}" for peer, n in c["by_partner"].items())
        print(f"  {agency:8} {c['records_matched']} record(s) matched ({parts}); "
              f"{c['on_two_lists']} on both partners' lists")  # fmt: skip
    print(f"\nEverything is under {summary['output_dir']} ({summary['wall_s']} s).")
    print("  " + ("OK" if summary["ok"] else "FAILED: see the logs there"))
