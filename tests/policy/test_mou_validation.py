"""Bad MOU documents get precise errors, all collected at once (docs/mou.md §2)."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _mou_support import CA, OTHER_SIGNING, good_document, signed_sample

from xlink.crypto.keys import SealingKey, SigningKey
from xlink.errors import SchemaError
from xlink.policy import dump_mou, load_mou, parse_mou, validate_mou, validate_signed_mou

Doc = dict[str, Any]
EXACT_ERRORS: list[tuple[str, Callable[[Doc], object], str]] = []


def case(name: str, expected: str) -> Callable[[Callable[[Doc], object]], Callable[[Doc], object]]:
    """Register a mutation of the good document and the one error it must produce, verbatim."""

    def register(mutate: Callable[[Doc], object]) -> Callable[[Doc], object]:
        EXACT_ERRORS.append((name, mutate, expected))
        return mutate

    return register


def errors_of(doc: object) -> tuple[str, ...]:
    with pytest.raises(SchemaError) as info:
        validate_signed_mou(doc)
    return info.value.errors


def caveats(doc: Doc, i: int) -> dict[str, Any]:
    return doc["categories"][i]["caveats"]  # type: ignore[no-any-return]


# -- the document as a whole ---------------------------------------------------------------------
case("unknown top member", "colour: unknown member")(lambda d: d.update(colour="red"))
case("wrong format", "format: must be 'xlink-mou-v1'")(lambda d: d.update(format="xlink-mou-v2"))
case("missing format", "format: required")(lambda d: d.pop("format"))
case("missing id", "id: required")(lambda d: d.pop("id"))
case(
    "bad id",
    "id: must be 1-128 chars of A-Z a-z 0-9 . _ : / -, starting with a letter or digit",
)(lambda d: d.update(id="-bad id"))
case("version zero", "version: must be an integer 1..4294967295")(lambda d: d.update(version=0))
case("version as text", "version: must be an integer 1..4294967295")(
    lambda d: d.update(version="1")
)
case("version as bool", "version: must be an integer 1..4294967295")(
    lambda d: d.update(version=True)
)
case("legal basis blank", "legal_basis: must not be empty")(lambda d: d.update(legal_basis="  "))
case("legal basis not text", "legal_basis: must be a string")(lambda d: d.update(legal_basis=7))
case("no purposes", "purposes: 1..32 purposes required")(lambda d: d.update(purposes=[]))
case("purpose twice", "purposes[1]: listed twice")(
    lambda d: d.update(purposes=["border-security", "border-security"])
)
case("purpose capitals", "purposes[0]: must be lower-case [a-z][a-z0-9-]*, at most 64 chars")(
    lambda d: d.update(purposes=["Border Security"])
)

# -- dates ---------------------------------------------------------------------------------------
case("dates out of order", "valid_until: must not be before valid_from")(
    lambda d: d.update(valid_from="2027-01-01", valid_until="2026-12-31")
)
case("impossible date", "valid_from: must be a calendar date YYYY-MM-DD")(
    lambda d: d.update(valid_from="2025-02-30")
)
case("date in another order", "valid_until: must be a calendar date YYYY-MM-DD")(
    lambda d: d.update(valid_until="31/12/2027")
)
case("date as a datetime", "valid_from: must be a calendar date YYYY-MM-DD")(
    lambda d: d.update(valid_from=datetime.datetime(2025, 1, 1, 0, 0))
)
case("missing valid_until", "valid_until: required")(lambda d: d.pop("valid_until"))

# -- parties -------------------------------------------------------------------------------------
case("one party", "parties: exactly two parties required, found 1")(
    lambda d: d.update(parties=d["parties"][:1])
)
case("three parties", "parties: exactly two parties required, found 3")(
    lambda d: d["parties"].append(
        {
            **d["parties"][0],
            "agency_id": "MX-FGR",
            "verify_key": bytes(OTHER_SIGNING.verify_key).hex(),
            "sealing_key": bytes(SealingKey(b"\x43" * 32).public_key).hex(),
            "tls_cert_sha256": "11" * 32,
        }
    )
)
case("parties not a list", "parties: must be a list")(lambda d: d.update(parties={}))
case("duplicate agency", "parties[1].agency_id: same as parties[0] (parties must differ)")(
    lambda d: d["parties"][1].update(agency_id=CA)
)
case("shared verify key", "parties[1].verify_key: same as parties[0] (parties must differ)")(
    lambda d: d["parties"][1].update(verify_key=d["parties"][0]["verify_key"])
)
case(
    "agency id with a space",
    "parties[0].agency_id: must be 1-64 chars of A-Z a-z 0-9 _ -, starting with a letter or digit",
)(lambda d: d["parties"][0].update(agency_id="CA RCMP"))
case("two-letter country", "parties[0].country: must be an ISO 3166-1 alpha-3 code in capitals "
     "(CAN, USA)")(lambda d: d["parties"][0].update(country="CA"))  # fmt: skip
_UNSHOWN = "must not contain control, bidirectional or separator characters"
case("party name with a newline", f"parties[1].name: {_UNSHOWN}")(
    lambda d: d["parties"][1].update(name="Homeland\nSecurity")
)
# What an officer reads before signing shows itself: a right-to-left override, a C1 control
# (8-bit CSI) or a line separator would reorder the text, drive the terminal or add a line.
case("party name with a right-to-left override", f"parties[1].name: {_UNSHOWN}")(
    lambda d: d["parties"][1].update(name="Homeland \u202eytiruceS")
)
case("party name with a C1 control", f"parties[1].name: {_UNSHOWN}")(
    lambda d: d["parties"][1].update(name="Homeland\x9b2KSecurity")
)
case("party name with a line separator", f"parties[1].name: {_UNSHOWN}")(
    lambda d: d["parties"][1].update(name="Homeland\u2028Security")
)
case("party name with a zero-width space", f"parties[1].name: {_UNSHOWN}")(
    lambda d: d["parties"][1].update(name="Home\u200bland Security")
)
case("party name with a tag character", f"parties[1].name: {_UNSHOWN}")(
    lambda d: d["parties"][1].update(name="Homeland Security\U000e0041")
)
case("lone surrogate", "parties[1].name: must be valid Unicode text (no lone surrogates)")(
    lambda d: d["parties"][1].update(name="DHS \ud800")
)
case("missing sealing key", "parties[0].sealing_key: required")(
    lambda d: d["parties"][0].pop("sealing_key")
)
case("unknown party member", "parties[0].email: unknown member")(
    lambda d: d["parties"][0].update(email="x@example.org")
)
case("key in capitals", "parties[0].verify_key: must be 64 lower-case hex digits (32 bytes)")(
    lambda d: d["parties"][0].update(verify_key=d["parties"][0]["verify_key"].upper())
)
case("key too short", "parties[1].sealing_key: must be 64 lower-case hex digits (32 bytes)")(
    lambda d: d["parties"][1].update(sealing_key="ab" * 31)
)
case("key as base64", "parties[0].verify_key: must be 64 lower-case hex digits (32 bytes)")(
    lambda d: d["parties"][0].update(verify_key="IFExRQ1hVNsYvRT7B0VxR9IQzXJRAYw8vpkpP2kFaxE=")
)
case(
    "small-order Ed25519 key",
    "parties[0].verify_key: not a valid Ed25519 public key (not a prime-order point)",
)(lambda d: d["parties"][0].update(verify_key="01" + "00" * 31))
case(
    "low-order X25519 key",
    "parties[1].sealing_key: not a usable X25519 public key (a low-order point)",
)(lambda d: d["parties"][1].update(sealing_key="00" * 32))
case("certificate digest short", "parties[1].tls_cert_sha256: must be 64 lower-case hex digits "
     "(32 bytes)")(lambda d: d["parties"][1].update(tls_cert_sha256="00"))  # fmt: skip
case("missing max set size", "parties[1].max_set_size: required")(
    lambda d: d["parties"][1].pop("max_set_size")
)
case("max set size zero", "parties[0].max_set_size: must be an integer 1..16777216")(
    lambda d: d["parties"][0].update(max_set_size=0)
)
case("max set size above 2^24", "parties[0].max_set_size: must be an integer 1..16777216")(
    lambda d: d["parties"][0].update(max_set_size=(1 << 24) + 1024)
)
case("max set size as text", "parties[1].max_set_size: must be an integer 1..16777216")(
    lambda d: d["parties"][1].update(max_set_size="65536")
)
case(
    "max set size off the bucket",
    "parties[1].max_set_size: must be a multiple of exchange.padding_bucket (a padded set size "
    "always is)",
)(lambda d: d["parties"][1].update(max_set_size=65536 + 1))

# -- linkage, release, exchange ------------------------------------------------------------------
case("threshold as text", "linkage.match_threshold: must be a finite number")(
    lambda d: d["linkage"].update(match_threshold="23.25")
)
case("threshold as bool", "linkage.match_threshold: must be a finite number")(
    lambda d: d["linkage"].update(match_threshold=True)
)
case("threshold infinite", "linkage.match_threshold: must be a finite number")(
    lambda d: d["linkage"].update(match_threshold=float("inf"))
)
case("schema digest short", "linkage.schema_digest: must be 64 lower-case hex digits (32 bytes)")(
    lambda d: d["linkage"].update(schema_digest="abcd")
)
case("linkage missing", "linkage: required")(lambda d: d.pop("linkage"))
case("release not a table", "release: must be a table/object")(lambda d: d.update(release=[]))
case("approval as text", "release.approval_required: must be true or false")(
    lambda d: d["release"].update(approval_required="yes")
)
case("follow-up zero", "release.follow_up_hours: must be an integer 1..8760")(
    lambda d: d["release"].update(follow_up_hours=0)
)
case("bucket too large", "exchange.padding_bucket: must be an integer 1..1048576")(
    lambda d: d["exchange"].update(padding_bucket=1 << 21)
)
case("negative quota", "exchange.query_quota_per_day: must be an integer 0..1000000000")(
    lambda d: d["exchange"].update(query_quota_per_day=-1)
)
case("budget zero", "exchange.set_size_budget_per_day: must be an integer 1..1099511627776")(
    lambda d: d["exchange"].update(set_size_budget_per_day=0)
)
case("budget as bool", "exchange.set_size_budget_per_day: must be an integer 1..1099511627776")(
    lambda d: d["exchange"].update(set_size_budget_per_day=True)
)
case(
    "budget below a bound",
    "exchange.set_size_budget_per_day: must be at least every party's max_set_size (one session "
    "at the bound must fit)",
)(lambda d: d["exchange"].update(set_size_budget_per_day=65535))

# -- categories and caveats ----------------------------------------------------------------------
case("no categories", "categories: at least one record category required")(
    lambda d: d.update(categories=[])
)
case(
    "unknown category",
    "categories[0].category: must be one of 'watchlist', 'sex_offender', 'traveller', 'other'",
)(lambda d: d["categories"][0].update(category="terrorist"))
case("category twice", "categories[2].category: listed twice (also categories[0])")(
    lambda d: d["categories"][2].update(category="watchlist")
)
case(
    "unknown TLP",
    "categories[1].caveats.tlp: must be one of 'RED', 'AMBER+STRICT', 'AMBER', 'GREEN', 'CLEAR'",
)(lambda d: caveats(d, 1).update(tlp="AMBER-STRICT"))
case(
    "TLP 1.0 label",
    "categories[0].caveats.tlp: must be one of 'RED', 'AMBER+STRICT', 'AMBER', 'GREEN', 'CLEAR'",
)(lambda d: caveats(d, 0).update(tlp="WHITE"))
case(
    "unknown IEP action",
    "categories[0].caveats.permitted_actions: must be one of 'none', 'contact-for-instruction', "
    "'internally-visible', 'externally-visible-indirect', 'externally-visible-direct'",
)(lambda d: caveats(d, 0).update(permitted_actions="anything"))
case(
    "C without conditions",
    "categories[1].caveats.handling_conditions: required with handling code C (state them)",
)(lambda d: caveats(d, 1).update(handling_conditions=""))
case(
    "C with conditions missing",
    "categories[1].caveats.handling_conditions: required with handling code C (state them)",
)(lambda d: caveats(d, 1).pop("handling_conditions"))
case("P with conditions", "categories[0].caveats.handling_conditions: only with handling code C")(
    lambda d: caveats(d, 0).update(handling_conditions="none")
)
case("handling code 3x5x2 number", "categories[0].caveats.handling_code: must be one of 'P', 'C'")(
    lambda d: caveats(d, 0).update(handling_code="4")
)
case("retention zero", "categories[2].caveats.retention_days: must be an integer 1..36500")(
    lambda d: caveats(d, 2).update(retention_days=0)
)
case("grading flag missing", "categories[0].caveats.require_grading: required")(
    lambda d: caveats(d, 0).pop("require_grading")
)
case("flag as number", "categories[0].caveats.encrypt_at_rest: must be true or false")(
    lambda d: caveats(d, 0).update(encrypt_at_rest=1)
)
case("unknown caveat", "categories[0].caveats.tlp_colour: unknown member")(
    lambda d: caveats(d, 0).update(tlp_colour="amber")
)
case("caveats missing", "categories[2].caveats: required")(
    lambda d: d["categories"][2].pop("caveats")
)
case("fields not a list", "categories[0].releasable_fields: must be a list")(
    lambda d: d["categories"][0].update(releasable_fields="given_name")
)
case("field twice", "categories[2].releasable_fields[1]: listed twice")(
    lambda d: d["categories"][2].update(releasable_fields=["given_name", "given_name"])
)
case(
    "unknown field",
    "categories[0].releasable_fields[0]: unknown field; one of given_name, middle_name, "
    "family_name, full_name, aliases, birth_date, sex, nationalities, birth_place, documents, "
    "addresses or payload.<name>",
)(lambda d: d["categories"][0].update(releasable_fields=["ssn"]))
case(
    "payload name with a space",
    "categories[0].releasable_fields[0]: a payload field is payload.<name>, name lower-case "
    "[a-z][a-z0-9_]*",
)(lambda d: d["categories"][0].update(releasable_fields=["payload.Risk Level"]))

SOURCE_FIELDS = [
    "source_id",
    "grading",
    "handling_code",
    "handling_conditions",
    "record_id",
    "payload.source_id",
    "payload.source_ref",
    "payload.grading",
]
for _f in SOURCE_FIELDS:
    case(
        f"source field {_f} releasable",
        "categories[1].releasable_fields[1]: never releasable: it identifies or grades the "
        "source (source protection)",
    )(lambda d, f=_f: d["categories"][1].update(releasable_fields=["given_name", f]))

# -- signatures ----------------------------------------------------------------------------------
case("signature of a stranger", "signatures.MX-FGR: not a party of this MOU")(
    lambda d: d.update(signatures={"MX-FGR": "00" * 64})
)
case("signature short", f"signatures.{CA}: must be 128 lower-case hex digits (64 bytes)")(
    lambda d: d.update(signatures={CA: "00" * 63})
)
case("signatures not a table", "signatures: must be a table/object of agency id -> signature")(
    lambda d: d.update(signatures=["00" * 64])
)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [pytest.param(m, e, id=n) for n, m, e in EXACT_ERRORS],
)
def test_each_bad_document_gets_its_precise_error(
    mutate: Callable[[Doc], object], expected: str
) -> None:
    doc = good_document()
    mutate(doc)
    assert errors_of(doc) == (expected,)


def test_the_good_document_is_valid() -> None:
    mou = validate_mou(good_document())
    assert mou.agency_ids == (CA, "US-DHS")


def test_every_error_is_collected_at_once() -> None:
    # One mutation per member, none hiding another: every error comes back in one SchemaError.
    chosen = [
        "unknown top member", "bad id", "version as text", "legal basis blank", "purpose twice",
        "dates out of order", "two-letter country", "key in capitals", "low-order X25519 key",
        "threshold as text", "approval as text", "bucket too large", "negative quota",
        "missing max set size", "budget zero",
        "unknown category", "unknown TLP", "C without conditions", "retention zero",
        "signature of a stranger",
    ]  # fmt: skip
    by_name = {name: (mutate, error) for name, mutate, error in EXACT_ERRORS}
    doc = good_document()
    for name in chosen:
        by_name[name][0](doc)
    doc["categories"][2]["releasable_fields"] = ["source_id", "ssn", "payload.risk_level"]
    errors = errors_of(doc)
    expected = [by_name[name][1] for name in chosen]
    expected += [
        "categories[2].releasable_fields[0]: never releasable: it identifies or grades the "
        "source (source protection)",
        "categories[2].releasable_fields[1]: unknown field; one of given_name, middle_name, "
        "family_name, full_name, aliases, birth_date, sex, nationalities, birth_place, "
        "documents, addresses or payload.<name>",
    ]
    assert sorted(errors) == sorted(expected)
    assert str(SchemaError(errors)).startswith(f"{len(expected)} error(s):\n  - ")


def test_wrong_shapes_do_not_crash() -> None:
    assert errors_of([]) == ("mou: must be a table/object",)
    assert errors_of({}) == tuple(
        f"{m}: required"
        for m in ("format", "id", "version", "valid_from", "valid_until", "legal_basis",
                  "purposes", "parties", "linkage", "release", "exchange", "categories")
    )  # fmt: skip
    doc = good_document()
    doc["parties"] = [1, "x"]
    doc["categories"] = [None]
    assert errors_of(doc) == (
        "parties[0]: must be a table/object",
        "parties[1]: must be a table/object",
        "categories[0]: must be a table/object",
    )


def test_messages_never_quote_the_offending_value() -> None:
    doc = good_document()
    secret = "deadbeef" * 8
    doc["parties"][0]["verify_key"] = secret.upper()
    doc["parties"][1]["name"] = "Secret\x00Name"
    for error in errors_of(doc):
        assert secret.upper() not in error and "Secret" not in error


def test_json_syntax_errors_are_schema_errors() -> None:
    with pytest.raises(SchemaError, match="not valid JSON: line 1"):
        parse_mou("{", "json")
    with pytest.raises(SchemaError, match="member 'id' given twice"):
        parse_mou('{"id": "a", "id": "b"}', "json")
    with pytest.raises(SchemaError, match="NaN is not JSON"):
        parse_mou('{"version": NaN}', "json")
    with pytest.raises(SchemaError, match="not valid TOML"):
        parse_mou("id = ", "toml")
    with pytest.raises(SchemaError, match="unknown format"):
        parse_mou("{}", "yaml")


def test_toml_and_json_report_the_same_errors() -> None:
    signed = signed_sample()
    texts = {fmt: dump_mou(signed, fmt) for fmt in ("json", "toml")}
    found = {}
    for fmt, text in texts.items():
        sep = " = " if fmt == "toml" else ": "
        bad = text
        for key, old, new in (("tlp", "AMBER+STRICT", "PURPLE"), ("country", "USA", "usa")):
            name = key if fmt == "toml" else f'"{key}"'
            assert bad.count(f'{name}{sep}"{old}"') == 1
            bad = bad.replace(f'{name}{sep}"{old}"', f'{name}{sep}"{new}"')
        with pytest.raises(SchemaError) as info:
            parse_mou(bad, fmt)
        found[fmt] = info.value.errors
    assert (
        found["json"]
        == found["toml"]
        == (
            "parties[1].country: must be an ISO 3166-1 alpha-3 code in capitals (CAN, USA)",
            "categories[1].caveats.tlp: must be one of 'RED', 'AMBER+STRICT', 'AMBER', 'GREEN', "
            "'CLEAR'",
        )
    )


def test_a_signing_key_never_needed_to_validate() -> None:
    # Validation reads public keys only: any 32 bytes that are a point validate.
    doc = good_document()
    doc["parties"][0]["verify_key"] = bytes(SigningKey(b"\x07" * 32).verify_key).hex()
    assert validate_mou(doc).parties[0].verify_key == SigningKey(b"\x07" * 32).verify_key


def test_bad_mou_files_on_disk(tmp_path: Path) -> None:
    text = dump_mou(signed_sample(), "toml")
    text = text.replace("valid_until = 2027-12-31", "valid_until = 2024-12-31")
    text = text.replace('"payload.offence"', '"source_id"')
    text = text.replace("match_threshold = 0.06694", 'match_threshold = "high"')
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SchemaError) as info:
        load_mou(path)
    assert info.value.errors == (
        "valid_until: must not be before valid_from",
        "linkage.match_threshold: must be a finite number",
        "categories[1].releasable_fields[5]: never releasable: it identifies or grades the source "
        "(source protection)",
    )
    path = tmp_path / "bad.json"
    path.write_text('{"format": "xlink-mou-v1",}', encoding="utf-8")
    with pytest.raises(SchemaError, match="not valid JSON: line 1"):
        load_mou(path)


@pytest.mark.parametrize("agency_id", [{"x": 1}, ["CA-RCMP"], 7, None])
def test_a_party_named_by_a_table_or_a_list_is_a_schema_error(agency_id: object) -> None:
    """A partner's signed MOU whose party is named by anything but text: the signatures'
    check collected the named parties into a set and raised TypeError (exit 70, "a bug");
    it is the document's error, with the party's path."""
    doc = good_document(signed=True)
    doc["parties"][0]["agency_id"] = agency_id
    with pytest.raises(SchemaError) as exc:
        parse_mou(json.dumps(doc), "json")
    assert any(e.startswith("parties[0].agency_id") for e in exc.value.errors)
