"""Loaders: CSV, JSON Lines and pandas DataFrames into person records (DESIGN.md §2 step 1).

Every row is validated (:func:`~xlink.records.validation.check_row`); nothing is dropped
silently. A row that cannot be a person record (no id, no valid category, no name, a repeated id,
a line that does not parse), or under :attr:`BadFieldPolicy.REJECT_ROW` any bad row, becomes a
:class:`Reject` with every :class:`~xlink.errors.FieldError` found, and the bad rows are written,
exactly as read, to a rejects file in the input's format. Under
:attr:`BadFieldPolicy.DROP_FIELD` (the default) a bad value in any other field is left out, the
record kept, and the error listed in :attr:`LoadResult.field_errors` and a field-errors file
(line, field, reason: no value). Only a problem that makes the whole input untrustworthy raises
:class:`~xlink.errors.LoadError`.

Decisions (see docs/loading.md): line numbers are physical lines (the CSV header is line 1); a
``record_id`` belongs to the first row that carries it, valid or not, and later rows with it are
rejected; a header without data rows is an empty file; blank lines are skipped; the rejects and
field-errors files are written or removed only after a successful load.
"""

from __future__ import annotations

import codecs
import csv
import datetime
import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from xlink._gc import collector_paused
from xlink.errors import FieldError, LoadError
from xlink.records import _rejects
from xlink.records._collect import (
    PROGRESS_EVERY,
    Collector,
    LoadResult,
    ProgressCallback,
    rejects_target,
)
from xlink.records._mapping import ColumnMapping, StrPath, is_tsv
from xlink.records._missing import unguard
from xlink.records._rejects import Reject
from xlink.records._rows import (
    Lines,
    RawRow,
    RowShape,
    check_header,
    csv_reason,
    csv_rows,
    json_row,
    no_rows_inside,
    open_quote,
    scalar_text,
)
from xlink.records.validation import BadFieldPolicy, DateOrder

if TYPE_CHECKING:
    from _csv import Reader as _CsvReader

    import pandas as pd

__all__ = [
    "PROGRESS_EVERY",
    "BadFieldPolicy",
    "ColumnMapping",
    "LoadResult",
    "MappingArg",
    "Reject",
    "load_csv",
    "load_dataframe",
    "load_jsonl",
]

MappingArg = ColumnMapping | Mapping[str, object] | StrPath | None


def _open(path: Path, source: str) -> BinaryIO:
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise LoadError(source, "file not found") from None
    except OSError as exc:
        raise LoadError(source, f"cannot read ({exc.strerror})") from None


@collector_paused()  # loading makes records, not cycles: xlink._gc
def load_csv(
    path: StrPath,
    *,
    mapping: MappingArg = None,
    date_order: DateOrder | str | None = None,
    bad_field: BadFieldPolicy | str = BadFieldPolicy.DROP_FIELD,
    rejects_path: StrPath | None = None,
    write_rejects: bool = True,
    progress: ProgressCallback | None = None,
    today: datetime.date | None = None,
) -> LoadResult:
    """Load a CSV file (UTF-8 unless the mapping's ``encoding`` says otherwise; a UTF-8 or
    UTF-16 byte-order mark says which, whatever it says) whose first line is the header (after a
    spreadsheet's ``sep=`` line naming the mapping's delimiter, if there is one).

    ``mapping`` renames and combines columns (:class:`ColumnMapping`, a dict, or a
    ``.json``/``.toml`` file) and may set date orders and a constant category. ``date_order``
    overrides the mapping's file-wide one (not its per-field ``date_orders``); without either
    it is ``unknown``. ``bad_field`` decides what a bad value in a field a record may lack does
    (:class:`BadFieldPolicy`: by default the field is left out and the record kept). Rejects go
    to ``rejects_path`` (default ``<stem>.rejects.csv`` next to the input, ``.tsv`` for a
    ``.tsv`` input) with an ``xlink_error`` column, and the fields left out of kept records to
    the field-errors file beside it (``<stem>.field-errors.csv``: line, field, reason); a
    stale rejects or field-errors file is removed when there are none.
    ``write_rejects=False`` writes neither and keeps everything in memory.
    ``progress(rows_done)`` is called every :data:`PROGRESS_EVERY` rows and at the end.

    Raises:
        LoadError: file not found or unreadable, a line not in the file's encoding (named),
            malformed CSV, an empty file or a header without rows, a file of which every row
            was rejected (the rejects file is written first), a ``sep=`` line naming
            another delimiter than the one expected, unnamed/duplicate/conflicting columns,
            missing required columns (all listed), or a bad mapping file.
        ValueError: a bad ``mapping`` dict, ``date_order`` or ``bad_field``, or a rejects or
            field-errors path equal to the input.
    """
    source, file = os.fspath(path), Path(path)
    columns = ColumnMapping.coerce(mapping)
    delimiter = columns.delimiter_of(file)
    collector = Collector(columns, date_order, bad_field, progress, today)
    # a .tsv file's rejects are a .tsv file too, written with its delimiter: fixed, they load
    # again as they are
    extension = "tsv" if is_tsv(file) else "csv"
    target = rejects_target(file, rejects_path, write_rejects, extension)
    with _open(file, source) as fh:
        lines = Lines(fh, source, columns.encoding)
        # strict: a stray quote must not swallow rows
        reader = csv.reader(lines, strict=True, delimiter=delimiter)
        header_raw: list[str] | None = None
        shape: RowShape | None = None
        start = 1
        for cells in csv_rows(reader):
            raw = lines.take()
            line, start = start, reader.line_num + 1
            if isinstance(cells, csv.Error):
                # One line the CSV rules cannot read is one rejected row; a quote that ran on
                # over several lines, or that is still open at the line's end (the reader goes
                # on at the next line, which was meant to be inside it), may hold rows: refused.
                if reader.line_num > line or "unexpected end of data" in str(cells):
                    # named where the quote opened, not where the reader ran out
                    in_header = header_raw is None
                    raise LoadError(source, open_quote(line, reader.line_num, cells, in_header))
                if header_raw is None or raw.count('"') % 2:
                    raise LoadError(source, f"malformed CSV (line {reader.line_num}): {cells}")
                reason = csv_reason(cells)
                error = RawRow(line, raw, None, errors=[FieldError(line, "<row>", reason)])
                if shape is None:
                    collector.add(error)
                else:
                    shape.add(error)
                continue
            written = cells  # the rejects file's header is the header as written
            if '="' in raw:  # a spreadsheet's text guard, ="00123": the text it guards
                cells = [unguard(c) for c in cells]
            if not any(cell.strip() for cell in cells):
                continue
            if line == 1 and (said := _excel_delimiter(raw)) is not None:
                if said != delimiter:
                    raise LoadError(
                        source,
                        f"line {line} is a spreadsheet's sep= line: the file's delimiter is "
                        f"{said!r}, where {delimiter!r} was expected (set the mapping's "
                        "delimiter)",
                    )
                continue  # Excel's note of the delimiter, before the header
            if header_raw is None:
                header_raw = written
                shape = RowShape(columns.column_names(cells), delimiter, collector.add)
                try:
                    check_header(source, shape.header, columns, cells[: len(shape.header)])
                except LoadError as refused:
                    raise _header_below(refused, line, reader, columns) from None
                continue
            assert shape is not None
            if reader.line_num > line:  # a quoted value over several lines
                no_rows_inside(source, line, cells, delimiter, len(shape.header))
            shape.add((line, raw, cells))
        if shape is not None:
            shape.flush()
    if header_raw is None:
        raise LoadError(source, "empty file")
    if not collector.records and not collector.rejects:
        raise LoadError(source, "empty: a header but no data rows")
    final_header = header_raw
    bom = codecs.lookup(columns.encoding).name != "utf-8"
    return collector.finish(
        source,
        target,
        lambda p, rejects: _rejects.write_csv(
            p, final_header, rejects, delimiter=delimiter, bom=bom
        ),
    )


#: Lines after a refused header looked at for the real one (a title or a note above it).
HEADER_SEARCH_LINES = 10


def _header_below(
    refused: LoadError, line: int, reader: _CsvReader, columns: ColumnMapping
) -> LoadError:
    """``refused`` (the header read from ``line`` did not do), saying which line was read as
    the header when one of the next :data:`HEADER_SEARCH_LINES` lines would do (an export with
    a title or a note above its header: named, never skipped to) or when it is not line 1."""
    below = None
    try:
        for _, cells in zip(range(HEADER_SEARCH_LINES), csv_rows(reader), strict=False):
            if isinstance(cells, csv.Error):
                continue  # a line the csv module cannot read is no header
            try:
                check_header(refused.source, columns.column_names(cells), columns)
            except LoadError:
                continue
            below = reader.line_num
            break
    except LoadError:
        pass  # a line not in the file's encoding: the search stops there
    if below is None and line == 1:
        return refused
    said = f"line {line} was read as the header"
    if below is not None:
        said += f", but line {below} reads as one: remove the title or note above it"
    return LoadError(refused.source, f"{refused.reason}; {said}", refused.errors)


def _excel_delimiter(raw: str) -> str | None:
    """The delimiter a spreadsheet's first line ``sep=X`` names, or None for another line."""
    text = raw.rstrip("\r\n")
    return text[4] if len(text) == 5 and text.startswith("sep=") else None


@collector_paused()  # loading makes records, not cycles: xlink._gc
def load_jsonl(
    path: StrPath,
    *,
    mapping: MappingArg = None,
    date_order: DateOrder | str | None = None,
    bad_field: BadFieldPolicy | str = BadFieldPolicy.DROP_FIELD,
    rejects_path: StrPath | None = None,
    write_rejects: bool = True,
    progress: ProgressCallback | None = None,
    today: datetime.date | None = None,
) -> LoadResult:
    """Load a UTF-8 JSON Lines file (RFC 8259; a mapping's ``encoding`` is for CSV): one JSON
    object per line, blank lines skipped.

    Values are strings, numbers, booleans or null (null = missing); ``aliases``,
    ``nationalities`` and ``address`` may be lists of strings; a ``documents`` key may hold a list
    of objects with :data:`~xlink.records.validation.DOCUMENT_FIELDS` keys. A line that is not a
    JSON object is a reject with field ``"<line>"``; a value of the wrong type is a field
    error like a bad value (a row-breaking one for ``record_id`` and ``category``). Other
    parameters are as for :func:`load_csv`; rejects go to ``<stem>.rejects.jsonl`` with an
    ``xlink_error`` key, field errors to ``<stem>.field-errors.csv``.

    Raises:
        LoadError: file not found or unreadable, a line that does not decode (named), an
            empty file, a file of which every line was rejected (the rejects file is written
            first), or a bad mapping file.
        ValueError: a bad ``mapping`` dict, ``date_order`` or ``bad_field``, or a rejects or
            field-errors path equal to the input.
    """
    source, file = os.fspath(path), Path(path)
    columns = ColumnMapping.coerce(mapping)
    collector = Collector(columns, date_order, bad_field, progress, today)
    target = rejects_target(file, rejects_path, write_rejects, "jsonl")
    with _open(file, source) as fh:
        lines = Lines(fh, source, json=True)
        names: dict[tuple[str, ...], list[str]] = {}
        for text in lines:
            lines.take()
            if text.strip():
                collector.add(json_row(lines.number, text.strip(), columns, names))
    if not collector.records and not collector.rejects:
        raise LoadError(source, "empty file")
    return collector.finish(source, target, _rejects.write_jsonl)


def _cell(value: object) -> str | None:
    """A DataFrame cell as text: missing values are ``""``; ``None`` for unsupported types."""
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        if getattr(value, "ndim", 0) != 0:
            return None  # an array in a cell (a list column): an unsupported value
        value = value.item()  # numpy scalar -> Python scalar
    if value is None or isinstance(value, str | int | float):
        return scalar_text(value)
    if isinstance(value, datetime.datetime):
        return value.date().isoformat() if value.time() == datetime.time() else value.isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    return None


@collector_paused()  # loading makes records, not cycles: xlink._gc
def load_dataframe(
    df: pd.DataFrame,
    *,
    mapping: MappingArg = None,
    date_order: DateOrder | str | None = None,
    bad_field: BadFieldPolicy | str = BadFieldPolicy.DROP_FIELD,
    rejects_path: StrPath | None = None,
    progress: ProgressCallback | None = None,
    source: str = "<DataFrame>",
    today: datetime.date | None = None,
) -> LoadResult:
    """Load a pandas DataFrame, one row per person; the index is ignored.

    Cells may be strings, numbers, booleans, dates or missing (``None``, ``NaN``, ``NaT``,
    ``pd.NA``); an integral float (an integer column with gaps) becomes its integer text, and a
    midnight timestamp its ``YYYY-MM-DD`` date; a cell of another type is a field error. Error
    lines are 1-based row positions. Rejects are written, as CSV with the DataFrame's columns
    plus ``xlink_error``, and field errors beside them, only when ``rejects_path`` is given.
    Other parameters are as for :func:`load_csv`.

    Raises:
        LoadError: no rows, or every row rejected; column names that are not strings,
            unnamed, duplicated, or conflicting; missing required columns; or a bad mapping
            file.
        ValueError: a bad ``mapping`` dict, ``date_order`` or ``bad_field``, or a rejects path
            whose field-errors file would be itself.
    """
    import pandas as pd  # imported here so that `import xlink` stays cheap
    from pandas.api.types import is_scalar

    if not isinstance(df, pd.DataFrame):
        raise TypeError("load_dataframe needs a pandas DataFrame")
    columns = ColumnMapping.coerce(mapping)
    if any(not isinstance(c, str) for c in df.columns):
        raise LoadError(source, "column names must be strings")
    written = [str(c) for c in df.columns]
    header = columns.column_names(written)
    check_header(source, header, columns, written)
    if df.empty:
        raise LoadError(source, "empty: no rows")
    collector = Collector(columns, date_order, bad_field, progress, today)
    target = rejects_target(None, rejects_path, True, "csv")
    for position, values in enumerate(df.itertuples(index=False, name=None), start=1):
        cells = ["" if is_scalar(v) and pd.isna(v) else _cell(v) for v in values]
        out = io.StringIO()
        csv.writer(out, lineterminator="").writerow(
            [str(v) if c is None else c for v, c in zip(values, cells, strict=True)]
        )
        values_by_column = {n: c for n, c in zip(header, cells, strict=True) if c is not None}
        row = RawRow(position, out.getvalue(), values_by_column)
        row.errors += (
            FieldError(position, name, "unsupported value type")
            for name, cell in zip(header, cells, strict=True)
            if cell is None
        )
        collector.add(row)
    return collector.finish(
        source, target, lambda p, rejects: _rejects.write_csv(p, header, rejects)
    )
