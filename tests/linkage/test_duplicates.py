from __future__ import annotations

import pytest

from xlink.linkage.duplicates import DuplicatePair, find_duplicates
from xlink.linkage.fields import Field
from xlink.records.model import BirthDate, Category, IdentityDocument, PersonName, PersonRecord


def rec(rid: str, given: str, family: str, dob: BirthDate | None, doc: str = "") -> PersonRecord:
    return PersonRecord(
        rid,
        Category.WATCHLIST,
        PersonName(given=given, family=family),
        birth_date=dob,
        documents=(IdentityDocument("P", doc),) if doc else (),
    )


RECORDS = [
    rec("1", "Jürgen", "Müller", BirthDate(1970, 1, 2), "X1"),
    rec("2", "Jurgen", "Mueller", BirthDate(1970, 1, 2)),
    rec("3", "Anna", "Müller", BirthDate(1972, 5, 5)),
    rec("4", "Jon", "Smith", BirthDate(1980, 1, 1), "A1"),
    rec("5", "John", "Smith", BirthDate(1980, 1, 1), "A1"),
    rec("6", "Mary", "Smith", BirthDate(1980, 7, 7), "B2"),
    rec("7", "Mary", "Jones", BirthDate(1980, 7, 7)),  # married name: blocked by given + dob
    rec("8", "Mary", "Smith-Jones", BirthDate(1980, 7, 7)),
]


def test_finds_the_duplicates_and_nothing_else() -> None:
    found = find_duplicates(RECORDS)
    pairs = {(p.left_id, p.right_id) for p in found}
    assert {("1", "2"), ("4", "5")} <= pairs
    assert ("1", "3") not in pairs and ("4", "6") not in pairs
    assert all(isinstance(p, DuplicatePair) for p in found)
    assert [p.score for p in found] == sorted((p.score for p in found), reverse=True)


def test_similarities_only_for_fields_on_both_records() -> None:
    (pair,) = [p for p in find_duplicates(RECORDS) if (p.left_id, p.right_id) == ("1", "2")]
    assert Field.DOCUMENT_NUMBER not in dict(pair.similarities)
    assert dict(pair.similarities)[Field.FAMILY] == 1.0  # transliterated before comparing


def test_threshold_and_errors() -> None:
    assert find_duplicates(RECORDS, threshold=1.0) == [
        p for p in find_duplicates(RECORDS) if p.score >= 1.0
    ]
    assert find_duplicates(RECORDS[:1]) == []
    with pytest.raises(ValueError):
        find_duplicates(RECORDS, threshold=1.5)
    with pytest.raises(ValueError):
        find_duplicates([RECORDS[0], RECORDS[0]])
