"""Self-signed TLS identities for the mutual-TLS transport (docs/transport.md).

Each agency presents one self-signed certificate. It is its own trust anchor: the peer loads it
as the only CA it trusts, and after the handshake compares its SHA-256 fingerprint with the pin
written in the MOU. No public CA, no hostname: the MOU is the trust root.

Keys are ECDSA P-256 (every TLS 1.3 stack, HSM and OpenSSL build supports it; Python's ``ssl``
negotiates TLS 1.3 with it). Time is a parameter (``not_before``/``not_after``); randomness is
either the operating system's or derived from ``key_seed``, in which case the whole certificate
is reproducible (deterministic ECDSA, RFC 6979, and a serial derived from the key and validity).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = [
    "FINGERPRINT_SIZE",
    "TlsIdentity",
    "certificate_fingerprint",
    "fingerprints_equal",
    "load_certificate",
    "make_tls_identity",
]

FINGERPRINT_SIZE: Final = 32
"""Size of a certificate fingerprint (SHA-256 of the DER certificate), in bytes."""

_KEY_SEED_DST: Final = b"xlink/v1/tls-key-seed"
_SERIAL_DST: Final = b"xlink/v1/tls-serial"
_P256_ORDER: Final = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


@dataclass(frozen=True, slots=True)
class TlsIdentity:
    """One agency's TLS certificate and private key, both PEM-encoded.

    ``key_pem`` is an unencrypted PKCS#8 private key: keep it in a file only the service account
    can read (the key-file writer encrypts it at rest).
    """

    cert_pem: bytes
    key_pem: bytes

    @property
    def fingerprint(self) -> bytes:
        """SHA-256 of the DER certificate: the value an MOU pins."""
        return certificate_fingerprint(self.cert_pem)

    def __repr__(self) -> str:
        return f"TlsIdentity(fingerprint={self.fingerprint.hex()}, key_pem=<secret>)"


def load_certificate(cert: bytes) -> x509.Certificate:
    """Parse one X.509 certificate given as PEM or DER (possibly someone else's: a partner's
    bundle). Raises ``ValueError`` — never one of cryptography's own exceptions, such as
    ``InvalidVersion`` for a version field other than v1/v3 — if it does not parse, or if its
    serial number is not positive (RFC 5280 §4.1.2.2; cryptography only warns of it for now,
    and will refuse it in a later release): checked before parsing, so no warning is
    emitted."""
    pem = cert.lstrip().startswith(b"-----BEGIN")
    if _serial_not_positive(_pem_body(cert) if pem else cert):
        raise ValueError("not an X.509 certificate: serial number not positive")
    try:
        if pem:
            return x509.load_pem_x509_certificate(cert)
        return x509.load_der_x509_certificate(cert)
    except (ValueError, TypeError, x509.InvalidVersion, UnsupportedAlgorithm):
        raise ValueError("not an X.509 certificate") from None


def _pem_body(pem: bytes) -> bytes:
    """The DER inside the first PEM block, or b"" when it cannot be read (the parser then
    judges the bytes itself)."""
    lines = pem.strip().splitlines()
    body = b"".join(line.strip() for line in lines[1:] if not line.startswith(b"-----"))
    try:
        return base64.b64decode(body, validate=True)
    except ValueError:
        return b""


def _der_header(der: bytes, at: int) -> tuple[int, int, int]:
    """(tag, content start, content length) of the DER element at ``at``; IndexError or
    ValueError for bytes that do not hold one."""
    tag, first = der[at], der[at + 1]
    if first < 0x80:
        return tag, at + 2, first
    size = first & 0x7F
    if not 1 <= size <= 4:
        raise ValueError("unsupported DER length")
    return tag, at + 2 + size, int.from_bytes(der[at + 2 : at + 2 + size], "big")


def _serial_not_positive(der: bytes) -> bool:
    """Whether the tbsCertificate's serialNumber INTEGER is zero or negative (RFC 5280
    §4.1.2.2 wants it positive; cryptography only warns of it, through the global warnings
    machinery, which a library must not reconfigure). Read from the DER itself, before any
    parsing; False for bytes not laid out as a certificate (the parser refuses those)."""
    try:
        tag, at, _ = _der_header(der, 0)  # Certificate ::= SEQUENCE
        if tag != 0x30:
            return False
        tag, at, _ = _der_header(der, at)  # tbsCertificate ::= SEQUENCE
        if tag != 0x30:
            return False
        tag, start, length = _der_header(der, at)
        if tag == 0xA0:  # [0] EXPLICIT version
            tag, start, length = _der_header(der, start + length)
        if tag != 0x02 or length < 1:  # serialNumber INTEGER
            return False
        content = der[start : start + length]
        return bool(content[0] & 0x80) or not any(content)
    except (IndexError, ValueError):
        return False


def certificate_fingerprint(cert: bytes) -> bytes:
    """SHA-256 of a certificate given as PEM or DER. Raises ``ValueError`` if it does not parse
    (:func:`load_certificate`)."""
    der = load_certificate(cert).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).digest()


def fingerprints_equal(a: bytes, b: bytes) -> bool:
    """Constant-time comparison of two fingerprints."""
    return hmac.compare_digest(a, b)


def _private_key(key_seed: bytes | None) -> ec.EllipticCurvePrivateKey:
    if key_seed is None:
        return ec.generate_private_key(ec.SECP256R1())
    if len(key_seed) < 16:
        raise ValueError("key_seed must be at least 16 bytes")
    # 64 bytes reduced modulo the group order: bias below 2^-256.
    wide = hashlib.shake_256(_KEY_SEED_DST + key_seed).digest(64)
    scalar = int.from_bytes(wide, "big") % (_P256_ORDER - 1) + 1
    return ec.derive_private_key(scalar, ec.SECP256R1())


def _utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware")
    return value.astimezone(UTC)


def make_tls_identity(
    agency_id: str,
    *,
    not_before: datetime,
    not_after: datetime,
    key_seed: bytes | None = None,
) -> TlsIdentity:
    """Make a self-signed certificate for ``agency_id`` that can be its own trust anchor.

    Subject and issuer are ``CN=<agency_id>``; basicConstraints ``CA:TRUE`` (critical) and
    keyUsage ``digitalSignature, keyCertSign`` (critical), so OpenSSL accepts it both as the
    end-entity certificate and as the trust anchor that verifies it. ``not_before`` and
    ``not_after`` must be timezone-aware with ``not_before < not_after``. With ``key_seed``
    (at least 16 secret bytes) the key and the certificate are deterministic.

    Raises ``ValueError`` on an empty agency id, a naive datetime, an empty validity window or a
    short seed.
    """
    if not agency_id:
        raise ValueError("agency_id must not be empty")
    start = _utc(not_before, "not_before")
    end = _utc(not_after, "not_after")
    if not start < end:
        raise ValueError("not_before must be earlier than not_after")
    key = _private_key(key_seed)
    public_der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    serial_input = (
        _SERIAL_DST
        + public_der
        + start.isoformat().encode("ascii")
        + end.isoformat().encode("ascii")
        + agency_id.encode("utf-8")
    )
    # Positive, at most 20 octets (RFC 5280 §4.1.2.2).
    serial = int.from_bytes(hashlib.sha256(serial_input).digest()[:19], "big") | 1
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, agency_id)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256(), ecdsa_deterministic=key_seed is not None)
    )
    return TlsIdentity(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
