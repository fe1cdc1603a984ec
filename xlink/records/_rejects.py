"""Rejects files: the bad rows of an input, exactly as read, each with its errors (docs/loading.md);
and field-errors files: the fields left out of records that loaded (line, field, reason only).

Rejects hold identities, so they are written atomically (a temporary file in the same directory,
then a rename) with the temporary file's owner-only permissions; field-errors files hold no
value, and are written the same way.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from xlink._files import written_whole
from xlink.errors import FieldError
from xlink.records._mapping import ERROR_COLUMN

__all__ = [
    "FIELD_ERRORS_HEADER",
    "Reject",
    "default_rejects_path",
    "describe",
    "field_errors_path",
    "parse_json_object",
    "remove_stale",
    "write_csv",
    "write_field_errors",
    "write_jsonl",
]

#: The columns of a field-errors file.
FIELD_ERRORS_HEADER = ("line", "field", "reason")


@dataclass(frozen=True, slots=True)
class Reject:
    """One input row that did not load.

    ``line`` is the row's first physical line (1-based; the CSV header is line 1) or its 1-based
    DataFrame position. ``raw`` is the row as read: the CSV text of its line(s), the JSON Lines
    line, or a CSV rendering of a DataFrame row. ``errors`` lists every problem in the row.
    ``repr`` leaves ``raw`` out: it holds identities.
    """

    line: int
    raw: str
    errors: tuple[FieldError, ...]

    def __repr__(self) -> str:
        return f"Reject(line={self.line}, errors={self.errors!r})"


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate key in a JSON object")
    return obj


def parse_json_object(text: str) -> dict[str, object]:
    """Parse one JSON Lines line that must be a JSON object without duplicate keys.

    Raises:
        ValueError: "malformed JSON (column N)", "duplicate key in a JSON object", or "not a JSON
            object". The reasons never quote the text.
    """
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise ValueError(f"malformed JSON (column {exc.colno})") from None
    except RecursionError:
        raise ValueError("malformed JSON (nested too deeply)") from None
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    if _SURROGATE_ESCAPE.search(text) and not _unicode(obj):
        raise ValueError("not valid Unicode text (a lone surrogate escape)")
    return obj


#: A ``\\uD800``-``\\uDFFF`` escape: half of an escaped pair, or a lone surrogate, which no
#: text may hold (it cannot be written as UTF-8).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _unicode(value: object) -> bool:
    """Whether every string of a parsed JSON value (keys too) is text, no lone surrogate."""
    if isinstance(value, str):
        return not any("\ud800" <= ch <= "\udfff" for ch in value)
    if isinstance(value, dict):
        return all(_unicode(k) and _unicode(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_unicode(v) for v in value)
    return True


def describe(reject: Reject) -> str:
    """The text of the rejects file's error column: line, then each ``field: reason``."""
    return f"line {reject.line}: " + "; ".join(f"{e.field}: {e.reason}" for e in reject.errors)


def default_rejects_path(source: Path, extension: str) -> Path:
    """``<stem>.rejects.<extension>`` next to ``source``."""
    return source.with_name(f"{source.stem}.rejects.{extension}")


def field_errors_path(rejects_path: Path) -> Path:
    """The field-errors file beside a rejects file: ``<stem>.rejects.<ext>`` gives
    ``<stem>.field-errors.csv`` (any other name ``<its stem>.field-errors.csv``)."""
    stem = rejects_path.stem.removesuffix(".rejects")
    return rejects_path.with_name(f"{stem}.field-errors.csv")


def remove_stale(path: Path) -> None:
    """Delete a rejects (or field-errors) file left by an earlier load, so that it cannot
    mislead."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def write_csv(
    path: Path,
    header: Sequence[str],
    rejects: Sequence[Reject],
    *,
    delimiter: str = ",",
    bom: bool = False,
) -> None:
    """Write the original header plus :data:`ERROR_COLUMN`, then each rejected row, with the
    input's ``delimiter`` (so that the file loads again with the input's mapping), in UTF-8;
    with ``bom`` (an input in another encoding), starting with a byte-order mark, so that the
    input's mapping, which names that other encoding, reads it as UTF-8 all the same.

    Cells are the row's cells as read; a short row is padded with empty cells so that the error
    lands in its column, which follows the last named one (a spreadsheet's trailing columns
    without a name stay after it, so that the file loads again: the loader takes them for no
    columns only at the end). If the input already had an :data:`ERROR_COLUMN` (a rejects file
    loaded again), that column is reused.
    """
    columns = list(header)
    inserted = ERROR_COLUMN not in columns
    if inserted:
        named = len(columns)
        while named and not columns[named - 1].strip():
            named -= 1
        columns.insert(named, ERROR_COLUMN)
    error_at = columns.index(ERROR_COLUMN)

    def write(out: TextIO) -> None:
        writer = csv.writer(out, lineterminator="\n", delimiter=delimiter)
        writer.writerow(columns)
        for reject in rejects:
            cells = _cells(reject.raw, delimiter)
            if inserted:
                cells += [""] * (error_at - len(cells))
                cells.insert(error_at, "")
            cells += [""] * (len(columns) - len(cells))
            cells[error_at] = describe(reject)
            writer.writerow(cells)

    with written_whole(path, encoding="utf-8-sig" if bom else "utf-8") as out:
        write(out)


def _cells(raw: str, delimiter: str) -> list[str]:
    """A rejected row's cells as read; a row the ``csv`` module cannot read as one row (a line
    break inside a value not in quotes, a value over its limit) is kept whole in the first
    cell, which the writer quotes, so that nothing of it is lost."""
    try:
        rows = list(csv.reader(io.StringIO(raw, newline=""), delimiter=delimiter, strict=True))
    except csv.Error:
        return [raw]
    if len(rows) > 1:
        return [raw]
    return rows[0] if rows else []


def write_jsonl(path: Path, rejects: Sequence[Reject]) -> None:
    """Write each rejected line with an :data:`ERROR_COLUMN` key added.

    A line that is not a valid JSON object (malformed, not an object, or with a duplicate key)
    is kept whole as the string ``"xlink_raw"``.
    """

    def write(out: TextIO) -> None:
        for reject in rejects:
            try:
                obj = parse_json_object(reject.raw)
            except ValueError:
                obj = {"xlink_raw": reject.raw}
            obj[ERROR_COLUMN] = describe(reject)
            out.write(json.dumps(obj, ensure_ascii=False) + "\n")

    with written_whole(path) as out:
        write(out)


def write_field_errors(path: Path, errors: Sequence[FieldError]) -> None:
    """Write :data:`FIELD_ERRORS_HEADER`, then one row per error: its line, the field as the
    input names it, and the reason. No value of the row is written."""

    def write(out: TextIO) -> None:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(FIELD_ERRORS_HEADER)
        writer.writerows((e.line, e.field, e.reason) for e in errors)

    with written_whole(path) as out:
        write(out)
