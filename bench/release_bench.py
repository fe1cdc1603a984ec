"""Benchmark: the release transfer of a whole exchange between two agencies, each in its own OS
process, over real mutual TLS on 127.0.0.1.

The data is ``xlink synth --n N --seed S`` (CA side and US side, N records each; written to a
temporary directory unless ``--data`` names a directory, where it is written unless it
holds them already). Keys and a signed MOU are
made as :func:`xlink.ceremony.demo_ceremony` makes them, from the bundled sample template with
straight-through release and set-size bounds of 2^20 padded tokens (key directories sealed
with ``TEST_KDF``: opening keys is not what is measured). US-DHS runs ``serve`` and CA-RCMP
``match``, each through :func:`xlink.agency.run_agency` (what ``xlink serve`` / ``xlink
match`` run), each with its workdir (audit log, store, outbound ledger: SQLite with
``synchronous=FULL``) on the disk of ``--tmp``. The whole exchange runs (prepare, PSI,
decision); what is measured is its transfer phase alone, ``phases["transfer"]`` of each
:class:`~xlink.agency.AgencyOutcome`: the decided-pairs digest, the label evaluation, building,
signing and sealing our releases, labelling, sending, receiving, opening, verifying and
storing the peer's, receipts both ways (each verified and settled in the ledger), every audit
entry, and the matches file.

Prints JSON figures. Speed is judged as a ratio against a floor measured in the same run:

- ``transfer_s``: the slower side's transfer phase. ``releases_per_s``: per direction, the
  releases the originator sent and the recipient received (counts from both outcomes), over
  ``transfer_s``.
- ``floor_s``: the primitives any release needs, per release: on the originator one Ed25519
  signature and one sealing (libsodium ``crypto_box_seal``: X25519 key pair + X25519 +
  XSalsa20-Poly1305, what :mod:`xlink.release.seal` does), on the recipient one Ed25519
  verification and one opening. Calibrated inside both agency processes on a message of the
  releases' size (``--release-bytes``; ``sealed_bytes_mean`` shows the size the run stored),
  once before the exchange and once after it; each side's floor is
  ``released * (sign + seal) + received * (verify + open)`` with the mean of the four
  calibrations, and ``floor_s`` is the larger of the two (the sides run on separate cores).
- ``ratio`` = ``transfer_s / floor_s``. ``floor_with_receipts_s`` adds what each release's
  receipt needs (xlink-release-v1 §8): the recipient signs the receipt and the audit checkpoint
  it carries, the originator verifies both; ``ratio_with_receipts`` is against it, and
  ``releases_per_s_at_the_floor_with_receipts`` is the rate a side would reach doing nothing
  but those primitives on one core.
- The labels of xlink-release-v1 §10.2 (release transfer v3) cost one OPRF evaluation per
  distinct decided pair (``label_points``; ``handles_per_decided`` says how many a label per
  handle, release transfer v1, would have cost), and are reported apart. ``labels_s``: the
  digest agreement and the label evaluation (each side), against ``label_floor_s``, per
  point three scalar multiplications in ciphersuite 2's group, ristretto255 (blind our
  request, answer the peer's, unblind the answer) and one hash to the group.
  ``own_outputs_s``: computing our own OPRF output of each pair to label our releases with,
  against ``own_outputs_floor_s`` (one multiplication, one hash per pair).
  ``release_s`` = ``transfer_s`` less ``labels_s``, against ``release_floor_s`` = ``floor_s``
  + ``own_outputs_floor_s``. ``rest_s`` = ``release_s`` less ``own_outputs_s``: everything
  but the labels (``rest_ratio`` against ``floor_s``; ``releases_per_s_without_labels``).
  ``build_s``: building, signing and sealing our releases and recording them in the ledger.
- ``--profile`` profiles CPU time (``time.process_time``), not wall time: on a shared machine
  the latter charges other processes' time to whatever was running.
- ``cpu_s``: each process's CPU time (user + system) inside the transfer phase; well below
  ``transfer_s`` means waiting (the disk's fsyncs, the peer).
- ``peak_rss_mb``: each agency process's peak resident set.

``--profile DIR`` writes a cProfile of each side's transfer phase (``DIR/serve.prof``,
``DIR/match.prof``; read with ``python -m pstats``) and prints the top functions to stderr.

Usage::

    python bench/release_bench.py --n 20000 --seed 7 --json
    python bench/release_bench.py --n 20000 --seed 7 --data /tmp/synth-20k --profile build/prof
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from psi_bench import calibrate as calibrate_psi

CA, US = "CA-RCMP", "US-DHS"
PASSPHRASE = b"release bench passphrase, not secret"
CALIBRATION_OPS = 4_000
TIMEOUT = 600.0
MAX_SET_SIZE = 1 << 20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def calibrate(ops: int, size: int) -> dict[str, float]:
    """Seconds per op of the raw primitives a release needs (no xlink code): Ed25519 sign and
    verify (OpenSSL, through ``cryptography``, over a 32-byte digest as xlink signs), sealing
    and opening a ``size``-byte message (libsodium ``crypto_box_seal``, through PyNaCl); and
    those of the label evaluation (xlink-psi-v2 §4.6, §7.5): one ristretto255 scalar
    multiplication and one hash to the group (2x SHA-512, ristretto255's one-way map), through
    rbcl, calibrated by bench/psi_bench.py's ``calibrate`` for suite 2 (its hash also squares
    the encoding: a fraction of a microsecond)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from nacl.public import PrivateKey, SealedBox

    signer = Ed25519PrivateKey.generate()
    verifier = signer.public_key()
    digests = [os.urandom(32) for _ in range(ops)]
    t0 = time.perf_counter()
    signatures = [signer.sign(d) for d in digests]
    sign_s = (time.perf_counter() - t0) / ops
    t0 = time.perf_counter()
    for d, s in zip(digests, signatures, strict=True):
        verifier.verify(s, d)
    verify_s = (time.perf_counter() - t0) / ops
    recipient = PrivateKey.generate()
    to_recipient, opener = SealedBox(recipient.public_key), SealedBox(recipient)
    message = os.urandom(size)
    t0 = time.perf_counter()
    sealed = [to_recipient.encrypt(message) for _ in range(ops)]
    seal_s = (time.perf_counter() - t0) / ops
    t0 = time.perf_counter()
    for box in sealed:
        opener.decrypt(box)
    open_s = (time.perf_counter() - t0) / ops
    # The labels run in ciphersuite 2's group, ristretto255 (xlink-psi-v2 §4.6, §7.5).
    group = calibrate_psi(ops, 2)
    hash_s, mult_s = group["hash_s"], group["ed_mult_s"]
    return {
        "sign_s": sign_s,
        "seal_s": seal_s,
        "verify_s": verify_s,
        "open_s": open_s,
        "hash_to_group_s": hash_s,
        "group_mult_s": mult_s,
    }


def _mean_sealed_bytes(workdir: Path) -> float | None:
    conn = sqlite3.connect(workdir / "store.db")
    try:
        row = conn.execute("SELECT AVG(LENGTH(sealed)) FROM releases").fetchone()
    finally:
        conn.close()
    return None if row is None or row[0] is None else float(row[0])


def run_party(args: argparse.Namespace, role: str) -> None:
    """One agency: calibrate, run the whole exchange (timing and optionally profiling its
    transfer phase), calibrate again, print one JSON line."""
    import cProfile
    import pstats

    from xlink.agency import _exchange, run_agency
    from xlink.agency._agency import Agency
    from xlink.crypto.rand import system_random
    from xlink.transport.release_transfer import label_pairs

    base = Path(args.base)
    agency, peer = (US, CA) if role == "serve" else (CA, US)
    data = Path(args.data)
    files = [data / ("us.csv" if agency == US else "ca.csv")]
    before = calibrate(CALIBRATION_OPS, args.release_bytes)
    marks: dict[str, float] = {}
    profiler = cProfile.Profile(time.process_time) if args.profile else None
    transfer = _exchange._transfer

    async def timed_transfer(self: Agency, *a: Any, **kw: Any) -> dict[str, Any]:
        marks["cpu0"], marks["rss0"] = _cpu_s(), _peak_rss_mb()
        if profiler is not None:
            profiler.enable()
        try:
            return await transfer(self, *a, **kw)
        finally:
            if profiler is not None:
                profiler.disable()
            marks["cpu1"] = _cpu_s()

    agree_and_label, release = _exchange.agree_and_label, Agency.release

    async def timed_labels(gate: Any, session: Any, decision: Any, *a: Any, **kw: Any) -> Any:
        marks["label_points"] = len(label_pairs(m.handles for m in decision.matches))
        marks["handles"] = sum(len(set(m.handles)) for m in decision.matches)
        t0 = time.perf_counter()
        try:
            return await agree_and_label(gate, session, decision, *a, **kw)
        finally:
            marks["labels_s"] = time.perf_counter() - t0

    def timed_release(self: Agency, *a: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return release(self, *a, **kw)
        finally:
            marks["build_s"] = time.perf_counter() - t0

    handing_over = Agency._handing_over
    marks["own_outputs_s"] = 0.0

    def timed_handing_over(self: Agency, session_id: bytes, outputs_of: Any) -> Any:
        def timed_outputs_of(handles: tuple[bytes, ...]) -> Any:
            t0 = time.perf_counter()
            try:
                return outputs_of(handles)
            finally:
                marks["own_outputs_s"] += time.perf_counter() - t0

        return handing_over(self, session_id, timed_outputs_of)

    _exchange._transfer = timed_transfer
    Agency.release = timed_release  # type: ignore[method-assign]
    Agency._handing_over = timed_handing_over  # type: ignore[method-assign]
    _exchange.agree_and_label = timed_labels
    ceremony = json.loads((base / "ceremony.json").read_text())
    outcome = asyncio.run(
        run_agency(
            role,  # type: ignore[arg-type]
            agency=agency,
            files=files,
            keys_dir=ceremony["keys"][agency],
            passphrase=PASSPHRASE,
            mou_path=ceremony["mou"],
            peer_bundle_path=ceremony["bundles"][peer],
            host="127.0.0.1",
            port=args.port,
            workdir=base / agency,
            now_clock=lambda: datetime.now(UTC),
            rng=system_random,
            timeout=TIMEOUT,
            idle_timeout=TIMEOUT,
            on_listening=lambda port: (base / "port").write_text(str(port)),
        )
    )
    after = calibrate(CALIBRATION_OPS, args.release_bytes)
    if profiler is not None:
        out = Path(args.profile) / f"{role}.prof"
        profiler.dump_stats(out)
        print(f"-- {role} ({agency}): transfer phase, top by own time", file=sys.stderr)
        pstats.Stats(str(out), stream=sys.stderr).sort_stats("tottime").print_stats(25)
        print(f"-- {role} ({agency}): transfer phase, top cumulative", file=sys.stderr)
        pstats.Stats(str(out), stream=sys.stderr).sort_stats("cumulative").print_stats(40)
    doc = outcome.to_json()
    doc |= {
        "role": role,
        "transfer_cpu_s": marks["cpu1"] - marks["cpu0"],
        "labels_s": marks["labels_s"],
        "label_points": marks["label_points"],
        "handles": marks["handles"],
        "build_s": marks["build_s"],
        "own_outputs_s": marks["own_outputs_s"],
        "peak_rss_mb": _peak_rss_mb(),
        "peak_rss_mb_before_transfer": marks["rss0"],
        "sealed_bytes_mean": _mean_sealed_bytes(base / agency),
        "calibration_before": before,
        "calibration_after": after,
    }
    print(json.dumps(doc))


def _spawn(args: argparse.Namespace, role: str, port: int) -> subprocess.Popen[str]:
    cmd = [sys.executable, os.path.abspath(__file__), "--_child", role, "--_base", args._base]
    cmd += [f"--data={args.data}", f"--port={port}", f"--release-bytes={args.release_bytes}"]
    if args.profile:
        cmd.append(f"--profile={args.profile}")
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)


def _collect(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"agency process failed with exit code {proc.returncode}")
    parsed: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return parsed


def _ceremony(base: Path, *, reciprocal: bool) -> dict[str, Any]:
    """:func:`xlink.ceremony.demo_ceremony` with straight-through release and set-size bounds
    large enough for ``--n`` (the sample's 65,536 padded tokens a side hold about 3,000 synth
    records); ``reciprocal``: the MOU's ``release.reciprocal``."""
    from xlink.ceremony import demo_ceremony
    from xlink.crypto.envelope import TEST_KDF
    from xlink.crypto.rand import system_random

    files = demo_ceremony(
        base / "ceremony",
        passphrase=PASSPHRASE,
        now=datetime.now(UTC),
        rng=system_random,
        approval_required=False,
        kdf=TEST_KDF,
        max_set_size=MAX_SET_SIZE,
        reciprocal=reciprocal,
    )
    return {
        "keys": {a: str(p) for a, p in files.keys.items()},
        "bundles": {a: str(p) for a, p in files.bundles.items()},
        "mou": str(files.mou),
    }


def _prepare(args: argparse.Namespace, base: Path) -> None:
    if args.data is None:
        args.data = str(base / "data")
    if not (Path(args.data) / "us.csv").exists():  # written here, kept for the next run
        from xlink.synth import generate_synth

        generate_synth(args.data, args.n, args.seed)
    (base / "ceremony.json").write_text(json.dumps(_ceremony(base, reciprocal=args.reciprocal)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=20_000, help="synth records per side")
    ap.add_argument("--seed", type=int, default=7, help="synth seed")
    ap.add_argument(
        "--data",
        help="a directory xlink synth wrote (ca.csv, us.csv); written with --n and --seed "
        "when it holds none",
    )
    ap.add_argument("--tmp", help="where the workdirs go (default: the system's temp dir)")
    ap.add_argument("--release-bytes", type=int, default=720, help="sealed size to calibrate on")
    ap.add_argument("--profile", help="write a cProfile of each side's transfer phase here")
    ap.add_argument(
        "--reciprocal",
        action="store_true",
        help="an MOU with release.reciprocal: offers first, releases paced (xlink-release-v1 10.5)",
    )
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--_child", help=argparse.SUPPRESS)
    ap.add_argument("--_base", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._child:
        args.base = args._base
        run_party(args, args._child)
        return

    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.tmp, prefix="xlink-release-bench-") as tmp:
        base = Path(tmp)
        args._base = str(base)
        _prepare(args, base)
        server = _spawn(args, "serve", 0)
        deadline = time.monotonic() + TIMEOUT
        port_file = base / "port"
        while not port_file.exists() or not port_file.read_text():
            if server.poll() is not None:
                raise SystemExit("serve exited before listening")
            if time.monotonic() > deadline:
                server.kill()
                raise SystemExit("serve never listened")
            time.sleep(0.05)
        client = _spawn(args, "match", int(port_file.read_text()))
        sides = {US: _collect(server), CA: _collect(client)}
    figures = _figures(args, sides)
    print(json.dumps(figures, indent=None if args.json else 2))
    if "error" in figures:
        raise SystemExit(1)


def _figures(args: argparse.Namespace, sides: dict[str, dict[str, Any]]) -> dict[str, Any]:
    cal = [s[f"calibration_{w}"] for s in sides.values() for w in ("before", "after")]
    per_op = {k: sum(c[k] for c in cal) / len(cal) for k in cal[0]}
    out_s, in_s = per_op["sign_s"] + per_op["seal_s"], per_op["verify_s"] + per_op["open_s"]
    floors = {a: s["released_total"] * out_s + s["received_total"] * in_s for a, s in sides.items()}
    floor_s = max(floors.values())
    # Each release also costs its receipt: the recipient signs the receipt and the audit
    # checkpoint it carries, the originator verifies both (xlink-release-v1 §8).
    receipt_floors = {
        a: s["received_total"] * 2 * per_op["sign_s"] + s["released_total"] * 2 * per_op["verify_s"]
        for a, s in sides.items()
    }
    full_floor_s = max(floors[a] + receipt_floors[a] for a in sides)
    points = max(s["label_points"] for s in sides.values())
    label_floor_s = points * (3 * per_op["group_mult_s"] + per_op["hash_to_group_s"])
    own_floor_s = points * (per_op["group_mult_s"] + per_op["hash_to_group_s"])
    transfer_s = max(s["phases"]["transfer"] for s in sides.values())
    labels_s = max(s["labels_s"] for s in sides.values())
    release_s = max(s["phases"]["transfer"] - s["labels_s"] for s in sides.values())
    own_s = max(s["own_outputs_s"] for s in sides.values())
    rest_s = max(
        s["phases"]["transfer"] - s["labels_s"] - s["own_outputs_s"] for s in sides.values()
    )
    ca, us = sides[CA], sides[US]
    directions = {
        f"{CA}->{US}": {"released": ca["released_total"], "received": us["received_total"]},
        f"{US}->{CA}": {"released": us["released_total"], "received": ca["received_total"]},
    }
    for d in directions.values():
        moved = min(d["released"], d["received"])
        d["per_s"] = round(moved / transfer_s, 1)
        d["per_s_without_labels"] = round(moved / rest_s, 1)
    figures: dict[str, Any] = {
        "n": args.n,
        "reciprocal": args.reciprocal,
        "seed": args.seed,
        "decided": ca["decided"],
        "directions": directions,
        "releases_per_s": min(d["per_s"] for d in directions.values()),
        "transfer_s": round(transfer_s, 3),
        "floor_s": round(floor_s, 3),
        "ratio": round(transfer_s / floor_s, 2),
        "floor_with_receipts_s": round(full_floor_s, 3),
        "ratio_with_receipts": round(transfer_s / full_floor_s, 2),
        "releases_per_s_at_the_floor_with_receipts": round(
            min(min(d["released"], d["received"]) for d in directions.values()) / full_floor_s, 1
        ),
        "labels_s": round(labels_s, 3),
        "label_floor_s": round(label_floor_s, 3),
        "label_ratio": round(labels_s / label_floor_s, 2),
        "label_points": ca["label_points"],
        "handles_per_decided": round(ca["handles"] / max(ca["decided"], 1), 2),
        "release_s": round(release_s, 3),
        "release_floor_s": round(floor_s + own_floor_s, 3),
        "release_ratio": round(release_s / (floor_s + own_floor_s), 2),
        "own_outputs_s": round(own_s, 3),
        "own_outputs_floor_s": round(own_floor_s, 3),
        "rest_s": round(rest_s, 3),
        "rest_ratio": round(rest_s / floor_s, 2),
        "releases_per_s_without_labels": min(
            d["per_s_without_labels"] for d in directions.values()
        ),
        "by_agency": {
            a: {
                "transfer_s": s["phases"]["transfer"],
                "labels_s": round(s["labels_s"], 3),
                "build_s": round(s["build_s"], 3),
                "own_outputs_s": round(s["own_outputs_s"], 3),
                "cpu_s": round(s["transfer_cpu_s"], 3),
                "psi_s": s["phases"].get("psi"),
            }
            for a, s in sides.items()
        },
        "floor_us_per_release": {
            "originator": round(out_s * 1e6, 2),
            "recipient": round(in_s * 1e6, 2),
        },
        "label_floor_us_per_point": {
            "evaluation": round(label_floor_s / max(points, 1) * 1e6, 2),
            "own_output": round(own_floor_s / max(points, 1) * 1e6, 2),
        },
        "primitive_us": {k.removesuffix("_s"): round(v * 1e6, 2) for k, v in per_op.items()},
        "floor_calibration_us": {
            f"{s['role']}_{w}": {
                k.removesuffix("_s"): round(v * 1e6, 2) for k, v in s[f"calibration_{w}"].items()
            }
            for s in sides.values()
            for w in ("before", "after")
        },
        "sealed_bytes_mean": {a: round(s["sealed_bytes_mean"] or 0, 1) for a, s in sides.items()},
        "receipts_verified": {a: s["receipts_verified"] for a, s in sides.items()},
        "refused": {a: s["refused_by_us"] + s["refused_by_peer"] for a, s in sides.items()},
        "audit_ok": all(s["audit_ok"] for s in sides.values()),
        "audit_entries": {a: s["audit_entries"] for a, s in sides.items()},
        "peak_rss_mb": {a: round(s["peak_rss_mb"], 1) for a, s in sides.items()},
        "peak_rss_mb_before_transfer": {
            a: round(s["peak_rss_mb_before_transfer"], 1) for a, s in sides.items()
        },
        "cores": os.cpu_count(),
    }
    problems = []
    for name, d in directions.items():
        if d["released"] != d["received"] or d["released"] == 0:
            problems.append(f"{name}: {d['released']} released, {d['received']} received")
    for a, s in sides.items():
        if s["receipts_verified"] != s["released_total"] or not s["audit_ok"]:
            problems.append(f"{a}: receipts or audit log not as expected")
    if problems:
        figures["error"] = "; ".join(problems)
    return figures


if __name__ == "__main__":
    main()
