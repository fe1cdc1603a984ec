"""What real lists do: month/day swaps in a declared order, placeholder given names, a person
listed several times on one side."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from xlink.linkage.estimate import dominated_pairs
from xlink.linkage.fields import Field, FieldGroup, Transform, apply_transform
from xlink.linkage.keys import PLACEHOLDER_GIVEN_NAMES, derive_match_keys, record_instances
from xlink.linkage.schema import SchemaError, load_default_schema, validate_schema
from xlink.linkage.scoring import (
    BEST_OF_EITHER,
    ONE_TO_ONE,
    fellegi_sunter_score,
    one_to_one,
    one_to_one_mask,
)
from xlink.records.model import BirthDate, Category, PersonName, PersonRecord

SORTED = Transform.parse("day_month_sorted")


def test_a_swapped_day_and_month_give_the_same_value() -> None:
    assert apply_transform(SORTED, "1980-03-12") == apply_transform(SORTED, "1980-12-03")
    assert apply_transform(SORTED, "1980-03-12") == ("1980-03-12",)
    assert apply_transform(SORTED, "1980-03-03") == ("1980-03-03",)
    # a different date does not
    assert apply_transform(SORTED, "1980-03-13") != apply_transform(SORTED, "1980-12-03")
    # a date without its day or month gives nothing
    assert apply_transform(SORTED, "1980-03") == () and apply_transform(SORTED, "1980") == ()


def _schema(transform: str, field: str) -> dict[str, object]:
    return {
        "id": "t",
        "version": 1,
        "keys": [
            {
                "name": "k",
                "version": 1,
                "fields": ["given_first", field],
                "transforms": {field: transform},
            }
        ],
    }


def test_day_month_sorted_applies_to_the_birth_date_only() -> None:
    validate_schema(_schema("day_month_sorted", "birth_date"))
    with pytest.raises(SchemaError):
        validate_schema(_schema("day_month_sorted", "postcode"))


def _person(given: str, family: str = "Smith", dob: BirthDate | None = None) -> PersonRecord:
    return PersonRecord(
        record_id="r",
        category=Category.OTHER,
        name=PersonName(given=given, family=family),
        birth_date=dob or BirthDate(2020, 5, 1),
    )


@pytest.mark.parametrize("given", ["Baby", "Male Child", "female child", "UNKNOWN", "Baby Girl"])
def test_a_placeholder_given_name_is_no_given_name(given: str) -> None:
    names = record_instances(_person(given), placeholder_names=True)[FieldGroup.NAME]
    assert len(names) == 1  # no given/family swap that would make the placeholder a surname
    assert Field.GIVEN not in names[0].values and Field.GIVEN_FIRST not in names[0].values
    assert names[0].values[Field.FAMILY] == ("SMITH",)


def test_two_infants_with_placeholders_share_no_name_key() -> None:
    schema = load_default_schema()
    baby = derive_match_keys(_person("Baby"), schema)
    a = {k: t for k, t in baby if "given" in k or k == "names"}
    b = {k: t for k, t in derive_match_keys(_person("Male Child"), schema)}
    assert not a
    assert not {k for k in b if k in ("names", "names_year_month", "given_postcode")}
    # a real given name still gives them
    assert any(k == "names" for k, _ in derive_match_keys(_person("Anna"), schema))


def test_a_schema_without_the_rule_keeps_its_tokens() -> None:
    """Version 3 predates the rule: its tokens for "Baby Smith" must not change, or two
    parties on different xlink versions would derive different tokens under one digest."""
    from xlink.linkage.schema import load_schema

    v3 = load_schema(Path(__file__).parents[2] / "xlink/data/schemas/default-v3.json")
    assert not v3.placeholder_names and load_default_schema().placeholder_names
    names = record_instances(_person("Baby"))[FieldGroup.NAME]
    assert names[0].values[Field.GIVEN_FIRST] == ("BABY",)
    assert any(k == "names" for k, _ in derive_match_keys(_person("Baby"), v3))


def test_placeholders_are_in_their_normal_form() -> None:
    assert all(p == p.upper() and " " not in p for p in PLACEHOLDER_GIVEN_NAMES)


def test_best_of_either_keeps_every_listing_of_one_person() -> None:
    # census record C meets three registry events of the same person, each best for C only
    pairs = [("C", "e1", frozenset({"k"}), 9.0), ("C", "e2", frozenset({"k"}), 8.0)]
    pairs.append(("C", "e3", frozenset({"k"}), 7.0))
    assert [p.right_id for p in one_to_one(pairs)] == ["e1"]
    kept = one_to_one(pairs, links=BEST_OF_EITHER)
    assert [p.right_id for p in kept] == ["e1", "e2", "e3"]
    # the same from the other side: the rule has no favourite side
    mirrored = [(r, left, k, s) for left, r, k, s in pairs]
    assert [p.left_id for p in one_to_one(mirrored, links=BEST_OF_EITHER)] == ["e1", "e2", "e3"]


def test_best_of_either_needs_a_unique_best_on_one_side() -> None:
    # e prefers A; B meets only e, so (B, e) is B's best and is kept as well: the price of
    # not knowing which side lists people several times
    pairs = [("A", "e", frozenset({"k"}), 9.0), ("B", "e", frozenset({"k"}), 5.0)]
    kept = {(p.left_id, p.right_id) for p in one_to_one(pairs, links=BEST_OF_EITHER)}
    assert kept == {("A", "e"), ("B", "e")}
    assert {(p.left_id, p.right_id) for p in one_to_one(pairs)} == {("A", "e")}
    # (A, e) ties on both its records: refused; (B, e) and (A, f) are each some record's
    # unique best
    tie = [("A", "e", frozenset({"k"}), 9.0), ("B", "e", frozenset({"k"}), 9.0)]
    tie.append(("A", "f", frozenset({"k"}), 9.0))
    kept = {(p.left_id, p.right_id) for p in one_to_one(tie, links=BEST_OF_EITHER)}
    assert kept == {("B", "e"), ("A", "f")}


def test_the_array_rule_is_the_list_rule() -> None:
    rng = np.random.default_rng(3)
    left = rng.integers(0, 30, 200)
    right = rng.integers(0, 30, 200)
    drawn = zip(left, right, rng.integers(0, 6, 200), strict=True)
    pairs = {(int(a), int(b)): float(s) for a, b, s in drawn}
    lefts, rights = zip(*pairs, strict=True)
    scores = list(pairs.values())
    for links in (ONE_TO_ONE, BEST_OF_EITHER):
        mask = one_to_one_mask(lefts, rights, scores, links=links)
        listed = one_to_one(
            [(str(a), str(b), frozenset(), s) for (a, b), s in pairs.items()], links=links
        )
        assert {(str(a), str(b)) for (a, b), k in zip(pairs, mask, strict=True) if k} == {
            (p.left_id, p.right_id) for p in listed
        }
    with pytest.raises(ValueError, match="link rule"):
        one_to_one_mask(lefts, rights, scores, links="many")


def test_dominance_follows_the_link_rule() -> None:
    # (0,1) is a strict subset of (0,0) on the left record only
    left, right, agree = [0, 0], [0, 1], [0b11, 0b01]
    assert dominated_pairs(left, right, agree, ONE_TO_ONE).tolist() == [False, True]
    assert dominated_pairs(left, right, agree, BEST_OF_EITHER).tolist() == [False, False]
    # dominated on both sides: (1,1) is beaten on left 1 by (1,0) and on right 1 by (0,1)
    left, right, agree = [1, 1, 0], [1, 0, 1], [0b01, 0b11, 0b11]
    assert dominated_pairs(left, right, agree, BEST_OF_EITHER).tolist() == [True, False, False]


@pytest.mark.parametrize(
    ("written", "given", "family"),
    [
        ("José Pérez y González", "José", "Pérez y González"),
        ("Pieter van der Berg", "Pieter", "van der Berg"),
        ("Maria da Silva", "Maria", "da Silva"),
        ("Mohammed Al Rashid", "Mohammed", "Al-Rashid"),
    ],
)
def test_a_name_written_whole_agrees_with_its_family_name_in_several_words(
    written: str, given: str, family: str
) -> None:
    """One list writes the whole name in one column, the other has a column for the family
    name: the same person, the same date of birth, agreed on the given name and the birth date
    alone (``given_dob_swapped``) while the written name was read with its last word as the
    family name; now on the keys that name both."""
    schema = load_default_schema()
    born = BirthDate(1983, 5, 27)
    whole, split = (
        PersonRecord(record_id=rid, category=Category.WATCHLIST, name=name, birth_date=born)
        for rid, name in (
            ("W", PersonName(full=written)),
            ("S", PersonName(given=given, family=family)),
        )
    )
    theirs = {token for _, token in derive_match_keys(split, schema)}
    shared = {key for key, token in derive_match_keys(whole, schema) if token in theirs}
    assert {"names", "initial_family_dob", "names_dob_swapped"} <= shared, shared


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("John Paul Smith", "John Paul Jones"),
        ("Mohammed Ahmed Ali", "Mohammed Ahmed Hassan"),
        ("Ivan Petrovich Sidorov", "Ivan Petrovich Ivanov"),
    ],
)
def test_two_people_sharing_a_given_and_a_middle_name_and_a_birth_date_stay_apart(
    one: str, other: str
) -> None:
    """A further reading of a name written whole must not read a middle name into the family
    name: a build that read the last two words as one (JOHN, PAULSMITH), and swapped it
    (PAUL, JOHN), scored these strangers as the same person, above the certain threshold."""
    schema = load_default_schema()
    born = BirthDate(1980, 1, 1)
    a, b = (
        PersonRecord(record_id=rid, category=Category.WATCHLIST, name=name, birth_date=born)
        for rid, name in (("A", PersonName(full=one)), ("B", PersonName(full=other)))
    )
    theirs = {token for _, token in derive_match_keys(b, schema)}
    shared = {key for key, token in derive_match_keys(a, schema) if token in theirs}
    weights, disagreement = schema.weights(), schema.disagreement_weights()
    keys_a = {key for key, _ in derive_match_keys(a, schema)}
    keys_b = {key for key, _ in derive_match_keys(b, schema)}
    disagreeing = (keys_a & keys_b) - shared
    score = fellegi_sunter_score(shared, weights, disagreeing, disagreement)
    assert schema.threshold is not None and score < schema.threshold, (shared, score)


#: The keys of a given and a family name whose swapped reading took a family name's first word
#: for a given name (not initial_family_dob: its swapped reading is the family name's initial
#: with the given name, which people whose family names share an initial share anyway).
_NAME_KEYS = {"names", "names_dob_swapped", "names_year_month", "metaphone_names_year"}


def _shared_keys(one: PersonName, other: PersonName) -> set[str]:
    schema = load_default_schema()
    born = BirthDate(1980, 1, 1)
    a, b = (
        PersonRecord(record_id=rid, category=Category.WATCHLIST, name=name, birth_date=born)
        for rid, name in (("A", one), ("B", other))
    )
    theirs = {token for _, token in derive_match_keys(b, schema)}
    return {key for key, token in derive_match_keys(a, schema) if token in theirs}


@pytest.mark.parametrize(
    ("family", "other"),
    [("van der Berg", "van Dijk"), ("Al Rashid", "Al Hassan"), ("El Amrani", "El Idrissi")],
)
def test_a_family_names_first_word_is_no_given_name_in_the_swapped_reading(
    family: str, other: str
) -> None:
    """The swapped reading (given and family entered the other way round) took the first word
    of the family name as the first given name: Jan van der Berg and Jan van Dijk, born the
    same day, agreed as (VAN, JAN) on every key of a given and a family name, at 14.26 (the
    certain threshold is 8.1). It takes the family name's first word that is no particle now
    (BERG); the first of two family names is kept, the one a list holding only one of them
    holds (next test)."""
    shared = _shared_keys(
        PersonName(given="Jan", family=family), PersonName(given="Jan", family=other)
    )
    assert not shared & _NAME_KEYS, shared


@pytest.mark.parametrize(
    ("given", "family"),
    [("Jan", "van der Berg"), ("Mary Ann", "Smith"), ("John", "Smith"), ("Mary Ann", "van Dijk")],
)
def test_given_and_family_entered_the_other_way_round_still_agree(given: str, family: str) -> None:
    shared = _shared_keys(
        PersonName(given=given, family=family), PersonName(given=family, family=given)
    )
    assert {"names", "names_dob_swapped"} <= shared, shared


def test_a_first_family_name_alone_still_agrees_with_both() -> None:
    """Castillo Jiménez on one list, Castillo on the other (a list holding one family name):
    the swapped reading's first given name is the first family name, so they agree."""
    shared = _shared_keys(
        PersonName(given="Andrea", family="Castillo Jiménez"),
        PersonName(given="Andrea", family="Castillo"),
    )
    assert {"names", "names_dob_swapped"} <= shared, shared
