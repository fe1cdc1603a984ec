"""Benchmark: ``prepare_side`` (load, validate, normalise, derive match tokens) on synthetic data.

Prints JSON figures. Speed is judged as a ratio against a floor measured in the same run on the
same machine, because absolute times on shared machines drift:

- ``floor_s``: reading the input's rows with the ``csv`` module (no validation, no records)
  plus one ``hashlib.sha256`` over a 96-byte message (about a token's preimage) per token
  produced. Both are measured once just before and once just after the run (the file read
  whole; the hash over :data:`CALIBRATION_HASHES` messages), and the floor uses the means;
  ``floor_calibration`` shows both windows, so that drift is visible.
- ``prepare_s``: wall time of :func:`xlink.prepare.prepare_side` on the file, rejects and
  field-errors files written; ``prepare_cpu_s`` its CPU time (this process and any worker
  processes it started); ``phases_s`` the wall time of each of its progress phases.
- ``ratio`` = ``prepare_s / floor_s``.
- ``records_per_s``, ``us_per_record`` (wall) and ``cpu_us_per_record``; ``tokens_per_record``.
- ``peak_rss_mb``: the peak resident set of this process (``ru_maxrss``), which runs only
  ``prepare_side`` and the floor: the data is generated in a child process;
  ``worker_peak_rss_mb`` that of the largest worker process (``--workers``), if any, read from
  each child's ``VmHWM`` in ``/proc`` at every progress report (the data generator's child is
  not one of them: it has exited before the run starts).

With ``--workers N`` (0: one per core) tokens are derived in N processes
(:mod:`xlink.linkage._pool`); ``prepare_cpu_s`` then counts theirs too.

The data is ``xlink synth --n N --seed S`` (the CA side, ``ca.csv``, by default) written into a
temporary directory, or the files ``--data`` names (a directory written by ``xlink synth``, or
one CSV or JSON Lines file).

Usage::

    python bench/prepare_bench.py --n 100000 --json
    python bench/prepare_bench.py --data /tmp/s1m --side us --workers 0 --json
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

FLOOR_MESSAGE = bytes(96)
CALIBRATION_HASHES = 200_000


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _children_peak_mb() -> float:
    """The largest peak resident set (``VmHWM``) among this process's live children; 0 where
    ``/proc`` does not say."""
    best = 0
    try:
        tasks = list(Path(f"/proc/{os.getpid()}/task").iterdir())
    except OSError:
        return 0.0
    for task in tasks:
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for pid in children:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue  # exited meanwhile
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    best = max(best, int(line.split()[1]))
    return best / 1024.0


def _cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def generate(out: Path, n: int, seed: int, profile: str) -> None:
    """``xlink synth`` into ``out``, in a child process so that its memory is not ours."""
    code = (
        "import sys; from pathlib import Path; from xlink.synth import generate_synth; "
        "generate_synth(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), profile=sys.argv[4])"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(out), str(n), str(seed), profile],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def calibrate(path: Path) -> dict[str, float]:
    """Seconds to read ``path``'s rows with the csv module (lines for JSON Lines), and seconds
    per ``sha256`` of one :data:`FLOOR_MESSAGE`."""
    start = time.perf_counter()
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        with path.open(encoding="utf-8") as fh:
            for _line in fh:
                pass
    else:
        with path.open(encoding="utf-8", newline="") as fh:
            for _row in csv.reader(fh):
                pass
    read_s = time.perf_counter() - start
    sha256 = hashlib.sha256
    message = FLOOR_MESSAGE
    start = time.perf_counter()
    for _ in range(CALIBRATION_HASHES):
        sha256(message).digest()
    return {"read_s": read_s, "sha256_s": (time.perf_counter() - start) / CALIBRATION_HASHES}


def run(path: Path, workers: int | None) -> dict[str, Any]:
    from xlink.linkage.schema import load_default_schema
    from xlink.prepare import prepare_side

    schema = load_default_schema()
    phases: dict[str, float] = {}
    marks: dict[str, float] = {}
    worker_peak = [0.0]

    def progress(phase: str, done: int, total: int | None) -> None:
        now = time.perf_counter()
        marks.setdefault(phase, now)
        phases[phase] = now - marks[phase]
        worker_peak[0] = max(worker_peak[0], _children_peak_mb())

    with tempfile.TemporaryDirectory(prefix="xlink-prepare-bench-rejects-") as rejects:
        cpu = _cpu_s()
        start = time.perf_counter()
        side = prepare_side(
            [path], schema=schema, rejects_dir=rejects, progress=progress, workers=workers
        )
        wall = time.perf_counter() - start
        cpu = _cpu_s() - cpu
    return {
        "records": side.loaded,
        "rejected": side.rejected,
        "field_errors": side.field_errors,
        "tokens": len(side.tokens),
        "prepare_s": wall,
        "prepare_cpu_s": cpu,
        "phases_s": {k: round(v, 3) for k, v in phases.items()},
        "worker_peak_rss_mb": worker_peak[0],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="records per side to generate")
    ap.add_argument("--seed", type=int, default=1, help="synth seed")
    ap.add_argument("--profile", default="cross-border", help="synth profile")
    ap.add_argument("--data", help="a directory written by xlink synth, or one input file")
    ap.add_argument("--side", choices=("ca", "us"), default="ca", help="which synth file")
    ap.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes deriving tokens (default 1; 0: one per core, as xlink prepare)",
    )
    ap.add_argument("--json", action="store_true", help="print one JSON object on one line")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="xlink-prepare-bench-") as tmp:
        if args.data:
            data = Path(args.data)
            path = data / f"{args.side}.csv" if data.is_dir() else data
        else:
            generate(Path(tmp), args.n, args.seed, args.profile)
            path = Path(tmp) / f"{args.side}.csv"
        calibrate(path)  # warms the page cache, so that the run does not pay for it
        before = calibrate(path)
        figures = run(path, args.workers or None)
        after = calibrate(path)
    tokens = figures["tokens"]
    read_s = (before["read_s"] + after["read_s"]) / 2
    sha256_s = (before["sha256_s"] + after["sha256_s"]) / 2
    floor_s = read_s + tokens * sha256_s
    records = max(figures["records"], 1)
    out = {
        "input": path.name,
        "records": figures["records"],
        "rejected": figures["rejected"],
        "field_errors": figures["field_errors"],
        "tokens": tokens,
        "tokens_per_record": round(tokens / records, 3),
        "prepare_s": round(figures["prepare_s"], 3),
        "prepare_cpu_s": round(figures["prepare_cpu_s"], 3),
        "phases_s": figures["phases_s"],
        "records_per_s": round(records / figures["prepare_s"], 1),
        "us_per_record": round(figures["prepare_s"] / records * 1e6, 2),
        "cpu_us_per_record": round(figures["prepare_cpu_s"] / records * 1e6, 2),
        "floor_s": round(floor_s, 3),
        "floor_read_s": round(read_s, 3),
        "floor_hash_s": round(tokens * sha256_s, 3),
        "floor_calibration": {
            w: {"read_s": round(c["read_s"], 3), "sha256_us": round(c["sha256_s"] * 1e6, 3)}
            for w, c in (("before", before), ("after", after))
        },
        "ratio": round(figures["prepare_s"] / floor_s, 3),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "worker_peak_rss_mb": round(figures["worker_peak_rss_mb"], 1),
        "workers": args.workers or "one per core",
        "cores": os.cpu_count(),
    }
    print(json.dumps(out, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
