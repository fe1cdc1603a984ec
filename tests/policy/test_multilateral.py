"""Multilateral MOUs: the document, its validation, digest, signatures, acceptance and each pair's
bilateral view (docs/mou.md §8)."""

from __future__ import annotations

import copy
import datetime
import hashlib
import json
import tomllib
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xlink.crypto.keys import SealingKey, SigningKey
from xlink.crypto.rand import DeterministicRandom
from xlink.errors import InputError, MouRefused, SchemaError
from xlink.linkage.schema import load_default_schema, schema_digest
from xlink.policy import (
    MULTILATERAL_DIGEST_DST,
    NO_TERMS,
    MultilateralMou,
    MultilateralTemplate,
    PartyKeys,
    SignedMultilateralMou,
    accept_multilateral,
    dump_mou,
    dump_multilateral,
    load_any_mou,
    load_any_template,
    load_hub_template,
    load_multilateral,
    load_pair_mou,
    mou_digest,
    multilateral_digest,
    multilateral_to_canonical,
    multilateral_to_document,
    pair_mou,
    parse_multilateral,
    parse_multilateral_template,
    sign_mou,
    sign_multilateral,
    validate_multilateral,
)
from xlink.policy.document import canonical_bytes
from xlink.policy.template import HUB_TEMPLATE_RESOURCE

RCMP, CBSA, DHS, HUB = "CA-RCMP", "CA-CBSA", "US-DHS", "CA-PS-HUB"
AGENCIES = (RCMP, CBSA, DHS)
TODAY = datetime.date(2026, 3, 1)  # within the template's 2026-01-01 .. 2027-12-31
ROOT = Path(__file__).resolve().parents[2]
VECTORS = Path(__file__).resolve().parent / "vectors"


def _keys(agency: str) -> tuple[SigningKey, PartyKeys]:
    rng = DeterministicRandom(f"multilateral/{agency}")
    signing = SigningKey.generate(rng)
    return signing, PartyKeys(signing.verify_key, SealingKey.generate(rng).public_key, rng(32))


SIGNING = {a: _keys(a)[0] for a in AGENCIES}
PARTY_KEYS = {a: _keys(a)[1] for a in AGENCIES}
HUB_SIGNING = SigningKey(b"\x77" * 32)
OTHER_SIGNING = SigningKey(b"\x42" * 32)


def hub_mou() -> MultilateralMou:
    """The shipped hub template filled with the deterministic keys above."""
    return load_hub_template().fill(
        PARTY_KEYS,
        hub_key=HUB_SIGNING.verify_key,
        schema_digest=schema_digest(load_default_schema()),
    )


def sign_all(mou: MultilateralMou) -> SignedMultilateralMou:
    signed = SignedMultilateralMou(mou)
    for agency in AGENCIES:
        signed = sign_multilateral(signed, agency, SIGNING[agency])
    return signed


def document() -> dict[str, Any]:
    """The filled hub MOU as a fresh, mutable JSON document (no signatures)."""
    return copy.deepcopy(multilateral_to_document(hub_mou()))


def errors_of(doc: object) -> list[str]:
    with pytest.raises(SchemaError) as exc:
        validate_multilateral(doc)
    return list(exc.value.errors)


def resigned(doc: dict[str, Any]) -> SignedMultilateralMou:
    return sign_all(validate_multilateral(doc).mou)


# -- the sample template ----------------------------------------------------------------------


def test_the_hub_template_names_the_hub_three_parties_and_every_pair() -> None:
    template = load_hub_template()
    assert template.hub_id == HUB
    assert template.agency_ids == AGENCIES
    mou = hub_mou()
    assert mou.hub.hub_id == HUB and mou.hub.verify_key == HUB_SIGNING.verify_key
    assert mou.pairs() == ((CBSA, RCMP), (CBSA, DHS), (RCMP, DHS))
    domestic = mou.terms_for(CBSA, RCMP)
    assert domestic is not None
    assert [c.category.value for c in domestic.categories] == ["watchlist", "sex_offender"]
    for a, b in mou.pairs():
        terms = mou.terms_for(a, b)
        assert terms is not None and terms.query_quota_per_day > 0
        assert mou.terms_for(b, a) is terms


def test_the_hub_template_is_package_data() -> None:
    """Installed with the package: the resource is there and pyproject's globs take it."""
    assert resources.files("xlink").joinpath(HUB_TEMPLATE_RESOURCE).is_file()
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["tool"]["setuptools"][
        "package-data"
    ]["xlink"]
    assert any(Path(HUB_TEMPLATE_RESOURCE).match(g) for g in globs)


def test_the_hub_template_says_it_is_illustrative() -> None:
    text = resources.files("xlink").joinpath(HUB_TEMPLATE_RESOURCE).read_text("utf-8")
    assert "ILLUSTRATIVE ONLY" in text.split("format =", 1)[0]


def test_fill_sets_approval_for_every_pair() -> None:
    template = load_hub_template()
    filled = template.fill(
        PARTY_KEYS,
        hub_key=HUB_SIGNING.verify_key,
        schema_digest=schema_digest(load_default_schema()),
        approval_required=True,
    )
    assert [t.approval_required for t in filled.terms] == [True, True, True]
    assert [t.approval_required for t in hub_mou().terms] == [False, True, True]


def test_fill_refuses_keys_of_an_agency_the_template_does_not_name() -> None:
    with pytest.raises(ValueError, match="does not name"):
        load_hub_template().fill(
            {**PARTY_KEYS, "MX-SAT": PARTY_KEYS[RCMP]}, hub_key=HUB_SIGNING.verify_key
        )


def test_a_template_left_without_a_key_is_no_mou() -> None:
    keys = {a: k for a, k in PARTY_KEYS.items() if a != CBSA}
    with pytest.raises(SchemaError) as exc:
        load_hub_template().fill(
            keys,
            hub_key=HUB_SIGNING.verify_key,
            schema_digest=schema_digest(load_default_schema()),
        )
    assert "parties[1].verify_key: required" in exc.value.errors


def test_a_template_is_checked_when_read_and_not_signed() -> None:
    doc = json.loads(load_hub_template().document)
    doc["terms"][1]["release"]["follow_up_hours"] = 0
    with pytest.raises(SchemaError) as exc:
        parse_multilateral_template(json.dumps(doc), "json")
    assert exc.value.errors == ("terms[1].release.follow_up_hours: must be an integer 1..8760",)
    doc = json.loads(load_hub_template().document)
    doc["signatures"] = {}
    with pytest.raises(SchemaError, match="a template is not signed"):
        parse_multilateral_template(json.dumps(doc), "json")


def test_either_kind_of_template_is_read_by_its_format(tmp_path: Path) -> None:
    path = tmp_path / "hub.json"
    path.write_text(load_hub_template().document, encoding="utf-8")
    assert isinstance(load_any_template(path), MultilateralTemplate)
    sample = ROOT / "xlink" / "data" / "mou" / "ca-us-demo.toml"
    assert not isinstance(load_any_template(sample), MultilateralTemplate)


# -- validation -------------------------------------------------------------------------------

Edit = Callable[[dict[str, Any]], None]


def _set(path: str, value: object) -> Edit:
    """Set the member at a dotted path (``terms.1.release.follow_up_hours``)."""

    def edit(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return edit


def _delete(path: str) -> Edit:
    def edit(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        del node[last]

    return edit


def _hub_key_of_party(doc: dict[str, Any]) -> None:
    doc["hub"]["verify_key"] = doc["parties"][0]["verify_key"]


def _second_terms_for_a_pair(doc: dict[str, Any]) -> None:
    doc["terms"][2]["parties"] = [DHS, RCMP]  # terms[1] is CA-RCMP + US-DHS


def _group_overlapping_a_pair(doc: dict[str, Any]) -> None:
    doc["terms"].append(copy.deepcopy(doc["terms"][0]) | {"parties": list(AGENCIES)})


def _long_id(doc: dict[str, Any]) -> None:
    # 115 characters: a valid MOU id, but "/CA-RCMP/CA-CBSA" makes the pair view's 131.
    doc["id"] = "X" * 115


def _long_legal_basis(doc: dict[str, Any]) -> None:
    doc["legal_basis"] = "L" * 3950  # valid text, but the pair view adds 135 characters


ONE_ERROR: list[tuple[str, Edit, str]] = [
    ("unknown member", _set("foo", 1), "foo: unknown member"),
    (
        "wrong format",
        _set("format", "xlink-mou-v1"),
        "format: must be 'xlink-mou-multilateral-v1'",
    ),
    (
        "hub id is an agency id",
        _set("hub.hub_id", DHS),
        "hub.hub_id: same as parties[2].agency_id (the hub is not a party)",
    ),
    (
        "hub key is a party's",
        _hub_key_of_party,
        "hub.verify_key: same as parties[0].verify_key (the hub has its own key)",
    ),
    ("hub missing", _delete("hub"), "hub: required"),
    ("hub name missing", _delete("hub.name"), "hub.name: required"),
    (
        "terms name an unknown party",
        _set("terms.0.parties", [RCMP, "MX-SAT"]),
        "terms[0].parties[1]: not a party of this MOU (an agency_id of parties)",
    ),
    (
        "terms name the hub",
        _set("terms.0.parties", [RCMP, HUB]),
        "terms[0].parties[1]: not a party of this MOU (an agency_id of parties)",
    ),
    (
        "terms for one party",
        _set("terms.0.parties", [RCMP]),
        "terms[0].parties: at least two parties required (terms are for every pair)",
    ),
    (
        "a party twice in terms",
        _set("terms.0.parties", [RCMP, CBSA, RCMP]),
        "terms[0].parties[2]: listed twice",
    ),
    (
        "a pair with two terms entries",
        _second_terms_for_a_pair,
        "terms[2].parties: parties[0] and parties[2] already have terms in terms[1] "
        "(one terms entry per pair)",
    ),
    ("no terms", _set("terms", []), "terms: 1..2016 terms entries required, found 0"),
    ("terms not a list", _set("terms", {}), "terms: must be a list"),
    ("terms entry not a table", _set("terms.1", 3), "terms[1]: must be a table/object"),
    ("unknown terms member", _set("terms.1.foo", 3), "terms[1].foo: unknown member"),
    (
        "threshold not a number",
        _set("terms.0.match_threshold", "high"),
        "terms[0].match_threshold: must be a finite number",
    ),
    ("threshold missing", _delete("terms.2.match_threshold"), "terms[2].match_threshold: required"),
    ("release missing", _delete("terms.1.release"), "terms[1].release: required"),
    (
        "follow-up out of range",
        _set("terms.1.release.follow_up_hours", 0),
        "terms[1].release.follow_up_hours: must be an integer 1..8760",
    ),
    ("terms exchange missing", _delete("terms.2.exchange"), "terms[2].exchange: required"),
    (
        "padding bucket in a pair's terms",
        _set("terms.2.exchange.padding_bucket", 1024),
        "terms[2].exchange.padding_bucket: unknown member",
    ),
    (
        "quota negative",
        _set("terms.2.exchange.query_quota_per_day", -1),
        "terms[2].exchange.query_quota_per_day: must be an integer 0..1000000000",
    ),
    (
        "budget below a party's set size",
        _set("terms.0.exchange.set_size_budget_per_day", 2048),
        "terms[0].exchange.set_size_budget_per_day: must be at least every party's "
        "max_set_size (one session at the bound must fit)",
    ),
    (
        "bad TLP",
        _set("terms.2.categories.0.caveats.tlp", "PINK"),
        "terms[2].categories[0].caveats.tlp: must be one of 'RED', 'AMBER+STRICT', 'AMBER', "
        "'GREEN', 'CLEAR'",
    ),
    (
        "a source field",
        _set("terms.0.categories.1.releasable_fields.0", "source_id"),
        "terms[0].categories[1].releasable_fields[0]: never releasable: it identifies or "
        "grades the source (source protection)",
    ),
    (
        "a category twice",
        _set("terms.2.categories.1.category", "watchlist"),
        "terms[2].categories[1].category: listed twice (also categories[0])",
    ),
    (
        "quota in the common exchange",
        _set("exchange.query_quota_per_day", 10),
        "exchange.query_quota_per_day: unknown member",
    ),
    (
        "threshold in the common linkage",
        _set("linkage.match_threshold", 2.0),
        "linkage.match_threshold: unknown member",
    ),
    (
        "set size not a multiple of the bucket",
        _set("parties.1.max_set_size", 1000),
        "parties[1].max_set_size: must be a multiple of exchange.padding_bucket (a padded set "
        "size always is)",
    ),
    (
        "the hub signs",
        _set("signatures", {HUB: "00" * 64}),
        "signatures.CA-PS-HUB: not a party of this MOU",
    ),
    (
        "id too long for the pair views",
        _long_id,
        "id: too long for its pair views: with /<agency>/<agency> of terms[0] appended it has "
        "131 characters, at most 128",
    ),
    (
        "legal basis too long for the pair views",
        _long_legal_basis,
        "legal_basis: at most 3865 characters here: each pair view appends a line naming this MOU",
    ),
]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [(edit, expected) for _, edit, expected in ONE_ERROR],
    ids=[name for name, _, _ in ONE_ERROR],
)
def test_one_mistake_is_one_error_at_its_location(edit: Edit, expected: str) -> None:
    doc = document()
    edit(doc)
    assert errors_of(doc) == [expected]


def test_fewer_than_two_parties_is_an_error() -> None:
    doc = document()
    doc["parties"] = doc["parties"][:1]
    assert "parties: 2..64 parties required, found 1" in errors_of(doc)


def test_the_same_agency_twice_is_an_error() -> None:
    doc = document()
    doc["parties"][1]["agency_id"] = RCMP
    assert "parties[1].agency_id: same as parties[0] (parties must differ)" in errors_of(doc)


def test_a_pair_without_categories_is_an_error() -> None:
    doc = document()
    doc["terms"][2]["categories"] = []
    assert errors_of(doc) == ["terms[2].categories: at least one record category required"]


def test_a_group_overlapping_a_pair_names_each_clash() -> None:
    doc = document()
    _group_overlapping_a_pair(doc)
    assert errors_of(doc) == [
        f"terms[3].parties: parties[0] and parties[{j}] already have terms in terms[{k}] "
        "(one terms entry per pair)"
        for j, k in ((1, 0), (2, 1))
    ] + [
        "terms[3].parties: parties[1] and parties[2] already have terms in terms[2] "
        "(one terms entry per pair)"
    ]


def test_every_problem_is_reported_at_once() -> None:
    doc = document()
    doc["hub"]["hub_id"] = "not an id!"
    doc["terms"][0]["parties"] = [RCMP, "XX"]
    doc["terms"][1]["categories"][0]["caveats"]["retention_days"] = 0
    doc["terms"][2]["release"]["approval_required"] = "yes"
    assert errors_of(doc) == [
        "hub.hub_id: must be 1-64 chars of A-Z a-z 0-9 _ -, starting with a letter or digit",
        "terms[0].parties[1]: not a party of this MOU (an agency_id of parties)",
        "terms[1].categories[0].caveats.retention_days: must be an integer 1..36500",
        "terms[2].release.approval_required: must be true or false",
    ]


def test_a_group_entry_gives_terms_to_every_pair_among_its_parties() -> None:
    doc = document()
    doc["terms"] = [doc["terms"][1] | {"parties": [DHS, CBSA, RCMP]}]
    mou = validate_multilateral(doc).mou
    assert mou.pairs() == ((CBSA, RCMP), (CBSA, DHS), (RCMP, DHS))
    (terms,) = mou.terms
    assert all(mou.terms_for(a, b) is terms for a, b in mou.pairs())
    assert pair_mou(mou, CBSA, RCMP).categories == terms.categories


def test_a_pairs_reciprocal_release_reaches_its_pair_view_and_no_other() -> None:
    doc = document()
    doc["terms"][2]["release"]["reciprocal"] = True  # CBSA + DHS
    mou = validate_multilateral(doc).mou
    assert pair_mou(mou, DHS, CBSA).reciprocal is True
    assert pair_mou(mou, RCMP, DHS).reciprocal is False
    assert multilateral_to_document(mou)["terms"][2]["release"]["reciprocal"] is True
    assert "reciprocal" not in multilateral_to_document(hub_mou())["terms"][2]["release"]
    doc["terms"][2]["release"]["reciprocal"] = 1
    assert errors_of(doc) == ["terms[2].release.reciprocal: must be true or false"]


def test_a_group_entry_checks_the_budget_against_every_pair() -> None:
    doc = document()
    doc["parties"][2]["max_set_size"] = 4096
    group = doc["terms"][1] | {"parties": [DHS, CBSA, RCMP]}
    group["exchange"] = {"query_quota_per_day": 1, "set_size_budget_per_day": 65536}
    doc["terms"] = [group]
    validate_multilateral(doc)
    doc["parties"][1]["max_set_size"] = 131072  # too big for the budget: pairs with CBSA
    assert errors_of(doc) == [
        "terms[0].exchange.set_size_budget_per_day: must be at least every party's "
        "max_set_size (one session at the bound must fit)"
    ]


def test_a_document_that_is_not_a_table_is_refused() -> None:
    assert errors_of([1, 2]) == ["mou: must be a table/object"]


# -- signatures and acceptance ----------------------------------------------------------------


def test_a_fully_signed_mou_is_accepted_by_each_party_and_the_hub() -> None:
    signed = sign_all(hub_mou())
    for agency in (*AGENCIES, None):
        assert accept_multilateral(signed, local_agency=agency, today=TODAY) == signed.mou


@pytest.mark.parametrize("agency", AGENCIES)
def test_a_missing_signature_of_any_one_party_is_refused(agency: str) -> None:
    signed = sign_all(hub_mou())
    partial = SignedMultilateralMou(
        signed.mou, {a: s for a, s in signed.signatures.items() if a != agency}
    )
    for local in (*AGENCIES, None):
        with pytest.raises(MouRefused) as exc:
            accept_multilateral(partial, local_agency=local, today=TODAY)
        assert exc.value.reasons == (f"signature-missing:{agency}",)


@pytest.mark.parametrize("agency", AGENCIES)
def test_a_wrong_signature_of_any_one_party_is_refused(agency: str) -> None:
    signed = sign_all(hub_mou())
    forged = OTHER_SIGNING.sign(multilateral_digest(signed.mou))
    bad = SignedMultilateralMou(signed.mou, {**signed.signatures, agency: forged})
    with pytest.raises(MouRefused) as exc:
        accept_multilateral(bad, local_agency=None, today=TODAY)
    assert exc.value.reasons == (f"signature-invalid:{agency}",)


def test_a_signature_over_another_version_does_not_verify() -> None:
    signed = sign_all(hub_mou())
    doc = document()
    doc["version"] = 2
    amended = SignedMultilateralMou(validate_multilateral(doc).mou, signed.signatures)
    with pytest.raises(MouRefused) as exc:
        accept_multilateral(amended, local_agency=RCMP, today=TODAY)
    assert exc.value.reasons == tuple(f"signature-invalid:{a}" for a in AGENCIES)


def test_refusal_reasons_come_all_at_once_in_order() -> None:
    signed = sign_all(hub_mou())
    partial = SignedMultilateralMou(signed.mou, {DHS: signed.signatures[DHS]})
    with pytest.raises(MouRefused) as exc:
        accept_multilateral(partial, local_agency="MX-SAT", today=datetime.date(2028, 1, 1))
    assert exc.value.reasons == (
        "not-a-party",
        f"signature-missing:{RCMP}",
        f"signature-missing:{CBSA}",
        "expired",
    )
    with pytest.raises(MouRefused) as exc:
        accept_multilateral(signed, local_agency=RCMP, today=datetime.date(2025, 12, 31))
    assert exc.value.reasons == ("not-yet-valid",)


def test_sign_refuses_another_key_and_the_hub() -> None:
    with pytest.raises(ValueError, match="not the verify key"):
        sign_multilateral(hub_mou(), RCMP, SIGNING[DHS])
    with pytest.raises(ValueError, match="does not name"):
        sign_multilateral(hub_mou(), HUB, HUB_SIGNING)


def test_a_signature_filed_under_the_hub_is_no_signed_mou() -> None:
    with pytest.raises(ValueError, match="does not name"):
        SignedMultilateralMou(hub_mou(), {HUB: b"\x00" * 64})


# -- the pair view ----------------------------------------------------------------------------


@pytest.mark.parametrize(("a", "b"), hub_mou().pairs())
def test_the_pair_view_is_the_same_whichever_agency_asks(a: str, b: str) -> None:
    mou = hub_mou()
    view = pair_mou(mou, a, b)
    assert pair_mou(mou, b, a) == view
    assert view.id == f"{mou.id}/{a}/{b}"  # pairs() are sorted
    assert view.agency_ids == tuple(x for x in AGENCIES if x in (a, b))  # party order
    terms = mou.terms_for(a, b)
    assert terms is not None
    assert (view.categories, view.query_quota_per_day) == (
        terms.categories,
        terms.query_quota_per_day,
    )
    assert view.padding_bucket == mou.padding_bucket
    assert view.schema_digest == mou.schema_digest
    last = view.legal_basis.splitlines()[-1]
    assert last == (
        f"Pair view of multilateral MOU {mou.id} version {mou.version}, digest "
        f"{multilateral_digest(mou).hex()}."
    )
    assert view.legal_basis.startswith(mou.legal_basis)


def test_a_pair_without_terms_is_refused() -> None:
    doc = document()
    del doc["terms"][2]  # CA-CBSA + US-DHS
    mou = validate_multilateral(doc).mou
    for a, b in ((CBSA, DHS), (DHS, CBSA)):
        with pytest.raises(MouRefused) as exc:
            pair_mou(mou, a, b)
        assert exc.value.reasons == (f"{NO_TERMS}:{CBSA}+{DHS}",)
    assert pair_mou(mou, RCMP, DHS).id.endswith(f"/{RCMP}/{DHS}")


def test_a_pair_with_an_agency_that_is_no_party_is_refused() -> None:
    with pytest.raises(MouRefused) as exc:
        pair_mou(hub_mou(), RCMP, HUB)
    assert exc.value.reasons == (f"not-a-party:{HUB}",)
    with pytest.raises(ValueError, match="two different"):
        pair_mou(hub_mou(), RCMP, RCMP)


MUTATIONS: list[tuple[str, Callable[[dict[str, Any], int], None]]] = [
    ("domestic follow-up", lambda d, n: _set("terms.0.release.follow_up_hours", 25 + n)(d)),
    ("domestic quota", lambda d, n: _set("terms.0.exchange.query_quota_per_day", n)(d)),
    (
        "domestic retention",
        lambda d, n: _set("terms.0.categories.0.caveats.retention_days", 366 + n)(d),
    ),
    ("CBSA-DHS threshold", lambda d, n: _set("terms.2.match_threshold", 3.0 + n)(d)),
    ("CBSA-DHS approval", lambda d, n: _set("terms.2.release.approval_required", False)(d)),
    ("CBSA-DHS reciprocal", lambda d, n: _set("terms.2.release.reciprocal", True)(d)),
    ("RCMP name", lambda d, n: _set("parties.0.name", f"RCMP {n}")(d)),
    ("CBSA name", lambda d, n: _set("parties.1.name", f"CBSA {n}")(d)),
    ("CBSA set size", lambda d, n: _set("parties.1.max_set_size", 1024 * (1 + n % 63))(d)),
    ("CBSA certificate", lambda d, n: _set("parties.1.tls_cert_sha256", f"{n + 1:064x}")(d)),
    ("DHS country", lambda d, n: _set("parties.2.country", "MEX")(d)),
    ("hub name", lambda d, n: _set("hub.name", f"Hub {n}")(d)),
    ("hub key", lambda d, n: _set("hub.verify_key", _point(n))(d)),
    ("version", lambda d, n: _set("version", 2 + n)(d)),
]


def _point(n: int) -> str:
    return bytes(SigningKey(n.to_bytes(32, "big")).verify_key).hex()


BASE_VIEW = mou_digest(pair_mou(hub_mou(), RCMP, DHS))


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(MUTATIONS), st.integers(min_value=0, max_value=1_000))
def test_the_pair_view_digest_commits_to_the_whole_document(
    mutation: tuple[str, Callable[[dict[str, Any], int], None]], n: int
) -> None:
    """Changing another pair's terms, any party, the hub or the version changes the digest of
    the RCMP + DHS pair view (which the PSI handshake compares), and the multilateral digest."""
    _, edit = mutation
    doc = document()
    edit(doc, n)
    mou = validate_multilateral(doc).mou
    assert multilateral_digest(mou) != multilateral_digest(hub_mou())
    assert mou_digest(pair_mou(mou, DHS, RCMP)) != BASE_VIEW


def test_the_pair_view_digest_does_not_depend_on_the_file_format() -> None:
    signed = sign_all(hub_mou())
    for fmt in ("toml", "json"):
        mou = parse_multilateral(dump_multilateral(signed, fmt), fmt).mou
        assert mou_digest(pair_mou(mou, RCMP, DHS)) == BASE_VIEW


def test_the_pair_view_is_a_valid_bilateral_mou_both_parties_can_sign() -> None:
    view = pair_mou(hub_mou(), DHS, RCMP)
    signed = sign_mou(sign_mou(view, RCMP, SIGNING[RCMP]), DHS, SIGNING[DHS])
    text = dump_mou(signed, "toml")
    assert "Pair view of multilateral MOU NA-HUB-DEMO-2026-001 version 1" in text


# -- documents ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["toml", "json"])
def test_a_signed_mou_round_trips(fmt: str, tmp_path: Path) -> None:
    signed = sign_all(hub_mou())
    text = dump_multilateral(signed, fmt)
    assert parse_multilateral(text, fmt) == signed
    path = tmp_path / f"hub.{fmt}"
    path.write_text(text, encoding="utf-8")
    assert load_multilateral(path) == signed
    assert load_any_mou(path) == signed
    assert dump_multilateral(load_multilateral(path), fmt) == text


def test_an_unsigned_mou_round_trips_without_signatures() -> None:
    text = dump_multilateral(hub_mou(), "toml")
    assert "[signatures]" not in text
    assert parse_multilateral(text, "toml") == SignedMultilateralMou(hub_mou())


def test_dump_refuses_another_format() -> None:
    with pytest.raises(ValueError, match="fmt"):
        dump_multilateral(hub_mou(), "yaml")


# The worked example of docs/mou.md §8.4, checked in under tests/policy/vectors/: the digest was
# computed once; the canonical bytes beside the document check it by a second route.
VECTOR_DIGEST = "b71445a50ed3bc434f673bd07d7b3669783d0d145741161a011e45cf99f8fe57"
VECTOR_PAIR_AB_DIGEST = "d1464b29752d16f9297ebfdfdf78e34b0c2305cd2001c04a47d6592bf7c53607"


def _vector() -> MultilateralMou:
    return load_multilateral(VECTORS / "mou-multilateral-v1.toml").mou


def test_the_digest_vector() -> None:
    mou = _vector()
    assert multilateral_digest(mou).hex() == VECTOR_DIGEST
    assert mou_digest(pair_mou(mou, "B", "A")).hex() == VECTOR_PAIR_AB_DIGEST


def test_the_digest_vector_by_a_second_route() -> None:
    """docs/mou.md §8.4 written out: SHA-256(uint32_be(25) || L || canonical bytes)."""
    expected = (VECTORS / "mou-multilateral-v1.canonical.json").read_bytes()
    assert canonical_bytes(multilateral_to_canonical(_vector())) == expected
    label = b"xlink/v1/mou-multilateral"
    assert label == MULTILATERAL_DIGEST_DST
    digest = hashlib.sha256(b"\x00\x00\x00\x19" + label + expected).hexdigest()
    assert digest == VECTOR_DIGEST
    canonical = json.loads(expected)
    assert [t["match_threshold"] for t in canonical["terms"]] == ["23.25", "0.10000000000000001"]
    assert "signatures" not in canonical


def test_docs_state_the_digest_vector() -> None:
    text = (ROOT / "docs" / "mou.md").read_text("utf-8")
    assert VECTOR_DIGEST in text and VECTOR_PAIR_AB_DIGEST in text
    assert "tests/policy/vectors/mou-multilateral-v1.toml" in text


def test_the_vector_pair_without_terms_is_refused() -> None:
    with pytest.raises(MouRefused) as exc:
        pair_mou(_vector(), "C", "A")
    assert exc.value.reasons == ("no-terms:A+C",)


def test_a_multilateral_digest_is_never_a_bilateral_one() -> None:
    mou = _vector()
    plain = hashlib.sha256(
        len(b"xlink/v1/mou").to_bytes(4, "big")
        + b"xlink/v1/mou"
        + canonical_bytes(multilateral_to_canonical(mou))
    ).digest()
    assert plain != multilateral_digest(mou)


# -- loading an MOU of either kind for one pair -----------------------------------------------


@pytest.fixture
def hub_file(tmp_path: Path) -> Path:
    path = tmp_path / "hub-mou.toml"
    path.write_text(dump_multilateral(sign_all(hub_mou()), "toml"), encoding="utf-8")
    return path


def test_load_pair_mou_gives_the_pair_view(hub_file: Path) -> None:
    mou = load_pair_mou(hub_file, local_agency=CBSA, peer=DHS, today=TODAY)
    assert mou == pair_mou(hub_mou(), DHS, CBSA)


def test_load_pair_mou_needs_the_peer_of_a_multilateral_mou(hub_file: Path) -> None:
    with pytest.raises(InputError, match="name the peer"):
        load_pair_mou(hub_file, local_agency=CBSA, peer=None, today=TODAY)


def test_load_pair_mou_refuses_a_peer_that_is_no_party(hub_file: Path) -> None:
    with pytest.raises(MouRefused) as exc:
        load_pair_mou(hub_file, local_agency=CBSA, peer="MX-SAT", today=TODAY)
    assert exc.value.reasons == ("not-a-party:MX-SAT",)
    with pytest.raises(InputError, match="local agency itself"):
        load_pair_mou(hub_file, local_agency=CBSA, peer=CBSA, today=TODAY)
    with pytest.raises(InputError, match="peer"):
        load_pair_mou(hub_file, local_agency=CBSA, peer="no spaces", today=TODAY)


def test_load_pair_mou_accepts_for_the_local_agency(hub_file: Path) -> None:
    with pytest.raises(MouRefused) as exc:
        load_pair_mou(hub_file, local_agency="MX-SAT", peer=DHS, today=TODAY)
    assert exc.value.reasons == ("not-a-party",)
    with pytest.raises(MouRefused) as exc:
        load_pair_mou(hub_file, local_agency=RCMP, peer=DHS, today=datetime.date(2028, 1, 1))
    assert exc.value.reasons == ("expired",)


def test_load_pair_mou_reads_a_bilateral_mou_and_checks_the_peer(tmp_path: Path) -> None:
    view = pair_mou(hub_mou(), RCMP, DHS)  # any valid bilateral MOU will do
    path = tmp_path / "bilateral.toml"
    signed = sign_mou(sign_mou(view, RCMP, SIGNING[RCMP]), DHS, SIGNING[DHS])
    path.write_text(dump_mou(signed, "toml"), encoding="utf-8")
    assert load_pair_mou(path, local_agency=RCMP, peer=None, today=TODAY) == view
    assert load_pair_mou(path, local_agency=RCMP, peer=DHS, today=TODAY) == view
    with pytest.raises(MouRefused) as exc:
        load_pair_mou(path, local_agency=RCMP, peer=CBSA, today=TODAY)
    assert exc.value.reasons == (f"not-a-party:{CBSA}",)


@pytest.mark.parametrize("agency_id", [{"x": 1}, ["CA-RCMP"]])
def test_a_member_named_by_a_table_or_a_list_is_a_schema_error(agency_id: object) -> None:
    """As for a bilateral MOU: a signed multilateral MOU naming a party by a table or a list
    raised TypeError in the signatures' check; it is a schema error."""
    doc = multilateral_to_document(sign_all(hub_mou()))
    doc["parties"][0]["agency_id"] = agency_id
    assert any(e.startswith("parties[0].agency_id") for e in errors_of(doc))
