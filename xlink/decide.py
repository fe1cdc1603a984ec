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
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from xlink.errors import EstimationError
from xlink.linkage.estimate import LinkageEstimate, estimate
from xlink.linkage.schema import LinkageSchema
from xlink.linkage.scoring import (
    LINK_RULES,
    ONE_TO_ONE,
    KeyWeight,
    decide_matches,
    fellegi_sunter_score,
)
from xlink.protocol.bound import RevealBound
from xlink.protocol.events import CandidatePair

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ESTIMATED",
    "FIXED",
    "WEIGHTS",
    "CandidateSource",
    "DecidedMatch",
    "Decision",
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
    """Why estimated weights were asked for and fixed ones used (too few pairs)."""
    links: str = ONE_TO_ONE
    """The link rule the matches were kept by."""

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
    candidate pairs (:func:`~xlink.linkage.estimate.estimate`, no labels; there is no certain
    threshold, and ``threshold``, if given, is a floor on the *schema's own* score: a pair
    below it is never decided, whatever the estimate says, since a partner's records shape
    the estimate and cannot move the schema) and records the estimate in
    :attr:`Decision.estimate`; when the session has too few pairs to estimate from, it decides
    with the fixed weights and says why in :attr:`Decision.estimate_note`. ``links`` is the
    link rule (:data:`~xlink.linkage.scoring.LINK_RULES`): one-to-one, or best of either
    record for a list that holds a person several times.

    Raises ``KeyError`` if a pair agrees or disagrees on a key the schema does not name (the two
    parties used different schemas, which the handshake's schema digest should have caught),
    ``ValueError`` for another ``weights`` or ``links``.
    """
    if weights not in (FIXED, ESTIMATED):
        raise ValueError(f"unknown weights {weights!r}")
    if links not in LINK_RULES:
        raise ValueError(f"unknown link rule {links!r}")
    found: LinkageEstimate | None = None
    note: str | None = None
    floor: float | None = None
    certain = schema.certain_threshold
    if weights == ESTIMATED:
        try:
            found = _estimate(result.iter_pairs(), schema, links)
        except EstimationError as exc:
            note = f"fixed weights: {exc}"
            # the schema's threshold, the caller's still a floor under it
            if schema.threshold is not None:
                threshold = max(schema.threshold, -math.inf if threshold is None else threshold)
        else:
            # The caller's threshold (an MOU's match_threshold) stays a floor, on the schema's
            # own weights: the estimate learns from pairs a partner's records make, so what a
            # partner cannot move is what bounds it.
            floor, threshold, certain = threshold, found.threshold, None
    if threshold is None:
        threshold = schema.threshold if schema.threshold is not None else 1.0
    score_of = pattern_scorer(schema, found)
    fixed_of = pattern_scorer(schema) if found is not None else None
    by_ref: dict[tuple[str, str], tuple[int, frozenset[str], tuple[bytes, ...], frozenset[str]]]
    by_ref = {}
    every_key = frozenset(schema.key_names)
    scored: list[tuple[str, str, frozenset[str], float]] = []
    # Scores depend only on the pattern; a session has few patterns and may have millions of
    # pairs, and the key sets of one pattern are shared objects (PairTable builds each once).
    by_pattern: dict[tuple[frozenset[str], frozenset[str], frozenset[str]], float] = {}
    fixed_by_pattern: dict[tuple[frozenset[str], frozenset[str], frozenset[str]], float] = {}
    fixed_scores: dict[tuple[str, str], float] = {}  # by pair, with estimated weights only
    candidates = 0
    for pair in result.iter_pairs():
        candidates += 1
        peer = str(pair.peer_ref)
        by_ref[(pair.local_record_id, peer)] = (
            pair.peer_ref,
            pair.agreeing_keys,
            pair.handles,
            pair.disagreeing_keys,
        )
        pattern = (pair.agreeing_keys, pair.local_keys, pair.peer_keys)
        score = by_pattern.get(pattern)
        if score is None:
            score = by_pattern[pattern] = score_of(pair.agreeing_keys, pair.disagreeing_keys)
        if fixed_of is not None:
            fixed = fixed_by_pattern.get(pattern)
            if fixed is None:
                fixed = fixed_by_pattern[pattern] = fixed_of(
                    pair.agreeing_keys, pair.disagreeing_keys
                )
            if floor is not None and fixed < floor:
                continue  # below the MOU's floor on the schema's own weights: never a match
            fixed_scores[(pair.local_record_id, peer)] = fixed
        scored.append((pair.local_record_id, peer, pair.agreeing_keys, score))
    matches = []
    for kept in decide_matches(scored, threshold, certain, links):
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


def pattern_scorer(
    schema: LinkageSchema, found: LinkageEstimate | None = None
) -> Callable[[frozenset[str], frozenset[str]], float]:
    """How :func:`decide` scores a pattern (agreeing keys, disagreeing keys): with the
    estimate's pattern scores when there is one, else the schema's weights
    (:func:`~xlink.linkage.scoring.fellegi_sunter_score`)."""
    if found is not None:
        return lambda agreeing, disagreeing: found.score(agreeing, agreeing | disagreeing)
    key_weights = schema.weights()
    disagreement = schema.disagreement_weights()
    return lambda agreeing, disagreeing: fellegi_sunter_score(
        agreeing, key_weights, disagreeing, disagreement
    )


def _estimate(pairs: Iterable[CandidatePair], schema: LinkageSchema, links: str) -> LinkageEstimate:
    """:func:`~xlink.linkage.estimate.estimate` over ``pairs``: records coded by first
    appearance on each side, key sets as bit masks in schema order."""
    if len(schema.key_names) > 62:  # before the masks outgrow 64-bit integers
        raise EstimationError(f"{len(schema.key_names)} keys; at most 62 can be estimated")
    bit = {name: 1 << i for i, name in enumerate(schema.key_names)}
    mask_of: dict[frozenset[str], int] = {}

    def mask(keys: frozenset[str]) -> int:
        value = mask_of.get(keys)
        if value is None:
            value = mask_of[keys] = sum(bit[k] for k in keys)
        return value

    local_code: dict[str, int] = {}
    left: list[int] = []
    right: list[int] = []
    agree: list[int] = []
    present: list[int] = []
    for p in pairs:
        left.append(local_code.setdefault(p.local_record_id, len(local_code)))
        right.append(p.peer_ref)
        agree.append(mask(p.agreeing_keys))
        present.append(mask(p.local_keys & p.peer_keys))
    return estimate(schema, left, right, agree, present, links=links)


def reveal_bound_for(schema: LinkageSchema, threshold: float | None = None) -> RevealBound:
    """The minimal-reveal bound (spec xlink-psi-v2 §6.7) that goes with :func:`decide` for
    ``schema`` and ``threshold`` (default: the schema's, as :func:`decide` takes it): a record
    whose matched keys cannot reach the threshold can never be decided, so it is not revealed.
    """
    if threshold is None:
        threshold = schema.threshold if schema.threshold is not None else 1.0
    weights = schema.weights()
    disagreement = schema.disagreement_weights()
    agreement = tuple(
        w.agreement if isinstance(w, KeyWeight) else float(w)
        for w in (weights[name] for name in schema.key_names)
    )
    return RevealBound(
        agreement, tuple(disagreement[name] for name in schema.key_names), float(threshold)
    )
