"""Reference benchmark: OpenMined PSI (PyPI ``openmined.psi``, ECDH over P-256) in one process.

Runs the standard flow for ``n`` items per side with 50% overlap: client ``CreateRequest``,
server ``CreateSetupMessage`` + ``ProcessRequest``, client ``GetIntersection`` (one-sided output,
``reveal_intersection=True``). Each measurement runs in a fresh child process pinned to one core,
so ``peak_rss_mb`` (``ru_maxrss``) is not inflated by earlier runs. Not a project dependency::

    pip install openmined.psi
    python bench/openmined_psi_bench.py --n 100000 --json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from importlib.metadata import version
from typing import Any

try:
    import private_set_intersection.python as psi  # type: ignore[import-not-found, unused-ignore]
except ImportError:
    raise SystemExit("openmined.psi is not installed: pip install openmined.psi") from None


def measure(n: int, fpr: float, cpu: int) -> dict[str, Any]:
    """One protocol run in this process; wall time excludes generating the inputs."""
    os.sched_setaffinity(0, {cpu})
    half = n // 2
    client_items = [f"item-{i}" for i in range(n)]
    server_items = [f"item-{i}" for i in range(half, n + half)]
    t0 = time.perf_counter()
    client = psi.client.CreateWithNewKey(True)
    server = psi.server.CreateWithNewKey(True)
    request = client.CreateRequest(client_items)
    setup = server.CreateSetupMessage(fpr, n, server_items)
    response = server.ProcessRequest(request)
    indices = client.GetIntersection(setup, response)
    wall = time.perf_counter() - t0
    return {
        "n": n,
        "wall_s": round(wall, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "intersection_size": len(indices),
        "expected_intersection": n - half,
        "exact": sorted(indices) == list(range(half, n)),
        "fpr": fpr,
        "data_structure": "GCS",
        "cpu": cpu,
        "bytes": {
            "request": request.ByteSize(),
            "setup": setup.ByteSize(),
            "response": response.ByteSize(),
        },
        "package": f"openmined.psi {version('openmined.psi')}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="items per side")
    parser.add_argument("--fpr", type=float, default=1e-9, help="false-positive rate of the setup")
    parser.add_argument("--cpu", type=int, default=min(os.sched_getaffinity(0)))
    parser.add_argument("--json", action="store_true", help="print JSON only")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.n, args.fpr, args.cpu)))
        return
    cmd = [sys.executable, __file__, "--child", "--n", str(args.n), "--fpr", str(args.fpr)]
    out = subprocess.run([*cmd, "--cpu", str(args.cpu)], check=True, capture_output=True, text=True)
    result = json.loads(out.stdout)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"openmined.psi n={result['n']}: {result['wall_s']} s, {result['peak_rss_mb']} MiB")


if __name__ == "__main__":
    main()
