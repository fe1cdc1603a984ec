"""Match evidence estimated from one session's candidate pairs, with no labels
(docs/evaluation.md §6).

An agency has no labelled pairs, and a partner's list is not the list the bundled schema's
weights were fitted on. This module estimates, from what a PSI session shows both parties
alike, how much each candidate pair's *pattern* says for a match: for every key, whether it
agreed, disagreed (both records have the key and share no token) or is missing on one side.

**Why not one weight per key.** Keys overlap: several hold the family name, several the birth
date. One misspelt family name makes six keys disagree at once, and a model that takes keys as
independent counts that one error six times. So the model is one level down, on the *fields*
the keys are made of, as a plaintext linkage compares fields:

1. **Fields and their states.** Each key is a set of *tests* on fields (``family`` exact,
   ``family`` under ``soundex``, ``birth_date`` to the year...). Tests on the same part of a
   record form a *slot* (given name, family name, birth date, and one per other field). A
   slot's *state* is the set of its tests that hold for a pair, closed under implication
   (an exact birth date implies the same year). A key agrees when every one of its tests
   holds; a key observed to disagree where the model says it should agree (an alias, a name
   read in the other order, a second address) is noise, with probability :data:`NOISE`. A key
   missing on one side says nothing. (This model, and step 2's sums over it, are
   :mod:`xlink.linkage._field_states`.)
2. **Each class is a distribution over slot states**, slots independent given the class (the
   assumption a plaintext Fellegi–Sunter model makes about fields, not about keys). The
   probability of a pattern is the sum over every combination of slot states of its
   probability times that of the pattern given the combination.
3. **Non-matches from pairs the link rule rules out.** Under the one-to-one rule a person is
   on each list at most once, so of two candidate pairs that share a record, at most one is a
   match. A pair whose agreeing keys are a *strict subset* of another pair's sharing one of its
   records is *dominated*: the other pair has every piece of its evidence and more. Under the
   best-of-either rule (a person may be listed several times on one side) a pair must be
   dominated on both sides; or, when it is known which side is a registry of events (``once``
   names it: the other list holds each person once, so each of the registry's records, one
   person's event, matches at most one record), dominated among the pairs of one of the
   registry's records (:func:`dominated_pairs`).
   No weight is involved in choosing them. The non-match class is
   fitted by EM on the dominated pairs alone: the hard non-matches (a household member, a
   namesake) a threshold must turn away.
4. **Matches and the prior by EM.** With the non-match class fixed, the match class and
   ``λ``, the share of candidate pairs that are matches, are estimated by EM over every
   candidate pair's pattern.
5. **Score and threshold.** A pattern's score is ``log2 P(pattern | match) / P(pattern |
   non-match)``. The threshold keeps about as many pairs as the estimate expects matches,
   ``round(λ·C)`` of those the link rule keeps. The pairs of one pattern share a score, so a
   pattern is kept or refused whole: the one the count ends in is kept if at least half of
   its pairs are within the count (:func:`_nearest_count`). Under the
   best-of-either rule, which keeps every record's lone candidate, it is also at least the
   score at which a pair is as likely a match as not, ``log2((1-λ)/λ)``. A pair whose odds of
   being a match reach :data:`CERTAIN_ODDS` (score ``max(log2((1-λ)/λ), 0) + log2(CERTAIN_ODDS)``,
   never below the threshold) is *certain*: :func:`xlink.decide.decide` decides it even when
   it rivals another pair for a record, if it also reaches the schema's own certain threshold
   on the schema's weights (a list that holds one person twice makes two such pairs tie, and
   the link rule alone would refuse both).

Both parties see the same candidate pairs with the same patterns (mirrored: one party's left is
the other's right, which changes neither dominance nor patterns), so both reach the same
estimate. The computation does not depend on the order pairs arrive in or on string hashing
(patterns are sorted integers), runs a fixed number of EM iterations, and rounds the estimated
parameters to :data:`DIGITS` significant digits and every score to :data:`SCORE_DECIMALS`
decimals, so that two machines agree unless floating point differs across a rounding
boundary, which the release transfer's decision check would then catch (spec
xlink-release-v1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from xlink.errors import EstimationError
from xlink.linkage._dominance import distinct_rows, dominated_on
from xlink.linkage._field_states import (
    MAX_COMBINATIONS,
    MAX_SLOT_TESTS,
    NOISE,
    FieldStateModel,
    key_tests,
)
from xlink.linkage.schema import LinkageSchema
from xlink.linkage.scoring import BEST_OF_EITHER, ONE_TO_ONE, one_to_one_mask

__all__ = [
    "CERTAIN_ODDS",
    "COMPARISONS_PER_PAIR",
    "DIGITS",
    "EM_ITERATIONS",
    "MAX_CELLS",
    "MAX_COMBINATIONS",
    "MAX_SLOT_TESTS",
    "MIN_COMPARISON_BUDGET",
    "MIN_DOMINATED",
    "MIN_PAIRS",
    "NOISE",
    "SCORE_DECIMALS",
    "SIDES",
    "LinkageEstimate",
    "dominated_pairs",
    "estimate",
    "key_tests",
]

#: The two sides a pair joins, as ``once`` names one (:func:`dominated_pairs`).
SIDES = ("left", "right")
#: EM iterations per class, always all of them (a tolerance could stop two machines apart).
EM_ITERATIONS = 100
#: Significant digits the estimated parameters are rounded to; decimals of a score in bits.
DIGITS = 6
SCORE_DECIMALS = 6
#: Fewest candidate pairs, and fewest dominated ones, an estimate is made from.
MIN_PAIRS = 200
MIN_DOMINATED = 20
#: Most patterns times field-state combinations one estimate works over (a partner chooses the
#: key presence it declares, so the patterns are bounded here, not by trust).
MAX_CELLS = 20_000_000
#: Comparisons of agreement masks the search for dominated pairs may make, per candidate pair
#: (at least :data:`MIN_COMPARISON_BUDGET`): a record with ``g`` distinct masks costs ``g**2``.
#: Real lists make about one per pair (at most 13 masks a record at 100k per side); a partner
#: that gives one of our records thousands of candidates, each agreeing on other keys, would
#: otherwise make the search quadratic.
COMPARISONS_PER_PAIR = 64
MIN_COMPARISON_BUDGET = 1 << 24
#: Odds of a match (999 to 1: a posterior of 0.999) at which a pair is decided whatever its
#: rivals for the same record (the *certain* threshold of a fixed-weight schema, estimated).
CERTAIN_ODDS = 999


def _round(value: float) -> float:
    return float(f"{value:.{DIGITS}g}")


def _rounded(dist: Sequence[npt.NDArray[np.float64]]) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(_round(float(x)) for x in p) for p in dist)


@dataclass(frozen=True, slots=True)
class LinkageEstimate:
    """What :func:`estimate` found: the slots and their states, each class's distribution over
    them, the prior, and the decision rule's threshold."""

    key_names: tuple[str, ...]
    slots: tuple[str, ...]
    states: tuple[tuple[str, ...], ...]
    """Per slot, each state as the tests that hold, ``+``-joined (``""`` for none)."""
    match: tuple[tuple[float, ...], ...]
    """Per slot, P(state | match)."""
    non_match: tuple[tuple[float, ...], ...]
    """Per slot, P(state | non-match), from dominated pairs."""
    prior: float
    """Estimated share of the candidate pairs that are matches."""
    threshold: float
    """The score that keeps about ``expected_matches`` of the pairs the link rule keeps, a
    run of equal scores kept or refused whole (module docstring, step 5); under
    best-of-either, at least the even-odds score."""
    certain: float
    """The score at which a pair's odds of a match reach :data:`CERTAIN_ODDS` (with the prior
    taken at most even), at least ``threshold``: such a pair, if it also reaches the schema's
    certain threshold, is decided even when it rivals another for a record."""
    expected_matches: int
    candidate_pairs: int
    dominated_pairs: int
    patterns: int
    links: str
    scores: tuple[tuple[int, int, float], ...]
    """Every pattern seen: ``(agree mask, present mask, score)``, sorted; bit ``k`` is
    ``key_names[k]``."""
    once: str | None = None
    """Under best-of-either, the side (``"left"``, ``"right"``) whose records each match at
    most once, through one of which the non-matches were dominated; ``None``: dominated on both
    sides (or, one-to-one, on either)."""
    _table: dict[tuple[int, int], float] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        self._table.update({(a, p): s for a, p, s in self.scores})

    def score(self, agreeing: frozenset[str], present: frozenset[str]) -> float:
        """The score of a pattern: the keys that agreed and the keys both records have.
        Raises ``KeyError`` for a pattern the estimate was not made from."""
        bit = {name: 1 << i for i, name in enumerate(self.key_names)}
        agree = sum(bit[k] for k in agreeing)
        both = sum(bit[k] for k in present) | agree
        return self._table[(agree, both)]

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: per slot its states with P(state | match) and P(state | non-match),
        then the decision rule's figures (the per-pattern scores are left out)."""
        return {
            "method": "estimated",
            "model": "field states",
            "noise": NOISE,
            "slots": {
                slot: {
                    state or "none": {"match": m, "non_match": u}
                    for state, m, u in zip(states, match, non_match, strict=True)
                }
                for slot, states, match, non_match in zip(
                    self.slots, self.states, self.match, self.non_match, strict=True
                )
            },
            "prior": self.prior,
            "threshold": self.threshold,
            "certain_threshold": self.certain,
            "expected_matches": self.expected_matches,
            "candidate_pairs": self.candidate_pairs,
            "dominated_pairs": self.dominated_pairs,
            "patterns": self.patterns,
            "links": self.links,
            "dominated_through": self.once
            or ("both" if self.links == BEST_OF_EITHER else "either"),
        }


def dominated_pairs(
    left: npt.ArrayLike,
    right: npt.ArrayLike,
    agree: npt.ArrayLike,
    links: str = ONE_TO_ONE,
    *,
    budget: int | None = None,
    once: str | None = None,
) -> npt.NDArray[np.bool_]:
    """Which pairs the link rule refuses whatever the weights: with :data:`~xlink.linkage.
    scoring.ONE_TO_ONE`, those dominated on either side (another pair sharing their left *or*
    their right record agrees on every key they agree on, and more); with :data:`~xlink.
    linkage.scoring.BEST_OF_EITHER`, those dominated on both sides, or with ``once`` (``"left"``
    or ``"right"``: that side's records each match at most once, the other list holding each
    person once), those dominated among the pairs of their record on that side.
    ``left``/``right`` are record codes, ``agree`` the agreeing keys as bit masks. Symmetric in
    the two sides. ``budget``: the most mask comparisons on either side (``EstimationError``
    beyond it, before they are made). Raises ``ValueError`` for another ``once``, or ``once``
    with one-to-one."""
    lefts = np.asarray(left, dtype=np.int64).reshape(-1)
    rights = np.asarray(right, dtype=np.int64).reshape(-1)
    masks = np.asarray(agree, dtype=np.int64).reshape(-1)
    if once is not None and (once not in SIDES or links != BEST_OF_EITHER):
        raise ValueError(f"once={once!r} with {links}: 'left' or 'right' under best-of-either")
    on_left, on_right = (dominated_on(ids, masks, budget) for ids in (lefts, rights))
    if once is not None:
        return on_left if once == "left" else on_right
    if links == BEST_OF_EITHER:
        return on_left & on_right
    return on_left | on_right


def _patterns(
    presents: npt.NDArray[np.int64], agrees: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The distinct ``(present, agree)`` rows sorted, each pair's row and each row's count, as
    ``numpy.unique`` over rows gives them (:func:`~xlink.linkage._dominance.distinct_rows`)."""
    if not len(agrees):
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    row_of, row_present, row_agree = distinct_rows(presents, agrees)
    counts = np.bincount(row_of, minlength=len(row_present)).astype(np.int64)
    return np.stack([row_present, row_agree], axis=1), row_of, counts


def _bits(masks: npt.NDArray[np.int64], keys: int) -> npt.NDArray[np.float64]:
    return ((masks[:, None] >> np.arange(keys, dtype=np.int64)) & 1).astype(np.float64)


def _nearest_count(kept: npt.NDArray[np.float64], expected: int) -> float:
    """The score at which as near ``expected`` of the ``kept`` scores (highest first) as whole
    runs of equal scores allow are at or above it: the run the ``expected``-th score falls in
    is kept if at least half of it is within the count, else refused (if a run above it is
    left to keep). A pattern's pairs cannot be told apart, and a run of hundreds of household
    pairs at the count's end must not come in whole for the sake of a few."""
    at = float(kept[min(expected, len(kept)) - 1])
    above = int(np.count_nonzero(kept > at))
    run = int(np.count_nonzero(kept == at))
    if above and 2 * (expected - above) < run:
        return float(kept[above - 1])
    return at


def estimate(
    schema: LinkageSchema,
    left: npt.ArrayLike,
    right: npt.ArrayLike,
    agree: npt.ArrayLike,
    present: npt.ArrayLike,
    *,
    links: str = ONE_TO_ONE,
    once: str | None = None,
) -> LinkageEstimate:
    """Estimate pattern scores and a threshold from candidate pairs (module docstring).

    Pair ``i`` joins left record ``left[i]`` and right record ``right[i]`` (integer codes);
    ``agree[i]`` has bit ``k`` set when ``schema.keys[k]`` agreed, ``present[i]`` when both
    records have that key (an agreeing key is present whatever ``present`` says). ``links`` is
    the link rule the matches will be decided with (:data:`~xlink.linkage.scoring.LINK_RULES`):
    it says which pairs are known non-matches and which are counted for the threshold; under
    best-of-either, ``once`` names the side whose records each match at most once, when that
    is known (:func:`dominated_pairs`). The result does not depend on the order of the pairs.

    Raises:
        EstimationError: fewer than :data:`MIN_PAIRS` candidate pairs or :data:`MIN_DOMINATED`
            dominated ones, no pair the link rule keeps, more than 62 keys, a schema too rich
            to enumerate, more patterns than :data:`MAX_CELLS` allows, or records with so many
            distinct patterns that finding the dominated pairs would take more than
            :data:`COMPARISONS_PER_PAIR` comparisons a pair: the caller decides with fixed
            weights instead, and says so.
        ValueError: columns of different lengths, an unknown ``links``, or a ``once`` other
            than ``"left"`` or ``"right"`` under best-of-either.
    """
    names = schema.key_names
    if len(names) > 62:
        raise EstimationError(f"{len(names)} keys; at most 62 can be estimated")
    lefts = np.asarray(left, dtype=np.int64).reshape(-1)
    rights = np.asarray(right, dtype=np.int64).reshape(-1)
    agrees = np.asarray(agree, dtype=np.int64).reshape(-1)
    presents = np.asarray(present, dtype=np.int64).reshape(-1) | agrees
    if not len(lefts) == len(rights) == len(agrees) == len(presents):
        raise ValueError("estimate: columns of different lengths")
    if links not in (ONE_TO_ONE, BEST_OF_EITHER):
        raise ValueError(f"unknown link rule {links!r}")
    if once is not None and (once not in SIDES or links != BEST_OF_EITHER):
        raise ValueError(f"once={once!r} with {links}: 'left' or 'right' under best-of-either")
    if len(agrees) < MIN_PAIRS:
        raise EstimationError(
            f"{len(agrees)} candidate pairs; at least {MIN_PAIRS} are needed to estimate"
        )
    # the bounds a partner's pairs could push on are checked before the work they bound
    model = FieldStateModel(schema)
    rows, inverse, counts = _patterns(presents, agrees)
    if len(rows) * len(model.combos) > MAX_CELLS:
        raise EstimationError(
            f"{len(rows)} agreement patterns over {len(model.combos)} field-state combinations; "
            f"at most {MAX_CELLS} cells can be estimated"
        )
    budget = max(MIN_COMPARISON_BUDGET, COMPARISONS_PER_PAIR * len(agrees))
    dominated = dominated_pairs(lefts, rights, agrees, links, budget=budget, once=once)
    n_dominated = int(dominated.sum())
    if n_dominated < MIN_DOMINATED:
        raise EstimationError(
            f"{n_dominated} dominated candidate pairs; at least {MIN_DOMINATED} are needed "
            "to estimate"
        )
    inverse = inverse.reshape(-1)
    k = len(names)
    pattern_agree = _bits(rows[:, 1], k)
    loglik = model.loglik(pattern_agree, _bits(rows[:, 0], k) - pattern_agree)
    dominated_counts = np.bincount(inverse[dominated], minlength=len(rows)).astype(np.float64)
    all_counts = counts.astype(np.float64)

    non_match = model.start(0.2)
    for _ in range(EM_ITERATIONS):
        non_match = model.update(loglik, non_match, dominated_counts)
    log_u = model.log_class(loglik, non_match)
    match = model.start(0.7)
    prior = 0.5
    for _ in range(EM_ITERATIONS):
        odds = math.log(prior) - math.log1p(-prior) + model.log_class(loglik, match) - log_u
        posterior = 1.0 / (1.0 + np.exp(-np.clip(odds, -700.0, 700.0)))
        match = model.update(loglik, match, posterior * all_counts)
        prior = min(max(float((posterior * all_counts).sum() / all_counts.sum()), 1e-6), 1 - 1e-6)

    # scores from the rounded parameters only
    match_r, non_match_r, prior = _rounded(match), _rounded(non_match), _round(prior)
    as_arrays = [np.array(p) for p in match_r], [np.array(p) for p in non_match_r]
    bits_score = (
        model.log_class(loglik, as_arrays[0]) - model.log_class(loglik, as_arrays[1])
    ) / math.log(2.0)
    pattern_score = np.round(bits_score, SCORE_DECIMALS)
    score = pattern_score[inverse]
    expected = max(1, round(prior * len(agrees)))
    kept = np.sort(score[one_to_one_mask(lefts, rights, score, links=links)])[::-1]
    if not len(kept):  # every record's best pair tied: nothing to count from
        raise EstimationError("the link rule keeps no candidate pair; nothing to estimate from")
    by_count = _nearest_count(kept, expected)
    even_odds = round(math.log2((1.0 - prior) / prior), SCORE_DECIMALS)
    # best of either keeps every record's lone candidate, so the count alone over-admits
    threshold = by_count if links == ONE_TO_ONE else max(by_count, even_odds)
    # never below 999:1 at even prior odds: a partner that lists our people many times raises
    # the prior, and with it would lower this bound
    at_most_even = max(even_odds, 0.0)
    certain = max(threshold, round(at_most_even + math.log2(CERTAIN_ODDS), SCORE_DECIMALS))
    return LinkageEstimate(
        key_names=names,
        slots=model.slots,
        states=tuple(
            tuple("+".join(sorted(str(t) for t in state)) for state in states)
            for states in model.states
        ),
        match=match_r,
        non_match=non_match_r,
        prior=prior,
        threshold=threshold,
        certain=certain,
        expected_matches=expected,
        candidate_pairs=len(agrees),
        dominated_pairs=n_dominated,
        patterns=len(rows),
        links=links,
        once=once,
        scores=tuple(
            (int(a), int(p), float(s))
            for (p, a), s in zip(rows.tolist(), pattern_score.tolist(), strict=True)
        ),
    )
