"""Garbled public bundles and audit-key endorsements raise only xlink's errors: "random bytes
into any decoder raise only our own exception types"."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime

from _mutations import DECODER_SETTINGS, mutated_json, mutated_text
from hypothesis import given
from hypothesis import strategies as st

from xlink.crypto._public_docs import parse_audit_endorsement
from xlink.crypto.keyfiles import AgencyKeys, parse_public_bundle
from xlink.crypto.rand import DeterministicRandom
from xlink.errors import InputError

_KEYS = AgencyKeys.generate(
    "CA-RCMP",
    rng=DeterministicRandom("public-docs"),
    now=datetime(2025, 3, 1, tzinfo=UTC),
    valid_days=365,
)
BUNDLE = _KEYS.public_bundle().to_json().encode()
ENDORSEMENT = _KEYS.audit_endorsement().encode()


@DECODER_SETTINGS
@given(mutated_json(json.loads(BUNDLE)) | mutated_text(BUNDLE) | st.binary(max_size=300))
def test_a_garbled_public_bundle_raises_only_input_errors(data: bytes) -> None:
    with contextlib.suppress(InputError):
        parse_public_bundle(data)


@DECODER_SETTINGS
@given(mutated_json(json.loads(ENDORSEMENT)) | mutated_text(ENDORSEMENT) | st.binary(max_size=300))
def test_a_garbled_audit_endorsement_raises_only_input_errors(data: bytes) -> None:
    verify_key = _KEYS.public_bundle().verify_key
    with contextlib.suppress(InputError):
        parse_audit_endorsement(data, verify_key, agency_id="CA-RCMP")
