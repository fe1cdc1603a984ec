"""MOU_ACCEPTED and KEY_EVENT FIRST_USE: written the first time a log runs under an MOU digest
and a key, never again (xlink.audit.milestones; docs/audit.md)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from _audit_support import KEY, OTHER_KEY, T0

from xlink.audit import AuditEvent, AuditLog, verify_log
from xlink.audit.milestones import KeyInUse, KeyUse, agency_keys_in_use, record_in_force
from xlink.crypto.keys import SealingKey

SEALING = SealingKey(hashlib.sha256(b"milestones/sealing").digest())
CERT = hashlib.sha256(b"milestones/certificate").digest()
DIGEST = hashlib.sha256(b"milestones/mou").digest()


def _keys(cert: bytes = CERT) -> tuple[KeyInUse, ...]:
    return agency_keys_in_use(
        signing=KEY.verify_key,
        sealing=SEALING.public_key,
        tls_cert_sha256=cert,
        audit=OTHER_KEY.verify_key,
    )


def _record(log: AuditLog, digest: bytes, keys: tuple[KeyInUse, ...]) -> int:
    return record_in_force(
        log, mou="MOU-CA-US-1", mou_digest=digest, peer="US-DHS", keys=keys, now=T0
    )


def test_written_once_across_reopens(audit_dir: Path) -> None:
    path = audit_dir / "a.db"
    for _ in range(3):
        with AuditLog.open(path, signing_key=OTHER_KEY) as log:
            _record(log, DIGEST, _keys())
    with AuditLog.open(path, signing_key=None) as log:
        entries = list(log.entries())
    assert [e.kind for e in entries] == [AuditEvent.MOU_ACCEPTED] + [AuditEvent.KEY_EVENT] * 4
    assert dict(entries[0].fields) == {
        "mou": "MOU-CA-US-1",
        "mou_digest": DIGEST.hex(),
        "peer": "US-DHS",
    }
    uses = {e.fields["key_use"]: dict(e.fields) for e in entries[1:]}
    assert set(uses) == {u.value for u in KeyUse}
    assert uses["AUDIT"]["fingerprint"] == OTHER_KEY.verify_key.fingerprint()
    assert uses["TLS"] == {
        "action": "FIRST_USE",
        "key_type": "P256",
        "fingerprint": CERT[:16].hex(),
        "digest": CERT.hex(),
        "key_use": "TLS",
        "mou": "MOU-CA-US-1",
    }
    assert verify_log(path, OTHER_KEY.verify_key).ok


def test_a_new_mou_digest_or_a_new_key_is_written(audit_dir: Path) -> None:
    renewed = _keys(hashlib.sha256(b"renewed certificate").digest())
    with AuditLog.open(audit_dir / "a.db", signing_key=OTHER_KEY) as log:
        assert _record(log, DIGEST, _keys()) == 5
        assert _record(log, DIGEST, _keys()) == 0
        assert _record(log, hashlib.sha256(b"amended").digest(), renewed) == 2
