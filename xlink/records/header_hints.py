"""What a file's own column names probably hold: the columns a load did not read as a field
(kept in the payload, never matched on) whose names usually hold one that no column fills, and
the mapping entries that would read them (docs/loading.md#mapping-file). Said in a load's
summary and in the errors of a file that loads nothing; nothing is read by these guesses: a
column keeps its name unless a mapping says otherwise, so that no value goes into a field by a
guess."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Final

from xlink.records.validation import CANONICAL_FIELDS

__all__ = [
    "MAPPING_DOCS",
    "likely_fields",
    "mapping_entries",
    "mapping_hint",
    "unread_json",
    "unread_text",
]

#: Where a mapping file is described.
MAPPING_DOCS: Final = "docs/loading.md#mapping-file"

#: A column name longer than this is no common name (and is not quoted back).
_LONGEST_NAME: Final = 64

_NOT_ALNUM = re.compile(r"[^0-9a-z]+")


def _fold(name: str) -> str:
    return _NOT_ALNUM.sub("", name.lower())


def _named(field: str, *names: str) -> dict[str, str]:
    return dict.fromkeys(names, field)


#: Common column names (folded: lower case, letters and digits only) -> the canonical field:
#: each canonical field's own name in any case or spacing (``Sex``, ``Date of birth``...), and
#: the names lists give them. A one-word name that is also a word of a record (``first``,
#: ``mi``, ``middle``) is left out: a file without a header would have its first record's
#: values read as column names and quoted back.
_COMMON: Final[Mapping[str, str]] = {
    **{_fold(field): field for field in CANONICAL_FIELDS},
    **_named("record_id", "id", "recordid", "recid", "uid", "personid", "subjectid", "paxid"),
    **_named("record_id", "caseid", "rowid", "eventid", "entryid", "censusid", "registryid"),
    **_named("given_name", "firstname", "firstnames", "givennames", "forename", "forenames"),
    **_named("given_name", "fname"),
    **_named("middle_name", "middlenames", "middleinitial", "middleinitials", "mname"),
    **_named("family_name", "lastname", "lastnames", "surname", "surnames", "lname"),
    **_named("full_name", "name", "personname"),
    **_named("birth_date", "dob", "dateofbirth", "birthdate", "birthday", "bdate", "birthdt"),
    **_named("sex", "gender", "sexcode"),
    **_named("birth_place", "placeofbirth", "birthplace", "pob", "countryofbirth"),
    **_named("nationalities", "nationality", "citizenship", "citizenships"),
    **_named("aliases", "alias", "aka", "alsoknownas"),
    **_named("doc_type", "documenttype", "doctype", "idtype"),
    **_named("doc_number", "passport", "passportno", "passportnumber", "documentnumber"),
    **_named("doc_number", "docno", "docnum"),
    **_named("doc_country", "passportcountry", "issuingcountry", "passportissuer", "docissuer"),
    **_named("doc_expiry", "expiry", "expirydate", "passportexpiry", "docexp", "dateofexpiry"),
    **_named("address", "street", "streetaddress", "address1", "addressline1"),
    **_named("locality", "city", "town", "suburb"),
    **_named("region", "state", "province"),
    **_named("postcode", "zip", "zipcode", "postalcode", "postal"),
}
_PARTS_OF_A_NAME: Final = frozenset({"given_name", "family_name"})


def likely_fields(targets: Mapping[str, str], *, constant_category: bool) -> list[tuple[str, str]]:
    """The columns of ``targets`` (input column -> what the mapping reads it as, the payload
    key being the column's own name) not read as a canonical field whose names usually hold
    one that nothing fills, each with that field, a field once: a mapping's constant category
    fills ``category``, a given or family name ``full_name`` (a "name" beside them is not the
    person's)."""
    filled = {t for t in targets.values() if t in CANONICAL_FIELDS}
    if constant_category:
        filled.add("category")
    if filled & _PARTS_OF_A_NAME:
        filled.add("full_name")
    found: list[tuple[str, str]] = []
    for column, target in targets.items():
        if target in CANONICAL_FIELDS or len(column) > _LONGEST_NAME:
            continue
        field = _COMMON.get(_fold(column))
        if field is not None and field not in filled:
            filled.add(field)
            found.append((column, field))
    return found


def mapping_entries(found: Iterable[tuple[str, str]], *, category: str | None = None) -> str:
    """``{"columns": {...}}``, the mapping entries that would read each column as its field
    (names quoted as JSON, so that nothing in one can end a line or drive a terminal), and
    ``"category"`` when one is given (a file that has no category column needs it)."""
    entries = ", ".join(f"{json.dumps(column)}: {json.dumps(field)}" for column, field in found)
    constant = "" if category is None else f', "category": {json.dumps(category)}'
    return '{"columns": {' + entries + "}" + constant + "}"


def mapping_hint(found: Iterable[tuple[str, str]], *, category: str | None = None) -> str | None:
    """The hint for a file that loads nothing (:func:`likely_fields`), with the mapping's
    constant ``category`` when it needs one; None when no column is named."""
    found = list(found)
    if not found:
        return None
    entries = mapping_entries(found, category=category)
    return f"its mapping's columns could read them, e.g. {entries} ({MAPPING_DOCS})"


def unread_text(found: Iterable[tuple[str, str]]) -> str:
    """``not read as fields, kept in the payload and never matched on: "DOB" (usually
    birth_date), ...``: how a load's summary and an exchange's name its unread columns."""
    named = ", ".join(f"{json.dumps(column)} (usually {field})" for column, field in found)
    return f"not read as fields, kept in the payload and never matched on: {named}"


def unread_json(found: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    """The unread columns in a ``--json`` document: ``{"column", "usually"}`` each."""
    return [{"column": column, "usually": field} for column, field in found]
