"""Labelled candidate pairs, key weights and thresholds fitted on a development split, quality.

Supervised, so used on the development split only (docs/evaluation.md). Every function takes
the candidate pairs a real PSI produced (:class:`LabelledPair`: the keys that agreed, the keys
that disagreed, and whether the pair is a true link), never plaintext.

Two ways to weigh keys, both giving an additive score:

- :func:`fit_weights` (``"fellegi-sunter"``): each key's ``m``/``u`` estimated separately; the
  weight is ``log2(m/u)``, over the agreeing keys only. Exact when keys are independent;
  overlapping keys (family+birth date and family+birth date+sex) count the same evidence twice.
- :func:`fit_logistic_weights` (``"logistic"``): an agreement and a disagreement weight per key
  fitted jointly by logistic regression (scikit-learn) on the development candidate pairs, in
  bits, so a key that only repeats another's evidence gets little or negative weight, and a key
  that both records have but that did not agree counts against the pair.

:func:`choose_thresholds` then picks the decision threshold and the *certain* threshold
(:func:`xlink.linkage.scoring.one_to_one`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from xlink.errors import EvaluationError
from xlink.linkage.schema import LinkageSchema
from xlink.linkage.scoring import ONE_TO_ONE, fellegi_sunter_score, one_to_one_mask

__all__ = [
    "MIN_DEV_PRECISION",
    "LabelledPair",
    "LabelledPairs",
    "LinkageQuality",
    "choose_thresholds",
    "fit_logistic_weights",
    "fit_weights",
    "quality",
]

#: Thresholds are chosen for recall only among settings at least this precise on the development
#: split: a false match discloses a person who is not on the other side.
MIN_DEV_PRECISION = 0.997
_LN2 = math.log(2.0)
# Where the certain threshold may go: these shares of the development true pairs score lower
# (0.02, 0.04, ..., 0.98).
_CERTAIN_QUANTILES = tuple(i / 50 for i in range(1, 50))


@dataclass(frozen=True, slots=True)
class LabelledPair:
    """A candidate pair seen by the evaluator: ids of both records, the agreeing keys, whether
    it is a true link, whether its left record is in the development split, and the
    disagreeing keys (both records have the key, it did not agree:
    :attr:`xlink.protocol.events.CandidatePair.disagreeing_keys`)."""

    left_id: str
    right_id: str
    keys: frozenset[str]
    true: bool
    dev: bool
    disagree: frozenset[str] = frozenset()


Bools = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True, eq=False)
class LabelledPairs:
    """Labelled candidate pairs in columns (what the fitting works on; a list of
    :class:`LabelledPair` is turned into one, :meth:`of`).

    Pair ``i`` is left record ``left_ids[left[i]]``, right record ``right_ids[right[i]]``,
    agreeing keys ``patterns[pattern[i]][0]`` and disagreeing keys ``patterns[pattern[i]][1]``
    (as :attr:`LabelledPair.disagree`), a true link when ``true[i]``, in the development split
    when ``dev[i]``. Equal ids have one code, different ids different codes.
    """

    left: Ints
    right: Ints
    pattern: Ints
    patterns: tuple[tuple[frozenset[str], frozenset[str]], ...]
    true: Bools
    dev: Bools
    left_ids: Sequence[str]
    right_ids: Sequence[str]

    def __len__(self) -> int:
        return len(self.left)

    @classmethod
    def of(cls, pairs: Sequence[LabelledPair] | LabelledPairs) -> LabelledPairs:
        """``pairs`` in columns (returned as they are if they already are)."""
        if isinstance(pairs, LabelledPairs):
            return pairs
        left: dict[str, int] = {}
        right: dict[str, int] = {}
        index: dict[tuple[frozenset[str], frozenset[str]], int] = {}
        n = len(pairs)
        columns = np.empty((3, n), dtype=np.int64)
        true = np.empty(n, dtype=np.bool_)
        dev = np.empty(n, dtype=np.bool_)
        for i, p in enumerate(pairs):
            columns[0, i] = left.setdefault(p.left_id, len(left))
            columns[1, i] = right.setdefault(p.right_id, len(right))
            columns[2, i] = index.setdefault((p.keys, p.disagree), len(index))
            true[i], dev[i] = p.true, p.dev
        return cls(
            columns[0].copy(), columns[1].copy(), columns[2].copy(), tuple(index), true, dev,
            tuple(left), tuple(right),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class LinkageQuality:
    """Precision, recall and F1 of decided pairs against the true links."""

    precision: float
    recall: float
    f1: float
    n_pairs: int
    true_links: int
    true_positives: int


def quality(decided: Iterable[tuple[str, str]], truth: set[tuple[str, str]]) -> LinkageQuality:
    """Compare decided ``(left, right)`` pairs with the true links. Never raises."""
    pairs = set(decided)
    tp = len(pairs & truth)
    precision = tp / len(pairs) if pairs else 1.0
    recall = tp / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return LinkageQuality(precision, recall, f1, len(pairs), len(truth), tp)


def _sig(value: float) -> float:
    return float(f"{value:.4g}")


def _sig_floor(value: float) -> float:
    """``value`` rounded *down* to 4 significant digits: a threshold rounded up could exclude
    the pairs whose score it was set on."""
    if value == 0 or not math.isfinite(value):
        return value
    step = 10.0 ** (math.floor(math.log10(abs(value))) - 3)
    floored = math.floor(value / step) * step
    return min(float(f"{floored:.4g}"), value)


def fit_weights(
    schema: LinkageSchema,
    pairs: Sequence[LabelledPair] | LabelledPairs,
    *,
    dev_true_links: int,
    dev_left_records: int,
    right_records: int,
) -> LinkageSchema:
    """``schema`` with every key's ``m`` and ``u`` estimated on the development pairs, and any
    ``weight`` and ``disagreement_weight`` dropped: this fit is agreement-only (disagreements
    then add nothing), and a disagreement weight fitted against other agreement weights must not
    survive next to the new ones.

    ``m`` = share of the development true links whose pair agreed on the key (a true link that
    the PSI never paired agreed on nothing), smoothed ``(k + 0.5) / (n + 1)``; ``u`` = share of
    the development non-links (``dev_left_records * right_records - dev_true_links``) that
    agreed on it, counting at least half a pair so that ``u > 0``. A key agreeing more often on
    non-links than on links gets ``u = m / 2`` (it must stay evidence for the schema to be
    valid; its weight is then 1 bit). Values are rounded to 4 significant digits.
    """
    non_links = max(dev_left_records * right_records - dev_true_links, 1)
    data = LabelledPairs.of(pairs)
    size = len(data.patterns)
    dev_true = np.bincount(data.pattern[data.dev & data.true], minlength=size)
    dev_false = np.bincount(data.pattern[data.dev & ~data.true], minlength=size)
    keys = []
    for recipe in schema.keys:
        has = np.array([recipe.name in k for k, _ in data.patterns], dtype=np.bool_)
        agree_true, agree_false = int(dev_true[has].sum()), int(dev_false[has].sum())
        m = (agree_true + 0.5) / (dev_true_links + 1)
        u = min(max(agree_false, 0.5) / non_links, m / 2)
        keys.append(replace(recipe, m=_sig(m), u=_sig(u), weight=None, disagreement_weight=None))
    return replace(schema, keys=tuple(keys))


def fit_logistic_weights(
    schema: LinkageSchema, pairs: Sequence[LabelledPair] | LabelledPairs
) -> LinkageSchema:
    """``schema`` with every key's ``weight`` and ``disagreement_weight`` fitted by
    L2-regularised logistic regression (scikit-learn, ``C = 1``) on the development candidate
    pairs: two 0/1 features per key (did it agree; did it disagree, :attr:`LabelledPair.
    disagree`), the label is the truth. Weights are the coefficients in bits (divided by
    ``ln 2``), rounded to 4 significant digits; ``m``/``u`` are dropped. The intercept is not
    kept: :func:`choose_thresholds` sets the threshold on the same scale.

    Raises :class:`~xlink.errors.EvaluationError` unless the development pairs contain both
    true and false pairs.
    """
    from sklearn.linear_model import LogisticRegression

    names = schema.key_names
    data = LabelledPairs.of(pairs)
    dev = np.flatnonzero(data.dev)
    labels = data.true[dev]
    if labels.all() or not labels.any():
        raise EvaluationError(
            "cannot fit weights: the development split needs both true and false candidate pairs"
        )
    k = len(names)
    column = {name: j for j, name in enumerate(names)}
    rows = np.zeros((len(data.patterns), 2 * k), dtype=np.float64)  # one per pattern
    for i in np.unique(data.pattern[dev]).tolist():
        agreeing, disagreeing = data.patterns[i]
        for key in agreeing:
            rows[i, column[key]] = 1.0
        for key in disagreeing - agreeing:
            rows[i, k + column[key]] = 1.0
    features = rows[data.pattern[dev]]
    del dev
    model = LogisticRegression(C=1.0, max_iter=5000).fit(features, labels)
    coef = model.coef_[0]
    keys = tuple(
        replace(
            recipe,
            m=None,
            u=None,
            weight=_sig(float(coef[j]) / _LN2),
            disagreement_weight=_sig(float(coef[k + j]) / _LN2),
        )
        for j, recipe in enumerate(schema.keys)
    )
    return replace(schema, keys=keys)


def _sweep(
    score: npt.NDArray[np.float64], true: npt.NDArray[np.bool_]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """``(threshold, decided, true)`` at each distinct score of the given (kept development)
    pairs, by descending score: a threshold keeps every pair of one score or none."""
    order = np.argsort(-score, kind="stable")
    ordered = score[order]
    n = np.arange(1, len(ordered) + 1, dtype=np.int64)
    tp = np.cumsum(true[order], dtype=np.int64)
    last = np.ones(len(ordered), dtype=np.bool_)  # the last pair of each run of one score
    last[:-1] = ordered[1:] != ordered[:-1]
    return ordered[last], n[last], tp[last]


def choose_thresholds(
    pairs: Sequence[LabelledPair] | LabelledPairs,
    schema: LinkageSchema,
    dev_true_links: int,
    *,
    min_precision: float = MIN_DEV_PRECISION,
    links: str = ONE_TO_ONE,
) -> LinkageSchema:
    """``schema`` with ``threshold`` and ``certain_threshold`` chosen on the development split.

    Pairs are scored with the schema's agreement and disagreement weights. Candidates for the
    certain threshold are no certain threshold at all and the quantiles ``q = 0.02, 0.04, ...,
    0.98`` of the true development pairs' scores (the score with a share ``q`` of them below
    it). For each, the one-to-one step (:func:`~xlink.linkage.scoring.one_to_one_mask`) runs
    once over all pairs and the kept development pairs are swept by descending score (the same
    as re-deciding at every threshold: a pair best for both records stays so when lower pairs
    are dropped). Among the settings whose development precision is at least ``min_precision``
    (with the threshold not above the certain threshold), the one with the most true
    development pairs wins (the first such in the order above); its threshold is put halfway
    between the lowest score it includes and the next lower kept score (the widest margin), or,
    when no kept pair scores lower, at the lowest score. If no setting is precise enough, the
    most precise is taken. Thresholds are rounded down to 4 significant digits. A pair listed
    twice counts once, with its higher score. ``links`` is the link rule the matches will be
    kept by. Pairs without the schema's evidence
    (:meth:`~xlink.linkage.schema.LinkageSchema.has_evidence`) are left out, as
    :func:`~xlink.decide.decide` leaves them out. Raises :class:`~xlink.errors.EvaluationError`
    when no development pair is true.
    """
    weights = schema.weights()
    disagreement = schema.disagreement_weights()
    data = LabelledPairs.of(pairs)
    pattern_score = np.array(
        [fellegi_sunter_score(k, weights, d, disagreement) for k, d in data.patterns],
        dtype=np.float64,
    )
    # A pair without the schema's evidence is never decided (LinkageSchema.has_evidence): it
    # neither counts nor competes, as in decide().
    evidence = np.array([schema.has_evidence(k) for k, _ in data.patterns], dtype=np.bool_)
    usable = np.flatnonzero(evidence[data.pattern])
    left, right = data.left[usable], data.right[usable]
    true, dev = data.true[usable], data.dev[usable]
    score = pattern_score[data.pattern[usable]]
    # One row per (left, right), its highest score, as one_to_one merges repeats.
    order = np.argsort(-score, kind="stable")
    _, first = np.unique(left[order] * len(data.right_ids) + right[order], return_index=True)
    rows = np.sort(order[first])
    left, right, score, true, dev = left[rows], right[rows], score[rows], true[rows], dev[rows]
    true_scores = np.sort(score[true & dev])
    if len(true_scores) == 0:
        raise EvaluationError(
            "cannot choose thresholds: no true development pair has enough evidence to be"
            " decided (are the files' names and dates read, as their load lines and"
            " field-errors files say? does the split's development half hold true links?"
            " --weights estimated or schema fit nothing)"
        )
    certains: list[float | None] = [None]
    for q in _CERTAIN_QUANTILES:
        value = float(true_scores[min(int(q * len(true_scores)), len(true_scores) - 1)])
        if value not in certains:  # the same candidate twice decides the same
            certains.append(value)
    # (true, precision, threshold, certain)
    best: tuple[int, float, float, float | None] | None = None
    fallback: tuple[float, int, float, float | None] | None = None
    for certain in certains:
        kept = one_to_one_mask(left, right, score, certain, links) & dev
        thresholds, decided, tps = _sweep(score[kept], true[kept])
        if len(thresholds) == 0:
            continue
        lower = np.append(thresholds[1:], thresholds[-1])
        chosen = (thresholds + lower) / 2
        precision = tps / decided
        allowed = np.ones(len(thresholds), dtype=np.bool_)
        if certain is not None:
            allowed = thresholds <= certain
        if not allowed.any():
            continue
        ok = allowed & (precision >= min_precision)
        if ok.any():
            i = int(np.argmax(np.where(ok, tps, -1)))  # first of the most true pairs
            if best is None or int(tps[i]) > best[0]:
                best = (int(tps[i]), float(precision[i]), float(chosen[i]), certain)
        top = np.max(precision[allowed])
        i = int(np.argmax(np.where(allowed & (precision == top), tps, -1)))
        if fallback is None or (float(precision[i]), int(tps[i])) > fallback[:2]:
            fallback = (float(precision[i]), int(tps[i]), float(chosen[i]), certain)
    if best is not None:
        threshold, certain = best[2], best[3]
    else:
        # Not None: at a certain threshold set on a true development pair's score that pair is
        # kept, at a threshold not above it.
        assert fallback is not None
        threshold, certain = fallback[2], fallback[3]
    if certain is not None and certain < threshold:
        certain = threshold
    return replace(
        schema,
        threshold=_sig_floor(threshold),
        certain_threshold=None if certain is None else _sig_floor(certain),
    )
