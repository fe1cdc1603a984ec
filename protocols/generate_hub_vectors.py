#!/usr/bin/env python3
"""Generate the xlink-hub-v1 test vectors (spec: protocols/xlink-hub-v1.md §9).

Writes ``protocols/vectors/hub-v1/valid.json`` (every message's canonical bytes, and the
signed hello, welcome and cosignature of a fixed exchange: keys from fixed seeds, Ed25519 is
deterministic) and ``invalid.json`` (frames a decoder must refuse with ``malformed``).
Running this twice gives identical files; ``tests/hub/test_hub_vectors.py`` regenerates them in
memory and checks the files.

Usage: ``python protocols/generate_hub_vectors.py [--check]``
"""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vector_files

from xlink.audit import Checkpoint, PublishedCheckpoint
from xlink.canonical import pack
from xlink.crypto._public_docs import audit_endorsement_message
from xlink.crypto.keys import SigningKey
from xlink.crypto.rand import DeterministicRandom
from xlink.error_codes import HubReason
from xlink.hub.wire import (
    HUB_WIRE_VERSION,
    Challenge,
    CheckpointOffer,
    Cosigned,
    HubMessage,
    Job,
    JobKind,
    Purpose,
    Refused,
    Report,
    Spliced,
    Welcome,
    cosign_message,
    encode,
    hello_message,
    sign_hello,
    welcome_message,
)
from xlink.protocol.config import Role

HERE = Path(__file__).resolve().parent
OUT_DIR = HERE / "vectors" / "hub-v1"
HUB_ID = "CA-PS-HUB"
AGENCY = "CA-RCMP"
TIME_US = 1_780_000_000_000_000
CONTROL_BINDING = bytes(range(32))
"""A stand-in for the SHA-256 of the hub's TLS certificate on a control connection."""


def _keys() -> tuple[SigningKey, SigningKey, SigningKey]:
    hub = SigningKey.generate(DeterministicRandom("xlink hub-v1 vectors: hub key"))
    agency = SigningKey.generate(DeterministicRandom("xlink hub-v1 vectors: agency key"))
    audit = SigningKey.generate(DeterministicRandom("xlink hub-v1 vectors: audit key"))
    return hub, agency, audit


def _checkpoint(audit: SigningKey) -> PublishedCheckpoint:
    unsigned = Checkpoint(
        7, bytes(range(32)), datetime.fromtimestamp(TIME_US / 1e6, UTC), 3, 4, bytes(64)
    )
    signature = audit.sign(unsigned.message())
    return PublishedCheckpoint(audit.verify_key, dataclasses.replace(unsigned, signature=signature))


def build_valid() -> dict[str, object]:
    hub, agency, audit = _keys()
    rng = DeterministicRandom("xlink hub-v1 vectors: nonces")
    hub_nonce, agency_nonce, job = rng(32), rng(32), rng(16)
    hello = sign_hello(
        agency,
        HUB_ID,
        hub_nonce,
        agency=AGENCY,
        purpose=Purpose.SESSION,
        job=job,
        peer="",
        time_us=TIME_US,
        nonce=agency_nonce,
    )
    welcome = Welcome(hub.sign(welcome_message(HUB_ID, hub_nonce, hello)))
    control = sign_hello(
        agency,
        HUB_ID,
        hub_nonce,
        agency=AGENCY,
        purpose=Purpose.CONTROL,
        job=b"",
        peer="",
        time_us=TIME_US,
        nonce=agency_nonce,
        binding=CONTROL_BINDING,
    )
    published = _checkpoint(audit)
    endorsement = agency.sign(audit_endorsement_message(AGENCY, published.audit_key))
    offer = CheckpointOffer("US-DHS", published, endorsement)
    cosigned = Cosigned("US-DHS", 7, hub.sign(cosign_message(HUB_ID, AGENCY, offer)))
    messages: list[tuple[str, HubMessage]] = [
        ("challenge", Challenge(HUB_ID, hub_nonce)),
        ("hello", hello),
        ("welcome", welcome),
        ("refused", Refused(HubReason.PEER_OFFLINE, "US-DHS")),
        ("job", Job(job, JobKind.EXCHANGE, "US-DHS", Role.INITIATOR)),
        ("report", Report(job, True, "")),
        ("spliced", Spliced()),
        ("checkpoint", offer),
        ("cosigned", cosigned),
    ]
    return {
        "hub_id": HUB_ID,
        "hub_verify_key": bytes(hub.verify_key).hex(),
        "agency": AGENCY,
        "agency_verify_key": bytes(agency.verify_key).hex(),
        "hello_signed_message": hello_message(HUB_ID, hub_nonce, hello).hex(),
        "control_binding": CONTROL_BINDING.hex(),
        "control_hello_signature": control.signature.hex(),
        "control_hello_signed_message": hello_message(
            HUB_ID, hub_nonce, control, CONTROL_BINDING
        ).hex(),
        "welcome_signed_message": welcome_message(HUB_ID, hub_nonce, hello).hex(),
        "cosign_signed_message": cosign_message(HUB_ID, AGENCY, offer).hex(),
        "messages": [{"name": name, "encoded": encode(m).hex()} for name, m in messages],
    }


def _raw(members: list[object]) -> str:
    return pack(HUB_WIRE_VERSION, members).hex()


def build_invalid() -> list[dict[str, str]]:
    nonce, sig, job, key = bytes(32), bytes(64), bytes(16), bytes(32)
    cases = [
        ("empty", ""),
        ("wrong version", "02" + _raw([1, HUB_ID, nonce])[2:]),
        ("unknown type", _raw([42])),
        ("type is a boolean", _raw([True, HUB_ID, nonce])),
        ("challenge nonce too short", _raw([1, HUB_ID, bytes(31)])),
        ("challenge hub id breaks the identifier rule", _raw([1, "hub id", nonce])),
        ("hello with an unknown purpose", _raw([2, AGENCY, "admin", b"", "", 1, nonce, sig])),
        ("session hello without a job", _raw([2, AGENCY, "session", b"", "", 1, nonce, sig])),
        ("control hello with a job", _raw([2, AGENCY, "control", job, "", 1, nonce, sig])),
        ("query hello without a peer", _raw([2, AGENCY, "query", b"", "", 1, nonce, sig])),
        ("control hello with a peer", _raw([2, AGENCY, "control", b"", "US-DHS", 1, nonce, sig])),
        ("hello with a negative time", _raw([2, AGENCY, "control", b"", "", -1, nonce, sig])),
        ("hello with a member missing", _raw([2, AGENCY, "control", b"", "", 1, nonce])),
        ("refused with an unknown reason", _raw([4, "because", ""])),
        ("job with an unknown role", _raw([5, job, "exchange", "US-DHS", "observer"])),
        ("report ok is an integer", _raw([6, job, 1, ""])),
        ("spliced with a member", _raw([7, 0])),
        ("checkpoint with seq 0", _raw([8, "US-DHS", key, 0, key, 1, 0, 1, sig, sig])),
        ("checkpoint without endorsement", _raw([8, "US-DHS", key, 1, key, 1, 0, 1, sig])),
        ("trailing bytes", _raw([7]) + "00"),
        ("not the minimal encoding", "01" + "dc0001" + "07"),
        ("a map", "01" + "81a17407"),
    ]
    return [{"name": name, "encoded": encoded} for name, encoded in cases]


def build() -> dict[str, str]:
    def dump(value: object) -> str:
        return json.dumps(value, indent=2, sort_keys=True) + "\n"

    return {"valid.json": dump(build_valid()), "invalid.json": dump(build_invalid())}


if __name__ == "__main__":
    sys.exit(vector_files.main(build, OUT_DIR, __doc__))
