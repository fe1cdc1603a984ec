"""Set-size bounds in the MOU: each party's ``max_set_size`` and the optional daily budget
(docs/mou.md §1, §2; issue 11, item 2)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from _mou_support import CA, PARTY_KEYS, SIGNING, TODAY, US, good_document, sample_mou
from hypothesis import given, settings
from hypothesis import strategies as st

from xlink.errors import SchemaError
from xlink.linkage.schema import load_default_schema, schema_digest
from xlink.policy import (
    MouRefused,
    SignedMou,
    accept_mou,
    dump_mou,
    load_sample_template,
    mou_digest,
    mou_to_canonical,
    mou_to_document,
    parse_mou,
    parse_mou_template,
    sign_mou,
    validate_mou,
)
from xlink.protocol.limits import MAX_PADDING_BUCKET, MAX_SET_SIZE

OFF_BUCKET = "must be a multiple of exchange.padding_bucket (a padded set size always is)"
BELOW_BOUND = (
    "exchange.set_size_budget_per_day: must be at least every party's max_set_size (one session "
    "at the bound must fit)"
)


def errors_of(doc: object) -> tuple[str, ...]:
    with pytest.raises(SchemaError) as info:
        validate_mou(doc)
    return info.value.errors


def with_sizes(bucket: int, sizes: tuple[int, int], budget: int | None = None) -> dict[str, Any]:
    doc = good_document()
    doc["exchange"]["padding_bucket"] = bucket
    doc["exchange"].pop("set_size_budget_per_day", None)
    if budget is not None:
        doc["exchange"]["set_size_budget_per_day"] = budget
    for party, size in zip(doc["parties"], sizes, strict=True):
        party["max_set_size"] = size
    return doc


def test_the_sample_bounds_fit_the_demo() -> None:
    mou = sample_mou()
    assert [p.max_set_size for p in mou.parties] == [65536, 65536]
    assert mou.party(CA).max_set_size % mou.padding_bucket == 0
    assert mou.set_size_budget_per_day == 1 << 20
    assert all(mou.set_size_budget_per_day >= p.max_set_size for p in mou.parties)


def test_an_mou_without_bounds_is_refused_naming_the_field() -> None:
    doc = good_document()
    for party in doc["parties"]:
        del party["max_set_size"]
    assert errors_of(doc) == (
        "parties[0].max_set_size: required",
        "parties[1].max_set_size: required",
    )
    with pytest.raises(SchemaError, match=r"parties\[0\]\.max_set_size: required"):
        parse_mou(json.dumps(doc), "json")


@pytest.mark.parametrize("bad", [0, -1024, MAX_SET_SIZE + 1, MAX_SET_SIZE * 2, 1.5, True, None])
def test_a_bound_out_of_range_is_refused_once(bad: object) -> None:
    # Not also reported as off the bucket: the range error says it all.
    doc = good_document()
    doc["parties"][0]["max_set_size"] = bad
    assert errors_of(doc) == ("parties[0].max_set_size: must be an integer 1..16777216",)


def test_the_largest_bound_is_max_set_size() -> None:
    mou = validate_mou(with_sizes(1024, (MAX_SET_SIZE, 1024)))
    assert mou.parties[0].max_set_size == MAX_SET_SIZE == 1 << 24


def test_a_bound_below_one_bucket_is_off_the_bucket() -> None:
    assert errors_of(with_sizes(1024, (512, 1024))) == (f"parties[0].max_set_size: {OFF_BUCKET}",)


def test_both_parties_off_the_bucket_are_both_reported() -> None:
    assert errors_of(with_sizes(1000, (1500, 2500))) == (
        f"parties[0].max_set_size: {OFF_BUCKET}",
        f"parties[1].max_set_size: {OFF_BUCKET}",
    )


def test_a_bad_bucket_hides_the_multiple_check() -> None:
    doc = with_sizes(1024, (1000, 3000))
    doc["exchange"]["padding_bucket"] = 0
    assert errors_of(doc) == ("exchange.padding_bucket: must be an integer 1..1048576",)


def test_a_bound_is_checked_even_when_another_member_of_its_party_is_bad() -> None:
    doc = with_sizes(1024, (1000, 1024))
    doc["parties"][0]["verify_key"] = "00"
    assert errors_of(doc) == (
        "parties[0].verify_key: must be 64 lower-case hex digits (32 bytes)",
        f"parties[0].max_set_size: {OFF_BUCKET}",
    )


@settings(max_examples=150, deadline=None)
@given(
    bucket=st.integers(1, MAX_PADDING_BUCKET),
    size=st.integers(1, MAX_SET_SIZE),
    other=st.integers(1, 16),
)
def test_a_bound_is_valid_exactly_when_it_is_a_multiple_of_the_bucket(
    bucket: int, size: int, other: int
) -> None:
    doc = with_sizes(bucket, (size, bucket * other))
    if size % bucket:
        assert errors_of(doc) == (f"parties[0].max_set_size: {OFF_BUCKET}",)
    else:
        assert validate_mou(doc).parties[0].max_set_size == size


@settings(max_examples=60, deadline=None)
@given(
    bucket=st.sampled_from([1, 8, 1000, 1024, MAX_PADDING_BUCKET]),
    data=st.data(),
    budget=st.none() | st.integers(MAX_SET_SIZE, 1 << 40),
)
def test_bounds_and_budget_round_trip_through_every_form(
    bucket: int, data: st.DataObject, budget: int | None
) -> None:
    multiples = st.integers(1, MAX_SET_SIZE // bucket).map(lambda k: k * bucket)
    sizes = (data.draw(multiples, label="ca"), data.draw(multiples, label="us"))
    mou = validate_mou(with_sizes(bucket, sizes, budget))
    assert (mou.party(CA).max_set_size, mou.party(US).max_set_size) == sizes
    assert mou.set_size_budget_per_day == budget
    canonical = mou_to_canonical(mou)
    parties = canonical["parties"]
    assert isinstance(parties, list)
    assert [p["max_set_size"] for p in parties] == list(sizes)
    exchange = canonical["exchange"]
    assert isinstance(exchange, dict)
    assert exchange.get("set_size_budget_per_day") == budget
    assert ("set_size_budget_per_day" in exchange) is (budget is not None)
    assert validate_mou(mou_to_document(mou)) == mou
    for fmt in ("toml", "json"):
        assert parse_mou(dump_mou(mou, fmt), fmt).mou == mou


def test_the_bound_is_covered_by_the_digest_and_the_signatures() -> None:
    mou = sample_mou()
    signed = sign_mou(sign_mou(mou, CA, SIGNING[CA]), US, SIGNING[US])
    raised = dataclasses.replace(mou.parties[1], max_set_size=MAX_SET_SIZE)
    bigger = dataclasses.replace(mou, parties=(mou.parties[0], raised))
    assert mou_digest(bigger) != mou_digest(mou)
    # The partner cannot raise its own bound after both signed: the signatures no longer verify.
    tampered = SignedMou(bigger, signed.signatures)
    with pytest.raises(MouRefused) as info:
        accept_mou(tampered, local_agency=CA, today=TODAY)
    assert info.value.reasons == ("signature-invalid:CA-RCMP", "signature-invalid:US-DHS")
    text = dump_mou(signed, "toml")
    assert text.count("max_set_size = 65536") == 2
    edited = parse_mou(text.replace("max_set_size = 65536", "max_set_size = 1048576", 1), "toml")
    with pytest.raises(MouRefused):
        accept_mou(edited, local_agency=US, today=TODAY)


def test_the_budget_is_optional_and_covered_by_the_digest() -> None:
    doc = good_document()
    del doc["exchange"]["set_size_budget_per_day"]
    without = validate_mou(doc)
    assert without.set_size_budget_per_day is None
    assert "set_size_budget_per_day" not in mou_to_document(without)["exchange"]  # type: ignore[operator]
    assert mou_digest(without) != mou_digest(sample_mou())
    doc["exchange"]["set_size_budget_per_day"] = 65536  # equal to the bound: one session a day
    assert validate_mou(doc).set_size_budget_per_day == 65536
    doc["exchange"]["set_size_budget_per_day"] = 1 << 40
    assert validate_mou(doc).set_size_budget_per_day == 1 << 40


@pytest.mark.parametrize("bad", [0, -1, (1 << 40) + 1, "1048576", 2.0e6, False])
def test_a_bad_budget_is_refused(bad: object) -> None:
    doc = good_document()
    doc["exchange"]["set_size_budget_per_day"] = bad
    assert errors_of(doc) == (
        "exchange.set_size_budget_per_day: must be an integer 1..1099511627776",
    )


def test_a_budget_below_a_bound_is_refused_once() -> None:
    assert errors_of(with_sizes(1024, (4096, 8192), budget=8191)) == (BELOW_BOUND,)
    assert validate_mou(with_sizes(1024, (4096, 8192), budget=8192)).set_size_budget_per_day


def test_every_set_size_error_is_collected_at_once() -> None:
    doc = with_sizes(1024, (1000, 2048), budget=2047)
    del doc["exchange"]["query_quota_per_day"]
    assert errors_of(doc) == (
        "exchange.query_quota_per_day: required",
        f"parties[0].max_set_size: {OFF_BUCKET}",
        BELOW_BOUND,
    )


# -- templates -----------------------------------------------------------------------------------


def _template_without_bounds() -> str:
    doc = json.loads(load_sample_template().document)
    for party in doc["parties"]:
        del party["max_set_size"]
    return json.dumps(doc)


def test_a_template_may_leave_the_bounds_to_fill() -> None:
    template = parse_mou_template(_template_without_bounds(), "json")
    assert template.max_set_sizes == {}
    assert load_sample_template().max_set_sizes == {CA: 65536, US: 65536}
    digest = schema_digest(load_default_schema())
    with pytest.raises(SchemaError) as info:
        template.fill(PARTY_KEYS, schema_digest=digest, max_set_size={CA: 8192})
    assert info.value.errors == ("parties[1].max_set_size: required",)
    mou = template.fill(
        PARTY_KEYS,
        schema_digest=digest,
        max_set_size={CA: 8192, US: 32768},
        set_size_budget_per_day=1 << 16,
    )
    assert (mou.party(CA).max_set_size, mou.party(US).max_set_size) == (8192, 32768)
    assert mou.set_size_budget_per_day == 1 << 16


def test_fill_replaces_the_template_bounds_and_checks_them() -> None:
    template = load_sample_template()
    digest = schema_digest(load_default_schema())
    mou = template.fill(PARTY_KEYS, schema_digest=digest, max_set_size={US: 2048})
    assert (mou.party(CA).max_set_size, mou.party(US).max_set_size) == (65536, 2048)
    with pytest.raises(SchemaError) as info:
        template.fill(PARTY_KEYS, schema_digest=digest, max_set_size={CA: 1000})
    assert info.value.errors == (f"parties[0].max_set_size: {OFF_BUCKET}",)
    with pytest.raises(SchemaError) as info:
        template.fill(PARTY_KEYS, schema_digest=digest, set_size_budget_per_day=1024)
    assert info.value.errors == (BELOW_BOUND,)
    with pytest.raises(ValueError, match="does not name"):
        template.fill(PARTY_KEYS, schema_digest=digest, max_set_size={"MX-FGR": 1024})


def test_a_template_with_a_bad_bound_is_refused_when_read() -> None:
    doc = json.loads(load_sample_template().document)
    doc["parties"][0]["max_set_size"] = 1000
    with pytest.raises(SchemaError) as info:
        parse_mou_template(json.dumps(doc), "json")
    assert info.value.errors == (f"parties[0].max_set_size: {OFF_BUCKET}",)
    doc["parties"][0]["max_set_size"] = 1024
    doc["exchange"]["padding_bucket"] = -1  # the stand-in bound never adds an error of its own
    del doc["parties"][1]["max_set_size"]
    with pytest.raises(SchemaError) as info:
        parse_mou_template(json.dumps(doc), "json")
    assert info.value.errors == ("exchange.padding_bucket: must be an integer 1..1048576",)
