"""``xlink demo`` without ``--in-process``: US-DHS runs ``xlink serve`` and CA-RCMP ``xlink
match``, two processes over mutual TLS on 127.0.0.1, and both outcomes are printed side by side."""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from xlink.ceremony import CeremonyFiles, demo_ceremony
from xlink.cli._common import emit_json, progress_reporter
from xlink.cli._demo_common import (
    AGENCY_FILES,
    BUNDLED_SIDE,
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
from xlink.samples import sample_path

__all__ = ["NETWORK_AGENCIES", "run_network"]

NETWORK_AGENCIES: dict[str, tuple[str, str]] = {  # agency -> (role, the other agency)
    "US-DHS": ("serve", "CA-RCMP"),
    "CA-RCMP": ("match", "US-DHS"),
}
_DEADLINE_S = 55.0


def _agency_argv(
    agency: str, out: Path, ceremony: CeremonyFiles, port: int, port_file: Path
) -> list[str]:
    role, peer = NETWORK_AGENCIES[agency]
    where = (
        ["--listen", "127.0.0.1:0", "--port-file", str(port_file)]
        if role == "serve"
        else ["--peer", f"127.0.0.1:{port}"]
    )
    return xlink_argv(
        role, *where,
        "--agency", agency,
        "--keys", str(ceremony.keys[agency]),
        "--mou", str(ceremony.mou),
        "--peer-bundle", str(ceremony.bundles[peer]),
        "--workdir", str(out / agency.lower()),
        "--passphrase-env", PASS_ENV,
        "--timeout", "30",
        "--json",
        *(str(sample_path(f)) for f in AGENCY_FILES[BUNDLED_SIDE[agency]]),
    )  # fmt: skip


def run_network(args: argparse.Namespace) -> int:
    """Keys, a signed MOU, then `xlink serve` (US-DHS) and `xlink match` (CA-RCMP) as two
    processes on 127.0.0.1; print both outcomes side by side."""
    start = time.perf_counter()
    out = output_dir(args.out, "xlink-demo-")
    passphrase = demo_passphrase()
    report, close = progress_reporter(not args.json)
    # The demo MOU releases straight through (the bundled template asks for an officer's
    # approval of each release, which a demo cannot wait for).
    report("keys and signed MOU", 0, 1)
    ceremony = demo_ceremony(
        out / "ceremony",
        passphrase=passphrase.encode(),
        now=datetime.now(UTC),
        rng=system_random,
        approval_required=False,
    )
    report("keys and signed MOU", 1, 1)
    report("agencies finished (serve, match)", 0, 2)
    env = agency_env(passphrase)
    port_file = out / "port"
    procs: dict[str, subprocess.Popen[bytes]] = {}
    port = 0
    try:
        procs["US-DHS"] = start_process(
            _agency_argv("US-DHS", out, ceremony, 0, port_file), out, "US-DHS", env
        )
        listening = wait_port(port_file, procs["US-DHS"], start + 20)
        if listening is not None:
            port = listening
            procs["CA-RCMP"] = start_process(
                _agency_argv("CA-RCMP", out, ceremony, port, port_file), out, "CA-RCMP", env
            )
        for finished, proc in enumerate(procs.values(), start=1):
            remaining = _DEADLINE_S - (time.perf_counter() - start)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(remaining, 0.1))
            report("agencies finished (serve, match)", finished, 2)
    finally:
        stop_processes(procs)
        close()
    wall = time.perf_counter() - start
    outcomes: dict[str, dict[str, Any]] = {}
    failed: list[str] = []
    for agency in NETWORK_AGENCIES:
        child = procs.get(agency)
        text = (out / f"{agency.lower()}.json").read_text(encoding="utf-8") if child else ""
        if child is None or child.returncode != 0 or not text.strip():
            failed.append(agency)
            continue
        outcomes[agency] = json.loads(text)
    if failed:
        for agency in failed:
            log = out / f"{agency.lower()}.log"
            detail = (
                log.read_text(encoding="utf-8", errors="replace").strip() if log.exists() else ""
            )
            code = procs[agency].returncode if agency in procs else "not started"
            print(f"xlink demo: {agency} failed (exit {code}): {detail[-2000:]}", file=sys.stderr)
        return ExitCode.PROTOCOL
    ca, us = outcomes["CA-RCMP"], outcomes["US-DHS"]
    agree = (
        ca["session_id"] == us["session_id"]
        and ca["decided"] == us["decided"]
        and ca["released"] == us["received"]
        and us["released"] == ca["received"]
    )
    audit_ok = all(o["audit_ok"] for o in outcomes.values())
    summary = {
        "mode": "network",
        "output_dir": str(out),
        "port": port,
        "mou": str(ceremony.mou),
        "mou_id": ca["mou_id"],
        "agencies": [outcomes[a] for a in ("CA-RCMP", "US-DHS")],
        "both_sides_agree": agree,
        "audit_ok": audit_ok,
        "wall_s": round(wall, 2),
    }
    if args.json:
        emit_json(summary)
    else:
        _print_network(summary, ca, us)
    if not audit_ok:
        return ExitCode.TAMPERED
    return ExitCode.OK if agree else ExitCode.PROTOCOL


def _print_network(summary: dict[str, Any], ca: dict[str, Any], us: dict[str, Any]) -> None:
    print(
        f"xlink demo — Canada ↔ United States, two processes over mutual TLS on "
        f"127.0.0.1:{summary['port']}"
    )
    print(f"MOU {summary['mou_id']}, signed by CA-RCMP and US-DHS (straight-through release)")
    print()
    head = ("agency", "role", "records", "rejected", "tokens", "matched", "decided")
    print(f"{head[0]:<9} {head[1]:<6}" + "".join(f"{h:>9}" for h in head[2:]))
    for o in (ca, us):
        cells = (o["records"], o["rejected"], o["tokens"], o["matched_tokens"], o["decided"])
        print(f"{o['agency']:<9} {o['role']:<6}" + "".join(f"{c:>9}" for c in cells))
    print()
    print("releases (signed, sealed, sent; receipts verified by the originator):")
    for o in (ca, us):
        detail = ", ".join(f"{k} {v}" for k, v in o["released"].items()) or "none"
        print(
            f"  {o['agency']} → {o['peer']}: {o['released_total']:>4}  ({detail}); "
            f"denied {o['denied']}, receipts verified {o['receipts_verified']}"
        )
    print()
    for o in (ca, us):
        verdict = "verified" if o["audit_ok"] else f"FAILED ({o['audit_reason']})"
        print(f"audit log {o['agency']:<8} {verdict}, {o['audit_entries']} entries")
    print(
        f"both sides reached the same decisions: {'yes' if summary['both_sides_agree'] else 'NO'}"
    )
    print(f"keys, MOU, stores, audit logs and rejects: {summary['output_dir']}")
    print(f"done in {summary['wall_s']} s")
