"""Deciding a session's candidate pairs and judging the decisions against the truth
(docs/evaluation.md §5).

:func:`judge` is the part of an evaluation after the PSI: weights are fitted on the
development split, or estimated without labels, or taken from the schema; matches are decided
by :func:`xlink.decide.decide` (the path ``xlink serve``/``xlink match`` use); precision, recall
and F1 are counted per split, and every true link that was not found is put down to one cause
(:data:`LOSSES`). The candidate pairs can be written to a CSV file, one row per pair with its
pattern, score, decision and truth (:func:`write_pairs`), and read back to decide them again
with other weights without running the PSI again (:func:`read_pairs`).
"""

from __future__ import annotations

import contextlib
import csv
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from xlink.decide import ESTIMATED, FIXED, Decision, decide, pattern_scorer
from xlink.errors import EvaluationError
from xlink.evaluation.datasets import Split
from xlink.evaluation.fitting import (
    MIN_DEV_PRECISION,
    LabelledPair,
    LinkageQuality,
    choose_thresholds,
    fit_logistic_weights,
    fit_weights,
    quality,
)
from xlink.linkage.schema import LinkageSchema
from xlink.linkage.scoring import ONE_TO_ONE
from xlink.protocol.events import CandidatePair

__all__ = [
    "FITS",
    "LOSSES",
    "PAIR_COLUMNS",
    "Candidates",
    "judge",
    "read_pairs",
    "write_pairs",
]

#: How weights may be chosen: fitted on the development split (``logistic``,
#: ``fellegi-sunter``), the schema's own, or estimated per session without labels.
FITS = ("logistic", "fellegi-sunter", "schema", "estimated")
#: Where a true link can be lost, in pipeline order, then found.
LOSSES = ("rejected", "no_shared_token", "below_threshold", "lost_to_one_to_one", "found")
#: Columns of a pairs file.
PAIR_COLUMNS = (
    "left_id",
    "right_id",
    "agreeing",
    "disagreeing",
    "missing",
    "score",
    "decision",
    "true",
    "split",
)
_KEY_SEP = " "


@dataclass(frozen=True, slots=True)
class Candidates:
    """Candidate pairs held in a list (a :class:`~xlink.decide.CandidateSource`)."""

    session_id: bytes
    pairs: tuple[CandidatePair, ...]

    def iter_pairs(self) -> Iterator[CandidatePair]:
        return iter(self.pairs)


def _figures(q: LinkageQuality) -> dict[str, Any]:
    out = asdict(q)
    for key in ("precision", "recall", "f1"):
        out[key] = round(out[key], 5)
    return out


def _fit(
    fit: str,
    schema: LinkageSchema,
    pairs: Sequence[LabelledPair],
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
    (:data:`~xlink.linkage.scoring.LINK_RULES`).

    Returns the figures (held-out ``precision``/``recall``/``f1`` at the top, the same under
    ``dev`` and ``all``, ``losses`` of the true links, ``estimate`` for estimated weights), the
    schema that decided and the decision. Raises ``ValueError`` for an unknown ``fit`` and
    :class:`~xlink.errors.EvaluationError` when fitting needs true and false development pairs
    and lacks them.
    """
    if fit not in FITS:
        raise ValueError(f"unknown fit {fit!r}")
    pairs = list(candidates.iter_pairs())
    labelled = [
        LabelledPair(
            p.local_record_id,
            right_id(p.peer_ref),
            p.agreeing_keys,
            (p.local_record_id, right_id(p.peer_ref)) in truth,
            split_of(p.local_record_id) is Split.DEV,
            disagree=p.disagreeing_keys,
        )
        for p in pairs
    ]
    by_split = {split: {t for t in truth if split_of(t[0]) is split} for split in Split}
    if fit == ESTIMATED:
        decision = decide(candidates, schema, weights=ESTIMATED, links=links)
    else:
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
        decision = decide(candidates, schema, weights=FIXED, links=links)
    decided = {(m.local_record_id, right_id(m.peer_ref)) for m in decision.matches}
    scorer = pattern_scorer(schema, decision.estimate)

    def score(p: LabelledPair) -> float:
        return scorer(p.keys, p.disagree - p.keys)

    figures_by = {
        split: quality((d for d in decided if split_of(d[0]) is split), by_split[split])
        for split in Split
    }
    figures: dict[str, Any] = {
        **_figures(figures_by[Split.HELDOUT]),
        "dev": _figures(figures_by[Split.DEV]),
        "all": _figures(quality(decided, set(truth))),
        "losses": _losses(labelled, decided, truth, loaded, score, decision.threshold),
        "weights": fit,
        "links": links,
        "threshold": decision.threshold,
        "certain_threshold": None if decision.estimate is not None else schema.certain_threshold,
    }
    if decision.estimate is not None:
        figures["estimate"] = decision.estimate.to_dict()
    if decision.estimate_note is not None:
        figures["estimate_note"] = decision.estimate_note
    if pairs_path is not None:
        write_pairs(pairs_path, labelled, schema.key_names, score, decision.threshold, decided)
    return figures, schema, decision


def _losses(
    pairs: Sequence[LabelledPair],
    decided: set[tuple[str, str]],
    truth: frozenset[tuple[str, str]],
    loaded: tuple[frozenset[str], frozenset[str]] | None,
    score: Callable[[LabelledPair], float],
    threshold: float,
) -> dict[str, int]:
    """Each true link counted once, under the first stage that lost it; and the false
    matches. Without ``loaded``, ``rejected`` is folded into ``no_shared_token``."""
    candidate = {(p.left_id, p.right_id): score(p) for p in pairs if p.true}
    counts = dict.fromkeys(LOSSES, 0)
    for link in truth:
        if link in decided:
            counts["found"] += 1
        elif loaded is not None and (link[0] not in loaded[0] or link[1] not in loaded[1]):
            counts["rejected"] += 1
        elif link not in candidate:
            counts["no_shared_token"] += 1
        elif candidate[link] < threshold:
            counts["below_threshold"] += 1
        else:
            counts["lost_to_one_to_one"] += 1
    return {**counts, "false_matches": len(decided - truth)}


def write_pairs(
    path: Path,
    pairs: Sequence[LabelledPair],
    key_names: Sequence[str],
    score: Callable[[LabelledPair], float],
    threshold: float,
    decided: set[tuple[str, str]],
) -> None:
    """Write every candidate pair (:data:`PAIR_COLUMNS`), atomically and owner-only (the ids
    are the data set's). Key lists are space-separated; ``decision`` is ``match``,
    ``below_threshold`` or ``not_best`` (at or above the threshold, refused by the one-to-one
    step); ``true`` is 1 or 0."""
    every = frozenset(key_names)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(PAIR_COLUMNS)
            for p in sorted(pairs, key=lambda p: (p.left_id, p.right_id)):
                value = score(p)
                if (p.left_id, p.right_id) in decided:
                    decision = "match"
                elif value < threshold:
                    decision = "below_threshold"
                else:
                    decision = "not_best"
                disagree = p.disagree - p.keys
                writer.writerow(
                    (
                        p.left_id,
                        p.right_id,
                        _KEY_SEP.join(sorted(p.keys)),
                        _KEY_SEP.join(sorted(disagree)),
                        _KEY_SEP.join(sorted(every - p.keys - disagree)),
                        f"{value:.6g}",
                        decision,
                        int(p.true),
                        "dev" if p.dev else "heldout",
                    )
                )
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_pairs(
    path: Path, schema: LinkageSchema
) -> tuple[Candidates, tuple[str, ...], Mapping[str, Split]]:
    """A pairs file as candidate pairs (their ``peer_ref`` indexes the right ids returned),
    the right ids, and the split of each left id it names. Scores, decisions and truth in
    the file are ignored: they are computed again.

    Raises :class:`~xlink.errors.EvaluationError` for a file that cannot be read, a wrong
    header, or a key the schema does not name (with the line).
    """
    names = frozenset(schema.key_names)
    right_ids: dict[str, int] = {}
    split: dict[str, Split] = {}
    out: list[CandidatePair] = []
    shared: dict[str, frozenset[str]] = {}
    seen: set[tuple[str, str]] = set()
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            rows = csv.reader(handle)
            if tuple(next(rows, ())) != PAIR_COLUMNS:
                raise EvaluationError(f"{path.name}: not a pairs file (wrong header)")
            for line, row in enumerate(rows, start=2):
                if len(row) != len(PAIR_COLUMNS) or row[8] not in ("dev", "heldout"):
                    raise EvaluationError(f"{path.name}: line {line}: malformed row")
                agree = shared.setdefault(row[2], frozenset(row[2].split()))
                disagree = shared.setdefault(row[3], frozenset(row[3].split()))
                if not (agree | disagree) <= names:
                    raise EvaluationError(
                        f"{path.name}: line {line}: a key the schema does not name"
                    )
                if (row[0], row[1]) in seen:
                    raise EvaluationError(f"{path.name}: line {line}: a pair listed twice")
                seen.add((row[0], row[1]))
                if split.get(row[0], Split(row[8])) is not Split(row[8]):
                    raise EvaluationError(f"{path.name}: line {line}: a left record in two splits")
                ref = right_ids.setdefault(row[1], len(right_ids))
                both = agree | disagree
                out.append(CandidatePair(row[0], ref, agree, (), both, both))
                split[row[0]] = Split(row[8])
    except OSError as exc:
        raise EvaluationError(f"{path.name}: cannot read ({exc.strerror})") from None
    except (UnicodeDecodeError, csv.Error):
        raise EvaluationError(f"{path.name}: not a UTF-8 CSV file") from None
    return Candidates(b"", tuple(out)), tuple(right_ids), split
