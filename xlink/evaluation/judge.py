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
import io
import os
import tempfile
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from xlink._pair_columns import KeySets, PairColumns, id_codes, pair_columns
from xlink.decide import ESTIMATED, FIXED, Decision, choose_link, decide, pattern_scorer
from xlink.errors import EvaluationError
from xlink.evaluation.datasets import Split
from xlink.evaluation.fitting import (
    MIN_DEV_PRECISION,
    LabelledPair,
    LabelledPairs,
    LinkageQuality,
    choose_thresholds,
    fit_logistic_weights,
    fit_weights,
    quality,
)
from xlink.linkage.link_rule import AUTO
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
LOSSES = (
    "rejected",
    "no_shared_token",
    "below_threshold",
    "too_little_evidence",
    "lost_to_one_to_one",
    "found",
)
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
_CHUNK = 1 << 16  # pairs per block when pairs are turned into rows or objects


@dataclass(frozen=True, slots=True, eq=False)
class Candidates:
    """Candidate pairs held in columns (a :class:`~xlink.decide.CandidateSource` that
    :func:`~xlink.decide.decide` reads without a Python object per pair)."""

    session_id: bytes
    columns: PairColumns

    def __len__(self) -> int:
        return len(self.columns)

    def pair_columns(self) -> PairColumns:
        return self.columns

    def iter_pairs(self) -> Iterator[CandidatePair]:
        c = self.columns
        for start in range(0, len(c), _CHUNK):
            rows = np.arange(start, min(start + _CHUNK, len(c)), dtype=np.int64)
            for left, ref, pattern, handles in zip(
                c.left[rows].tolist(),
                c.ref[rows].tolist(),
                c.pattern[rows].tolist(),
                c.handles_of(rows),
                strict=True,
            ):
                agreeing, both = c.patterns[pattern]
                yield CandidatePair(c.left_ids[left], ref, agreeing, handles, both, both)


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
    true = _member(columns.left, right, columns.left_ids, right_ids, truth)
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


def _member(
    left: npt.NDArray[np.int64],
    right: npt.NDArray[np.int64],
    left_ids: Sequence[str],
    right_ids: Sequence[str],
    links: Iterable[tuple[str, str]],
) -> npt.NDArray[np.bool_]:
    """Whether each pair ``(left_ids[left[i]], right_ids[right[i]])`` is one of ``links``."""
    left_code = {s: i for i, s in enumerate(left_ids)}
    right_code = {s: i for i, s in enumerate(right_ids)}
    width = max(len(right_ids), 1)
    wanted = np.array(
        [
            left_code[a] * width + right_code[b]
            for a, b in links
            if a in left_code and b in right_code
        ],
        dtype=np.int64,
    )
    return np.isin(left * width + right, wanted)


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


_DECISIONS = ("match", "below_threshold", "too_little_evidence", "not_best")


def write_pairs(
    path: Path,
    pairs: LabelledPairs | Sequence[LabelledPair],
    key_names: Sequence[str],
    score: Callable[[frozenset[str], frozenset[str]], float],
    threshold: float,
    decided: set[tuple[str, str]],
    evidence: Callable[[frozenset[str]], bool] | None = None,
) -> None:
    """Write every candidate pair (:data:`PAIR_COLUMNS`), sorted by left then right id,
    atomically and owner-only (the ids are the data set's). ``score`` scores a pattern
    (agreeing keys, disagreeing keys: :func:`~xlink.decide.pattern_scorer`); ``evidence``
    says whether its agreeing keys may decide a pair (the schema's
    :meth:`~xlink.linkage.schema.LinkageSchema.has_evidence`; any, without it). Key lists are
    space-separated; ``decision`` is ``match``, ``below_threshold``, ``too_little_evidence``
    (at or above the threshold, without the schema's evidence) or ``not_best`` (at or
    above the threshold, refused by the link rule); ``true`` is 1 or 0.

    Each distinct id, and each combination of pattern, decision, truth and split, is put in
    CSV form once (by :mod:`csv`, whose quoting is per field); a row joins three of them, and
    rows are written a block at a time, with no Python object held per pair."""
    data = LabelledPairs.of(pairs)
    every = frozenset(key_names)
    refused = np.zeros(len(data.patterns), dtype=np.int64)  # 1 below, 2 no evidence, else 3
    rest: list[str] = []  # per (pattern, decision, true, split): those fields, as CSV
    for j, (keys, disagree_all) in enumerate(data.patterns):
        disagree = disagree_all - keys
        value = score(keys, disagree)
        refused[j] = 1 if value < threshold else 3 if evidence is None or evidence(keys) else 2
        texts = (
            _KEY_SEP.join(sorted(keys)),
            _KEY_SEP.join(sorted(disagree)),
            _KEY_SEP.join(sorted(every - keys - disagree)),
            f"{value:.6g}",
        )
        rest.extend(
            _csv_row((*texts, decision, true, split))
            for decision in _DECISIONS
            for true in (0, 1)
            for split in ("heldout", "dev")
        )
    match = _member(data.left, data.right, data.left_ids, data.right_ids, decided)
    kind = np.where(match, 0, refused[data.pattern])
    kind = ((data.pattern * len(_DECISIONS) + kind) * 2 + data.true) * 2 + data.dev
    del match
    left_rank = id_codes(data.left_ids)[0]
    right_rank = id_codes(data.right_ids)[0]
    order = np.lexsort((right_rank[data.right], left_rank[data.left]))  # stable, as sorted()
    del left_rank, right_rank
    lefts = [_csv_field(i) for i in data.left_ids]
    rights = [_csv_field(i) for i in data.right_ids]
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            out.write(_csv_row(PAIR_COLUMNS) + "\n")
            for start in range(0, len(order), _CHUNK):
                rows = order[start : start + _CHUNK]
                out.write(
                    "".join(
                        f"{lefts[left]},{rights[right]},{rest[k]}\n"
                        for left, right, k in zip(
                            data.left[rows].tolist(),
                            data.right[rows].tolist(),
                            kind[rows].tolist(),
                            strict=True,
                        )
                    )
                )
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _csv_row(fields: Sequence[object]) -> str:
    """``fields`` as one CSV row (the default dialect), without its line end."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(fields)
    return buffer.getvalue()[:-1]


def _csv_field(value: str) -> str:
    """``value`` as a field of a CSV row of several fields (quoted only if it must be)."""
    return _csv_row((value, ""))[:-1]


def read_pairs(
    path: Path, schema: LinkageSchema
) -> tuple[Candidates, tuple[str, ...], Mapping[str, Split]]:
    """A pairs file as candidate pairs (their ``peer_ref`` s index the right ids returned),
    the right ids, and the split of each left id it names. Scores, decisions and truth in
    the file are ignored: they are computed again.

    Raises :class:`~xlink.errors.EvaluationError` for a file that cannot be read, a wrong
    header, or a key the schema does not name (with the line).
    """
    reader = _PairsReader(path.name, frozenset(schema.key_names))
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader.read(csv.reader(handle))
    except OSError as exc:
        reader.check_repeats()
        raise EvaluationError(f"{path.name}: cannot read ({exc.strerror})") from None
    except (UnicodeDecodeError, csv.Error):
        reader.check_repeats()
        raise EvaluationError(f"{path.name}: not a UTF-8 CSV file") from None
    reader.check_repeats()
    return reader.result()


class _PairsReader:
    """:func:`read_pairs` one row at a time into columns. A pair listed twice is found by
    sorting, before any later error is reported (so the first bad line is the one named)."""

    def __init__(self, name: str, names: frozenset[str]) -> None:
        self.name = name
        self.names = names
        self.left_ids: dict[str, int] = {}
        self.right_ids: dict[str, int] = {}
        self.split: dict[str, Split] = {}
        self.left, self.right, self.pattern = array("q"), array("q"), array("q")
        self.kinds: dict[tuple[str, str], int] = {}  # (agreeing, disagreeing) text -> pattern
        self.patterns: dict[KeySets, int] = {}

    def fail(self, line: int, reason: str) -> EvaluationError:
        self.check_repeats()
        return EvaluationError(f"{self.name}: line {line}: {reason}")

    def read(self, rows: Iterator[list[str]]) -> None:
        if tuple(next(rows, ())) != PAIR_COLUMNS:
            raise EvaluationError(f"{self.name}: not a pairs file (wrong header)")
        splits = {s.value: s for s in Split}
        shared: dict[str, frozenset[str]] = {}
        for line, row in enumerate(rows, start=2):
            if len(row) != len(PAIR_COLUMNS) or row[8] not in ("dev", "heldout"):
                raise self.fail(line, "malformed row")
            kind = self.kinds.get((row[2], row[3]))
            if kind is None:
                agree = shared.setdefault(row[2], frozenset(row[2].split()))
                disagree = shared.setdefault(row[3], frozenset(row[3].split()))
                if not (agree | disagree) <= self.names:
                    raise self.fail(line, "a key the schema does not name")
                both = agree | disagree
                kind = self.patterns.setdefault((agree, both), len(self.patterns))
                self.kinds[(row[2], row[3])] = kind
            self.left.append(self.left_ids.setdefault(row[0], len(self.left_ids)))
            self.right.append(self.right_ids.setdefault(row[1], len(self.right_ids)))
            self.pattern.append(kind)
            split = splits[row[8]]
            if self.split.setdefault(row[0], split) is not split:
                raise self.fail(line, "a left record in two splits")

    def check_repeats(self) -> None:
        """Raise for the first line that repeats an earlier line's pair, if any."""
        if len(self.left) < 2:
            return
        left = np.frombuffer(self.left, dtype=np.int64)
        right = np.frombuffer(self.right, dtype=np.int64)
        key = left * len(self.right_ids) + right
        order = np.argsort(key, kind="stable")
        ordered = key[order]
        again = np.flatnonzero(ordered[1:] == ordered[:-1]) + 1
        if len(again):
            line = int(order[again].min()) + 2
            raise EvaluationError(f"{self.name}: line {line}: a pair listed twice")

    def result(self) -> tuple[Candidates, tuple[str, ...], Mapping[str, Split]]:
        ranks, left_ids = id_codes(list(self.left_ids))
        n = len(self.left)
        columns = PairColumns(
            left=ranks[np.frombuffer(self.left, dtype=np.int64)] if n else _none(),
            left_ids=left_ids,
            ref=np.frombuffer(self.right, dtype=np.int64).copy() if n else _none(),
            pattern=np.frombuffer(self.pattern, dtype=np.int64).copy() if n else _none(),
            patterns=tuple(self.patterns),
            handles_of=_no_handles,
        )
        return Candidates(b"", columns), tuple(self.right_ids), self.split


def _none() -> npt.NDArray[np.int64]:
    return np.zeros(0, dtype=np.int64)


def _no_handles(rows: npt.NDArray[np.int64]) -> list[tuple[bytes, ...]]:
    return [()] * len(rows)
