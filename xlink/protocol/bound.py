"""The minimal-reveal bound (spec: xlink-psi-v2 §6.7): which records can still reach the MOU's
threshold, whatever the peer's record holds."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["RevealBound"]


@dataclass(frozen=True, slots=True)
class RevealBound:
    """What a minimal reveal needs (spec §6.7): per key of the schema, in schema order, its
    agreement weight and its disagreement weight (0 when it has none), and the MOU's match
    threshold. A record is revealed only if the best score any peer record could give it,
    given which of its keys matched, reaches the threshold, and, with ``min_groups``, its
    matched keys hold the evidence a decision needs."""

    agreement: tuple[float, ...]
    disagreement: tuple[float, ...]
    threshold: float
    groups: tuple[int, ...] = ()
    """Per key, in schema order, the kinds of evidence it holds as bits (any bit per kind:
    :meth:`~xlink.linkage.schema.LinkageSchema.key_evidence`); empty with ``min_groups`` 0."""
    min_groups: int = 0
    """How many kinds a record's matched keys must hold between them (the schema's
    ``min_evidence_groups``): agreement on fewer can never decide a pair, so such a record is
    not revealed either. 0: no such condition."""

    def reaches(self, matched: frozenset[int]) -> bool:
        """Whether a record whose matched keys are ``matched`` can be in a decided pair: its
        :meth:`upper_bound` reaches the threshold and its matched keys hold at least
        ``min_groups`` groups."""
        if self.upper_bound(matched) < self.threshold:
            return False
        if self.min_groups == 0:
            return True
        drawn = 0
        for k in matched:
            drawn |= self.groups[k]
        return drawn.bit_count() >= self.min_groups

    def upper_bound(self, matched: frozenset[int]) -> float:
        """The highest score a pair of a record whose matched keys are ``matched`` can have:
        a matched key may agree, disagree or be missing on the peer's side; any other key may
        disagree or be missing. Summed with ``math.fsum`` (order-free, as scoring is)."""
        return math.fsum(
            max(a, d, 0.0) if k in matched else max(d, 0.0)
            for k, (a, d) in enumerate(zip(self.agreement, self.disagreement, strict=True))
        )
