"""Deciding a session's candidate pairs and judging the decisions against the truth
(docs/evaluation.md §5).

:func:`judge` is the part of an evaluation after the PSI: weights are fitted on the
development split, or estimated without labels, or taken from the schema; matches are decided
by :func:`xlink.decide.decide` (the path ``xlink serve``/``xlink match`` use); precision, recall
and F1 are counted per split, and every true link that was not found is put down to one cause
(:data:`LOSSES`). The candidate pairs can be written to a CSV file, one row per pair with its
pattern, score, decision and truth (:func:`~xlink.evaluation.pairs_file.write_pairs`), and
read back to decide them again with other weights without running the PSI again
(:func:`~xlink.evaluation.pairs_file.read_pairs`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from xlink._pair_columns import PairColumns, id_codes, pair_columns
from xlink.decide import ESTIMATED, FIXED, Decision, choose_link, decide, pattern_scorer
from xlink.evaluation.datasets import Split
from xlink.evaluation.fitting import (
    MIN_DEV_PRECISION,
    LabelledPairs,
    LinkageQuality,
    choose_thresholds,
    fit_logistic_weights,
    fit_weights,
    quality,
)
from xlink.evaluation.pairs_file import Candidates, pair_membership, write_pairs
from xlink.linkage.link_rule import AUTO
from xlink.linkage.schema import LinkageSchema
from xlink.linkage.scoring import ONE_TO_ONE

__all__ = ["FITS", "FITTED", "LOSSES", "judge"]

#: How weights may be chosen: fitted on the development split (``logistic``,
#: ``fellegi-sunter``), the schema's own, or estimated per session without labels.
FITS = ("logistic", "fellegi-sunter", "schema", "estimated")
#: Those of :data:`FITS` fitted on labelled development pairs.
FITTED = ("logistic", "fellegi-sunter")
#: Where a true link can be lost, in pipeline order, then found.
LOSSES = (
    "rejected",
    "no_shared_token",
    "below_threshold",
    "too_little_evidence",
    "lost_to_one_to_one",
    "found",
)


def _figures(q: LinkageQuality) -> dict[str, Any]:
    out = asdict(q)
    for key in ("precision", "recall", "f1"):
        out[key] = round(out[key], 5)
    return out


def _fit(
    fit: str,
    schema: LinkageSchema,
    pairs: LabelledPairs,
    dev_truth: int,
    dev_left: int,
    right_records: int,
    precision_floor: float,
    links: str,
) -> LinkageSchema:
    if fit == "logistic":
        schema = fit_logistic_weights(schema, pairs)
    elif fit == "fellegi-sunter":
        schema = fit_weights(
            schema,
            pairs,
            dev_true_links=dev_truth,
            dev_left_records=dev_left,
            right_records=right_records,
        )
    return choose_thresholds(pairs, schema, dev_truth, min_precision=precision_floor, links=links)


def judge(
    candidates: Any,
    right_id: Callable[[int], str],
    truth: frozenset[tuple[str, str]],
    split_of: Callable[[str], Split],
    schema: LinkageSchema,
    *,
    fit: str,
    right_records: int,
    dev_left: int,
    loaded: tuple[frozenset[str], frozenset[str]] | None = None,
    precision_floor: float = MIN_DEV_PRECISION,
    pairs_path: Path | None = None,
    links: str = ONE_TO_ONE,
) -> tuple[dict[str, Any], LinkageSchema, Decision]:
    """Decide ``candidates`` (a :class:`~xlink.decide.CandidateSource` whose ``peer_ref`` s
    ``right_id`` turns into right record ids) and judge the matches against ``truth``.

    ``fit`` is one of :data:`FITS`; the fitted ones choose their threshold at
    ``precision_floor`` on the development split. ``loaded`` (the ids each side loaded), when
    known, separates true links lost to rejected rows from those with no shared token. Writes
    the pairs file to ``pairs_path`` if given. ``links`` is the link rule
    (:data:`~xlink.linkage.scoring.LINK_RULES`) or :data:`~xlink.linkage.link_rule.AUTO`: the
    rule is then chosen from the pairs before any fitting, and the figures hold
    ``link_choice``.

    Returns the figures (held-out ``precision``/``recall``/``f1`` at the top, the same under
    ``dev`` and ``all``, ``losses`` of the true links, ``estimate`` for estimated weights), the
    schema that decided and the decision. Raises ``ValueError`` for an unknown ``fit`` and
    :class:`~xlink.errors.EvaluationError` when fitting needs true and false development pairs
    and lacks them.
    """
    if fit not in FITS:
        raise ValueError(f"unknown fit {fit!r}")
    columns = pair_columns(candidates)
    source = Candidates(candidates.session_id, columns)
    labelled = _labelled(columns, right_id, truth, split_of)
    by_split = {split: {t for t in truth if split_of(t[0]) is split} for split in Split}
    if fit == ESTIMATED:
        decision = decide(source, schema, weights=ESTIMATED, links=links)
    else:
        choice = choose_link(columns, schema) if links == AUTO else None
        if choice is not None:  # the fitted threshold is chosen under the rule chosen
            links = choice.links
        if fit != "schema":
            schema = _fit(
                fit,
                schema,
                labelled,
                len(by_split[Split.DEV]),
                dev_left,
                right_records,
                precision_floor,
                links,
            )
        decision = replace(decide(source, schema, weights=FIXED, links=links), link_choice=choice)
    del source, columns
    decided = {(m.local_record_id, right_id(m.peer_ref)) for m in decision.matches}
    scorer = pattern_scorer(schema, decision.estimate)
    scores = _scores(labelled, scorer)
    figures_by = {
        split: quality((d for d in decided if split_of(d[0]) is split), by_split[split])
        for split in Split
    }
    figures: dict[str, Any] = {
        **_figures(figures_by[Split.HELDOUT]),
        "dev": _figures(figures_by[Split.DEV]),
        "all": _figures(quality(decided, set(truth))),
        "losses": _losses(
            labelled, scores, decided, truth, loaded, decision.threshold, schema.has_evidence
        ),
        "weights": fit,
        "links": decision.links,
        "threshold": decision.threshold,
        "certain_threshold": schema.certain_threshold,
    }
    if decision.estimate is not None:
        figures["estimate"] = decision.estimate.to_dict()
    if decision.estimate_note is not None:
        figures["estimate_note"] = decision.estimate_note
    if decision.link_choice is not None:
        figures["link_choice"] = decision.link_choice.to_dict()
    if pairs_path is not None:
        write_pairs(
            pairs_path,
            labelled,
            schema.key_names,
            scorer,
            decision.threshold,
            decided,
            schema.has_evidence,
        )
    return figures, schema, decision


def _labelled(
    columns: PairColumns,
    right_id: Callable[[int], str],
    truth: frozenset[tuple[str, str]],
    split_of: Callable[[str], Split],
) -> LabelledPairs:
    """The candidate pairs as the evaluator sees them: right ids resolved (once per peer
    reference), truth and split attached, in columns."""
    refs = np.unique(columns.ref)
    codes, right_ids = id_codes([right_id(r) for r in refs.tolist()])
    right = codes[np.searchsorted(refs, columns.ref)]
    del refs, codes
    true = pair_membership(columns.left, right, columns.left_ids, right_ids, truth)
    dev_of = np.array([split_of(i) is Split.DEV for i in columns.left_ids], dtype=np.bool_)
    return LabelledPairs(
        left=columns.left,
        right=right,
        pattern=columns.pattern,
        patterns=tuple((agreeing, both - agreeing) for agreeing, both in columns.patterns),
        true=true,
        dev=dev_of[columns.left],
        left_ids=columns.left_ids,
        right_ids=right_ids,
    )


def _scores(
    pairs: LabelledPairs, scorer: Callable[[frozenset[str], frozenset[str]], float]
) -> npt.NDArray[np.float64]:
    """Each pattern's score (agreeing keys, disagreeing keys)."""
    return np.array([scorer(k, d - k) for k, d in pairs.patterns], dtype=np.float64)


def _losses(
    pairs: LabelledPairs,
    scores: npt.NDArray[np.float64],
    decided: set[tuple[str, str]],
    truth: frozenset[tuple[str, str]],
    loaded: tuple[frozenset[str], frozenset[str]] | None,
    threshold: float,
    evidence: Callable[[frozenset[str]], bool],
) -> dict[str, int]:
    """Each true link counted once, under the first stage that lost it; and the false
    matches. Without ``loaded``, ``rejected`` is folded into ``no_shared_token``.
    ``scores`` are the patterns' scores; ``evidence`` says whether a pattern's agreeing keys
    may decide a pair (:meth:`~xlink.linkage.schema.LinkageSchema.has_evidence`)."""
    candidate = {
        (pairs.left_ids[pairs.left[i]], pairs.right_ids[pairs.right[i]]): (
            float(scores[pairs.pattern[i]]),
            pairs.patterns[pairs.pattern[i]][0],
        )
        for i in np.flatnonzero(pairs.true).tolist()
    }
    counts = dict.fromkeys(LOSSES, 0)
    for link in truth:
        if link in decided:
            counts["found"] += 1
        elif loaded is not None and (link[0] not in loaded[0] or link[1] not in loaded[1]):
            counts["rejected"] += 1
        elif link not in candidate:
            counts["no_shared_token"] += 1
        elif candidate[link][0] < threshold:
            counts["below_threshold"] += 1
        elif not evidence(candidate[link][1]):
            counts["too_little_evidence"] += 1
        else:
            counts["lost_to_one_to_one"] += 1
    return {**counts, "false_matches": len(decided - truth)}
