"""TLS 1.3 with mutual certificate authentication, pinned by the MOU (docs/transport.md).

Each side trusts exactly one certificate, the peer's self-signed one named in the MOU, and after
the handshake compares the SHA-256 fingerprint of the certificate the peer actually presented
with the MOU's pin, in constant time. Hostnames are not checked: the agencies are identified by
the pinned certificate, not by DNS.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import ssl
import tempfile
from pathlib import Path

from xlink.crypto.tls_certs import FINGERPRINT_SIZE, TlsIdentity
from xlink.transport.errors import PeerRefused, RefusalReason

__all__ = [
    "bound_client_context",
    "bound_server_context",
    "check_peer",
    "client_context",
    "refusal_from_ssl_error",
    "server_context",
]


def server_context(identity: TlsIdentity, peer_cert_pem: bytes) -> ssl.SSLContext:
    """A server-side context: TLS 1.3 only, client certificate required and verified against
    ``peer_cert_pem`` alone. Raises ``ssl.SSLError`` if the identity or certificate is unusable."""
    return _context(ssl.PROTOCOL_TLS_SERVER, identity, peer_cert_pem)


def client_context(identity: TlsIdentity, peer_cert_pem: bytes) -> ssl.SSLContext:
    """A client-side context: TLS 1.3 only, presents ``identity``, verifies the server against
    ``peer_cert_pem`` alone, no hostname check (the fingerprint pin replaces it)."""
    return _context(ssl.PROTOCOL_TLS_CLIENT, identity, peer_cert_pem)


def bound_server_context(identity: TlsIdentity) -> ssl.SSLContext:
    """TLS 1.3 server context presenting ``identity`` and asking for no client certificate:
    for a channel whose peers authenticate inside it, by signatures that bind this
    certificate (the hub's control connections, xlink-hub-v1 §4)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.options |= ssl.OP_NO_TICKET
    _load_identity(ctx, identity)
    return ctx


def bound_client_context() -> ssl.SSLContext:
    """TLS 1.3 client context that accepts the server's certificate unverified: the caller
    MUST then authenticate the server by a signature over the SHA-256 of the certificate it
    actually presented (channel binding, as tls-server-end-point of RFC 5929), which is what
    the hub's signed welcome does (xlink-hub-v1 §4). Never use it without that check."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # authenticated by the channel binding, see above
    ctx.options |= ssl.OP_NO_TICKET
    return ctx


def check_peer(ssl_object: ssl.SSLObject | ssl.SSLSocket, pinned_sha256: bytes) -> None:
    """After a completed handshake, check that the peer presented the pinned certificate.

    Raises :class:`~xlink.transport.errors.PeerRefused` with ``NO_CERTIFICATE`` if it presented
    none, ``FINGERPRINT_MISMATCH`` if its SHA-256 differs from ``pinned_sha256`` (compared with
    :func:`hmac.compare_digest`) and ``TLS_FAILURE`` if the connection is not TLS 1.3.
    Raises ``ValueError`` if ``pinned_sha256`` is not 32 bytes.
    """
    if len(pinned_sha256) != FINGERPRINT_SIZE:
        raise ValueError("pinned_sha256 must be 32 bytes")
    if ssl_object.version() != "TLSv1.3":
        raise PeerRefused(RefusalReason.TLS_FAILURE, "not TLS 1.3")
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        raise PeerRefused(RefusalReason.NO_CERTIFICATE)
    if not hmac.compare_digest(hashlib.sha256(der).digest(), pinned_sha256):
        raise PeerRefused(RefusalReason.FINGERPRINT_MISMATCH)


def refusal_from_ssl_error(error: ssl.SSLError | OSError) -> PeerRefused:
    """Classify a failed handshake. The detail is OpenSSL's reason code, never certificate
    content."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return PeerRefused(RefusalReason.CERTIFICATE_INVALID, str(error.verify_message))
    reason = getattr(error, "reason", None)
    if isinstance(reason, str):
        if reason in {"PEER_DID_NOT_RETURN_A_CERTIFICATE", "TLSV13_ALERT_CERTIFICATE_REQUIRED"}:
            return PeerRefused(RefusalReason.NO_CERTIFICATE, reason)
        if reason.startswith(("SSLV3_ALERT_CERTIFICATE", "TLSV1_ALERT_UNKNOWN_CA")):
            return PeerRefused(RefusalReason.CERTIFICATE_INVALID, reason)
        return PeerRefused(RefusalReason.TLS_FAILURE, reason)
    return PeerRefused(RefusalReason.TLS_FAILURE, type(error).__name__)


def _context(protocol: int, identity: TlsIdentity, peer_cert_pem: bytes) -> ssl.SSLContext:
    ctx = ssl.SSLContext(protocol)
    # TLS 1.3 only: no downgrade, no renegotiation, forward secrecy and AEAD ciphers always.
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    # The peer's certificate is the only trust anchor: no system store is ever loaded.
    ctx.load_verify_locations(cadata=peer_cert_pem.decode("ascii"))
    # Certificates revoked by replacing the MOU, not by CRLs; a partial chain is our whole chain.
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    ctx.options |= ssl.OP_NO_TICKET  # no resumption: every session authenticates afresh
    _load_identity(ctx, identity)
    return ctx


def _load_identity(ctx: ssl.SSLContext, identity: TlsIdentity) -> None:
    """``load_cert_chain`` only reads files: give it an anonymous in-memory file (Linux
    memfd) when there is one, so the private key never touches a disk, else a private
    temporary directory removed at once."""
    blob = identity.cert_pem + b"\n" + identity.key_pem
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("xlink-tls-identity", os.MFD_CLOEXEC)
        try:
            os.write(fd, blob)
            ctx.load_cert_chain(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="xlink-tls-") as tmp:  # pragma: no cover
        path = Path(tmp) / "identity.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        ctx.load_cert_chain(path)
