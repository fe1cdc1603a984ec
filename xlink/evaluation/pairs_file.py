"""The pairs file of an evaluation (docs/evaluation.md §5): every candidate pair of a session,
one CSV row each with its pattern, score, decision and truth (:func:`write_pairs`), read back
as columns to be decided again with other weights without running the PSI
(:func:`read_pairs`); and :class:`Candidates`, candidate pairs held in columns."""

from __future__ import annotations

import csv
import io
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from xlink._files import written_whole
from xlink._pair_columns import KeySets, PairColumns, id_codes
from xlink.errors import EvaluationError
from xlink.evaluation.datasets import Split
from xlink.evaluation.fitting import LabelledPair, LabelledPairs
from xlink.linkage.schema import LinkageSchema
from xlink.protocol.events import CandidatePair

__all__ = ["PAIR_COLUMNS", "Candidates", "pair_membership", "read_pairs", "write_pairs"]

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


def pair_membership(
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
    match = pair_membership(data.left, data.right, data.left_ids, data.right_ids, decided)
    kind = np.where(match, 0, refused[data.pattern])
    kind = ((data.pattern * len(_DECISIONS) + kind) * 2 + data.true) * 2 + data.dev
    del match
    left_rank = id_codes(data.left_ids)[0]
    right_rank = id_codes(data.right_ids)[0]
    order = np.lexsort((right_rank[data.right], left_rank[data.left]))  # stable, as sorted()
    del left_rank, right_rank
    lefts = [_csv_field(i) for i in data.left_ids]
    rights = [_csv_field(i) for i in data.right_ids]
    with written_whole(path) as out:
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
