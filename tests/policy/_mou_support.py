"""Shared builders for the MOU tests: deterministic keys, the filled sample MOU, its documents."""

from __future__ import annotations

import copy
import datetime
import json
from typing import Any

from xlink.crypto.keys import SealingKey, SigningKey
from xlink.crypto.rand import DeterministicRandom
from xlink.linkage.schema import load_default_schema, schema_digest
from xlink.policy import (
    Mou,
    PartyKeys,
    SignedMou,
    load_sample_template,
    mou_to_document,
    sign_mou,
)

CA, US = "CA-RCMP", "US-DHS"
TODAY = datetime.date(2026, 3, 1)  # within the sample's 2025-01-01 .. 2027-12-31


def _keys(seed: str) -> tuple[SigningKey, SealingKey, bytes]:
    rng = DeterministicRandom(seed)
    return SigningKey.generate(rng), SealingKey.generate(rng), rng(32)


SIGNING = {CA: _keys("ca")[0], US: _keys("us")[0]}
SEALING = {CA: _keys("ca")[1], US: _keys("us")[1]}
PARTY_KEYS = {
    agency: PartyKeys(SIGNING[agency].verify_key, SEALING[agency].public_key, _keys(seed)[2])
    for agency, seed in ((CA, "ca"), (US, "us"))
}
OTHER_SIGNING = SigningKey(b"\x42" * 32)


def sample_mou() -> Mou:
    """The shipped template filled with the deterministic keys above."""
    return load_sample_template().fill(
        PARTY_KEYS, schema_digest=schema_digest(load_default_schema())
    )


def signed_sample() -> SignedMou:
    signed = sign_mou(sample_mou(), CA, SIGNING[CA])
    return sign_mou(signed, US, SIGNING[US])


def good_document(*, signed: bool = False) -> dict[str, Any]:
    """The sample MOU as a fresh, mutable JSON document (with signatures if ``signed``)."""
    doc = mou_to_document(signed_sample() if signed else sample_mou())
    return copy.deepcopy(doc)


def good_json(*, signed: bool = False) -> str:
    return json.dumps(good_document(signed=signed), indent=2)
