"""Raw rows: what each input format yields before validation (see :mod:`xlink.records.loaders`),
and what a CSV's header and a row over several lines must be to be read as rows at all."""

from __future__ import annotations

import codecs
import collections
import contextlib
import csv
import io
import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO, Final

from xlink.errors import FieldError, LoadError
from xlink.records._mapping import DELIMITERS, ColumnMapping
from xlink.records._rejects import parse_json_object
from xlink.records.header_hints import likely_fields, mapping_hint
from xlink.records.model import Category
from xlink.records.validation import DOCUMENT_FIELDS, NAME_FIELDS

__all__ = [
    "Lines",
    "RawRow",
    "RowShape",
    "check_header",
    "csv_reason",
    "csv_rows",
    "json_row",
    "no_rows_inside",
    "open_quote",
    "scalar_text",
]

_BOM = b"\xef\xbb\xbf"
#: A file that starts with one of these is UTF-16 (little- or big-endian), whatever the mapping
#: says: spreadsheet programs save "Unicode text" so.
_UTF16_BOMS: Final = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
#: How a spreadsheet's own files start (a zip: .xlsx, .ods; an OLE compound file: .xls), which
#: a .csv name does not make text.
_WORKBOOKS: Final = (b"PK\x03\x04", b"\xd0\xcf\x11\xe0")
#: How a gzip-compressed file starts.
_GZIP: Final = b"\x1f\x8b"
_LIST_FIELDS = frozenset({"aliases", "nationalities", "address"})


@dataclass(slots=True)
class RawRow:
    """One row before validation, keyed by the input's own column names."""

    line: int
    raw: str
    values: dict[str, str] | None  # None: the row could not even be split into fields
    documents: list[dict[str, str]] = field(default_factory=list)
    errors: list[FieldError] = field(default_factory=list)


def _utf16_unmarked(head: bytes) -> bool:
    """Whether a file starting with ``head`` looks like UTF-16 without a byte-order mark: no
    mark, and a zero in every other byte of at least its first 16 (ASCII text so encoded)."""
    if len(head) < 16 or head[:2] in _UTF16_BOMS:
        return False
    return not any(head[0:16:2]) or not any(head[1:16:2])


#: A quoted value (``""`` inside one is two of these side by side), or one the head cuts.
_QUOTED = re.compile(rb'"[^"]*(?:"|$)')


def _cr_ended(head: bytes) -> bool:
    """Whether a file starting with ``head`` ends its lines with a carriage return alone (an old
    Mac export): outside quoted values, a carriage return and no line feed (a spreadsheet
    writes a line break inside a cell as either, in quotes)."""
    if b"\r" not in head:
        return False
    outside = _QUOTED.sub(b"", head)
    return b"\r" in outside and b"\n" not in outside


class Lines:
    """Decodes a binary file line by line (so a line that does not decode is named) and keeps
    the raw text of the lines read since the last :meth:`take`, which is exactly one CSV
    record. ``encoding`` is the file's (a mapping's ``encoding``; UTF-8 by default); a file
    starting with a UTF-8 or a UTF-16 byte-order mark is read as UTF-8 or UTF-16 whatever it
    says."""

    def __init__(
        self, fh: BinaryIO, source: str, encoding: str = "utf-8", *, json: bool = False
    ) -> None:
        self._fh = fh
        self._json = json  # JSON Lines: UTF-8 (or UTF-16 with its mark), whatever a mapping says
        self._source = source
        self._encoding = encoding
        self.number = 0
        self._pending: list[str] = []

    def _texts(self) -> Iterator[str]:
        peek = getattr(self._fh, "peek", None)
        if peek is not None and peek(4)[:4] in _WORKBOOKS:
            raise LoadError(
                self._source,
                "a spreadsheet workbook, not text: save it as CSV",
            )
        if peek is not None and peek(2)[:2] == _GZIP:
            raise LoadError(self._source, "a gzip-compressed file, not text: decompress it first")
        if peek is not None and _utf16_unmarked(peek(8192)):
            raise LoadError(
                self._source,
                "every other byte is zero: UTF-16 text without a byte-order mark? "
                "save it as UTF-8, or as UTF-16 with its mark",
            )
        if peek is not None and peek(2)[:2] in _UTF16_BOMS:
            wrapper = io.TextIOWrapper(self._fh, encoding="utf-16", newline="")
            try:
                yield from wrapper
            except UnicodeDecodeError:
                # the wrapper decodes ahead of the lines it gives: the line is a neighbour
                raise LoadError(
                    self._source, f"not UTF-16 text (near line {self.number + 1})"
                ) from None
            finally:  # give the file back (the wrapper would close it); closed already: fine
                with contextlib.suppress(ValueError):
                    wrapper.detach()
            return
        encoding = self._encoding
        lines: Iterable[bytes] = self._fh
        if peek is not None and _cr_ended(peek(8192)):
            lines = _cr_lines(self._fh)  # carriage returns alone end its lines (an old Mac export)
        marked = False
        for data in lines:
            if self.number == 0 and data.startswith(_BOM):
                # a UTF-8 file says so, whatever the mapping says (a system that now exports
                # UTF-8 under a mapping written for cp1252 would garble every accent)
                data, marked = data[len(_BOM) :], encoding != "utf-8"
                encoding = "utf-8"
            try:
                yield data.decode(encoding)
            except UnicodeDecodeError:
                if marked:
                    hint = (
                        f"; the file starts with a UTF-8 byte-order mark, which says UTF-8 "
                        f"over the mapping's {self._encoding!r}: remove the mark"
                    )
                elif self._json:
                    hint = "; JSON Lines text is UTF-8 (RFC 8259): convert the file to UTF-8"
                elif encoding == "utf-8":
                    hint = (
                        "; a file in another encoding needs the mapping's encoding setting "
                        '(for example "cp1252")'
                    )
                else:
                    hint = ""
                named = "UTF-8" if encoding == "utf-8" else encoding
                raise LoadError(
                    self._source, f"not {named} text (line {self.number + 1}){hint}"
                ) from None

    def __iter__(self) -> Iterator[str]:
        for text in self._texts():
            self.number += 1
            self._pending.append(text)
            yield text

    def take(self) -> str:
        text = "".join(self._pending)
        self._pending.clear()
        return text.removesuffix("\n").removesuffix("\r")


def _cr_lines(fh: BinaryIO) -> Iterator[bytes]:
    """The lines of a file whose lines end in a carriage return alone, each with its ``\r``."""
    rest = b""
    for chunk in iter(lambda: fh.read(1 << 16), b""):
        parts = (rest + chunk).split(b"\r")
        rest = parts.pop()
        for part in parts:
            yield part + b"\r"
    if rest:
        yield rest


def json_row(
    line: int, text: str, mapping: ColumnMapping, names: dict[tuple[str, ...], list[str]]
) -> RawRow:
    """Split one JSON Lines object into string values, documents, and type errors; ``names``
    memoises :meth:`ColumnMapping.column_names` per set of keys."""
    try:
        obj = parse_json_object(text)
    except ValueError as exc:
        return RawRow(line, text, None, errors=[FieldError(line, "<line>", str(exc))])
    keys = tuple(obj)
    found = names.get(keys)
    if found is None:
        if len(names) >= 1024:  # objects may each have their own keys
            names.clear()
        found = names[keys] = mapping.column_names(keys)
    if len(set(found)) < len(found):
        reason = "duplicate key in a JSON object, once spaces, invisible characters, case and "
        reason += "accent encoding are set aside"
        return RawRow(line, text, None, errors=[FieldError(line, "<line>", reason)])
    row = RawRow(line, text, {})
    assert row.values is not None
    for key, value in zip(found, obj.values(), strict=True):
        target = mapping.target(key)
        if target is None:
            continue
        if target == "documents":
            if not isinstance(value, list):
                row.errors.append(FieldError(line, key, "expected a list of document objects"))
                continue
            for index, item in enumerate(value):
                converted = _json_document(item)
                if converted is None:
                    reason = "expected an object of doc_type, doc_number, doc_country, doc_expiry"
                    row.errors.append(FieldError(line, f"documents[{index}]", reason))
                else:
                    row.documents.append(converted)
        elif target in _LIST_FIELDS and isinstance(value, list):
            if all(isinstance(item, str) for item in value):
                row.values[key] = "; ".join(str(item) for item in value)
            else:
                row.errors.append(FieldError(line, key, "expected a list of strings"))
        elif (scalar := scalar_text(value)) is not None:
            row.values[key] = scalar
        else:
            row.errors.append(FieldError(line, key, "expected a string, finite number or null"))
    return row


def scalar_text(value: object) -> str | None:
    """A JSON or DataFrame scalar as a cell's text, or ``None`` for a value that is none
    (an infinity, a list). Missing values (``None``, ``NaN``, which ``json.dumps`` writes
    for a missing float) are ``""``; an integral float is its integer's text, since integer
    columns with gaps are written as floats (``12.0`` is the id ``12``, as ``12`` is)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if math.isinf(value):
            return None
        # a float of 2**53 or more is not one integer but the nearest of many: its text
        # (1.2345678901234567e+19) shows that, where int() would make a plausible wrong id
        exact = value.is_integer() and abs(value) < 2**53
        return str(int(value)) if exact else repr(value)
    return None


def _json_document(value: object) -> dict[str, str] | None:
    if not isinstance(value, dict):
        return None
    out: dict[str, str] = {}
    for key, item in value.items():
        scalar = scalar_text(item)
        if key not in DOCUMENT_FIELDS or scalar is None:
            return None
        out[key] = scalar
    return out


def _required_columns_missing(targets: set[str], mapping: ColumnMapping) -> list[str]:
    missing = [f for f in ("record_id", "category") if f not in targets]
    if "category" in missing and mapping.category is not None:
        missing.remove("category")
    if not targets & set(NAME_FIELDS):
        missing.append("a name column (" + ", ".join(NAME_FIELDS) + ")")
    return missing


class RowShape:
    """How many cells a CSV data row may have under its header, and the row it makes.

    Columns without a name after the last named one (a spreadsheet's trailing empty columns)
    are no columns, as long as their cells stay empty. Past the header as written, empty cells
    are the file's own form only when most rows have them (a database dump ending every row
    with the delimiter under a header that does not): so the first :data:`HELD` data rows are
    held until that is known. Any other row with cells past the header is rejected, even when
    they are empty: a value with an unquoted delimiter (``King, Jr``) in a row whose last cell
    is empty makes that row, every cell after the value shifted by one."""

    #: Data rows read before the file's form is decided.
    HELD = 50

    def __init__(
        self, header: Sequence[str], delimiter: str, add: Callable[[RawRow], None]
    ) -> None:
        named = len(header)
        while named and not header[named - 1]:
            named -= 1
        self.header = list(header[:named])
        self._written = len(header)
        self._delimiter = delimiter
        self._add = add
        self._widest: int | None = None  # the most cells a row may have, once decided
        self._held: list[RawRow | tuple[int, str, list[str]]] = []

    def add(self, row: RawRow | tuple[int, str, list[str]]) -> None:
        """A row the CSV rules could not read (as its reject), or a data row's ``(line, raw,
        cells)``, in the file's order."""
        if self._widest is None:
            self._held.append(row)
            if len(self._held) >= self.HELD:
                self.flush()
        else:
            self._add(row if isinstance(row, RawRow) else self._row(*row))

    def flush(self) -> None:
        """Decide the file's form from the rows held, and pass them on (at the end too)."""
        if self._widest is None:
            self._widest = self._written + self._padding()
        held, self._held = self._held, []
        for row in held:
            self.add(row)

    def _padding(self) -> int:
        """Empty cells past the header as written that most data rows held have, or 0."""
        named, counts = len(self.header), collections.Counter[int]()
        rows = [row[2] for row in self._held if not isinstance(row, RawRow)]
        for cells in rows:
            if len(cells) > self._written and not any(c.strip() for c in cells[named:]):
                counts[len(cells) - self._written] += 1
        if not counts:
            return 0
        padding, seen = counts.most_common(1)[0]
        return padding if seen >= 2 and 2 * seen > len(rows) else 0

    def _row(self, line: int, raw: str, cells: list[str]) -> RawRow:
        named = len(self.header)
        assert self._widest is not None
        if named < len(cells) <= self._widest and not any(c.strip() for c in cells[named:]):
            cells = cells[:named]
        if len(cells) == named:
            return RawRow(line, raw, dict(zip(self.header, cells, strict=True)))
        reason = f"{len(cells)} fields, the header has {named}"
        if len(cells) > named and not any(c.strip() for c in cells[named:]):
            reason += (
                f" (the cells past it are empty, but a value with an unquoted "
                f"{self._delimiter!r} would shift the row)"
            )
        return RawRow(line, raw, None, errors=[FieldError(line, "<row>", reason)])


#: A cell no column is named: a number, or a date (``1983-05-27``, ``27/05/1983``).
_LIKE_A_VALUE = re.compile(r"[+-]?\d+(?:[.,]\d+)?|\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}")
#: A control character (but the tab a cell may hold) in a column's name.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def check_header(
    source: str,
    header: Sequence[str],
    mapping: ColumnMapping,
    written: Sequence[str] | None = None,
) -> None:
    """Raise LoadError for unnamed, duplicate, conflicting or missing required columns;
    ``written``: the names as the file wrote them (:meth:`ColumnMapping.column_names` of them
    is ``header``), so that names that differ only there are named as written."""
    problems = [f"column {i} has no name" for i, name in enumerate(header, start=1) if not name]
    controlled = [i for i, name in enumerate(header, start=1) if _CONTROL.search(name)]
    if controlled:  # a NUL or another control byte: quoting it back in a hint would mislead
        problems.append(
            f"column {', '.join(map(str, controlled))} has control characters (a NUL byte?) in "
            "its name: the file is damaged or in another encoding"
        )
    spellings: dict[str, list[str]] = {}
    for i, name in enumerate(header):
        if name:
            spellings.setdefault(name, []).append(name if written is None else written[i])
    duplicates = []
    for name, spelt in sorted(spellings.items()):
        if len(spelt) > 1:
            alike = len(set(spelt)) > 1
            duplicates.append(f"{name} (written {', '.join(map(repr, spelt))})" if alike else name)
    if duplicates:
        problems.append("duplicate column names: " + ", ".join(duplicates))
    targets, conflicts = mapping.resolve(name for name in header if name)
    problems += conflicts
    missing = _required_columns_missing(set(targets.values()), mapping)
    if missing:
        problems.append("missing required columns: " + ", ".join(missing))
        found = likely_fields(targets, constant_category=mapping.category is not None)
        found = [(column, field) for column, field in found if not _CONTROL.search(column)]
        constant = None
        if "category" in missing and all(field != "category" for _, field in found):
            kinds = ", ".join(c.value for c in Category)
            problems.append(
                f'a file without a category column needs the mapping\'s "category" ({kinds}:'
                " the MOU releases each kind under its own fields and caveats, so give the"
                ' list\'s own; "other" in the example is a placeholder)'
            )
            constant = Category.OTHER.value  # the example's: the user picks the list's kind
        if (hint := mapping_hint(found, category=constant)) is not None:
            problems.append(hint)
        if sum(1 for name in header if _LIKE_A_VALUE.fullmatch(name)) >= 2:
            problems.append(
                "its first line looks like a record, not a header (numbers or dates among the "
                "column names): the file needs a header line naming its columns"
            )
        seen_in_one = [d for d in DELIMITERS if len(header) == 1 and d in header[0]]
        if seen_in_one:
            problems.append(
                f"the header was read as one column holding {seen_in_one[0]!r}: "
                "a file with another delimiter needs the mapping's delimiter setting"
            )
    if problems:
        raise LoadError(source, "; ".join(problems))


def no_rows_inside(source: str, line: int, cells: list[str], delimiter: str, width: int) -> None:
    """Refuse a row whose quoted value runs over lines that read as rows of their own (as
    many delimiters as a row has): a stray quote (``"Fraud``) that the closing quote of a later
    cell happens to end, which the strict reader takes for one row, the rows between lost into
    one value. A value over several lines with fewer delimiters (an address) is kept."""
    if width < 2:
        return
    for cell in cells:
        if any(part.count(delimiter) >= width - 1 for part in cell.splitlines()[1:]):
            raise LoadError(
                source,
                f"malformed CSV (line {line}): a quoted value that starts on line {line} holds "
                "whole rows (a stray quote?)",
            )


#: What the ``csv`` module's complaints about a row mean, said for the rejects file (none of
#: them quotes a value).
_CSV_COMPLAINTS = (
    ("new-line character seen in unquoted field", "a line break inside a value not in quotes"),
    ("field larger than field limit", "a value longer than the CSV reader's limit"),
    ("expected after", "a quoted value followed by text before the delimiter"),
)


def csv_rows(reader: Iterator[list[str]]) -> Iterator[list[str] | csv.Error]:
    """The reader's rows, and for a row the ``csv`` module cannot read, its ``csv.Error``
    instead: the reader goes on from the next line."""
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield exc


def open_quote(line: int, reached: int, exc: csv.Error, header: bool = False) -> str:
    """Why a file is refused whose row starting on ``line`` (its ``header``, if it is that)
    holds a quote the ``csv`` module read on to line ``reached`` and could not close (the row
    where it opened is the one to fix, however far the reader went)."""
    said = str(exc)
    row = "the header" if header else f"the row that starts on line {line}"
    if "unexpected end of data" in said:
        where = "is still open at the end of the file"
    elif "field larger than field limit" in said:
        where = f"is still open on line {reached}, past the CSV reader's limit"
    else:
        where = (
            f"is closed badly on line {reached} ({csv_reason(exc).removeprefix('malformed CSV: ')})"
        )
    return f"malformed CSV (line {line}): a quote opened in {row} {where}"


def csv_reason(exc: csv.Error) -> str:
    """A rejected row's reason for the ``csv`` module's complaint about it."""
    text = str(exc)
    said = next((said for known, said in _CSV_COMPLAINTS if known in text), text)
    return f"malformed CSV: {said}"
