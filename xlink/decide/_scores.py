"""How :func:`~xlink.decide.decide` (named `decide` below) scores a pattern and which patterns
are certain, shared by the decision and by :class:`~xlink.decide.OneToOneSieve`."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from xlink._pair_columns import KeySets
from xlink.linkage.estimate import LinkageEstimate
from xlink.linkage.schema import LinkageSchema
from xlink.linkage.scoring import fellegi_sunter_score

__all__ = ["certain_patterns", "pattern_scorer", "pattern_scores"]


def certain_patterns(
    schema: LinkageSchema,
    found: LinkageEstimate | None,
    score: npt.NDArray[np.float64],
    fixed: npt.NDArray[np.float64] | None,
) -> npt.NDArray[np.bool_] | None:
    """Which patterns are certain enough to be decided beside rival pairs: at or above the
    schema's ``certain_threshold`` and, with an estimate, at or above the estimate's
    ``certain`` as well. The schema's bound holds with estimated weights too: a partner shapes
    the estimate (the prior that sets its certain threshold, the non-matches it learns from)
    and could otherwise make ties escape the link rule; it cannot move the signed schema. None
    when the schema has no certain threshold: the link rule alone decides."""
    if schema.certain_threshold is None:
        return None
    if found is None:
        certain: npt.NDArray[np.bool_] = score >= schema.certain_threshold
        return certain
    assert fixed is not None
    both: npt.NDArray[np.bool_] = (score >= found.certain) & (fixed >= schema.certain_threshold)
    return both


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


def pattern_scores(
    patterns: Sequence[KeySets], score_of: Callable[[frozenset[str], frozenset[str]], float]
) -> npt.NDArray[np.float64]:
    """Each pattern's score (agreeing keys, disagreeing keys: those both records have that did
    not agree), one call per pattern."""
    return np.array([score_of(a, both - a) for a, both in patterns], dtype=np.float64)
