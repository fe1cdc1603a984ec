"""The log's record of what it runs under: the MOU in force (``MOU_ACCEPTED``) and the agency's
keys in use (``KEY_EVENT`` ``FIRST_USE``), each written the first time a log is opened with
them and never again (docs/audit.md, "What is logged").

So a log says, in its own signed history, which MOU and which keys its entries were made
under: an auditor who finds a fingerprint it does not expect, or a second MOU digest, sees the
change at the entry where it happened.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from xlink.audit._log import AuditLog
from xlink.audit._vocab import AuditEvent
from xlink.crypto.keys import SealingPublicKey, VerifyKey

__all__ = ["KeyInUse", "KeyUse", "agency_keys_in_use", "record_in_force"]


class KeyUse(Enum):
    """What one of the agency's keys is for (the ``key_use`` field of ``KEY_EVENT``)."""

    SIGNING = "SIGNING"  # Ed25519: signs releases, receipts and the MOU
    SEALING = "SEALING"  # X25519: releases are sealed to it
    TLS = "TLS"  # the P-256 TLS certificate the MOU pins
    AUDIT = "AUDIT"  # Ed25519: signs this log's checkpoints


@dataclass(frozen=True, slots=True)
class KeyInUse:
    """One key as ``KEY_EVENT`` names it: its use, its type (``ED25519``, ``X25519``,
    ``P256``) and its 16-byte fingerprint (32 hex digits); for a TLS certificate, the
    fingerprint is the first half of its SHA-256 and ``digest`` the whole, as the MOU pins it."""

    use: KeyUse
    key_type: str
    fingerprint: str
    digest: bytes | None = None


def agency_keys_in_use(
    *,
    signing: VerifyKey,
    sealing: SealingPublicKey,
    tls_cert_sha256: bytes,
    audit: VerifyKey,
) -> tuple[KeyInUse, ...]:
    """The four keys an agency's log is written with (xlink.crypto.keyfiles.AgencyKeys)."""
    if len(tls_cert_sha256) != 32:
        raise ValueError("tls_cert_sha256 must be 32 bytes")
    return (
        KeyInUse(KeyUse.SIGNING, "ED25519", signing.fingerprint()),
        KeyInUse(KeyUse.SEALING, "X25519", sealing.fingerprint()),
        KeyInUse(KeyUse.TLS, "P256", tls_cert_sha256[:16].hex(), tls_cert_sha256),
        KeyInUse(KeyUse.AUDIT, "ED25519", audit.fingerprint()),
    )


def record_in_force(
    log: AuditLog,
    *,
    mou: str,
    mou_digest: bytes,
    peer: str,
    keys: Sequence[KeyInUse],
    now: datetime,
) -> int:
    """Append ``MOU_ACCEPTED`` for the MOU ``mou`` with ``mou_digest`` (with ``peer``) unless the
    log already records that digest, and ``KEY_EVENT`` ``FIRST_USE`` for each of ``keys`` whose
    fingerprint (for its use) the log has no ``FIRST_USE`` of: idempotent across re-opens, one
    pass over the log. Returns the number of entries written. Raises ``ValueError`` as
    :meth:`AuditLog.append` (before writing anything for an identifier the vocabulary refuses
    in the MOU entry; key entries are checked one by one)."""
    digest = mou_digest.hex()
    mou_seen = False
    keys_seen: set[tuple[str, str]] = set()
    for entry in log.entries(kinds=(AuditEvent.MOU_ACCEPTED, AuditEvent.KEY_EVENT)):
        if entry.kind is AuditEvent.MOU_ACCEPTED and entry.fields["mou_digest"] == digest:
            mou_seen = True
        elif entry.kind is AuditEvent.KEY_EVENT and entry.fields["action"] == "FIRST_USE":
            use = entry.fields.get("key_use")
            keys_seen.add((str(use), str(entry.fields["fingerprint"])))
    written = 0
    if not mou_seen:
        fields = {"mou": mou, "mou_digest": mou_digest, "peer": peer}
        log.append(AuditEvent.MOU_ACCEPTED, fields, now=now)
        written += 1
    for key in keys:
        if (key.use.value, key.fingerprint) in keys_seen:
            continue
        fields_k: dict[str, object] = {
            "action": "FIRST_USE",
            "key_type": key.key_type,
            "fingerprint": key.fingerprint,
            "key_use": key.use,
            "mou": mou,
        }
        if key.digest is not None:
            fields_k["digest"] = key.digest
        log.append(AuditEvent.KEY_EVENT, fields_k, now=now)
        keys_seen.add((key.use.value, key.fingerprint))
        written += 1
    return written
