"""``xlink demo``: the main job on bundled synthetic data, Canada ↔ United States.

It prepares both agencies' bundled files (a Canadian watchlist and sex-offender registry; a US
watchlist and traveller manifest), shows what each side would put into an exchange, and writes
every rejected row to the output directory. Nothing is written inside the installed package.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import tempfile
import time
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any

from xlink.cli._common import emit_json, progress_reporter
from xlink.cli.exitcodes import ExitCode
from xlink.decide import Decision, decide
from xlink.exchange import Party, exchange_in_memory
from xlink.linkage.schema import load_default_schema, schema_digest
from xlink.prepare import PreparedSide, prepare_side
from xlink.protocol.events import PsiResult
from xlink.protocol.session import PsiSession

__all__ = ["AGENCY_FILES", "DEMO_MOU_DIGEST", "DEMO_MOU_ID", "bundled_path", "register", "run"]

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
        description="Prepare two agencies' bundled synthetic files, run the private set "
        "intersection between them, decide matches and print a summary.",
    )
    p.add_argument("--out", metavar="DIR", help="output directory (default: a temporary one)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
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
        )
    finally:
        close()
    assert isinstance(ca_result, PsiResult) and isinstance(us_result, PsiResult)
    ca_decision, us_decision = decide(ca_result, schema), decide(us_result, schema)
    wall = time.perf_counter() - start

    # Referee's view, possible only because this demo holds both sides: join the two
    # agencies' decisions on their shared handles and compare with the bundled ground truth.
    us_by_handles = {m.handles: m.local_record_id for m in us_decision.matches}
    joined = {(m.local_record_id, us_by_handles[m.handles]) for m in ca_decision.matches}
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
            "candidate_pairs": ca_decision.candidates,
            "decided_matches": len(ca_decision.matches),
            "threshold": ca_decision.threshold,
            "matches_by_category": {
                ca_name: _by_category(ca, ca_decision),
                us_name: _by_category(us, us_decision),
            },
            "both_sides_agree": len(joined) == len(us_decision.matches) == len(ca_decision.matches),
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
