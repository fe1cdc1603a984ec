"""The fuzzy transforms (``deletions``, ``minhash:BxR``), ``nospace``, their parsing and their
place in the linkage schema and in key derivation."""

from __future__ import annotations

import hashlib
import random
import re
from pathlib import Path

import jellyfish
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from xlink.errors import SchemaError
from xlink.linkage.fields import (
    MAX_MINHASH_FUNCTIONS,
    Transform,
    TransformKind,
    apply_chain,
    apply_transform,
    deletion_neighbourhood,
    minhash_bands,
)
from xlink.linkage.keys import MAX_TOKENS_PER_KEY, derive_match_keys, key_parts, record_instances
from xlink.linkage.schema import (
    LinkageSchema,
    load_schema,
    schema_digest,
    schema_to_canonical,
    validate_schema,
)
from xlink.records.model import BirthDate, Category, PersonName, PersonRecord

AZ = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
names = st.text(alphabet=AZ, min_size=1, max_size=12)
DELETIONS = Transform.parse("deletions")


def nbhd(value: str) -> set[str]:
    return set(apply_transform(DELETIONS, value))


# -- deletions ---------------------------------------------------------------------------------


@st.composite
def one_edit(draw: st.DrawFn) -> tuple[str, str]:
    """A value of at least two letters and the same value after one edit."""
    s = draw(st.text(alphabet=AZ, min_size=2, max_size=12))
    kind = draw(st.sampled_from(["substitute", "insert", "delete", "transpose"]))
    if kind == "substitute":
        i = draw(st.integers(0, len(s) - 1))
        c = draw(st.sampled_from(AZ).filter(lambda c: c != s[i]))
        return s, s[:i] + c + s[i + 1 :]
    if kind == "insert":
        i = draw(st.integers(0, len(s)))
        return s, s[:i] + draw(st.sampled_from(AZ)) + s[i:]
    if kind == "delete":
        i = draw(st.integers(0, len(s) - 1))
        return s, s[:i] + s[i + 1 :]
    i = draw(st.integers(0, len(s) - 2))
    return s, s[:i] + s[i + 1] + s[i] + s[i + 2 :]


@given(one_edit())
def test_one_edit_shares_a_deletion_value(pair: tuple[str, str]) -> None:
    a, b = pair
    assert jellyfish.damerau_levenshtein_distance(a, b) <= 1
    assert nbhd(a) & nbhd(b)
    assert nbhd(b) & nbhd(a)


@given(st.sampled_from(AZ), st.sampled_from(AZ))
def test_one_letter_values_share_only_when_equal(a: str, b: str) -> None:
    # The documented exception: a one-character value is not reduced to "" (which every
    # one-character value would share), so two different single letters share nothing.
    assert bool(nbhd(a) & nbhd(b)) == (a == b)


@given(st.text(alphabet="ABC", max_size=8), st.text(alphabet="ABC", max_size=8))
def test_shared_deletion_value_means_distance_at_most_two(a: str, b: str) -> None:
    # A small alphabet makes shared values common; the statement holds for every pair.
    if nbhd(a) & nbhd(b):
        assert jellyfish.levenshtein_distance(a, b) <= 2


@given(st.text(alphabet=AZ, min_size=3, max_size=12), st.data())
def test_three_substitutions_apart_share_nothing(a: str, data: st.DataObject) -> None:
    # Three substitutions at distinct positions; kept when the Damerau-Levenshtein distance
    # really is >= 3 (it can be less, e.g. when substitutions amount to a shift).
    positions = data.draw(st.lists(st.integers(0, len(a) - 1), min_size=3, max_size=3, unique=True))
    chars = list(a)
    for i in positions:
        chars[i] = data.draw(st.sampled_from([c for c in AZ if c != a[i]]))
    b = "".join(chars)
    assume(jellyfish.damerau_levenshtein_distance(a, b) >= 3)
    assert not nbhd(a) & nbhd(b)


@given(names, names)
def test_unrelated_values_three_edits_apart_share_nothing(a: str, b: str) -> None:
    assume(jellyfish.damerau_levenshtein_distance(a, b) >= 3)
    assert not nbhd(a) & nbhd(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [("ANNA", "ANNE"), ("ANNA", "ANA"), ("MULLER", "MUELLER"), ("HASSAN", "HASAN"),
     ("IVANOV", "IVANVO"), ("SMITH", "SMYTH")],
)  # fmt: skip
def test_one_edit_examples_share(a: str, b: str) -> None:
    assert nbhd(a) & nbhd(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [("SMITH", "SMYTHE" + "S"), ("ANNA", "ANTONIA"), ("MULLER", "MILLAR" + "D"),
     ("IVANOV", "IVANOVA" + "YA")],
)  # fmt: skip
def test_far_examples_share_nothing(a: str, b: str) -> None:
    assert jellyfish.damerau_levenshtein_distance(a, b) >= 3
    assert not nbhd(a) & nbhd(b)


def test_deletion_order_and_dedup() -> None:
    assert deletion_neighbourhood("ANNA") == ("ANNA", "NNA", "ANA", "ANN")
    assert deletion_neighbourhood("MULLER") == (
        "MULLER", "ULLER", "MLLER", "MULER", "MULLR", "MULLE",
    )  # fmt: skip
    assert deletion_neighbourhood("AAA") == ("AAA", "AA")
    assert deletion_neighbourhood("AB") == ("AB", "B", "A")
    assert deletion_neighbourhood("A") == ("A",)
    assert apply_transform(DELETIONS, "A") == ("A",)
    assert apply_transform(DELETIONS, "") == ()
    assert apply_chain((DELETIONS,), "ANNA") == ("ANNA", "NNA", "ANA", "ANN")


@given(names)
def test_deletion_neighbourhood_shape(value: str) -> None:
    out = deletion_neighbourhood(value)
    assert out[0] == value
    assert len(set(out)) == len(out) <= len(value) + 1
    expected = list(dict.fromkeys(value[:i] + value[i + 1 :] for i in range(len(value))))
    assert list(out[1:]) == ([] if len(value) == 1 else expected)


# -- minhash -----------------------------------------------------------------------------------


def bigrams(value: str) -> set[str]:
    w = "^" + value.replace(" ", "") + "$"
    return {w[i : i + 2] for i in range(len(w) - 1)}


def jaccard(a: str, b: str) -> float:
    x, y = bigrams(a), bigrams(b)
    return len(x & y) / len(x | y)


BAND = re.compile(r"([0-9]+):([0-9a-f]{16}(?:\.[0-9a-f]{16})*)")


@given(names, st.integers(1, 8), st.integers(1, 8))
def test_minhash_shape_and_determinism(value: str, bands: int, rows: int) -> None:
    out = minhash_bands(value, bands, rows)
    assert out == minhash_bands(value, bands, rows)
    assert len(out) == bands
    for j, band in enumerate(out):
        m = BAND.fullmatch(band)
        assert m is not None and int(m[1]) == j and len(m[2].split(".")) == rows


def _minhash_as_specified(value: str, bands: int, rows: int) -> tuple[str, ...]:
    """minhash_bands as its docstring (and docs/records-and-linkage.md) says, straight from the
    bigram set of the whole wrapped value."""
    grams = bigrams(value)
    if grams == {"^$"}:
        return ()
    dst = b"xlink/v1/minhash"
    mins = [
        min(
            int.from_bytes(
                hashlib.sha256(
                    len(dst).to_bytes(4, "big") + dst + i.to_bytes(4, "big") + g.encode()
                ).digest()[:8],
                "big",
            )
            for g in grams
        )
        for i in range(bands * rows)
    ]
    return tuple(
        f"{j}:" + ".".join(f"{m:016x}" for m in mins[j * rows : (j + 1) * rows])
        for j in range(bands)
    )


# Names of several words, one-letter words and stray spaces: the bands are computed word by
# word (each word's own bigrams, then those across each junction) and must not differ.
spaced_names = st.lists(
    st.text(alphabet=AZ + "ÄÉ", min_size=0, max_size=6), min_size=1, max_size=4
).map(" ".join)


@given(spaced_names, st.integers(1, 6), st.integers(1, 4))
def test_minhash_is_the_minimum_over_the_whole_values_bigrams(
    value: str, bands: int, rows: int
) -> None:
    assert minhash_bands(value, bands, rows) == _minhash_as_specified(value, bands, rows)


def test_minhash_through_apply_transform() -> None:
    step = Transform.parse("minhash:4x2")
    assert apply_transform(step, "DMITRIY") == minhash_bands("DMITRIY", 4, 2)
    assert apply_chain((step,), "DMITRIY") == minhash_bands("DMITRIY", 4, 2)
    assert apply_transform(step, "") == ()
    assert apply_transform(step, "   ") == ()
    assert minhash_bands(" ", 4, 2) == ()


def test_minhash_ignores_spaces() -> None:
    assert minhash_bands("DE LA CRUZ", 3, 3) == minhash_bands("DELACRUZ", 3, 3)
    assert minhash_bands(" NEW  YORK ", 3, 3) == minhash_bands("NEWYORK", 3, 3)


def test_minhash_prefix_is_shared_across_band_counts() -> None:
    # Hash function i does not depend on B or R: 8x1 holds the same minimums as 4x2.
    flat = [b.split(":")[1] for b in minhash_bands("PETROV", 8, 1)]
    paired = [b.split(":")[1] for b in minhash_bands("PETROV", 4, 2)]
    assert [f"{flat[2 * j]}.{flat[2 * j + 1]}" for j in range(4)] == paired


@given(names, names)
def test_identical_bigram_sets_share_every_band(a: str, b: str) -> None:
    assert set(minhash_bands(a, 4, 2)) == set(minhash_bands(a, 4, 2))
    if bigrams(a) == bigrams(b):
        assert minhash_bands(a, 4, 2) == minhash_bands(b, 4, 2)


@given(names, names)
def test_bands_of_different_indices_never_collide(a: str, b: str) -> None:
    xa, xb = minhash_bands(a, 6, 2), minhash_bands(b, 6, 2)
    for j, band in enumerate(xa):
        for k, other in enumerate(xb):
            if j != k:
                assert band != other


def test_disjoint_bigrams_share_no_band() -> None:
    assert jaccard("AB", "XY") == 0.0
    assert not set(minhash_bands("AB", 8, 1)) & set(minhash_bands("XY", 8, 1))


def _mutate(rng: random.Random, s: str, edits: int) -> str:
    chars = list(s)
    for i in rng.sample(range(len(chars)), edits):
        chars[i] = rng.choice(AZ)
    return "".join(chars)


@pytest.mark.parametrize(("bands", "rows"), [(4, 2), (3, 3), (8, 1)])
def test_band_agreement_follows_the_lsh_curve(bands: int, rows: int) -> None:
    # Over random pairs of varying similarity, the observed number of pairs with at least one
    # common band (and of common bands) is near the sum of 1-(1-J^R)^B (and of B*J^R). The
    # probability is over the choice of hash functions: for the fixed SHA-256 functions each
    # function's agreement rate on such pairs is off J by up to ~1-2% (measured; the same with
    # other domain labels), hence a relative margin on top of the binomial one. Seeded.
    rng = random.Random(20250611 + bands * 10 + rows)
    expected_any = var_any = expected_bands = 0.0
    observed_any = observed_bands = 0
    for _ in range(1500):
        a = "".join(rng.choice(AZ) for _ in range(rng.randint(6, 12)))
        b = _mutate(rng, a, rng.randint(1, 6))
        j = jaccard(a, b)
        p_band = j**rows
        p_any = 1 - (1 - p_band) ** bands
        expected_any += p_any
        var_any += p_any * (1 - p_any)
        expected_bands += bands * p_band
        xa, xb = minhash_bands(a, bands, rows), minhash_bands(b, bands, rows)
        common = sum(x == y for x, y in zip(xa, xb, strict=True))
        observed_bands += common
        observed_any += common > 0
    assert 150 < expected_any < 1350  # the pairs span the curve, not only its ends
    assert abs(observed_any - expected_any) <= 4 * var_any**0.5 + 0.03 * expected_any
    assert abs(observed_bands - expected_bands) <= 0.05 * expected_bands + 20


# -- nospace -----------------------------------------------------------------------------------


def test_nospace() -> None:
    step = Transform.parse("nospace")
    assert apply_transform(step, "VAN DER BERG") == ("VANDERBERG",)
    assert apply_transform(step, "  ") == ()
    assert apply_transform(step, "") == ()
    assert str(step) == "nospace"


# -- parsing -----------------------------------------------------------------------------------


def test_minhash_parse_round_trip() -> None:
    step = Transform.parse("minhash:4x2")
    assert step == Transform(TransformKind.MINHASH, 4, 2)
    assert (step.length, step.rows) == (4, 2)
    assert str(step) == "minhash:4x2"
    assert Transform.parse(str(step)) == step
    assert step.expanding and DELETIONS.expanding
    assert not Transform.parse("soundex").expanding
    assert not Transform.parse("nospace").expanding
    assert str(Transform.parse("minhash:8x8")) == "minhash:8x8"  # 64 = the bound
    assert str(Transform.parse("minhash:64x1")) == "minhash:64x1"
    assert MAX_MINHASH_FUNCTIONS == 64


@pytest.mark.parametrize(
    "spec",
    ["minhash", "minhash:", "minhash:0x2", "minhash:2x0", "minhash:9x9", "minhash:65x1",
     "minhash:4", "minhash:4x", "minhash:x2", "minhash:04x2", "minhash:4X2", "minhash:4x2x1",
     "minhash: 4x2", "minhash:-4x2", "deletions:3", "deletions:", "nospace:1"],
)  # fmt: skip
def test_bad_specs_are_refused(spec: str) -> None:
    with pytest.raises(ValueError):
        Transform.parse(spec)


def test_minhash_bound_message() -> None:
    with pytest.raises(ValueError, match="at most 64"):
        Transform.parse("minhash:9x9")


OLD_SPECS = ["identity", "soundex", "nysiis", "metaphone", "first_initial", "first_n:3",
             "last_n:4", "first_n:64", "digits", "year", "year_month"]  # fmt: skip


@pytest.mark.parametrize("spec", OLD_SPECS)
def test_existing_transforms_keep_their_string_form(spec: str) -> None:
    step = Transform.parse(spec)
    assert str(step) == spec
    assert step.rows is None


def test_schema_v1_digest_unchanged() -> None:
    # The digest published for the former default schema (xlink-default v1, kept here as a
    # fixture) before fuzzy transforms, key weights and the certain threshold were added: a
    # schema using none of them keeps its digest.
    v1 = load_schema(Path(__file__).with_name("schema-default-v1.json"))
    assert schema_digest(v1).hex() == (
        "ce30c072b16b5d847cd47ea1b75a1a0b94f61b2486db119bfc12ea2c1998fb9d"
    )


# -- schema ------------------------------------------------------------------------------------


def schema(*keys: dict[str, object]) -> LinkageSchema:
    return validate_schema({"id": "fuzzy-test", "version": 1, "keys": list(keys)})


def key(name: str, *fields: str, **extra: object) -> dict[str, object]:
    return {"name": name, "version": 1, "fields": list(fields), **extra}


def test_schema_accepts_one_fuzzy_field() -> None:
    s = schema(
        key("a", "family", "birth_date", transforms={"family": ["nospace", "deletions"]}),
        key("b", "given", "family", transforms={"given": "minhash:4x2", "family": "soundex"}),
    )
    assert s.keys[0].transforms[0] == (Transform.parse("nospace"), DELETIONS)
    canonical = schema_to_canonical(s)
    assert canonical["keys"][1]["transforms"] == [["minhash:4x2"], ["soundex"]]  # type: ignore[index]


def test_schema_refuses_two_fuzzy_fields_naming_them() -> None:
    with pytest.raises(SchemaError) as info:
        schema(
            key("ok", "family", transforms={"family": "deletions"}),
            key("two", "given", "family", "birth_date",
                transforms={"given": "minhash:4x2", "family": ["soundex", "deletions"]}),
        )  # fmt: skip
    (error,) = info.value.errors
    assert error.startswith("keys[1].transforms:")
    assert "given" in error and "family" in error
    assert "birth_date" not in error


def test_schema_reports_bad_minhash_spec_with_location() -> None:
    with pytest.raises(SchemaError) as info:
        schema(key("k", "family", transforms={"family": "minhash:9x9"}))
    (error,) = info.value.errors
    assert error.startswith("keys[0].transforms.family:") and "64" in error


# -- keys --------------------------------------------------------------------------------------


def person(given: str, family: str, record_id: str = "r", **kw: object) -> PersonRecord:
    return PersonRecord(
        record_id=record_id,
        category=Category.WATCHLIST,
        name=PersonName(given=given, family=family),
        birth_date=kw.pop("birth", BirthDate(1981, 5, 17)),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def tokens(record: PersonRecord, s: LinkageSchema, name: str) -> set[bytes]:
    return {t for k, t in derive_match_keys(record, s) if k == name}


@pytest.mark.parametrize(
    ("transform", "typo"),
    [("deletions", "Hasan"), ("deletions", "Hassen"), ("deletions", "Hsasan"),
     ("minhash:4x2", "Hassen"), ("minhash:8x1", "Hasan")],
)  # fmt: skip
def test_fuzzy_key_tolerates_a_typo(transform: str, typo: str) -> None:
    s = schema(
        key("exact", "family", "birth_date"),
        key("fuzzy", "family", "birth_date", transforms={"family": transform}),
    )
    clean, typoed = person("Ahmed", "Hassan", "a"), person("Ahmed", typo, "b")
    assert not tokens(clean, s, "exact") & tokens(typoed, s, "exact")
    assert tokens(clean, s, "fuzzy") & tokens(typoed, s, "fuzzy")
    # the birth date still has to agree
    other_day = person("Ahmed", typo, "c", birth=BirthDate(1981, 5, 18))
    assert not tokens(clean, s, "fuzzy") & tokens(other_day, s, "fuzzy")


def test_fuzzy_key_does_not_join_unrelated_names() -> None:
    s = schema(key("fuzzy", "family", "birth_date", transforms={"family": "deletions"}))
    assert not tokens(person("A", "Hassan"), s, "fuzzy") & tokens(person("A", "Petrov"), s, "fuzzy")


def test_deletion_tokens_per_record() -> None:
    s = schema(
        key("fuzzy", "family", "birth_date", use_variants=False, transforms={"family": "deletions"})
    )
    assert len(tokens(person("Ahmed", "Petrov"), s, "fuzzy")) == len("PETROV") + 1
    s = schema(key("bands", "family", transforms={"family": "minhash:5x2"}))
    assert len(tokens(person("Ahmed", "Petrov"), s, "bands")) == 5


def test_token_cap_with_minhash() -> None:
    s = schema(key("bands", "family", transforms={"family": "minhash:64x1"}))
    record = person("Ahmed", "Petrov")
    parts = key_parts(s.keys[0], record_instances(record))
    assert len(parts) == MAX_TOKENS_PER_KEY == 32
    assert parts == [(b,) for b in minhash_bands("PETROV", 64, 1)[:32]]  # first ones first
    assert len(tokens(record, s, "bands")) == 32


def test_token_cap_with_deletions_and_variants() -> None:
    # 2 transliterations of a 13-letter name (14 and 13 deletion values) x 2 date orders
    # x an alias: far beyond 32 combinations before the cap.
    s = schema(key("fuzzy", "family", "birth_date", transforms={"family": "deletions"}))
    record = person(
        "Jürgen",
        "Schönhausener",
        birth=BirthDate(1980, 3, 4, day_month_ambiguous=True),
        aliases=(PersonName(given="J", family="Abdelrahmanova"),),
    )
    uncapped = {
        (v, d)
        for fam in ("SCHOENHAUSENER", "SCHONHAUSENER", "ABDELRAHMANOVA")
        for v in deletion_neighbourhood(fam)
        for d in ("1980-03-04", "1980-04-03")
    }
    assert len(uncapped) > MAX_TOKENS_PER_KEY
    parts = key_parts(s.keys[0], record_instances(record))
    assert len(parts) == MAX_TOKENS_PER_KEY
    assert set(parts) <= uncapped
    assert len(tokens(record, s, "fuzzy")) == MAX_TOKENS_PER_KEY


@pytest.mark.parametrize("chain", [["deletions", "minhash:4x2"], ["deletions", "deletions"]])
def test_schema_refuses_two_fuzzy_steps_in_one_chain(chain: list[str]) -> None:
    with pytest.raises(SchemaError):
        schema(key("k", "family", "birth_date", transforms={"family": chain}))
