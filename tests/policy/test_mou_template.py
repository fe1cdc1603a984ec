"""MOU templates and the shipped CA-RCMP / US-DHS sample (docs/mou.md §6)."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest
from _mou_support import CA, PARTY_KEYS, SIGNING, US, sample_mou

from xlink.crypto.keys import SealingKey, SigningKey
from xlink.errors import SchemaError
from xlink.linkage.schema import load_default_schema, schema_digest
from xlink.policy import (
    PartyKeys,
    Tlp,
    accept_mou,
    load_mou_template,
    load_sample_template,
    parse_mou_template,
    payload_field,
    sign_mou,
)
from xlink.policy.template import SAMPLE_TEMPLATE_RESOURCE
from xlink.records.model import Category, HandlingCode

SAMPLE_PATH = Path(__file__).parents[2] / "xlink" / SAMPLE_TEMPLATE_RESOURCE


def test_sample_template_describes_the_demo_agreement() -> None:
    template = load_sample_template()
    assert template.agency_ids == (CA, US)
    mou = sample_mou()
    assert mou.schema_digest == schema_digest(load_default_schema())
    assert mou.schema_id == load_default_schema().id
    assert mou.match_threshold == load_default_schema().threshold
    assert {"border-security", "child-protection"} <= set(mou.purposes)
    assert "(illustrative)" in mou.legal_basis
    watchlist = mou.policy_for(Category.WATCHLIST)
    offenders = mou.policy_for(Category.SEX_OFFENDER)
    travellers = mou.policy_for(Category.TRAVELLER)
    assert watchlist and offenders and travellers
    assert watchlist.caveats.tlp is Tlp.AMBER and watchlist.caveats.retention_days == 365
    assert watchlist.releases("payload.risk_level") and watchlist.releases("documents")
    assert offenders.caveats.tlp is Tlp.AMBER_STRICT and offenders.caveats.retention_days == 90
    assert offenders.caveats.handling_code is HandlingCode.CONDITIONS
    assert offenders.releases(payload_field("Offence"))
    assert all(p.caveats.originator_control for p in mou.categories)


def test_sample_payload_fields_match_the_sample_data_columns() -> None:
    # The sample lists' free columns, folded, are what the sample MOU releases.
    mou = sample_mou()
    watchlist = mou.policy_for(Category.WATCHLIST)
    assert watchlist is not None
    assert watchlist.releases(payload_field("Risk Level"))  # ca_watchlist.csv
    assert watchlist.releases(payload_field("threat_level"))  # us_watchlist.csv
    assert not watchlist.releases(payload_field("Remarks"))


def test_the_demo_flow_fill_sign_accept() -> None:
    mou = load_sample_template().fill(
        PARTY_KEYS,
        schema_digest=schema_digest(load_default_schema()),
        valid_from=datetime.date(2030, 1, 1),
        valid_until=datetime.date(2030, 12, 31),
    )
    signed = sign_mou(sign_mou(mou, CA, SIGNING[CA]), US, SIGNING[US])
    assert accept_mou(signed, local_agency=US, today=datetime.date(2030, 6, 1)) == mou


def test_fill_needs_every_hole_filled() -> None:
    template = load_sample_template()
    with pytest.raises(SchemaError) as info:
        template.fill({CA: PARTY_KEYS[CA]})
    assert info.value.errors == (
        "parties[1].verify_key: required",
        "parties[1].sealing_key: required",
        "parties[1].tls_cert_sha256: required",
        "linkage.schema_digest: required",
    )
    with pytest.raises(ValueError, match="does not name"):
        template.fill({"MX-FGR": PARTY_KEYS[CA]})
    with pytest.raises(ValueError, match="32 bytes"):
        template.fill(PARTY_KEYS, schema_digest=b"short")
    with pytest.raises(SchemaError, match="same as parties"):
        template.fill({CA: PARTY_KEYS[CA], US: PARTY_KEYS[CA]}, schema_digest=bytes(32))


def test_party_keys_check_the_fingerprint() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        PartyKeys(SigningKey(b"\x01" * 32).verify_key, SealingKey(b"\x01" * 32).public_key, b"")


def test_a_bad_template_reports_every_problem() -> None:
    text = SAMPLE_PATH.read_text(encoding="utf-8")
    text = text.replace('tlp = "AMBER+STRICT"', 'tlp = "AMBER STRICT"')
    text = text.replace('country = "USA"', 'country = "US"')
    with pytest.raises(SchemaError) as info:
        parse_mou_template(text, "toml")
    assert info.value.errors == (
        "parties[1].country: must be an ISO 3166-1 alpha-3 code in capitals (CAN, USA)",
        "categories[1].caveats.tlp: must be one of 'RED', 'AMBER+STRICT', 'AMBER', 'GREEN', "
        "'CLEAR'",
    )


def test_a_template_is_not_signed(tmp_path: Path) -> None:
    text = SAMPLE_PATH.read_text(encoding="utf-8") + '\n[signatures]\nCA-RCMP = "00"\n'
    with pytest.raises(SchemaError, match="a template is not signed"):
        parse_mou_template(text, "toml")
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"format": "xlink-mou-v1"}), encoding="utf-8")
    with pytest.raises(SchemaError, match="id: required"):
        load_mou_template(path)
    with pytest.raises(SchemaError, match="unknown file type"):
        load_mou_template(tmp_path / "t.yml")
    with pytest.raises(SchemaError, match="must be a table/object"):
        parse_mou_template("[1]", "json")


def test_json_template_equals_toml_template(tmp_path: Path) -> None:
    toml_template = load_mou_template(SAMPLE_PATH)
    path = tmp_path / "t.json"
    path.write_text(toml_template.document, encoding="utf-8")
    assert load_mou_template(path) == toml_template


def test_payload_field_folding() -> None:
    assert payload_field("Risk Level") == "payload.risk_level"
    assert payload_field("  threat-level ") == "payload.threat_level"
    assert payload_field("offense") == "payload.offense"
