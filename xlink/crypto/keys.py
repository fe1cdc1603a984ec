"""Key objects: Ed25519 signing keys and X25519 sealing keys, thin and typed (PyNaCl style).

- Signing (MOU signatures, released records, receipts, audit checkpoints): Ed25519 through
  ``cryptography`` (OpenSSL), the same library that makes TLS certificates and encrypts keys
  at rest.
- Sealing (released records encrypted to the recipient): libsodium sealed boxes (X25519 +
  XSalsa20-Poly1305) through PyNaCl.

Private key objects never print their bytes, cannot be pickled, and compare only public keys.
Verification failures raise one opaque :class:`~xlink.errors.DecryptionError`.
Key generation takes ``rng`` so that tests and vectors are deterministic.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nacl import bindings as nacl_bindings
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey as _NaclPrivateKey
from nacl.public import PublicKey as _NaclPublicKey
from nacl.public import SealedBox

from xlink.crypto.rand import RandomSource
from xlink.errors import DecryptionError

__all__ = [
    "KEY_SIZE",
    "SIGNATURE_SIZE",
    "SealingKey",
    "SealingPublicKey",
    "SigningKey",
    "VerifyKey",
    "key_fingerprint",
]

KEY_SIZE: Final = 32
SIGNATURE_SIZE: Final = 64
_FINGERPRINT_DST: Final = b"xlink/v1/key-fingerprint"


def key_fingerprint(kind: str, public: bytes) -> str:
    """A short, printable, domain-separated fingerprint of a public key (hex, 16 bytes)."""
    h = hashlib.sha256()
    for part in (_FINGERPRINT_DST, kind.encode("ascii"), public):
        h.update(len(part).to_bytes(4, "big") + part)
    return h.hexdigest()[:32]


def _check_size(data: bytes, size: int, what: str) -> None:
    if not isinstance(data, bytes | bytearray) or len(data) != size:
        raise ValueError(f"{what} must be {size} bytes")


class VerifyKey:
    """An Ed25519 public key."""

    __slots__ = ("_raw",)
    SIZE: Final = KEY_SIZE

    def __init__(self, raw: bytes) -> None:
        _check_size(raw, KEY_SIZE, "an Ed25519 public key")
        self._raw = bytes(raw)
        # OpenSSL takes any 32 bytes; a key of small order (or not on the curve) would let a
        # forged signature verify (R the identity, S = 0), so it is no key at all.
        if not nacl_bindings.crypto_core_ed25519_is_valid_point(self._raw):
            raise ValueError("not a valid Ed25519 public key (not a prime-order point)")

    def __bytes__(self) -> bytes:
        return self._raw

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VerifyKey) and hmac.compare_digest(self._raw, other._raw)

    def __hash__(self) -> int:
        return hash(self._raw)

    def __repr__(self) -> str:
        return f"VerifyKey({self.fingerprint()})"

    def fingerprint(self) -> str:
        return key_fingerprint("ed25519", self._raw)

    def verify(self, signature: bytes, message: bytes) -> None:
        """Raise :class:`DecryptionError` unless ``signature`` is valid for ``message``.

        Verified by libsodium (``crypto_sign_open``), which also refuses a non-canonical or
        small-order ``R``: about half OpenSSL's time here, and a release pair verifies three
        signatures (the release, the receipt, its audit checkpoint)."""
        if len(signature) != SIGNATURE_SIZE:
            raise DecryptionError()
        try:
            nacl_bindings.crypto_sign_open(bytes(signature) + bytes(message), self._raw)
        except CryptoError:
            raise DecryptionError() from None


class SigningKey:
    """An Ed25519 private key."""

    __slots__ = ("_key", "verify_key")
    SIZE: Final = KEY_SIZE

    def __init__(self, seed: bytes) -> None:
        _check_size(seed, KEY_SIZE, "an Ed25519 seed")
        self._key = Ed25519PrivateKey.from_private_bytes(bytes(seed))
        self.verify_key = VerifyKey(self._key.public_key().public_bytes_raw())

    @classmethod
    def generate(cls, rng: RandomSource) -> SigningKey:
        return cls(rng(KEY_SIZE))

    def seed(self) -> bytes:
        """The 32-byte private seed, for encrypted storage only."""
        return self._key.private_bytes_raw()

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def __repr__(self) -> str:
        return f"SigningKey(<secret>, {self.verify_key.fingerprint()})"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("private keys cannot be pickled")


class SealingPublicKey:
    """An X25519 public key that released records are sealed to."""

    __slots__ = ("_key", "_raw")
    SIZE: Final = KEY_SIZE

    def __init__(self, raw: bytes) -> None:
        _check_size(raw, KEY_SIZE, "an X25519 public key")
        self._raw = bytes(raw)
        self._key = _NaclPublicKey(self._raw)

    def __bytes__(self) -> bytes:
        return self._raw

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SealingPublicKey) and hmac.compare_digest(self._raw, other._raw)

    def __hash__(self) -> int:
        return hash(self._raw)

    def __repr__(self) -> str:
        return f"SealingPublicKey({self.fingerprint()})"

    def fingerprint(self) -> str:
        return key_fingerprint("x25519", self._raw)

    def seal(self, plaintext: bytes) -> bytes:
        """Encrypt ``plaintext`` so that only the holder of the private key can open it.

        Uses libsodium's sealed box (an ephemeral key per message, drawn by libsodium itself:
        sealing is the one place xlink does not take ``rng``, because libsodium does not accept
        one; the output is never part of a test vector).
        """
        return bytes(SealedBox(self._key).encrypt(plaintext))


class SealingKey:
    """An X25519 private key, for opening records sealed to us."""

    __slots__ = ("_key", "public_key")
    SIZE: Final = KEY_SIZE

    def __init__(self, secret: bytes) -> None:
        _check_size(secret, KEY_SIZE, "an X25519 private key")
        self._key = _NaclPrivateKey(bytes(secret))
        self.public_key = SealingPublicKey(bytes(self._key.public_key))

    @classmethod
    def generate(cls, rng: RandomSource) -> SealingKey:
        return cls(rng(KEY_SIZE))

    def secret(self) -> bytes:
        """The 32-byte private key, for encrypted storage only."""
        return bytes(self._key)

    def open(self, sealed: bytes) -> bytes:
        """Decrypt a sealed box; raise :class:`DecryptionError` on any failure."""
        try:
            return bytes(SealedBox(self._key).decrypt(bytes(sealed)))
        except (CryptoError, ValueError, TypeError):
            raise DecryptionError() from None

    def __repr__(self) -> str:
        return f"SealingKey(<secret>, {self.public_key.fingerprint()})"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("private keys cannot be pickled")
