"""Labelled releases: a sealed release in transit opens only for a partner that holds the
tokens that decided it (spec: xlink-release-v1 §10.2; xlink-psi-v2 §7.5).

After the decided-pairs digests agree, the release transfer's label evaluation gives both sides,
for every token of a decided pair, the same OPRF output under the originator's session key
(xlink-psi-v2 §7.5): the originator computes it itself, the recipient obtains it through one
blinded evaluation that needs the token. The label key of a decided pair is HKDF-SHA256 over
those outputs (sorted by handle), salted with the session id; the sealed release is encrypted
under it with ChaCha20-Poly1305, the pair's handles as associated data. A partner that does not
hold every token of the pair cannot derive the key, so even a release sent by mistake (or
obtained by faking a match) does not open.

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
from xlink.protocol.limits import HANDLE_SIZE

__all__ = [
    "LABEL_INFO",
    "LabelError",
    "LabelNotMatched",
    "label_key",
    "labelled_handles",
    "open_labelled",
    "seal_labelled",
]

LABEL_INFO: Final = b"xlink-release-v1/label-key"
"""HKDF ``info``: domain separation of the label key from every other use of the outputs."""
_NONCE: Final = 12
MAX_LABEL_HANDLES: Final = 255


def label_key(session_id: bytes, outputs: Sequence[bytes]) -> bytes:
    """The 32-byte label key of one decided pair from the OPRF outputs of its handles, in
    ascending handle order (spec §10.2)."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=session_id, info=LABEL_INFO)
    return hkdf.derive(b"".join(len(o).to_bytes(4, "big") + o for o in outputs))


def _aad(session_id: bytes, handles: Sequence[bytes]) -> bytes:
    return session_id + b"".join(handles)


def seal_labelled(
    data: bytes,
    handles: Sequence[bytes],
    *,
    session_id: bytes,
    output_of: Callable[[bytes], bytes],
    rng: RandomSource,
) -> bytes:
    """Encrypt ``data`` (a sealed release) under the label key of ``handles``; ``output_of``
    gives the OPRF output of a handle under our own session key. Raises ``ValueError`` for no
    handle or more than 255."""
    ordered = sorted(handles)
    if not 1 <= len(ordered) <= MAX_LABEL_HANDLES:
        raise ValueError("a labelled release names 1..255 handles")
    key = label_key(session_id, [output_of(h) for h in ordered])
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
    frame: bytes, *, session_id: bytes, output_of: Callable[[bytes], bytes]
) -> tuple[tuple[bytes, ...], bytes]:
    """The handles a labelled frame names and the sealed release inside it.

    ``output_of`` gives the OPRF output of one of our matched handles under the peer's key and
    raises ``KeyError`` for any other. Raises :class:`LabelError` for a malformed frame,
    :class:`LabelNotMatched` for a handle we did not match, and
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
        key = label_key(session_id, [output_of(x) for x in handles])
    except KeyError:
        raise LabelNotMatched("labelled release names a handle we did not match") from None
    nonce, body = frame[end : end + _NONCE], frame[end + _NONCE :]
    try:
        data = ChaCha20Poly1305(key).decrypt(nonce, body, _aad(session_id, handles))
    except InvalidTag:
        raise DecryptionError() from None
    return handles, data
