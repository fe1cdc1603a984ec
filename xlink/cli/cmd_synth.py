"""``xlink synth``: write a SYNTHETIC two-agency data set with ground truth (docs/synth.md)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from xlink.cli._common import emit_json, progress_reporter
from xlink.cli.exitcodes import ExitCode
from xlink.errors import InputError
from xlink.progress import count_progress

__all__ = ["register", "run"]


def _records(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a number between 0 and 1") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def register(sub: Any) -> None:
    p = sub.add_parser(
        "synth",
        help="generate a synthetic CA/US data set with ground truth",
        description="Write two agencies' synthetic watchlist files (ca.csv, us.csv, each with "
        "its mapping), truth.csv (every same-person pair), split.csv (dev/heldout by "
        "household) and manifest.json into DIR. Every person is invented. --profile "
        "names-dob-sex writes a census (ca.csv) and a vital-events registry (us.csv, 1-3 "
        "records per person) with names, date of birth and sex only. Same --n, --seed, "
        "--overlap and --profile give byte-identical files. Exit 2 for a bad --n, --overlap or "
        "--profile, 3 when DIR is not empty and --force is not given.",
    )
    p.add_argument(
        "--n",
        type=_records,
        required=True,
        metavar="N",
        help="records per agency (names-dob-sex: people per agency)",
    )
    p.add_argument("--seed", type=int, required=True, metavar="S", help="random seed")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument(
        "--overlap",
        type=_fraction,
        default=0.5,
        metavar="F",
        help="share of each agency's people the other agency lists too (default 0.5)",
    )
    p.add_argument(
        "--profile",
        choices=("cross-border", "names-dob-sex"),
        default="cross-border",
        help="cross-border: two watchlists with documents and addresses (default); "
        "names-dob-sex: a census and a vital-events registry, names, date of birth and sex only",
    )
    p.add_argument("--force", action="store_true", help="write into a non-empty DIR")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from xlink.synth import generate_synth

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out: {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not args.force:
        raise InputError(f"--out: {out} is not empty; refusing to write into it without --force")
    # names-dob-sex: the registry's record count is drawn (1-3 per person), so no total.
    total = 2 * args.n if args.profile == "cross-border" else None
    phase = "generating records"
    # Progress goes to standard error, so it is drawn with --json too (stdout: the manifest).
    with progress_reporter(True) as reporter:
        reporter(phase, 0, total)
        manifest = generate_synth(
            out,
            args.n,
            args.seed,
            overlap=args.overlap,
            profile=args.profile,
            progress=count_progress(reporter, phase, total),
        )
    if args.json:
        emit_json(manifest)
        return ExitCode.OK
    counts = manifest["counts"]
    rates = manifest["pair_rates"]
    assert isinstance(counts, dict) and isinstance(rates, dict)
    if args.profile == "names-dob-sex":
        print(
            f"wrote {out} (names-dob-sex): {counts['ca_records']} census and "
            f"{counts['us_records']} registry records, {counts['people']} people, "
            f"{counts['true_pairs']} true pairs, {counts['households']} households, "
            f"{counts['twins']} twin pairs"
        )
        print(
            "true pairs with a different name {name_differs:.1%}, birth date {dob_differs:.1%}, "
            "sex {sex_differs:.1%}".format(**rates)
        )
        return ExitCode.OK
    print(
        f"wrote {out}: {counts['ca_records']} CA and {counts['us_records']} US records, "
        f"{counts['people']} people, {counts['true_pairs']} true pairs, "
        f"{counts['households']} households, {counts['twins']} twin pairs"
    )
    print(
        "true pairs with a different name {name_differs:.1%}, birth date {dob_differs:.1%}, "
        "address {address_differs:.1%}".format(**rates)
    )
    return ExitCode.OK
