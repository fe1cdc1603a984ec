"""Source handles: an opaque stand-in for a record's source that only the originator can resolve
(spec: xlink-release-v1 §6).

``handle = nonce || HMAC-SHA256(K, lp(DST) || nonce || source_id)[:16]`` with a fresh 16-byte
nonce per release and ``K`` an originator-only :class:`SourceHandleKey`. Two releases of the same
source carry unrelated handles (the nonce differs), so a recipient cannot link them; without
``K`` a handle says nothing about the source.

Why a MAC and a candidate scan rather than encrypting the source id: a MAC is what the issue
asks for, it needs nothing stored per release, and a handle holds no encryption of the source id
to be opened later; the originator resolves a handle by recomputing the MAC over its own source
ids (:func:`resolve_source_handle`), one HMAC per candidate, a rare, human-driven step. Source
ids are often guessable (``RCMP-SRC-4994``), so the secrecy of the key is what protects them:
keep it with the agency's other long-term secrets.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from xlink.crypto.envelope import (
    PURPOSE_SOURCE_HANDLE,
    is_envelope,
    unwrap_secret,
    wrap_secret,
)
from xlink.crypto.keyfiles import write_file
from xlink.crypto.keys import SealingKey
from xlink.crypto.rand import RandomSource
from xlink.errors import DecryptionError, InputError

__all__ = [
    "SOURCE_HANDLE_DST",
    "SOURCE_HANDLE_KEY_FILE",
    "SOURCE_HANDLE_SIZE",
    "SourceHandleKey",
    "make_source_handle",
    "open_source_handle_key",
    "resolve_source_handle",
]

#: The originator's source-handle key in its workdir.
SOURCE_HANDLE_KEY_FILE: Final = "source-handle.key"

SOURCE_HANDLE_DST: Final = b"xlink/v1/source-handle"
NONCE_SIZE: Final = 16
MAC_SIZE: Final = 16
SOURCE_HANDLE_SIZE: Final = NONCE_SIZE + MAC_SIZE


class SourceHandleKey:
    """The originator's 32-byte key for source handles. Never leaves the agency."""

    __slots__ = ("_raw",)
    SIZE: Final = 32

    def __init__(self, raw: bytes) -> None:
        if not isinstance(raw, bytes | bytearray) or len(raw) != self.SIZE:
            raise ValueError(f"a source handle key must be {self.SIZE} bytes")
        self._raw = bytes(raw)

    @classmethod
    def generate(cls, rng: RandomSource) -> SourceHandleKey:
        return cls(rng(cls.SIZE))

    def secret(self) -> bytes:
        """The raw key, for encrypted storage only."""
        return self._raw

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SourceHandleKey) and hmac.compare_digest(self._raw, other._raw)

    def __hash__(self) -> int:
        return hash(hashlib.sha256(self._raw).digest())

    def __repr__(self) -> str:
        return "SourceHandleKey(<secret>)"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("secret keys cannot be pickled")


def _mac(key: SourceHandleKey, nonce: bytes, source_id: str) -> bytes:
    message = (
        len(SOURCE_HANDLE_DST).to_bytes(4, "big")
        + SOURCE_HANDLE_DST
        + nonce
        + source_id.encode("utf-8")
    )
    return hmac.new(key.secret(), message, hashlib.sha256).digest()[:MAC_SIZE]


def make_source_handle(key: SourceHandleKey, source_id: str, rng: RandomSource) -> bytes:
    """A fresh 32-byte handle for ``source_id`` (spec §6). Each call draws a new nonce."""
    nonce = rng(NONCE_SIZE)
    if len(nonce) != NONCE_SIZE:
        raise ValueError("rng returned the wrong number of bytes")
    return nonce + _mac(key, nonce, source_id)


def resolve_source_handle(
    handle: bytes, key: SourceHandleKey, candidates: Iterable[str]
) -> str | None:
    """The candidate source id that ``handle`` was made for, or ``None`` (spec §6.2).

    Every candidate is checked with a constant-time comparison, and the scan does not stop at
    the first hit, so its time depends only on the number of candidates. A handle of the wrong
    size resolves to ``None``.
    """
    if len(handle) != SOURCE_HANDLE_SIZE:
        return None
    nonce, tag = bytes(handle[:NONCE_SIZE]), bytes(handle[NONCE_SIZE:])
    found: str | None = None
    for candidate in candidates:
        if hmac.compare_digest(_mac(key, nonce, candidate), tag) and found is None:
            found = candidate
    return found


def open_source_handle_key(
    workdir: Path, sealing_key: SealingKey, *, rng: RandomSource | None = None
) -> SourceHandleKey:
    """The originator's source-handle key, ``WORKDIR/source-handle.key`` (mode 0600), kept
    wrapped (``xlink-wrapped-key-v1``) under a key derived with HKDF from the agency's sealing
    key, so that an unattended ``serve`` opens it and the file alone gives nothing away
    (docs/keys.md §7).

    With ``rng`` (the exchange path): made on first use, and the plain-hex file of an older
    xlink wrapped in place, the same key. Without (``xlink source resolve``): read only, and
    :class:`~xlink.errors.InputError` if missing. ``InputError`` too for a file that does not
    open with this sealing key or is not a key."""
    path = Path(workdir) / SOURCE_HANDLE_KEY_FILE
    wrapping = sealing_key.secret()
    if path.exists():
        data = path.read_bytes()
        if is_envelope(data):
            try:
                raw = unwrap_secret(data, wrapping, purpose=PURPOSE_SOURCE_HANDLE)
                return SourceHandleKey(raw)
            except DecryptionError:
                raise InputError(
                    f"{path}: does not open with this agency's sealing key (made under other "
                    "keys, or changed)"
                ) from None
            except (InputError, ValueError) as exc:
                raise InputError(f"{path}: not a source handle key: {exc}") from None
        try:
            key = SourceHandleKey(bytes.fromhex(data.decode("ascii").strip()))
        except ValueError:  # UnicodeDecodeError included
            raise InputError(f"{path}: not a 32-byte source handle key in hex") from None
        if rng is None:
            return key  # an older xlink's plain file: the next exchange wraps it
    elif rng is None:
        raise InputError(f"{path}: no source-handle key (this workdir never released)")
    else:
        key = SourceHandleKey.generate(rng)
    wrapped = wrap_secret(key.secret(), wrapping, purpose=PURPOSE_SOURCE_HANDLE, rng=rng)
    write_file(path, wrapped, overwrite=path.exists())
    return key
