"""MOU documents: TOML and JSON, the canonical form and its digest (docs/mou.md §2, §4)."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
from pathlib import Path

import pytest
from _mou_support import CA, US, good_document, sample_mou, signed_sample
from hypothesis import given, settings
from hypothesis import strategies as st

from xlink.crypto.keys import SigningKey, VerifyKey
from xlink.errors import DecryptionError, SchemaError
from xlink.policy import (
    MOU_DIGEST_DST,
    Tlp,
    dump_mou,
    load_mou,
    mou_digest,
    mou_to_canonical,
    mou_to_document,
    parse_mou,
    sign_mou,
    validate_mou,
    validate_signed_mou,
)
from xlink.records.model import Category, HandlingCode

# A worked example of docs/mou.md §4: the document, its canonical bytes and digest, and party A's
# signature (Ed25519 seed bytes 0..31). The expected values were computed once and are checked
# here by a second, independent route (hashlib over the literal bytes).
VECTOR_TOML = """
format = "xlink-mou-v1"
id = "EXAMPLE-1"
version = 2
valid_from = 2025-06-01
valid_until = 2026-05-31
legal_basis = "Accord d'échange (illustratif)"
purposes = ["border-security"]

[linkage]
schema_id = "xlink-default"
schema_version = 1
schema_digest = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a"
match_threshold = 23.25

[release]
approval_required = true
follow_up_hours = 48

[exchange]
padding_bucket = 1024
query_quota_per_day = 0
set_size_budget_per_day = 100000

[[parties]]
agency_id = "A"
name = "Agency A"
country = "CAN"
verify_key = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
sealing_key = "79a631eede1bf9c98f12032cdeadd0e7a079398fc786b88cc846ec89af85a51a"
tls_cert_sha256 = "0101010101010101010101010101010101010101010101010101010101010101"
max_set_size = 4096

[[parties]]
agency_id = "B"
name = "Agency B"
country = "USA"
verify_key = "29acbae141bccaf0b22e1a94d34d0bc7361e526d0bfe12c89794bc9322966dd7"
sealing_key = "675dd574ed7789310b3d2e7681f3790b466c773b1521fecf36577958371ea52f"
tls_cert_sha256 = "0202020202020202020202020202020202020202020202020202020202020202"
max_set_size = 65536

[[categories]]
category = "watchlist"
releasable_fields = ["family_name", "birth_date", "payload.risk_level"]
[categories.caveats]
tlp = "AMBER+STRICT"
permitted_actions = "contact-for-instruction"
provider_attribution = false
affected_party_notifications = false
unmodified_resale = false
encrypt_at_rest = true
handling_code = "C"
handling_conditions = "Border screening only."
originator_control = true
retention_days = 90
require_grading = true
"""
VECTOR_CANONICAL = (
    '{"categories":[{"category":"watchlist","caveats":{"affected_party_notifications":false,"enc'
    'rypt_at_rest":true,"handling_code":"C","handling_conditions":"Border screening only.","orig'
    'inator_control":true,"permitted_actions":"contact-for-instruction","provider_attribution":f'
    'alse,"require_grading":true,"retention_days":90,"tlp":"AMBER+STRICT","unmodified_resale":fa'
    'lse},"releasable_fields":["family_name","birth_date","payload.risk_level"]}],"exchange":{"p'
    'adding_bucket":1024,"query_quota_per_day":0,"set_size_budget_per_day":100000},"format":"xli'
    'nk-mou-v1","id":"EXAMPLE-1","legal_basis":"Accord d\'échange (illustratif)","linkage":{"matc'
    'h_threshold":"23.25","schema_digest":"5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5'
    'a5a5a5a5a5a","schema_id":"xlink-default","schema_version":1},"parties":[{"agency_id":"A","c'
    'ountry":"CAN","max_set_size":4096,"name":"Agency A","sealing_key":"79a631eede1bf9c98f12032c'
    'deadd0e7a079398fc786b88cc846ec89af85a51a","tls_cert_sha256":"010101010101010101010101010101'
    '0101010101010101010101010101010101","verify_key":"03a107bff3ce10be1d70dd18e74bc09967e4d6309'
    'ba50d5f1ddc8664125531b8"},{"agency_id":"B","country":"USA","max_set_size":65536,"name":"Age'
    'ncy B","sealing_key":"675dd574ed7789310b3d2e7681f3790b466c773b1521fecf36577958371ea52f","tl'
    's_cert_sha256":"0202020202020202020202020202020202020202020202020202020202020202","verify_k'
    'ey":"29acbae141bccaf0b22e1a94d34d0bc7361e526d0bfe12c89794bc9322966dd7"}],"purposes":["borde'
    'r-security"],"release":{"approval_required":true,"follow_up_hours":48},"valid_from":"2025-0'
    '6-01","valid_until":"2026-05-31","version":2}'
)
VECTOR_DIGEST = "0171201d22886eaad36d4da7c042a306fd08b6c16f86764459762b5b43ef7198"
VECTOR_SIGNATURE_A = (
    "d82be20d135138b87ce953219f18553be4efbec262aaf3a4c431e72701ab7597"
    "d612e553cc1abfd4aa7bb7bb96d75d10a43f5894926366861600e893a66f6106"
)


def _spec_digest(canonical: bytes) -> bytes:
    """docs/mou.md §4, written out again: SHA-256(len(L) as 4 bytes BE || L || C)."""
    label = b"xlink/v1/mou"
    return hashlib.sha256(len(label).to_bytes(4, "big") + label + canonical).digest()


def test_worked_example_matches_the_spec() -> None:
    signed = parse_mou(VECTOR_TOML, "toml")
    canonical = json.dumps(
        mou_to_canonical(signed.mou), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    assert canonical == VECTOR_CANONICAL
    assert _spec_digest(VECTOR_CANONICAL.encode("utf-8")).hex() == VECTOR_DIGEST
    assert mou_digest(signed.mou).hex() == VECTOR_DIGEST
    assert MOU_DIGEST_DST == b"xlink/v1/mou"
    a = sign_mou(signed, "A", SigningKey(bytes(range(32))))
    assert a.signatures["A"].hex() == VECTOR_SIGNATURE_A
    VerifyKey(bytes.fromhex(VECTOR_CANONICAL[VECTOR_CANONICAL.index("03a1") :][:64])).verify(
        bytes.fromhex(VECTOR_SIGNATURE_A), bytes.fromhex(VECTOR_DIGEST)
    )


def test_the_sample_reads_the_same_from_toml_and_json() -> None:
    signed = signed_sample()
    from_toml = parse_mou(dump_mou(signed, "toml"), "toml")
    from_json = parse_mou(dump_mou(signed, "json"), "json")
    assert from_toml == from_json == signed
    assert mou_digest(from_toml.mou) == mou_digest(from_json.mou) == mou_digest(signed.mou)


def test_digest_ignores_layout_and_member_order() -> None:
    doc = good_document()
    shuffled = dict(reversed(list(doc.items())))
    shuffled["parties"] = [dict(reversed(list(p.items()))) for p in doc["parties"]]
    compact = json.dumps(shuffled, separators=(",", ":"))
    spaced = json.dumps(doc, indent=7)
    assert mou_digest(parse_mou(compact, "json").mou) == mou_digest(parse_mou(spaced, "json").mou)
    # a TOML integer threshold and a JSON float threshold are the same number
    doc["linkage"]["match_threshold"] = 23
    as_int = validate_mou(doc)
    doc["linkage"]["match_threshold"] = 23.0
    assert mou_digest(as_int) == mou_digest(validate_mou(doc))


def test_handling_conditions_absent_or_empty_is_the_same_document() -> None:
    doc = good_document()
    doc["categories"][0]["caveats"].pop("handling_conditions")
    assert mou_digest(validate_mou(doc)) == mou_digest(sample_mou())


def test_digest_covers_every_member() -> None:
    mou = sample_mou()
    base = mou_digest(mou)
    policy = mou.categories[0]
    changed = [
        dataclasses.replace(mou, id=mou.id + "X"),
        dataclasses.replace(mou, version=mou.version + 1),
        dataclasses.replace(mou, valid_until=mou.valid_until + datetime.timedelta(days=1)),
        dataclasses.replace(mou, legal_basis=mou.legal_basis + "."),
        dataclasses.replace(mou, purposes=mou.purposes[:1]),
        dataclasses.replace(mou, parties=(mou.parties[1], mou.parties[0])),
        dataclasses.replace(mou, match_threshold=mou.match_threshold + 1e-12),
        dataclasses.replace(mou, approval_required=not mou.approval_required),
        dataclasses.replace(mou, follow_up_hours=72),
        dataclasses.replace(mou, padding_bucket=2048),
        dataclasses.replace(mou, query_quota_per_day=1),
        dataclasses.replace(mou, set_size_budget_per_day=None),
        dataclasses.replace(mou, set_size_budget_per_day=1 << 21),
        dataclasses.replace(
            mou, parties=(dataclasses.replace(mou.parties[0], max_set_size=1024), mou.parties[1])
        ),
        dataclasses.replace(mou, schema_digest=bytes(32)),
        dataclasses.replace(mou, categories=mou.categories[::-1]),
        dataclasses.replace(
            mou,
            categories=(
                dataclasses.replace(policy, releasable_fields=policy.releasable_fields[:-1]),
                *mou.categories[1:],
            ),
        ),
        dataclasses.replace(
            mou,
            categories=(
                dataclasses.replace(
                    policy, caveats=dataclasses.replace(policy.caveats, tlp=Tlp.RED)
                ),
                *mou.categories[1:],
            ),
        ),
        dataclasses.replace(
            mou,
            categories=(
                dataclasses.replace(
                    policy, caveats=dataclasses.replace(policy.caveats, require_grading=False)
                ),
                *mou.categories[1:],
            ),
        ),
    ]
    digests = {mou_digest(m) for m in changed}
    assert base not in digests and len(digests) == len(changed)


def test_document_round_trip_and_helpers(tmp_path: Path) -> None:
    signed = signed_sample()
    assert validate_signed_mou(mou_to_document(signed)) == signed
    assert "signatures" not in mou_to_document(signed.mou)
    for fmt in ("toml", "json"):
        path = tmp_path / f"mou.{fmt}"
        path.write_text(dump_mou(signed, fmt), encoding="utf-8")
        assert load_mou(path) == signed
    with pytest.raises(SchemaError, match="unknown file type"):
        load_mou(tmp_path / "mou.yaml")
    with pytest.raises(ValueError, match="fmt"):
        dump_mou(signed, "yaml")
    mou = signed.mou
    assert mou.party(CA).country == "CAN" and mou.peer_of(CA).agency_id == US
    assert mou.peer_of(US).agency_id == CA
    with pytest.raises(KeyError):
        mou.party("MX-FGR")
    with pytest.raises(KeyError):
        mou.peer_of("MX-FGR")
    so = mou.policy_for(Category.SEX_OFFENDER)
    assert so is not None and so.caveats.tlp is Tlp.AMBER_STRICT
    assert so.caveats.handling_code is HandlingCode.CONDITIONS and so.caveats.handling_conditions
    assert so.releases("payload.offence") and not so.releases("documents")
    assert mou.policy_for(Category.OTHER) is None
    assert mou.is_valid_on(mou.valid_from) and mou.is_valid_on(mou.valid_until)
    assert not mou.is_valid_on(mou.valid_until + datetime.timedelta(days=1))


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_any_single_byte_change_changes_the_digest_and_breaks_the_signatures(
    data: st.DataObject,
) -> None:
    signed = signed_sample()
    canonical = json.dumps(
        mou_to_canonical(signed.mou), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")
    digest = _spec_digest(canonical)
    assert digest == mou_digest(signed.mou)
    i = data.draw(st.integers(0, len(canonical) - 1), label="position")
    b = data.draw(st.integers(0, 255).filter(lambda v: v != canonical[i]), label="byte")
    altered = canonical[:i] + bytes([b]) + canonical[i + 1 :]
    altered_digest = _spec_digest(altered)
    assert altered_digest != digest
    for party in signed.mou.parties:
        with pytest.raises(DecryptionError):
            party.verify_key.verify(signed.signatures[party.agency_id], altered_digest)
