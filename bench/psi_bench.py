"""Benchmark: a mutual PSI between two OS processes connected by a socket pair.

Prints JSON figures. Speed is judged as a ratio against the floor measured in the same run on the
same machine, because absolute times on shared machines drift:

- ``floor_s``: the time the ciphersuite's primitives alone (hash to group: 2x SHA-512 and, for
  suite 2 (``--suite 2``, the default), ristretto255's one-way map and a squaring, for suite 1,
  2x Elligator 2 + point addition in libsodium; blinding: one X25519 in OpenSSL) take for the
  number of operations each party performs, taking the slower party. The per-op times are
  calibrated inside the two party processes themselves, once just before and once just after
  the protocol run (the parties synchronise over a socket of their own so that both calibrate at the
  same time: both cores busy in both windows, as in the run); the floor uses the mean of the
  four measurements (2 parties x before/after). ``floor_calibration_us`` shows the before and
  after means so that drift during the run is visible.
- ``wall_s``: from both parties starting the protocol (tokens already in memory) to both
  having their results.
- ``ratio`` = ``wall_s / floor_s``.
- ``psi_wall_s`` / ``psi_ratio``: the exchange alone (start to the confirmation round, the
  slower party) against the same floor: what xlink-psi-v1 measured as its whole run.
- ``confirm_s``, ``confirm_us_per_match``, ``confirm_ratio``: the confirmation round of
  xlink-psi-v2 (§6.9-6.10), whose work grows with the matched tokens, not the list: its floor
  is, per matched token and party, one hash to group and three scalar multiplications in the
  suite's group (blind, unblind, and the answer to the peer's request: edwards25519 for suite
  1, ristretto255 for suite 2, which adds one X25519 to recover the value, §4.6).
- ``ratio_x25519``: the exchange against two X25519 per token for the slower party (what a
  party costs if hashing were free).
- ``phases_per_party``: for each party and each session state it went through, when it entered
  it (``start_s``) and, until the next state, the wall time, this process's CPU time and the
  time its sends were pending (``send_wait_s``: the peer not reading; the driver delivers
  what arrives meanwhile, so this time may overlap CPU time). Wall time beyond the CPU time
  was spent waiting for the peer.
- ``--dask``: each party hashes and blinds on a local Dask cluster of its own (``--workers``
  worker processes, mutual TLS; ``xlink.crypto.cluster``), started before the clock. Then
  ``party_cpu_us_per_element`` (the party process's own CPU per element it sent or
  received: the session, matching and I/O, which stay on one core however many workers a
  cluster adds) is what ``bench/scaling.py`` extrapolates from.
- ``--cached``: a repeated exchange. Each party's hashes are first made into a cache directory
  by a process of its own (the earlier exchange: neither its time nor its memory counts), and
  the timed exchange reads them back, file read included.

Each party runs the session with xlink's own driver (``xlink.transport.run_session``) over
its end of the socket pair, as every exchange does.

Usage::

    python bench/psi_bench.py --n 100000 --keys 1 --json
    python bench/psi_bench.py --n 100000 --keys 1 --suite 1 --json
    python bench/psi_bench.py --n 1000000 --keys 1 --overlap 0.02 --cached --json
    python bench/psi_bench.py --n 1000000 --keys 1 --overlap 0.02 --dask --workers 1 --json
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from array import array
from typing import Any

from xlink.linkage.tokens import TokenSet
from xlink.protocol.framing import FRAME_HEADER_SIZE

CALIBRATION_OPS = 20_000
MOU_DIGEST = hashlib.sha256(b"bench mou").digest()


def make_tokens(n: int, keys: int, overlap: int, party: str, seed: int) -> TokenSet:
    """``n`` records with ``keys`` tokens each; the first ``overlap`` records are shared by both
    parties (same tokens), the rest are the party's own. Deterministic in ``seed``."""
    from xlink.crypto.rand import DeterministicRandom

    shared = DeterministicRandom(f"shared/{seed}")(32 * overlap * keys)
    own = DeterministicRandom(f"{party}/{seed}")(32 * (n - overlap) * keys)
    record_index = array("I", (t // keys for t in range(n * keys)))
    key_index = array("B", (t % keys for t in range(n * keys)))
    prefix = "A" if party == "initiator" else "B"
    return TokenSet(
        key_names=tuple(f"k{j}" for j in range(keys)),
        record_ids=tuple(f"{prefix}{i}" for i in range(n)),
        values=shared + own,
        record_index=record_index,
        key_index=key_index,
    )


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _barrier(control: socket.socket) -> None:
    """Wait until the peer reaches the same point: one byte each way on a socket of their own,
    outside the protocol."""
    control.sendall(b"\x00")
    if control.recv(1) != b"\x00":
        raise SystemExit("benchmark barrier: the peer has gone")


class _Marks:
    """Times (from ``start``) and peak RSS when each session state is first seen, after every
    message received (what :func:`~xlink.transport.run_session` reports, as the audit log
    would see it) and every message sent."""

    def __init__(self, session: Any, start: float) -> None:
        self.session, self.start = session, start
        self.times: dict[str, float] = {}
        self.cpu: dict[str, float] = {}  # this process's CPU seconds when the state was seen
        self.send_wait: dict[str, float] = {}  # seconds awaiting send() per state
        self.peaks: dict[str, float] = {}
        self.peer_elements = 0

    def record(self, events: Any) -> None:
        from xlink.protocol import HandshakeComplete

        for event in events:
            if isinstance(event, HandshakeComplete):
                self.peer_elements = event.peer_padded_size
        self.note()

    def note(self) -> None:
        """Mark the state the session is in now (after a message received or sent: a party
        moves to CONFIRM on either)."""
        state = self.session.state.value
        if state not in self.times:
            self.times[state] = time.perf_counter() - self.start
            self.cpu[state] = time.process_time()
            self.peaks[state] = _peak_rss_mb()

    def waited_sending(self, seconds: float) -> None:
        """Count ``seconds`` a send was pending (the peer not reading) against the state now."""
        state = self.session.state.value
        self.send_wait[state] = self.send_wait.get(state, 0.0) + seconds

    def record_error(self, error: Exception) -> None:
        raise SystemExit(f"session aborted: {error}")


def run_party(
    role: str,
    fd: int,
    control_fd: int,
    n: int,
    keys: int,
    overlap: int,
    seed: int,
    chunk: int,
    workers: int,
    cache_dir: str | None,
    suite_id: int,
    dask: bool = False,
) -> None:
    """One party: calibrate, run a PsiSession with xlink's own driver
    (:func:`~xlink.transport.run_session`, as every exchange does) over its socket until it
    completes, calibrate again. Barriers on ``control_fd`` keep the two parties' calibration
    windows aligned. With ``cache_dir`` (filled by :func:`prehash` beforehand, in another
    process, as an earlier exchange under the same MOU would have), the timed run reads the
    party's hashes back."""
    import asyncio
    from pathlib import Path

    from xlink.crypto.rand import DeterministicRandom
    from xlink.crypto.workers import GroupWorkers
    from xlink.protocol import Mode, PsiSession, Role, SessionConfig
    from xlink.protocol.hashed import hash_tokens
    from xlink.transport import FramedConnection, run_session

    tokens = make_tokens(n, keys, overlap, role, seed)
    cluster = contextlib.ExitStack()
    if dask:  # started before the clock, as a party starts its cluster before the partner calls
        from xlink.crypto.cluster import LOCAL, dask_workers

        pool = cluster.enter_context(dask_workers(LOCAL, local_workers=workers))
    else:
        pool = GroupWorkers(workers, start_after=0)
    sock = socket.socket(fileno=fd)
    control = socket.socket(fileno=control_fd)
    is_init = role == "initiator"
    config = SessionConfig(
        role=Role.INITIATOR if is_init else Role.RESPONDER,
        mode=Mode.PSI,
        party_id="CA-RCMP" if is_init else "US-DHS",
        peer_id="US-DHS" if is_init else "CA-RCMP",
        mou_id="MOU-BENCH-1",
        mou_digest=MOU_DIGEST,
        schema_digest=hashlib.sha256(b"bench schema").digest(),
        chunk_size=chunk,
        suite_id=suite_id,
    )
    cache = Path(cache_dir) if cache_dir is not None else None
    _barrier(control)
    before = calibrate(CALIBRATION_OPS, suite_id)
    _barrier(control)

    async def exchange() -> tuple[Any, _Marks, int]:
        start = time.perf_counter()
        hashed = None
        if cache is not None:
            hashed = hash_tokens(
                tokens,
                suite_id=suite_id,
                mou_digest=config.mou_digest,
                workers=pool,
                cache_dir=cache,
            )
            assert hashed.computed == 0, "the cache should hold every token"
        session = PsiSession(
            config,
            tokens,
            rng=DeterministicRandom(f"session/{role}/{seed}"),
            workers=pool,
            hashed=hashed,
        )
        marks = _Marks(session, start)
        reader, writer = await asyncio.open_connection(sock=sock)
        conn = FramedConnection(reader, writer, write_timeout=3600.0)
        counted = _Counted(conn, marks)
        await run_session(session, counted, auditor=marks, idle_timeout=3600.0)
        marks.times.setdefault("DONE", time.perf_counter() - start)
        marks.cpu.setdefault("DONE", time.process_time())
        return session, marks, counted.sent

    cpu_start = time.process_time()
    session, marks, sent = asyncio.run(exchange())
    wall = marks.times["DONE"]
    party_cpu = marks.cpu["DONE"] - cpu_start
    pool.close()
    cluster.close()
    _barrier(control)
    after = calibrate(CALIBRATION_OPS, suite_id)
    result = session.result
    matched = getattr(result, "matched_tokens", None)
    pairs = getattr(result, "pair_count", 0)
    print(
        json.dumps(
            {
                "role": role,
                "wall_s": wall,
                "confirm_start_s": marks.times.get("CONFIRM", wall),
                "reveal_start_s": marks.times.get("REVEAL", wall),
                "bytes_sent": sent,
                "party_cpu_s": party_cpu,
                "peak_rss_mb": _peak_rss_mb(),
                "peak_rss_mb_worker": (
                    resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
                    if workers > 1 and not dask
                    else 0.0
                ),
                "peak_rss_mb_before_phase": marks.peaks,
                "phases": _phases(marks),
                "matched_tokens": matched,
                "pairs": pairs,
                "own_elements": session.padded_size,
                "peer_elements": marks.peer_elements,
                "calibration_before": before,
                "calibration_after": after,
            }
        )
    )
    control.close()


def _phases(marks: _Marks) -> dict[str, dict[str, float]]:
    """Each state the party went through: when it entered it, and the wall time, the CPU time
    and the time sends were pending until the next state (wall time beyond the CPU time was
    spent waiting for the peer)."""
    order = sorted(marks.times, key=marks.times.__getitem__)
    out = {}
    for state, following in itertools.pairwise(order):
        out[state] = {
            "start_s": round(marks.times[state], 3),
            "wall_s": round(marks.times[following] - marks.times[state], 3),
            "cpu_s": round(marks.cpu[following] - marks.cpu[state], 3),
            "send_wait_s": round(marks.send_wait.get(state, 0.0), 3),
        }
    return out


class _Counted:
    """A connection that counts the framed bytes it sends and marks the session's state as
    each message goes."""

    def __init__(self, conn: Any, marks: _Marks) -> None:
        self._conn, self._marks, self.sent = conn, marks, 0

    async def send(self, message: bytes) -> None:
        self._marks.note()
        self.sent += FRAME_HEADER_SIZE + len(message)
        began = time.perf_counter()
        await self._conn.send(message)
        self._marks.waited_sending(time.perf_counter() - began)

    async def receive(self) -> bytes | None:
        message: bytes | None = await self._conn.receive()
        return message

    async def close(self, timeout: float | None = None) -> None:
        await self._conn.close(timeout)


def prehash(
    role: str, n: int, keys: int, overlap: int, seed: int, cache_dir: str, suite_id: int
) -> None:
    """The earlier exchange of a ``--cached`` run: hash the party's tokens into ``cache_dir``
    (in a process of its own, so that neither its time nor its memory is the party's)."""
    from pathlib import Path

    from xlink.crypto.workers import GroupWorkers
    from xlink.protocol.hashed import hash_tokens

    tokens = make_tokens(n, keys, overlap, role, seed)
    with GroupWorkers(1) as pool:
        hash_tokens(
            tokens,
            suite_id=suite_id,
            mou_digest=MOU_DIGEST,
            workers=pool,
            cache_dir=Path(cache_dir),
        )


def calibrate(ops: int, suite_id: int) -> dict[str, float]:
    """Time the raw primitives (no xlink code) for ``ops`` operations: seconds per op. For
    suite 1 the hash is two Elligator 2 maps and an addition through PyNaCl and the group is
    edwards25519; for suite 2 the hash is rbcl's ristretto255 one-way map and a squaring modulo
    ``p``, the group ristretto255."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import (
        X25519PrivateKey,
        X25519PublicKey,
    )
    from nacl import bindings as sodium

    from xlink.crypto import _rbcl  # rbcl, its temporary library file removed

    from_uniform = sodium.crypto_core_ed25519_from_uniform
    add = sodium.crypto_core_ed25519_add
    from_hash = _rbcl.from_hash
    p = 2**255 - 19
    msgs = [os.urandom(32) for _ in range(ops)]
    t0 = time.perf_counter()
    if suite_id == 1:
        for m in msgs:
            b0 = hashlib.sha512(m).digest()
            b1 = hashlib.sha512(b0).digest()
            add(from_uniform(b0[:32]), from_uniform(b1[:32]))
    else:
        for m in msgs:
            b0 = hashlib.sha512(m).digest()
            b1 = hashlib.sha512(b0).digest()
            s = int.from_bytes(from_hash(b1), "little")
            (s * s % p).to_bytes(32, "little")
    hash_s = (time.perf_counter() - t0) / ops
    # Valid inputs for X25519: public keys of random scalars.
    key = X25519PrivateKey.generate()
    pubs = [X25519PrivateKey.generate().public_key().public_bytes_raw() for _ in range(ops // 4)]
    pubs = (pubs * 4)[:ops]
    t0 = time.perf_counter()
    for pub in pubs:
        key.exchange(X25519PublicKey.from_public_bytes(pub))
    blind_s = (time.perf_counter() - t0) / ops
    scalar = sodium.crypto_core_ed25519_scalar_reduce(os.urandom(64))
    if suite_id == 1:
        points = [add(from_uniform(m), from_uniform(m[::-1])) for m in msgs[: ops // 4]]
        mult = sodium.crypto_scalarmult_ed25519_noclamp
    else:
        points = [from_hash(m + m) for m in msgs[: ops // 4]]
        mult = _rbcl.scalarmult
    t0 = time.perf_counter()
    for q in points:
        mult(scalar, q)
    ed_s = (time.perf_counter() - t0) / len(points)
    return {"hash_s": hash_s, "blind_s": blind_s, "ed_mult_s": ed_s}


def _spawn(args: list[str], pass_fds: tuple[int, ...] = ()) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), *args],
        stdout=subprocess.PIPE,
        text=True,
        pass_fds=pass_fds,
    )


def _collect(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"child failed with exit code {proc.returncode}")
    parsed: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return parsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="records per side")
    ap.add_argument("--keys", type=int, default=1, help="tokens per record")
    ap.add_argument("--overlap", type=float, default=0.5, help="fraction of records shared")
    ap.add_argument("--chunk", type=int, default=2048, help="elements per chunk")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes per party (default 1: the two parties share this machine's cores)",
    )
    ap.add_argument(
        "--cached",
        action="store_true",
        help="a repeated exchange: each party's own hashes come from its cache",
    )
    ap.add_argument(
        "--suite", type=int, choices=(1, 2), default=2, help="PSI ciphersuite (default 2)"
    )
    ap.add_argument(
        "--dask",
        action="store_true",
        help="each party hashes and blinds on its own local Dask cluster of --workers workers",
    )
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument(
        "--_child", nargs=3, metavar=("ROLE", "FD", "CONTROL_FD"), help=argparse.SUPPRESS
    )
    ap.add_argument("--_cache", metavar="DIR", help=argparse.SUPPRESS)
    ap.add_argument("--_prehash", metavar="ROLE", help=argparse.SUPPRESS)
    args = ap.parse_args()
    overlap = int(args.n * args.overlap)

    if args._prehash:
        prehash(args._prehash, args.n, args.keys, overlap, args.seed, args._cache, args.suite)
        return
    if args._child:
        role, fd, control_fd = args._child
        run_party(
            role,
            int(fd),
            int(control_fd),
            args.n,
            args.keys,
            overlap,
            args.seed,
            args.chunk,
            args.workers,
            args._cache,
            args.suite,
            args.dask,
        )
        return

    a, b = socket.socketpair()  # the session's
    ca, cb = socket.socketpair()  # the barriers'
    common = [f"--n={args.n}", f"--keys={args.keys}", f"--overlap={args.overlap}"]
    common += [f"--chunk={args.chunk}", f"--seed={args.seed}", f"--workers={args.workers}"]
    common += [f"--suite={args.suite}", *(["--dask"] if args.dask else [])]
    with tempfile.TemporaryDirectory(prefix="psi-bench-cache-") as tmp:
        caches = {
            role: [f"--_cache={os.path.join(tmp, role)}"] if args.cached else []
            for role in ("initiator", "responder")
        }
        if args.cached:  # the earlier exchange, both parties at once
            for proc in [
                _spawn([*common, *caches[role], "--_prehash", role])
                for role in ("initiator", "responder")
            ]:
                proc.communicate()
                if proc.returncode != 0:
                    raise SystemExit(f"hashing for the cache failed: exit code {proc.returncode}")
        procs = [
            _spawn(
                [*common, *caches[role], "--_child", role, str(s.fileno()), str(c.fileno())],
                pass_fds=(s.fileno(), c.fileno()),
            )
            for role, s, c in (("initiator", a, ca), ("responder", b, cb))
        ]
        for s in (a, b, ca, cb):
            s.close()
        parties = [_collect(p) for p in procs]
    windows = {
        w: {
            k: sum(p[f"calibration_{w}"][k] for p in parties) / 2
            for k in ("hash_s", "blind_s", "ed_mult_s")
        }
        for w in ("before", "after")
    }
    hash_s = (windows["before"]["hash_s"] + windows["after"]["hash_s"]) / 2
    blind_s = (windows["before"]["blind_s"] + windows["after"]["blind_s"]) / 2
    # Each party hashes and blinds its own padded set and re-blinds the peer's.
    floors = [
        p["own_elements"] * (hash_s + blind_s) + p["peer_elements"] * blind_s for p in parties
    ]
    floor_s = max(floors)
    # The X25519 floor: two scalar multiplications per token (blind our own, re-blind the
    # peer's), the slower party; what a party does if hashing to the group cost nothing.
    floor_x25519_s = max((p["own_elements"] + p["peer_elements"]) * blind_s for p in parties)
    wall_s = max(p["wall_s"] for p in parties)
    ed_s = (windows["before"]["ed_mult_s"] + windows["after"]["ed_mult_s"]) / 2
    psi_wall_s = max(p["confirm_start_s"] for p in parties)
    confirm_s = max(p["reveal_start_s"] - p["confirm_start_s"] for p in parties)
    matched = max(parties[0]["matched_tokens"] or 0, 1)
    # Suite 2 recovers each confirmed value with one X25519 (xlink-psi-v2 §4.6).
    confirm_floor_s = matched * (hash_s + 3 * ed_s + (blind_s if args.suite == 2 else 0.0))
    expected = overlap * args.keys
    figures = {
        "n": args.n,
        "keys": args.keys,
        "overlap_records": overlap,
        "wall_s": round(wall_s, 3),
        "floor_s": round(floor_s, 3),
        "ratio": round(wall_s / floor_s, 3),
        "psi_wall_s": round(psi_wall_s, 3),
        "psi_ratio": round(psi_wall_s / floor_s, 3),
        "suite": args.suite,
        "workers_per_party": args.workers,
        "chunk": args.chunk,
        "dask": args.dask,
        # The party process's own CPU (the session, its matching and its I/O; not its workers'):
        # what stays on one core however many workers a cluster adds.
        "party_cpu_us_per_element": round(
            max(
                p["party_cpu_s"] / max(p["own_elements"] + p["peer_elements"], 1) * 1e6
                for p in parties
            ),
            2,
        ),
        "cached": args.cached,
        "floor_x25519_s": round(floor_x25519_s, 3),
        "ratio_x25519": round(psi_wall_s / floor_x25519_s, 3),
        "ratio_x25519_whole_run": round(wall_s / floor_x25519_s, 3),
        "confirm_s": round(confirm_s, 3),
        "confirm_us_per_match": round(confirm_s / matched * 1e6, 1),
        "confirm_floor_s": round(confirm_floor_s, 3),
        "confirm_ratio": round(confirm_s / confirm_floor_s, 3),
        "peak_rss_mb_per_party": round(max(p["peak_rss_mb"] for p in parties), 1),
        "peak_rss_mb_per_worker": round(max(p["peak_rss_mb_worker"] for p in parties), 1),
        "peak_rss_mb_before_phase": {
            phase: round(max(p["peak_rss_mb_before_phase"].get(phase, 0) for p in parties), 1)
            for phase in ("EXCHANGE", "CONFIRM", "REVEAL")
        },
        "bytes_sent": sum(p["bytes_sent"] for p in parties),
        "phases_per_party": {p["role"]: p["phases"] for p in parties},
        "matched_tokens": parties[0]["matched_tokens"],
        "expected_matched_tokens": expected,
        "candidate_pairs": parties[0]["pairs"],
        "primitive_us": {
            "hash_to_group": hash_s * 1e6,
            "x25519": blind_s * 1e6,
            "group_scalar_mult": ed_s * 1e6,
        },
        "floor_calibration_us": {
            w: {
                "hash_to_group": round(windows[w]["hash_s"] * 1e6, 3),
                "x25519": round(windows[w]["blind_s"] * 1e6, 3),
            }
            for w in ("before", "after")
        },
        "cores": os.cpu_count(),
    }
    if parties[0]["matched_tokens"] != expected or parties[1]["matched_tokens"] != expected:
        figures["error"] = "matched token count differs from the planted overlap"
    print(json.dumps(figures, indent=None if args.json else 2))
    if "error" in figures:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
