"""Deciding matches from a PSI result (DESIGN.md §2 step 5; spec xlink-psi-v2 §7.3).

Each candidate pair's agreement pattern is scored with the linkage schema's weights: the
agreement weights of the keys that agreed plus the disagreement weights of the keys that
disagreed (both records have the key, from the key presence the PSI reveals, spec xlink-psi-v2
§6.7, but share no token for it; :func:`~xlink.linkage.scoring.fellegi_sunter_score`). Pairs
below the threshold are dropped, and a one-to-one step keeps a pair only when it is the best
for both of its records (ties refused, so households and twins go to a human instead of
flooding the output) or reaches the certain threshold. Both parties compute the same scores
from the same pattern, key presence and schema, so both reach the same decisions without
another message.

The work is done on columns (:mod:`xlink._pair_columns`), since a session may have millions
of candidate pairs and only a few hundred patterns: a pattern is scored once however many
pairs have it, the link rule is array work (:func:`~xlink.linkage.scoring.one_to_one_mask`),
and a Python object is built only for a decided pair. The decisions are those of
:func:`~xlink.linkage.scoring.decide_matches` over the pairs one by one, order and ties
included (tests/decide/test_decide_columns.py holds that per-pair reference).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

from xlink._pair_columns import PairColumns, pair_columns
from xlink.decide._scores import certain_patterns, pattern_scorer, pattern_scores
from xlink.decide._sieve import OneToOneSieve
from xlink.errors import EstimationError
from xlink.linkage.estimate import LinkageEstimate, estimate
from xlink.linkage.fields import IDENTIFYING_GROUPS, FieldGroup
from xlink.linkage.link_rule import AUTO, LINK_CHOICES, LinkRuleChoice, choose_link_rule
from xlink.linkage.schema import LinkageSchema
from xlink.linkage.scoring import (
    BEST_OF_EITHER,
    ONE_TO_ONE,
    KeyWeight,
    one_to_one_mask,
)
from xlink.protocol.bound import RevealBound
from xlink.protocol.events import CandidatePair
from xlink.protocol.limits import MAX_PAIR_HANDLES

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ESTIMATED",
    "FIXED",
    "WEIGHTS",
    "CandidateSource",
    "DecidedMatch",
    "Decision",
    "OneToOneSieve",
    "choose_link",
    "decide",
    "pattern_scorer",
    "reveal_bound_for",
]

#: :func:`decide`'s weightings: the schema's own weights, or weights estimated per session.
FIXED = "fixed"
ESTIMATED = "estimated"
WEIGHTS = (FIXED, ESTIMATED)


class CandidateSource(Protocol):
    """What :func:`decide` reads: a session id and candidate pairs. A
    :class:`~xlink.protocol.events.PsiResult` is one; the query mode builds its own from its
    table lookups (xlink-query-v1 §7.4)."""

    @property
    def session_id(self) -> bytes: ...

    def iter_pairs(self) -> Iterator[CandidatePair]: ...


@dataclass(frozen=True, slots=True)
class DecidedMatch:
    """One decided match, seen from one side: a local record and the peer's per-session
    reference for its record, with the keys that agreed, the score and the shared handles."""

    local_record_id: str
    peer_ref: int
    agreeing_keys: frozenset[str]
    score: float
    handles: tuple[bytes, ...]
    disagreeing_keys: frozenset[str] = frozenset()
    """Keys both records have tokens for that did not agree."""
    missing_keys: frozenset[str] = frozenset()
    """Keys of the schema that one record or the other has no token for."""
    fixed_score: float | None = None
    """With estimated weights, the pair's score under the schema's own weights, which the
    MOU's ``match_threshold`` bounds (``None`` with fixed weights: ``score`` is that score)."""

    @property
    def policy_score(self) -> float:
        """The score an MOU's ``match_threshold`` applies to: on the schema's own weights."""
        return self.score if self.fixed_score is None else self.fixed_score

    def __repr__(self) -> str:  # handles are opaque but need not reach logs
        return (
            f"DecidedMatch({self.local_record_id!r}, peer_ref={self.peer_ref}, "
            f"keys={sorted(self.agreeing_keys)}, score={self.score:.2f})"
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """What one side decided from one session."""

    session_id: bytes
    threshold: float
    candidates: int
    matches: tuple[DecidedMatch, ...]
    weights: str = FIXED
    """:data:`FIXED` or :data:`ESTIMATED`: what was asked for."""
    estimate: LinkageEstimate | None = None
    """The estimate the matches were decided with (``None`` with fixed weights)."""
    estimate_note: str | None = None
    """Why estimated weights were asked for and fixed ones used (no estimate could be made
    from the pairs: too few, too few dominated, or beyond the estimate's bounds)."""
    links: str = ONE_TO_ONE
    """The link rule the matches were kept by (the rule chosen, when ``auto`` was asked)."""
    link_choice: LinkRuleChoice | None = None
    """With ``links="auto"``, the rule chosen and the evidence for it."""

    def to_frame(self) -> pd.DataFrame:
        """The decided matches as a pandas DataFrame, one row each: ``local_record_id``,
        ``peer_ref``, ``score`` and the ``agreeing_keys`` / ``disagreeing_keys`` /
        ``missing_keys`` (sorted tuples). No handle, no partner data."""
        import pandas as pd

        columns = (
            "local_record_id",
            "peer_ref",
            "score",
            "agreeing_keys",
            "disagreeing_keys",
            "missing_keys",
        )
        rows = [
            (
                m.local_record_id,
                m.peer_ref,
                m.score,
                tuple(sorted(m.agreeing_keys)),
                tuple(sorted(m.disagreeing_keys)),
                tuple(sorted(m.missing_keys)),
            )
            for m in self.matches
        ]
        return pd.DataFrame.from_records(rows, columns=columns)


def decide(
    result: CandidateSource,
    schema: LinkageSchema,
    threshold: float | None = None,
    *,
    weights: str = FIXED,
    links: str = ONE_TO_ONE,
) -> Decision:
    """Score every candidate pair of ``result`` and keep the pairs at or above the threshold
    that are best for both of their records, or that reach the certain threshold
    (:func:`~xlink.linkage.scoring.one_to_one`).

    ``weights``: :data:`FIXED` scores with ``schema``'s weights (a pair's agreeing keys'
    weights plus its :attr:`~xlink.protocol.events.CandidatePair.disagreeing_keys`'
    ``disagreement_weight``, 0 for a key without one), the threshold ``threshold`` (default:
    the schema's; one agreeing key when it has none) and the schema's ``certain_threshold``.
    :data:`ESTIMATED` estimates each pattern's score and the threshold from this session's
    candidate pairs (:func:`~xlink.linkage.estimate.estimate`, no labels; a pair is certain
    when it reaches both the estimate's certain threshold and the schema's, on the schema's own
    weights), and ``threshold``, if given, is a floor on the *schema's own* score: a pair
    below it is never decided, whatever the estimate says, since a partner's records shape
    the estimate and cannot move the schema; the estimate is recorded in
    :attr:`Decision.estimate`; when the session has too few pairs to estimate from (under
    best-of-either, also through a registry's records: :func:`_estimate`), it decides with the
    fixed weights and says why in :attr:`Decision.estimate_note`. ``links`` is the
    link rule (:data:`~xlink.linkage.scoring.LINK_RULES`): one-to-one, or best of either
    record for a list that holds a person several times, or
    :data:`~xlink.linkage.link_rule.AUTO` to choose one of the two from the pairs
    (:func:`~xlink.linkage.link_rule.choose_link_rule`, recorded in
    :attr:`Decision.link_choice`).

    Raises ``KeyError`` if a pair agrees or disagrees on a key the schema does not name (the two
    parties used different schemas, which the handshake's schema digest should have caught),
    ``ValueError`` for another ``weights`` or ``links``.
    """
    if weights not in (FIXED, ESTIMATED):
        raise ValueError(f"unknown weights {weights!r}")
    if links not in LINK_CHOICES:
        raise ValueError(f"unknown link rule {links!r}")
    found: LinkageEstimate | None = None
    note: str | None = None
    floor: float | None = None
    columns = pair_columns(result)
    choice = None
    if links == AUTO:
        choice = choose_link(columns, schema)
        links = choice.links
    if weights == ESTIMATED:
        try:
            found = _estimate(columns, schema, links, choice)
        except EstimationError as exc:
            note = f"fixed weights: {exc}"
            # the schema's threshold, the caller's still a floor under it
            if schema.threshold is not None:
                threshold = max(schema.threshold, -math.inf if threshold is None else threshold)
        else:
            # The caller's threshold (an MOU's match_threshold) stays a floor, on the schema's
            # own weights: the estimate learns from pairs a partner's records make, so what a
            # partner cannot move is what bounds it.
            floor, threshold = threshold, found.threshold
    threshold = schema.decision_threshold(threshold)
    score = pattern_scores(columns.patterns, pattern_scorer(schema, found))
    fixed = pattern_scores(columns.patterns, pattern_scorer(schema)) if found is not None else None
    certain = certain_patterns(schema, found, score, fixed)
    evidence = np.array([schema.has_evidence(a) for a, _ in columns.patterns], dtype=np.bool_)
    matches = _matches(
        columns, score, fixed, floor, threshold, certain, links, schema.key_names, evidence
    )
    return Decision(
        result.session_id, threshold, len(columns), matches, weights, found, note, links, choice
    )


def _str_ranks(values: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Each value's rank among the distinct ``values`` ordered as decimal strings (the order
    of ``str(peer_ref)``)."""
    distinct = np.unique(values)
    by_text = sorted(range(len(distinct)), key=[str(v) for v in distinct.tolist()].__getitem__)
    rank = np.empty(len(distinct), dtype=np.int64)
    rank[by_text] = np.arange(len(distinct), dtype=np.int64)
    ranks: npt.NDArray[np.int64] = rank[np.searchsorted(distinct, values)]
    return ranks


def _matches(
    columns: PairColumns,
    score: npt.NDArray[np.float64],
    fixed: npt.NDArray[np.float64] | None,
    floor: float | None,
    threshold: float,
    certain: npt.NDArray[np.bool_] | None,
    links: str,
    key_names: Sequence[str],
    evidence: npt.NDArray[np.bool_],
) -> tuple[DecidedMatch, ...]:
    """The pairs at or above ``threshold`` (and, with ``fixed``, at or above ``floor`` on
    it) whose pattern has the schema's ``evidence``
    (:meth:`~xlink.linkage.schema.LinkageSchema.has_evidence`, one flag per pattern), kept by
    the link rule (:func:`~xlink.linkage.scoring.one_to_one_mask`) or because their pattern
    is ``certain`` (:func:`_certain`), by descending score, then local record
    id, then ``str(peer_ref)``.

    As :func:`~xlink.linkage.scoring.decide_matches` over the pairs one by one: a pair given
    twice (the same local record id and peer reference) competes once, with its highest score
    among its copies at or above the threshold (and the floor) that have the evidence, and is
    described (keys, handles, ``fixed_score``) by its last copy with the evidence (and at or
    above the floor), never by one that could not have been decided."""
    usable = (score >= threshold) & evidence
    # A copy that may describe a decided pair: one with the evidence and, under estimated
    # weights with a floor, at or above the floor on the schema's own weights.
    valid = evidence.copy()
    if fixed is not None and floor is not None:
        valid &= fixed >= floor  # below the MOU's floor on the schema's own weights: never
    usable &= valid
    rows = np.flatnonzero(usable[columns.pattern])
    group = _repeat_groups(columns.left, columns.ref)
    if group is None:  # every pair once: each row stands for itself
        mask = one_to_one_mask(
            columns.left[rows], columns.ref[rows], score[columns.pattern[rows]], None, links
        )
        if certain is not None:
            mask |= certain[columns.pattern[rows]]
        kept = described = fixed_rows = rows[mask]
    else:
        # one row per group: its highest score among the usable rows
        order = np.lexsort((-score[columns.pattern[rows]], group[rows]))
        ordered = rows[order]
        first = np.ones(len(ordered), dtype=np.bool_)
        first[1:] = group[ordered[1:]] != group[ordered[:-1]]
        top = ordered[first]
        mask = one_to_one_mask(
            columns.left[top], columns.ref[top], score[columns.pattern[top]], None, links
        )
        if certain is not None:
            mask |= certain[columns.pattern[top]]
        kept = top[mask]
        # described by its last copy that may describe it (a kept group has one: its top row)
        fine = np.flatnonzero(valid[columns.pattern])
        last = np.full(int(group.max()) + 1, -1, dtype=np.int64)
        np.maximum.at(last, group[fine], fine)
        described = fixed_rows = last[group[kept]]
    kept_score = score[columns.pattern[kept]]
    order = np.lexsort((_str_ranks(columns.ref[kept]), columns.left[kept], -kept_score))
    every_key = frozenset(key_names)
    sets: dict[int, tuple[frozenset[str], frozenset[str]]] = {}  # disagreeing, missing
    matches = []
    kept, described, fixed_rows = kept[order], described[order], fixed_rows[order]
    patterns = columns.pattern[described].tolist()
    fixed_scores = fixed[columns.pattern[fixed_rows]].tolist() if fixed is not None else None
    for i, (left, ref, value, p, handles) in enumerate(
        zip(
            columns.left[kept].tolist(),
            columns.ref[described].tolist(),
            score[columns.pattern[kept]].tolist(),
            patterns,
            columns.handles_of(described),
            strict=True,
        )
    ):
        handles = handles[:MAX_PAIR_HANDLES]  # ascending: the ones its release's label names
        agreeing, both = columns.patterns[p]
        found = sets.get(p)
        if found is None:
            disagreeing = both - agreeing
            found = sets[p] = (disagreeing, every_key - agreeing - disagreeing)
        matches.append(
            DecidedMatch(
                columns.left_ids[left],
                ref,
                agreeing,
                value,
                handles,
                found[0],
                found[1],
                None if fixed_scores is None else fixed_scores[i],
            )
        )
    return tuple(matches)


def _repeat_groups(
    left: npt.NDArray[np.int64], ref: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64] | None:
    """``None`` when no (local record, peer reference) is given twice (the usual case, checked
    without sorting when the pairs come in order), else each pair's group of copies."""
    if len(left) < 2:
        return None
    low = int(ref.min())
    span = int(ref.max()) - low + 1
    if (int(left.max()) + 1) * span < 1 << 62:
        key = left * span + (ref - low)
        if bool(np.all(key[1:] > key[:-1])):
            return None
        distinct, group = np.unique(key, return_inverse=True)
    else:
        distinct, group = np.unique(np.stack([left, ref], axis=1), axis=0, return_inverse=True)
    if len(distinct) == len(left):
        return None
    groups: npt.NDArray[np.int64] = group.astype(np.int64).reshape(-1)
    return groups


def _estimate(
    columns: PairColumns, schema: LinkageSchema, links: str, choice: LinkRuleChoice | None
) -> LinkageEstimate:
    """The estimate :func:`decide` decides with. Under one-to-one,
    :func:`~xlink.linkage.estimate.estimate` over the pairs (:func:`_masks`). Under
    best-of-either, the estimate of the link rule's ``choice`` (:func:`choose_link`, made here
    when the rule was named, not chosen): from the pairs dominated on both sides, or, when too
    few are, through a registry's records
    (:func:`~xlink.linkage.link_rule.choose_link_rule`), each tried once. Raises
    ``EstimationError`` when none could be made."""
    if links == BEST_OF_EITHER:
        choice = choose_link(columns, schema) if choice is None else choice
        if choice.estimate is None:
            raise EstimationError(str(choice.unestimated))
        return choice.estimate
    agree, both = _masks(columns, schema)
    return estimate(schema, columns.left, columns.ref, agree, both, links=links)


def choose_link(columns: PairColumns, schema: LinkageSchema) -> LinkRuleChoice:
    """The link rule ``links="auto"`` takes for these pairs
    (:func:`~xlink.linkage.link_rule.choose_link_rule` over :func:`_masks`)."""
    try:
        agree, both = _masks(columns, schema)
    except EstimationError as exc:
        return LinkRuleChoice(ONE_TO_ONE, 0, 0, 0, None, str(exc), str(exc))
    return choose_link_rule(schema, columns.left, columns.ref, agree, both)


def _masks(
    columns: PairColumns, schema: LinkageSchema
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Each pair's agreeing keys and the keys both records have, as bit masks in schema
    order (local records coded by id: an estimate depends on the grouping, not the codes)."""
    if len(schema.key_names) > 62:  # before the masks outgrow 64-bit integers
        raise EstimationError(f"{len(schema.key_names)} keys; at most 62 can be estimated")
    bit = {name: 1 << i for i, name in enumerate(schema.key_names)}
    agree = np.array([sum(bit[k] for k in a) for a, _ in columns.patterns], dtype=np.int64)
    both = np.array([sum(bit[k] for k in b) for _, b in columns.patterns], dtype=np.int64)
    return agree[columns.pattern], both[columns.pattern]


def reveal_bound_for(schema: LinkageSchema, threshold: float | None = None) -> RevealBound:
    """The minimal-reveal bound (spec xlink-psi-v2 §6.7) that goes with :func:`decide` for
    ``schema`` and ``threshold`` (default: the schema's, as :func:`decide` takes it): a record
    whose matched keys cannot reach the threshold, or (with the schema's
    ``min_evidence_groups``) cannot between them hold the evidence a decision needs
    (:meth:`~xlink.linkage.schema.LinkageSchema.has_evidence`), can never be decided, so it is
    not revealed. Each identifying field group is one bit of :attr:`RevealBound.groups`.
    """
    threshold = schema.decision_threshold(threshold)
    weights = schema.weights()
    disagreement = schema.disagreement_weights()
    agreement = tuple(
        w.agreement if isinstance(w, KeyWeight) else float(w)
        for w in (weights[name] for name in schema.key_names)
    )
    if schema.min_evidence_groups is None:
        return RevealBound(
            agreement, tuple(disagreement[name] for name in schema.key_names), float(threshold)
        )
    bit = {group: 1 << i for i, group in enumerate(sorted(IDENTIFYING_GROUPS, key=_group_name))}
    evidence = schema.key_evidence()
    return RevealBound(
        agreement,
        tuple(disagreement[name] for name in schema.key_names),
        float(threshold),
        tuple(sum(bit[g] for g in evidence[name]) for name in schema.key_names),
        schema.min_evidence_groups,
    )


def _group_name(group: FieldGroup) -> str:
    return group.value
