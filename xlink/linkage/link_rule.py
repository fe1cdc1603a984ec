"""Choosing the link rule from one session's candidate pairs, with no labels
(``links = "auto"``; docs/evaluation.md §3).

Whether a person may be on a list more than once is a property of the list, not of the
weights: a census or a watchlist holds a person once, a registry of events (arrests,
crossings, court dates) holds them once per event. The one-to-one rule keeps one event per
person on such a registry; the best-of-either rule keeps them all but, on a list that holds
each person once, admits pairs one-to-one would refuse. An agency that does not know which
kind its partner's list is can ask for ``auto``, and the session's pairs say.

**The evidence.** The candidate pairs are scored by the label-free estimate under the
best-of-either rule (:func:`~xlink.linkage.estimate.estimate`), the rule that assumes the
least, and the pairs that rule would decide (at or above the estimate's threshold, the best of
at least one of their records) are the *likely* matches. On lists that hold each person once,
two likely matches share a record only where a list holds someone twice by mistake or where
a record's lone candidate is someone else's better match: a few in a hundred. On a registry
of events most people have several. So: if, on either side, at least :data:`SHARED_SHARE` of
the likely matches share their record with another likely match, the lists hold people
several times and the rule is best-of-either; otherwise one-to-one. When the pairs are too few
or too clean to estimate from (fewer than the estimate's minimum of candidate pairs, or of
dominated ones: two short lists, or lists whose candidates are nearly all matches), the
likely matches are those the schema's own weights put at or above its threshold; that is
said in the choice's note. When they show a registry on one side (the other side's records
share their likely matches, the registry's do not), an event being one person's, the pairs
dominated through a registry record are non-matches enough to estimate from
(:func:`~xlink.linkage.estimate.estimate`'s ``once``): that estimate is the choice's, and
:func:`xlink.decide.decide` decides with it; otherwise it falls back to the schema's own
weights as well. Fewer than :data:`MIN_LIKELY` likely matches gives one-to-one, the rule
that decides fewer pairs.

Both parties see the same pairs, so both reach the same rule (the estimate is deterministic
and order-free; what is compared here are integer counts). A dishonest partner can make the
rule best-of-either (one fabricated record carrying the tokens of many of our people is
enough), and under best-of-either a fabricated record wins every one of our records whose best
candidate it is, not one; each pair decided still reaches the MOU's floor on the schema's own
weights (:func:`xlink.decide.decide`). An MOU with a partner not trusted that far names its
rule (docs/security.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import numpy.typing as npt

from xlink.errors import EstimationError
from xlink.linkage._dominance import distinct_rows
from xlink.linkage.estimate import LinkageEstimate, estimate
from xlink.linkage.schema import LinkageSchema
from xlink.linkage.scoring import (
    BEST_OF_EITHER,
    LINK_RULES,
    ONE_TO_ONE,
    fellegi_sunter_score,
    one_to_one_mask,
)

__all__ = [
    "AUTO",
    "LINK_CHOICES",
    "MIN_LIKELY",
    "SHARED_SHARE",
    "LinkRuleChoice",
    "choose_link_rule",
]

#: The link rule chosen per session from its pairs (this module).
AUTO = "auto"
#: What a caller may ask for: a rule, or :data:`AUTO`.
LINK_CHOICES = (*LINK_RULES, AUTO)
#: The share of likely matches, on one side, sharing their record with another likely match
#: from which a list is taken to hold people several times. Lists that hold each person once
#: show a few percent; registries of events, one half or more (docs/evaluation.md §3).
SHARED_SHARE = Fraction(1, 5)
#: Fewer likely matches than this are too few to tell a registry of events by.
MIN_LIKELY = 20


@dataclass(frozen=True, slots=True)
class LinkRuleChoice:
    """The rule :func:`choose_link_rule` chose, and why."""

    links: str
    """:data:`~xlink.linkage.scoring.ONE_TO_ONE` or :data:`~xlink.linkage.scoring.
    BEST_OF_EITHER`."""
    likely: int
    """Likely matches: the distinct pairs best-of-either decides with the best-of-either
    estimate, or with the schema's own weights when none could be made (:attr:`note`)."""
    shared_left: int
    """Likely matches whose left record is in another likely match."""
    shared_right: int
    """Likely matches whose right record is in another likely match."""
    estimate: LinkageEstimate | None
    """The best-of-either estimate the pairs were scored with, or, when they were scored with
    the schema's own weights (too few pairs, or too few dominated ones, to estimate from), the
    estimate made through the registry's records (module docstring); else ``None``."""
    note: str | None = None
    """Why the likely matches were told on the schema's own weights (no best-of-either
    estimate could be made from the pairs dominated on both sides), and whether an estimate
    was then made through a registry's records; or why there was too little to choose from
    (one-to-one was taken); else ``None``."""
    unestimated: str | None = None
    """Why no best-of-either estimate could be made from these pairs (its
    :class:`~xlink.errors.EstimationError`), when none was: :func:`xlink.decide.decide` then
    decides with the schema's own weights, without trying again."""

    def to_dict(self) -> dict[str, object]:
        """JSON-ready, without the estimate."""
        return {
            "asked": AUTO,
            "links": self.links,
            "likely": self.likely,
            "shared_left": self.shared_left,
            "shared_right": self.shared_right,
            "shared_share": str(SHARED_SHARE),
            "note": self.note,
        }


def choose_link_rule(
    schema: LinkageSchema,
    left: npt.ArrayLike,
    right: npt.ArrayLike,
    agree: npt.ArrayLike,
    present: npt.ArrayLike,
) -> LinkRuleChoice:
    """The link rule the candidate pairs call for (module docstring). The columns are those
    of :func:`~xlink.linkage.estimate.estimate` (which counts a pair given twice twice, as
    :func:`xlink.decide.decide`'s does); among the likely matches a pair given twice counts
    once. Raises
    ``ValueError`` for columns of different lengths."""
    lefts = np.asarray(left, dtype=np.int64).reshape(-1)
    rights = np.asarray(right, dtype=np.int64).reshape(-1)
    agrees = np.asarray(agree, dtype=np.int64).reshape(-1)
    presents = np.asarray(present, dtype=np.int64).reshape(-1) | agrees
    if not len(lefts) == len(rights) == len(agrees) == len(presents):
        raise ValueError("choose_link_rule: columns of different lengths")
    if not len(lefts):
        said = f"no candidate pair; at least {MIN_LIKELY} likely matches are needed to tell"
        return LinkRuleChoice(ONE_TO_ONE, 0, 0, 0, None, said, "no candidate pair")
    row_of, row_present, row_agree = distinct_rows(presents, agrees)
    found: LinkageEstimate | None
    note: str | None = None
    unestimated: str | None = None
    try:
        found = estimate(schema, lefts, rights, agrees, presents, links=BEST_OF_EITHER)
    except EstimationError as exc:
        found, unestimated = None, str(exc)
        note = f"the schema's own weights: {exc}"
        row_score = _fixed_scores(schema, row_present, row_agree)
        threshold = schema.decision_threshold()
    else:
        threshold = found.threshold
        table = {(p, a): s for a, p, s in found.scores}
        row_score = np.array(
            [table[(p, a)] for p, a in zip(row_present.tolist(), row_agree.tolist(), strict=True)],
            dtype=np.float64,
        )
    score = row_score[row_of]
    above = np.flatnonzero(score >= threshold)
    pairs, best = _distinct_best(lefts[above], rights[above], score[above])
    likely = pairs[one_to_one_mask(pairs[:, 0], pairs[:, 1], best, None, BEST_OF_EITHER)]
    shared = [_shared(likely[:, side]) for side in (0, 1)]
    few = len(likely) < MIN_LIKELY
    if few:
        said = f"{len(likely)} likely matches; at least {MIN_LIKELY} are needed to tell"
        note = said if note is None else f"{note}; {said}"
    many = not few and max(shared) >= SHARED_SHARE * len(likely)
    once = _once(shared, len(likely)) if many else None
    if found is None and once is not None:
        # too few pairs dominated on both sides; through a record of the side that matches
        # once, a pair another of that record's pairs dominates is a non-match as well
        try:
            found = estimate(
                schema, lefts, rights, agrees, presents, links=BEST_OF_EITHER, once=once
            )
        except EstimationError as exc:
            note = f"{note}; none through the {once} records either: {exc}"
        else:
            unestimated = None
            note = f"{note}; estimated through the {once} records, each one event"
    return LinkRuleChoice(
        BEST_OF_EITHER if many else ONE_TO_ONE,
        len(likely),
        shared[0],
        shared[1],
        found,
        note,
        unestimated,
    )


def _once(shared: Sequence[int], likely: int) -> str | None:
    """The side whose records each match at most once, when the likely matches show one: the
    other side's records share theirs (a list holding each person once, against a registry of
    events), this side's do not. ``None`` when both sides share (or neither)."""
    left, right = (count >= SHARED_SHARE * likely for count in shared)
    if left == right:
        return None
    return "right" if left else "left"


def _fixed_scores(
    schema: LinkageSchema, present: npt.NDArray[np.int64], agree: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """Each pattern's score on the schema's own weights, as :func:`xlink.decide.decide`
    scores it without an estimate (:func:`~xlink.linkage.scoring.fellegi_sunter_score`: the
    agreeing keys' weights, and the disagreement weights of the keys both records have that did
    not agree; bit ``k`` is ``schema.keys[k]``)."""
    names = schema.key_names
    weights, disagreement = schema.weights(), schema.disagreement_weights()

    def keys(mask: int) -> list[str]:
        return [name for k, name in enumerate(names) if mask >> k & 1]

    return np.array(
        [
            fellegi_sunter_score(keys(a), weights, keys(p & ~a), disagreement)
            for p, a in zip(present.tolist(), agree.tolist(), strict=True)
        ],
        dtype=np.float64,
    )


def _distinct_best(
    left: npt.NDArray[np.int64], right: npt.NDArray[np.int64], score: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """The distinct ``(left, right)`` pairs, as rows, each with its highest score."""
    order = np.lexsort((-score, right, left))
    left, right, score = left[order], right[order], score[order]
    first = np.ones(len(left), dtype=np.bool_)
    first[1:] = (left[1:] != left[:-1]) | (right[1:] != right[:-1])
    return np.stack([left[first], right[first]], axis=1), score[first]


def _shared(ids: npt.NDArray[np.int64]) -> int:
    """How many of ``ids`` occur more than once."""
    if not len(ids):
        return 0
    _, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
    return int((counts[inverse.reshape(-1)] > 1).sum())
