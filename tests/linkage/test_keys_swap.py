"""The given/family swap reading is used only by keys with a given-name field (given,
given_first) and a family-name field (family, family_part), and only with ``use_variants``."""

from __future__ import annotations

import pytest

from xlink.linkage.keys import derive_match_keys
from xlink.linkage.schema import LinkageSchema, validate_schema
from xlink.records.model import BirthDate, Category, PersonName, PersonRecord


def schema(*fields: str, **extra: object) -> LinkageSchema:
    recipe = {"name": "k", "version": 1, "fields": list(fields), **extra}
    return validate_schema({"id": "swap-test", "version": 1, "keys": [recipe]})


def person(record_id: str, name: PersonName, *aliases: PersonName) -> PersonRecord:
    return PersonRecord(
        record_id=record_id,
        category=Category.TRAVELLER,
        name=name,
        aliases=aliases,
        birth_date=BirthDate(1975, 11, 2),
    )


def tokens(record: PersonRecord, s: LinkageSchema) -> set[bytes]:
    return {t for _, t in derive_match_keys(record, s)}


AS_RECORDED = person("a", PersonName(given="Ahmed", family="Hassan"))
SWAPPED = person("b", PersonName(given="Hassan", family="Ahmed"))


@pytest.mark.parametrize(
    "fields",
    [
        ("family", "birth_date"),
        ("given", "birth_date"),
        ("given_first", "birth_date"),
        ("family",),
        ("given",),
    ],
)
def test_keys_with_one_name_part_do_not_use_the_swap(fields: tuple[str, ...]) -> None:
    s = schema(*fields)
    assert not tokens(AS_RECORDED, s) & tokens(SWAPPED, s)
    # one token each: the swapped reading gives none
    assert len(tokens(AS_RECORDED, s)) == len(tokens(SWAPPED, s)) == 1


@pytest.mark.parametrize(
    "fields",
    [
        ("given", "family", "birth_date"),
        ("given_first", "family", "birth_date"),
        ("given", "family"),
    ],
)
def test_keys_with_both_name_parts_use_the_swap(fields: tuple[str, ...]) -> None:
    s = schema(*fields)
    shared = tokens(AS_RECORDED, s) & tokens(SWAPPED, s)
    assert shared
    # only through the swap: without variants the readings differ
    plain = schema(*fields, use_variants=False)
    assert not tokens(AS_RECORDED, plain) & tokens(SWAPPED, plain)


def test_family_part_key_uses_the_swap() -> None:
    s = schema("given", "family_part", "birth_date")
    compound = person("g", PersonName(given="Ana", family="García López"))
    swapped = person("h", PersonName(given="García López", family="Ana"))
    assert tokens(compound, s) & tokens(swapped, s)
    plain = schema("given", "family_part", "birth_date", use_variants=False)
    assert not tokens(compound, plain) & tokens(swapped, plain)
    one_part = schema("family_part", "birth_date")
    assert not tokens(compound, one_part) & tokens(swapped, one_part)


def test_swap_with_a_transform_on_both_parts() -> None:
    s = schema(
        "given", "family", "birth_date", transforms={"given": "soundex", "family": "deletions"}
    )
    typo_swapped = person("c", PersonName(given="Hasan", family="Ahmed"))
    assert tokens(AS_RECORDED, s) & tokens(typo_swapped, s)


def test_full_name_is_order_insensitive_without_the_swap() -> None:
    s = schema("full_name", "birth_date")
    assert tokens(AS_RECORDED, s) == tokens(SWAPPED, s)


def test_aliases_still_count_on_one_part_keys() -> None:
    # An alias is a recorded fact, not a guess: it is used by every key.
    s = schema("family", "birth_date")
    with_alias = person(
        "d", PersonName(given="Hassan", family="Ahmed"), PersonName(given="A", family="Hassan")
    )
    assert tokens(AS_RECORDED, s) & tokens(with_alias, s)


def test_full_only_name_reversed_is_a_swap() -> None:
    # A name known only as a full string is read first word / last word; its reverse reading
    # is a swap, so on a one-part key only the first reading counts.
    s = schema("family", "birth_date")
    full = person("e", PersonName(full="Ahmed Hassan"))
    reversed_full = person("f", PersonName(full="Hassan Ahmed"))
    assert tokens(full, s) == tokens(AS_RECORDED, s)
    assert not tokens(reversed_full, s) & tokens(AS_RECORDED, s)
    both = schema("given", "family", "birth_date")
    assert tokens(reversed_full, both) & tokens(AS_RECORDED, both)
