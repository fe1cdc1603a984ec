"""Benchmark: the real-time query mode (xlink-query-v1) end to end, over loopback mutual TLS.

A demo ceremony (straight-through MOU: no officer approval) in a temporary directory; the
holder (CA-RCMP) in its own process, the asker (US-DHS) in this one, each an
:class:`~xlink.agency.Agency` with its own workdir, audit log and store.

- **Holder list**: the bundled CA files prepared with ``Agency.prepare`` (real records: real
  hits and real releases) plus random filler records up to ``--records`` in all. Each filler
  record copies the key pattern (which keys, so how many tokens) of a real record drawn at
  random, with random 32-byte token values, so the list has the real records' tokens per
  record and key mix; filler records have no ``PersonRecord`` and never match.
- **Build**: ``QueryService(agency, side)`` in the holder process (one OPRF evaluation per
  distinct token on ``HolderTable.workers`` threads, the entries, the table saved to the
  workdir), its wall time against ``distinct tokens x evaluate_many`` (one core), and the
  holder's peak RSS (``ru_maxrss``) before and after.
- **Serving**: ``Agency.serve_queries`` (what ``xlink query serve`` runs) with the service
  built above.
- **Sync**: one ``QueryClient`` session: the table copy fetched whole (seconds, entries,
  bytes). The connection is wrapped to count the frames each way (payload + 4-byte header;
  TLS records not counted).
- **Per traveller**: ``--travellers K`` single-traveller ``client.ask`` calls in that
  session (the 500 bundled travellers in file order, cycled), each timed: p50, p99, max,
  against the floor ``tokens x (blind + blind_evaluate + finalize)`` per element.
- **Holder CPU**: the holder process's CPU time (all threads) over the per-traveller phase,
  per traveller, against ``tokens x blind_evaluate``: travellers per second per holder core.
  ``--split-holder-cpu`` also reads it around every ask (outside the timed window), to tell
  travellers with a match (a release made) from those without.
- **Manifest**: one ``client.ask`` of 300 travellers (the next 300 in the cycle) against
  ``tokens x (blind + blind_evaluate + finalize)``, and half of that (the two processes
  overlap).
- **Fresh connection**: ``--fresh`` single asks each on a new connection (connect + TLS,
  HELLO and the table copy loaded from the workdir, the ask, BYE), what
  ``Agency.query_session`` does, with each part timed apart.
- **Update**: afterwards, in the holder, the last 1,000 filler records removed and 1,000 new
  ones added through ``QueryService.update`` (seconds, OPRF evaluations), then one more
  session to time the asker's delta sync. An update still running after
  ``--update-timeout`` seconds is reported unfinished and the holder is stopped.

Floors are measured in this (the asker's) process on one core, before the holder starts and
after the last phase (the holder idle), and averaged; both are in ``floors_us``.

Usage::

    python bench/query_bench.py --records 20000
    python bench/query_bench.py --records 20000 --split-holder-cpu --json
    python bench/query_bench.py --records 1000000 --json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing as mp
import os
import resource
import statistics
import sys
import tempfile
import time
from array import array
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

PASSPHRASE = b"query bench passphrase, not a secret"
CA, US = "CA-RCMP", "US-DHS"
DATA = Path(__file__).resolve().parents[1] / "xlink" / "data"
HOLDER_FILES = ("ca_sex_offenders.csv", "ca_watchlist.csv")
TRAVELLERS_FILE = "us_travellers.csv"
QUOTA = 100_000_000
IDLE_TIMEOUT = 3600.0
MANIFEST = 300
UPDATE_RECORDS = 1000
TARGET_P99_MS = 5.0
TARGET_PER_CORE = 1000.0
TARGET_MANIFEST_S = 1.0


def log(message: str) -> None:
    stamp = time.strftime("%H:%M:%S")
    print(f"[{stamp}] {message}", file=sys.stderr, flush=True)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _now() -> datetime:
    return datetime.now(UTC)


# -- floors -------------------------------------------------------------------------------------


def calibrate(ops: int, batch: int = 32) -> dict[str, float]:
    """Seconds per operation of the RFC 9497 primitives on one core: ``hash_to_group``,
    ``blind`` (per element, batches of ``batch``: hash to group, random scalar, scalar
    multiplication), ``blind_evaluate`` (one scalar multiplication per element),
    ``finalize`` (per element, batches of ``batch``: one batch inversion, one scalar
    multiplication, SHA-512) and ``evaluate_many`` (per input, the holder's table build)."""
    from xlink.crypto import oprf9497
    from xlink.crypto.rand import system_random

    key = oprf9497.OprfKey.generate(system_random)
    rounds = max(ops // batch, 1)
    inputs = [[os.urandom(32) for _ in range(batch)] for _ in range(rounds)]
    n = rounds * batch
    out: dict[str, float] = {}
    t = time.perf_counter()
    for part in inputs:
        for data in part:
            oprf9497.hash_to_group(data)
    out["hash_to_group_s"] = (time.perf_counter() - t) / n
    t = time.perf_counter()
    blinded = [oprf9497.blind(part, system_random) for part in inputs]
    out["blind_s"] = (time.perf_counter() - t) / n
    t = time.perf_counter()
    evaluated = [key.blind_evaluate(b) for _, b in blinded]
    out["blind_evaluate_s"] = (time.perf_counter() - t) / n
    t = time.perf_counter()
    for (state, _), e in zip(blinded, evaluated, strict=True):
        oprf9497.finalize(state, e)
    out["finalize_s"] = (time.perf_counter() - t) / n
    flat = [data for part in inputs for data in part]
    t = time.perf_counter()
    for start in range(0, len(flat), 4096):
        key.evaluate_many(flat[start : start + 4096])
    out["evaluate_many_s"] = (time.perf_counter() - t) / n
    return out


# -- the holder's list --------------------------------------------------------------------------


def with_filler(real: Any, records: int, seed: int) -> tuple[Any, dict[str, Any]]:
    """``real`` (a PreparedSide) with random filler records up to ``records`` in all; each
    filler record has the key pattern of a real record drawn at random."""
    import numpy as np

    from xlink.linkage.tokens import TOKEN_SIZE, TokenSet
    from xlink.prepare import PreparedSide

    tokens = real.tokens
    rec = np.frombuffer(tokens.record_index, dtype=np.uint32)
    key = np.frombuffer(tokens.key_index, dtype=np.uint8)
    order = np.argsort(rec, kind="stable")
    rec, key = rec[order], key[order]
    owners, starts, lengths = np.unique(rec, return_index=True, return_counts=True)
    filler = max(records - len(tokens.record_ids), 0)
    rng = np.random.default_rng(seed)
    chosen = rng.integers(0, len(owners), size=filler)
    lens = lengths[chosen]
    total = int(lens.sum())
    out_starts = np.cumsum(lens) - lens
    pos = np.arange(total) - np.repeat(out_starts, lens) + np.repeat(starts[chosen], lens)
    key_col = key[pos]
    first = len(tokens.record_ids)
    rec_col = np.repeat(np.arange(first, first + filler, dtype=np.uint32), lens)
    values = rng.bytes(TOKEN_SIZE * total)
    record_index = array("I", tokens.record_index)
    record_index.frombytes(rec_col.astype(np.uint32).tobytes())
    key_index = array("B", tokens.key_index)
    key_index.frombytes(key_col.astype(np.uint8).tobytes())
    combined = TokenSet(
        key_names=tokens.key_names,
        record_ids=tokens.record_ids + tuple(f"FILL-{i:08d}" for i in range(filler)),
        values=tokens.values + values,
        record_index=record_index,
        key_index=key_index,
    )
    distinct_real = len({tokens.value(i) for i in range(len(tokens))})
    info = {
        "real_records": len(tokens.record_ids),
        "real_tokens": len(tokens),
        "real_distinct_tokens": distinct_real,
        "filler_records": filler,
        "filler_tokens": total,
        # random 32-byte values: distinct among themselves and from the real ones
        "distinct_tokens": distinct_real + total,
        "patterns": len(owners),
    }
    return PreparedSide(loads=real.loads, schema=real.schema, tokens=combined), info


def updated(side: Any, count: int, seed: int) -> tuple[Any, int]:
    """``side`` without its last ``count`` (filler) records and with ``count`` new random
    ones of the same key patterns as those removed."""
    import numpy as np

    from xlink.linkage.tokens import TOKEN_SIZE, TokenSet
    from xlink.prepare import PreparedSide

    tokens = side.tokens
    n_rec = len(tokens.record_ids)
    rec = np.frombuffer(tokens.record_index, dtype=np.uint32)
    cut = int(np.searchsorted(rec, n_rec - count, side="left"))  # filler is in record order
    key_tail = np.frombuffer(tokens.key_index, dtype=np.uint8)[cut:]
    rec_tail = rec[cut:]
    rng = np.random.default_rng(seed + 1)
    record_index = array("I", tokens.record_index[:cut])
    record_index.frombytes(rec_tail.astype(np.uint32).tobytes())  # same indexes, new ids
    key_index = array("B", tokens.key_index)
    new = TokenSet(
        key_names=tokens.key_names,
        record_ids=tokens.record_ids[: n_rec - count]
        + tuple(f"FILLNEW-{i:08d}" for i in range(count)),
        values=tokens.values[: TOKEN_SIZE * cut] + rng.bytes(TOKEN_SIZE * len(key_tail)),
        record_index=record_index,
        key_index=key_index,
    )
    return PreparedSide(loads=side.loads, schema=side.schema, tokens=new), len(key_tail)


# -- the holder process -------------------------------------------------------------------------


def set_size_for(records: int) -> int:
    """The MOU's ``max_set_size`` for a holder of ``records``: its table (about 20 entries a
    record) within the four entries per element an asker accepts (xlink-query-v1 §5.4), a
    power of two, at least the sample's."""
    return max(1 << 16, 1 << (8 * records - 1).bit_length())


def holder_main(pipe: Any, ceremony: Any, workdir: str, records: int, seed: int) -> None:
    """The holder: prepare its list, build the query service, serve queries over pinned
    mutual TLS; answer the parent's commands (``cpu``, ``update``, ``stop``) on ``pipe``."""
    from xlink.agency import QueryService
    from xlink.crypto.rand import system_random
    from xlink.query.table import HolderTable

    figures: dict[str, Any] = {}
    timings: dict[str, float] = {}
    build, save = HolderTable.build.__func__, HolderTable.save  # type: ignore[attr-defined]

    def timed_build(cls: Any, *a: Any, **kw: Any) -> Any:
        t = time.perf_counter()
        try:
            return build(cls, *a, **kw)
        finally:
            timings["table_build_s"] = timings.get("table_build_s", 0.0) + (time.perf_counter() - t)

    def timed_save(self: Any, *a: Any, **kw: Any) -> None:
        t = time.perf_counter()
        try:
            save(self, *a, **kw)
        finally:
            timings["save_s"] = time.perf_counter() - t

    HolderTable.build = classmethod(timed_build)  # type: ignore[method-assign,assignment]
    HolderTable.save = timed_save  # type: ignore[method-assign]

    marks: dict[str, float] = {}

    def progress(phase: str, done: int, total: int | None) -> None:
        if phase != "building the query table" or not total:
            return
        now = time.perf_counter()
        marks.setdefault("first", now)
        marks["last"] = now
        step = max(total // 10, 1)
        if done // step != marks.get("step", -1) or done == total:
            marks["step"] = done // step
            log(f"holder: OPRF {done:,}/{total:,}")

    agency = ceremony.open_agency(CA, workdir, passphrase=PASSPHRASE, clock=_now, rng=system_random)
    with agency:
        real = agency.prepare([DATA / name for name in HOLDER_FILES])
        side, info = with_filler(real, records, seed)
        figures.update(info)
        figures["records"] = len(side.tokens.record_ids)
        figures["tokens"] = len(side.tokens)
        log(
            f"holder: {figures['records']:,} records ({info['real_records']} real), "
            f"{figures['tokens']:,} tokens; building the table on "
            f"{os.cpu_count()} threads"
        )
        figures["rss_before_build_mb"] = round(peak_rss_mb(), 1)
        cpu0, t0 = time.process_time(), time.perf_counter()
        service = QueryService(agency, side, progress=progress)
        figures["build_s"] = round(time.perf_counter() - t0, 3)
        figures["build_cpu_s"] = round(time.process_time() - cpu0, 3)
        figures["build_cores_used"] = round(figures["build_cpu_s"] / figures["build_s"], 2)
        figures["build_table_s"] = round(timings.get("table_build_s", 0.0), 3)
        figures["build_oprf_s"] = round(marks.get("last", 0.0) - marks.get("first", 0.0), 3)
        figures["build_save_s"] = round(timings.get("save_s", 0.0), 3)
        figures["rss_after_build_mb"] = round(peak_rss_mb(), 1)
        figures["entries"] = service.table.entries
        figures["workers"] = service.table.workers
        figures["label_size"] = service.table.label_size
        log(
            f"holder: built in {figures['build_s']} s, {figures['entries']:,} entries, "
            f"peak RSS {figures['rss_after_build_mb']} MB"
        )
        asyncio.run(_serve(agency, service, side, pipe, figures, timings, seed))


async def _serve(
    agency: Any,
    service: Any,
    side: Any,
    pipe: Any,
    figures: dict[str, Any],
    timings: dict[str, float],
    seed: int,
) -> None:

    loop = asyncio.get_running_loop()

    def on_listening(port: int) -> None:
        pipe.send({"port": port, **figures})

    def do_update() -> dict[str, Any]:
        new_side, new_tokens = updated(side, min(UPDATE_RECORDS, figures["filler_records"]), seed)
        t = time.perf_counter()
        stats = service.update(new_side)
        wall = time.perf_counter() - t
        return {
            "records_removed": stats.removed,
            "records_added": stats.added,
            "tokens_added": new_tokens,
            "evaluations": stats.evaluations,
            "table_update_s": round(stats.seconds, 3),
            "save_s": round(timings.get("save_s", 0.0), 3),
            "wall_s": round(wall, 3),
            "entries": stats.entries,
            "version": stats.version,
            "rss_after_update_mb": round(peak_rss_mb(), 1),
        }

    def on_command() -> None:
        try:
            msg = pipe.recv()
        except EOFError:
            task.cancel()
            return
        if msg == "cpu":
            pipe.send({"cpu_s": time.process_time()})
        elif msg == "update":
            log("holder: updating (1,000 records out, 1,000 in)")
            pipe.send(do_update())
        elif msg == "stop":
            task.cancel()

    loop.add_reader(pipe.fileno(), on_command)
    task = asyncio.ensure_future(
        agency.serve_queries(
            service, "127.0.0.1", 0, idle_timeout=IDLE_TIMEOUT, on_listening=on_listening
        )
    )
    with contextlib.suppress(asyncio.CancelledError):
        await task
    loop.remove_reader(pipe.fileno())


# -- the asker ----------------------------------------------------------------------------------


class CountingConnection:
    """A connection that counts the bytes of the frames it carries (payload + header)."""

    def __init__(self, inner: Any) -> None:
        from xlink.protocol.framing import FRAME_HEADER_SIZE

        self._inner = inner
        self._header = FRAME_HEADER_SIZE
        self.sent = 0
        self.received = 0
        self.frames_sent = 0
        self.frames_received = 0

    async def send(self, message: bytes) -> None:
        self.sent += len(message) + self._header
        self.frames_sent += 1
        await self._inner.send(message)

    async def receive(self) -> bytes | None:
        message: bytes | None = await self._inner.receive()
        if message is not None:
            self.received += len(message) + self._header
            self.frames_received += 1
        return message

    async def close(self, timeout: float | None = None) -> None:
        await self._inner.close(timeout)


def single_travellers(side: Any) -> list[Any]:
    """One PreparedSide per record of ``side`` (its tokens only), in record order."""
    from xlink.linkage.tokens import TOKEN_SIZE, TokenSet
    from xlink.prepare import PreparedSide

    tokens = side.tokens
    by_record: dict[int, list[int]] = {}
    for i, r in enumerate(tokens.record_index):
        by_record.setdefault(r, []).append(i)
    out = []
    for r, rid in enumerate(tokens.record_ids):
        idx = by_record.get(r, [])
        if not idx:
            continue
        sub = TokenSet(
            key_names=tokens.key_names,
            record_ids=(rid,),
            values=b"".join(tokens.values[TOKEN_SIZE * i : TOKEN_SIZE * (i + 1)] for i in idx),
            record_index=array("I", [0] * len(idx)),
            key_index=array("B", (tokens.key_index[i] for i in idx)),
        )
        out.append(PreparedSide(loads=side.loads, schema=side.schema, tokens=sub))
    return out


def manifest_of(side: Any, singles: list[Any], start: int, count: int) -> Any:
    """One PreparedSide of ``count`` travellers from ``singles`` (cycled from ``start``)."""
    from xlink.linkage.tokens import TokenSet
    from xlink.prepare import PreparedSide

    chosen = [singles[(start + i) % len(singles)] for i in range(count)]
    record_index = array("I")
    key_index = array("B")
    for r, one in enumerate(chosen):
        record_index.extend([r] * len(one.tokens))
        key_index.extend(one.tokens.key_index)
    tokens = TokenSet(
        key_names=side.tokens.key_names,
        record_ids=tuple(one.tokens.record_ids[0] for one in chosen),
        values=b"".join(one.tokens.values for one in chosen),
        record_index=record_index,
        key_index=key_index,
    )
    return PreparedSide(loads=side.loads, schema=side.schema, tokens=tokens)


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by the nearest-rank method."""
    ordered = sorted(values)
    rank = max(math.ceil(q * len(ordered)), 1)
    return ordered[rank - 1]


def ask_holder(pipe: Any, message: str, timeout: float = 3600.0) -> Any:
    """Send ``message`` to the holder and wait for its answer (None after ``timeout``).
    Raises ``SystemExit`` if the holder process has ended."""
    pipe.send(message)
    deadline = time.monotonic() + timeout
    while not pipe.poll(min(5.0, max(deadline - time.monotonic(), 0.0))):
        if time.monotonic() >= deadline:
            return None
        if not _HOLDER or not _HOLDER[0].is_alive():
            raise SystemExit(f"the holder ended while asked {message!r}")
    return pipe.recv()


_HOLDER: list[Any] = []
"""The holder process, once started."""


async def asker_phases(
    agency: Any, port: int, pipe: Any, singles: list[Any], side: Any, args: argparse.Namespace
) -> dict[str, Any]:
    from xlink.agency import QueryClient
    from xlink.transport.connect import connect

    tls = agency.tls_options()
    out: dict[str, Any] = {}

    # 1. the session: table sync
    log("asker: connecting, syncing the table")
    t = time.perf_counter()
    conn = CountingConnection(await connect("127.0.0.1", port, **tls, timeout=60.0))
    connected = time.perf_counter()
    client = QueryClient(agency, conn, idle_timeout=IDLE_TIMEOUT)
    await client.open()
    opened = time.perf_counter()
    probes = [os.urandom(64) for _ in range(100)]
    t_probe = time.perf_counter()
    for output in probes:
        client.table.lookup_many([output])
    lookup_miss = (time.perf_counter() - t_probe) / len(probes)
    out["sync"] = {
        "connect_s": round(connected - t, 4),
        "open_s": round(opened - connected, 3),
        "entries_fetched": client.fetched,
        "entry_size": 8 + client.table.label_size,
        "bytes_entries": client.fetched * (8 + client.table.label_size),
        "bytes_received": conn.received,
        "bytes_sent": conn.sent,
        "lookup_miss_us": round(lookup_miss * 1e6, 1),
    }
    log(
        f"asker: table synced in {out['sync']['open_s']} s, {client.fetched:,} entries, "
        f"{conn.received:,} bytes"
    )

    # 2. per traveller, one ask each
    k = args.travellers
    log(f"asker: {k} single-traveller asks")
    lat: list[float] = []
    evaluate_ms: list[float] = []
    decide_ms: list[float] = []
    tokens_per: list[int] = []
    bytes_per: list[tuple[int, int, bool]] = []
    matched = received = 0
    lat_matched: list[float] = []
    lat_unmatched: list[float] = []
    cpu0 = ask_holder(pipe, "cpu")["cpu_s"]
    own0 = time.process_time()
    phase0 = time.perf_counter()
    split: dict[bool, list[float]] = {True: [], False: []}
    for i in range(k):
        one = singles[i % len(singles)]
        s0, r0 = conn.sent, conn.received
        if args.split_holder_cpu:
            c0 = ask_holder(pipe, "cpu")["cpu_s"]
        t = time.perf_counter()
        outcome = await client.ask(one)
        dt = time.perf_counter() - t
        if args.split_holder_cpu:
            split[outcome.matched > 0].append(ask_holder(pipe, "cpu")["cpu_s"] - c0)
        lat.append(dt)
        evaluate_ms.append(outcome.phases["evaluate"] * 1e3)
        decide_ms.append(outcome.phases["decide_and_release"] * 1e3)
        tokens_per.append(len(one.tokens))
        hit = outcome.matched > 0
        matched += outcome.matched
        received += outcome.received
        (lat_matched if hit else lat_unmatched).append(dt)
        bytes_per.append((conn.sent - s0, conn.received - r0, hit))
    phase_s = time.perf_counter() - phase0
    own_cpu = time.process_time() - own0
    cpu1 = ask_holder(pipe, "cpu")["cpu_s"]
    out["per_traveller"] = {
        "travellers": k,
        "tokens_mean": round(statistics.mean(tokens_per), 2),
        "p50_ms": round(pct(lat, 0.5) * 1e3, 3),
        "p99_ms": round(pct(lat, 0.99) * 1e3, 3),
        "max_ms": round(max(lat) * 1e3, 3),
        "mean_ms": round(statistics.mean(lat) * 1e3, 3),
        "first_ms": round(lat[0] * 1e3, 3),
        "evaluate_phase_p50_ms": round(pct(evaluate_ms, 0.5), 3),
        "decide_and_release_phase_p50_ms": round(pct(decide_ms, 0.5), 3),
        "matched_travellers": len(lat_matched),
        "releases_received": received,
        "matched_p50_ms": round(pct(lat_matched, 0.5) * 1e3, 3) if lat_matched else None,
        "matched_max_ms": round(max(lat_matched) * 1e3, 3) if lat_matched else None,
        "unmatched_p50_ms": round(pct(lat_unmatched, 0.5) * 1e3, 3) if lat_unmatched else None,
        "unmatched_p99_ms": round(pct(lat_unmatched, 0.99) * 1e3, 3) if lat_unmatched else None,
        "phase_s": round(phase_s, 3),
        "asker_cpu_s": round(own_cpu, 3),
    }
    out["holder_cpu"] = {"cpu_s": round(cpu1 - cpu0, 4), "travellers": k}
    if args.split_holder_cpu:
        out["holder_cpu"]["split"] = {
            f"{name}_{stat}_ms": round(fn(values) * 1e3, 4) if values else None
            for name, values in (("matched", split[True]), ("unmatched", split[False]))
            for stat, fn in (("p50", statistics.median), ("mean", statistics.mean))
        }
    sent_u = [s for s, _, h in bytes_per if not h]
    recv_u = [r for _, r, h in bytes_per if not h]
    sent_m = [s for s, _, h in bytes_per if h]
    recv_m = [r for _, r, h in bytes_per if h]
    out["bytes_per_query"] = {
        "unmatched_sent_p50": int(statistics.median(sent_u)) if sent_u else None,
        "unmatched_received_p50": int(statistics.median(recv_u)) if recv_u else None,
        "matched_sent_p50": int(statistics.median(sent_m)) if sent_m else None,
        "matched_received_p50": int(statistics.median(recv_m)) if recv_m else None,
        "mean_sent": round(statistics.mean(s for s, _, _ in bytes_per), 1),
        "mean_received": round(statistics.mean(r for _, r, _ in bytes_per), 1),
        "elements_each_way_mean": round(statistics.mean(tokens_per), 2),
        "element_bytes_each_way_mean": round(32 * statistics.mean(tokens_per), 1),
    }
    log(
        f"asker: p50 {out['per_traveller']['p50_ms']} ms, p99 {out['per_traveller']['p99_ms']} "
        f"ms, max {out['per_traveller']['max_ms']} ms; holder CPU {cpu1 - cpu0:.3f} s"
    )

    # 3. the manifest
    log(f"asker: manifest of {MANIFEST}")
    manifest = manifest_of(side, singles, k, MANIFEST)
    cpu0 = ask_holder(pipe, "cpu")["cpu_s"]
    s0, r0 = conn.sent, conn.received
    t = time.perf_counter()
    outcome = await client.ask(manifest)
    manifest_s = time.perf_counter() - t
    cpu1 = ask_holder(pipe, "cpu")["cpu_s"]
    out["manifest"] = {
        "travellers": MANIFEST,
        "tokens": len(manifest.tokens),
        "wall_s": round(manifest_s, 4),
        "phases": outcome.phases,
        "matched": outcome.matched,
        "releases_received": outcome.received,
        "holder_cpu_s": round(cpu1 - cpu0, 4),
        "bytes_sent": conn.sent - s0,
        "bytes_received": conn.received - r0,
    }
    log(f"asker: manifest in {manifest_s:.3f} s ({outcome.matched} matched)")
    await client.close()

    # 4. fresh connections
    log(f"asker: {args.fresh} fresh-connection asks")
    parts: dict[str, list[float]] = {"connect": [], "open": [], "ask": [], "close": [], "total": []}
    for i in range(args.fresh):
        one = singles[(k + MANIFEST + i) % len(singles)]
        t0 = time.perf_counter()
        fresh = await connect("127.0.0.1", port, **tls, timeout=60.0)
        t1 = time.perf_counter()
        fc = QueryClient(agency, fresh, idle_timeout=IDLE_TIMEOUT)
        await fc.open()
        t2 = time.perf_counter()
        await fc.ask(one)
        t3 = time.perf_counter()
        await fc.close()
        t4 = time.perf_counter()
        for name, v in (
            ("connect", t1 - t0),
            ("open", t2 - t1),
            ("ask", t3 - t2),
            ("close", t4 - t3),
            ("total", t4 - t0),
        ):
            parts[name].append(v)
    out["fresh_connection"] = {
        "runs": args.fresh,
        **{f"{name}_p50_ms": round(pct(v, 0.5) * 1e3, 3) for name, v in parts.items()},
        "total_max_ms": round(max(parts["total"]) * 1e3, 3),
    }
    log(
        f"asker: fresh connection p50 {out['fresh_connection']['total_p50_ms']} ms "
        f"(connect+TLS {out['fresh_connection']['connect_p50_ms']} ms, HELLO + table copy "
        f"{out['fresh_connection']['open_p50_ms']} ms)"
    )

    # 5. the update, then the delta sync
    if args.update:
        upd = ask_holder(pipe, "update", timeout=args.update_timeout)
        if upd is None:
            out["update"] = {"finished": False, "waited_s": args.update_timeout}
            log(f"asker: the update did not finish in {args.update_timeout} s")
            return out
        out["update"] = {"finished": True, **upd}
        upd = out["update"]
        log(f"asker: holder updated in {upd['wall_s']} s, {upd['evaluations']:,} evaluations")
        t0 = time.perf_counter()
        delta = CountingConnection(await connect("127.0.0.1", port, **tls, timeout=60.0))
        dc = QueryClient(agency, delta, idle_timeout=IDLE_TIMEOUT)
        await dc.open()
        t1 = time.perf_counter()
        await dc.close()
        out["update"]["delta_sync"] = {
            "open_s": round(t1 - t0, 3),
            "entries_fetched": dc.fetched,
            "bytes_received": delta.received,
        }
        log(f"asker: delta sync {dc.fetched:,} entries in {t1 - t0:.3f} s")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=1_000_000, help="holder records in all")
    parser.add_argument("--travellers", type=int, default=300, help="single-traveller asks")
    parser.add_argument("--fresh", type=int, default=20, help="fresh-connection asks")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--calibration-ops", type=int, default=4096)
    parser.add_argument("--no-update", dest="update", action="store_false")
    parser.add_argument(
        "--split-holder-cpu",
        action="store_true",
        help="also read the holder's CPU around every single ask (matched vs unmatched)",
    )
    parser.add_argument(
        "--update-timeout", type=float, default=900.0, help="seconds to wait for the update"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    from xlink.ceremony import demo_ceremony
    from xlink.crypto.rand import system_random

    result: dict[str, Any] = {"load_avg_start": loadavg(), "started": _now().isoformat()}
    log(f"calibrating the primitives (load {result['load_avg_start']})")
    before = calibrate(args.calibration_ops)
    with tempfile.TemporaryDirectory(prefix="xlink-query-bench-") as tmp:
        base = Path(tmp)
        ceremony = demo_ceremony(
            base / "ceremony",
            passphrase=PASSPHRASE,
            now=_now(),
            rng=system_random,
            approval_required=False,
            query_quota_per_day=QUOTA,
            max_set_size=set_size_for(args.records),
        )
        ctx = mp.get_context("spawn")
        parent_end, child_end = ctx.Pipe()
        holder = ctx.Process(
            target=holder_main,
            args=(child_end, ceremony, str(base / CA), args.records, args.seed),
            name="xlink-query-holder",
        )
        started = time.perf_counter()
        holder.start()
        _HOLDER.append(holder)
        child_end.close()
        log(f"holder started (pid {holder.pid}); preparing the asker")
        try:
            with ceremony.open_agency(
                US, base / US, passphrase=PASSPHRASE, clock=_now, rng=system_random
            ) as agency:
                side = agency.prepare([DATA / TRAVELLERS_FILE])
                singles = single_travellers(side)
                while not parent_end.poll(5.0):
                    if not holder.is_alive():
                        raise SystemExit(
                            f"the holder died before serving (exit code {holder.exitcode})"
                        )
                ready = parent_end.recv()
                result["holder_ready_s"] = round(time.perf_counter() - started, 1)
                port = ready.pop("port")
                result["holder"] = ready
                phases = asyncio.run(asker_phases(agency, port, parent_end, singles, side, args))
                result.update(phases)
                parent_end.send("stop")
        finally:
            holder.join(5 if result.get("update", {}).get("finished") is False else 60)
            if holder.is_alive():
                holder.terminate()
                holder.join()
    after = calibrate(args.calibration_ops)
    result["load_avg_end"] = loadavg()
    result["asker_peak_rss_mb"] = round(peak_rss_mb(), 1)
    figures(result, before, after)
    log(f"done (load {result['load_avg_end']})")
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        summary(result)


def summary(result: dict[str, Any]) -> None:
    """Readable lines of the main figures."""
    h, pt, hc, m = (result[k] for k in ("holder", "per_traveller", "holder_cpu", "manifest"))
    fc, sync = result["fresh_connection"], result["sync"]
    lines = [
        f"records {result['records']:,}, tokens {result['tokens']:,}, entries "
        f"{result['entries']:,}",
        f"build {h['build_s']} s (floor {h['build_floor_s']} s on one core, ratio "
        f"{h['build_ratio']}), peak RSS {h['rss_after_build_mb']} MB",
        f"sync {sync['open_s']} s, {sync['bytes_received']:,} bytes",
        f"per traveller p50 {pt['p50_ms']} ms, p99 {pt['p99_ms']} ms, max {pt['max_ms']} ms "
        f"(floor {pt['floor_ms']} ms, p50 ratio {pt['p50_ratio']})",
        f"holder CPU {hc['cpu_ms_per_traveller']} ms per traveller: "
        f"{hc['travellers_per_s_per_core']} travellers/s per core (ratio {hc['ratio']})",
        f"manifest of {m['travellers']}: {m['wall_s']} s (floor {m['floor_s']} s, "
        f"overlapped {m['floor_overlapped_s']} s)",
        f"fresh connection p50 {fc['total_p50_ms']} ms",
    ]
    if result.get("update", {}).get("finished"):
        u = result["update"]
        lines.append(
            f"update {u['wall_s']} s, {u['evaluations']:,} evaluations; delta sync "
            f"{u['delta_sync']['entries_fetched']:,} entries in {u['delta_sync']['open_s']} s"
        )
    for name, t in result["targets"].items():
        verdict = "met" if t["pass"] else "MISSED"
        lines.append(f"target {name}: {t['measured']} vs {t['target']}: {verdict}")
    print("\n".join(lines))


def figures(result: dict[str, Any], before: dict[str, float], after: dict[str, float]) -> None:
    """Floors, ratios and targets from the measurements in ``result``."""
    f = {k: (before[k] + after[k]) / 2 for k in before}
    result["floors_us"] = {
        k.removesuffix("_s") + "_us": round(v * 1e6, 2) for k, v in f.items()
    } | {
        "before": {k.removesuffix("_s") + "_us": round(v * 1e6, 2) for k, v in before.items()},
        "after": {k.removesuffix("_s") + "_us": round(v * 1e6, 2) for k, v in after.items()},
    }
    per_token = f["blind_s"] + f["blind_evaluate_s"] + f["finalize_s"]
    h = result["holder"]
    result["records"] = h["records"]
    result["tokens"] = h["tokens"]
    result["entries"] = h["entries"]

    build_floor = h["distinct_tokens"] * f["evaluate_many_s"]
    h["build_floor_s"] = round(build_floor, 3)
    h["build_floor_per_worker_s"] = round(build_floor / h["workers"], 3)
    h["build_ratio"] = round(h["build_s"] / build_floor, 3)
    h["build_ratio_per_worker"] = round(h["build_s"] / (build_floor / h["workers"]), 3)

    pt = result["per_traveller"]
    floor_ms = pt["tokens_mean"] * per_token * 1e3
    pt["floor_ms"] = round(floor_ms, 3)
    pt["p50_ratio"] = round(pt["p50_ms"] / floor_ms, 3)
    pt["p99_ratio"] = round(pt["p99_ms"] / floor_ms, 3)

    hc = result["holder_cpu"]
    per = hc["cpu_s"] / hc["travellers"]
    hc["cpu_ms_per_traveller"] = round(per * 1e3, 4)
    hc["travellers_per_s_per_core"] = round(1 / per, 1) if per > 0 else None
    hc_floor = pt["tokens_mean"] * f["blind_evaluate_s"]
    hc["floor_ms_per_traveller"] = round(hc_floor * 1e3, 4)
    hc["floor_travellers_per_s_per_core"] = round(1 / hc_floor, 1)
    hc["ratio"] = round(per / hc_floor, 3)

    m = result["manifest"]
    m_floor = m["tokens"] * per_token
    m["floor_s"] = round(m_floor, 4)
    m["floor_overlapped_s"] = round(m_floor / 2, 4)
    m["ratio"] = round(m["wall_s"] / m_floor, 3)
    m["ratio_overlapped"] = round(m["wall_s"] / (m_floor / 2), 3)

    per_cpu = hc["travellers_per_s_per_core"] or 0.0
    result["targets"] = {
        "p99_per_traveller_ms": {
            "target": TARGET_P99_MS,
            "measured": pt["p99_ms"],
            "pass": pt["p99_ms"] <= TARGET_P99_MS,
        },
        "travellers_per_s_per_holder_core": {
            "target": TARGET_PER_CORE,
            "measured": per_cpu,
            "pass": per_cpu >= TARGET_PER_CORE,
        },
        "manifest_300_s": {
            "target": TARGET_MANIFEST_S,
            "measured": m["wall_s"],
            "pass": m["wall_s"] <= TARGET_MANIFEST_S,
        },
    }


if __name__ == "__main__":
    main()
