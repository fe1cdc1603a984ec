"""``xlink demo``: the main job on bundled synthetic data, Canada ↔ United States.

Keys for CA-RCMP and US-DHS and a signed MOU, then both agencies' bundled files (a Canadian
watchlist and sex-offender registry; a US watchlist and traveller manifest) through the one
exchange path, ``xlink.agency``: as two processes (``xlink serve`` / ``xlink match``) over mutual
TLS on 127.0.0.1, or with ``--in-process`` in this process over a memory pair, checked against the
bundled ground truth. Everything is written under the output directory, nothing inside the
installed package.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from xlink.agency import AgencyOutcome, exchange_in_process
from xlink.ceremony import demo_ceremony
from xlink.cli._common import emit_json, progress_reporter
from xlink.cli._demo_common import (
    AGENCY_FILES,
    BUNDLED_SIDE,
    demo_passphrase,
    output_dir,
)
from xlink.cli._demo_network import run_network
from xlink.cli.exitcodes import ExitCode
from xlink.crypto.rand import system_random
from xlink.linkage.schema import schema_digest
from xlink.prepare import PreparedSide
from xlink.samples import sample_path

# AGENCY_FILES and run_network live in _demo_common and _demo_network; they are
# named here too, where the examples and tests have always found them.
__all__ = [
    "AGENCY_FILES",
    "register",
    "run",
    "run_in_process",
    "run_network",
]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="run the bundled Canada ↔ US example end to end",
        description="Make keys for CA-RCMP and US-DHS and a signed MOU in a temporary "
        "directory, then run the two agencies as separate processes (`xlink serve`, `xlink "
        "match`) over mutual TLS on 127.0.0.1 with their bundled synthetic files: private set "
        "intersection, decided matches, sealed releases and receipts, audit logs. Prints a "
        "summary. With --in-process: both agencies in this process over a memory pair instead "
        "of TLS (the same keys, MOU and exchange), compared with the bundled ground truth. "
        "Exit 0 ok, 4 an agency failed or the two sides disagree, 7 an audit log failed.",
    )
    p.add_argument("--out", metavar="DIR", help="output directory (default: a temporary one)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.add_argument(
        "--in-process",
        action="store_true",
        help="run both agencies in this process over a memory pair instead of two processes "
        "over TLS (and compare their decisions with the bundled ground truth)",
    )
    p.add_argument(
        "--hub",
        action="store_true",
        help="three agencies (CA-RCMP, CA-CBSA, US-DHS) through an information-sharing hub, "
        "each in its own process: a round of every pair, a fan-out query, the combined view "
        "(docs/hub.md)",
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
    with sample_path("truth.csv").open(encoding="utf-8", newline="") as f:
        return {(row["ca_record_id"], row["us_record_id"]) for row in csv.DictReader(f)}


def run(args: argparse.Namespace) -> int:
    if args.hub:
        from xlink.cli.cmd_demo_hub import run_hub_demo  # loaded only for --hub

        return run_hub_demo(args)
    if args.in_process:
        return run_in_process(args)
    return run_network(args)


# -- the in-process demo: both agencies in this process, over a memory pair -----------------

_IN_PROCESS: tuple[tuple[str, str], ...] = (("CA-RCMP", "US-DHS"), ("US-DHS", "CA-RCMP"))
"""(agency, partner), the initiator first."""


def _matches_rows(outcome: AgencyOutcome) -> list[dict[str, str]]:
    """One agency's matches file (its JSON Lines twin): one row per decided match."""
    path = Path(outcome.matches_file).with_suffix(".jsonl")
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _referee_pairs(
    ca_rows: list[dict[str, str]], us_rows: list[dict[str, str]]
) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(CA record id, US record id) of each decided pair, joined through the releases: a CA
    row's outbound release is a US row's inbound release (first set), and the other way round
    (second set). Only a referee holding both matches files can do this (demo only)."""

    def inbound(rows: list[dict[str, str]]) -> dict[str, str]:
        return {
            r["inbound_release_id"]: r["own_record_id"] for r in rows if r["inbound_release_id"]
        }

    us_in, ca_in = inbound(us_rows), inbound(ca_rows)
    via_ca = {
        (r["own_record_id"], us_in[r["outbound_release_id"]])
        for r in ca_rows
        if r["outbound_release_id"] in us_in
    }
    via_us = {
        (ca_in[r["outbound_release_id"]], r["own_record_id"])
        for r in us_rows
        if r["outbound_release_id"] in ca_in
    }
    return via_ca, via_us


def _by_category(rows: list[dict[str, str]]) -> dict[str, int]:
    return dict(sorted(Counter(r["own_category"] for r in rows).items()))


def run_in_process(args: argparse.Namespace) -> int:
    """Keys and a signed MOU, then both agencies' :class:`~xlink.agency.Agency` in this
    process, one exchange over a memory pair (:func:`~xlink.agency.exchange_in_process`), and
    the referee's check of both sides' decisions against the bundled ground truth."""
    start = time.perf_counter()
    out = output_dir(args.out, "xlink-demo-")
    passphrase = demo_passphrase().encode()
    report, close = progress_reporter(not args.json)
    sides: dict[str, PreparedSide] = {}
    try:
        # The demo MOU releases straight through (the bundled template asks for an officer's
        # approval of each release, which a demo cannot wait for).
        report("keys and signed MOU", 0)
        ceremony = demo_ceremony(
            out / "ceremony",
            passphrase=passphrase,
            now=datetime.now(UTC),
            rng=system_random,
            approval_required=False,
        )
        with ceremony.open_agencies(
            {agency: out / agency.lower() for agency, _ in _IN_PROCESS},
            passphrase=passphrase,
            clock=lambda: datetime.now(UTC),
            rng_of=lambda _: system_random,
        ) as agencies:
            prepared = {
                agency: me.prepare(
                    [sample_path(f) for f in AGENCY_FILES[BUNDLED_SIDE[agency]]],
                    progress=report,
                )
                for agency, me in agencies.items()
            }
            report("exchange: PSI, decisions, releases", 0)
            ca_out, us_out = asyncio.run(
                exchange_in_process(*((agencies[a], prepared[a]) for a, _ in _IN_PROCESS))
            )
            schema, mou = agencies["CA-RCMP"].schema, agencies["CA-RCMP"].mou
        sides = {BUNDLED_SIDE[agency]: side for agency, side in prepared.items()}
    finally:
        close()
    wall = time.perf_counter() - start

    # The exchange itself checks that both sides decided the same pairs before releasing
    # (the decided-pairs digest); as in the network demo, both outcomes must tell the same
    # story: one session, as many decided pairs, what one released the other received.
    agree = (
        ca_out.session_id == us_out.session_id
        and ca_out.decided == us_out.decided
        and ca_out.released == us_out.received
        and us_out.released == ca_out.received
    )
    # Referee's view, possible only because this demo holds both sides: join the two matches
    # files through the releases each side sent and the other received, giving (CA record,
    # US record) for each decided pair, and check them against the bundled ground truth.
    ca_rows, us_rows = _matches_rows(ca_out), _matches_rows(us_out)
    via_ca, via_us = _referee_pairs(ca_rows, us_rows)
    joined = via_ca | via_us
    loaded = {r.record_id for s in sides.values() for r in s.records}
    truth = {p for p in _truth_pairs() if p[0] in loaded and p[1] in loaded}
    hits = len(joined & truth)
    outcomes = {"CA-RCMP": ca_out, "US-DHS": us_out}
    audit_ok = ca_out.audit_ok and us_out.audit_ok
    summary = {
        "mode": "in-process",
        "output_dir": str(out),
        "schema": {"id": schema.id, "version": schema.version},
        "schema_digest": schema_digest(schema).hex(),
        "mou": str(ceremony.mou),
        "mou_id": mou.id,
        "agencies": [_side_summary(name, side) for name, side in sides.items()],
        "exchange": {
            "session_id": ca_out.session_id,
            "matched_tokens": ca_out.matched_tokens,
            "candidate_pairs": ca_out.candidates,
            "decided_matches": ca_out.decided,
            "threshold": mou.match_threshold,
            "matches_by_category": {
                BUNDLED_SIDE["CA-RCMP"]: _by_category(ca_rows),
                BUNDLED_SIDE["US-DHS"]: _by_category(us_rows),
            },
            "both_sides_agree": agree,
        },
        "referee": {
            "pairs_resolved": len(joined),
            "via_ca_releases": len(via_ca),
            "via_us_releases": len(via_us),
            "both_joins_agree": via_ca == via_us,
        },
        "releases": {
            agency: {
                "to": o.peer,
                "released": o.released,
                "denied": o.denied,
                "receipts_verified": o.receipts_verified,
                "received": o.received,
            }
            for agency, o in outcomes.items()
        },
        "audit": {
            agency: {"ok": o.audit_ok, "entries": o.audit_entries, "reason": o.audit_reason}
            for agency, o in outcomes.items()
        },
        "audit_ok": audit_ok,
        "ground_truth": {
            "true_pairs": len(truth),
            "found": hits,
            "precision": round(hits / len(joined), 4) if joined else None,
            "recall": round(hits / len(truth), 4) if truth else None,
        },
        "outcomes": [o.to_json() for o in outcomes.values()],
        "wall_s": round(wall, 2),
    }
    if args.json:
        emit_json(summary)
    else:
        _print_summary(summary, sides)
    if not audit_ok:
        return ExitCode.TAMPERED
    return ExitCode.OK if agree else ExitCode.PROTOCOL


def _print_summary(summary: dict[str, Any], sides: dict[str, PreparedSide]) -> None:
    ex = summary["exchange"]
    gt = summary["ground_truth"]
    print(
        f"xlink demo — Canada ↔ United States in one process, MOU {summary['mou_id']} "
        "(signed by CA-RCMP and US-DHS, straight-through release)"
    )
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
    print(f"exchange over a memory pair, session {ex['session_id'][:16]}…")
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
    print("releases (signed, sealed, sent; receipts verified by the originator):")
    for agency, r in summary["releases"].items():
        detail = ", ".join(f"{k} {v}" for k, v in r["released"].items()) or "none"
        print(
            f"  {agency} → {r['to']}: {sum(r['released'].values()):>4}  ({detail}); "
            f"denied {r['denied']}, receipts verified {r['receipts_verified']}"
        )
    for agency, a in summary["audit"].items():
        verdict = "verified" if a["ok"] else f"FAILED ({a['reason']})"
        print(f"audit log {agency:<8} {verdict}, {a['entries']} entries")
    print()
    ref = summary["referee"]
    print(
        f"referee (demo only — a real exchange has no referee): {ref['pairs_resolved']} of "
        f"{ex['decided_matches']} decided pairs named through the releases (via CA's "
        f"{ref['via_ca_releases']}, via the US's {ref['via_us_releases']}"
        f"{'' if ref['both_joins_agree'] else ', NOT the same pairs'})"
    )
    print(
        f"ground truth: {gt['found']} of "
        f"{gt['true_pairs']} true pairs found, precision {gt['precision']}, "
        f"recall {gt['recall']}"
    )
    print(f"keys, MOU, stores, audit logs, matches files and rejects: {summary['output_dir']}")
    print(f"done in {summary['wall_s']} s")
