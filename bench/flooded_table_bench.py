"""Benchmark: a query asker against a holder's table that lists one token many times.

Prints JSON figures. The table is built as a dishonest holder would (xlink-query-v1 §5.1
entries): one record agreeing with the traveller on every key of the bundled schema, and
``--entries`` more records listed under the traveller's ``names`` token alone. ``--travellers``
travellers all hold the same tokens (the flood is shared by all of them). The asker's lookup
and decision (``_decide`` of :mod:`xlink.agency._query_answers`, what ``client.ask`` runs on
its outputs) are measured in this process:

- ``decide_s``: wall time of the lookup and the decision (``run_cpu_s``: this run's CPU time,
  the table's making included);
- ``peak_mib``: the peak of Python allocations during it (``tracemalloc``), and
  ``bytes_per_pair`` that over the candidate pairs;
- ``floor_s``: the SHA-512 hashes the lookup cannot avoid (one entry pad per entry probed,
  ``entries + 2`` per distinct output), measured in the same run; ``ratio = decide_s /
  floor_s``.

Usage::

    python bench/flooded_table_bench.py --entries 60000 --travellers 1 --json
    python bench/flooded_table_bench.py --entries 60000 --travellers 10 --json
    python bench/flooded_table_bench.py --entries 60000 --travellers 20 --key family_postcode \
        --alone --json
"""

from __future__ import annotations

import argparse
import json
import os
import time
import tracemalloc
from types import SimpleNamespace
from typing import Any, cast

import numpy as np

from xlink.agency._query_answers import _decide
from xlink.linkage.schema import load_default_schema
from xlink.linkage.tokens import TokenSetBuilder
from xlink.query.asker_table import AskerTable
from xlink.query.entries import RECORD_SIZE, entries_of, entry_pad, label_size_for


def _table(
    outputs: list[bytes], keys: int, flooded: int, entries: int, *, alone: bool
) -> AskerTable:
    """Record 5 agrees on every key; records 100.. on key ``flooded`` alone, ``entries`` of
    them, each declaring every key present (so each disagrees on the others), or, ``alone``,
    that key only (so each pair may be decided on it, if the schema lets it)."""
    width = label_size_for(keys)
    occurrences = [(k, 0, 5) for k in range(keys)]
    occurrences += [(flooded, 1 + j, 100 + j) for j in range(entries)]
    inverse = np.array([o for o, _, _ in occurrences], dtype=np.intp)
    js = np.array([j for _, j, _ in occurrences], dtype=np.uint32)
    plain = np.full((len(occurrences), width), 0xFF, dtype=np.uint8)
    if alone:
        plain[keys:, RECORD_SIZE:] = 0
        plain[keys:, RECORD_SIZE + flooded // 8] = 1 << (flooded % 8)
    plain[:, :RECORD_SIZE] = (
        np.array([r for _, _, r in occurrences], dtype=">u4").view(np.uint8).reshape(-1, 4)
    )
    tags, labels = entries_of(outputs, inverse, js, plain)
    order = np.argsort(tags, kind="stable")
    return AskerTable(keys, tags=tags[order], labels=labels[order])


def flood(
    entries: int, travellers: int, key: str = "names", *, alone: bool = False
) -> tuple[Any, int, int, float]:
    """The asker's decision on the table flooding ``key`` (see :func:`_table`), its candidate
    pairs, its peak of Python allocations in bytes, and its wall time
    (``tests/adversarial/test_flooded_table.py`` checks the decision and the peak)."""
    schema = load_default_schema()
    keys = schema.key_names
    builder = TokenSetBuilder(keys)
    for t in range(travellers):
        builder.add_record(f"T{t}", [(k, bytes([i]) * 32) for i, k in enumerate(keys)])
    tokens = builder.build()
    distinct = [os.urandom(64) for _ in keys]  # the travellers' OPRF outputs, one per key
    table = _table(distinct, len(keys), keys.index(key), entries, alone=alone)
    agency = SimpleNamespace(schema=schema, mou=SimpleNamespace(match_threshold=None))
    travellers_side = SimpleNamespace(tokens=tokens)
    tracemalloc.start()
    try:
        wall = time.perf_counter()
        decision, pairs = _decide(
            cast(Any, agency), bytes(16), cast(Any, travellers_side), table, distinct * travellers
        )
        wall = time.perf_counter() - wall
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return decision, pairs, peak, wall


def run(entries: int, travellers: int, key: str, alone: bool) -> dict[str, Any]:
    hashes = entries + 2 * len(load_default_schema().key_names)
    output, size = os.urandom(64), label_size_for(len(load_default_schema().key_names))
    start = time.perf_counter()
    for j in range(hashes):
        entry_pad(output, j, size)
    floor_s = time.perf_counter() - start
    cpu = time.process_time()
    decision, pairs, peak, decide_s = flood(entries, travellers, key, alone=alone)
    decide_cpu_s = time.process_time() - cpu  # the table's making included
    return {
        "entries": entries,
        "travellers": travellers,
        "key": key,
        "alone": alone,
        "candidate_pairs": pairs,
        "matches": len(decision.matches),
        "decide_s": round(decide_s, 4),
        "run_cpu_s": round(decide_cpu_s, 4),
        "peak_mib": round(peak / 2**20, 1),
        "bytes_per_pair": round(peak / max(pairs, 1), 1),
        "floor_s": round(floor_s, 4),
        "ratio": round(decide_s / floor_s, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=60_000)
    parser.add_argument("--travellers", type=int, default=1)
    parser.add_argument("--key", default="names", help="the key whose token is flooded")
    parser.add_argument(
        "--alone",
        action="store_true",
        help="the flooded records declare that key only (a pair may be decided on it)",
    )
    parser.add_argument("--json", action="store_true", help="JSON only")
    args = parser.parse_args()
    result = run(args.entries, args.travellers, args.key, args.alone)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
