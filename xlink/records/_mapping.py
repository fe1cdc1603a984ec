"""Column mappings: an agency's column names onto xlink's canonical fields (docs/loading.md)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from xlink.documents import DocumentError, parse_document
from xlink.errors import LoadError
from xlink.records.model import Category
from xlink.records.validation import CANONICAL_FIELDS, DateOrder, parse_category

__all__ = ["ERROR_COLUMN", "ColumnMapping", "StrPath"]

StrPath = str | os.PathLike[str]

#: The column (CSV) or key (JSON Lines) a rejects file adds. It is ignored on input, so a
#: corrected rejects file can be loaded again as it is.
ERROR_COLUMN = "xlink_error"

_SETTINGS = ("columns", "date_order", "category")


@dataclass(frozen=True, slots=True)
class ColumnMapping:
    """How to read one agency's files.

    ``columns`` maps an input column (or JSON key) to a canonical field name; a column not named
    here keeps its own name, so a column already called ``family_name`` needs no entry, and any
    column that is not a canonical field goes to the payload. ``date_order`` is the file's
    day/month order. ``category`` is the category of rows that have none (a registry file where
    every row is a sex offender need not repeat it).

    Raises:
        ValueError: a target is not a canonical field (every bad entry is listed).
    """

    columns: Mapping[str, str] = field(default_factory=dict)
    date_order: DateOrder | None = None
    category: Category | None = None

    def __post_init__(self) -> None:
        bad = [
            f"{column!r} -> {target!r}"
            for column, target in self.columns.items()
            if target not in CANONICAL_FIELDS
        ]
        if bad:
            raise ValueError("mapping targets are not canonical fields: " + ", ".join(bad))
        object.__setattr__(self, "columns", MappingProxyType(dict(self.columns)))

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> ColumnMapping:
        """Build a mapping from its document form.

        The full form is ``{"columns": {...}, "date_order": "DMY", "category": "traveller"}``
        (both settings optional). A dict without any of those three keys is read as ``columns``
        alone: ``{"Surname": "family_name", "DOB": "birth_date"}``.

        Raises:
            ValueError: wrong shapes, unknown settings, bad date order or category, or targets
                that are not canonical fields.
        """
        if not any(key in data for key in _SETTINGS):
            data = {"columns": data}
        unknown = sorted(str(k) for k in data if k not in _SETTINGS)
        if unknown:
            raise ValueError("unknown mapping settings: " + ", ".join(unknown))
        columns = data.get("columns", {})
        if not isinstance(columns, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in columns.items()
        ):
            raise ValueError("mapping 'columns' must map column names to field names")
        date_order = data.get("date_order")
        if date_order is not None and (
            not isinstance(date_order, str) or date_order not in tuple(DateOrder)
        ):
            allowed = ", ".join(o.value for o in DateOrder)
            raise ValueError(f"mapping 'date_order' must be one of {allowed}")
        category = data.get("category")
        if category is not None and not isinstance(category, str):
            raise ValueError("mapping 'category' must be a string")
        return cls(
            columns={str(k): str(v) for k, v in columns.items()},
            date_order=DateOrder(date_order) if date_order is not None else None,
            category=parse_category(category) if category is not None else None,
        )

    @classmethod
    def from_file(cls, path: StrPath) -> ColumnMapping:
        """Read a mapping from a ``.json`` or ``.toml`` file (see :meth:`from_dict`).

        Raises:
            LoadError: the file cannot be read, does not parse, or is not a valid mapping.
        """
        source = os.fspath(path)
        try:
            raw = Path(path).read_bytes()
        except FileNotFoundError:
            raise LoadError(source, "mapping file not found") from None
        except OSError as exc:
            raise LoadError(source, f"cannot read mapping file ({exc.strerror})") from None
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
        """The canonical field (or payload key) of ``column``; ``None`` for :data:`ERROR_COLUMN`."""
        if column == ERROR_COLUMN:
            return None
        return self.columns.get(column, column)

    def resolve(self, columns: Iterable[str]) -> tuple[dict[str, str], list[str]]:
        """Map input columns to targets; also return a reason for each field claimed twice."""
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
            if len(names) > 1
        ]
        return targets, conflicts
