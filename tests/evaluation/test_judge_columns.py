"""The judge's columns (xlink/evaluation/pairs_file.py, fitting.py) against the per-pair code they
replaced: the same pairs file, byte for byte; the same errors, on the same line, from a bad
pairs file; the same fitted weights and thresholds from a list and from columns."""

from __future__ import annotations

import csv
import random
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xlink.decide import pattern_scorer
from xlink.errors import EvaluationError
from xlink.evaluation.datasets import Split
from xlink.evaluation.fitting import (
    LabelledPair,
    LabelledPairs,
    choose_thresholds,
    fit_logistic_weights,
    fit_weights,
)
from xlink.evaluation.pairs_file import PAIR_COLUMNS, read_pairs, write_pairs
from xlink.linkage.schema import LinkageSchema, validate_schema

KEYS = ("a", "b", "c", "d")
SCHEMA = validate_schema(
    {
        "id": "judge-cols",
        "version": 1,
        "threshold": 2.0,
        "keys": [
            {"name": "a", "version": 1, "fields": ["family"], "weight": 2.0,
             "disagreement_weight": -1.0},
            {"name": "b", "version": 1, "fields": ["given_first"], "weight": 1.5},
            {"name": "c", "version": 1, "fields": ["birth_date"], "weight": 1.0,
             "disagreement_weight": -0.5},
            {"name": "d", "version": 1, "fields": ["postcode"], "weight": 0.5},
        ],
    }
)  # fmt: skip
#: The same keys where a pair must agree on two of name, birth and address to be decided.
EVIDENCE_SCHEMA = replace(SCHEMA, min_evidence_groups=2)


def _reference_write(
    path: Path,
    pairs: list[LabelledPair],
    schema: LinkageSchema,
    threshold: float,
    decided: set[tuple[str, str]],
) -> None:
    """write_pairs as it was (with the schema's evidence rule added): sorted LabelledPairs,
    one row each."""
    scorer = pattern_scorer(schema)
    every = frozenset(schema.key_names)
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(PAIR_COLUMNS)
        for p in sorted(pairs, key=lambda p: (p.left_id, p.right_id)):
            value = scorer(p.keys, p.disagree - p.keys)
            if (p.left_id, p.right_id) in decided:
                decision = "match"
            elif value < threshold:
                decision = "below_threshold"
            elif not schema.has_evidence(p.keys):
                decision = "too_little_evidence"
            else:
                decision = "not_best"
            disagree = p.disagree - p.keys
            writer.writerow(
                (
                    p.left_id,
                    p.right_id,
                    " ".join(sorted(p.keys)),
                    " ".join(sorted(disagree)),
                    " ".join(sorted(every - p.keys - disagree)),
                    f"{value:.6g}",
                    decision,
                    int(p.true),
                    "dev" if p.dev else "heldout",
                )
            )


def _keys(rng: random.Random, at_least: int) -> frozenset[str]:
    chosen = frozenset(k for k in KEYS if rng.random() < 0.4)
    return chosen if len(chosen) >= at_least else frozenset(rng.sample(KEYS, at_least))


def _pairs(seed: int, n: int, id_pool: int) -> list[LabelledPair]:
    rng = random.Random(seed)
    ids = [f"x{i}" for i in range(id_pool)] + ["x,1", 'q"', "é", "10", "9", "a\nb", " s", ""]
    out = []
    for _ in range(n):
        keys = _keys(rng, 1)
        out.append(
            LabelledPair(
                rng.choice(ids),
                rng.choice(ids),
                keys,
                rng.random() < 0.3,
                rng.random() < 0.5,
                _keys(rng, 0) | (keys if rng.random() < 0.3 else frozenset()),
            )
        )
    return out


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(0, 300),
    st.sampled_from([3, 30, 1000]),
    st.sampled_from([SCHEMA, EVIDENCE_SCHEMA]),
)
def test_the_pairs_file_is_written_as_before(
    seed: int, n: int, id_pool: int, schema: LinkageSchema
) -> None:
    pairs = _pairs(seed, n, id_pool)
    rng = random.Random(seed + 1)
    decided = {(p.left_id, p.right_id) for p in pairs if rng.random() < 0.2}
    decided.add(("not", "a candidate"))
    threshold = rng.choice([1.0, 2.0, 2.5])
    with tempfile.TemporaryDirectory() as tmp:
        want, got = Path(tmp) / "want.csv", Path(tmp) / "got.csv"
        _reference_write(want, pairs, schema, threshold, decided)
        scorer, evidence = pattern_scorer(schema), schema.has_evidence
        write_pairs(got, pairs, schema.key_names, scorer, threshold, decided, evidence)
        assert got.read_bytes() == want.read_bytes()
        # and from columns, as the judge writes it
        columns = LabelledPairs.of(pairs)
        write_pairs(got, columns, schema.key_names, scorer, threshold, decided, evidence)
        assert got.read_bytes() == want.read_bytes()


def _reference_read_error(path: Path, schema: LinkageSchema) -> str | None:
    """read_pairs as it was, up to its first error (its message), one row at a time."""
    names = frozenset(schema.key_names)
    split: dict[str, Split] = {}
    seen: set[tuple[str, str]] = set()
    with path.open(encoding="utf-8", newline="") as handle:
        rows = csv.reader(handle)
        if tuple(next(rows, ())) != PAIR_COLUMNS:
            return f"{path.name}: not a pairs file (wrong header)"
        for line, row in enumerate(rows, start=2):
            if len(row) != len(PAIR_COLUMNS) or row[8] not in ("dev", "heldout"):
                return f"{path.name}: line {line}: malformed row"
            if not (frozenset(row[2].split()) | frozenset(row[3].split())) <= names:
                return f"{path.name}: line {line}: a key the schema does not name"
            if (row[0], row[1]) in seen:
                return f"{path.name}: line {line}: a pair listed twice"
            seen.add((row[0], row[1]))
            if split.get(row[0], Split(row[8])) is not Split(row[8]):
                return f"{path.name}: line {line}: a left record in two splits"
            split[row[0]] = Split(row[8])
    return None


_FAULTS = ("repeat", "malformed", "unknown key", "two splits", "short")


@settings(max_examples=80, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.lists(st.tuples(st.sampled_from(_FAULTS), st.integers(0, 10**6)), max_size=3),
)
def test_a_bad_pairs_file_is_refused_at_the_same_line(
    seed: int, faults: list[tuple[str, int]]
) -> None:
    _check_faults(seed, faults)


def test_a_pair_listed_twice_is_named_before_a_later_bad_row() -> None:
    for fault in _FAULTS[1:]:
        _check_faults(5, [(fault, 100), ("repeat", 10)])  # the copy lands before the bad row


def _check_faults(seed: int, faults: list[tuple[str, int]]) -> None:
    rng = random.Random(seed)
    split_of = {f"L{i}": rng.choice(["dev", "heldout"]) for i in range(40)}
    rows = []
    for left in split_of:
        for right in rng.sample(range(40), 3):
            keys = " ".join(sorted(_keys(rng, 1)))
            rows.append([left, f"R{right}", keys, "", "", "1", "match", "0", split_of[left]])
    for fault, at in faults:
        i = at % len(rows)
        if len(rows[i]) < len(PAIR_COLUMNS):
            continue  # already cut short
        if fault == "repeat":
            rows.insert(i, list(rows[(at // 7) % len(rows)]))
        elif fault == "malformed":
            rows[i] = [*rows[i][:8], "neither"]
        elif fault == "unknown key":
            rows[i] = [*rows[i][:2], "zz", *rows[i][3:]]
        elif fault == "two splits":
            other = "dev" if rows[i][8] == "heldout" else "heldout"
            rows[i] = [*rows[i][:2], "a", *rows[i][3:8], other]
        else:
            rows[i] = rows[i][:5]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pairs.csv"
        with path.open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(PAIR_COLUMNS)
            writer.writerows(rows)
        want = _reference_read_error(path, SCHEMA)
        if want is None:
            candidates, right_ids, split = read_pairs(path, SCHEMA)
            assert len(candidates) == len(rows)
            got = [(p.local_record_id, right_ids[p.peer_ref]) for p in candidates.iter_pairs()]
            assert got == [(r[0], r[1]) for r in rows]
            assert {k: v.value for k, v in split.items()} == split_of
        else:
            with pytest.raises(EvaluationError) as caught:
                read_pairs(path, SCHEMA)
            assert str(caught.value) == want


def _reference_features(pairs: list[LabelledPair]) -> np.ndarray:
    dev = [p for p in pairs if p.dev]
    features = np.zeros((len(dev), 2 * len(KEYS)))
    for i, p in enumerate(dev):
        for key in p.keys:
            features[i, KEYS.index(key)] = 1.0
        for key in p.disagree - p.keys:
            features[i, len(KEYS) + KEYS.index(key)] = 1.0
    return features


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_fitting_from_columns_is_fitting_from_a_list(seed: int) -> None:
    pairs = _pairs(seed, 400, 60)
    columns = LabelledPairs.of(pairs)
    # the logistic fit sees the same matrix, row for row
    dev = np.flatnonzero(columns.dev)
    rows = np.zeros((len(columns.patterns), 2 * len(KEYS)))
    for j, (keys, disagree) in enumerate(columns.patterns):
        for key in keys:
            rows[j, KEYS.index(key)] = 1.0
        for key in disagree - keys:
            rows[j, len(KEYS) + KEYS.index(key)] = 1.0
    assert np.array_equal(rows[columns.pattern[dev]], _reference_features(pairs))
    assert fit_logistic_weights(SCHEMA, columns) == fit_logistic_weights(SCHEMA, pairs)
    counts = {"dev_true_links": 50, "dev_left_records": 60, "right_records": 60}
    fitted = fit_weights(SCHEMA, pairs, **counts)
    assert fit_weights(SCHEMA, columns, **counts) == fitted
    for key in fitted.keys:  # m from the development true pairs that agreed on the key
        agreed = sum(1 for p in pairs if p.dev and p.true and key.name in p.keys)
        assert key.m == float(f"{(agreed + 0.5) / 51:.4g}")
    true_dev = sum(1 for p in pairs if p.dev and p.true)
    assert choose_thresholds(columns, SCHEMA, true_dev) == choose_thresholds(
        pairs, SCHEMA, true_dev
    )


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_thresholds_are_chosen_on_the_pairs_with_the_schemas_evidence(seed: int) -> None:
    """A pair that can never be decided (too little evidence) neither counts towards a
    threshold's precision nor competes in its link rule: thresholds are those chosen on the
    other pairs alone."""
    pairs = _pairs(seed, 400, 60)
    kept = [p for p in pairs if EVIDENCE_SCHEMA.has_evidence(p.keys)]
    true_dev = sum(1 for p in pairs if p.dev and p.true)
    if not any(p.dev and p.true for p in kept):
        with pytest.raises(EvaluationError):
            choose_thresholds(pairs, EVIDENCE_SCHEMA, true_dev)
        return
    chosen = choose_thresholds(pairs, EVIDENCE_SCHEMA, true_dev)
    alone = choose_thresholds(kept, SCHEMA, true_dev)
    assert (chosen.threshold, chosen.certain_threshold) == (
        alone.threshold,
        alone.certain_threshold,
    )
