from __future__ import annotations

import functools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xlink.linkage.keys import derive_match_keys
from xlink.linkage.schema import load_default_schema
from xlink.records.model import BirthDate, Category, PersonName, PersonRecord
from xlink.records.names import name_order_variants, normalise_name
from xlink.records.normalise import (
    birth_date_variants,
    name_part_components,
    normalise_document_number,
    normalise_name_part,
    normalise_place,
    normalise_text,
)
from xlink.records.transliterate import LATIN_TABLE, transliterate

FOLDED = "ÁÀÂÃĂĀĄÉÈÊËĚĖĒĘÍÌÎÏĪÓÒÔÕŌŐÚÙÛŪŰŮÇČĆŠŚŽŹŻÑŃŇŘĎŤ"
NAME_ALPHABET = st.sampled_from(list("abcdefghijklmnopqrstuvwxyzABCXYZ") + list(FOLDED))
names = st.text(alphabet=st.one_of(NAME_ALPHABET, st.sampled_from([" ", "-", "'"])), max_size=30)


def test_normalise_text_examples() -> None:
    assert normalise_text("  Dr. José  O’Brien ") == "dr josé o'brien"
    assert normalise_text("SMITH,  John") == "smith john"
    assert normalise_text("Jean -- Luc") == "jean luc"
    assert normalise_text("Jean--Luc") == "jean-luc"
    assert normalise_text("MÜLLER<<HANS") == "müller hans"
    assert normalise_text("ﬁnn") == "finn"  # NFKC


@pytest.mark.parametrize(
    "invisible",
    ["\u00ad", "\u200b", "\u200d", "\u200e", "\u202e", "\u2060", "\ufeff", "\x00", "\x1b"],
)
def test_an_invisible_character_inside_a_name_is_deleted_not_a_word_break(invisible: str) -> None:
    """A soft hyphen, a zero-width space, a bidi mark or a NUL inside a name (web forms, PDF
    copies, a damaged export) was read as a space: "An<U+00AD>na" became the two words "an"
    and "na", and shared no name token with "Anna". They show nothing, so they are deleted;
    white space still parts words."""
    assert normalise_text(f"An{invisible}na Novak") == "anna novak"
    schema = load_default_schema()
    record = functools.partial(
        PersonRecord, category=Category.WATCHLIST, birth_date=BirthDate(1980, 4, 3)
    )
    dirty = PersonName(given=f"An{invisible}na", family="Novak")
    clean = PersonName(given="Anna", family="Novak")
    tokens = [
        {token for _, token in derive_match_keys(record(rid, name=name), schema)}
        for rid, name in (("A", dirty), ("B", clean))
    ]
    assert tokens[0] == tokens[1]
    assert normalise_text("An\tna") == normalise_text("An\x1fna") == "an na"  # white space


def test_name_part_examples() -> None:
    assert normalise_name_part("Müller") == {"MUELLER", "MULLER"}
    assert normalise_name_part("van der Berg") == {"VANDERBERG"}
    assert normalise_name_part("VanderBerg") == {"VANDERBERG"}
    assert normalise_name_part("García-López") == {"GARCIALOPEZ"}
    assert normalise_name_part("O'Brien") == normalise_name_part("OBRIEN") == {"OBRIEN"}
    assert normalise_name_part("Mr. John Smith Jr.") == {"JOHNSMITH"}
    assert normalise_name_part("Dr") == {"DR"}  # never strips the last word
    assert normalise_name_part("   ") == frozenset()
    assert normalise_name_part("Хрущёв") == {"KHRUSHCHEV"}


def test_components_of_compound_names() -> None:
    assert name_part_components("García-López") == ("GARCIA", "LOPEZ")
    assert name_part_components("van der Berg") == ("BERG",)
    assert name_part_components("de la Cruz Garcia") == ("CRUZ", "GARCIA", "CRUZGARCIA")
    assert name_part_components("Smith") == ()


def test_name_order_variants() -> None:
    assert name_order_variants(PersonName(given="Jean", family="Dupont")) == {
        ("JEAN", "DUPONT"),
        ("DUPONT", "JEAN"),
    }
    assert name_order_variants(PersonName(full="Ivan Petrovich Sidorov")) == {
        ("IVAN", "SIDOROV"),
        ("SIDOROV", "IVAN"),
    }
    # a particle before the last word: that family name too, not swapped
    assert name_order_variants(PersonName(full="Pieter van der Berg")) == {
        ("PIETER", "BERG"),
        ("BERG", "PIETER"),
        ("PIETER", "VANDERBERG"),
    }
    assert name_order_variants(PersonName(full="Madonna")) == frozenset()
    assert name_order_variants(PersonName(family="Smith")) == frozenset()


def test_normalise_name_readings() -> None:
    first, swapped = normalise_name(PersonName(given="Mary Ann", family="Müller"))
    assert first.given == ("MARYANN",) and first.given_first == ("MARY",)
    assert first.family == ("MUELLER", "MULLER") and not first.swapped
    assert swapped.swapped and swapped.given == first.family
    assert first.full_name[0] == "ANN MARY MUELLER" == swapped.full_name[0]


def test_untransliterable_name_parts_are_missing_not_empty_strings() -> None:
    (reading, *_) = normalise_name(PersonName(given="محمد", family="Smith"))
    assert reading.given == () and reading.family == ("SMITH",)
    assert normalise_name(PersonName(given="محمد", family="Smith"))[0].given == ()


def test_birth_date_variants() -> None:
    assert birth_date_variants(BirthDate(1980, 3, 4)) == {"1980-03-04"}
    assert birth_date_variants(BirthDate(1980, 3, 4, day_month_ambiguous=True)) == {
        "1980-03-04",
        "1980-04-03",
    }
    assert birth_date_variants(BirthDate(1980, 5, 5, day_month_ambiguous=True)) == {"1980-05-05"}
    assert birth_date_variants(BirthDate(1980, 3)) == {"1980-03"}
    assert birth_date_variants(BirthDate(1980)) == {"1980"}


def test_document_numbers() -> None:
    assert normalise_document_number("ab-123 456<<") == "AB123456"
    assert normalise_document_number("O0I1") == "O0I1"  # no look-alike folding
    assert normalise_document_number("--") == ""


def test_places() -> None:
    assert normalise_place("Rue de l'Église 12") == "RUE DE LEGLISE 12"
    assert normalise_place("  ") == ""


@given(st.text(max_size=40))
def test_normalise_text_idempotent(text: str) -> None:
    once = normalise_text(text)
    assert normalise_text(once) == once


@given(names)
def test_name_part_idempotent(text: str) -> None:
    for value in normalise_name_part(text):
        assert normalise_name_part(value) == {value}


@given(names)
def test_name_part_case_invariant(text: str) -> None:
    assert normalise_name_part(text.upper()) == normalise_name_part(text.lower())


@given(names, st.lists(st.sampled_from([" ", "  ", "\t", "\u00a0"]), min_size=1, max_size=3))
def test_name_part_whitespace_invariant(text: str, spaces: list[str]) -> None:
    padded = spaces[0] + text.replace(" ", "".join(spaces)) + spaces[-1]
    assert normalise_name_part(padded) == normalise_name_part(text)


@given(st.text(alphabet=NAME_ALPHABET, min_size=1, max_size=20))
def test_folded_diacritics_invariant(text: str) -> None:
    """Letters the table folds to one value normalise like their base letter."""
    plain = "".join(transliterate(ch) for ch in text)
    assert normalise_name_part(text) == normalise_name_part(plain)


@pytest.mark.parametrize("letter", sorted(ch for ch, v in LATIN_TABLE.items() if len(v) == 1))
def test_single_valued_rows_have_one_variant(letter: str) -> None:
    assert len(normalise_name_part("X" + letter)) == 1


def test_a_full_name_with_its_family_name_in_capitals_is_read_there_too() -> None:
    """``IVANOV Ivan Petrovich`` (family name first, in capitals, as passports' visual zones,
    wanted notices and civil registries write it) was read only as given IVANOV, family
    PETROVICH and the swap: it shared no name token with the same person recorded as given
    Ivan, family Ivanov. It is now read there too, beside the first word / last word reading,
    which case alone cannot rule out (``AJ Smith``, ``MARY Ann Smith``)."""
    cases = {
        "IVANOV Ivan Petrovich": [("IVANOV", "PETROVICH"), ("IVAN", "IVANOV")],
        "SMITH John Quincy": [("SMITH", "QUINCY"), ("JOHN", "SMITH")],
        "DE LA CRUZ Maria": [("DE", "MARIA"), ("MARIA", "DELACRUZ")],
        "José GARCÍA LÓPEZ": [("JOSE", "LOPEZ"), ("JOSE", "GARCIALOPEZ")],
        "Jan van der BERG": [("JAN", "BERG"), ("JAN", "VANDERBERG")],
        "van der BERG Jan": [("VAN", "JAN"), ("JAN", "VANDERBERG")],
        "ИВАНОВ Иван": [("IVANOV", "IVAN"), ("IVAN", "IVANOV")],
        # case says nothing more than first word / last word: one reading
        "JOHN QUINCY SMITH": [("JOHN", "SMITH")],
        "John Quincy Smith": [("JOHN", "SMITH")],
        "John A.J. SMITH": [("JOHN", "SMITH")],
        "John SMITH Paul": [("JOHN", "PAUL")],
        "Dr. John SMITH Jr.": [("JOHN", "SMITH")],
        # read both ways, the first word / last word reading kept
        "AJ Smith": [("AJ", "SMITH"), ("SMITH", "AJ")],
        "A.J. Smith": [("A", "SMITH")],
        "MARY Ann Smith": [("MARY", "SMITH"), ("ANN", "MARY")],
        # a placeholder in capitals is no family name (nor, under the schemas' rule, a given one)
        "BABY Smith": [("BABY", "SMITH")],
        "FNU Khan": [("FNU", "KHAN")],
        "BABY GIRL Jones": [("BABY", "JONES")],
    }
    for written, pairs in cases.items():
        readings = [r for r in normalise_name(PersonName(full=written)) if not r.swapped]
        found = [(r.given_first[0], r.family[0]) for r in readings]
        assert found == pairs, written
    schema = load_default_schema()
    record = functools.partial(
        PersonRecord, category=Category.WATCHLIST, birth_date=BirthDate(1980, 4, 3)
    )
    for written, given_name, family in (
        ("IVANOV Ivan Petrovich", "Ivan", "Ivanov"),
        ("José GARCÍA LÓPEZ", "José", "García López"),
        ("MARY Ann Smith", "Mary", "Smith"),
    ):
        whole = set(derive_match_keys(record("A", name=PersonName(full=written)), schema))
        split = set(
            derive_match_keys(record("B", name=PersonName(given=given_name, family=family)), schema)
        )
        shared = {key for key, _ in whole & split}
        assert {"initial_family_dob", "soundex_family_dob", "names", "given_dob_swapped"} <= (
            shared
        ), written
    for one, other in (("BABY Smith", "BABY Jones"), ("FNU Khan", "FNU Ahmed")):
        a = set(derive_match_keys(record("A", name=PersonName(full=one)), schema))
        b = set(derive_match_keys(record("B", name=PersonName(full=other)), schema))
        assert not a & b, (one, other)  # strangers born on one day, a placeholder apart


def test_a_full_name_written_family_name_first_with_a_comma_is_split_at_the_comma() -> None:
    """``SMITH, John Paul`` was read as given SMITH, family PAUL (and the swap): it shared no
    given-and-family token with the same person recorded as given John Paul, family Smith."""
    assert name_order_variants(PersonName(full="SMITH, John Paul")) == {
        ("JOHN", "SMITH"),
        ("SMITH", "JOHN"),
    }
    assert name_order_variants(PersonName(full="Smith Jones, Mary Ann")) == {
        ("MARY", "SMITHJONES"),
        ("SMITHJONES", "MARY"),
    }
    assert name_order_variants(PersonName(full="Smith,")) == frozenset()
    # a suffix after the comma is no given name: these read as they did before the rule
    for written in ("John Smith, Jr.", "Smith, Jr., John", "Dr. John Smith, MD", "Smith, John, Jr"):
        assert name_order_variants(PersonName(full=written)) == {
            ("JOHN", "SMITH"),
            ("SMITH", "JOHN"),
        }, written
    schema = load_default_schema()
    record = functools.partial(
        PersonRecord, category=Category.WATCHLIST, birth_date=BirthDate(1980, 4, 3)
    )
    comma = PersonName(full="SMITH, John Paul")
    one_column = set(derive_match_keys(record("A", name=comma), schema))
    two_columns = set(
        derive_match_keys(record("B", name=PersonName(given="John Paul", family="Smith")), schema)
    )
    shared = {key for key, _ in one_column & two_columns}
    assert {"initial_family_dob", "soundex_family_dob", "names"} <= shared


@pytest.mark.parametrize(
    ("full", "given", "family"),
    [
        ("Pieter van der Berg", "PIETER", "VANDERBERG"),
        ("Dr. Maria da Silva", "MARIA", "DASILVA"),
        ("Juan de la Cruz", "JUAN", "DELACRUZ"),
        ("Mohammed Al Rashid", "MOHAMMED", "ALRASHID"),
        ("Ana Paula De Souza", "ANA", "DESOUZA"),
        ("José Pérez y González", "JOSE", "PEREZYGONZALEZ"),
        ("Maria Silva e Santos", "MARIA", "SILVAESANTOS"),
    ],
)
def test_a_full_name_is_also_read_with_the_particles_before_its_last_word(
    full: str, given: str, family: str
) -> None:
    """A name written whole, given names first, is read with its last word as the family name
    and also, after every first reading and without a swap, with the particles before it (and
    the family name a one-letter particle joins): what a list with separate columns holds as
    the family name (``van der Berg``, ``Pérez y González``)."""
    readings = normalise_name(PersonName(full=full))
    first = readings[0]
    assert first.given[0] == given and not first.second  # the last word: read as before
    assert family.endswith(first.family[0]) and family != first.family[0]
    assert [(r.given[0], r.family[0], r.swapped) for r in readings if r.second] == [
        (given, family, False)
    ]


@pytest.mark.parametrize(
    "full",
    [
        "John A Smith",
        "John A. Smith",
        "John E Smith",  # E: a middle initial, not a particle joining two family names
        "Mary Smith",
        "SMITH JONES, Mary Ann",
        "Andrea Castillo Jiménez",  # a second family name or a middle name: nothing tells
        "John Paul Smith",
        "John van A",
        "Baby van Berg Girl",
        "Mary van Unknown",
    ],
)
def test_no_compound_reading_without_a_particle_from_an_initial_or_a_comma(full: str) -> None:
    assert not any(r.second for r in normalise_name(PersonName(full=full)))


def test_a_reading_from_case_is_not_doubled_by_a_compound_one() -> None:
    readings = normalise_name(PersonName(full="Jan van der BERG"))
    assert [(r.given[0], r.family[0]) for r in readings if r.second and not r.swapped] == [
        ("JAN", "VANDERBERG")
    ]
