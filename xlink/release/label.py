"""Labelled releases: a sealed release in transit opens only for a partner that holds the
tokens that decided it (spec: xlink-release-v1 §10.2; xlink-psi-v2 §7.5; xlink-query-v1).

After the decided-pairs digests agree, the release transfer's label evaluation gives both sides,
for every decided pair, the same OPRF output under the originator's session key, evaluated on
all the pair's tokens at once (xlink-psi-v2 §7.5): the originator computes it itself, the
recipient obtains it through one blinded evaluation that needs every one of the tokens. (The
real-time query labels a release with one output per handle, :func:`per_handle`.) The label
key is HKDF-SHA256 over the outputs ``outputs_of`` gives for the handles the frame names,
salted with the session id; the sealed release is encrypted under it with ChaCha20-Poly1305,
the handles as associated data. A partner that does not hold every token of the pair cannot
derive the key, so even a release sent by mistake (or obtained by faking a match) does not
open.

Wire form: ``u8(h) || handle_1 .. handle_h || nonce(12) || ciphertext``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from xlink.crypto.rand import RandomSource
from xlink.errors import DecryptionError, LabelError, LabelNotMatched
from xlink.protocol.limits import HANDLE_SIZE, MAX_PAIR_HANDLES

__all__ = [
    "LABEL_INFO",
    "LabelError",
    "LabelNotMatched",
    "label_key",
    "labelled_handles",
    "open_labelled",
    "per_handle",
    "per_pair",
    "seal_labelled",
]

LABEL_INFO: Final = b"xlink-release-v1/label-key"
"""HKDF ``info``: domain separation of the label key from every other use of the outputs."""
_NONCE: Final = 12
MAX_LABEL_HANDLES: Final = MAX_PAIR_HANDLES


def label_key(session_id: bytes, outputs: Sequence[bytes]) -> bytes:
    """The 32-byte label key of one decided pair from the OPRF outputs of its handles, in
    ascending handle order (spec §10.2)."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=session_id, info=LABEL_INFO)
    return hkdf.derive(b"".join(len(o).to_bytes(4, "big") + o for o in outputs))


OutputsOf = Callable[[tuple[bytes, ...]], Sequence[bytes]]
"""Given the handles a labelled release names (ascending), the OPRF outputs its key is derived
from, in order; raises ``KeyError`` when they are not what we may label or open."""


def per_handle(output_of: Callable[[bytes], bytes]) -> OutputsOf:
    """The outputs of a release labelled handle by handle (xlink-query-v1): ``output_of`` of
    each of its handles."""

    def outputs_of(handles: tuple[bytes, ...]) -> list[bytes]:
        return [output_of(h) for h in handles]

    return outputs_of


def per_pair(output_of: Callable[[tuple[bytes, ...]], bytes]) -> OutputsOf:
    """The outputs of a release labelled as one decided pair (release transfer v3): the one
    output ``output_of`` gives for the pair's handles."""

    def outputs_of(handles: tuple[bytes, ...]) -> list[bytes]:
        return [output_of(handles)]

    return outputs_of


def _aad(session_id: bytes, handles: Sequence[bytes]) -> bytes:
    return session_id + b"".join(handles)


def seal_labelled(
    data: bytes,
    handles: Sequence[bytes],
    *,
    session_id: bytes,
    outputs_of: OutputsOf,
    rng: RandomSource,
) -> bytes:
    """Encrypt ``data`` (a sealed release) under the label key of ``handles``; ``outputs_of``
    gives the OPRF outputs of the (ascending) handles under our own session key. Raises
    ``ValueError`` for no handle or more than 255."""
    ordered = tuple(sorted(handles))
    if not 1 <= len(ordered) <= MAX_LABEL_HANDLES:
        raise ValueError("a labelled release names 1..255 handles")
    key = label_key(session_id, outputs_of(ordered))
    nonce = rng(_NONCE)
    body = ChaCha20Poly1305(key).encrypt(nonce, data, _aad(session_id, ordered))
    return bytes([len(ordered)]) + b"".join(ordered) + nonce + body


def labelled_handles(frame: bytes) -> tuple[bytes, ...]:
    """The handles a labelled frame names, as far as it is long enough to name them (for the
    audit entry of a refused frame); never raises."""
    if not frame:
        return ()
    count = frame[0]
    return tuple(
        frame[1 + HANDLE_SIZE * i : 1 + HANDLE_SIZE * (i + 1)]
        for i in range(count)
        if len(frame) >= 1 + HANDLE_SIZE * (i + 1)
    )


def open_labelled(
    frame: bytes, *, session_id: bytes, outputs_of: OutputsOf
) -> tuple[tuple[bytes, ...], bytes]:
    """The handles a labelled frame names and the sealed release inside it.

    ``outputs_of`` gives the OPRF outputs, under the peer's key, of handles we may open a
    release for and raises ``KeyError`` for any others. Raises :class:`LabelError` for a
    malformed frame, :class:`LabelNotMatched` for handles ``outputs_of`` refuses, and
    :class:`~xlink.errors.DecryptionError` when the key derived from our outputs does not open
    it (we do not hold the tokens it was labelled with, or it was altered)."""
    if len(frame) < 1:
        raise LabelError("empty labelled release")
    h = frame[0]
    end = 1 + HANDLE_SIZE * h
    if h == 0 or len(frame) < end + _NONCE + 16:
        raise LabelError("labelled release too short")
    handles = tuple(frame[1 + HANDLE_SIZE * i : 1 + HANDLE_SIZE * (i + 1)] for i in range(h))
    if any(a >= b for a, b in itertools.pairwise(handles)):
        raise LabelError("labelled release handles not strictly ascending")
    try:
        key = label_key(session_id, outputs_of(handles))
    except KeyError:
        raise LabelNotMatched("labelled release names handles we did not decide") from None
    nonce, body = frame[end : end + _NONCE], frame[end + _NONCE :]
    try:
        data = ChaCha20Poly1305(key).decrypt(nonce, body, _aad(session_id, handles))
    except InvalidTag:
        raise DecryptionError() from None
    return handles, data
