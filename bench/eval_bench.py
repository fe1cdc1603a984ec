"""Benchmark: linkage quality and speed of ``xlink eval`` through the real PSI path.

Prints one JSON object: the evaluation's figures (held-out precision, recall, F1, tokens per
record, timings; see docs/evaluation.md) and the PSI's speed against the primitive floor
measured in the same run on the same machine, as ``bench/psi_bench.py`` does:

- ``floor_s``: what the ciphersuite's primitives alone take for the work of the slower party
  (its distinct token values hashed to the group and blinded, the peer's re-blinded, and, for
  the confirmation round of xlink-psi-v2, per matched token one hash to group and three
  edwards25519 scalar multiplications), with the per-operation times of
  :func:`psi_bench.calibrate` measured just before and just after the evaluation (mean of the
  two);
- ``psi_s``: the PSI's wall time (both parties, two processes);
- ``ratio`` = ``psi_s / floor_s``;
- ``peak_rss_mb``: the peak resident set of this process (which loads both sides, derives
  their tokens and decides) and ``peak_rss_mb_party``: that of the largest child process
  (the PSI party run in a process of its own).

Usage::

    python bench/eval_bench.py febrl4 --no-id
    python bench/eval_bench.py febrl4
    python bench/eval_bench.py synth --n 100000 --seed 1 [--data DIR]
    python bench/eval_bench.py febrl4 --no-id --weights estimated [--links best-of-either]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from psi_bench import CALIBRATION_OPS, calibrate

from xlink.crypto.suite import DEFAULT_SUITE
from xlink.evaluation import datasets, evaluate
from xlink.evaluation.judge import FITS
from xlink.linkage.link_rule import AUTO, LINK_CHOICES
from xlink.linkage.schema import load_default_schema


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("dataset", choices=(*datasets.FEBRL_NAMES, "synth"))
    parser.add_argument("--no-id", action="store_true", help="FEBRL without soc_sec_id")
    parser.add_argument("--n", type=int, default=100_000, help="synth records per side")
    parser.add_argument("--seed", type=int, default=1, help="synth seed")
    parser.add_argument("--data", help="synth: files already written by xlink synth")
    parser.add_argument("--weights", choices=FITS, default="logistic", help="as xlink eval's")
    parser.add_argument("--links", choices=LINK_CHOICES, default=AUTO, help="as xlink eval's")
    args = parser.parse_args()
    before = calibrate(CALIBRATION_OPS, DEFAULT_SUITE.suite_id)
    with tempfile.TemporaryDirectory(prefix="xlink-eval-bench-") as tmp:
        if args.dataset in datasets.FEBRL_NAMES:
            data = datasets.febrl(datasets.FEBRL_NAMES[args.dataset], with_id=not args.no_id)
        else:
            root = Path(args.data) if args.data else Path(tmp)
            if not args.data:
                from xlink.synth import generate_synth

                generate_synth(root, args.n, args.seed)
            data = datasets.synth(root, today=datetime.now(UTC).date())
        start = time.perf_counter()
        figures = evaluate(data, load_default_schema(), fit=args.weights, links=args.links)
        bench_wall_s = time.perf_counter() - start
    after = calibrate(CALIBRATION_OPS, DEFAULT_SUITE.suite_id)
    figures.pop("fitted_schema")
    hash_s = (before["hash_s"] + after["hash_s"]) / 2
    blind_s = (before["blind_s"] + after["blind_s"]) / 2
    ed_s = (before["ed_mult_s"] + after["ed_mult_s"]) / 2
    own = figures["psi"]["distinct_tokens"]
    confirm_s = int(figures["matched_tokens"]) * (hash_s + 3 * ed_s)
    floor_s = confirm_s + max(
        own[me] * (hash_s + blind_s) + own[peer] * blind_s
        for me, peer in (("left", "right"), ("right", "left"))
    )
    figures["floor_s"] = round(floor_s, 3)
    figures["ratio"] = round(figures["psi_s"] / floor_s, 3)
    figures["bench_wall_s"] = round(bench_wall_s, 3)
    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    figures["peak_rss_mb_party"] = round(
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1
    )
    figures["floor_calibration_us"] = {
        w: {k: round(v * 1e6, 2) for k, v in c.items()}
        for w, c in (("before", before), ("after", after))
    }
    json.dump(figures, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
