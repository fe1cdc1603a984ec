"""Labelled candidate pairs, key weights and thresholds fitted on a development split, quality.

Supervised, so used on the development split only (docs/evaluation.md). Every function takes
the candidate pairs a real PSI produced (:class:`LabelledPair`: the keys that agreed, and
whether the pair is a true link), never plaintext.

Two ways to weigh keys, both giving an additive score over the agreeing keys:

- :func:`fit_weights` (``"fellegi-sunter"``): each key's ``m``/``u`` estimated separately; the
  weight is ``log2(m/u)``. Exact when keys are independent; overlapping keys (family+birth date
  and family+birth date+sex) count the same evidence twice.
- :func:`fit_logistic_weights` (``"logistic"``): all weights fitted jointly by logistic
  regression (scikit-learn) on the development candidate pairs, in bits, so a key that only
  repeats another's evidence gets little or negative weight.

:func:`choose_thresholds` then picks the decision threshold and the *certain* threshold
(:func:`xlink.linkage.scoring.one_to_one`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from xlink.errors import EvaluationError
from xlink.linkage.schema import LinkageSchema
from xlink.linkage.scoring import CandidatePair, fellegi_sunter_score, one_to_one

__all__ = [
    "MIN_DEV_PRECISION",
    "LabelledPair",
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
# Where the certain threshold may go: these shares of the development true pairs score lower.
_CERTAIN_QUANTILES = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7)


@dataclass(frozen=True, slots=True)
class LabelledPair:
    """A candidate pair seen by the evaluator: ids of both records, the agreeing keys, whether
    it is a true link and whether its left record is in the development split."""

    left_id: str
    right_id: str
    keys: frozenset[str]
    true: bool
    dev: bool


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
    pairs: Sequence[LabelledPair],
    *,
    dev_true_links: int,
    dev_left_records: int,
    right_records: int,
) -> LinkageSchema:
    """``schema`` with every key's ``m`` and ``u`` estimated on the development pairs (and any
    ``weight`` dropped).

    ``m`` = share of the development true links whose pair agreed on the key (a true link that
    the PSI never paired agreed on nothing), smoothed ``(k + 0.5) / (n + 1)``; ``u`` = share of
    the development non-links (``dev_left_records * right_records - dev_true_links``) that
    agreed on it, counting at least half a pair so that ``u > 0``. A key agreeing more often on
    non-links than on links gets ``u = m / 2`` (it must stay evidence for the schema to be
    valid; its weight is then 1 bit). Values are rounded to 4 significant digits.
    """
    non_links = max(dev_left_records * right_records - dev_true_links, 1)
    keys = []
    for recipe in schema.keys:
        agree_true = agree_false = 0
        for p in pairs:
            if p.dev and recipe.name in p.keys:
                if p.true:
                    agree_true += 1
                else:
                    agree_false += 1
        m = (agree_true + 0.5) / (dev_true_links + 1)
        u = min(max(agree_false, 0.5) / non_links, m / 2)
        keys.append(replace(recipe, m=_sig(m), u=_sig(u), weight=None))
    return replace(schema, keys=tuple(keys))


def fit_logistic_weights(schema: LinkageSchema, pairs: Sequence[LabelledPair]) -> LinkageSchema:
    """``schema`` with every key's ``weight`` fitted by L2-regularised logistic regression
    (scikit-learn, ``C = 1``) on the development candidate pairs: one 0/1 feature per key (did
    it agree), the label is the truth. Weights are the coefficients in bits (divided by
    ``ln 2``), rounded to 4 significant digits; ``m``/``u`` are dropped. The intercept is not
    kept: :func:`choose_thresholds` sets the threshold on the same scale.

    Raises :class:`~xlink.errors.EvaluationError` unless the development pairs contain both
    true and false pairs.
    """
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    names = schema.key_names
    dev = [p for p in pairs if p.dev]
    labels = np.fromiter((p.true for p in dev), dtype=np.bool_, count=len(dev))
    if labels.all() or not labels.any():
        raise EvaluationError(
            "cannot fit weights: the development split needs both true and false candidate pairs"
        )
    features = np.zeros((len(dev), len(names)), dtype=np.float64)
    column = {name: j for j, name in enumerate(names)}
    for i, p in enumerate(dev):
        for key in p.keys:
            features[i, column[key]] = 1.0
    model = LogisticRegression(C=1.0, max_iter=5000).fit(features, labels)
    coef = model.coef_[0]
    keys = tuple(
        replace(recipe, m=None, u=None, weight=_sig(float(coef[j]) / _LN2))
        for j, recipe in enumerate(schema.keys)
    )
    return replace(schema, keys=keys)


def _sweep(
    kept: list[CandidatePair], label: dict[tuple[str, str], LabelledPair], dev_true_links: int
) -> list[tuple[float, int, int]]:
    """``(threshold, decided, true)`` at each distinct score of the kept development pairs."""
    out: list[tuple[float, int, int]] = []
    n = tp = 0
    dev_kept = [c for c in kept if label[(c.left_id, c.right_id)].dev]
    for i, c in enumerate(dev_kept):  # descending score
        n += 1
        tp += label[(c.left_id, c.right_id)].true
        if i + 1 < len(dev_kept) and dev_kept[i + 1].score == c.score:
            continue  # a threshold keeps every pair of one score or none
        out.append((c.score, n, tp))
    return out


def choose_thresholds(
    pairs: Sequence[LabelledPair],
    schema: LinkageSchema,
    dev_true_links: int,
    *,
    min_precision: float = MIN_DEV_PRECISION,
) -> LinkageSchema:
    """``schema`` with ``threshold`` and ``certain_threshold`` chosen on the development split.

    Candidates for the certain threshold are no certain threshold at all and the 5th, 10th,
    20th, 30th, 50th and 70th percentiles of the true development pairs' scores. For each, the
    one-to-one step runs once over all pairs and the kept development pairs are swept by
    descending score (the same as re-deciding at every threshold: a pair best for both records
    stays so when lower pairs are dropped). Among the settings whose development precision is at
    least ``min_precision`` (with the threshold not above the certain threshold), the one with
    the most true development pairs wins; its threshold is put halfway between the lowest score
    it includes and the next lower kept score (the widest margin), or, when no kept pair scores
    lower, at the lowest score. If no setting is precise enough, the most precise is taken.
    Thresholds are rounded down to 4 significant digits. Raises
    :class:`~xlink.errors.EvaluationError` when no development pair is true.
    """
    weights = schema.weights()
    scored = [
        CandidatePair(p.left_id, p.right_id, p.keys, fellegi_sunter_score(p.keys, weights))
        for p in pairs
    ]
    label = {(p.left_id, p.right_id): p for p in pairs}
    true_scores = sorted(
        c.score
        for c in scored
        if label[(c.left_id, c.right_id)].true and label[(c.left_id, c.right_id)].dev
    )
    if not true_scores:
        raise EvaluationError("cannot choose thresholds: no true development pair")
    certains: list[float | None] = [None]
    for q in _CERTAIN_QUANTILES:
        certains.append(true_scores[min(int(q * len(true_scores)), len(true_scores) - 1)])
    # (recall-rank, precision, threshold, certain)
    best: tuple[int, float, float, float | None] | None = None
    fallback: tuple[float, int, float, float | None] | None = None
    for certain in certains:
        curve = _sweep(one_to_one(scored, certain), label, dev_true_links)
        for i, (threshold, n, tp) in enumerate(curve):
            if certain is not None and threshold > certain:
                continue
            precision = tp / n
            lower = curve[i + 1][0] if i + 1 < len(curve) else threshold
            chosen = (threshold + lower) / 2
            if precision >= min_precision and (best is None or tp > best[0]):
                best = (tp, precision, chosen, certain)
            if fallback is None or (precision, tp) > (fallback[0], fallback[1]):
                fallback = (precision, tp, chosen, certain)
    if best is not None:
        threshold, certain = best[2], best[3]
    else:
        assert fallback is not None
        threshold, certain = fallback[2], fallback[3]
    if certain is not None and certain < threshold:
        certain = threshold
    return replace(
        schema,
        threshold=_sig_floor(threshold),
        certain_threshold=None if certain is None else _sig_floor(certain),
    )
