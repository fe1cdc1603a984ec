"""``xlink prepare``: load, validate, normalise and tokenise one agency's files; report
rejects, fields left out and likely duplicates so the analyst can clean the data before any
exchange."""

from __future__ import annotations

import argparse
from typing import Any

from xlink.cli._common import (
    add_input_options,
    emit_json,
    input_reading,
    phase_timings,
    progress_reporter,
)
from xlink.cli.exitcodes import ExitCode
from xlink.linkage.schema import load_default_schema, load_schema, schema_digest
from xlink.prepare import prepare_side

__all__ = ["register", "run"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "prepare",
        help="load and validate an agency's files, derive match tokens, report duplicates",
        description="Load one agency's record files (CSV or JSON Lines), validate every row, "
        "write bad rows to a rejects file and bad fields left out of kept records to a "
        "field-errors file, derive match tokens with the linkage schema and report likely "
        "duplicates inside the agency's own data. Nothing leaves the machine.",
    )
    add_input_options(p, "CSV or JSON Lines files")
    p.add_argument("--schema", metavar="PATH", help="linkage schema (default: the bundled one)")
    p.add_argument(
        "--rejects-dir",
        metavar="DIR",
        help="write rejects and field errors here (default: next to FILE)",
    )
    p.add_argument(
        "--duplicate-threshold", type=float, default=0.85, help="report pairs at or above this"
    )
    p.add_argument("--no-duplicates", action="store_true", help="skip the duplicate report")
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="processes to derive match tokens in (default: one per core for 20,000 records "
        "or more; the tokens are the same whatever N)",
    )
    p.add_argument("--strict", action="store_true", help="exit 1 when any row was rejected")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from xlink.linkage.duplicates import DuplicatePair, find_duplicates

    schema = load_schema(args.schema) if args.schema else load_default_schema()
    if args.mapping is not None and len(args.mapping) != len(args.files):
        raise SystemExit("xlink prepare: give --mapping once per FILE, or not at all")
    if args.workers is not None and args.workers < 1:
        raise SystemExit("xlink prepare: --workers must be at least 1")
    with progress_reporter(not args.json) as reporter:
        side = prepare_side(
            args.files,
            schema=schema,
            **input_reading(args),
            rejects_dir=args.rejects_dir,
            progress=reporter,
            workers=args.workers,
        )
        duplicates: list[DuplicatePair] = []
        if not args.no_duplicates:
            reporter("finding likely duplicates", 0)  # ends when the reporter closes
            duplicates = find_duplicates(side.records, args.duplicate_threshold)
    summary = {
        "files": [load.as_json() for load in side.loads],
        "records": side.loaded,
        "rejected": side.rejected,
        "with_field_errors": side.with_field_errors,
        "field_errors": side.field_errors,
        "tokens": len(side.tokens),
        "untokenised_records": list(side.untokenised),
        "tokens_per_record": round(side.tokens.tokens_per_record(), 3),
        "schema": {
            "id": schema.id,
            "version": schema.version,
            "digest": schema_digest(schema).hex(),
        },
        "duplicates": [
            {"left": d.left_id, "right": d.right_id, "score": round(d.score, 3)} for d in duplicates
        ],
        "phases": phase_timings(reporter),
    }
    if args.json:
        emit_json(summary)
    else:
        for load in side.loads:
            print(load.summary())
        print(
            f"{side.loaded} records, {len(side.tokens)} match tokens "
            f"({side.tokens.tokens_per_record():.2f} per record), schema {schema.id} "
            f"v{schema.version} digest {schema_digest(schema).hex()[:16]}…"
        )
        if side.untokenised:
            print(
                f"{len(side.untokenised)} record(s) derive no match token (every key needs a "
                f"field they lack) and cannot match: {', '.join(side.untokenised[:10])}"
            )
        if args.no_duplicates:
            pass
        elif duplicates:
            print(f"{len(duplicates)} likely duplicate pair(s) inside this agency's data:")
            for d in duplicates[:20]:
                print(f"  {d.left_id} ~ {d.right_id}  score {d.score:.2f}")
            if len(duplicates) > 20:
                print(f"  ... and {len(duplicates) - 20} more (use --json for all)")
        else:
            print("no likely duplicates inside this agency's data")
    if args.strict and side.rejected:
        return ExitCode.REJECTS
    return ExitCode.OK
