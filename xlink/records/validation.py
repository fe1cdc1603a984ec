"""Validation: one raw input row in, a :class:`PersonRecord` and/or every :class:`FieldError` out.

This is step 1 of an exchange (DESIGN.md §2): loaders turn CSV lines, JSON objects and DataFrame
rows into a mapping of *canonical field names* to strings and hand it to :func:`check_row`.
Everything here is pure: no I/O, no clock, no randomness.

The ``parse_*`` functions (re-exported from ``_fields``) each read one field and raise
``ValueError`` whose message is a reason fit for a :class:`FieldError`: it never quotes the value,
because values may be identities.
:func:`check_row` calls them all and collects every problem in the row, not just the first; the
:class:`BadFieldPolicy` decides whether a row with a bad value in a field a record may lack is
kept without that field or rejected. :func:`validate_row` is its row-rejecting form.

Canonical fields (see ``docs/loading.md``): ``record_id`` and ``category`` are required, and at
least one of ``given_name``, ``middle_name``, ``family_name``, ``full_name``. Any key that is not a
canonical field goes, unchanged, into :attr:`PersonRecord.payload`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
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
    "DATE_FIELDS",
    "DOCUMENT_FIELDS",
    "NAME_FIELDS",
    "NAME_PSEUDO_FIELD",
    "ROW_FIELDS",
    "BadFieldPolicy",
    "CheckedRow",
    "DateOrder",
    "check_row",
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

#: The fields without which a row is no person record: an error in one of them rejects the row
#: whatever the :class:`BadFieldPolicy` (an unknown category too: it decides which MOU terms
#: apply, so it is never guessed, not even from a mapping's constant category).
ROW_FIELDS = ("record_id", "category", NAME_PSEUDO_FIELD)

#: The date fields, each of which may have a date order of its own (``date_orders``).
DATE_FIELDS = ("birth_date", "doc_expiry")

_ERROR_ORDER = {
    f: i for i, f in enumerate((*CANONICAL_FIELDS[:6], NAME_PSEUDO_FIELD, *CANONICAL_FIELDS[6:]))
}


class BadFieldPolicy(StrEnum):
    """What happens to a row with a bad value in a field that a record may lack.

    ``DROP_FIELD`` (the loaders' default) keeps the record without that field and reports the
    :class:`FieldError` beside it: an impossible date of birth must not lose a true match.
    ``REJECT_ROW`` rejects the whole row, as for a problem in a :data:`ROW_FIELDS` field, which
    rejects the row under either policy.
    """

    DROP_FIELD = "drop-field"
    REJECT_ROW = "reject-row"


@dataclass(frozen=True, slots=True)
class CheckedRow:
    """The verdict on one row: ``record`` is ``None`` when the row is rejected; ``errors`` are
    every problem found (the reasons of a rejection, or the fields left out of ``record``)."""

    record: PersonRecord | None
    errors: tuple[FieldError, ...]


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


def _read_document(reader: _RowReader, expiry_order: DateOrder) -> IdentityDocument | None:
    """A bad type, country or expiry is left empty; a document without a number is none."""
    present = any(reader.text(f) for f in DOCUMENT_FIELDS)
    doc_type = reader.parse("doc_type", parse_doc_type) or ""
    country = reader.parse("doc_country", parse_country_code) or ""
    expiry = reader.parse("doc_expiry", lambda t: parse_birth_date(t, expiry_order).isoformat())
    number = reader.text("doc_number")
    if present and not number:
        reader.error("doc_number", "document number missing")
    if not (present and number):
        return None
    return IdentityDocument(doc_type, number, country, expiry or "")


def _read_documents(
    reader: _RowReader, documents: Sequence[Mapping[str, str]], expiry_order: DateOrder
) -> tuple[IdentityDocument, ...]:
    found: list[IdentityDocument] = []
    if (doc := _read_document(reader, expiry_order)) is not None:
        found.append(doc)
    for index, fields in enumerate(documents):
        sub = _RowReader(reader.line, fields)
        if not any(sub.text(f) for f in DOCUMENT_FIELDS):
            reader.error(f"documents[{index}]", "empty document")
        elif (doc := _read_document(sub, expiry_order)) is not None:
            found.append(doc)
        reader.errors.extend(
            FieldError(e.line, f"documents[{index}].{e.field}", e.reason) for e in sub.errors
        )
    return tuple(found)


def _read_address(reader: _RowReader) -> Address | None:
    """A bad country is left empty; an address with nothing left is none."""
    if not any(reader.text(f) for f in _ADDRESS_FIELDS):
        return None
    lines = tuple(p.strip() for p in re.split(r"[;\n]", reader.text("address")) if p.strip())
    address = Address(
        lines=lines,
        locality=reader.text("locality"),
        region=reader.text("region"),
        postcode=reader.text("postcode"),
        country=reader.parse("country", parse_country_code) or "",
    )
    return address if address != Address() else None


def _read_source(reader: _RowReader) -> SourceMetadata | None:
    """A bad grading or handling code is left out; so is a handling code C without its
    conditions (with the error on ``handling_conditions``); metadata with nothing left is none."""
    if not any(reader.text(f) for f in _SOURCE_FIELDS):
        return None
    grading = reader.parse("grading", parse_grading)
    handling = reader.parse("handling_code", parse_handling_code)
    conditions = reader.text("handling_conditions")
    if handling is HandlingCode.CONDITIONS and not conditions:
        reader.error("handling_conditions", "required when the handling code is C")
        handling = None
    source = SourceMetadata(reader.text("source_id"), grading, handling, conditions)
    return source if source != SourceMetadata("") else None


def _date_orders(
    date_order: DateOrder | str, date_orders: Mapping[str, DateOrder | str] | None
) -> dict[str, DateOrder]:
    orders = dict.fromkeys(DATE_FIELDS, DateOrder(date_order))
    for name, order in (date_orders or {}).items():
        if name not in DATE_FIELDS:
            raise ValueError(f"date_orders: {name!r} is not one of " + ", ".join(DATE_FIELDS))
        orders[name] = DateOrder(order)
    return orders


def check_row(
    row: Mapping[str, str],
    line: int,
    *,
    date_order: DateOrder | str = DateOrder.UNKNOWN,
    date_orders: Mapping[str, DateOrder | str] | None = None,
    default_category: Category | None = None,
    documents: Sequence[Mapping[str, str]] = (),
    bad_field: BadFieldPolicy | str = BadFieldPolicy.DROP_FIELD,
) -> CheckedRow:
    """Turn one raw row into a :class:`PersonRecord`, reporting everything wrong with it.

    ``row`` maps canonical field names (:data:`CANONICAL_FIELDS`) to raw strings; any other key
    is copied into the payload. Values are stripped and an empty value counts as missing.
    ``line`` is stamped on every error. ``date_order`` reads ``NN/NN/YYYY`` dates;
    ``date_orders`` overrides it for one of :data:`DATE_FIELDS` (``doc_expiry`` covers every
    document). ``default_category`` applies when the row has no category (a mapping file's
    constant category); it does not replace a category that does not parse. ``documents`` are
    extra identity documents (JSON Lines ``documents`` lists), each a mapping of
    :data:`DOCUMENT_FIELDS` to strings; their errors are reported as ``documents[i].<field>``.

    A problem in a :data:`ROW_FIELDS` field always rejects the row. Any other bad value rejects
    it under ``REJECT_ROW``; under ``DROP_FIELD`` the field is left missing and the record kept:
    a bad document type, country or expiry is left empty in its document, a document without
    a number is left out whole, as is an empty ``documents[i]``, a bad address country is left
    empty, and a handling code C without conditions is left out (the source metadata keeps its
    id and grading). A list field (``aliases``, ``nationalities``) with one bad item is left out
    whole.

    Returns:
        A :class:`CheckedRow`: the record (``None`` when rejected) and every :class:`FieldError`
        in :data:`CANONICAL_FIELDS` order (``documents[i]`` errors last). Reasons never quote
        values.

    Raises:
        ValueError: only for a caller's mistake: a ``date_order``, ``date_orders`` entry or
            ``bad_field`` that is not valid.
    """
    orders = _date_orders(date_order, date_orders)
    policy = BadFieldPolicy(bad_field)
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
    birth_date = reader.parse("birth_date", lambda t: parse_birth_date(t, orders["birth_date"]))
    sex = reader.parse("sex", parse_sex)
    nationalities = reader.parse("nationalities", parse_nationalities) or ()
    docs = _read_documents(reader, documents, orders["doc_expiry"])
    address = _read_address(reader)
    source = _read_source(reader)

    errors = tuple(
        sorted(reader.errors, key=lambda e: _ERROR_ORDER.get(e.field, len(_ERROR_ORDER)))
    )
    if any(e.field in ROW_FIELDS for e in errors) or (
        errors and policy is BadFieldPolicy.REJECT_ROW
    ):
        return CheckedRow(None, errors)
    assert category is not None
    payload = {k: v.strip() for k, v in row.items() if k not in _CANONICAL and v.strip()}
    record = PersonRecord(
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
    return CheckedRow(record, errors)


def validate_row(
    row: Mapping[str, str],
    line: int,
    *,
    date_order: DateOrder | str = DateOrder.UNKNOWN,
    date_orders: Mapping[str, DateOrder | str] | None = None,
    default_category: Category | None = None,
    documents: Sequence[Mapping[str, str]] = (),
) -> PersonRecord | tuple[FieldError, ...]:
    """Turn one raw row into a :class:`PersonRecord`, or report everything wrong with it: the
    ``REJECT_ROW`` form of :func:`check_row`, whose parameters these are.

    Returns:
        The record, or a non-empty tuple of :class:`FieldError` in :data:`CANONICAL_FIELDS`
        order (``documents[i]`` errors last). Reasons never quote values.

    Raises:
        ValueError: only for a caller's mistake: a ``date_order`` or ``date_orders`` entry that
            is not valid.
    """
    checked = check_row(
        row,
        line,
        date_order=date_order,
        date_orders=date_orders,
        default_category=default_category,
        documents=documents,
        bad_field=BadFieldPolicy.REJECT_ROW,
    )
    return checked.record if checked.record is not None else checked.errors
