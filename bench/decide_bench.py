"""Benchmark: the decision step (:func:`xlink.decide.decide`) on millions of candidate pairs.

Prints JSON figures. The input is a synthetic :class:`~xlink.protocol.events.PsiResult` shaped
as a session's (a :class:`~xlink.protocol.events.PairTable` sorted by local record then peer
reference, per-record key presence, one handle per agreeing key) over the bundled schema's
keys: ``--records`` records per side, half of the left ones with a true partner, and decoys
(relatives, namesakes, neighbours: pairs that share at least one key, mostly on the family
name and the address) up to ``--pairs`` candidate pairs.
Agreement is drawn per *field* (a key agrees when all its fields do, as in
``tests/linkage/test_estimate.py``), so the patterns are as few and as correlated as a real
session's. Or ``--from-pairs PATH`` decides the pairs of an ``xlink eval --pairs`` file.

``decide`` is timed for fixed and estimated weights and both link rules. Speed is judged as a
ratio against a floor measured in the same run on the same machine, since absolute times on
shared machines drift:

- ``floor_s``: one stable ``numpy.argsort`` of the pairs' scores (ranking the pairs by score:
  work any link rule over these pairs must do at least once), best of three;
- ``decide.<weights>/<links>.s``: wall time of one ``decide`` call (best of ``--repeat``), with
  its ``matches`` and ``ratio`` = ``s / floor_s``; ``ratio`` at the top is fixed one-to-one's,
  the main path;
- ``peak_rss_mb``: this process's peak resident set, input included.

Usage::

    python bench/decide_bench.py --pairs 2600000 --json
    python bench/decide_bench.py --from-pairs /tmp/pairs.csv --json
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np

from xlink.decide import ESTIMATED, FIXED, WEIGHTS, decide
from xlink.linkage.schema import LinkageSchema, load_default_schema
from xlink.linkage.scoring import LINK_RULES
from xlink.protocol.events import PairTable, PsiResult

#: P(a field agrees | true pair). A decoy (a relative, a namesake, a neighbour) shares the
#: family name and the address often, a given name or a birth date seldom, a document never.
_MATCH_AGREE = 0.9
_DECOY_AGREE = {"family": 0.6, "given_first": 0.15, "birth_date": 0.05, "document_number": 0.0}
_DECOY_ADDRESS = 0.4  # same address: postcode, locality and street (each kept at 0.9)
_DECOY_OTHER = 0.1  # a field not named above (a coarser date still follows the date)
#: P(a record has a document number), P(a record has an address: postcode, locality, street).
_DOCUMENT = 0.6
_ADDRESS = 0.9
#: Fields that follow another: the birth year-month agrees when the date does (and sometimes
#: when it does not), the year when the year-month does; the full name when both names do.
_COARSER = (("birth_year_month", "birth_date"), ("birth_year", "birth_year_month"))
_ADDRESS_FIELDS = ("postcode", "locality", "street")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _key_fields(schema: LinkageSchema) -> tuple[tuple[str, ...], list[list[int]]]:
    """The fields the schema's keys are made of, and each key's fields as indexes."""
    fields = sorted({f.value for key in schema.keys for f in key.fields})
    index = {f: i for i, f in enumerate(fields)}
    return tuple(fields), [[index[f.value] for f in key.fields] for key in schema.keys]


def _key_bits(field_bits: np.ndarray, key_fields: list[list[int]]) -> np.ndarray:
    """Key masks (bit ``k`` for key ``k``) from field masks: a key holds when all its fields
    do."""
    out = np.zeros(len(field_bits), dtype=np.int64)
    for k, used in enumerate(key_fields):
        need = sum(1 << f for f in used)
        out |= ((field_bits & need) == need).astype(np.int64) << k
    return out


def synthetic_result(
    schema: LinkageSchema, pairs: int, records: int, seed: int
) -> tuple[PsiResult, int]:
    """A PsiResult of about ``pairs`` candidate pairs (module docstring); and its pattern
    count."""
    rng = np.random.default_rng(seed)
    fields, key_fields = _key_fields(schema)
    n_fields = len(fields)

    def bit(name: str) -> int:
        return 1 << fields.index(name) if name in fields else 0

    def presence(n: int) -> np.ndarray:
        """Names and dates always; a document and an address per record or not at all."""
        every = (1 << n_fields) - 1
        address = sum(bit(f) for f in _ADDRESS_FIELDS)
        out = np.full(n, every, dtype=np.int64)
        out[rng.random(n) >= _DOCUMENT] &= ~bit("document_number")
        out[rng.random(n) >= _ADDRESS] &= ~address
        return out

    def agreement(n: int, decoy: bool) -> np.ndarray:
        p = np.full(n_fields, _MATCH_AGREE)
        if decoy:
            p[:] = [_DECOY_AGREE.get(f, _DECOY_OTHER) for f in fields]
        bits = rng.random((n, n_fields)) < p
        out = (bits.astype(np.int64) << np.arange(n_fields)).sum(axis=1)
        if decoy:
            address = sum(bit(f) for f in _ADDRESS_FIELDS)
            same = rng.random(n) < _DECOY_ADDRESS
            kept = (rng.random((n, n_fields)) < _MATCH_AGREE).astype(np.int64)
            kept = (kept << np.arange(n_fields)).sum(axis=1)
            out = (out & ~address) | np.where(same, address & kept, 0)
        for coarse, fine in _COARSER:  # the coarser field holds when the finer one does
            out |= np.where(out & bit(fine), bit(coarse), 0)
        both = bit("given_first") | bit("family")
        out = np.where((out & both) == both, out | bit("full_name"), out & ~bit("full_name"))
        return out

    local_fields, peer_fields = presence(records), presence(records)
    partner = rng.permutation(records)
    true_left = np.arange(records // 2, dtype=np.int64)
    parts_left, parts_right, parts_agree = [], [], []
    total = 0
    decoy = False
    while total < pairs:
        if not decoy:
            left, right = true_left, partner[true_left]
        else:
            size = min(max(pairs - total, 1) * 3, 1 << 22)
            left = rng.integers(0, records, size)
            right = rng.integers(0, records, size)
        field_bits = agreement(len(left), decoy) & local_fields[left] & peer_fields[right]
        decoy = True
        agree = _key_bits(field_bits, key_fields)
        keep = agree > 0
        parts_left.append(left[keep])
        parts_right.append(right[keep])
        parts_agree.append(agree[keep])
        total += int(keep.sum())
    record = np.concatenate(parts_left)
    ref = np.concatenate(parts_right)
    agree = np.concatenate(parts_agree)
    # one pair per (record, ref), the first drawn (the true pair), then `pairs` of them
    _, first = np.unique(record * records + ref, return_index=True)
    keep = np.sort(first)[:pairs]
    record, ref, agree = record[keep], ref[keep], agree[keep]
    order = np.lexsort((ref, record))
    record, ref, agree = record[order], ref[order], agree[order]
    distinct, pattern = np.unique(agree, return_inverse=True)
    names = schema.key_names
    patterns = tuple(
        frozenset(names[k] for k in range(len(names)) if int(m) >> k & 1) for m in distinct
    )
    counts = np.array([bin(int(m)).count("1") for m in distinct], dtype=np.int64)[pattern]
    offsets = np.zeros(len(record) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    handles = rng.integers(0, 256, (int(offsets[-1]), 16), dtype=np.uint8)
    table = PairTable(
        record_ids=tuple(f"L{i:07d}" for i in range(records)),
        key_names=names,
        handles=handles,
        record=record.astype(np.int64),
        ref=ref.astype(np.int64),
        pattern=pattern.astype(np.int64).reshape(-1),
        patterns=patterns,
        offsets=offsets,
        handle_index=np.arange(int(offsets[-1]), dtype=np.int64),
        local_key_sets=_key_bits(local_fields, key_fields).astype(np.uint16),
        peer_key_sets=_key_bits(peer_fields, key_fields).astype(np.uint16),
    )
    return PsiResult(b"\x00" * 32, int(offsets[-1]), table), len(patterns)


def floor_s(n: int, patterns: int = 200) -> float:
    """Best of three stable ``numpy.argsort`` of ``n`` scores (``patterns`` distinct values,
    as a session's scores are one per pattern)."""
    rng = np.random.default_rng(0)
    score = rng.random(patterns)[rng.integers(0, patterns, n)]
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        np.argsort(score, kind="stable")
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--pairs", type=int, default=2_600_000, help="candidate pairs")
    ap.add_argument("--records", type=int, default=100_000, help="records per side")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--from-pairs", metavar="PATH", help="decide an `xlink eval --pairs` file")
    ap.add_argument("--weights", choices=WEIGHTS, nargs="+", default=list(WEIGHTS))
    ap.add_argument("--links", choices=LINK_RULES, nargs="+", default=list(LINK_RULES))
    ap.add_argument("--repeat", type=int, default=1, help="decide calls per setting (best)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()

    schema = load_default_schema()
    start = time.perf_counter()
    if args.from_pairs:
        from xlink.evaluation.pairs_file import read_pairs

        result: Any = read_pairs(Path(args.from_pairs), schema)[0]
        n = len(result) if hasattr(result, "__len__") else len(result.pairs)  # older xlink
        patterns = None
        source = "pairs file"
    else:
        result, patterns = synthetic_result(schema, args.pairs, args.records, args.seed)
        n = result.pair_count
        source = "synthetic"
    build_s = time.perf_counter() - start
    floor = floor_s(n)
    figures: dict[str, Any] = {}
    for weights in args.weights:
        for links in args.links:
            best = float("inf")
            decision = None
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                decision = decide(result, schema, weights=weights, links=links)
                best = min(best, time.perf_counter() - t0)
            assert decision is not None
            figures[f"{weights}/{links}"] = {
                "s": round(best, 3),
                "matches": len(decision.matches),
                "threshold": decision.threshold,
                "estimated": decision.estimate is not None,
                "ratio": round(best / floor, 1),
            }
    main_key = f"{FIXED}/{LINK_RULES[0]}"
    out = {
        "source": source,
        "pairs": n,
        "patterns": patterns,
        "keys": len(schema.key_names),
        "build_s": round(build_s, 3),
        "floor_s": round(floor, 4),
        "floor": "stable numpy.argsort of one score per pair, best of 3",
        "decide": figures,
        "ratio": figures[main_key]["ratio"] if main_key in figures else None,
        "estimated_ratio": figures.get(f"{ESTIMATED}/{LINK_RULES[0]}", {}).get("ratio"),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
