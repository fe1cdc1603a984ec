"""What a file's own column names probably hold, for the error that says a required column is
missing: the hint names the mapping entries that would read them (docs/loading.md#mapping-file).
Nothing is read by these guesses: a column keeps its name unless a mapping says otherwise, so
that no value goes into a field by a guess."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Final

__all__ = ["MAPPING_DOCS", "likely_fields", "mapping_entries", "mapping_hint"]

#: Common column names (folded: lower case, letters and digits only) -> the canonical field.
_COMMON: Final[Mapping[str, str]] = {
    **dict.fromkeys(
        ("id", "recordid", "recid", "uid", "personid", "subjectid", "paxid", "caseid", "rowid"),
        "record_id",
    ),
    **dict.fromkeys(
        ("firstname", "first", "givenname", "givennames", "forename", "forenames", "fname"),
        "given_name",
    ),
    **dict.fromkeys(
        ("middlename", "middlenames", "middle", "middleinitial", "middleinitials", "mi", "mname"),
        "middle_name",
    ),
    **dict.fromkeys(("lastname", "last", "surname", "familyname", "lname", "sname"), "family_name"),
    **dict.fromkeys(("name", "fullname", "personname"), "full_name"),
    **dict.fromkeys(
        ("dob", "dateofbirth", "birthdate", "birthday", "bdate", "birthdt"), "birth_date"
    ),
    **dict.fromkeys(("gender", "sexcode"), "sex"),
    **dict.fromkeys(("placeofbirth", "birthplace", "pob"), "birth_place"),
    **dict.fromkeys(("nationality", "citizenship", "citizenships"), "nationalities"),
    **dict.fromkeys(("alias", "aka", "alsoknownas", "othernames"), "aliases"),
    **dict.fromkeys(
        ("passport", "passportnumber", "passportno", "documentnumber", "docno", "docnum"),
        "doc_number",
    ),
    **dict.fromkeys(("street", "streetaddress", "address1", "addressline1"), "address"),
    **dict.fromkeys(("city", "town", "suburb"), "locality"),
    **dict.fromkeys(("state", "province"), "region"),
    **dict.fromkeys(("zip", "zipcode", "postalcode"), "postcode"),
    **dict.fromkeys(("listtype",), "category"),
}

_NOT_ALNUM = re.compile(r"[^0-9a-z]+")
_PARTS_OF_A_NAME: Final = frozenset({"given_name", "family_name"})


def likely_fields(unread: Iterable[str], read: Iterable[str]) -> list[tuple[str, str]]:
    """Each column of ``unread`` (columns the mapping neither names nor knows as a canonical
    field) whose name usually holds a canonical field that no column fills (``read``: the
    fields the file's columns are read as), with that field; a field once."""
    taken = set(read)
    if taken & _PARTS_OF_A_NAME:  # a "name" beside a given and a family name: not the person's
        taken.add("full_name")
    found: list[tuple[str, str]] = []
    for column in unread:
        field = _COMMON.get(_NOT_ALNUM.sub("", column.lower()))
        if field is not None and field not in taken:
            taken.add(field)
            found.append((column, field))
    return found


def mapping_entries(found: Iterable[tuple[str, str]]) -> str:
    """``{"columns": {...}}``, the mapping that would read each column as its field (names
    quoted as JSON, whatever they hold)."""
    entries = ", ".join(f"{json.dumps(column)}: {json.dumps(field)}" for column, field in found)
    return '{"columns": {' + entries + "}}"


def mapping_hint(unread: Iterable[str], read: Iterable[str]) -> str | None:
    """The hint for a file whose required columns are missing (:func:`likely_fields`); None
    when there is none."""
    found = likely_fields(unread, read)
    if not found:
        return None
    return f"a mapping file could read them, e.g. {mapping_entries(found)} ({MAPPING_DOCS})"


#: Where a mapping file is described.
MAPPING_DOCS: Final = "docs/loading.md#mapping-file"
