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
  ``entries + 2`` per flooded output, 2 per other), measured in the same run; ``ratio =
  decide_s / floor_s``;
- ``refused``: the abort code when the asker refused the table (one traveller decided with
  more holder records at the certain threshold than a request could name), else null.

Usage::

    python bench/flooded_table_bench.py --entries 60000 --travellers 1 --json
    python bench/flooded_table_bench.py --entries 60000 --travellers 10 --json
    python bench/flooded_table_bench.py --entries 60000 --travellers 20 --key family_postcode \
        --alone --json
    python bench/flooded_table_bench.py --entries 60000 --travellers 20 --key document \
        --key dob_postcode --alone --json
"""

from __future__ import annotations

import argparse
import json
import os
import time
import tracemalloc
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any, cast

import numpy as np

from xlink.agency._query_answers import _decide
from xlink.errors import RemoteProtocolError
from xlink.linkage.schema import load_default_schema
from xlink.linkage.tokens import TokenSetBuilder
from xlink.query.asker_table import AskerTable
from xlink.query.entries import RECORD_SIZE, entries_of, entry_pad, label_size_for


def _table(
    outputs: list[bytes], keys: int, flooded: list[int], entries: int, *, alone: bool
) -> AskerTable:
    """Record 5 agrees on every key; records 100.. on the keys ``flooded`` alone, ``entries``
    of them (each listed under every one of those keys), each declaring every key present (so
    each disagrees on the others), or, ``alone``, those keys only (so each pair may be decided
    on them, if the schema lets it)."""
    width = label_size_for(keys)
    occurrences = [(k, 0, 5) for k in range(keys)]
    for key in flooded:
        occurrences += [(key, 1 + j, 100 + j) for j in range(entries)]
    inverse = np.array([o for o, _, _ in occurrences], dtype=np.intp)
    js = np.array([j for _, j, _ in occurrences], dtype=np.uint32)
    plain = np.full((len(occurrences), width), 0xFF, dtype=np.uint8)
    if alone:
        plain[keys:, RECORD_SIZE:] = 0
        for key in flooded:
            plain[keys:, RECORD_SIZE + key // 8] |= 1 << (key % 8)
    plain[:, :RECORD_SIZE] = (
        np.array([r for _, _, r in occurrences], dtype=">u4").view(np.uint8).reshape(-1, 4)
    )
    tags, labels = entries_of(outputs, inverse, js, plain)
    order = np.argsort(tags, kind="stable")
    return AskerTable(keys, tags=tags[order], labels=labels[order])


def flood(
    entries: int, travellers: int, keys: Sequence[str] = ("names",), *, alone: bool = False
) -> tuple[Any, int, int, float]:
    """The asker's decision on the table flooding ``keys`` (see :func:`_table`), or the
    ``RemoteProtocolError`` it refused the table with; its candidate pairs (0 when refused),
    its peak of Python allocations in bytes, and its wall time
    (``tests/adversarial/test_flooded_table.py`` checks the decision and the peak)."""
    schema = load_default_schema()
    names = schema.key_names
    builder = TokenSetBuilder(names)
    for t in range(travellers):
        builder.add_record(f"T{t}", [(k, bytes([i]) * 32) for i, k in enumerate(names)])
    tokens = builder.build()
    distinct = [os.urandom(64) for _ in names]  # the travellers' OPRF outputs, one per key
    table = _table(distinct, len(names), [names.index(k) for k in keys], entries, alone=alone)
    agency = SimpleNamespace(schema=schema, mou=SimpleNamespace(match_threshold=None))
    travellers_side = SimpleNamespace(tokens=tokens)
    tracemalloc.start()
    try:
        wall = time.perf_counter()
        decision: Any
        try:
            decision, pairs = _decide(
                cast(Any, agency),
                bytes(16),
                cast(Any, travellers_side),
                table,
                distinct * travellers,
            )
        except RemoteProtocolError as exc:
            decision, pairs = exc, 0
        wall = time.perf_counter() - wall
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return decision, pairs, peak, wall


def run(entries: int, travellers: int, keys: Sequence[str], alone: bool) -> dict[str, Any]:
    hashes = entries * len(keys) + 2 * len(load_default_schema().key_names)
    output, size = os.urandom(64), label_size_for(len(load_default_schema().key_names))
    start = time.perf_counter()
    for j in range(hashes):
        entry_pad(output, j, size)
    floor_s = time.perf_counter() - start
    cpu = time.process_time()
    decision, pairs, peak, decide_s = flood(entries, travellers, keys, alone=alone)
    refused = isinstance(decision, RemoteProtocolError)
    decide_cpu_s = time.process_time() - cpu  # the table's making included
    return {
        "entries": entries,
        "travellers": travellers,
        "keys": list(keys),
        "alone": alone,
        "refused": decision.code.name if refused else None,
        "candidate_pairs": pairs,
        "matches": None if refused else len(decision.matches),
        "decide_s": round(decide_s, 4),
        "run_cpu_s": round(decide_cpu_s, 4),
        "peak_mib": round(peak / 2**20, 1),
        "bytes_per_pair": round(peak / pairs, 1) if pairs else None,
        "floor_s": round(floor_s, 4),
        "ratio": round(decide_s / floor_s, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=60_000)
    parser.add_argument("--travellers", type=int, default=1)
    parser.add_argument(
        "--key",
        action="append",
        help="a key whose token is flooded (again for several; default: names)",
    )
    parser.add_argument(
        "--alone",
        action="store_true",
        help="the flooded records declare those keys only (a pair may be decided on them)",
    )
    parser.add_argument("--json", action="store_true", help="JSON only")
    args = parser.parse_args()
    result = run(args.entries, args.travellers, args.key or ["names"], args.alone)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
