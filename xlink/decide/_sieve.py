"""The one-to-one decision's candidates, a group of local records at a time: what a caller
holding more pairs than it should (a partner making one token match a great many of its
records) keeps (xlink-query-v1 §7.4)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from xlink._pair_columns import PairColumns
from xlink.decide._scores import certain_patterns, pattern_scorer, pattern_scores
from xlink.linkage.schema import LinkageSchema
from xlink.linkage.scoring import best_once

__all__ = ["OneToOneSieve"]


class OneToOneSieve:
    """The candidate pairs :func:`decide` could keep with fixed weights, ``threshold`` and the
    one-to-one rule, found a group of local records at a time, so that a caller with more
    pairs than it should hold at once (a partner that makes one token match a great many of
    its records) keeps only those: at or above the threshold with the schema's evidence, and
    either certain or the only best of both their records (ties refused). The others are never
    decided, and setting them aside changes no other pair's fate: :func:`decide` on the pairs
    :meth:`keeps` leaves gives the same matches as on them all.

    :meth:`sift` each group (every pair of its local records, each pair once, the records' ids
    distinct; the peer references number ``peers`` peer records from 0) and keep what it
    returns; then :meth:`keeps` says which of those to decide, once every group has been sifted.
    For :func:`decide` with ``weights=FIXED`` and ``links=ONE_TO_ONE`` only."""

    def __init__(self, schema: LinkageSchema, threshold: float | None, peers: int) -> None:
        self._schema, self._threshold = schema, schema.decision_threshold(threshold)
        self._best = np.full(peers, -np.inf)  # each peer record's best usable score so far
        self._ties = np.zeros(peers, dtype=np.int64)  # and how many pairs have it

    def sift(
        self, columns: PairColumns
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """For each pair of the group: whether it may still be kept (usable, and certain or
        the only best of its local record), its score and whether it is certain."""
        patterns = columns.patterns
        score_of = pattern_scores(patterns, pattern_scorer(self._schema))
        evidence = np.array([self._schema.has_evidence(a) for a, _ in patterns], dtype=np.bool_)
        certain_of = certain_patterns(self._schema, None, score_of, None)
        if certain_of is None:
            certain_of = np.zeros(len(patterns), dtype=np.bool_)
        score, certain = score_of[columns.pattern], certain_of[columns.pattern]
        rows = np.flatnonzero(((score_of >= self._threshold) & evidence)[columns.pattern])
        kept = np.zeros(len(columns), dtype=np.bool_)
        if len(rows):
            self._note(columns.ref[rows], score[rows])
            kept[rows] = best_once(columns.left[rows], score[rows]) | certain[rows]
        return kept, score, certain

    def _note(self, ref: npt.NDArray[np.int64], score: npt.NDArray[np.float64]) -> None:
        best = np.full(len(self._best), -np.inf)
        np.maximum.at(best, ref, score)
        ties = np.bincount(ref[score == best[ref]], minlength=len(best))
        new = np.maximum(self._best, best)
        self._ties = np.where(self._best == new, self._ties, 0) + np.where(best == new, ties, 0)
        self._best = new

    def keeps(
        self,
        ref: npt.NDArray[np.int64],
        score: npt.NDArray[np.float64],
        certain: npt.NDArray[np.bool_],
    ) -> npt.NDArray[np.bool_]:
        """Which of the pairs :meth:`sift` kept (their peer references, scores and certainty)
        :func:`decide` may keep: certain, or the only best of their peer record too."""
        kept: npt.NDArray[np.bool_] = certain | (
            (score == self._best[ref]) & (self._ties[ref] == 1)
        )
        return kept
