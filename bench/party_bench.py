"""Benchmark: one party alone on this machine's cores, 1 worker process against several.

The partner's work is done first and recorded: both sessions run once in this process with
fixed seeds, and every message the partner sent is kept. Then the measured party runs again
with the same seed (so it sends the same elements and the recorded answers fit them), fed the
recorded messages, once per worker count in ``--workers``. Only the measured party computes,
so the machine's cores are all its own, which is what a party on its own server has.

Prints JSON:

- per worker count, ``exchange_s`` (from the Hello to the set matched: hashing, blinding and
  re-blinding, which the pool spreads over the workers) and ``whole_s`` (to the end of the
  reveal, with the confirmation round);
- ``speedup``: the 1-worker time over each count's time, for both;
- ``floor_s``: the primitives of the exchange on one core (own padded set hashed to the group
  and blinded, the peer's re-blinded), with per-operation times calibrated in this process
  before and after the runs, and ``ratio`` = 1-worker ``exchange_s`` / ``floor_s``;
- ``peak_rss_mb``: this process (the workers are reported apart).

Usage::

    python bench/party_bench.py --n 100000 --workers 1 2 --json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import time
from typing import Any

from psi_bench import CALIBRATION_OPS, calibrate, make_tokens

from xlink.crypto.rand import DeterministicRandom
from xlink.crypto.suite import DEFAULT_SUITE
from xlink.crypto.workers import POOL_MIN_ELEMENTS, GroupWorkers
from xlink.linkage.tokens import TokenSet
from xlink.protocol import Mode, PsiSession, Role, SessionConfig, State, run_pair

MOU_DIGEST = hashlib.sha256(b"party bench mou").digest()


def _config(role: Role, chunk: int) -> SessionConfig:
    me, peer = ("CA-RCMP", "US-DHS") if role is Role.INITIATOR else ("US-DHS", "CA-RCMP")
    return SessionConfig(
        role=role,
        mode=Mode.PSI,
        party_id=me,
        peer_id=peer,
        mou_id="MOU-BENCH-1",
        mou_digest=MOU_DIGEST,
        schema_digest=hashlib.sha256(b"bench schema").digest(),
        chunk_size=chunk,
    )


def _session(tokens: TokenSet, role: Role, chunk: int, workers: GroupWorkers) -> PsiSession:
    return PsiSession(
        _config(role, chunk), tokens, rng=DeterministicRandom(f"party/{role.name}"), workers=workers
    )


def record(own: TokenSet, peer: TokenSet, chunk: int) -> list[bytes]:
    """Run both sessions once, in this process, and keep what the peer sent."""
    serial = GroupWorkers(1)
    a = _session(own, Role.INITIATOR, chunk, serial)
    b = _session(peer, Role.RESPONDER, chunk, serial)
    sent: list[bytes] = []
    run_pair(a, b, observer=lambda sender, m: sent.append(m) if sender is b else None)
    return sent


def replay(own: TokenSet, peer_messages: list[bytes], chunk: int, workers: int) -> dict[str, Any]:
    """The measured party alone: it sends everything it can, then takes the peer's next
    recorded message, until the session completes."""
    with GroupWorkers(workers, start_after=0) as pool:
        if workers > 1:  # start the pool outside the timing, as a long-running party has it
            pool.hash_to_group(DEFAULT_SUITE, b"warm-up", bytes(32 * POOL_MIN_ELEMENTS))
        session = _session(own, Role.INITIATOR, chunk, pool)
        start = time.perf_counter()
        exchange_s = None
        session.initiate()
        for message in peer_messages:
            while session.next_message() is not None:
                pass
            session.receive_message(message)
            if exchange_s is None and session.state not in (State.IDLE, State.EXCHANGE):
                exchange_s = time.perf_counter() - start
        while session.next_message() is not None:
            pass
        whole_s = time.perf_counter() - start
        result = session.result
        if not session.done or result is None:
            raise SystemExit("the replayed session did not complete")
    # The workers have exited: their peak is now in RUSAGE_CHILDREN (the largest so far).
    return {
        "exchange_s": exchange_s if exchange_s is not None else whole_s,
        "whole_s": whole_s,
        "matched_tokens": getattr(result, "matched_tokens", None),
        "worker_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="records of each party")
    ap.add_argument("--overlap", type=float, default=0.5, help="fraction of records shared")
    ap.add_argument("--chunk", type=int, default=2048, help="elements per chunk")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="counts to measure")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    if 1 not in args.workers:
        raise SystemExit("--workers must include 1 (the speed-up is measured against it)")
    overlap = int(args.n * args.overlap)
    own = make_tokens(args.n, 1, overlap, "initiator", 1)
    peer = make_tokens(args.n, 1, overlap, "responder", 1)
    messages = record(own, peer, args.chunk)
    before = calibrate(CALIBRATION_OPS, DEFAULT_SUITE.suite_id)
    runs = {w: replay(own, messages, args.chunk, w) for w in args.workers}
    after = calibrate(CALIBRATION_OPS, DEFAULT_SUITE.suite_id)
    hash_s = (before["hash_s"] + after["hash_s"]) / 2
    blind_s = (before["blind_s"] + after["blind_s"]) / 2
    probe = _session(own, Role.INITIATOR, args.chunk, GroupWorkers(1))
    padded = probe.padded_size
    floor_s = padded * (hash_s + blind_s) + padded * blind_s  # both sides pad alike here
    base = runs[1]
    figures = {
        "n": args.n,
        "overlap_records": overlap,
        "cores": os.cpu_count(),
        "runs": {
            str(w): {k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}
            for w, r in runs.items()
        },
        "speedup_exchange": {
            str(w): round(base["exchange_s"] / r["exchange_s"], 3) for w, r in runs.items()
        },
        "speedup_whole": {
            str(w): round(base["whole_s"] / r["whole_s"], 3) for w, r in runs.items()
        },
        "floor_s": round(floor_s, 3),
        "ratio": round(base["exchange_s"] / floor_s, 3),
        "primitive_us": {"hash_to_group": hash_s * 1e6, "x25519": blind_s * 1e6},
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }
    if any(r["matched_tokens"] != overlap for r in runs.values()):
        figures["error"] = "matched token count differs from the planted overlap"
    print(json.dumps(figures, indent=None if args.json else 2))
    if "error" in figures:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
