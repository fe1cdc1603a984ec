from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xlink.errors import InputError
from xlink.records.transliterate import (
    CYRILLIC_TABLE,
    LATIN_TABLE,
    MAX_VARIANTS,
    UntransliterableError,
    transliterate,
    transliterate_variants,
    transliterate_variants_ordered,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Müller", {"MUELLER", "MULLER"}),
        ("Дмитрий", {"DMITRII"}),
        ("Щукин", {"SHCHUKIN"}),
        ("Хрущёв", {"KHRUSHCHEV"}),
        ("Жуков", {"ZHUKOV"}),
        ("Цой", {"TSOI"}),
        ("Юлия", {"IULIIA"}),
        ("Игорь", {"IGOR"}),
        ("Объект", {"OBIEEKT"}),
        ("Їжак", {"IZHAK"}),
        ("Ґудзь", {"GUDZ"}),
        ("Љубиша Њего Ћирић Џаја", {"LJUBISHA NJEGO CIRIC DZAJA"}),
        ("Ѓорѓе Ќосе Ѕвезда Ђорђе", {"GORGE KOSE DZVEZDA DORDE"}),
        ("Straße", {"STRASSE"}),
        ("Ærø", {"AEROE", "AERO"}),
        ("Œuvre", {"OEUVRE"}),
        ("Þór", {"THOR"}),
        ("Peña", {"PENA"}),
        ("Łukasz", {"LUKASZ"}),
        ("Đorđe", {"DORDE"}),
        ("Iı", {"II"}),
        ("Ĳsselmeer", {"IJSSELMEER"}),
        ("Ångström", {"AANGSTROEM", "ANGSTROM", "AANGSTROM", "ANGSTROEM"}),
        ("Smith", {"SMITH"}),
    ],
)
def test_table_spot_checks(text: str, expected: set[str]) -> None:
    assert transliterate_variants(text) == expected


def test_slashed_o_also_reads_as_the_base_letter() -> None:
    """``Ø`` was ``OE`` alone: *Bjørn Sørensen* shared no exact name token with *Bjorn
    Sorensen*, as a list that strips diacritics writes him (``ø`` → ``o``, like ``ö`` → ``o``)."""
    assert transliterate_variants_ordered("Bjørn Sørensen") == (
        "BJOERN SOERENSEN",
        "BJORN SORENSEN",
        "BJOERN SORENSEN",
        "BJORN SOERENSEN",
    )
    assert transliterate("Søren") == "SOEREN"  # ICAO's value stays the primary form
    assert LATIN_TABLE["Ø"] == ("OE", "O")


def test_primary_is_first_listed_value() -> None:
    assert transliterate("Müller") == "MUELLER"
    assert transliterate_variants_ordered("Müller")[0] == "MUELLER"
    assert transliterate("Åsa Öberg") == "AASA OEBERG"


def test_non_letters_pass_through() -> None:
    assert transliterate("O'Brien-Smith 3") == "O'BRIEN-SMITH 3"


def test_decomposition_fallback() -> None:
    assert transliterate("Ǹguyễn") == "NGUYEN"  # not in the tables: base letters
    assert transliterate("ﬁ") == "FI"


def test_combining_marks_compose_first() -> None:
    assert transliterate_variants("Mu\u0308ller") == {"MUELLER", "MULLER"}


@pytest.mark.parametrize("text", ["محمد", "王伟", "Αλέξης", "דוד"])
def test_untransliterable_raises_and_never_deletes(text: str) -> None:
    with pytest.raises(UntransliterableError) as info:
        transliterate(text)
    assert isinstance(info.value, InputError)
    assert text not in str(info.value)
    with pytest.raises(UntransliterableError):
        transliterate_variants(text)


def test_variant_cap_is_deterministic_and_keeps_both_conventions() -> None:
    text = "Ä Ö Ü Å Ä Ö"
    variants = transliterate_variants_ordered(text)
    assert len(variants) == MAX_VARIANTS
    assert variants[0] == "AE OE UE AA AE OE"
    assert variants[1] == "A O U A A O"
    assert variants == transliterate_variants_ordered(text)


def test_tables_output_mrz_alphabet() -> None:
    for table in (LATIN_TABLE, CYRILLIC_TABLE):
        for values in table.values():
            for value in values:
                assert value == "" or (value.isascii() and value.isalpha() and value.isupper())


@given(st.text(alphabet=st.sampled_from(sorted(set(LATIN_TABLE) | set(CYRILLIC_TABLE)))))
def test_every_table_letter_transliterates(text: str) -> None:
    for variant in transliterate_variants(text):
        assert variant == "" or (variant.isascii() and variant.isalpha() and variant.isupper())
    assert transliterate(text) in transliterate_variants(text)


@given(st.text(alphabet=st.sampled_from(sorted(set(LATIN_TABLE) | set(CYRILLIC_TABLE)))))
def test_case_invariance_of_table_letters(text: str) -> None:
    assert transliterate(text.lower()).replace("'", "").replace("ʼ", "") == transliterate(
        text.upper()
    ).replace("'", "").replace("ʼ", "")
