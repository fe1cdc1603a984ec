"""Validation: one raw input row in, a :class:`PersonRecord` or every :class:`FieldError` out.

This is step 1 of an exchange (DESIGN.md §2): loaders turn CSV lines, JSON objects and DataFrame
rows into a mapping of *canonical field names* to strings and hand it to :func:`validate_row`.
Everything here is pure: no I/O, no clock, no randomness.

The ``parse_*`` functions (re-exported from ``_fields``) each read one field and raise
``ValueError`` whose message is a reason fit for a :class:`FieldError`: it never quotes the value,
because values may be identities.
:func:`validate_row` calls them all and collects every problem in the row, not just the first.

Canonical fields (see ``docs/loading.md``): ``record_id`` and ``category`` are required, and at
least one of ``given_name``, ``middle_name``, ``family_name``, ``full_name``. Any key that is not a
canonical field goes, unchanged, into :attr:`PersonRecord.payload`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from xlink.errors import FieldError
from xlink.records._fields import (
    DateOrder,
    parse_aliases,
    parse_birth_date,
    parse_category,
    parse_country_code,
    parse_doc_type,
    parse_grading,
    parse_handling_code,
    parse_nationalities,
    parse_sex,
)
from xlink.records.model import (
    Address,
    Category,
    HandlingCode,
    IdentityDocument,
    PersonName,
    PersonRecord,
    SourceMetadata,
)

__all__ = [
    "CANONICAL_FIELDS",
    "DOCUMENT_FIELDS",
    "NAME_FIELDS",
    "NAME_PSEUDO_FIELD",
    "DateOrder",
    "parse_aliases",
    "parse_birth_date",
    "parse_category",
    "parse_country_code",
    "parse_doc_type",
    "parse_grading",
    "parse_handling_code",
    "parse_nationalities",
    "parse_sex",
    "validate_row",
]

_T = TypeVar("_T")

NAME_FIELDS = ("given_name", "middle_name", "family_name", "full_name")
DOCUMENT_FIELDS = ("doc_type", "doc_number", "doc_country", "doc_expiry")
_ADDRESS_FIELDS = ("address", "locality", "region", "postcode", "country")
_SOURCE_FIELDS = ("source_id", "grading", "handling_code", "handling_conditions")

#: Every field name :func:`validate_row` understands, in the order errors are reported.
CANONICAL_FIELDS: tuple[str, ...] = (
    "record_id",
    "category",
    *NAME_FIELDS,
    "aliases",
    "birth_date",
    "sex",
    "nationalities",
    "birth_place",
    *DOCUMENT_FIELDS,
    *_ADDRESS_FIELDS,
    *_SOURCE_FIELDS,
)
_CANONICAL = frozenset(CANONICAL_FIELDS)

#: The :attr:`FieldError.field` used when a row has no name at all (no single column is at fault).
NAME_PSEUDO_FIELD = "<name>"

_ERROR_ORDER = {
    f: i for i, f in enumerate((*CANONICAL_FIELDS[:6], NAME_PSEUDO_FIELD, *CANONICAL_FIELDS[6:]))
}


class _RowReader:
    """Reads fields of one row, collecting a :class:`FieldError` for each parse failure."""

    def __init__(self, line: int, values: Mapping[str, str]) -> None:
        self.line = line
        self.values = values
        self.errors: list[FieldError] = []

    def text(self, field: str) -> str:
        return self.values.get(field, "").strip()

    def error(self, field: str, reason: str) -> None:
        self.errors.append(FieldError(self.line, field, reason))

    def parse(self, field: str, parser: Callable[[str], _T]) -> _T | None:
        text = self.text(field)
        if not text:
            return None
        try:
            return parser(text)
        except ValueError as exc:
            self.error(field, str(exc))
            return None


def _read_document(reader: _RowReader, date_order: DateOrder) -> IdentityDocument | None:
    present = any(reader.text(f) for f in DOCUMENT_FIELDS)
    doc_type = reader.parse("doc_type", parse_doc_type) or ""
    country = reader.parse("doc_country", parse_country_code) or ""
    expiry = reader.parse("doc_expiry", lambda t: parse_birth_date(t, date_order).isoformat())
    number = reader.text("doc_number")
    if present and not number:
        reader.error("doc_number", "document number missing")
    if not (present and number):
        return None
    return IdentityDocument(doc_type, number, country, expiry or "")


def _read_documents(
    reader: _RowReader, documents: Sequence[Mapping[str, str]], date_order: DateOrder
) -> tuple[IdentityDocument, ...]:
    found: list[IdentityDocument] = []
    if (doc := _read_document(reader, date_order)) is not None:
        found.append(doc)
    for index, fields in enumerate(documents):
        sub = _RowReader(reader.line, fields)
        if not any(sub.text(f) for f in DOCUMENT_FIELDS):
            reader.error(f"documents[{index}]", "empty document")
        elif (doc := _read_document(sub, date_order)) is not None:
            found.append(doc)
        reader.errors.extend(
            FieldError(e.line, f"documents[{index}].{e.field}", e.reason) for e in sub.errors
        )
    return tuple(found)


def _read_address(reader: _RowReader) -> Address | None:
    if not any(reader.text(f) for f in _ADDRESS_FIELDS):
        return None
    lines = tuple(p.strip() for p in re.split(r"[;\n]", reader.text("address")) if p.strip())
    return Address(
        lines=lines,
        locality=reader.text("locality"),
        region=reader.text("region"),
        postcode=reader.text("postcode"),
        country=reader.parse("country", parse_country_code) or "",
    )


def _read_source(reader: _RowReader) -> SourceMetadata | None:
    if not any(reader.text(f) for f in _SOURCE_FIELDS):
        return None
    grading = reader.parse("grading", parse_grading)
    handling = reader.parse("handling_code", parse_handling_code)
    conditions = reader.text("handling_conditions")
    if handling is HandlingCode.CONDITIONS and not conditions:
        reader.error("handling_conditions", "required when the handling code is C")
        return None
    return SourceMetadata(reader.text("source_id"), grading, handling, conditions)


def validate_row(
    row: Mapping[str, str],
    line: int,
    *,
    date_order: DateOrder | str = DateOrder.UNKNOWN,
    default_category: Category | None = None,
    documents: Sequence[Mapping[str, str]] = (),
) -> PersonRecord | tuple[FieldError, ...]:
    """Turn one raw row into a :class:`PersonRecord`, or report everything wrong with it.

    ``row`` maps canonical field names (:data:`CANONICAL_FIELDS`) to raw strings; any other key
    is copied into the payload. Values are stripped and an empty value counts as missing.
    ``line`` is stamped on every error. ``default_category`` applies when the row has no
    category (a mapping file's constant category). ``documents`` are extra identity documents
    (JSON Lines ``documents`` lists), each a mapping of :data:`DOCUMENT_FIELDS` to strings; their
    errors are reported as ``documents[i].<field>``.

    Returns:
        The record, or a non-empty tuple of :class:`FieldError` in :data:`CANONICAL_FIELDS`
        order (``documents[i]`` errors last). Reasons never quote values.

    Raises:
        ValueError: only for a caller's mistake: ``date_order`` is not a :class:`DateOrder`.
    """
    order = DateOrder(date_order)
    reader = _RowReader(line, row)

    record_id = reader.text("record_id")
    if not record_id:
        reader.error("record_id", "required")
    category = reader.parse("category", parse_category)
    if category is None and not reader.text("category"):
        if default_category is None:
            reader.error("category", "required")
        category = default_category

    given, middle, family, full = (reader.text(f) for f in NAME_FIELDS)
    if not (given or middle or family or full):
        reader.error(NAME_PSEUDO_FIELD, "no name (one of " + ", ".join(NAME_FIELDS) + " needed)")
    aliases = reader.parse("aliases", parse_aliases) or ()
    birth_date = reader.parse("birth_date", lambda t: parse_birth_date(t, order))
    sex = reader.parse("sex", parse_sex)
    nationalities = reader.parse("nationalities", parse_nationalities) or ()
    docs = _read_documents(reader, documents, order)
    address = _read_address(reader)
    source = _read_source(reader)

    if reader.errors:
        return tuple(
            sorted(reader.errors, key=lambda e: _ERROR_ORDER.get(e.field, len(_ERROR_ORDER)))
        )
    assert category is not None
    payload = {k: v.strip() for k, v in row.items() if k not in _CANONICAL and v.strip()}
    return PersonRecord(
        record_id=record_id,
        category=category,
        name=PersonName(given=given, middle=middle, family=family, full=full),
        aliases=aliases,
        birth_date=birth_date,
        sex=sex,
        nationalities=nationalities,
        birth_place=reader.text("birth_place"),
        documents=docs,
        addresses=(address,) if address is not None else (),
        source=source,
        payload=payload,
    )
