"""decide() over columns (xlink/_pair_columns.py) against the per-pair decision it replaced.

The reference below is the decision as it was written before it was vectorised: a loop over
the candidate pairs, a score per pattern, and :func:`~xlink.linkage.scoring.decide_matches`
(pure Python). On random inputs, through a :class:`~xlink.protocol.events.PairTable` and
through a plain list of pairs, with repeated record ids, pairs given twice, ties, a certain
threshold, the MOU floor under estimated weights, the schema's ``min_evidence_groups`` and
both link rules, the decisions must be
equal: the same pairs, scores, order, handles and key sets.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xlink._pair_columns import from_pairs, from_table
from xlink.decide import ESTIMATED, FIXED, DecidedMatch, Decision, decide, pattern_scorer
from xlink.errors import EstimationError
from xlink.linkage.estimate import LinkageEstimate, estimate
from xlink.linkage.schema import LinkageSchema, validate_schema
from xlink.linkage.scoring import BEST_OF_EITHER, LINK_RULES, ONE_TO_ONE, decide_matches
from xlink.linkage.scoring import CandidatePair as ScoredPair
from xlink.protocol.events import CandidatePair, PairTable, PsiResult

_FIELDS = ("given_first", "family", "birth_date", "postcode", "sex")


def _schema(
    weights: list[tuple[float, float | None]], certain: float | None, evidence: int | None = None
) -> LinkageSchema:
    keys = []
    for i, (w, d) in enumerate(weights):
        key: dict[str, object] = {
            "name": f"k{i}",
            "version": 1,
            "fields": [_FIELDS[i % 5], _FIELDS[(i + 1 + i // 5) % 5]],
            "weight": w,
        }
        if d is not None:
            key["disagreement_weight"] = d
        keys.append(key)
    doc: dict[str, object] = {"id": "cols", "version": 1, "threshold": 2.0, "keys": keys}
    if certain is not None:
        doc["certain_threshold"] = certain
    if evidence is not None:
        doc["min_evidence_groups"] = evidence
    return validate_schema(doc)


# -- the reference: decide() as it was, one pair at a time --------------------------------


def _reference_estimate(
    pairs: Iterable[CandidatePair], schema: LinkageSchema, links: str
) -> LinkageEstimate:
    if len(schema.key_names) > 62:
        raise EstimationError(f"{len(schema.key_names)} keys; at most 62 can be estimated")
    bit = {name: 1 << i for i, name in enumerate(schema.key_names)}
    local_code: dict[str, int] = {}
    left, right, agree, present = [], [], [], []
    for p in pairs:
        left.append(local_code.setdefault(p.local_record_id, len(local_code)))
        right.append(p.peer_ref)
        agree.append(sum(bit[k] for k in p.agreeing_keys))
        present.append(sum(bit[k] for k in p.local_keys & p.peer_keys))
    return estimate(schema, left, right, agree, present, links=links)


def reference_decide(
    result: PsiResult | _Source,
    schema: LinkageSchema,
    threshold: float | None = None,
    *,
    weights: str = FIXED,
    links: str = ONE_TO_ONE,
) -> Decision:
    found = note = floor = None
    if weights == ESTIMATED:
        try:
            found = _reference_estimate(result.iter_pairs(), schema, links)
        except EstimationError as exc:
            note = f"fixed weights: {exc}"
            if schema.threshold is not None:
                threshold = max(schema.threshold, -math.inf if threshold is None else threshold)
        else:
            floor, threshold = threshold, found.threshold
    if threshold is None:
        threshold = schema.threshold if schema.threshold is not None else 1.0
    score_of = pattern_scorer(schema, found)
    fixed_of = pattern_scorer(schema) if found is not None else None
    by_ref = {}
    every_key = frozenset(schema.key_names)
    scored = []
    certain = []  # per scored pair: may it be decided beside its rivals
    fixed_scores = {}
    candidates = 0
    for pair in result.iter_pairs():
        candidates += 1
        if not schema.has_evidence(pair.agreeing_keys):
            continue  # never decided, nor a rival, nor the description of a pair that is
        peer = str(pair.peer_ref)
        score = score_of(pair.agreeing_keys, pair.disagreeing_keys)
        fixed = score
        if fixed_of is not None:
            fixed = fixed_of(pair.agreeing_keys, pair.disagreeing_keys)
            if floor is not None and fixed < floor:
                continue
            fixed_scores[(pair.local_record_id, peer)] = fixed
        # the last copy that could be decided describes the pair
        by_ref[(pair.local_record_id, peer)] = (
            pair.peer_ref,
            pair.agreeing_keys,
            pair.handles,
            pair.disagreeing_keys,
        )
        scored.append((pair.local_record_id, peer, pair.agreeing_keys, score))
        # certain: the schema's certain threshold on its own weights, and the estimate's too
        certain.append(
            schema.certain_threshold is not None
            and fixed >= schema.certain_threshold
            and (found is None or score >= found.certain)
        )
    # the link rule, then every certain pair beside it (each pair as the copy it competes
    # with: its highest score, the first such)
    chosen = decide_matches(scored, threshold, None, links)
    top: dict[tuple[str, str], tuple[float, frozenset[str], bool]] = {}
    for (left, peer, keys, score), sure in zip(scored, certain, strict=True):
        old = top.get((left, peer))
        if score >= threshold and (old is None or score > old[0]):
            top[(left, peer)] = (score, keys, sure)
    linked = {(p.left_id, p.right_id) for p in chosen}
    chosen += [
        ScoredPair(left, peer, keys, score)
        for (left, peer), (score, keys, sure) in top.items()
        if sure and (left, peer) not in linked
    ]
    chosen.sort(key=lambda p: (-p.score, p.left_id, p.right_id))
    matches = []
    for kept in chosen:
        ref, keys, handles, disagreeing = by_ref[(kept.left_id, kept.right_id)]
        missing = every_key - keys - disagreeing
        fixed_score = fixed_scores.get((kept.left_id, kept.right_id))
        matches.append(
            DecidedMatch(
                kept.left_id, ref, keys, kept.score, handles, disagreeing, missing, fixed_score
            )
        )
    return Decision(
        result.session_id, threshold, candidates, tuple(matches), weights, found, note, links
    )


# -- random inputs ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    session_id: bytes
    pairs: tuple[CandidatePair, ...]

    def iter_pairs(self) -> Iterator[CandidatePair]:
        return iter(self.pairs)


def _table(
    rng: np.random.Generator,
    n_keys: int,
    *,
    pairs: int,
    records: int,
    refs: int,
    id_pool: int,
    repeats: bool,
) -> PairTable:
    """A random PairTable: record ids drawn from a pool (so ids may repeat), pairs in any
    order, (record, ref) given twice when ``repeats``, key sets of ``n_keys`` bits (a row of
    words beyond 64)."""
    names = tuple(f"k{i}" for i in range(n_keys))
    record_ids = tuple(f"r{int(v)}" for v in rng.integers(0, id_pool, records))
    record = rng.integers(0, records, pairs).astype(np.int64)
    ref = rng.integers(0, refs, pairs).astype(np.int64)
    if not repeats:
        _, first = np.unique(record * refs + ref, return_index=True)
        keep = np.sort(first)
        record, ref = record[keep], ref[keep]
    n = len(record)
    few = min(n_keys, 6)  # bits that vary, so that patterns (and ties) repeat
    agree_bits = rng.random((n, few)) < 0.4
    agree_bits[~agree_bits.any(axis=1), rng.integers(0, few)] = True
    distinct, pattern = np.unique(agree_bits, axis=0, return_inverse=True)
    patterns = tuple(frozenset(names[j] for j in np.flatnonzero(row)) for row in distinct)

    def key_sets(count: int) -> np.ndarray:
        bits = rng.random((count, n_keys)) < 0.7
        if n_keys <= 64:
            return (bits.astype(np.uint64) << np.arange(n_keys, dtype=np.uint64)).sum(
                axis=1, dtype=np.uint64
            )
        words = np.zeros((count, (n_keys + 63) // 64), dtype=np.uint64)
        for j in range(n_keys):
            words[:, j // 64] |= bits[:, j].astype(np.uint64) << np.uint64(j % 64)
        return words

    counts = rng.integers(1, 4, n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    m = max(int(offsets[-1]), 1)
    handles = rng.integers(0, 256, (m, 16)).astype(np.uint8)
    return PairTable(
        record_ids=record_ids,
        key_names=names,
        handles=handles,
        record=record,
        ref=ref,
        pattern=pattern.astype(np.int64).reshape(-1),
        patterns=patterns,
        offsets=offsets,
        handle_index=rng.integers(0, m, int(offsets[-1])).astype(np.int64),
        local_key_sets=key_sets(records),
        peer_key_sets=key_sets(refs),
    )


_WEIGHTS = st.lists(
    st.tuples(
        st.sampled_from([0.5, 1.0, 1.5, 2.0, 3.0, 4.0, -1.0]),
        st.none() | st.sampled_from([-2.0, -1.0, -0.5, 0.0]),
    ),
    min_size=6,
    max_size=6,
)


def _same(table: PairTable, schema: LinkageSchema, **kwargs: object) -> None:
    result = PsiResult(b"s" * 32, 1, table)
    plain = _Source(b"s" * 32, tuple(table))
    want = reference_decide(plain, schema, **kwargs)  # type: ignore[arg-type]
    got = decide(result, schema, **kwargs)  # type: ignore[arg-type]
    assert got == want
    assert decide(plain, schema, **kwargs) == want  # type: ignore[arg-type]
    # a decided match is described by a copy that could be decided
    assert all(schema.has_evidence(m.agreeing_keys) for m in got.matches)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    weights=_WEIGHTS,
    certain=st.none() | st.sampled_from([4.0, 6.0]),
    threshold=st.none() | st.sampled_from([-1.0, 1.0, 2.5, 3.0]),
    links=st.sampled_from(LINK_RULES),
    repeats=st.booleans(),
    id_pool=st.sampled_from([5, 40, 10_000]),
    evidence=st.none() | st.sampled_from([2, 3]),
)
def test_fixed_weights_decide_as_the_per_pair_reference(
    seed: int,
    weights: list[tuple[float, float | None]],
    certain: float | None,
    threshold: float | None,
    links: str,
    repeats: bool,
    id_pool: int,
    evidence: int | None,
) -> None:
    rng = np.random.default_rng(seed)
    schema = _schema(weights, certain, evidence)
    table = _table(rng, 6, pairs=200, records=30, refs=40, id_pool=id_pool, repeats=repeats)
    _same(table, schema, threshold=threshold, links=links)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    weights=_WEIGHTS,
    floor=st.none() | st.sampled_from([0.0, 2.0, 4.0]),
    links=st.sampled_from(LINK_RULES),
    repeats=st.booleans(),
    evidence=st.none() | st.just(2),
)
def test_estimated_weights_decide_as_the_per_pair_reference(
    seed: int,
    weights: list[tuple[float, float | None]],
    floor: float | None,
    links: str,
    repeats: bool,
    evidence: int | None,
) -> None:
    rng = np.random.default_rng(seed)
    schema = _schema(weights, None, evidence)
    table = _table(rng, 6, pairs=900, records=150, refs=160, id_pool=10_000, repeats=repeats)
    _same(table, schema, threshold=floor, weights=ESTIMATED, links=links)


def test_an_estimate_is_made_and_a_floor_applies() -> None:
    # the random tables above do reach an estimate (not only the fallback to fixed weights)
    rng = np.random.default_rng(3)
    schema = _schema([(1.0, -1.0)] * 6, None)
    table = _table(rng, 6, pairs=900, records=150, refs=160, id_pool=10_000, repeats=False)
    for links in (ONE_TO_ONE, BEST_OF_EITHER):
        decision = decide(PsiResult(b"s" * 32, 1, table), schema, 2.0, weights=ESTIMATED)
        assert decision.estimate is not None and decision.matches
        assert all(m.policy_score >= 2.0 for m in decision.matches)
        _same(table, schema, threshold=2.0, weights=ESTIMATED, links=links)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), repeats=st.booleans())
def test_key_sets_beyond_64_keys_decide_as_the_reference(seed: int, repeats: bool) -> None:
    rng = np.random.default_rng(seed)
    weights = [(float(rng.integers(1, 4)), float(-rng.integers(0, 3))) for _ in range(70)]
    keys = [
        {"name": f"k{i}", "version": 1, "fields": [_FIELDS[i % 5]], "weight": w,
         "disagreement_weight": d}
        for i, (w, d) in enumerate(weights)
    ]  # fmt: skip
    schema = validate_schema({"id": "wide", "version": 1, "threshold": 3.0, "keys": keys})
    table = _table(rng, 70, pairs=150, records=25, refs=30, id_pool=10_000, repeats=repeats)
    _same(table, schema)
    _same(table, schema, links=BEST_OF_EITHER)


def test_columns_from_a_table_and_from_its_pairs_agree() -> None:
    rng = np.random.default_rng(7)
    table = _table(rng, 6, pairs=300, records=40, refs=50, id_pool=30, repeats=True)
    a, b = from_table(table), from_pairs(iter(table))
    assert a.left_ids == b.left_ids
    assert a.left.tolist() == b.left.tolist() and a.ref.tolist() == b.ref.tolist()
    assert [a.patterns[i] for i in a.pattern] == [b.patterns[i] for i in b.pattern]
    every = np.arange(len(a), dtype=np.int64)
    assert a.handles_of(every) == b.handles_of(every) == [p.handles for p in table]
    assert a.handles_of(every[::-3]) == [p.handles for p in table][::-3]


def test_an_unknown_key_is_still_a_key_error() -> None:
    schema = _schema([(1.0, None)] * 6, None)
    rng = np.random.default_rng(1)
    table = _table(rng, 7, pairs=50, records=10, refs=10, id_pool=100, repeats=False)
    with pytest.raises(KeyError):  # k6 is not in the schema
        decide(PsiResult(b"s" * 32, 1, table), schema)
