"""Signing an MOU and accepting it, with every refusal reason (docs/mou.md §5)."""

from __future__ import annotations

import dataclasses
import datetime

import pytest
from _mou_support import CA, OTHER_SIGNING, SIGNING, TODAY, US, sample_mou, signed_sample
from hypothesis import given, settings
from hypothesis import strategies as st

from xlink.errors import PolicyDenied, XlinkError
from xlink.policy import (
    MouRefused,
    SignedMou,
    accept_mou,
    dump_mou,
    mou_digest,
    parse_mou,
    sign_mou,
)

DAY = datetime.timedelta(days=1)


def refusal(signed: SignedMou, *, local: str = CA, today: datetime.date = TODAY) -> tuple[str, ...]:
    with pytest.raises(MouRefused) as info:
        accept_mou(signed, local_agency=local, today=today)
    return info.value.reasons


def test_both_signatures_accept() -> None:
    signed = signed_sample()
    assert accept_mou(signed, local_agency=CA, today=TODAY) == signed.mou
    assert accept_mou(signed, local_agency=US, today=TODAY) == signed.mou
    for party in signed.mou.parties:
        party.verify_key.verify(signed.signatures[party.agency_id], mou_digest(signed.mou))


def test_validity_is_inclusive_at_both_ends() -> None:
    signed = signed_sample()
    mou = signed.mou
    assert accept_mou(signed, local_agency=CA, today=mou.valid_from) == mou
    assert accept_mou(signed, local_agency=CA, today=mou.valid_until) == mou
    assert refusal(signed, today=mou.valid_from - DAY) == ("not-yet-valid",)
    assert refusal(signed, today=mou.valid_until + DAY) == ("expired",)


def test_each_refusal_reason() -> None:
    mou = sample_mou()
    assert refusal(SignedMou(mou)) == ("signature-missing:CA-RCMP", "signature-missing:US-DHS")
    only_ca = sign_mou(mou, CA, SIGNING[CA])
    assert refusal(only_ca) == ("signature-missing:US-DHS",)
    assert refusal(signed_sample(), local="MX-FGR") == ("not-a-party",)
    forged = SignedMou(mou, {**signed_sample().signatures, US: OTHER_SIGNING.sign(b"x")})
    assert refusal(forged) == ("signature-invalid:US-DHS",)
    truncated = SignedMou(mou, {**signed_sample().signatures, CA: b"\x00" * 10})
    assert refusal(truncated) == ("signature-invalid:CA-RCMP",)


def test_every_reason_is_reported_at_once() -> None:
    mou = sample_mou()
    bad = SignedMou(mou, {CA: SIGNING[US].sign(mou_digest(mou))})
    reasons = refusal(bad, local="MX-FGR", today=mou.valid_until + DAY)
    assert reasons == (
        "not-a-party",
        "signature-invalid:CA-RCMP",
        "signature-missing:US-DHS",
        "expired",
    )


def test_signatures_of_an_older_version_do_not_carry_over() -> None:
    signed = signed_sample()
    amended = dataclasses.replace(signed.mou, version=signed.mou.version + 1)
    assert refusal(SignedMou(amended, signed.signatures)) == (
        "signature-invalid:CA-RCMP",
        "signature-invalid:US-DHS",
    )


def test_a_signature_survives_the_file_round_trip() -> None:
    signed = signed_sample()
    for fmt in ("json", "toml"):
        again = parse_mou(dump_mou(signed, fmt), fmt)
        assert accept_mou(again, local_agency=US, today=TODAY) == signed.mou


def test_a_tampered_file_is_refused() -> None:
    text = dump_mou(signed_sample(), "toml")
    tampered = text.replace("retention_days = 90", "retention_days = 900")
    assert tampered != text
    assert refusal(parse_mou(tampered, "toml")) == (
        "signature-invalid:CA-RCMP",
        "signature-invalid:US-DHS",
    )


def test_mou_refused_is_a_policy_denial() -> None:
    assert issubclass(MouRefused, PolicyDenied) and issubclass(MouRefused, XlinkError)
    error = MouRefused(["expired"])
    assert error.reasons == ("expired",) and str(error) == "denied by policy: expired"


def test_sign_with_the_wrong_key_or_for_a_stranger() -> None:
    mou = sample_mou()
    with pytest.raises(ValueError, match="not the verify key"):
        sign_mou(mou, CA, SIGNING[US])
    with pytest.raises(ValueError, match="not the verify key"):
        sign_mou(mou, US, OTHER_SIGNING)
    with pytest.raises(ValueError, match="does not name"):
        sign_mou(mou, "MX-FGR", OTHER_SIGNING)


def test_signing_again_replaces_and_keeps_party_order() -> None:
    signed = sign_mou(sign_mou(sample_mou(), US, SIGNING[US]), CA, SIGNING[CA])
    assert list(signed.signatures) == [CA, US]
    again = sign_mou(signed, CA, SIGNING[CA])
    assert again == signed  # Ed25519 is deterministic


def test_signed_mou_rejects_strangers_and_non_bytes() -> None:
    mou = sample_mou()
    with pytest.raises(ValueError, match="does not name"):
        SignedMou(mou, {"MX-FGR": b"\x00" * 64})
    with pytest.raises(ValueError, match="bytes"):
        SignedMou(mou, {CA: "00" * 64})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        SignedMou(mou).signatures[CA] = b""  # type: ignore[index]


def test_today_must_be_a_date() -> None:
    with pytest.raises(TypeError, match=r"datetime\.date"):
        accept_mou(signed_sample(), local_agency=CA, today=datetime.datetime(2026, 1, 1))
    with pytest.raises(TypeError, match=r"datetime\.date"):
        accept_mou(signed_sample(), local_agency=CA, today="2026-01-01")  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(
    field=st.sampled_from(["id", "legal_basis"]),
    position=st.integers(0, 10_000),
    char=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]),
)
def test_a_one_character_edit_to_any_text_invalidates_both_signatures(
    field: str, position: int, char: str
) -> None:
    signed = signed_sample()
    text: str = getattr(signed.mou, field)
    i = position % len(text)
    edited = text[:i] + char + text[i + 1 :]
    if edited == text or (field == "id" and not (char.isascii() and char.isalnum())):
        return
    mou = (
        dataclasses.replace(signed.mou, id=edited)
        if field == "id"
        else dataclasses.replace(signed.mou, legal_basis=edited)
    )
    tampered = SignedMou(mou, signed.signatures)
    assert refusal(tampered) == ("signature-invalid:CA-RCMP", "signature-invalid:US-DHS")
