"""``xlink demo``: the main job on bundled synthetic data, Canada ↔ United States.

It prepares both agencies' bundled files (a Canadian watchlist and sex-offender registry; a US
watchlist and traveller manifest), shows what each side would put into an exchange, and writes
every rejected row to the output directory. Nothing is written inside the installed package.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from xlink.ceremony import CeremonyFiles, demo_ceremony
from xlink.cli._common import emit_json, progress_reporter
from xlink.cli.exitcodes import ExitCode
from xlink.crypto.keyfiles import MIN_PASSPHRASE_BYTES
from xlink.crypto.rand import system_random
from xlink.decide import Decision, decide, reveal_bound_for
from xlink.errors import InputError
from xlink.exchange import Party, exchange_in_memory
from xlink.linkage.schema import load_default_schema, schema_digest
from xlink.prepare import PreparedSide, prepare_side
from xlink.protocol.events import PsiResult
from xlink.protocol.session import PsiSession

__all__ = [
    "AGENCY_FILES",
    "DEMO_MOU_DIGEST",
    "DEMO_MOU_ID",
    "bundled_path",
    "register",
    "run",
    "run_in_process",
    "run_network",
]

# Signed MOU documents are not built yet; the demo binds its session to a fixed id and digest.
DEMO_MOU_ID = "MOU-CA-US-DEMO-2026"
DEMO_MOU_DIGEST = hashlib.sha256(b"xlink demo MOU: CA-RCMP / US-DHS, 2026").digest()

AGENCY_FILES: dict[str, tuple[str, ...]] = {
    "CA (RCMP/CBSA)": ("ca_watchlist.csv", "ca_sex_offenders.csv"),
    "US (DHS/CBP)": ("us_watchlist.csv", "us_travellers.csv"),
}


def bundled_path(name: str) -> Path:
    """Path of a bundled sample file (package data under ``xlink/data``)."""
    return Path(str(resources.files("xlink").joinpath("data", name)))


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="run the bundled Canada ↔ US example end to end",
        description="Make keys for CA-RCMP and US-DHS and a signed MOU in a temporary "
        "directory, then run the two agencies as separate processes (`xlink serve`, `xlink "
        "match`) over mutual TLS on 127.0.0.1 with their bundled synthetic files: private set "
        "intersection, decided matches, sealed releases and receipts, audit logs. Prints a "
        "summary. With --in-process: both sides in this process, no network, compared with "
        "the bundled ground truth. Exit 0 ok, 4 an agency failed, 7 an audit log failed.",
    )
    p.add_argument("--out", metavar="DIR", help="output directory (default: a temporary one)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.add_argument(
        "--in-process",
        action="store_true",
        help="run both agencies in this process, without keys, MOU or network (and compare "
        "with the bundled ground truth)",
    )
    p.add_argument(
        "--reveal-all",
        action="store_true",
        help="with --in-process: reveal every record with a matched token instead of only those "
        "that can reach the threshold (to measure what the minimal reveal saves; "
        "docs/leakage.md)",
    )
    p.set_defaults(handler=run)


def _side_summary(name: str, side: PreparedSide) -> dict[str, object]:
    return {
        "agency": name,
        "files": [
            {"source": Path(x.source).name, "loaded": x.loaded, "rejected": x.rejected}
            for x in side.loads
        ],
        "records": side.loaded,
        "rejected": side.rejected,
        "tokens": len(side.tokens),
        "tokens_per_record": round(side.tokens.tokens_per_record(), 2),
    }


def _truth_pairs() -> set[tuple[str, str]]:
    with bundled_path("truth.csv").open(encoding="utf-8", newline="") as f:
        return {(row["ca_record_id"], row["us_record_id"]) for row in csv.DictReader(f)}


def _by_category(side: PreparedSide, decision: Decision) -> dict[str, int]:
    category = {r.record_id: r.category.value for r in side.records}
    counts = Counter(category[m.local_record_id] for m in decision.matches)
    return dict(sorted(counts.items()))


def run(args: argparse.Namespace) -> int:
    if args.in_process:
        return run_in_process(args)
    return run_network(args)


def run_in_process(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="xlink-demo-"))
    out.mkdir(parents=True, exist_ok=True)
    schema = load_default_schema()
    report, close = progress_reporter(not args.json)
    sides: dict[str, PreparedSide] = {}
    wire = {"messages": 0, "bytes": 0}

    def count(_sender: PsiSession, message: bytes) -> None:
        wire["messages"] += 1
        wire["bytes"] += len(message)
        report("private set intersection", wire["messages"])

    start = time.perf_counter()
    try:
        for agency, files in AGENCY_FILES.items():
            sides[agency] = prepare_side(
                [bundled_path(f) for f in files],
                schema=schema,
                rejects_dir=out / agency.split()[0].lower(),
                progress=report,
            )
        (ca_name, ca), (us_name, us) = sides.items()
        ca_result, us_result = exchange_in_memory(
            Party("CA-RCMP", ca.tokens),
            Party("US-DHS", us.tokens),
            schema=schema,
            mou_id=DEMO_MOU_ID,
            mou_digest=DEMO_MOU_DIGEST,
            observer=count,
            reveal_bound=None if args.reveal_all else reveal_bound_for(schema),
        )
    finally:
        close()
    assert isinstance(ca_result, PsiResult) and isinstance(us_result, PsiResult)
    ca_decision, us_decision = decide(ca_result, schema), decide(us_result, schema)
    wall = time.perf_counter() - start

    # Referee's view, possible only because this demo holds both sides: resolve each side's
    # peer references through the other side's own result (PsiResult.revealed), compare the
    # two sides' decisions and check them against the bundled ground truth.
    joined = {(m.local_record_id, us_result.revealed[m.peer_ref]) for m in ca_decision.matches}
    us_view = {(ca_result.revealed[m.peer_ref], m.local_record_id) for m in us_decision.matches}
    loaded = {r.record_id for s in sides.values() for r in s.records}
    truth = {p for p in _truth_pairs() if p[0] in loaded and p[1] in loaded}
    hits = len(joined & truth)
    summary = {
        "output_dir": str(out),
        "schema": {"id": schema.id, "version": schema.version},
        "schema_digest": schema_digest(schema).hex(),
        "mou_id": DEMO_MOU_ID,
        "agencies": [_side_summary(name, side) for name, side in sides.items()],
        "exchange": {
            "session_id": ca_result.session_id.hex(),
            "messages": wire["messages"],
            "bytes": wire["bytes"],
            "matched_tokens": ca_result.matched_tokens,
            # Disclosure (docs/leakage.md): records of each side the other side saw revealed.
            "revealed_records": {
                ca_name: len(set(ca_result.revealed)),
                us_name: len(set(us_result.revealed)),
            },
            "candidate_pairs": ca_decision.candidates,
            "decided_matches": len(ca_decision.matches),
            "threshold": ca_decision.threshold,
            "matches_by_category": {
                ca_name: _by_category(ca, ca_decision),
                us_name: _by_category(us, us_decision),
            },
            "both_sides_agree": joined == us_view,
        },
        "ground_truth": {
            "true_pairs": len(truth),
            "found": hits,
            "precision": round(hits / len(joined), 4) if joined else None,
            "recall": round(hits / len(truth), 4) if truth else None,
        },
        "wall_s": round(wall, 2),
    }
    if args.json:
        emit_json(summary)
        return ExitCode.OK
    _print_summary(summary, sides)
    return ExitCode.OK


def _print_summary(summary: dict[str, Any], sides: dict[str, PreparedSide]) -> None:
    ex = summary["exchange"]
    gt = summary["ground_truth"]
    print(f"xlink demo — Canada ↔ United States, MOU {summary['mou_id']}")
    print(
        f"linkage schema {summary['schema']['id']} v{summary['schema']['version']}, "
        f"digest {summary['schema_digest'][:16]}…"
    )
    print()
    print(f"{'agency':<16} {'file':<24} {'loaded':>7} {'rejected':>9} {'tokens':>8}")
    for name, side in sides.items():
        for load in side.loads:
            print(f"{name:<16} {Path(load.source).name:<24} {load.loaded:>7} {load.rejected:>9}")
        print(f"{'':<16} {'total':<24} {side.loaded:>7} {side.rejected:>9} {len(side.tokens):>8}")
    print()
    print(
        f"private set intersection: {ex['messages']} messages, {ex['bytes'] / 1e6:.1f} MB, "
        f"session {ex['session_id'][:16]}…"
    )
    print(f"  matched token values   {ex['matched_tokens']:>6}")
    print(f"  candidate record pairs {ex['candidate_pairs']:>6}")
    print(
        f"  decided matches        {ex['decided_matches']:>6}  "
        f"(score ≥ {ex['threshold']:.2f}, one-to-one)"
    )
    for agency, counts in ex["matches_by_category"].items():
        detail = ", ".join(f"{k} {v}" for k, v in counts.items())
        print(f"    {agency:<16} {detail}")
    print(f"  both sides reached the same decisions: {'yes' if ex['both_sides_agree'] else 'NO'}")
    print()
    print(
        f"ground truth (demo only — a real exchange has no referee): {gt['found']} of "
        f"{gt['true_pairs']} true pairs found, precision {gt['precision']}, "
        f"recall {gt['recall']}"
    )
    print(f"rejected rows, with line, field and reason: {summary['output_dir']}")
    print(f"done in {summary['wall_s']} s")


# -- the network demo: two processes over TLS on 127.0.0.1 -----------------------------------

NETWORK_AGENCIES: dict[str, tuple[str, str]] = {  # agency -> (role, the other agency)
    "US-DHS": ("serve", "CA-RCMP"),
    "CA-RCMP": ("match", "US-DHS"),
}
_AGENCY_BUNDLED = {"CA-RCMP": "CA (RCMP/CBSA)", "US-DHS": "US (DHS/CBP)"}
_PASS_ENV = "XLINK_DEMO_PASSPHRASE"  # noqa: S105 - a variable name, not a secret
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
    return [
        sys.executable, "-m", "xlink.cli.main", role, *where,
        "--agency", agency,
        "--keys", str(ceremony.keys[agency]),
        "--mou", str(ceremony.mou),
        "--peer-bundle", str(ceremony.bundles[peer]),
        "--workdir", str(out / agency.lower()),
        "--passphrase-env", _PASS_ENV,
        "--timeout", "30",
        "--json",
        *(str(bundled_path(f)) for f in AGENCY_FILES[_AGENCY_BUNDLED[agency]]),
    ]  # fmt: skip


def _start(argv: list[str], out: Path, agency: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with (
        (out / f"{agency.lower()}.json").open("wb") as stdout,
        (out / f"{agency.lower()}.log").open("wb") as stderr,
    ):
        return subprocess.Popen(argv, stdout=stdout, stderr=stderr, env=env)  # noqa: S603


def _stop(procs: dict[str, subprocess.Popen[bytes]]) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def run_network(args: argparse.Namespace) -> int:
    """Keys, a signed MOU, then `xlink serve` (US-DHS) and `xlink match` (CA-RCMP) as two
    processes on 127.0.0.1; print both outcomes side by side."""
    start = time.perf_counter()
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="xlink-demo-"))
    out.mkdir(parents=True, exist_ok=True)
    # The user's own passphrase when set, so the demo's key directories can be opened later
    # (`xlink store ... --keys`, docs/quickstart.md); otherwise a random one nobody needs.
    passphrase = os.environ.get("XLINK_PASSPHRASE") or secrets.token_urlsafe(24)
    if len(passphrase.encode()) < MIN_PASSPHRASE_BYTES:
        raise InputError(f"XLINK_PASSPHRASE: use at least {MIN_PASSPHRASE_BYTES} bytes")
    report, close = progress_reporter(not args.json)
    # The demo MOU releases straight through (the bundled template asks for an officer's
    # approval of each release, which a demo cannot wait for).
    report("keys and signed MOU", 0)
    ceremony = demo_ceremony(
        out / "ceremony",
        passphrase=passphrase.encode(),
        now=datetime.now(UTC),
        rng=system_random,
        approval_required=False,
    )
    env = {**os.environ, _PASS_ENV: passphrase}
    port_file = out / "port"
    procs: dict[str, subprocess.Popen[bytes]] = {}
    port = 0
    try:
        procs["US-DHS"] = _start(
            _agency_argv("US-DHS", out, ceremony, 0, port_file), out, "US-DHS", env
        )
        while not port_file.exists():
            if procs["US-DHS"].poll() is not None or time.perf_counter() - start > 20:
                break
            time.sleep(0.05)
        else:
            port = int(port_file.read_text(encoding="ascii"))
            procs["CA-RCMP"] = _start(
                _agency_argv("CA-RCMP", out, ceremony, port, port_file), out, "CA-RCMP", env
            )
        for proc in procs.values():
            remaining = _DEADLINE_S - (time.perf_counter() - start)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(remaining, 0.1))
            report("both agencies running", int(time.perf_counter() - start))
    finally:
        _stop(procs)
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
