"""The public files of a key directory, as documents: the public bundle (``public.json``,
format ``xlink-public-keys-v1``) and the audit key's endorsement (``audit-key.json``, format
``xlink-audit-key-v1``), each read strictly (docs/keys.md §3, §6). Re-exported by
:mod:`xlink.crypto.keyfiles`, where the directory that holds them is."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from nacl import bindings as nacl_bindings
from nacl.exceptions import RuntimeError as NaclRuntimeError

from xlink.crypto.keys import SealingPublicKey, VerifyKey
from xlink.crypto.tls_certs import certificate_fingerprint, load_certificate
from xlink.documents import DocumentError, parse_document, read_document
from xlink.errors import DecryptionError, InputError, SchemaError
from xlink.identifiers import AGENCY_ID_RULE

__all__ = [
    "AUDIT_ENDORSEMENT_DST",
    "AUDIT_ENDORSEMENT_FORMAT",
    "PUBLIC_BUNDLE_FORMAT",
    "PublicBundle",
    "audit_endorsement_message",
    "load_public_bundle",
    "parse_audit_endorsement",
    "parse_public_bundle",
    "utc_seconds",
]

PUBLIC_BUNDLE_FORMAT: Final = "xlink-public-keys-v1"
AUDIT_ENDORSEMENT_FORMAT: Final = "xlink-audit-key-v1"
#: What the signing key signs to endorse the audit key (with the agency id and the key).
AUDIT_ENDORSEMENT_DST: Final = b"xlink/v1/audit-key-endorsement"

_HEX32 = re.compile(r"[0-9a-f]{64}")
_HEX64 = re.compile(r"[0-9a-f]{128}")
_BUNDLE_MEMBERS = (
    "format", "agency_id", "verify_key", "sealing_key", "tls_cert_sha256", "tls_cert_pem",
    "created",
)  # fmt: skip
_ENDORSEMENT_MEMBERS = ("format", "agency_id", "audit_key", "signature")
_X25519_TEST_SCALAR = bytes(range(1, 33))


def utc_seconds(when: datetime, name: str) -> datetime:
    if not isinstance(when, datetime) or when.tzinfo is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    return when.astimezone(UTC).replace(microsecond=0)


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class PublicBundle:
    """What one agency sends the other before an MOU is filled: its public keys, its TLS
    certificate, and when they were made. Holding one says nothing about who sent it: compare
    the fingerprints over a second channel (docs/keys.md §4)."""

    agency_id: str
    verify_key: VerifyKey
    sealing_key: SealingPublicKey
    tls_cert_pem: bytes
    created: datetime

    @property
    def tls_cert_sha256(self) -> bytes:
        """SHA-256 of the DER certificate: the pin an MOU carries."""
        return certificate_fingerprint(self.tls_cert_pem)

    def to_document(self) -> dict[str, str]:
        return {
            "format": PUBLIC_BUNDLE_FORMAT,
            "agency_id": self.agency_id,
            "verify_key": bytes(self.verify_key).hex(),
            "sealing_key": bytes(self.sealing_key).hex(),
            "tls_cert_sha256": self.tls_cert_sha256.hex(),
            "tls_cert_pem": self.tls_cert_pem.decode("ascii"),
            "created": _iso(self.created),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_document(), indent=2) + "\n"


def _hex_key(data: dict[str, object], member: str, errors: list[str]) -> bytes | None:
    value = data.get(member)
    if not isinstance(value, str) or not _HEX32.fullmatch(value):
        errors.append(f"{member}: must be 64 lower-case hex digits (32 bytes)")
        return None
    return bytes.fromhex(value)


def _check_bundle(data: object) -> PublicBundle:
    if not isinstance(data, dict):
        raise SchemaError(["public bundle: must be a JSON object"])
    errors = [f"{m}: unknown member" for m in sorted(set(data) - set(_BUNDLE_MEMBERS))]
    errors += [f"{m}: missing" for m in _BUNDLE_MEMBERS if m not in data]
    if "format" in data and data["format"] != PUBLIC_BUNDLE_FORMAT:
        errors.append(f"format: must be {PUBLIC_BUNDLE_FORMAT!r}")
    agency_id = data.get("agency_id")
    if "agency_id" in data and not AGENCY_ID_RULE.matches(agency_id):
        errors.append(f"agency_id: must be {AGENCY_ID_RULE.description}")
    verify_raw = _hex_key(data, "verify_key", errors) if "verify_key" in data else None
    # OpenSSL accepts any 32 bytes as an Ed25519 key and libsodium any X25519 point; a
    # small-order key would make signatures or sealing meaningless (as docs/mou.md §2).
    if verify_raw is not None and not nacl_bindings.crypto_core_ed25519_is_valid_point(verify_raw):
        errors.append("verify_key: not an Ed25519 public key of prime order")
        verify_raw = None
    sealing_raw = _hex_key(data, "sealing_key", errors) if "sealing_key" in data else None
    if sealing_raw is not None:
        try:
            nacl_bindings.crypto_scalarmult(_X25519_TEST_SCALAR, sealing_raw)
        except NaclRuntimeError:
            errors.append("sealing_key: an X25519 public key of low order")
            sealing_raw = None
    pin = _hex_key(data, "tls_cert_sha256", errors) if "tls_cert_sha256" in data else None
    cert_pem: bytes | None = None
    raw_cert = data.get("tls_cert_pem")
    if "tls_cert_pem" in data:
        try:
            if not isinstance(raw_cert, str) or not raw_cert.startswith("-----BEGIN CERTIFICATE"):
                raise ValueError
            cert_pem = raw_cert.encode("ascii")
            load_certificate(cert_pem)  # every parse failure (bad version too) a ValueError
        except ValueError:  # UnicodeEncodeError included
            errors.append("tls_cert_pem: must be one PEM X.509 certificate")
            cert_pem = None
    if pin is not None and cert_pem is not None and certificate_fingerprint(cert_pem) != pin:
        errors.append("tls_cert_sha256: is not the SHA-256 of tls_cert_pem")
    created: datetime | None = None
    raw_created = data.get("created")
    if "created" in data:
        try:
            if not isinstance(raw_created, str):
                raise ValueError
            created = utc_seconds(datetime.fromisoformat(raw_created), "created")
        except (ValueError, OverflowError):  # OverflowError: past year 9999 once in UTC
            errors.append("created: must be an ISO 8601 date and time with a UTC offset")
    if errors:
        raise SchemaError(errors)
    assert isinstance(agency_id, str) and verify_raw and sealing_raw and cert_pem and created
    return PublicBundle(
        agency_id, VerifyKey(verify_raw), SealingPublicKey(sealing_raw), cert_pem, created
    )


def parse_public_bundle(text: str | bytes) -> PublicBundle:
    """Parse and check a public bundle (JSON, read strictly).

    Raises :class:`~xlink.errors.SchemaError` listing every problem: unknown or missing members,
    a wrong ``format``, keys that are not 64 lower-case hex digits or are of small order, a
    certificate that does not parse or whose SHA-256 is not ``tls_cert_sha256``.
    """
    try:
        data = parse_document(text, "json")
    except DocumentError as exc:
        raise SchemaError([f"public bundle: {exc.reason}"]) from None
    return _check_bundle(data)


def load_public_bundle(path: str | Path) -> PublicBundle:
    """Read a public bundle file. Raises ``OSError`` if unreadable and
    :class:`~xlink.errors.SchemaError` (each error prefixed with the path) if invalid."""
    try:
        return parse_public_bundle(read_document(path))
    except SchemaError as exc:
        raise SchemaError([f"{path}: {e}" for e in exc.errors]) from None


def audit_endorsement_message(agency_id: str, audit_key: VerifyKey) -> bytes:
    """What the signing key signs to endorse ``audit_key``: :data:`AUDIT_ENDORSEMENT_DST`, the
    agency id and the key, each preceded by its length (4 bytes, big-endian)."""
    parts = (AUDIT_ENDORSEMENT_DST, agency_id.encode("ascii"), bytes(audit_key))
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def parse_audit_endorsement(
    text: str | bytes, verify_key: VerifyKey, *, agency_id: str
) -> VerifyKey:
    """The audit-signing key an ``audit-key.json`` document (format ``xlink-audit-key-v1``)
    endorses, once its signature by ``verify_key`` (the agency's signing key, from its public
    bundle) over :data:`AUDIT_ENDORSEMENT_DST`, the agency id and the key is checked.

    Raises :class:`~xlink.errors.SchemaError` listing every problem with the document, and
    :class:`~xlink.errors.InputError` when it names another agency or its signature does not
    verify.
    """
    try:
        data = parse_document(text, "json")
    except DocumentError as exc:
        raise SchemaError([f"audit key endorsement: {exc.reason}"]) from None
    if not isinstance(data, dict):
        raise SchemaError(["audit key endorsement: must be a JSON object"])
    errors = [f"{m}: unknown member" for m in sorted(set(data) - set(_ENDORSEMENT_MEMBERS))]
    errors += [f"{m}: missing" for m in _ENDORSEMENT_MEMBERS if m not in data]
    if "format" in data and data["format"] != AUDIT_ENDORSEMENT_FORMAT:
        errors.append(f"format: must be {AUDIT_ENDORSEMENT_FORMAT!r}")
    if "agency_id" in data and not AGENCY_ID_RULE.matches(data["agency_id"]):
        errors.append(f"agency_id: must be {AGENCY_ID_RULE.description}")
    raw = _hex_key(data, "audit_key", errors) if "audit_key" in data else None
    if raw is not None and not nacl_bindings.crypto_core_ed25519_is_valid_point(raw):
        errors.append("audit_key: not an Ed25519 public key of prime order")
        raw = None
    signature = data.get("signature")
    if "signature" in data and not (isinstance(signature, str) and _HEX64.fullmatch(signature)):
        errors.append("signature: must be 128 lower-case hex digits (64 bytes)")
    if errors:
        raise SchemaError(errors)
    assert raw is not None and isinstance(signature, str)
    if data["agency_id"] != agency_id:
        raise InputError(f"endorses the audit key of another agency, not {agency_id}")
    audit_key = VerifyKey(raw)
    try:
        verify_key.verify(bytes.fromhex(signature), audit_endorsement_message(agency_id, audit_key))
    except DecryptionError:
        raise InputError(f"is not signed by {agency_id}'s signing key") from None
    return audit_key
