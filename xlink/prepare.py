"""Prepare one agency's side of an exchange: load every file, validate, derive match tokens.

This is the recipe layer (DESIGN.md §2 steps 1-2) that the CLI, the demo and the examples share:
one call from file paths to a :class:`PreparedSide`, with every bad row kept in a rejects file
and every bad field left out of a kept record listed in a field-errors file.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from xlink.errors import LoadError
from xlink.identifiers import UNSAFE_TEXT
from xlink.linkage.schema import LinkageSchema, load_default_schema
from xlink.linkage.tokens import TokenSet
from xlink.progress import ProgressFn, count_progress
from xlink.protocol.hashed import HashedTokens
from xlink.records._parsers import FUTURE_DATE, born_after
from xlink.records.loaders import BadFieldPolicy, LoadResult, load_csv, load_jsonl
from xlink.records.model import Category, PersonRecord

__all__ = [
    "RECORD_FILE_SUFFIXES",
    "PreparedSide",
    "default_mapping_path",
    "load_records",
    "prepare_records",
    "prepare_side",
]

StrPath = str | os.PathLike[str]

_CSV_SUFFIXES = (".csv", ".tsv")
_JSONL_SUFFIXES = (".jsonl", ".ndjson")
#: The suffixes :func:`load_records` reads (any case): CSV (``.tsv`` too) and JSON Lines.
RECORD_FILE_SUFFIXES = _CSV_SUFFIXES + _JSONL_SUFFIXES


def default_mapping_path(path: StrPath) -> Path | None:
    """``data.mapping.json`` (or ``.toml``) next to ``data.csv``, if such a file exists."""
    p = Path(path)
    if not p.name:  # "." or "/": no file, so no mapping beside it (the load says what is wrong)
        return None
    for suffix in (".mapping.json", ".mapping.toml"):
        candidate = p.with_name(p.stem + suffix)
        if candidate.is_file():
            return candidate
    return None


def load_records(
    path: StrPath,
    *,
    mapping: StrPath | None = None,
    date_order: str | None = None,
    bad_field: BadFieldPolicy | str = BadFieldPolicy.DROP_FIELD,
    rejects_path: StrPath | None = None,
    progress: Callable[[int], None] | None = None,
    today: date | None = None,
) -> LoadResult:
    """Load a CSV or JSON Lines file, choosing the loader by suffix and the column mapping
    from ``mapping`` or, when not given, :func:`default_mapping_path`. ``bad_field`` is the
    loaders' :class:`~xlink.records.BadFieldPolicy` (default: leave a bad field out, keep the
    record); the field-errors file goes beside the rejects file. ``today`` is the load's date
    (a later date of birth is a field error), as for :func:`~xlink.records.load_csv`.

    Raises :class:`~xlink.errors.LoadError` for an unknown suffix and for every whole-file
    problem the loaders report; bad rows are rejected, never raised. ``ValueError`` for a
    ``bad_field`` that is not a policy.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    chosen = mapping if mapping is not None else default_mapping_path(p)
    if suffix in _CSV_SUFFIXES:
        loader = load_csv
    elif suffix in _JSONL_SUFFIXES:
        loader = load_jsonl
    else:
        raise LoadError(
            str(p), "unknown file type: use .csv, .tsv (tab-separated) or .jsonl (JSON Lines)"
        )
    return loader(
        p,
        mapping=chosen,
        date_order=date_order,
        bad_field=bad_field,
        rejects_path=rejects_path,
        progress=progress,
        today=today,
    )


@dataclass(frozen=True, slots=True)
class PreparedSide:
    """One agency's records from all its files, and their match tokens."""

    loads: tuple[LoadResult, ...]
    schema: LinkageSchema
    tokens: TokenSet
    #: The tokens hashed to the group for one MOU, before any session
    #: (:meth:`xlink.agency.Agency.prepare`); None when the session is to hash them itself.
    hashed: HashedTokens | None = None
    #: Records left out by :meth:`only` (their category not in an MOU), not in ``loads``.
    withheld: int = 0

    @property
    def records(self) -> tuple[PersonRecord, ...]:
        return tuple(r for load in self.loads for r in load.records)

    def only(self, categories: Collection[Category]) -> PreparedSide:
        """This side with the records of ``categories`` only, and their tokens: itself when it
        has no other record. A side cut down has no ``hashed`` tokens: hash them again."""
        allowed = frozenset(categories)
        if all(r.category in allowed for r in self.records):
            return self
        loads = tuple(
            dataclasses.replace(
                load, records=tuple(r for r in load.records if r.category in allowed)
            )
            for load in self.loads
        )
        keep = {r.record_id for load in loads for r in load.records}
        return dataclasses.replace(
            self,
            loads=loads,
            tokens=self.tokens.only_records(keep),
            hashed=None,
            withheld=self.withheld + len(self.records) - len(keep),
        )

    @property
    def loaded(self) -> int:
        return sum(load.loaded for load in self.loads)

    @property
    def rejected(self) -> int:
        return sum(load.rejected for load in self.loads)

    @property
    def field_errors(self) -> int:
        """Bad fields left out of loaded records (``DROP_FIELD``), over every file."""
        return sum(len(load.field_errors) for load in self.loads)

    @property
    def with_field_errors(self) -> int:
        """Loaded records with at least one bad field left out, over every file."""
        return sum(load.with_field_errors for load in self.loads)

    @property
    def unread_columns(self) -> tuple[tuple[str, str], ...]:
        """Every file's :attr:`~xlink.records.LoadResult.unread_columns`, each once: columns
        kept in the payload, never matched on, whose names usually hold a field."""
        return tuple(dict.fromkeys(c for load in self.loads for c in load.unread_columns))

    @property
    def untokenised(self) -> tuple[str, ...]:
        """Ids of records that derived no token at all (every key's fields missing): they can
        never match, so the analyst should see them rather than have them vanish."""
        with_tokens = set(self.tokens.record_index)
        return tuple(rid for i, rid in enumerate(self.tokens.record_ids) if i not in with_tokens)


def _estimate_rows(path: StrPath) -> int | None:
    """An upper bound on the data rows of ``path`` for progress: its lines (less the header of
    a CSV file). Every row takes at least one line; blank lines and quoted line breaks make
    the bound loose. None when the file cannot be read (the loader reports that)."""
    p = Path(path)
    lf = cr = 0
    last = b"\n"
    try:
        with p.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                lf += chunk.count(b"\n")
                cr += chunk.count(b"\r")
                last = chunk[-1:]
    except OSError:
        return None
    lines = max(lf, cr)  # LF, CRLF or old-Mac CR line ends
    if last not in (b"\n", b"\r"):
        lines += 1  # a last line without a line break
    if p.suffix.lower() in _CSV_SUFFIXES:
        lines -= 1
    return max(lines, 0)


def _check_unique_ids(paths: Sequence[StrPath], loads: Sequence[LoadResult]) -> None:
    """Raise ``LoadError`` when a record id appears in two files. (A function of its own so
    that the set of every id is gone before the tokens are derived: at a million records it
    is tens of megabytes.)"""
    seen: set[str] = set()
    clashes = 0
    for load in loads:
        for record in load.records:
            if record.record_id in seen:
                clashes += 1
            seen.add(record.record_id)
    if clashes:
        raise LoadError(
            ", ".join(str(p) for p in paths),
            f"{clashes} record id(s) appear in more than one file; ids must be unique per agency",
        )


def prepare_side(
    paths: Sequence[StrPath],
    *,
    schema: LinkageSchema | None = None,
    mappings: Sequence[StrPath | None] | None = None,
    date_order: str | None = None,
    bad_field: BadFieldPolicy | str = BadFieldPolicy.DROP_FIELD,
    rejects_dir: StrPath | None = None,
    progress: ProgressFn | None = None,
    workers: int | None = 1,
    today: date | None = None,
) -> PreparedSide:
    """Load every file of one agency and derive its token set with ``schema`` (default: the
    bundled default schema).

    Rejects and field-errors files go next to each input, or into ``rejects_dir`` (created if
    missing) when given; ``bad_field`` and ``today`` are as for :func:`load_records`.
    ``progress(phase, done, total)`` (a :class:`~xlink.progress.ProgressFn`) reports rows
    loaded per file (``"loading NAME"``, out of the file's line count: an upper bound, the
    final report gives the rows read) and records tokenised (``"deriving match tokens"``, out
    of the records loaded). ``workers``: processes to derive tokens in (default 1: this
    process; ``None``: one per core for 20,000 records or more), as for
    :func:`~xlink.linkage.keys.derive_token_set`; the tokens are the same whatever their number.
    Raises
    :class:`~xlink.errors.LoadError` when a file cannot be loaded or when the same record id
    appears in two files (ids must identify one record across the agency's whole side).
    Every file is tried first (and its rejects file written) so that all are fixed in one
    run: the error raised is the first file's (:class:`~xlink.errors.NothingLoaded` when no
    row of it loaded), naming the other files refused in ``others``.
    """
    if not paths:
        raise ValueError("at least one input file is needed")
    if mappings is not None and len(mappings) != len(paths):
        raise ValueError("give one mapping per file, or none")
    schema = schema if schema is not None else load_default_schema()
    if rejects_dir is not None:
        Path(rejects_dir).mkdir(parents=True, exist_ok=True)
    loads: list[LoadResult] = []
    refused: list[LoadError] = []  # every file is tried, so that all are fixed in one run
    for i, path in enumerate(paths):
        rejects_path = None
        if rejects_dir is not None:
            p = Path(path)
            rejects_path = Path(rejects_dir) / f"{p.stem}.rejects{p.suffix}"

        name = Path(path).name
        phase = f"loading {name}"
        rows = None
        if progress is not None:
            rows = _estimate_rows(path)
            progress(phase, 0, rows)
        try:
            load = load_records(
                path,
                mapping=None if mappings is None else mappings[i],
                date_order=date_order,
                bad_field=bad_field,
                rejects_path=rejects_path,
                progress=count_progress(progress, phase, rows),
                today=today,
            )
        except LoadError as cannot:
            refused.append(cannot)
            continue
        if progress is not None:
            progress(phase, load.total, load.total)  # the estimate may be above the rows read
        loads.append(load)
    if refused:  # the first file's error, naming the others
        first = refused[0]
        raise first.also([r.source for r in refused[1:]]) if len(refused) > 1 else first
    _check_unique_ids(paths, loads)
    return _derived(loads, schema, progress, workers)


def prepare_records(
    records: Sequence[PersonRecord],
    *,
    schema: LinkageSchema | None = None,
    source: str = "records",
    progress: ProgressFn | None = None,
    workers: int | None = 1,
    today: date | None = None,
) -> PreparedSide:
    """:func:`prepare_side` for records built by the caller (``xlink.records.PersonRecord``,
    from a system of its own, or one traveller at a border desk): their tokens derived with
    ``schema``, one load named ``source`` with no rejects. Raises
    :class:`~xlink.errors.LoadError` for what the loaders refuse of a row (a record id given
    twice or holding a control or invisible character; a date of birth after ``today``, the
    load's date, when given), ``ValueError`` when there is no record or one is not a
    ``PersonRecord``."""
    if not records:
        raise ValueError("at least one record is needed")
    if not all(isinstance(r, PersonRecord) for r in records):
        raise ValueError("records must be xlink.records.PersonRecord objects")
    _check_records(records, source, today)
    load = LoadResult(source=source, records=tuple(records), rejects=())
    schema = schema if schema is not None else load_default_schema()
    return _derived([load], schema, progress, workers)


def _check_records(records: Sequence[PersonRecord], source: str, today: date | None) -> None:
    """What the loaders refuse of a row, for records built by a caller: a record id given
    twice, or holding a control or invisible character (it is printed to officers: one that
    drives a terminal or reorders text could make them misread which record they approve); a
    date of birth after ``today``. :class:`~xlink.errors.LoadError` naming the records by
    their position, never their values."""
    problems: list[str] = []
    twice = len(records) - len({r.record_id for r in records})
    if twice:
        problems.append(f"{twice} record id(s) given more than once; ids are unique per agency")
    unsafe = [i for i, r in enumerate(records) if UNSAFE_TEXT.search(r.record_id)]
    future = [
        i
        for i, r in enumerate(records)
        if today is not None and r.birth_date is not None and born_after(r.birth_date, today)
    ]
    for what, at in (
        ("record_id holds a control or invisible character", unsafe),
        (FUTURE_DATE, future),
    ):
        if at:
            shown = ", ".join(str(i) for i in at[:10]) + (", ..." if len(at) > 10 else "")
            problems.append(f"{what}: record(s) at {shown}")
    if problems:
        raise LoadError(source, "; ".join(problems))


def _derived(
    loads: Sequence[LoadResult],
    schema: LinkageSchema,
    progress: ProgressFn | None,
    workers: int | None,
) -> PreparedSide:
    """The side of ``loads``, its tokens derived (``"deriving match tokens"``)."""
    from xlink.linkage.keys import derive_token_set

    records = [r for load in loads for r in load.records]
    phase = "deriving match tokens"
    if progress is not None:
        progress(phase, 0, len(records))
    tokens = derive_token_set(
        records, schema, progress=count_progress(progress, phase, len(records)), workers=workers
    )
    return PreparedSide(loads=tuple(loads), schema=schema, tokens=tokens)
