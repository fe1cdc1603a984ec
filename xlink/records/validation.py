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
from dataclasses import dataclass, replace
from datetime import date
from enum import StrEnum
from typing import TypeVar

from xlink.errors import FieldError
from xlink.identifiers import UNSAFE_TEXT
from xlink.records._fields import (
    EARLIEST_CENTURY_END,
    LATEST_CENTURY_END,
    TWO_DIGIT_YEAR,
    DateOrder,
    century_year,
    check_century_end,
    parse_aliases,
    parse_birth_date,
    parse_category,
    parse_country_code,
    parse_doc_type,
    parse_grading,
    parse_handling_code,
    parse_nationalities,
    parse_sex,
    salvage_birth_date,
)
from xlink.records._missing import PADDING, blank_missing, is_placeholder_document
from xlink.records._parsers import FUTURE_DATE, MEMO_SIZE, PLACEHOLDER_DATE, FieldParsers
from xlink.records._sharing import ADDRESSES, DOCUMENTS, NAME, SOURCE, SharedValues
from xlink.records.model import (
    Address,
    BirthDate,
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
    "EARLIEST_CENTURY_END",
    "LATEST_CENTURY_END",
    "NAME_FIELDS",
    "NAME_PSEUDO_FIELD",
    "ROW_FIELDS",
    "TWO_DIGIT_YEAR",
    "BadFieldPolicy",
    "CheckedRow",
    "DateOrder",
    "RowChecker",
    "century_year",
    "check_century_end",
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
    "salvage_birth_date",
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

    ``DROP_FIELD`` (the loaders' default) keeps the record without that field (a date of birth
    with what is readable of it, :func:`salvage_birth_date`) and reports the
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
    """Reads fields of one row (values stripped once), collecting a :class:`FieldError` for
    each parse failure. A value that stands for "not known" (``N/A``, ``UNKNOWN``...:
    :mod:`xlink.records._missing`) is read as missing. With ``texts``, a value that repeats (a
    name, a place, a payload value: not one of :data:`_UNIQUE_FIELDS`) is shared with the rows
    before it."""

    def __init__(
        self, line: int, values: Mapping[str, str], texts: dict[str, str] | None = None
    ) -> None:
        self.line = line
        self.errors: list[FieldError] = []
        if texts is None:
            self.values = {k: v.strip(PADDING) for k, v in values.items()}
        else:
            if len(texts) >= MEMO_SIZE:
                texts.clear()
            share = texts.setdefault
            self.values = {
                k: s if k in _UNIQUE_FIELDS else share(s, s)
                for k, v in values.items()
                for s in (v.strip(PADDING),)  # trim(v), in the hot loop
            }
        if (missing := blank_missing(self.values)) is not None:
            self.values.update(missing)

    def text(self, field: str) -> str:
        return self.values.get(field, "")

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


#: Fields whose values rarely repeat: not worth sharing between records.
_UNIQUE_FIELDS = frozenset({"record_id", "doc_number", "doc_expiry", "address", "postcode"})


def _read_document(reader: _RowReader, parsers: FieldParsers) -> IdentityDocument | None:
    """A bad type, country or expiry is left empty; a document without a number is none."""
    present = any(reader.text(f) for f in DOCUMENT_FIELDS)
    doc_type = reader.parse("doc_type", parsers.doc_type) or ""
    country = reader.parse("doc_country", parsers.country) or ""
    expiry = reader.parse("doc_expiry", parsers.expiry)
    number = reader.text("doc_number")
    if number and is_placeholder_document(number):
        reader.error("doc_number", "one character repeated: a filler, not a document number")
        return None
    if present and not number:
        reader.error("doc_number", "document number missing")
    if not (present and number):
        return None
    return IdentityDocument(doc_type, number, country, expiry or "")


def _read_documents(
    reader: _RowReader, documents: Sequence[Mapping[str, str]], parsers: FieldParsers
) -> tuple[IdentityDocument, ...]:
    found: list[IdentityDocument] = []
    if (doc := _read_document(reader, parsers)) is not None:
        found.append(doc)
    for index, fields in enumerate(documents):
        sub = _RowReader(reader.line, fields)
        if not any(sub.text(f) for f in DOCUMENT_FIELDS):
            reader.error(f"documents[{index}]", "empty document")
        elif (doc := _read_document(sub, parsers)) is not None:
            found.append(doc)
        reader.errors.extend(
            FieldError(e.line, f"documents[{index}].{e.field}", e.reason) for e in sub.errors
        )
    return tuple(found)


_ADDRESS_LINES = re.compile(r"[;\n]")


def _read_address(reader: _RowReader, parsers: FieldParsers) -> Address | None:
    """A bad country is left empty; an address with nothing left is none."""
    if not any(reader.text(f) for f in _ADDRESS_FIELDS):
        return None
    text = reader.text("address")
    parts = _ADDRESS_LINES.split(text) if text else ()
    lines = tuple(line for line in (p.strip(PADDING) for p in parts) if line)
    locality, region = reader.text("locality"), reader.text("region")
    postcode = reader.text("postcode")
    country = reader.parse("country", parsers.country) or ""
    if not (lines or locality or region or postcode or country):
        return None  # every part was bad or blank: no address (Address() itself)
    return Address(lines, locality, region, postcode, country)


def _read_source(reader: _RowReader, parsers: FieldParsers) -> SourceMetadata | None:
    """A bad grading or handling code is left out; so is a handling code C without its
    conditions (with the error on ``handling_conditions``); metadata with nothing left is none."""
    if not any(reader.text(f) for f in _SOURCE_FIELDS):
        return None
    grading = reader.parse("grading", parsers.grading)
    handling = reader.parse("handling_code", parsers.handling_code)
    conditions = reader.text("handling_conditions")
    if handling is HandlingCode.CONDITIONS and not conditions:
        reader.error("handling_conditions", "required when the handling code is C")
        handling = None
    source_id = reader.text("source_id")
    if not (source_id or grading is not None or handling is not None or conditions):
        return None  # nothing left: SourceMetadata("") is no metadata
    return SourceMetadata(source_id, grading, handling, conditions)


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
    two_digit_years_until: int | None = None,
    today: date | None = None,
) -> CheckedRow:
    """Turn one raw row into a :class:`PersonRecord`, reporting everything wrong with it.

    ``row`` maps canonical field names (:data:`CANONICAL_FIELDS`) to raw strings; any other key
    is copied into the payload. Values are stripped and an empty value counts as missing.
    ``line`` is stamped on every error. ``date_order`` reads ``NN/NN/YYYY`` dates;
    ``date_orders`` overrides it for one of :data:`DATE_FIELDS` (``doc_expiry`` covers every
    document). ``two_digit_years_until`` reads a date of birth whose year has two digits
    (:func:`century_year`); without it such a date is a field error. ``today`` is the load's
    date (its clock's UTC date, a parameter: this module reads no clock): a date of birth more
    than a day after it is a field error, of which nothing is kept; without it, no date is
    too late.
    ``default_category`` applies when the row has no category (a mapping file's
    constant category); it does not replace a category that does not parse. ``documents`` are
    extra identity documents (JSON Lines ``documents`` lists), each a mapping of
    :data:`DOCUMENT_FIELDS` to strings; their errors are reported as ``documents[i].<field>``.

    A problem in a :data:`ROW_FIELDS` field always rejects the row. Any other bad value rejects
    it under ``REJECT_ROW``; under ``DROP_FIELD`` the field is left missing and the record kept:
    a bad date of birth keeps what is readable of it (:func:`salvage_birth_date`, the
    error's reason saying what), a bad document type, country or expiry is left empty in its
    document, a document without a number is left out whole, as is an empty
    ``documents[i]``, a bad address country is left empty, and a handling code C without
    conditions is left out (the source metadata keeps its id and grading). A list field
    (``aliases``, ``nationalities``) with one bad item is left out whole.

    Returns:
        A :class:`CheckedRow`: the record (``None`` when rejected) and every :class:`FieldError`
        in :data:`CANONICAL_FIELDS` order (``documents[i]`` errors last). Reasons never quote
        values.

    Raises:
        ValueError: only for a caller's mistake: a ``date_order``, ``date_orders`` entry or
            ``bad_field`` that is not valid, or a ``two_digit_years_until`` outside
            :data:`EARLIEST_CENTURY_END`..:data:`LATEST_CENTURY_END`.
    """
    checker = RowChecker(
        date_order=date_order,
        date_orders=date_orders,
        default_category=default_category,
        bad_field=bad_field,
        two_digit_years_until=two_digit_years_until,
        remember=False,
        today=today,
    )
    return checker.check(row, line, documents)


class RowChecker:
    """:func:`check_row` with its settings fixed, for the rows of one input: with ``remember``
    (the default) each field parser keeps the values of the texts it has read (at most
    65,536 each), so that a repeated category, code, date or alias list is parsed once and its
    immutable value shared between records, and a repeated name, place or payload text is one
    string for all the records that hold it; so is a repeated name, document list, address,
    source or payload, one immutable object for every record that holds the same (a household
    shares an address, a list's payloads repeat its categories): memory goes with the records,
    not their fields. ``check(row, line, documents)`` gives exactly what ``check_row`` gives. Raises
    ``ValueError`` like ``check_row`` for bad settings."""

    def __init__(
        self,
        *,
        date_order: DateOrder | str = DateOrder.UNKNOWN,
        date_orders: Mapping[str, DateOrder | str] | None = None,
        default_category: Category | None = None,
        bad_field: BadFieldPolicy | str = BadFieldPolicy.DROP_FIELD,
        two_digit_years_until: int | None = None,
        remember: bool = True,
        today: date | None = None,
        categories: Mapping[str, Category] | None = None,
    ) -> None:
        until = check_century_end(two_digit_years_until)
        orders = _date_orders(date_order, date_orders)
        self._parsers = FieldParsers(orders, until, remember, today, categories)
        self._policy = BadFieldPolicy(bad_field)
        self._default_category = default_category
        self._texts: dict[str, str] | None = {} if remember else None
        self._shared = SharedValues(remember)  # equal parts of records: one object

    def check(
        self, row: Mapping[str, str], line: int, documents: Sequence[Mapping[str, str]] = ()
    ) -> CheckedRow:
        """One row's verdict (see :func:`check_row`)."""
        parsers = self._parsers
        reader = _RowReader(line, row, self._texts)
        values = reader.values

        record_id = values.get("record_id", "")
        if not record_id:
            reader.error("record_id", "required")
        elif UNSAFE_TEXT.search(record_id):  # breaks a line, drives a terminal, hides (D\0)
            reader.error("record_id", "holds a control or invisible character")
        category = reader.parse("category", parsers.category)
        if category is None and not values.get("category"):
            if self._default_category is None:
                reader.error("category", "required")
            category = self._default_category

        given, middle, family, full = (values.get(f, "") for f in NAME_FIELDS)
        # a name of punctuation alone ("." for a given name, "(-)") names nobody
        if not any(map(_has_letter, (given, middle, family, full))):
            reader.error(NAME_PSEUDO_FIELD, _NO_NAME)
        aliases = reader.parse("aliases", parsers.aliases) or ()
        birth_date = reader.parse("birth_date", parsers.birth_date)
        if birth_date is None and reader.errors and reader.errors[-1].field == "birth_date":
            birth_date = _readable_part(reader, values["birth_date"], parsers)
        sex = reader.parse("sex", parsers.sex)
        nationalities = reader.parse("nationalities", parsers.nationalities) or ()
        docs = _read_documents(reader, documents, parsers)
        address = _read_address(reader, parsers)
        source = _read_source(reader, parsers)

        errors: tuple[FieldError, ...] = ()
        if reader.errors:
            errors = tuple(
                sorted(reader.errors, key=lambda e: _ERROR_ORDER.get(e.field, len(_ERROR_ORDER)))
            )
            if any(e.field in ROW_FIELDS for e in errors) or (
                self._policy is BadFieldPolicy.REJECT_ROW
            ):
                return CheckedRow(None, errors)
        assert category is not None
        shared = self._shared.one
        record = PersonRecord(
            record_id=record_id,
            category=category,
            name=shared(NAME, PersonName(given=given, middle=middle, family=family, full=full)),
            aliases=aliases,
            birth_date=birth_date,
            sex=sex,
            nationalities=nationalities,
            birth_place=values.get("birth_place", ""),
            documents=shared(DOCUMENTS, docs) if docs else (),
            addresses=shared(ADDRESSES, (address,)) if address is not None else (),
            source=shared(SOURCE, source) if source is not None else None,
            payload=self._shared.payload(
                tuple((k, v) for k, v in values.items() if v and k not in _CANONICAL)
            ),
        )
        return CheckedRow(record, errors)


def _readable_part(reader: _RowReader, text: str, parsers: FieldParsers) -> BirthDate | None:
    """What :func:`salvage_birth_date` reads of a date of birth the parser just refused (the
    reader's last error), said in that refusal's reason (which stays a reason, never the
    value)."""
    refused = reader.errors[-1]
    if refused.reason in (PLACEHOLDER_DATE, FUTURE_DATE):
        return None  # "unknown", or a year at least mistyped: nothing of it
    kept = parsers.salvage_birth_date(text)
    if kept is None:
        return None
    reader.errors[-1] = replace(refused, reason=f"{refused.reason} ({kept[1]})")
    return kept[0]


_NO_NAME = "no name (one of " + ", ".join(NAME_FIELDS) + " needed, with a letter in it)"


def _has_letter(text: str) -> bool:
    return any(c.isalpha() for c in text)


def validate_row(
    row: Mapping[str, str],
    line: int,
    *,
    date_order: DateOrder | str = DateOrder.UNKNOWN,
    date_orders: Mapping[str, DateOrder | str] | None = None,
    default_category: Category | None = None,
    documents: Sequence[Mapping[str, str]] = (),
    two_digit_years_until: int | None = None,
    today: date | None = None,
) -> PersonRecord | tuple[FieldError, ...]:
    """Turn one raw row into a :class:`PersonRecord`, or report everything wrong with it: the
    ``REJECT_ROW`` form of :func:`check_row`, whose parameters these are.

    Returns:
        The record, or a non-empty tuple of :class:`FieldError` in :data:`CANONICAL_FIELDS`
        order (``documents[i]`` errors last). Reasons never quote values.

    Raises:
        ValueError: only for a caller's mistake: a ``date_order``, ``date_orders`` entry or
            ``two_digit_years_until`` that is not valid.
    """
    checked = check_row(
        row,
        line,
        date_order=date_order,
        date_orders=date_orders,
        default_category=default_category,
        documents=documents,
        bad_field=BadFieldPolicy.REJECT_ROW,
        two_digit_years_until=two_digit_years_until,
        today=today,
    )
    return checked.record if checked.record is not None else checked.errors
