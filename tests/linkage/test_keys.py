from __future__ import annotations

import time

from hypothesis import given
from hypothesis import strategies as st

from xlink.linkage.keys import MAX_TOKENS_PER_KEY, derive_match_keys, derive_token_set
from xlink.linkage.schema import LinkageSchema, schema_digest, validate_schema
from xlink.linkage.tokens import TOKEN_SIZE, token_digest
from xlink.records.model import (
    Address,
    BirthDate,
    Category,
    IdentityDocument,
    PersonName,
    PersonRecord,
    Sex,
)


def schema(*keys: dict[str, object], schema_id: str = "test-schema") -> LinkageSchema:
    return validate_schema({"id": schema_id, "version": 1, "keys": list(keys)})


def key(name: str, *fields: str, **extra: object) -> dict[str, object]:
    return {"name": name, "version": 1, "fields": list(fields), **extra}


def person(
    given: str = "Jürgen",
    family: str = "Müller",
    birth: BirthDate | None = None,
    **kw: object,
) -> PersonRecord:
    return PersonRecord(
        record_id=str(kw.pop("record_id", "r1")),
        category=Category.WATCHLIST,
        name=PersonName(given=given, family=family),
        birth_date=birth or BirthDate(1970, 1, 2),
        **kw,  # type: ignore[arg-type]
    )


def tokens_of(record: PersonRecord, s: LinkageSchema, name: str) -> set[bytes]:
    return {t for k, t in derive_match_keys(record, s) if k == name}


def test_token_is_token_digest_of_normalised_parts() -> None:
    s = schema(key("name_dob", "given", "family", "birth_date", use_variants=False))
    (only,) = derive_match_keys(person(), s)
    assert only == (
        "name_dob",
        token_digest("test-schema", 1, "name_dob", 1, ["JUERGEN", "MUELLER", "1970-01-02"]),
    )


def test_variants_multiply_tokens() -> None:
    s = schema(key("name_dob", "given", "family", "birth_date"))
    tokens = tokens_of(person(), s, "name_dob")
    # 2 transliterations of each name x 2 name orders, all-primary and all-alternate first
    assert len(tokens) == 8
    plain = person(given="Jurgen", family="Muller")
    assert tokens_of(plain, s, "name_dob") <= tokens
    swapped = person(given="Muller", family="Jurgen")
    assert tokens_of(swapped, s, "name_dob") & tokens


def test_ambiguous_dates_give_both_orders() -> None:
    s = schema(key("dob", "birth_date"))
    r = person(birth=BirthDate(1980, 3, 4, day_month_ambiguous=True))
    other = person(birth=BirthDate(1980, 4, 3))
    assert tokens_of(other, s, "dob") <= tokens_of(r, s, "dob")
    s_plain = schema(key("dob", "birth_date", use_variants=False))
    assert not tokens_of(other, s_plain, "dob") & tokens_of(r, s_plain, "dob")


def test_missing_fields_skip_the_key() -> None:
    s = schema(key("doc", "document_number"), key("family", "family"), key("sex", "sex"))
    keys = {k for k, _ in derive_match_keys(person(sex=Sex.UNSPECIFIED), s)}
    assert keys == {"family"}
    untransliterable = person(family="محمد")
    assert {k for k, _ in derive_match_keys(untransliterable, s)} == set()


def test_domain_separation() -> None:
    r = person()
    a = schema(key("k1", "family", use_variants=False), key("k2", "family", use_variants=False))
    b = schema(key("k1", "family", use_variants=False), schema_id="other-schema")
    t1, t2 = tokens_of(r, a, "k1"), tokens_of(r, a, "k2")
    assert t1 and t2 and not t1 & t2
    assert not tokens_of(r, b, "k1") & t1
    v2 = schema({"name": "k1", "version": 2, "fields": ["family"], "use_variants": False})
    assert not tokens_of(r, v2, "k1") & t1


def test_document_fields_stay_together() -> None:
    docs = (IdentityDocument("P", "AB123", "CAN"), IdentityDocument("P", "XY999", "USA"))
    s = schema(key("doc", "document_number", "document_country"))
    got = tokens_of(person(documents=docs), s, "doc")
    expect = {
        token_digest("test-schema", 1, "doc", 1, [n, c])
        for n, c in (("AB123", "CAN"), ("XY999", "USA"))
    }
    assert got == expect


def test_transforms_and_unordered() -> None:
    s = schema(
        key("ph", "family", "birth_date", transforms={"family": "soundex", "birth_date": "year"}),
        key("pair", "given", "family", unordered=True, use_variants=False),
    )
    a = person(given="Anna", family="Smith")
    b = person(given="Smith", family="Anna", birth=BirthDate(1970, 12, 31))
    c = person(given="Anna", family="Smyth", birth=BirthDate(1970))
    assert tokens_of(a, s, "pair") == tokens_of(b, s, "pair")
    assert tokens_of(a, s, "ph") & tokens_of(c, s, "ph")


def test_a_partial_date_is_no_full_birth_date_under_full_birth_dates() -> None:
    """With the schema's ``full_birth_dates``, birth_date holds full dates only: a partial date
    gives no token for a key on it (transformed or not), so the key is missing (no evidence)
    rather than disagreeing with a full date, and two year-only dates do not agree as if their
    day were known; the year fields still compare what the date says. Without the flag
    (schemas written before it, such as default v4), tokens are as they always were. A schema
    with the flag failed this before there was one: a garbled day kept as the year and month
    disagreed on every full-date key."""
    keys = [
        key("fam_dob", "family", "birth_date"),
        key("fam_year", "family", "birth_year"),
        key("fam_ym", "family", "birth_year_month"),
        key("fam_dob_year", "family", "birth_date", transforms={"birth_date": "year"}),
        key("fam_dob_ym", "family", "birth_date", transforms={"birth_date": "year_month"}),
    ]
    flagged = validate_schema(
        {"id": "test-schema", "version": 1, "keys": keys, "full_birth_dates": True}
    )
    plain = schema(*keys)
    full, month, year = BirthDate(1983, 10, 7), BirthDate(1983, 10), BirthDate(1983)

    def keys_of(s: LinkageSchema, b: BirthDate) -> set[str]:
        return {k for k, _ in derive_match_keys(person(birth=b), s)}

    every = {"fam_dob", "fam_year", "fam_ym", "fam_dob_year", "fam_dob_ym"}
    assert keys_of(flagged, full) == every
    # the field holds full dates only, whatever a key does with it
    assert keys_of(flagged, month) == {"fam_year", "fam_ym"}
    assert keys_of(flagged, year) == {"fam_year"}
    assert tokens_of(person(birth=full), flagged, "fam_year") == tokens_of(
        person(birth=year), flagged, "fam_year"
    )
    # without the flag: a partial date hashes as its ISO form on birth_date keys
    assert keys_of(plain, month) == every
    assert keys_of(plain, year) == {"fam_dob", "fam_year", "fam_dob_year"}
    assert tokens_of(person(birth=full), plain, "fam_dob_ym") == tokens_of(
        person(birth=month), plain, "fam_dob_ym"
    )
    # the flag is part of the schema's digest, so two parties cannot disagree on it unseen
    assert schema_digest(flagged) != schema_digest(plain)


def test_aliases_and_addresses() -> None:
    s = schema(key("fam_pc", "family", "postcode"))
    r = person(
        aliases=(PersonName(given="J", family="Smith"),),
        addresses=(Address(postcode="k1a 0b1"),),
    )
    alias_token = token_digest("test-schema", 1, "fam_pc", 1, ["SMITH", "K1A0B1"])
    assert alias_token in tokens_of(r, s, "fam_pc")


def test_token_cap() -> None:
    s = schema(key("n", "given", "family"))
    r = person(given="Ä Ö Ü Å", family="Ä Ö Ü Å", aliases=(PersonName(given="Ö Ü", family="Ä Ü"),))
    assert 0 < len(tokens_of(r, s, "n")) <= MAX_TOKENS_PER_KEY


def test_token_set() -> None:
    s = schema(key("family", "family"), key("dob", "birth_date"))
    calls: list[int] = []
    records = [person(record_id=f"r{i}", family=f"Name{chr(65 + i % 26)}") for i in range(2500)]
    start = time.perf_counter()
    ts = derive_token_set(records, s, progress=calls.append)
    assert time.perf_counter() - start < 10
    assert calls == [1000, 2000, 2500]
    assert ts.key_names == ("family", "dob")
    assert len(ts.record_ids) == 2500 and len(ts.values) == len(ts) * TOKEN_SIZE
    assert ts.record_of(0) == "r0" and ts.key_of(0) == "family"


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyzäöüéñ -'", min_size=1, max_size=20))
def test_case_and_spacing_do_not_change_tokens(family: str) -> None:
    s = schema(key("family", "family"))
    a = derive_match_keys(person(family=family), s)
    b = derive_match_keys(person(family=f"  {family.upper()}  "), s)
    assert a == b
