"""Scoring agreement patterns and one-to-one assignment (DESIGN §2 step 5, §5).

Independent of plaintext: the inputs are record ids, the *names* of the keys two records agree
on, and per-key weights, so the PSI protocol can reuse these functions on its intersection
output exactly as the plaintext evaluation does.

A candidate pair's score is the sum of its agreeing keys' weights (the Fellegi–Sunter form):
``log2(m/u)`` for a key given ``m``/``u`` (classic Fellegi–Sunter, which treats the keys as
independent), or a weight in bits given directly (fitted jointly by logistic regression, which
corrects for keys that overlap, e.g. family+birth date and family+birth date+sex; such a weight
may be negative). Disagreement weights ``log2((1-m)/(1-u))`` are not used: after a PSI a party
learns which keys agreed, but cannot tell a disagreeing key from one that is missing on either
side.

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

__all__ = [
    "DEFAULT_KEY_WEIGHT",
    "CandidatePair",
    "KeyWeight",
    "decide_matches",
    "fellegi_sunter_score",
    "one_to_one",
]

#: Weight of a key whose schema gives no ``m``/``u``: each such key counts as one vote.
DEFAULT_KEY_WEIGHT = 1.0


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
    agreeing_keys: Iterable[str], weights: Mapping[str, KeyWeight | float]
) -> float:
    """Sum of the agreement weights of ``agreeing_keys`` (each key counted once).

    A weight may be a :class:`KeyWeight` or a plain number (e.g. :data:`DEFAULT_KEY_WEIGHT`).
    Raises ``KeyError`` for a key that has no weight: silently scoring it 0 would hide a schema
    mismatch.
    """
    total = 0.0
    for key in set(agreeing_keys):
        weight = weights[key]
        total += weight.agreement if isinstance(weight, KeyWeight) else float(weight)
    return total


def one_to_one(
    pairs: Iterable[tuple[str, str, frozenset[str], float]], certain: float | None = None
) -> list[CandidatePair]:
    """Keep a pair if it is the best-scoring pair of both its records, ties refused, or if its
    score is at least ``certain``.

    A record whose best score is shared by two or more pairs keeps none of them below
    ``certain`` (the evidence cannot tell them apart, so a human must). A pair given twice keeps
    its highest score. Returns the kept pairs by descending score, then ids (deterministic).
    Never raises.
    """
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
    kept = [
        p
        for p in merged.values()
        if (certain is not None and p.score >= certain)
        or (best_left[p.left_id] == (p.score, 1) and best_right[p.right_id] == (p.score, 1))
    ]
    kept.sort(key=lambda p: (-p.score, p.left_id, p.right_id))
    return kept


def decide_matches(
    pairs: Iterable[tuple[str, str, frozenset[str], float]],
    threshold: float,
    certain: float | None = None,
) -> list[CandidatePair]:
    """Pairs scoring at least ``threshold``, then :func:`one_to_one` (with ``certain``).
    Never raises."""
    return one_to_one((p for p in pairs if p[3] >= threshold), certain)
