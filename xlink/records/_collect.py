"""The collector every loader feeds (:mod:`xlink.records.loaders`): each row mapped,
checked for a repeated id, validated, and kept or rejected under the policy; then the rejects
and field-errors files written or removed, and the :class:`LoadResult`."""

from __future__ import annotations

import datetime
import json
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

from xlink.errors import FieldError, NothingLoaded
from xlink.records import _rejects
from xlink.records._dates import KEPT_SWAPPED
from xlink.records._garbled import GarbledNames
from xlink.records._mapping import ColumnMapping, StrPath
from xlink.records._missing import trim
from xlink.records._rejects import Reject
from xlink.records._rows import RawRow
from xlink.records.header_hints import (
    MAPPING_DOCS,
    likely_fields,
    mapping_entries,
    mapping_hint,
    unread_json,
    unread_text,
)
from xlink.records.model import PersonRecord
from xlink.records.validation import (
    CANONICAL_FIELDS,
    DOCUMENT_FIELDS,
    BadFieldPolicy,
    DateOrder,
    RowChecker,
)

__all__ = ["PROGRESS_EVERY", "Collector", "LoadResult", "ProgressCallback", "rejects_target"]

#: ``progress`` is called after every this many rows, and once at the end.
PROGRESS_EVERY = 10_000

ProgressCallback = Callable[[int], None]

#: Errors in these (besides :data:`~xlink.records.validation.ROW_FIELDS`) reject a row whatever
#: the policy: a line that is not a JSON object, a row that cannot be split into its columns, or
#: two columns claiming one field.
_ROW_PSEUDO_FIELDS = frozenset({"<line>", "<row>"})


def _records(count: int) -> str:
    """``1 record has`` or ``3 records have``."""
    return f"{count} record has" if count == 1 else f"{count} records have"


#: How a field error ends for a date kept by reading it the other way round.
_SWAPPED = f"({KEPT_SWAPPED})"
#: How many such dates, a fifth of the records at least, make a load ask about its date order.
_SWAPPED_AT_LEAST = 10


#: Rejected rows from which a load's summary gives the share rejected and the commonest first
#: reason, when they are a fifth of its rows or more: a setting (the mapping's category
#: values, a date order) rather than typing errors.
_MANY_REJECTED: Final = 10
_NUMBER: Final = re.compile(r"\d+")


@dataclass(frozen=True, slots=True, repr=False)
class LoadResult:
    """What one load produced: the good records, the rejected rows, the fields left out of good
    records (``DROP_FIELD``), and where rejects and field errors went."""

    source: str
    records: tuple[PersonRecord, ...]
    rejects: tuple[Reject, ...]
    rejects_path: Path | None = None  # set only when a rejects file was written
    field_errors: tuple[FieldError, ...] = ()  # of kept records; field names as the input's
    field_errors_path: Path | None = None  # set only when a field-errors file was written
    #: Columns not read as a field (kept in the payload, never matched on) whose names
    #: usually hold one that no column fills: ``(column, field)``, in the order first read.
    unread_columns: tuple[tuple[str, str], ...] = ()
    #: Columns the mapping names that the file does not have, whose fields no column fills
    #: (a renamed export column, a typo): ``(column, field)``, in the mapping's order.
    absent_columns: tuple[tuple[str, str], ...] = ()
    #: Records whose names look like UTF-8 read in another encoding (``MÃ¼ller``), and records
    #: whose names lost a character in export (``NGUY?N``, ``M\ufffdller``): loaded as written.
    misencoded_names: int = 0
    lost_characters: int = 0

    @property
    def loaded(self) -> int:
        return len(self.records)

    @property
    def rejected(self) -> int:
        return len(self.rejects)

    @property
    def total(self) -> int:
        """Data rows read (blank lines not counted)."""
        return self.loaded + self.rejected

    @property
    def with_field_errors(self) -> int:
        """Records loaded with at least one bad field left out."""
        return len({e.line for e in self.field_errors})

    @property
    def read_swapped(self) -> int:
        """Dates kept only by reading day and month the other way round from the file's
        date order: many say the order is wrong, and then the dates whose day is 12 or less
        were read wrongly without a word."""
        return sum(1 for e in self.field_errors if e.reason.endswith(_SWAPPED))

    @property
    def quiet(self) -> bool:
        """Whether the load has nothing to say beyond its count: no row rejected, no field
        left out, no column unread or absent, no garbled name."""
        return not (
            self.rejects
            or self.field_errors
            or self.unread_columns
            or self.absent_columns
            or self.misencoded_names
            or self.lost_characters
        )

    def as_json(self) -> dict[str, object]:
        """The load as ``xlink prepare --json`` and ``xlink eval --json`` give it: its counts,
        files, the columns it did not read or did not find, its garbled names, :attr:`quiet`
        and :meth:`summary` (which quotes no value)."""
        return {
            "source": self.source,
            "loaded": self.loaded,
            "rejected": self.rejected,
            "with_field_errors": self.with_field_errors,
            "field_errors": len(self.field_errors),
            "read_swapped": self.read_swapped,
            "rejects_path": None if self.rejects_path is None else str(self.rejects_path),
            "field_errors_path": (
                None if self.field_errors_path is None else str(self.field_errors_path)
            ),
            "unread_columns": unread_json(self.unread_columns),
            "absent_columns": [{"column": c, "field": f} for c, f in self.absent_columns],
            "misencoded_names": self.misencoded_names,
            "lost_characters": self.lost_characters,
            "quiet": self.quiet,
            "summary": self.summary(),
        }

    def summary(self) -> str:
        """One line for people: ``loaded 998 (3 with bad fields left out), rejected 2 (see
        rejects: x.rejects.csv; field errors: x.field-errors.csv)``; the parts about field
        errors and files appear only when there are some; when a fifth of the rows or more
        were rejected (at least :data:`_MANY_REJECTED`), the share and the commonest first
        reason (a setting, the mapping's, rather than typing errors); and last, the
        :attr:`unread_columns` with the mapping entries that would read them."""
        text = f"loaded {self.loaded}"
        if self.field_errors:
            text += f" ({self.with_field_errors} with bad fields left out)"
        text += f", rejected {self.rejected}"
        files = []
        if self.rejects_path is not None:
            files.append(f"rejects: {self.rejects_path}")
        if self.field_errors_path is not None:
            files.append(f"field errors: {self.field_errors_path}")
        if files:
            text += f" (see {'; '.join(files)})"
        # by its words: "first seen on line 12" and "on line 40" are one reason (shown as the
        # first row gives it)
        first: Counter[tuple[str, str]] = Counter()
        shown: dict[tuple[str, str], str] = {}
        for e in (e for r in self.rejects for e in r.errors[:1]):
            key = (e.field, _NUMBER.sub("N", e.reason))
            first[key] += 1
            shown.setdefault(key, e.reason)
        if first and self.rejected >= _MANY_REJECTED and self.rejected * 5 >= self.total:
            commonest, count = first.most_common(1)[0]
            field, reason = commonest[0], shown[commonest]
            text += (
                f"; {self.rejected * 100 // self.total}% of the rows rejected, {count} of them "
                f"first for {field}: {reason}"
            )
        swapped = self.read_swapped
        if swapped >= _SWAPPED_AT_LEAST and swapped * 5 >= self.loaded:
            text += (
                f"; {swapped} dates read only with day and month the other way round: is the "
                "mapping's date_order right? (the dates with a day of 12 or less were read "
                "by it)"
            )
        if self.misencoded_names:
            text += (
                f"; {_records(self.misencoded_names)} names that look like UTF-8 read as "
                "another encoding (Ã© for é): the mapping's encoding, or text pasted or "
                "exported twice"
            )
        if self.lost_characters:
            text += (
                f"; {_records(self.lost_characters)} names that lost a character in export "
                "(? or \ufffd for a letter): export the file as UTF-8"
            )
        if self.absent_columns:
            named = ", ".join(
                f"{json.dumps(c, ensure_ascii=False)} ({f})" for c, f in self.absent_columns
            )
            text += f"; the mapping names columns the file does not have, so nothing fills: {named}"
        if self.unread_columns:
            text += (
                f"; {unread_text(self.unread_columns)}: the mapping's columns would read them, "
                "e.g. "
                f"{mapping_entries(self.unread_columns)} ({MAPPING_DOCS})"
            )
        return text

    def __repr__(self) -> str:
        return f"LoadResult(source={self.source!r}, {self.summary()})"


_ColumnsPlan = tuple[dict[str, str], list[str], Callable[[Mapping[str, str]], dict[str, str]]]


class Collector:
    """Validates rows one by one: mapping, duplicate ids, validation, error column names, and
    the policy's verdict on each row."""

    def __init__(
        self,
        mapping: ColumnMapping,
        date_order: DateOrder | str | None,
        bad_field: BadFieldPolicy | str,
        progress: ProgressCallback | None,
        today: datetime.date | None,
    ) -> None:
        self.mapping = mapping
        self.date_order = DateOrder(date_order or mapping.date_order or DateOrder.UNKNOWN)
        self.bad_field = BadFieldPolicy(bad_field)
        self.progress = progress
        self.records: list[PersonRecord] = []
        self.rejects: list[Reject] = []
        self.field_errors: list[FieldError] = []
        self.first_line: dict[str, int] = {}
        self.padded: set[str] = set()  # ids first seen with invisible characters at an end
        self.checker = RowChecker(
            date_order=self.date_order,
            date_orders=mapping.date_orders,
            two_digit_years_until=mapping.two_digit_years_until,
            default_category=mapping.category,
            categories=mapping.categories,
            bad_field=self.bad_field,
            today=today,
        )
        # per set of columns (in order): what resolve() says of them, and their assembler
        self._plans: dict[tuple[str, ...], _ColumnsPlan] = {}
        self.unread: dict[str, str] = {}  # LoadResult.unread_columns
        self.filled: set[str] = set()  # the fields some column of the load fills
        self.garbled = GarbledNames()
        self._documents = False  # a row with a documents list (JSON Lines) fills doc_*

    def _plan(self, values: Mapping[str, str]) -> _ColumnsPlan:
        columns = tuple(values)
        plan = self._plans.get(columns)
        if plan is None:
            if len(self._plans) >= 1024:  # JSON Lines objects may each have their own keys
                self._plans.clear()
            targets, conflicts = self.mapping.resolve(columns)
            plan = (targets, conflicts, self.mapping.assembler(columns))
            self.filled.update(targets.values())
            found = likely_fields(targets, constant_category=self.mapping.category is not None)
            for column, field in found:  # a field once in a load (JSON Lines keys vary)
                if field not in self.unread.values():  # at most one a canonical field
                    self.unread[column] = field
            self._plans[columns] = plan
        return plan

    def _breaks_row(self, error: FieldError) -> bool:
        """Whether a loader's error (named by the input's column) rejects the row whatever the
        policy: a row pseudo field, or a bad value for the record id or the category."""
        target = self.mapping.target(error.field)
        return error.field in _ROW_PSEUDO_FIELDS or target in ("record_id", "category")

    def _absent(self) -> tuple[tuple[str, str], ...]:
        """:attr:`LoadResult.absent_columns`: a mapping's constant category fills its field, a
        documents list the document fields."""
        mapping = self.mapping
        named = [*mapping.columns.items()]
        named += [(" + ".join(parts), field) for field, parts in mapping.combine.items()]
        return tuple(
            (column, field)
            for column, field in named
            if field in CANONICAL_FIELDS
            and field not in self.filled
            and not (field == "category" and mapping.category is not None)
            and not (self._documents and field in DOCUMENT_FIELDS)
        )

    def _unread(self) -> tuple[tuple[str, str], ...]:
        """:attr:`LoadResult.unread_columns`: a documents list fills the document fields."""
        return tuple(
            (c, f) for c, f in self.unread.items() if not (self._documents and f in DOCUMENT_FIELDS)
        )

    def add(self, row: RawRow) -> None:
        if row.documents:
            self._documents = True
        errors = list(row.errors)
        rejected = row.values is None or any(self._breaks_row(e) for e in errors)
        record: PersonRecord | None = None
        if row.values is not None:
            targets, conflicts, assemble = self._plan(row.values)
            if conflicts:
                errors += (FieldError(row.line, "<row>", reason) for reason in conflicts)
                rejected = True
            canonical = assemble(row.values)
            as_read = canonical.get("record_id", "")
            record_id = trim(as_read)
            if record_id in self.first_line:
                reason = f"duplicate record_id (first seen on line {self.first_line[record_id]})"
                if as_read.strip() != record_id or record_id in self.padded:  # does not show
                    reason += ", once invisible characters at its ends are removed"
                errors.append(
                    FieldError(row.line, self.mapping.source_name("record_id", targets), reason)
                )
                rejected = True
            elif record_id:
                self.first_line[record_id] = row.line
                if as_read.strip() != record_id:
                    self.padded.add(record_id)
            checked = self.checker.check(canonical, row.line, row.documents)
            if checked.errors:
                errors += (
                    replace(e, field=self.mapping.source_name(e.field, targets))
                    for e in checked.errors
                )
            record = checked.record
        if self.bad_field is BadFieldPolicy.REJECT_ROW and errors:
            rejected = True
        if rejected or record is None:
            self.rejects.append(Reject(row.line, row.raw, tuple(errors)))
        else:
            self.records.append(record)
            self.field_errors += errors
            self.garbled.note(canonical)  # a record kept: its names as the file wrote them
        done = len(self.records) + len(self.rejects)
        if self.progress is not None and done % PROGRESS_EVERY == 0:
            self.progress(done)

    def finish(
        self,
        source: str,
        rejects_path: Path | None,
        write: Callable[[Path, Sequence[Reject]], None],
    ) -> LoadResult:
        done = len(self.records) + len(self.rejects)
        if self.progress is not None and done % PROGRESS_EVERY != 0:
            self.progress(done)
        written = field_errors_written = None
        if rejects_path is not None:
            if self.rejects:
                write(rejects_path, self.rejects)
                written = rejects_path
            else:
                _rejects.remove_stale(rejects_path)
            field_errors_path = _rejects.field_errors_path(rejects_path)
            if self.field_errors:
                _rejects.write_field_errors(field_errors_path, self.field_errors)
                field_errors_written = field_errors_path
            else:
                _rejects.remove_stale(field_errors_path)
        if not self.records:
            written_to = None if written is None else str(written)
            hint = mapping_hint(self._unread())
            raise NothingLoaded(source, self.rejects, written_to, hint=hint)
        return LoadResult(
            source,
            tuple(self.records),
            tuple(self.rejects),
            written,
            tuple(self.field_errors),
            field_errors_written,
            self._unread(),
            self._absent(),
            self.garbled.misencoded,
            self.garbled.lost,
        )


def rejects_target(
    path: Path | None, rejects_path: StrPath | None, write_rejects: bool, extension: str
) -> Path | None:
    """Where rejects go (``None``: nowhere; ``path`` ``None``: a DataFrame, only if given)."""
    if not write_rejects or (path is None and rejects_path is None):
        return None
    target = Path(rejects_path) if rejects_path is not None else None
    if target is None:
        assert path is not None
        target = _rejects.default_rejects_path(path, extension)
    field_errors = _rejects.field_errors_path(target)
    if field_errors.resolve() == target.resolve():
        raise ValueError("the field-errors file would overwrite the rejects file")
    if path is not None and path.resolve() in (target.resolve(), field_errors.resolve()):
        raise ValueError("the rejects or field-errors file would overwrite the input")
    return target
