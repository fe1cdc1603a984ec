"""Benchmark: the PSI's scaling curve with each party on a Dask cluster, and what it predicts
for larger lists on more cores.

Runs ``bench/psi_bench.py --dask --chunk 16384`` at each ``--n`` (or reads the JSON such
runs printed, ``--from FILE...``), fits the exchange's wall time and each party's peak memory to
``a + b * n`` by least squares, and prints one JSON object:

- ``runs``: per size, the wall time (exchange and whole run), the ratio to the two-X25519
  floor, the microseconds per record and side, the party process's own CPU per record (the
  session, matching and I/O, which a cluster does not take over), peak memory per party and
  the bytes sent.
- ``fit``: slope and intercept of the wall time and of the memory, and the largest relative
  distance of a run from the line (how straight the curve is).
- ``estimates``: for each ``--estimate`` size and ``--cores`` workers per party, the time the
  model ``n * (party + work / cores)`` gives, where ``party`` is the party process's CPU per
  record (it stays on one core) and ``work`` is the rest of a record's time on one worker
  (the hashing and blinding a cluster spreads), both taken from the largest run; the memory
  from the fitted line; and the traffic, with the time it takes at 1 Gbit/s. The model
  assumes the workers scale linearly (``bench/party_bench.py`` measures 1.8 to 1.9 times on
  2 workers), and that the party process does not overlap its own work with its workers'
  (it waits for each batch), which is how xlink runs today.

Usage::

    python bench/scaling.py --n 1000000 2000000 5000000 --workers 1 --json
    (each run: python bench/psi_bench.py --n N --keys 1 --overlap 0.02 --dask --workers 1
     --chunk 16384 --json > dN.json)
    python bench/scaling.py --from d1m.json d2m.json d5m.json --estimate 100000000 --cores 32
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
GBIT_BYTES_PER_S = 125_000_000


def _run(n: int, workers: int, overlap: float, chunk: int) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            str(HERE / "psi_bench.py"),
            f"--n={n}",
            "--keys=1",
            f"--overlap={overlap}",
            f"--chunk={chunk}",
            "--dask",
            f"--workers={workers}",
            "--json",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    doc: dict[str, Any] = json.loads(out)
    return doc


def _fit(xs: list[float], ys: list[float]) -> tuple[float, float, float]:
    """Least-squares ``y = a + b x``: (a, b, largest relative residual)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0
    a = my - b * mx
    worst = max(abs(y - (a + b * x)) / y for x, y in zip(xs, ys, strict=True))
    return a, b, worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[1_000_000, 2_000_000, 5_000_000])
    ap.add_argument("--workers", type=int, default=1, help="Dask workers per party in the runs")
    ap.add_argument("--overlap", type=float, default=0.02, help="fraction of records shared")
    ap.add_argument(
        "--chunk",
        type=int,
        default=16384,
        help="elements per chunk in the runs (default: what a party of 32 or more workers "
        "uses, xlink.protocol.config.chunk_size_for)",
    )
    ap.add_argument("--from", dest="files", nargs="+", metavar="FILE", help="psi_bench JSON")
    ap.add_argument("--estimate", type=int, nargs="+", default=[10_000_000, 100_000_000])
    ap.add_argument("--cores", type=int, nargs="+", default=[32], help="workers per party")
    ap.add_argument("--json", action="store_true", help="(the output is always one JSON object)")
    args = ap.parse_args()

    if args.files:
        docs = [json.loads(Path(f).read_text()) for f in args.files]
    else:
        docs = [_run(n, args.workers, args.overlap, args.chunk) for n in args.n]
    docs.sort(key=lambda d: d["n"])
    if len(docs) < 2 or not all(d.get("dask") for d in docs):
        raise SystemExit("need at least two psi_bench runs made with --dask")
    workers = {d["workers_per_party"] for d in docs}
    if len(workers) != 1:
        raise SystemExit("the runs used different worker counts")
    runs = []
    for d in docs:
        party_us = d["party_cpu_us_per_element"] * 2  # its own and the peer's element (K = 1)
        runs.append(
            {
                "n": d["n"],
                "psi_wall_s": d["psi_wall_s"],
                "wall_s": d["wall_s"],
                "ratio_x25519": d["ratio_x25519"],
                "us_per_record": round(d["psi_wall_s"] / d["n"] * 1e6, 2),
                "party_cpu_us_per_record": round(party_us, 2),
                "peak_rss_mb_per_party": d["peak_rss_mb_per_party"],
                "bytes_sent": d["bytes_sent"],
            }
        )
    ns = [float(r["n"]) for r in runs]
    a, b, worst = _fit(ns, [r["psi_wall_s"] for r in runs])
    ma, mb, mworst = _fit(ns, [r["peak_rss_mb_per_party"] for r in runs])
    last = runs[-1]
    party_s = last["party_cpu_us_per_record"] / 1e6
    work_s = last["psi_wall_s"] / last["n"] - party_s  # one worker per party in the runs
    work_one_core_s = work_s * workers.pop()
    per_byte = last["bytes_sent"] / last["n"]
    estimates = [
        {
            "n": n,
            "cores_per_party": cores,
            "exchange_s": round(n * (party_s + work_one_core_s / cores), 1),
            "party_process_s": round(n * party_s, 1),
            "workers_s": round(n * work_one_core_s / cores, 1),
            "peak_rss_mb_per_party": round(ma + mb * n, 1),
            "bytes_sent": round(per_byte * n),
            "network_s_at_1_gbit": round(per_byte * n / GBIT_BYTES_PER_S, 1),
        }
        for n in args.estimate
        for cores in args.cores
    ]
    print(
        json.dumps(
            {
                "runs": runs,
                "fit": {
                    "exchange_s_per_million_records": round(b * 1e6, 2),
                    "exchange_intercept_s": round(a, 2),
                    "exchange_largest_relative_residual": round(worst, 4),
                    "rss_mb_per_million_records": round(mb * 1e6, 1),
                    "rss_intercept_mb": round(ma, 1),
                    "rss_largest_relative_residual": round(mworst, 4),
                },
                "model": {
                    "party_process_us_per_record": round(party_s * 1e6, 2),
                    "work_us_per_record_on_one_core": round(work_one_core_s * 1e6, 2),
                },
                "estimates": estimates,
                "published": {
                    "secretflow_ecdh_psi_curve25519_32_cores_per_party": {
                        "10M": "67 s",
                        "100M": "697 s",
                    }
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
