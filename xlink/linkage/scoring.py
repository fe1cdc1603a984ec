"""Scoring agreement patterns and one-to-one assignment (DESIGN §2 step 5, §5).

Independent of plaintext: the inputs are record ids, the *names* of the keys two records agree
and disagree on, and per-key weights, so the PSI protocol can reuse these functions on its
intersection output exactly as the plaintext evaluation does.

A candidate pair's score is the sum of its agreeing keys' weights (the Fellegi–Sunter form):
``log2(m/u)`` for a key given ``m``/``u`` (classic Fellegi–Sunter, which treats the keys as
independent), or a weight in bits given directly (fitted jointly by logistic regression, which
corrects for keys that overlap, e.g. family+birth date and family+birth date+sex; such a weight
may be negative), plus the *disagreement* weights of its disagreeing keys. A key disagrees when
both records have at least one token for it and share none; a key missing on either side
neither agrees nor disagrees. The PSI tells each party which keys each revealed record has
(its key presence, spec xlink-psi-v2 §6.7, §7.3), so both parties can tell a disagreeing key
from a missing one. A disagreement adds the key's ``disagreement_weight`` (bits, usually
negative, fitted jointly with the agreement weights by logistic regression), and nothing for a
key that has none: the classic ``log2((1-m)/(1-u))`` is not derived from ``m``/``u``.

The decision keeps a pair at or above the threshold if it is the best pair of both its records
with no tie (so that households and twins, who share a surname, an address and sometimes a birth
date, go to a human instead of flooding the output), or if it reaches the *certain* threshold:
evidence that strong means the same person, and two such pairs for one record mean that person
is recorded twice on one side.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

__all__ = [
    "BEST_OF_EITHER",
    "DEFAULT_KEY_WEIGHT",
    "LINK_RULES",
    "ONE_TO_ONE",
    "CandidatePair",
    "KeyWeight",
    "best_once",
    "decide_matches",
    "fellegi_sunter_score",
    "floor_score",
    "one_to_one",
    "one_to_one_mask",
]

#: Weight of a key whose schema gives no ``m``/``u``: each such key counts as one vote.
DEFAULT_KEY_WEIGHT = 1.0

#: How many partners a record may keep (docs/evaluation.md §3). ``one-to-one``: a pair must be
#: the best of both its records (a person is on each list at most once). ``best-of-either``: the
#: best of at least one of its records, so a person listed several times on one side (a
#: registry of events) keeps every listing, whichever side that is; the price is that a record
#: whose only candidate is someone else's better match keeps it too.
ONE_TO_ONE = "one-to-one"
BEST_OF_EITHER = "best-of-either"
LINK_RULES = (ONE_TO_ONE, BEST_OF_EITHER)


def _check_rule(links: str) -> None:
    if links not in LINK_RULES:
        raise ValueError(f"unknown link rule {links!r}")


@dataclass(frozen=True, slots=True)
class KeyWeight:
    """Fellegi–Sunter probabilities of one key: ``m`` = P(agree | match), ``u`` = P(agree |
    non-match). Raises ``ValueError`` unless ``0 < u < m < 1``."""

    name: str
    m: float
    u: float

    def __post_init__(self) -> None:
        if not (0.0 < self.u < self.m < 1.0):
            raise ValueError("key weights need 0 < u < m < 1")

    @property
    def agreement(self) -> float:
        """``log2(m/u)``, the score added when the key agrees (positive by construction)."""
        return math.log2(self.m / self.u)


class CandidatePair(NamedTuple):
    """A candidate pair: one record of each side, the keys they agree on, and the score.

    A named tuple, not a dataclass, so that plain ``(left_id, right_id, keys, score)`` tuples are
    accepted wherever a :class:`CandidatePair` is expected.
    """

    left_id: str
    right_id: str
    keys: frozenset[str]
    score: float


def fellegi_sunter_score(
    agreeing_keys: Iterable[str],
    weights: Mapping[str, KeyWeight | float],
    disagreeing_keys: Iterable[str] = (),
    disagreement: Mapping[str, float] | None = None,
) -> float:
    """Sum of the agreement weights of ``agreeing_keys`` and of the disagreement weights of
    ``disagreeing_keys`` (each key counted once).

    A weight may be a :class:`KeyWeight` or a plain number (e.g. :data:`DEFAULT_KEY_WEIGHT`);
    ``disagreement`` maps key names to bits (e.g.
    :meth:`~xlink.linkage.schema.LinkageSchema.disagreement_weights`). Without ``disagreement``
    the disagreeing keys add nothing. The two sets are meant to be disjoint; a key in both counts
    as agreeing only (so the keys both records have may be passed as ``disagreeing_keys``).
    Raises ``KeyError`` for an agreeing key that has no weight, or a disagreeing key missing from
    a given ``disagreement``: silently scoring it 0 would hide a schema mismatch.

    The sum is correctly rounded (:func:`math.fsum`), so it does not depend on the order in
    which the keys are visited: set order follows each process's string hashing, and the two
    parties must get the same bits for the same pattern, or a pair scoring exactly at a
    threshold would be kept by one side and dropped by the other.
    """
    agreeing = set(agreeing_keys)
    terms = []
    for key in agreeing:
        weight = weights[key]
        terms.append(weight.agreement if isinstance(weight, KeyWeight) else float(weight))
    if disagreement is not None:
        terms.extend(float(disagreement[key]) for key in set(disagreeing_keys) - agreeing)
    return math.fsum(terms)


def floor_score(
    agreeing_keys: Iterable[str],
    weights: Mapping[str, KeyWeight | float],
    disagreeing_keys: Iterable[str],
    disagreement: Mapping[str, float],
) -> float:
    """The score an MOU's ``match_threshold`` is checked on before a release: as
    :func:`fellegi_sunter_score`, each disagreement counted only where it lowers the score. A
    disagreement is one record's key presence set against the other's tokens, and the
    partner's key presence is its word: with a positive disagreement weight (fitted ones
    can be: the default schema's ``dob_postcode``, ``family_postcode``) a partner that
    declares keys it does not hold, or gives them made-up values, would lift a pair over the
    floor (xlink-release-v1 §3, xlink-query-v1 §7.5)."""
    disagreeing = set(disagreeing_keys)  # only theirs: it runs once per pair
    lowering = {key: min(disagreement[key], 0.0) for key in disagreeing}
    return fellegi_sunter_score(agreeing_keys, weights, disagreeing, lowering)


def one_to_one(
    pairs: Iterable[tuple[str, str, frozenset[str], float]],
    certain: float | None = None,
    links: str = ONE_TO_ONE,
) -> list[CandidatePair]:
    """Keep a pair if it is the best-scoring pair of both its records, ties refused, or if its
    score is at least ``certain``. With ``links`` :data:`BEST_OF_EITHER`, the best of either
    of its records is enough. Raises ``ValueError`` for another ``links``.

    A record whose best score is shared by two or more pairs keeps none of them below
    ``certain`` (the evidence cannot tell them apart, so a human must). A pair given twice keeps
    its highest score. Returns the kept pairs by descending score, then ids (deterministic).
    """
    _check_rule(links)
    either = links == BEST_OF_EITHER
    merged: dict[tuple[str, str], CandidatePair] = {}
    for item in pairs:
        pair = CandidatePair(*item)
        old = merged.get((pair.left_id, pair.right_id))
        if old is None or pair.score > old.score:
            merged[(pair.left_id, pair.right_id)] = pair
    best_left: dict[str, tuple[float, int]] = {}
    best_right: dict[str, tuple[float, int]] = {}
    for pair in merged.values():
        for best, rid in ((best_left, pair.left_id), (best_right, pair.right_id)):
            score, count = best.get(rid, (-math.inf, 0))
            if pair.score > score:
                best[rid] = (pair.score, 1)
            elif pair.score == score:
                best[rid] = (score, count + 1)

    def is_best(p: CandidatePair) -> bool:
        on_left = best_left[p.left_id] == (p.score, 1)
        on_right = best_right[p.right_id] == (p.score, 1)
        return (on_left or on_right) if either else (on_left and on_right)

    kept = [
        p for p in merged.values() if (certain is not None and p.score >= certain) or is_best(p)
    ]
    kept.sort(key=lambda p: (-p.score, p.left_id, p.right_id))
    return kept


def best_once(ids: npt.NDArray[np.int64], score: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """Whether each pair has the best score of its record ``ids[i]`` and no other pair of that
    record has the same score."""
    if ids.min() >= 0 and ids.max() < 4 * len(ids) + 64:
        group = ids  # already small codes: one slot per code, no sort needed
    else:
        group = np.unique(ids, return_inverse=True)[1].reshape(-1)
    best = np.full(int(group.max()) + 1, -np.inf)
    np.maximum.at(best, group, score)
    is_best = score == best[group]
    count = np.bincount(group[is_best], minlength=len(best))
    result: npt.NDArray[np.bool_] = is_best & (count[group] == 1)
    return result


def one_to_one_mask(
    left: npt.ArrayLike,
    right: npt.ArrayLike,
    score: npt.ArrayLike,
    certain: float | None = None,
    links: str = ONE_TO_ONE,
) -> npt.NDArray[np.bool_]:
    """:func:`one_to_one` over columns: ``mask[i]`` says whether pair ``i`` (left record
    ``left[i]``, right record ``right[i]``, both integer codes, score ``score[i]``) is kept.

    Same rule: a pair is kept if it is the best-scoring pair of both its records, ties refused,
    or if its score is at least ``certain``. The pairs must be distinct (``one_to_one`` keeps the
    highest score of a pair given twice; here both copies would tie) and the scores finite.
    ``links`` as for :func:`one_to_one`. Raises ``ValueError`` if the three columns have
    different lengths, or for another ``links``.
    """
    _check_rule(links)
    lefts = np.asarray(left, dtype=np.int64).reshape(-1)
    rights = np.asarray(right, dtype=np.int64).reshape(-1)
    scores = np.asarray(score, dtype=np.float64).reshape(-1)
    if not len(lefts) == len(rights) == len(scores):
        raise ValueError("one_to_one_mask: columns of different lengths")
    if len(scores) == 0:
        return np.zeros(0, dtype=np.bool_)
    if links == BEST_OF_EITHER:
        kept = best_once(lefts, scores) | best_once(rights, scores)
    else:
        kept = best_once(lefts, scores) & best_once(rights, scores)
    if certain is not None:
        kept |= scores >= certain
    return kept


def decide_matches(
    pairs: Iterable[tuple[str, str, frozenset[str], float]],
    threshold: float,
    certain: float | None = None,
    links: str = ONE_TO_ONE,
) -> list[CandidatePair]:
    """Pairs scoring at least ``threshold``, then :func:`one_to_one` (with ``certain`` and
    ``links``). Raises ``ValueError`` only for an unknown ``links``."""
    return one_to_one((p for p in pairs if p[3] >= threshold), certain, links)
