"""The release vectors: the file equals what the generator produces, every valid vector is
reproduced and opens, every invalid one is refused with its named error (spec §9)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import msgpack
import pytest
from _generators import generator

from xlink.crypto.keys import SealingKey, SigningKey, VerifyKey
from xlink.errors import DecryptionError, PolicyDenied
from xlink.policy import parse_mou
from xlink.release import (
    ReleaseRejected,
    SealedRelease,
    SourceHandleKey,
    decode_release,
    encode_release,
    open_release,
    release_digest,
    resolve_source_handle,
    verify_receipt,
)
from xlink.release.codec import pack
from xlink.release.record import content_digest

ROOT = Path(__file__).resolve().parents[2]
PATH = ROOT / "protocols" / "vectors" / "release-v1" / "release.json"
DOC: dict[str, Any] = json.loads(PATH.read_text())
MOU = parse_mou(json.dumps(DOC["mou"]), "json").mou
KEYS = DOC["keys"]
ORIGINATOR = SigningKey(bytes.fromhex(KEYS["originator_signing_seed"])).verify_key
RECIPIENT_SEALING = SealingKey(bytes.fromhex(KEYS["recipient_sealing_secret"]))
RECIPIENT = SigningKey(bytes.fromhex(KEYS["recipient_signing_seed"])).verify_key
RECIPIENT_AUDIT = SigningKey(bytes.fromhex(KEYS["recipient_audit_seed"])).verify_key


def _generator() -> ModuleType:
    return generator("generate_release_vectors")


def test_file_equals_regenerated_vectors() -> None:
    assert _generator().build_vectors() == PATH.read_text()


def test_mou_digest_and_keys_agree() -> None:
    from xlink.policy import mou_digest

    assert mou_digest(MOU).hex() == DOC["mou_digest"]
    assert MOU.party(KEYS["originator"]).verify_key == ORIGINATOR


@pytest.mark.parametrize("case", DOC["valid"], ids=lambda c: c["name"])
def test_valid(case: dict[str, Any]) -> None:
    encoded = bytes.fromhex(case["encoded"])
    record = decode_release(encoded)
    assert encode_release(record) == encoded
    assert dict(record.fields) == {k: tuple(v) for k, v in case["release"]["fields"].items()}
    assert record.release_id.hex() == case["release"]["release_id"]
    digest = release_digest(encoded)
    assert digest.hex() == case["digest"]
    # The local content digest of §10.4 (what neither side keeps twice).
    assert content_digest(record).hex() == case["content_digest"]
    signature = bytes.fromhex(case["signature"])
    ORIGINATOR.verify(signature, digest)
    assert pack([encoded, signature]).hex() == case["envelope"]
    session = bytes.fromhex(case["session_id"])
    opened = open_release(
        bytes.fromhex(case["sealed"]), RECIPIENT_SEALING, mou=MOU, expected_session_id=session
    )
    assert opened == record
    key = SourceHandleKey(bytes.fromhex(KEYS["source_handle_key"]))
    assert (
        resolve_source_handle(record.source_handle, key, [case["source_id"], "x"])
        == (case["source_id"])
    )
    sealed = SealedRelease(
        record.release_id, session, digest, record.originator, record.recipient, "", b""
    )
    got = verify_receipt(bytes.fromhex(case["receipt"]), mou=MOU, release=sealed)
    assert int(got.received_at.timestamp() * 1_000_000) == case["receipt_received_at_us"]
    assert got.checkpoint is not None
    assert got.checkpoint.to_json() == case["receipt_checkpoint"]
    assert got.checkpoint.audit_key == RECIPIENT_AUDIT
    _check_receipt_independently(bytes.fromhex(case["receipt"]), case["receipt_checkpoint"])


def _check_receipt_independently(receipt: bytes, checkpoint: dict[str, Any]) -> None:
    """§8.1 and the checkpoint format of docs/audit.md, read with plain msgpack and hashlib
    rather than xlink's decoder: the bytes are what the documents say."""
    assert receipt[0] == 2
    body, signature = msgpack.unpackb(receipt[1:])
    assert body[0] == 2
    RECIPIENT.verify(signature, hashlib.sha256(_lp(b"xlink/v1/receipt") + body).digest())
    members = msgpack.unpackb(body[1:])
    assert len(members) == 7
    key, seq, head, time_us, prev_seq, interval, cp_signature = members[6]
    assert [key.hex(), seq, head.hex(), time_us, prev_seq, interval, cp_signature.hex()] == [
        checkpoint[name]
        for name in ("audit_key", "seq", "head_hash", "time_us", "prev_seq", "interval")
    ] + [checkpoint["signature"]]
    message = (
        _lp(b"xlink/v1/audit-checkpoint")
        + seq.to_bytes(8, "big")
        + head
        + time_us.to_bytes(8, "big", signed=True)
        + prev_seq.to_bytes(8, "big")
        + interval.to_bytes(4, "big")
    )
    VerifyKey(key).verify(cp_signature, message)


def _lp(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


@pytest.mark.parametrize("case", DOC["receipts"], ids=lambda c: c["name"])
def test_receipts(case: dict[str, Any]) -> None:
    """Receipts for the first valid release: one without a checkpoint verifies; a version-1
    receipt, a forged checkpoint and malformed checkpoint members are refused (spec §8.2)."""
    first = DOC["valid"][0]
    record = decode_release(bytes.fromhex(first["encoded"]))
    sealed = SealedRelease(
        record.release_id,
        record.session_id,
        release_digest(encode_release(record)),
        record.originator,
        record.recipient,
        "",
        b"",
    )
    receipt = bytes.fromhex(case["receipt"])
    if case.get("result") == "valid":
        assert verify_receipt(receipt, mou=MOU, release=sealed).checkpoint is None
        return
    errors: dict[str, type[Exception]] = {
        "DecryptionError": DecryptionError,
        "ReleaseRejected": ReleaseRejected,
    }
    with pytest.raises(errors[case["error"]]) as exc:
        verify_receipt(receipt, mou=MOU, release=sealed)
    if case["error"] == "ReleaseRejected":
        assert isinstance(exc.value, ReleaseRejected) and exc.value.reason == case["reason"]


@pytest.mark.parametrize("case", DOC["invalid"], ids=lambda c: c["name"])
def test_invalid(case: dict[str, Any]) -> None:
    sealed = RECIPIENT_SEALING.public_key.seal(bytes.fromhex(case["envelope"]))
    session = bytes.fromhex(case["expected_session_id"])
    errors: dict[str, type[Exception]] = {
        "DecryptionError": DecryptionError,
        "ReleaseRejected": ReleaseRejected,
        "PolicyDenied": PolicyDenied,
    }
    with pytest.raises(errors[case["error"]]) as exc:
        open_release(sealed, RECIPIENT_SEALING, mou=MOU, expected_session_id=session)
    if case["error"] == "ReleaseRejected":
        assert isinstance(exc.value, ReleaseRejected) and exc.value.reason == case["reason"]
    if case["error"] == "PolicyDenied":
        assert isinstance(exc.value, PolicyDenied)
        assert list(exc.value.reasons) == case["reasons"]
