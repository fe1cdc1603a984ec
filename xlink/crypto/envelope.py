"""Secrets at rest: the passphrase envelope (``xlink-sealed-key-v1``) for private keys, and the
key-wrapped envelope (``xlink-wrapped-key-v1``) for secrets a service opens unattended
(docs/keys.md §2).

A sealed file is one JSON object, read strictly (a member given twice, an unknown member, a
wrong type or a value out of range is an error)::

    {"format": "xlink-sealed-key-v1",
     "purpose": "xlink/v1/key/signing",
     "kdf": {"name": "argon2id", "memory_kib": 262144, "iterations": 3, "lanes": 4,
             "salt": "<32 hex digits>"},
     "aead": {"name": "chacha20-poly1305", "nonce": "<24 hex digits>"},
     "ciphertext": "<hex: the secret, then the 16-byte tag>"}

The key is Argon2id (RFC 9106) of the passphrase with the parameters and salt of the file; the
AEAD's associated data binds the format, the purpose and every KDF parameter, so a file edited
to cheaper parameters, or moved to another purpose, does not open. The wrapped format is the
same with ``"kdf": {"name": "hkdf-sha256", "salt": ...}``: the key is HKDF-SHA256 (RFC 5869)
of a secret the caller holds (the agency's sealing key, for the source-handle key).

A wrong passphrase or any change to a sealed file is one opaque
:class:`~xlink.errors.DecryptionError`; a file that is not an envelope at all is a
:class:`~xlink.errors.SchemaError` listing every problem, and a sealed secret of another
purpose an :class:`~xlink.errors.InputError`. No message quotes a secret.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from xlink.crypto._strength import (
    MIN_PASSPHRASE_BITS,
    MIN_PASSPHRASE_BYTES,
    check_passphrase_strength,
)
from xlink.crypto.rand import RandomSource
from xlink.documents import DocumentError, parse_document
from xlink.errors import DecryptionError, InputError, SchemaError

__all__ = [
    "DEFAULT_KDF",
    "MIN_PASSPHRASE_BITS",
    "MIN_PASSPHRASE_BYTES",
    "PURPOSE_AUDIT",
    "PURPOSE_HUB_SIGNING",
    "PURPOSE_SEALING",
    "PURPOSE_SIGNING",
    "PURPOSE_SOURCE_HANDLE",
    "PURPOSE_TLS",
    "SEALED_FORMAT",
    "TEST_KDF",
    "WRAPPED_FORMAT",
    "WRAP_HKDF_DST",
    "KdfParams",
    "PassphraseOpener",
    "PassphraseSealer",
    "check_passphrase_strength",
    "is_envelope",
    "open_secret",
    "seal_secret",
    "sealed_kdf_params",
    "unwrap_secret",
    "wrap_secret",
]

SEALED_FORMAT: Final = "xlink-sealed-key-v1"
WRAPPED_FORMAT: Final = "xlink-wrapped-key-v1"

# Domain separation: what a sealed secret is for, bound into its associated data.
PURPOSE_SIGNING: Final = "xlink/v1/key/signing"
PURPOSE_SEALING: Final = "xlink/v1/key/sealing"
PURPOSE_TLS: Final = "xlink/v1/key/tls"
PURPOSE_AUDIT: Final = "xlink/v1/key/audit-signing"
PURPOSE_SOURCE_HANDLE: Final = "xlink/v1/key/source-handle"
#: A hub's Ed25519 signing key (:mod:`xlink.crypto.hub_key`).
PURPOSE_HUB_SIGNING: Final = "xlink/v1/key/hub-signing"

#: Labels of the associated data and of the HKDF ``info`` of wrapped secrets.
AD_DST: Final = b"xlink/v1/key-envelope/associated-data"
WRAP_HKDF_DST: Final = b"xlink/v1/key-envelope/hkdf-wrap"
#: Argon2id's own associated data (RFC 9106 §3.1 ``X``): this format's name.
_ARGON2_AD: Final = SEALED_FORMAT.encode("ascii")

_ARGON2: Final = "argon2id"
_HKDF: Final = "hkdf-sha256"
_AEAD: Final = "chacha20-poly1305"
KEY_SIZE: Final = 32
NONCE_SIZE: Final = 12
SALT_SIZE: Final = 16
TAG_SIZE: Final = 16
MAX_SALT_SIZE: Final = 64
MAX_SECRET_SIZE: Final = 16 * 1024
MAX_MEMORY_KIB: Final = 2 * 1024 * 1024  # 2 GiB: RFC 9106's first recommended option
MAX_ITERATIONS: Final = 32
MAX_LANES: Final = 16
_PURPOSE = re.compile(r"[a-z0-9][a-z0-9/._-]{0,127}")
_HEX = re.compile(r"(?:[0-9a-f]{2})*")
_TOP: Final = ("format", "purpose", "kdf", "aead", "ciphertext")


@dataclass(frozen=True, slots=True)
class KdfParams:
    """Argon2id's cost parameters (RFC 9106 §3.1): memory in KiB, passes, lanes. Raises
    ``ValueError`` outside 1 ≤ lanes ≤ 16, 8·lanes ≤ memory_kib ≤ 2 GiB, 1 ≤ iterations ≤ 32."""

    memory_kib: int
    iterations: int
    lanes: int

    def __post_init__(self) -> None:
        for name in ("memory_kib", "iterations", "lanes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name}: must be an integer")
        if not 1 <= self.lanes <= MAX_LANES:
            raise ValueError(f"lanes: must be 1 to {MAX_LANES}")
        if not 8 * self.lanes <= self.memory_kib <= MAX_MEMORY_KIB:
            raise ValueError(f"memory_kib: must be 8 * lanes to {MAX_MEMORY_KIB}")
        if not 1 <= self.iterations <= MAX_ITERATIONS:
            raise ValueError(f"iterations: must be 1 to {MAX_ITERATIONS}")

    def weaker_than(self, other: KdfParams) -> bool:
        """Less memory or fewer passes than ``other`` (lanes only spread the same work)."""
        return self.memory_kib < other.memory_kib or self.iterations < other.iterations

    def __str__(self) -> str:
        memory = (
            f"{self.memory_kib // 1024} MiB" if self.memory_kib % 1024 == 0 else
            f"{self.memory_kib} KiB"
        )  # fmt: skip
        return f"argon2id {memory}, t={self.iterations}, p={self.lanes}"


#: RFC 9106 §4 "second recommended option" with four times its memory: 256 MiB, 3 passes,
#: 4 lanes, about 0.45 s (0.7 CPU-seconds) per unlock on the reference machine
#: (bench/kdf_bench.py, docs/keys.md §2).
DEFAULT_KDF: Final = KdfParams(memory_kib=256 * 1024, iterations=3, lanes=4)
#: The cheapest parameters Argon2id allows. FOR TESTS AND THROWAWAY KEYS ONLY: a file sealed
#: with them falls to a guessing attack at tens of thousands of guesses per second per core.
TEST_KDF: Final = KdfParams(memory_kib=8, iterations=1, lanes=1)


@dataclass(frozen=True, slots=True)
class _Envelope:
    format: str
    purpose: str
    params: KdfParams | None  # None: wrapped (HKDF)
    salt: bytes
    nonce: bytes
    ciphertext: bytes

    def associated_data(self) -> bytes:
        kdf: list[str] = (
            [_HKDF] if self.params is None else
            [_ARGON2, *(str(v) for v in (self.params.memory_kib, self.params.iterations,
                                         self.params.lanes))]
        )  # fmt: skip
        parts = [AD_DST, *(p.encode("ascii") for p in (self.format, self.purpose, *kdf))]
        parts += [self.salt, _AEAD.encode("ascii")]
        return b"".join(len(p).to_bytes(4, "big") + p for p in parts)

    def to_bytes(self) -> bytes:
        kdf: dict[str, str | int] = (
            {"name": _HKDF} if self.params is None else
            {"name": _ARGON2, "memory_kib": self.params.memory_kib,
             "iterations": self.params.iterations, "lanes": self.params.lanes}
        )  # fmt: skip
        kdf["salt"] = self.salt.hex()
        doc = {
            "format": self.format,
            "purpose": self.purpose,
            "kdf": kdf,
            "aead": {"name": _AEAD, "nonce": self.nonce.hex()},
            "ciphertext": self.ciphertext.hex(),
        }
        return (json.dumps(doc, indent=2) + "\n").encode("ascii")


def _members(
    doc: dict[str, object], name: str, expected: tuple[str, ...], errors: list[str]
) -> dict[str, object]:
    """``doc[name]``, an object with exactly the ``expected`` members (else errors)."""
    if name not in doc:
        return {}
    value = doc[name]
    if not isinstance(value, dict):
        errors.append(f"{name}: must be a JSON object")
        return {}
    errors += [f"{name}.{m}: unknown member" for m in sorted(set(value) - set(expected))]
    errors += [f"{name}.{m}: missing" for m in expected if m not in value]
    return value


def _hex(
    doc: dict[str, object], name: str, where: str, sizes: range, errors: list[str]
) -> bytes | None:
    value = doc.get(name)
    if isinstance(value, str) and _HEX.fullmatch(value) and len(value) // 2 in sizes:
        return bytes.fromhex(value)
    if name in doc:
        errors.append(f"{where}: must be {sizes.start} to {sizes.stop - 1} bytes, lower-case hex")
    return None


def _parse(data: bytes, fmt: str) -> _Envelope:
    """Read an envelope of format ``fmt`` strictly: :class:`SchemaError` listing every
    problem (each naming the member, never its value)."""
    if not isinstance(data, bytes | bytearray):
        raise TypeError("a sealed secret is bytes")
    try:
        doc = parse_document(bytes(data), "json")
    except DocumentError as exc:
        raise SchemaError([f"not an {fmt} file: {exc.reason}"]) from None
    if not isinstance(doc, dict):
        raise SchemaError([f"not an {fmt} file: must be a JSON object"])
    errors = [f"{m}: unknown member" for m in sorted(set(doc) - set(_TOP))]
    errors += [f"{m}: missing" for m in _TOP if m not in doc]
    if "format" in doc and doc["format"] != fmt:
        errors.append(f"format: must be {fmt!r}")
    purpose = doc.get("purpose")
    if "purpose" in doc and not (isinstance(purpose, str) and _PURPOSE.fullmatch(purpose)):
        errors.append("purpose: must be 1 to 128 of a-z 0-9 / . _ -")
    argon = fmt == SEALED_FORMAT
    cost = ("memory_kib", "iterations", "lanes") if argon else ()
    kdf = _members(doc, "kdf", ("name", *cost, "salt"), errors)
    if "name" in kdf and kdf["name"] != (_ARGON2 if argon else _HKDF):
        errors.append(f"kdf.name: must be {_ARGON2 if argon else _HKDF!r}")
    params: KdfParams | None = None
    if argon and all(m in kdf for m in cost):
        try:
            params = KdfParams(*(kdf[m] for m in cost))  # type: ignore[arg-type]
        except ValueError as exc:
            errors.append(f"kdf.{exc}")
    salt = _hex(kdf, "salt", "kdf.salt", range(SALT_SIZE, MAX_SALT_SIZE + 1), errors)
    aead = _members(doc, "aead", ("name", "nonce"), errors)
    if "name" in aead and aead["name"] != _AEAD:
        errors.append(f"aead.name: must be {_AEAD!r}")
    nonce = _hex(aead, "nonce", "aead.nonce", range(NONCE_SIZE, NONCE_SIZE + 1), errors)
    sizes = range(TAG_SIZE + 1, MAX_SECRET_SIZE + TAG_SIZE + 1)
    ciphertext = _hex(doc, "ciphertext", "ciphertext", sizes, errors)
    if errors:
        raise SchemaError(errors)
    assert isinstance(purpose, str) and salt is not None and nonce is not None
    assert ciphertext is not None and (params is not None or not argon)
    return _Envelope(fmt, purpose, params, salt, nonce, ciphertext)


def _check_purpose(purpose: str) -> None:
    if not isinstance(purpose, str) or not _PURPOSE.fullmatch(purpose):
        raise ValueError("purpose must be 1 to 128 of a-z 0-9 / . _ - (use a PURPOSE_ constant)")


def _check_secret(secret: bytes) -> None:
    if not isinstance(secret, bytes | bytearray) or not 0 < len(secret) <= MAX_SECRET_SIZE:
        raise ValueError(f"a secret to seal is 1 to {MAX_SECRET_SIZE} bytes")


def _sealed(envelope: _Envelope, aead: ChaCha20Poly1305, secret: bytes) -> bytes:
    ciphertext = aead.encrypt(envelope.nonce, bytes(secret), envelope.associated_data())
    return replace(envelope, ciphertext=ciphertext).to_bytes()


def _open(envelope: _Envelope, aead: ChaCha20Poly1305, purpose: str) -> bytes:
    if envelope.purpose != purpose:
        raise InputError(f"holds a secret for {envelope.purpose!r}, not for {purpose!r}")
    try:
        return aead.decrypt(envelope.nonce, envelope.ciphertext, envelope.associated_data())
    except InvalidTag:
        raise DecryptionError() from None


def _argon2(passphrase: bytes, params: KdfParams, salt: bytes) -> ChaCha20Poly1305:
    if not isinstance(passphrase, bytes):
        raise TypeError("passphrase must be bytes")
    kdf = Argon2id(
        salt=salt,
        length=KEY_SIZE,
        iterations=params.iterations,
        lanes=params.lanes,
        memory_cost=params.memory_kib,
        ad=_ARGON2_AD,
    )
    return ChaCha20Poly1305(kdf.derive(passphrase))


class PassphraseSealer:
    """Seals several secrets under one passphrase with ONE Argon2id derivation: one fresh salt,
    one key, a fresh nonce and its own purpose per secret. A key directory is sealed this way,
    so that opening it costs one derivation, not one per file."""

    __slots__ = ("_aead", "_params", "_rng", "_salt")

    def __init__(
        self, passphrase: bytes, *, rng: RandomSource, params: KdfParams = DEFAULT_KDF
    ) -> None:
        if not isinstance(params, KdfParams):
            raise TypeError("params must be KdfParams")
        self._params = params
        self._rng = rng
        self._salt = rng(SALT_SIZE)
        self._aead = _argon2(passphrase, params, self._salt)

    def seal(self, secret: bytes, *, purpose: str) -> bytes:
        """The ``xlink-sealed-key-v1`` file holding ``secret`` for ``purpose``."""
        _check_purpose(purpose)
        _check_secret(secret)
        nonce = self._rng(NONCE_SIZE)
        envelope = _Envelope(SEALED_FORMAT, purpose, self._params, self._salt, nonce, b"")
        return _sealed(envelope, self._aead, secret)

    def __repr__(self) -> str:
        return f"PassphraseSealer(<key>, {self._params})"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("key material cannot be pickled")


class PassphraseOpener:
    """Opens sealed files under one passphrase, deriving the key of each distinct
    (parameters, salt) once."""

    __slots__ = ("_keys", "_passphrase")

    def __init__(self, passphrase: bytes) -> None:
        if not isinstance(passphrase, bytes):
            raise TypeError("passphrase must be bytes")
        self._passphrase = passphrase
        self._keys: dict[tuple[KdfParams, bytes], ChaCha20Poly1305] = {}

    def open(self, data: bytes, *, purpose: str) -> bytes:
        """The secret sealed in ``data`` for ``purpose``. Raises :class:`SchemaError` if
        ``data`` is not an ``xlink-sealed-key-v1`` file, :class:`InputError` if it holds a
        secret for another purpose, :class:`DecryptionError` for a wrong passphrase or a file
        changed in any way."""
        _check_purpose(purpose)
        envelope = _parse(data, SEALED_FORMAT)
        assert envelope.params is not None
        slot = (envelope.params, envelope.salt)
        if slot not in self._keys:
            self._keys[slot] = _argon2(self._passphrase, envelope.params, envelope.salt)
        return _open(envelope, self._keys[slot], purpose)

    def __repr__(self) -> str:
        return "PassphraseOpener(<passphrase>)"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("key material cannot be pickled")


def seal_secret(
    secret: bytes,
    passphrase: bytes,
    *,
    purpose: str,
    rng: RandomSource,
    params: KdfParams = DEFAULT_KDF,
) -> bytes:
    """Seal ``secret`` (1 to 16 KiB) under ``passphrase`` for ``purpose`` (a ``PURPOSE_``
    constant): an ``xlink-sealed-key-v1`` file. ``params`` lighter than :data:`DEFAULT_KDF`
    are for tests (:data:`TEST_KDF`). Does not judge the passphrase: callers that take one from
    a person run :func:`check_passphrase_strength` first. ``ValueError``/``TypeError`` for bad
    arguments."""
    return PassphraseSealer(passphrase, rng=rng, params=params).seal(secret, purpose=purpose)


def open_secret(data: bytes, passphrase: bytes, *, purpose: str) -> bytes:
    """The secret :func:`seal_secret` sealed; raises as :meth:`PassphraseOpener.open`."""
    return PassphraseOpener(passphrase).open(data, purpose=purpose)


def sealed_kdf_params(data: bytes) -> KdfParams:
    """The Argon2id parameters a sealed file was written with (no passphrase needed); raises
    :class:`SchemaError` if ``data`` is not an ``xlink-sealed-key-v1`` file."""
    params = _parse(data, SEALED_FORMAT).params
    assert params is not None
    return params


def is_envelope(data: bytes) -> bool:
    """Whether ``data`` looks like one of these envelopes (a JSON object naming one of the two
    formats), before it is parsed strictly."""
    head = bytes(data[:256]).lstrip()
    return head.startswith(b"{") and (
        SEALED_FORMAT.encode() in head or WRAPPED_FORMAT.encode() in head
    )


def _hkdf(wrapping_secret: bytes, salt: bytes, purpose: str) -> ChaCha20Poly1305:
    if not isinstance(wrapping_secret, bytes) or len(wrapping_secret) < KEY_SIZE:
        raise ValueError(f"a wrapping secret is at least {KEY_SIZE} bytes")
    info = WRAP_HKDF_DST + b"\x00" + purpose.encode("ascii")
    key = HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=salt, info=info)
    return ChaCha20Poly1305(key.derive(wrapping_secret))


def wrap_secret(secret: bytes, wrapping_secret: bytes, *, purpose: str, rng: RandomSource) -> bytes:
    """Seal ``secret`` under a key derived from ``wrapping_secret`` (at least 32 secret bytes,
    e.g. the agency's X25519 sealing key) with HKDF-SHA256 (salt from ``rng``, info
    :data:`WRAP_HKDF_DST` and ``purpose``): an ``xlink-wrapped-key-v1`` file, for secrets a
    service must open without a person typing a passphrase."""
    _check_purpose(purpose)
    _check_secret(secret)
    salt, nonce = rng(SALT_SIZE), rng(NONCE_SIZE)
    envelope = _Envelope(WRAPPED_FORMAT, purpose, None, salt, nonce, b"")
    return _sealed(envelope, _hkdf(wrapping_secret, salt, purpose), secret)


def unwrap_secret(data: bytes, wrapping_secret: bytes, *, purpose: str) -> bytes:
    """The secret :func:`wrap_secret` wrapped. Raises :class:`SchemaError` if ``data`` is not
    an ``xlink-wrapped-key-v1`` file, :class:`InputError` if it is for another purpose,
    :class:`DecryptionError` for another wrapping secret or a changed file."""
    _check_purpose(purpose)
    envelope = _parse(data, WRAPPED_FORMAT)
    return _open(envelope, _hkdf(wrapping_secret, envelope.salt, envelope.purpose), purpose)
