"""An agency's key directory: generate the keys, keep them encrypted at rest, load them, and
export the public bundle an MOU is filled from (docs/keys.md).

One directory holds one agency's keys::

    signing.key   Ed25519 signing key   encrypted PKCS#8 PEM   mode 0600
    sealing.key   X25519 sealing key    encrypted PKCS#8 PEM   mode 0600
    tls.key       ECDSA P-256 TLS key   encrypted PKCS#8 PEM   mode 0600
    tls.crt       self-signed TLS certificate (PEM)            mode 0600
    public.json   the public bundle (format xlink-public-keys-v1)   mode 0600

Private keys are written with ``cryptography``'s ``BestAvailableEncryption`` (PKCS#8 PBES2) and
nothing else: no format of our own. Every file is created with ``O_CREAT | O_EXCL``, mode 0600,
written and synced under a temporary name, then linked into place, so that a reader never sees a
half-written key and an existing key is never replaced unless asked. Loading refuses a private
key file that its group or others may read (as ssh does), and a wrong passphrase is one opaque
:class:`~xlink.errors.DecryptionError`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import stat
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from nacl import bindings as nacl_bindings
from nacl.exceptions import RuntimeError as NaclRuntimeError

from xlink.crypto.keys import KEY_SIZE, SealingKey, SealingPublicKey, SigningKey, VerifyKey
from xlink.crypto.rand import RandomSource
from xlink.crypto.tls_certs import (
    TlsIdentity,
    certificate_fingerprint,
    load_certificate,
    make_tls_identity,
)
from xlink.documents import DocumentError, parse_document
from xlink.errors import DecryptionError, InputError, SchemaError
from xlink.identifiers import AGENCY_ID_RULE, check_agency_id

__all__ = [
    "KEY_DIR_FILES",
    "MIN_PASSPHRASE_BYTES",
    "PRIVATE_KEY_FILES",
    "PUBLIC_BUNDLE_FILE",
    "PUBLIC_BUNDLE_FORMAT",
    "SEALING_KEY_FILE",
    "SIGNING_KEY_FILE",
    "TLS_CERT_FILE",
    "TLS_KEY_FILE",
    "AgencyKeys",
    "PublicBundle",
    "load_public_bundle",
    "parse_public_bundle",
]

PUBLIC_BUNDLE_FORMAT: Final = "xlink-public-keys-v1"
SIGNING_KEY_FILE: Final = "signing.key"
SEALING_KEY_FILE: Final = "sealing.key"
TLS_KEY_FILE: Final = "tls.key"
TLS_CERT_FILE: Final = "tls.crt"
PUBLIC_BUNDLE_FILE: Final = "public.json"
PRIVATE_KEY_FILES: Final = (SIGNING_KEY_FILE, SEALING_KEY_FILE, TLS_KEY_FILE)
KEY_DIR_FILES: Final = (*PRIVATE_KEY_FILES, TLS_CERT_FILE, PUBLIC_BUNDLE_FILE)

#: ``BestAvailableEncryption`` for PKCS#8 is PBKDF2-HMAC-SHA256 with only 2048 iterations
#: (OpenSSL's default), so the passphrase itself must carry the strength.
MIN_PASSPHRASE_BYTES: Final = 12

FILE_MODE: Final = 0o600
DIR_MODE: Final = 0o700
#: The TLS certificate starts an hour early, so that a peer whose clock is a little behind
#: does not refuse a certificate made just now.
TLS_BACKDATE: Final = timedelta(hours=1)

_HEX32 = re.compile(r"[0-9a-f]{64}")
_ENCRYPTED_PEM = b"-----BEGIN ENCRYPTED PRIVATE KEY-----"
_MAX_KEY_FILE_BYTES = 64 * 1024
_BUNDLE_MEMBERS = (
    "format", "agency_id", "verify_key", "sealing_key", "tls_cert_sha256", "tls_cert_pem",
    "created",
)  # fmt: skip
_X25519_TEST_SCALAR = bytes(range(1, 33))


def _utc_seconds(when: datetime, name: str) -> datetime:
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
            created = _utc_seconds(datetime.fromisoformat(raw_created), "created")
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
        return parse_public_bundle(Path(path).read_bytes())
    except SchemaError as exc:
        raise SchemaError([f"{path}: {e}" for e in exc.errors]) from None


# -- files -------------------------------------------------------------------------------------


def _fsync_dir(directory: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes, *, overwrite: bool) -> None:
    """Create ``path`` holding ``data``, mode 0600, all or nothing.

    The bytes go to a fresh temporary name opened ``O_CREAT | O_EXCL`` (never an existing file
    or a symlink planted there), are synced, then linked to ``path`` (which fails if ``path``
    exists) or, with ``overwrite``, renamed over it.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_BINARY", 0)
    fd = os.open(tmp, flags, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as f:
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), FILE_MODE)  # whatever the umask
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise InputError(f"{path}: already exists; refusing to overwrite it") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _read_private_file(path: Path) -> bytes:
    """Read a private key file, refusing one that group or others may read (like ssh)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise InputError(f"{path}: missing key file") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{path}: not a regular file")
        mode = stat.S_IMODE(st.st_mode)
        if os.name == "posix" and mode & 0o077:
            raise InputError(
                f"{path}: permissions {mode:04o} are too open: a private key file must be "
                f"readable by its owner only (chmod 600 {path})"
            )
        return f.read(_MAX_KEY_FILE_BYTES)


def _encrypted_pem(key: PrivateKeyTypes, passphrase: bytes) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )


def _decrypt_pem(path: Path, passphrase: bytes) -> PrivateKeyTypes:
    pem = _read_private_file(path)
    if not pem.lstrip().startswith(_ENCRYPTED_PEM):
        raise InputError(f"{path}: not an encrypted PKCS#8 PEM private key")
    try:
        return serialization.load_pem_private_key(pem, passphrase)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # Wrong passphrase or a damaged file: deliberately the same opaque error.
        raise DecryptionError() from None


def _check_passphrase(passphrase: bytes) -> None:
    if not isinstance(passphrase, bytes):
        raise TypeError("passphrase must be bytes")


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class AgencyKeys:
    """One agency's three keys: Ed25519 signing, X25519 sealing, and its TLS identity."""

    agency_id: str
    signing_key: SigningKey
    sealing_key: SealingKey
    tls: TlsIdentity
    created: datetime

    @classmethod
    def generate(
        cls, agency_id: str, *, rng: RandomSource, now: datetime, valid_days: int
    ) -> AgencyKeys:
        """Make fresh keys; the TLS certificate is valid from ``now`` (less an hour) for
        ``valid_days`` days. ``now`` must be timezone-aware. Raises
        :class:`~xlink.errors.IdentifierError` (a ``ValueError``) for an agency id an MOU could
        not name (:data:`xlink.identifiers.AGENCY_ID`), ``ValueError`` for a naive ``now`` or
        ``valid_days < 1``."""
        check_agency_id(agency_id, what="agency_id")
        if isinstance(valid_days, bool) or not isinstance(valid_days, int) or valid_days < 1:
            raise ValueError("valid_days must be a positive integer")
        created = _utc_seconds(now, "now")
        tls = make_tls_identity(
            agency_id,
            not_before=created - TLS_BACKDATE,
            not_after=created + timedelta(days=valid_days),
            key_seed=rng(KEY_SIZE),
        )
        return cls(agency_id, SigningKey.generate(rng), SealingKey.generate(rng), tls, created)

    def public_bundle(self) -> PublicBundle:
        return PublicBundle(
            self.agency_id,
            self.signing_key.verify_key,
            self.sealing_key.public_key,
            self.tls.cert_pem,
            self.created,
        )

    def save(self, directory: str | Path, passphrase: bytes, *, overwrite: bool = False) -> Path:
        """Write the key directory (created mode 0700 if missing); return the bundle's path.

        Raises :class:`~xlink.errors.InputError` if any of the files exists and not
        ``overwrite``, ``ValueError`` for a passphrase under :data:`MIN_PASSPHRASE_BYTES`.
        """
        _check_passphrase(passphrase)
        if len(passphrase) < MIN_PASSPHRASE_BYTES:
            raise ValueError(f"passphrase must be at least {MIN_PASSPHRASE_BYTES} bytes")
        out = Path(directory)
        out.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        if not overwrite:
            for name in KEY_DIR_FILES:
                if (out / name).exists() or (out / name).is_symlink():
                    raise InputError(f"{out / name}: already exists; refusing to overwrite it")
        tls_key = serialization.load_pem_private_key(self.tls.key_pem, None)
        contents = {
            SIGNING_KEY_FILE: _encrypted_pem(
                Ed25519PrivateKey.from_private_bytes(self.signing_key.seed()), passphrase
            ),
            SEALING_KEY_FILE: _encrypted_pem(
                X25519PrivateKey.from_private_bytes(self.sealing_key.secret()), passphrase
            ),
            TLS_KEY_FILE: _encrypted_pem(tls_key, passphrase),
            TLS_CERT_FILE: self.tls.cert_pem,
            PUBLIC_BUNDLE_FILE: self.public_bundle().to_json().encode("utf-8"),
        }
        for name in KEY_DIR_FILES:  # the bundle last: its presence means the set is complete
            _write_file(out / name, contents[name], overwrite=overwrite)
        _fsync_dir(out)
        return out / PUBLIC_BUNDLE_FILE

    @classmethod
    def load(cls, directory: str | Path, passphrase: bytes) -> AgencyKeys:
        """Read and decrypt a key directory written by :meth:`save`.

        Raises :class:`~xlink.errors.DecryptionError` (and nothing more specific) for a wrong
        passphrase or a damaged key; :class:`~xlink.errors.InputError` naming the file for a
        missing file, a private key file readable by group or others, a key of the wrong type,
        or files that do not belong together; :class:`~xlink.errors.SchemaError` for an invalid
        ``public.json``.
        """
        _check_passphrase(passphrase)
        src = Path(directory)
        bundle = load_public_bundle(src / PUBLIC_BUNDLE_FILE)
        keys = {name: _decrypt_pem(src / name, passphrase) for name in PRIVATE_KEY_FILES}
        signing, sealing, tls_key = (keys[n] for n in PRIVATE_KEY_FILES)
        if not isinstance(signing, Ed25519PrivateKey):
            raise InputError(f"{src / SIGNING_KEY_FILE}: not an Ed25519 private key")
        if not isinstance(sealing, X25519PrivateKey):
            raise InputError(f"{src / SEALING_KEY_FILE}: not an X25519 private key")
        if not isinstance(tls_key, ec.EllipticCurvePrivateKey):
            raise InputError(f"{src / TLS_KEY_FILE}: not an ECDSA private key")
        try:
            cert_pem = (src / TLS_CERT_FILE).read_bytes()
            if not cert_pem.lstrip().startswith(b"-----BEGIN"):
                raise ValueError
            cert = load_certificate(cert_pem)
        except ValueError:
            raise InputError(f"{src / TLS_CERT_FILE}: not a PEM X.509 certificate") from None
        if cert.public_key() != tls_key.public_key():
            raise InputError(f"{src / TLS_CERT_FILE}: does not match {TLS_KEY_FILE}")
        key_pem = tls_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        loaded = cls(
            bundle.agency_id,
            SigningKey(signing.private_bytes_raw()),
            SealingKey(sealing.private_bytes_raw()),
            TlsIdentity(cert_pem=cert_pem, key_pem=key_pem),
            bundle.created,
        )
        if (
            loaded.signing_key.verify_key != bundle.verify_key
            or loaded.sealing_key.public_key != bundle.sealing_key
            or loaded.tls.fingerprint != bundle.tls_cert_sha256
        ):
            raise InputError(f"{src / PUBLIC_BUNDLE_FILE}: does not match the keys beside it")
        return loaded

    def __repr__(self) -> str:
        return (
            f"AgencyKeys({self.agency_id!r}, {self.signing_key!r}, {self.sealing_key!r}, "
            f"{self.tls!r})"
        )

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("private keys cannot be pickled")
