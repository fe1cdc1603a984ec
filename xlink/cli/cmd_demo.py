"""``xlink demo``: the main job on bundled synthetic data, Canada ↔ United States.

It prepares both agencies' bundled files (a Canadian watchlist and sex-offender registry; a US
watchlist and traveller manifest), shows what each side would put into an exchange, and writes
every rejected row to the output directory. Nothing is written inside the installed package.
"""

from __future__ import annotations

import argparse
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

from xlink.cli._common import emit_json, progress_reporter
from xlink.cli.exitcodes import ExitCode
from xlink.linkage.schema import load_default_schema, schema_digest
from xlink.prepare import PreparedSide, prepare_side

__all__ = ["AGENCY_FILES", "bundled_path", "register", "run"]

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
        description="Prepare two agencies' bundled synthetic files and print a summary.",
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


def run(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="xlink-demo-"))
    out.mkdir(parents=True, exist_ok=True)
    schema = load_default_schema()
    report, close = progress_reporter(not args.json)
    sides: dict[str, PreparedSide] = {}
    try:
        for agency, files in AGENCY_FILES.items():
            sides[agency] = prepare_side(
                [bundled_path(f) for f in files],
                schema=schema,
                rejects_dir=out / agency.split()[0].lower(),
                progress=report,
            )
    finally:
        close()
    summary = {
        "output_dir": str(out),
        "schema": {"id": schema.id, "version": schema.version},
        "schema_digest": schema_digest(schema).hex(),
        "agencies": [_side_summary(name, side) for name, side in sides.items()],
    }
    if args.json:
        emit_json(summary)
        return ExitCode.OK
    print(f"xlink demo — schema {schema.id} v{schema.version}")
    print(f"schema digest {schema_digest(schema).hex()}")
    print()
    print(f"{'agency':<16} {'file':<24} {'loaded':>7} {'rejected':>9}")
    for name, side in sides.items():
        for load in side.loads:
            print(f"{name:<16} {Path(load.source).name:<24} {load.loaded:>7} {load.rejected:>9}")
    print()
    for name, side in sides.items():
        print(
            f"{name}: {side.loaded} records → {len(side.tokens)} match tokens "
            f"({side.tokens.tokens_per_record():.1f} per record)"
        )
    print(f"\nrejected rows, with line, field and reason: {out}")
    return ExitCode.OK
