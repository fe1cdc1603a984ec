"""No identity reaches a repr: records and every value object inside them are redacted."""

from __future__ import annotations

from xlink.records.model import (
    Address,
    BirthDate,
    Category,
    HandlingCode,
    IdentityDocument,
    PersonName,
    PersonRecord,
    SourceMetadata,
    UkGrading,
)

SECRETS = ("Dmitriy", "Ivanov", "1979", "P1234567", "Rue Sainte", "H2X", "RCMP-SRC-42", "Lviv")


def test_no_identity_in_any_repr() -> None:
    record = PersonRecord(
        record_id="CA-1",
        category=Category.WATCHLIST,
        name=PersonName(given="Dmitriy", family="Ivanov"),
        aliases=(PersonName(full="Dmitriy Ivanov"),),
        birth_date=BirthDate(1979, 4, 3, day_month_ambiguous=True),
        birth_place="Lviv",
        documents=(IdentityDocument("P", "P1234567", "UKR"),),
        addresses=(Address(lines=("12 Rue Sainte",), postcode="H2X 1Y4"),),
        source=SourceMetadata("RCMP-SRC-42", UkGrading(1, "A"), HandlingCode.PERMITTED),
    )
    texts = [repr(record), repr(record.name), repr(record.aliases), repr(record.birth_date)]
    texts += [repr(record.documents), repr(record.addresses), repr(record.source)]
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, (secret, text)
    assert "precision=day" in repr(record.birth_date)
