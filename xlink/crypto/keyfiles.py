"""An agency's key directory: generate the keys, keep them sealed at rest, load them, upgrade a
directory written by an older xlink, and export the public bundle an MOU is filled from
(docs/keys.md).

One directory holds one agency's keys::

    signing.key     Ed25519 signing key         xlink-sealed-key-v1   mode 0600
    sealing.key     X25519 sealing key          xlink-sealed-key-v1   mode 0600
    tls.key         ECDSA P-256 TLS key         xlink-sealed-key-v1   mode 0600
    audit.key       Ed25519 audit-signing key   xlink-sealed-key-v1   mode 0600
    tls.crt         self-signed TLS certificate (PEM)                 mode 0600
    audit-key.json  the audit key, endorsed by the signing key        mode 0600
    public.json     the public bundle (format xlink-public-keys-v1)   mode 0600

Private keys are sealed with :mod:`xlink.crypto.envelope` (Argon2id, then ChaCha20-Poly1305,
each file bound to its purpose), all four under one salt so that opening the directory costs
one key derivation. Every file is created with ``O_CREAT | O_EXCL``, mode 0600, written and
synced under a temporary name, then linked (or, when replacing, renamed) into place, so that a
reader never sees a half-written key and an existing key is never replaced unless asked.
Loading refuses a private key file that its group or others may read (as ssh does), and a wrong
passphrase is one opaque :class:`~xlink.errors.DecryptionError`.

The public documents (``public.json``, ``audit-key.json``) are read in
:mod:`xlink.crypto._public_docs`, and secret files written and read in
:mod:`xlink.crypto._secret_files`; this module re-exports both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from xlink.crypto._public_docs import (
    AUDIT_ENDORSEMENT_DST,
    AUDIT_ENDORSEMENT_FORMAT,
    PUBLIC_BUNDLE_FORMAT,
    PublicBundle,
    audit_endorsement_message,
    load_public_bundle,
    parse_audit_endorsement,
    parse_public_bundle,
    utc_seconds,
)
from xlink.crypto._secret_files import (
    DIR_MODE,
    FILE_MODE,
    fsync_dir,
    read_private_file,
    write_file,
)
from xlink.crypto.envelope import (
    DEFAULT_KDF,
    MIN_PASSPHRASE_BYTES,
    PURPOSE_AUDIT,
    PURPOSE_SEALING,
    PURPOSE_SIGNING,
    PURPOSE_TLS,
    KdfParams,
    PassphraseOpener,
    PassphraseSealer,
    check_passphrase_strength,
    sealed_kdf_params,
)
from xlink.crypto.keys import KEY_SIZE, SealingKey, SigningKey, VerifyKey
from xlink.crypto.rand import RandomSource, system_random
from xlink.crypto.tls_certs import TlsIdentity, load_certificate, make_tls_identity
from xlink.documents import read_document
from xlink.errors import DecryptionError, InputError, SchemaError
from xlink.identifiers import check_agency_id

__all__ = [
    "AUDIT_ENDORSEMENT_DST",
    "AUDIT_ENDORSEMENT_FILE",
    "AUDIT_ENDORSEMENT_FORMAT",
    "AUDIT_KEY_FILE",
    "DIR_MODE",
    "FILE_MODE",
    "KEY_DIR_FILES",
    "KEY_PURPOSES",
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
    "load_audit_verify_key",
    "load_public_bundle",
    "parse_audit_endorsement",
    "parse_public_bundle",
    "read_private_file",
    "write_file",
]

SIGNING_KEY_FILE: Final = "signing.key"
SEALING_KEY_FILE: Final = "sealing.key"
TLS_KEY_FILE: Final = "tls.key"
AUDIT_KEY_FILE: Final = "audit.key"
TLS_CERT_FILE: Final = "tls.crt"
AUDIT_ENDORSEMENT_FILE: Final = "audit-key.json"
PUBLIC_BUNDLE_FILE: Final = "public.json"
PRIVATE_KEY_FILES: Final = (SIGNING_KEY_FILE, SEALING_KEY_FILE, TLS_KEY_FILE, AUDIT_KEY_FILE)
#: Every file of a key directory, in the order they are written: public.json last.
KEY_DIR_FILES: Final = (
    *PRIVATE_KEY_FILES, TLS_CERT_FILE, AUDIT_ENDORSEMENT_FILE, PUBLIC_BUNDLE_FILE
)  # fmt: skip
#: The envelope purpose each private key file is sealed for.
KEY_PURPOSES: Final = {
    SIGNING_KEY_FILE: PURPOSE_SIGNING,
    SEALING_KEY_FILE: PURPOSE_SEALING,
    TLS_KEY_FILE: PURPOSE_TLS,
    AUDIT_KEY_FILE: PURPOSE_AUDIT,
}

#: The TLS certificate starts an hour early, so that a peer whose clock is a little behind
#: does not refuse a certificate made just now.
TLS_BACKDATE: Final = timedelta(hours=1)

#: The key files of xlink 0.1: PKCS#8 PEM, PBKDF2-HMAC-SHA256 with 2048 iterations.
_LEGACY_PEM = b"-----BEGIN ENCRYPTED PRIVATE KEY-----"
_LEGACY_FILES: Final = (SIGNING_KEY_FILE, SEALING_KEY_FILE, TLS_KEY_FILE)

_UPGRADE_HINT = "run `xlink keygen --upgrade --out {0}` to upgrade the key directory"


def load_audit_verify_key(directory: str | Path) -> VerifyKey:
    """The audit-signing key of the key directory ``directory``, checked against the signing
    key of its ``public.json`` (no passphrase needed: both files are public).

    Raises :class:`~xlink.errors.InputError` naming the file when ``audit-key.json`` is missing
    or does not verify, :class:`~xlink.errors.SchemaError` when either file is invalid.
    """
    src = Path(directory)
    bundle = load_public_bundle(src / PUBLIC_BUNDLE_FILE)
    path = src / AUDIT_ENDORSEMENT_FILE
    try:
        text = read_document(path)
    except FileNotFoundError:
        raise InputError(f"{path}: missing: {_UPGRADE_HINT.format(src)}") from None
    try:
        return parse_audit_endorsement(text, bundle.verify_key, agency_id=bundle.agency_id)
    except SchemaError as exc:
        raise SchemaError([f"{path}: {e}" for e in exc.errors]) from None
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None


# -- reading the key files ---------------------------------------------------------------------


def _is_legacy(data: bytes) -> bool:
    return data.lstrip().startswith(_LEGACY_PEM)


def _open_legacy(path: Path, data: bytes, passphrase: bytes) -> bytes:
    """The secret of a key file of xlink 0.1 (PKCS#8 PEM): raw for Ed25519 and X25519 keys,
    unencrypted PKCS#8 DER for the TLS key."""
    try:
        key: PrivateKeyTypes = serialization.load_pem_private_key(data, passphrase)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise DecryptionError() from None  # wrong passphrase or damaged: one opaque error
    if isinstance(key, Ed25519PrivateKey | X25519PrivateKey):
        return key.private_bytes_raw()
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return _tls_der(key)
    raise InputError(f"{path}: not a key of a type xlink uses")


def _tls_der(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _open_sealed(path: Path, data: bytes, opener: PassphraseOpener) -> bytes:
    try:
        return opener.open(data, purpose=KEY_PURPOSES[path.name])
    except SchemaError as exc:
        raise SchemaError([f"{path}: {e}" for e in exc.errors]) from None
    except InputError as exc:  # sealed for another purpose: files swapped
        raise InputError(f"{path}: {exc}") from None


def _read_keys(src: Path) -> dict[str, bytes | None]:
    """Every private key file's bytes; None for a missing ``audit.key`` (xlink 0.1 had none)."""
    found: dict[str, bytes | None] = {}
    for name in PRIVATE_KEY_FILES:
        path = src / name
        missing = not path.exists() and not path.is_symlink()
        found[name] = None if name == AUDIT_KEY_FILE and missing else read_private_file(path)
    return found


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class AgencyKeys:
    """One agency's four keys: Ed25519 signing, X25519 sealing, its TLS identity, and the
    Ed25519 audit-signing key (endorsed by the signing key in ``audit-key.json``)."""

    agency_id: str
    signing_key: SigningKey
    sealing_key: SealingKey
    tls: TlsIdentity
    audit_key: SigningKey
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
        created = utc_seconds(now, "now")
        tls = make_tls_identity(
            agency_id,
            not_before=created - TLS_BACKDATE,
            not_after=created + timedelta(days=valid_days),
            key_seed=rng(KEY_SIZE),
        )
        signing, sealing = SigningKey.generate(rng), SealingKey.generate(rng)
        return cls(agency_id, signing, sealing, tls, SigningKey.generate(rng), created)

    def public_bundle(self) -> PublicBundle:
        return PublicBundle(
            self.agency_id,
            self.signing_key.verify_key,
            self.sealing_key.public_key,
            self.tls.cert_pem,
            self.created,
        )

    def audit_endorsement(self) -> str:
        """``audit-key.json``: the audit key's public half, signed by the signing key."""
        audit = self.audit_key.verify_key
        signature = self.signing_key.sign(audit_endorsement_message(self.agency_id, audit))
        doc = {
            "format": AUDIT_ENDORSEMENT_FORMAT,
            "agency_id": self.agency_id,
            "audit_key": bytes(audit).hex(),
            "signature": signature.hex(),
        }
        return json.dumps(doc, indent=2) + "\n"

    def _sealed_files(
        self, passphrase: bytes, *, rng: RandomSource, params: KdfParams
    ) -> dict[str, bytes]:
        """The four private key files, sealed under one salt (one derivation to open)."""
        tls_key = serialization.load_pem_private_key(self.tls.key_pem, None)
        assert isinstance(tls_key, ec.EllipticCurvePrivateKey)
        plain = {
            SIGNING_KEY_FILE: self.signing_key.seed(),
            SEALING_KEY_FILE: self.sealing_key.secret(),
            TLS_KEY_FILE: _tls_der(tls_key),
            AUDIT_KEY_FILE: self.audit_key.seed(),
        }
        sealer = PassphraseSealer(passphrase, rng=rng, params=params)
        return {name: sealer.seal(plain[name], purpose=KEY_PURPOSES[name]) for name in plain}

    def save(
        self,
        directory: str | Path,
        passphrase: bytes,
        *,
        overwrite: bool = False,
        params: KdfParams = DEFAULT_KDF,
        rng: RandomSource = system_random,
    ) -> Path:
        """Write the key directory (created mode 0700 if missing); return the bundle's path.

        The private keys are sealed with ``params`` (:data:`~xlink.crypto.envelope.TEST_KDF`
        only in tests) and randomness from ``rng``. Raises
        :class:`~xlink.errors.WeakPassphrase` (an ``InputError``) for a passphrase
        :func:`~xlink.crypto.envelope.check_passphrase_strength` refuses,
        :class:`~xlink.errors.InputError` if any of the files exists and not ``overwrite``.
        """
        check_passphrase_strength(passphrase, context=(self.agency_id,))
        out = Path(directory)
        out.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        if not overwrite:
            for name in KEY_DIR_FILES:
                if (out / name).exists() or (out / name).is_symlink():
                    raise InputError(f"{out / name}: already exists; refusing to overwrite it")
        contents = {
            **self._sealed_files(passphrase, rng=rng, params=params),
            TLS_CERT_FILE: self.tls.cert_pem,
            AUDIT_ENDORSEMENT_FILE: self.audit_endorsement().encode("utf-8"),
            PUBLIC_BUNDLE_FILE: self.public_bundle().to_json().encode("utf-8"),
        }
        for name in KEY_DIR_FILES:  # the bundle last: its presence means the set is complete
            write_file(out / name, contents[name], overwrite=overwrite)
        fsync_dir(out)
        return out / PUBLIC_BUNDLE_FILE

    @classmethod
    def load(cls, directory: str | Path, passphrase: bytes) -> AgencyKeys:
        """Read and open a key directory written by :meth:`save`.

        Never writes and draws no randomness: a directory of an older xlink (PKCS#8 PEM key
        files, no ``audit.key``) raises :class:`~xlink.errors.InputError` saying to run
        ``xlink keygen --upgrade`` (:meth:`upgrade`). Raises
        :class:`~xlink.errors.DecryptionError` (and nothing more specific) for a wrong
        passphrase or a changed key file; :class:`~xlink.errors.InputError` naming the file for
        a missing file, a private key file readable by group or others, a file sealed for
        another key, or files that do not belong together; :class:`~xlink.errors.SchemaError`
        for an invalid ``public.json``, ``audit-key.json`` or key file.
        """
        if not isinstance(passphrase, bytes):
            raise TypeError("passphrase must be bytes")
        src = Path(directory)
        bundle = load_public_bundle(src / PUBLIC_BUNDLE_FILE)
        found = _read_keys(src)
        old = [n for n, data in found.items() if data is None or _is_legacy(data)]
        if old:
            raise InputError(
                f"{src}: {', '.join(old)}: missing or in the format of xlink 0.1 (PKCS#8 PEM, "
                f"PBKDF2 with 2048 iterations); {_UPGRADE_HINT.format(src)}"
            )
        opener = PassphraseOpener(passphrase)
        plain = {n: _open_sealed(src / n, d, opener) for n, d in found.items() if d is not None}
        keys = cls._assemble(src, bundle, plain)
        if load_audit_verify_key(src) != keys.audit_key.verify_key:
            raise InputError(f"{src / AUDIT_ENDORSEMENT_FILE}: does not match {AUDIT_KEY_FILE}")
        return keys

    @classmethod
    def upgrade(
        cls,
        directory: str | Path,
        passphrase: bytes,
        *,
        rng: RandomSource,
        params: KdfParams = DEFAULT_KDF,
        new_passphrase: bytes | None = None,
    ) -> list[str]:
        """Bring a key directory up to this version in place; return what changed, one line per
        file (empty when nothing needed doing: running it twice changes nothing the second time).

        Key files of xlink 0.1 (PKCS#8 PEM, PBKDF2 with 2048 iterations) and sealed files whose
        parameters are lighter than ``params`` are re-sealed with ``params``; a missing
        ``audit.key`` is generated from ``rng`` and ``audit-key.json`` written. With
        ``new_passphrase`` every key is re-sealed under it. When one private key is re-sealed,
        all four are, under one salt. Every file is replaced atomically (temporary file, then
        rename); everything is read and checked before anything is written.

        Raises :class:`~xlink.errors.WeakPassphrase` when the passphrase the keys will be
        sealed under is refused by the strength check, and as :meth:`load` otherwise.
        """
        if not isinstance(passphrase, bytes):
            raise TypeError("passphrase must be bytes")
        src = Path(directory)
        bundle = load_public_bundle(src / PUBLIC_BUNDLE_FILE)
        target = passphrase if new_passphrase is None else new_passphrase
        check_passphrase_strength(target, context=(bundle.agency_id,))
        found = _read_keys(src)
        endorsement = src / AUDIT_ENDORSEMENT_FILE
        if found[AUDIT_KEY_FILE] is None and endorsement.exists():
            # A new audit key would orphan the log its endorsed predecessor signed.
            raise InputError(
                f"{src / AUDIT_KEY_FILE}: missing, but {AUDIT_ENDORSEMENT_FILE} endorses an audit "
                "key: restore the file from a backup (a new key would not verify the audit log)"
            )
        opener = PassphraseOpener(passphrase)
        # A run under a new passphrase that stopped half-way left some files under each: the
        # next run (with both passphrases again) opens each under whichever seals it.
        fallback = None if new_passphrase is None else PassphraseOpener(new_passphrase)
        plain: dict[str, bytes] = {}
        why: dict[str, str] = {}
        for name, data in found.items():
            if data is None:
                plain[name] = rng(KEY_SIZE)
                why[name] = "generated (a new Ed25519 audit-signing key)"
            elif _is_legacy(data) and name in _LEGACY_FILES:
                plain[name] = _open_legacy(src / name, data, passphrase)
                why[name] = f"PKCS#8 PEM (PBKDF2, 2048 iterations) re-sealed ({params})"
            else:
                try:
                    plain[name] = _open_sealed(src / name, data, opener)
                except DecryptionError:
                    if fallback is None:
                        raise
                    plain[name] = _open_sealed(src / name, data, fallback)
                if (was := sealed_kdf_params(data)).weaker_than(params):
                    why[name] = f"re-sealed: {was} -> {params}"
        keys = cls._assemble(src, bundle, plain)  # all checked before anything is written
        if new_passphrase is not None:
            why = {n: why.get(n, "re-sealed under the new passphrase") for n in found}
        elif why:
            why = {n: why.get(n, f"re-sealed with the others ({params})") for n in found}
        if found[AUDIT_KEY_FILE] is None or not endorsement.exists():
            why[AUDIT_ENDORSEMENT_FILE] = "written (the audit key, endorsed by the signing key)"
        elif load_audit_verify_key(src) != keys.audit_key.verify_key:
            raise InputError(f"{endorsement}: does not match {AUDIT_KEY_FILE}")
        if any(n in why for n in PRIVATE_KEY_FILES):
            sealed = keys._sealed_files(target, rng=rng, params=params)
            for name in PRIVATE_KEY_FILES:
                write_file(src / name, sealed[name], overwrite=True)
        if AUDIT_ENDORSEMENT_FILE in why:
            data = keys.audit_endorsement().encode("utf-8")
            write_file(endorsement, data, overwrite=True)
        if why:
            fsync_dir(src)
        return [f"{name}: {why[name]}" for name in KEY_DIR_FILES if name in why]

    @classmethod
    def _assemble(cls, src: Path, bundle: PublicBundle, plain: dict[str, bytes]) -> AgencyKeys:
        """The keys from the opened files, checked against each other and ``public.json``."""
        for name in (SIGNING_KEY_FILE, SEALING_KEY_FILE, AUDIT_KEY_FILE):
            if len(plain[name]) != KEY_SIZE:
                raise InputError(f"{src / name}: not a {KEY_SIZE}-byte private key")
        try:
            tls_key = serialization.load_der_private_key(plain[TLS_KEY_FILE], None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            tls_key = None
        if not isinstance(tls_key, ec.EllipticCurvePrivateKey):
            raise InputError(f"{src / TLS_KEY_FILE}: not an ECDSA private key")
        try:
            cert_pem = read_document(src / TLS_CERT_FILE)
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
            SigningKey(plain[SIGNING_KEY_FILE]),
            SealingKey(plain[SEALING_KEY_FILE]),
            TlsIdentity(cert_pem=cert_pem, key_pem=key_pem),
            SigningKey(plain[AUDIT_KEY_FILE]),
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
            f"{self.tls!r}, audit={self.audit_key!r})"
        )

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("private keys cannot be pickled")
