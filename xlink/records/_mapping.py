"""Column mappings: an agency's column names onto xlink's canonical fields (docs/loading.md)."""

from __future__ import annotations

import codecs
import difflib
import os
import stat
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from xlink.documents import DocumentError, parse_document
from xlink.errors import LoadError
from xlink.records._fields import category_key
from xlink.records._missing import trim
from xlink.records.model import Category
from xlink.records.validation import (
    CANONICAL_FIELDS,
    DATE_FIELDS,
    EARLIEST_CENTURY_END,
    LATEST_CENTURY_END,
    DateOrder,
    check_century_end,
    parse_category,
)

__all__ = [
    "COMBINE_SEPARATOR",
    "DELIMITERS",
    "ERROR_COLUMN",
    "ColumnMapping",
    "StrPath",
    "is_tsv",
]

StrPath = str | os.PathLike[str]

#: The column (CSV) or key (JSON Lines) a rejects file adds. It is ignored on input, so a
#: corrected rejects file can be loaded again as it is.
ERROR_COLUMN = "xlink_error"
#: The largest mapping file read (a mapping is a few hundred bytes; ``--mapping /dev/zero``
#: must not fill the memory).
MAX_MAPPING_BYTES = 1 << 20

_SETTINGS = (
    "columns",
    "date_order",
    "category",
    "categories",
    "combine",
    "date_orders",
    "two_digit_years_until",
    "encoding",
    "delimiter",
)

#: The delimiters a CSV file may use (the mapping's ``delimiter``).
DELIMITERS = (",", ";", "\t", "|")


def _ascii_compatible(encoding: str) -> bool:
    """Whether ``encoding`` is a codec that writes the CSV syntax (ASCII) as ASCII."""
    try:
        encoded = codecs.lookup(encoding).encode(',"\n;|\tAz09')[0]
        return encoded.removeprefix(codecs.BOM_UTF8) == b',"\n;|\tAz09'
    except (LookupError, TypeError, ValueError, UnicodeError):
        return False


def _folded(name: str) -> str:
    """A column name as a header may vary it: case, spaces and how its accents are encoded
    aside (``FAMILY NAME``; ``Prénom`` with a combining accent, as macOS writes it)."""
    return " ".join(unicodedata.normalize("NFC", name).split()).casefold()


def _header_cell(text: str) -> str:
    """A header cell's column name: in composed form (NFC: ``é`` one character, whichever
    way the file wrote it), without the spaces and invisible characters around it (a zero-width
    space, a second byte-order mark, a bidirectional mark: what :func:`~xlink.records._missing.
    trim` strips from values), which no one types into a name on purpose."""
    return trim(unicodedata.normalize("NFC", text))


#: What joins the parts of a combined field (empty parts are skipped).
COMBINE_SEPARATOR = " "


def is_tsv(path: StrPath) -> bool:
    """Whether ``path`` names a tab-separated file (``.tsv``, in any case): read with tabs
    unless its mapping says otherwise, its rejects written to a ``.tsv`` file."""
    return Path(path).suffix.lower() == ".tsv"


def _unknown_settings(names: list[str]) -> str:
    """The error for settings a mapping does not have, with the one each was probably meant
    to be."""
    said = []
    for name in names:
        close = difflib.get_close_matches(name, _SETTINGS, n=1)
        said.append(f"{name} (did you mean {close[0]}?)" if close else name)
    return f"unknown mapping settings: {', '.join(said)}; the settings are {', '.join(_SETTINGS)}"


@dataclass(frozen=True, slots=True)
class ColumnMapping:
    """How to read one agency's files.

    ``columns`` maps an input column (or JSON key) to a canonical field name; a column not named
    here keeps its own name, so a column already called ``family_name`` needs no entry, and any
    column that is not a canonical field goes to the payload. ``date_order`` is the file's
    day/month order. ``category`` is the category of rows that have none (a registry file where
    every row is a sex offender need not repeat it). ``combine`` builds one canonical field from
    several columns, in order, joined by :data:`COMBINE_SEPARATOR` with empty parts skipped
    (``{"given_name": ("first", "middle")}``); a combined column is used for nothing else.
    ``categories`` says what a file's own category values mean: ``{"sex offender – high
    risk": "sex_offender"}``, the written value matched case-insensitively and with its runs of
    spaces as one (:func:`category_key`), each mapped to one of the four kinds; a value it does
    not name is read as without it. ``date_orders`` gives one of
    :data:`~xlink.records.validation.DATE_FIELDS` a date order of its own, over ``date_order``
    (``{"doc_expiry": DateOrder.YMD}``). ``two_digit_years_until``
    reads a date of birth written with a two-digit year (``03/04/80``) as the latest year not
    after it whose last two digits those are (with 2026, ``80`` is 1980 and ``21`` is 2021):
    the file's people were born in the hundred years up to that year. Without it, such a date
    is a field error (and its record kept without it, as for any bad date). ``encoding`` is the
    file's text encoding (a Python codec name such as ``cp1252`` or ``latin-1``; UTF-8 by
    default; a file starting with a UTF-16 byte-order mark is read as UTF-16 whatever it says),
    and ``delimiter`` a CSV file's field separator (one of :data:`DELIMITERS`; without it, a
    tab for a ``.tsv`` file and a comma for any other: :meth:`delimiter_of`).

    Raises:
        ValueError: a target is not a canonical field (every bad entry is listed), a combine
            lists no columns or uses a column that is also mapped or combined elsewhere, or a
            ``date_orders`` entry is not a date field with a date order, or
            ``two_digit_years_until`` is not a year from 1949 to 2200, an ``encoding`` that is
            no codec that writes ASCII as ASCII, or a ``delimiter`` not in :data:`DELIMITERS`.
    """

    columns: Mapping[str, str] = field(default_factory=dict)
    date_order: DateOrder | None = None
    category: Category | None = None
    categories: Mapping[str, Category] = field(default_factory=dict)
    combine: Mapping[str, Sequence[str]] = field(default_factory=dict)
    date_orders: Mapping[str, DateOrder] = field(default_factory=dict)
    two_digit_years_until: int | None = None
    encoding: str = "utf-8"
    delimiter: str | None = None
    _combined_into: Mapping[str, str] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _by_folded: Mapping[str, str] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        bad = [
            f"{column!r} -> {target!r}"
            for column, target in self.columns.items()
            if target not in CANONICAL_FIELDS
        ]
        bad += [
            f"{' + '.join(repr(c) for c in parts)} -> {target!r}"
            for target, parts in self.combine.items()
            if target not in CANONICAL_FIELDS
        ]
        if bad:
            raise ValueError("mapping targets are not canonical fields: " + ", ".join(bad))
        empty = [repr(target) for target, parts in self.combine.items() if not parts]
        if empty:
            raise ValueError("mapping 'combine' lists no columns for " + ", ".join(empty))
        combined_into: dict[str, str] = {}
        reused: list[str] = []
        for target, parts in self.combine.items():
            for column in parts:
                if column in combined_into or column in self.columns:
                    reused.append(repr(column))
                combined_into[column] = target
        if reused:
            raise ValueError(
                "mapping columns combined and also mapped or combined elsewhere: "
                + ", ".join(dict.fromkeys(reused))
            )
        not_dates = [repr(name) for name in self.date_orders if name not in DATE_FIELDS]
        if not_dates:
            raise ValueError(
                "mapping 'date_orders' names fields that are not date fields ("
                + ", ".join(DATE_FIELDS)
                + "): "
                + ", ".join(not_dates)
            )
        date_orders = {name: DateOrder(order) for name, order in self.date_orders.items()}
        try:
            check_century_end(self.two_digit_years_until)
        except ValueError:
            raise ValueError(
                f"mapping 'two_digit_years_until' must be a year from {EARLIEST_CENTURY_END} "
                f"to {LATEST_CENTURY_END}"
            ) from None
        if not _ascii_compatible(self.encoding):
            raise ValueError(
                f"mapping 'encoding' {self.encoding!r} is not a text encoding that writes ASCII "
                'as ASCII (for example "utf-8", "cp1252", "latin-1")'
            )
        if self.delimiter is not None and self.delimiter not in DELIMITERS:
            raise ValueError(
                "mapping 'delimiter' must be one of " + ", ".join(repr(d) for d in DELIMITERS)
            )
        kinds: dict[str, set[Category]] = {}
        said: dict[str, list[str]] = {}
        for written, kind in self.categories.items():
            key = category_key(written)
            kinds.setdefault(key, set()).add(Category(kind))
            said.setdefault(key, []).append(repr(written))
        if "" in kinds:
            raise ValueError("mapping 'categories' names an empty value")
        clash = [", ".join(said[key]) for key, found in kinds.items() if len(found) > 1]
        if clash:
            raise ValueError(
                "mapping 'categories' gives one value, in another case or spacing, two kinds: "
                + "; ".join(clash)
            )
        categories = {key: next(iter(found)) for key, found in kinds.items()}
        object.__setattr__(self, "categories", MappingProxyType(categories))
        object.__setattr__(self, "columns", MappingProxyType(dict(self.columns)))
        combine = {target: tuple(parts) for target, parts in self.combine.items()}
        object.__setattr__(self, "combine", MappingProxyType(combine))
        object.__setattr__(self, "date_orders", MappingProxyType(date_orders))
        object.__setattr__(self, "_combined_into", MappingProxyType(combined_into))
        # A header's column matches a name the mapping gives, case and spaces aside, when no
        # other of its names folds the same way (never a field it does not name: a column
        # "Category" beside a mapping's constant category stays in the payload).
        folded: dict[str, set[str]] = {}
        for name in (*combined_into, *self.columns):
            folded.setdefault(_folded(name), set()).add(name)
        by_folded = {k: next(iter(v)) for k, v in folded.items() if len(v) == 1}
        object.__setattr__(self, "_by_folded", MappingProxyType(by_folded))

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> ColumnMapping:
        """Build a mapping from its document form.

        The full form is ``{"columns": {...}, "date_order": "DMY", "category": "traveller",
        "categories": {"sex offender - high risk": "sex_offender"}, "combine": {"given_name":
        ["first", "middle"]}, "date_orders": {"doc_expiry": "YMD"}, "two_digit_years_until":
        2026, "encoding": "cp1252", "delimiter": ";"}`` (every setting
        optional). A dict without any of those nine keys is read as ``columns``
        alone: ``{"Surname": "family_name", "DOB": "birth_date"}``.

        Raises:
            ValueError: wrong shapes, unknown settings, bad date orders or category, targets
                that are not canonical fields, or a combine that reuses a column.
        """
        if not any(key in data for key in _SETTINGS):
            # a flat column table maps names to field names: a key whose value is an object
            # or a list, or one named like a setting whose value is no field, is a setting
            # misspelt ({"colums": {...}}, {"dateorder": "DMY"}), not a column
            unknown = sorted(
                str(k)
                for k, v in data.items()
                if not isinstance(v, str)
                or (v not in CANONICAL_FIELDS and difflib.get_close_matches(str(k), _SETTINGS, 1))
            )
            if unknown:
                raise ValueError(_unknown_settings(unknown))
            data = {"columns": data}
        unknown = sorted(str(k) for k in data if k not in _SETTINGS)
        if unknown:
            raise ValueError(_unknown_settings(unknown))
        columns = data.get("columns", {})
        if not isinstance(columns, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in columns.items()
        ):
            raise ValueError("mapping 'columns' must map column names to field names")
        allowed = ", ".join(o.value for o in DateOrder)
        date_order = data.get("date_order")
        if date_order is not None and (
            not isinstance(date_order, str) or date_order not in tuple(DateOrder)
        ):
            raise ValueError(f"mapping 'date_order' must be one of {allowed}")
        category = data.get("category")
        if category is not None and not isinstance(category, str):
            raise ValueError("mapping 'category' must be a string")
        categories = data.get("categories", {})
        if not isinstance(categories, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in categories.items()
        ):
            raise ValueError("mapping 'categories' must map a file's values to category names")
        kinds: dict[str, Category] = {}
        for written, kind in categories.items():
            try:
                kinds[written] = parse_category(kind)
            except ValueError:
                allowed = ", ".join(c.value for c in Category)
                raise ValueError(
                    f"mapping 'categories': {written!r} -> {kind!r}: not a category "
                    f"(one of {allowed})"
                ) from None
        combine = data.get("combine", {})
        if not isinstance(combine, Mapping) or not all(
            isinstance(k, str)
            and isinstance(v, list | tuple)
            and all(isinstance(c, str) for c in v)
            for k, v in combine.items()
        ):
            raise ValueError("mapping 'combine' must map field names to lists of column names")
        date_orders = data.get("date_orders", {})
        if not isinstance(date_orders, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in date_orders.items()
        ):
            raise ValueError("mapping 'date_orders' must map date fields to date orders")
        if any(v not in tuple(DateOrder) for v in date_orders.values()):
            raise ValueError(f"mapping 'date_orders' values must be one of {allowed}")
        until = data.get("two_digit_years_until")
        if until is not None and (isinstance(until, bool) or not isinstance(until, int)):
            raise ValueError("mapping 'two_digit_years_until' must be a year (an integer)")
        encoding, delimiter = data.get("encoding", "utf-8"), data.get("delimiter")
        if not isinstance(encoding, str) or not isinstance(delimiter, str | None):
            raise ValueError("mapping 'encoding' and 'delimiter' must be strings")
        return cls(
            columns={str(k): str(v) for k, v in columns.items()},
            date_order=DateOrder(date_order) if date_order is not None else None,
            category=parse_category(category) if category is not None else None,
            categories=kinds,
            combine={str(k): tuple(str(c) for c in v) for k, v in combine.items()},
            date_orders={str(k): DateOrder(v) for k, v in date_orders.items()},
            two_digit_years_until=until,
            encoding=encoding,
            delimiter=delimiter,
        )

    @classmethod
    def from_file(cls, path: StrPath) -> ColumnMapping:
        """Read a mapping from a ``.json`` or ``.toml`` file (see :meth:`from_dict`).

        Raises:
            LoadError: the file cannot be read, does not parse, or is not a valid mapping.
        """
        source = os.fspath(path)
        try:
            with Path(path).open("rb") as fh:
                if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                    raise LoadError(source, "a mapping file must be a regular file")
                raw = fh.read(MAX_MAPPING_BYTES + 1)
        except FileNotFoundError:
            raise LoadError(source, "mapping file not found") from None
        except OSError as exc:
            raise LoadError(source, f"cannot read mapping file ({exc.strerror})") from None
        if len(raw) > MAX_MAPPING_BYTES:
            raise LoadError(source, f"a mapping file is at most {MAX_MAPPING_BYTES} bytes")
        fmt = "toml" if Path(path).suffix.lower() == ".toml" else "json"
        try:
            data = parse_document(raw, fmt)
        except DocumentError as exc:
            raise LoadError(source, f"mapping file does not parse: {exc.reason}") from None
        if not isinstance(data, Mapping):
            raise LoadError(source, "a mapping file must hold one object/table")
        try:
            return cls.from_dict(data)
        except ValueError as exc:
            raise LoadError(source, str(exc)) from None

    @classmethod
    def coerce(
        cls, mapping: ColumnMapping | Mapping[str, object] | StrPath | None
    ) -> ColumnMapping:
        """Accept the forms the loaders take: an instance, a dict, a file path, or ``None``.

        Raises:
            LoadError: from :meth:`from_file`. ValueError: from :meth:`from_dict`.
        """
        if mapping is None:
            return cls()
        if isinstance(mapping, ColumnMapping):
            return mapping
        if isinstance(mapping, Mapping):
            return cls.from_dict(mapping)
        return cls.from_file(mapping)

    def target(self, column: str) -> str | None:
        """The canonical field (or payload key) of ``column``, the field it is combined into,
        or ``None`` for :data:`ERROR_COLUMN`."""
        if column == ERROR_COLUMN:
            return None
        return self._combined_into.get(column) or self.columns.get(column, column)

    def delimiter_of(self, path: StrPath) -> str:
        """The field separator of the CSV file ``path``: the mapping's ``delimiter``, else a
        tab for a ``.tsv`` file (its name says so) and a comma for any other."""
        if self.delimiter is not None:
            return self.delimiter
        return "\t" if is_tsv(path) else ","

    def column_names(self, written: Iterable[str]) -> list[str]:
        """Column names (a CSV header's, a DataFrame's, a JSON object's keys) as the mapping
        knows them: each in composed form without the spaces and invisible characters around
        it (:func:`_header_cell`); then a column the mapping does not name is read as a name it
        gives (in ``columns`` or ``combine``) that it equals case and spaces aside (``SURNAME``
        for ``Surname``), when only one such name does. Any other column keeps its name (a
        column the mapping does not name is not matched to a canonical field by case: it goes
        to the payload)."""
        known = {*self._combined_into, *self.columns}
        names = [_header_cell(name) for name in written]
        return [
            name if not name or name in known else self._by_folded.get(_folded(name), name)
            for name in names
        ]

    def resolve(self, columns: Iterable[str]) -> tuple[dict[str, str], list[str]]:
        """Map input columns to targets; also return a reason for each field claimed twice
        (the columns of one combine claim their field together, not twice)."""
        targets: dict[str, str] = {}
        claimed: dict[str, list[str]] = {}
        for column in columns:
            target = self.target(column)
            if target is not None:
                targets[column] = target
                claimed.setdefault(target, []).append(column)
        conflicts = [
            f"columns {', '.join(repr(c) for c in names)} all map to {target!r}"
            for target, names in claimed.items()
            if len(set(names)) > 1 and not set(names) <= set(self.combine.get(target, ()))
        ]
        return targets, conflicts

    def assemble(self, values: Mapping[str, str]) -> dict[str, str]:
        """One row's values by target (after :meth:`resolve` found no conflict): a combined
        field is its columns' non-empty values, stripped, in the combine's order, joined by
        :data:`COMBINE_SEPARATOR`; it is present when any of its columns is."""
        out: dict[str, str] = {}
        for column, value in values.items():
            target = self.target(column)
            if target is not None and column not in self._combined_into:
                out[target] = value
        for target, parts in self.combine.items():
            if any(column in values for column in parts):
                present = (values.get(column, "").strip() for column in parts)
                out[target] = COMBINE_SEPARATOR.join(p for p in present if p)
        return out

    def assembler(self, columns: Sequence[str]) -> Callable[[Mapping[str, str]], dict[str, str]]:
        """:meth:`assemble` for rows whose columns are exactly ``columns``, in that order (a
        CSV file's header), with the work that depends only on the columns done once."""
        direct = [
            (column, target)
            for column in columns
            if (target := self.target(column)) is not None and column not in self._combined_into
        ]
        present = set(columns)
        combined = [
            (target, parts)
            for target, parts in self.combine.items()
            if any(column in present for column in parts)
        ]

        def assemble(values: Mapping[str, str]) -> dict[str, str]:
            out = {target: values[column] for column, target in direct}
            for target, parts in combined:
                found = (values.get(column, "").strip() for column in parts)
                out[target] = COMBINE_SEPARATOR.join(p for p in found if p)
            return out

        return assemble

    def source_name(self, target: str, targets: Mapping[str, str]) -> str:
        """How errors name ``target``: the input column that gave it (``targets`` as from
        :meth:`resolve`), or a combined field's columns joined by ``+``."""
        if target in self.combine:
            return "+".join(self.combine[target])
        for column, mapped in targets.items():
            if mapped == target:
                return column
        return target
