"""Blinded evaluation in a prime-order group: the confirmation round and the label evaluation of
xlink-psi-v2 (spec: xlink-psi-v2 §4.4, §4.6, §6.9-§6.10, §7.5).

The requester hashes a token to a point ``Q`` (the PSI suite's hash to group, before it is
written as the element X25519 blinds), blinds it with a fresh scalar ``r`` and sends ``R = [r]Q``.
The evaluator answers ``[k]R`` for a secret scalar ``k``; the requester removes ``r`` (``[1/r]``),
so it learns ``[k]Q`` for the token it holds and nothing else, and the evaluator learns nothing
about ``Q`` (``R`` is uniform in the group). This is the blind-evaluate-unblind core of an
RFC 9497 OPRF. The group is the PSI ciphersuite's (:class:`OprfGroup`): :data:`EDWARDS25519`,
the prime-order subgroup of edwards25519 through PyNaCl's
``crypto_scalarmult_ed25519_noclamp`` (which checks its input: canonical, on the curve, in the
prime-order subgroup, not of small order), for ciphersuite 1; :data:`RISTRETTO255` through
rbcl's ``crypto_scalarmult_ristretto255`` (canonical encodings only, bit 255 refused as well),
for ciphersuite 2. Both have the same order ``l`` and share the scalar arithmetic.

Every function works on concatenated buffers of 32-byte points or scalars.
"""

from __future__ import annotations

import hashlib
from typing import Final

from nacl import bindings as _sodium
from nacl.exceptions import RuntimeError as _SodiumRuntimeError

from xlink.crypto.rand import RandomSource
from xlink.errors import InvalidElement

__all__ = [
    "EDWARDS25519",
    "GROUP_ORDER",
    "POINT_SIZE",
    "RISTRETTO255",
    "SCALAR_SIZE",
    "OprfGroup",
    "OprfScalar",
    "blind_points",
    "blind_scalar",
    "evaluate_points",
    "group_named",
    "scalar_product_with_inverses",
    "unblind_point",
]

POINT_SIZE: Final = 32
SCALAR_SIZE: Final = 32


class OprfScalar:
    """A secret scalar modulo the group order, never zero. Not printable, not picklable."""

    __slots__ = ("_k",)

    def __init__(self, scalar: bytes) -> None:
        if len(scalar) != SCALAR_SIZE or scalar == bytes(SCALAR_SIZE):
            raise ValueError("a scalar is 32 bytes and not zero")
        self._k = scalar

    @classmethod
    def generate(cls, rng: RandomSource) -> OprfScalar:
        """A uniform non-zero scalar: 64 random bytes reduced modulo ``l`` (one draw)."""
        scalar = _sodium.crypto_core_ed25519_scalar_reduce(rng(64))
        if scalar == bytes(SCALAR_SIZE):  # probability 2**-252
            scalar = (1).to_bytes(SCALAR_SIZE, "little")
        return cls(scalar)

    def divided_by(self, scalars: list[bytes]) -> list[bytes]:
        """``self / s`` modulo ``l`` for each non-zero scalar ``s`` (one inversion in all)."""
        return scalar_product_with_inverses(self._k, scalars)

    def multiply(self, point: bytes, group: OprfGroup) -> bytes:
        """``[k]P`` for a point this party computed itself (not checked beyond the group's own
        refusal of an invalid input)."""
        return group.multiply(self._k, point, 0)

    def __repr__(self) -> str:
        return "OprfScalar(<secret>)"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("OprfScalar cannot be pickled")


_EDWARDS: Final = "edwards25519"
_RISTRETTO: Final = "ristretto255"
_GROUP_NAMES: Final = (_EDWARDS, _RISTRETTO)


class OprfGroup:
    """One prime-order group of order :data:`GROUP_ORDER`, 32-byte canonical encodings: one of
    :data:`EDWARDS25519` and :data:`RISTRETTO255` (a copy or an unpickled group is the same
    object)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        if name not in _GROUP_NAMES:
            raise ValueError(f"unknown group {name!r}")
        self.name = name

    def __repr__(self) -> str:
        return f"OprfGroup({self.name!r})"

    def __reduce__(self) -> str | tuple[object, ...]:
        return (group_named, (self.name,))

    def multiply(self, scalar: bytes, point: bytes, index: int) -> bytes:
        """``[scalar]P``. Raises :class:`InvalidElement` (at ``index``) when ``P`` is not the
        canonical encoding of a group element other than the identity, or when the product is
        the identity. ``point`` may be any bytes-like object (a slice of a received frame)."""
        point = bytes(point)  # the bindings take bytes only: a memoryview would be a TypeError
        if len(point) != POINT_SIZE:
            raise InvalidElement(index, "truncated point")
        if self.name == _EDWARDS:
            # libsodium checks the input itself (canonical, on the curve, not of small order,
            # in the prime-order subgroup) and refuses an identity result; the check is only
            # repeated on failure, to name the reason.
            try:
                return bytes(_sodium.crypto_scalarmult_ed25519_noclamp(scalar, point))
            except _SodiumRuntimeError:
                if not _sodium.crypto_core_ed25519_is_valid_point(point):
                    raise InvalidElement(index, "not a point of the prime-order subgroup") from None
                raise InvalidElement(index, "identity", identity=True) from None
        from xlink.crypto import _rbcl  # imported on first use: it loads a second libsodium

        # libsodium 1.0.18 ignores bit 255 when it decodes ristretto255: refuse it here. The
        # multiplication decodes the point itself and refuses an invalid one or an identity
        # product; the check is only repeated on failure, to name the reason.
        if point[31] & 0x80:
            raise InvalidElement(index, "not a canonical ristretto255 encoding")
        try:
            return _rbcl.scalarmult(scalar, point)
        except RuntimeError:
            if not _rbcl.is_valid_point(point):
                raise InvalidElement(index, "not a canonical ristretto255 encoding") from None
            raise InvalidElement(index, "identity", identity=True) from None


EDWARDS25519: Final = OprfGroup(_EDWARDS)
"""The prime-order subgroup of edwards25519, points as RFC 8032 encodings (ciphersuite 1)."""
RISTRETTO255: Final = OprfGroup(_RISTRETTO)
"""ristretto255 (RFC 9496), elements as their canonical encodings (ciphersuite 2)."""


def group_named(name: str) -> OprfGroup:
    """The group called ``name``. Raises ``KeyError`` for another name."""
    return {_EDWARDS: EDWARDS25519, _RISTRETTO: RISTRETTO255}[name]


GROUP_ORDER: Final = 2**252 + 27742317777372353535851937790883648493


def _to_scalar(value: int) -> bytes:
    return value.to_bytes(SCALAR_SIZE, "little")


def blind_scalar(seed: bytes, label: bytes, index: int) -> bytes:
    """The ``index``-th blinding scalar derived from a secret per-session ``seed``:
    ``SHA-512(lp(label) || seed || u64(index))`` reduced modulo the group order (1 if that is
    0). A PRF of a fresh secret, so the scalars are uniform and independent of everything the
    peer sees, and can be derived again instead of stored (spec xlink-psi-v2 §4.4)."""
    digest = hashlib.sha512(
        len(label).to_bytes(4, "big") + label + seed + index.to_bytes(8, "big")
    ).digest()
    value = int.from_bytes(digest, "little") % GROUP_ORDER
    return _to_scalar(value or 1)


def scalar_product_with_inverses(factor: bytes, scalars: list[bytes]) -> list[bytes]:
    """``factor / s`` modulo the group order for every non-zero scalar ``s``, with one modular
    inversion for the whole list (Montgomery's trick)."""
    values = [int.from_bytes(x, "little") % GROUP_ORDER for x in scalars]
    prefix = []
    acc = 1
    for v in values:
        prefix.append(acc)
        acc = acc * v % GROUP_ORDER
    inv = pow(acc, -1, GROUP_ORDER)
    f = int.from_bytes(factor, "little") % GROUP_ORDER
    out = [b""] * len(values)
    for i in range(len(values) - 1, -1, -1):
        out[i] = _to_scalar(f * inv * prefix[i] % GROUP_ORDER)
        inv = inv * values[i] % GROUP_ORDER
    return out


def blind_points(points: bytes, scalars: list[bytes], group: OprfGroup) -> bytes:
    """``[r_i]Q_i`` for every point of ``points`` and scalar of ``scalars``."""
    return b"".join(
        group.multiply(r, points[POINT_SIZE * i : POINT_SIZE * (i + 1)], i)
        for i, r in enumerate(scalars)
    )


def evaluate_points(keys: tuple[OprfScalar, ...], points: bytes, group: OprfGroup) -> bytes:
    """For every received point ``R`` (in order), ``[k]R`` for each key of ``keys``,
    concatenated per point. Raises :class:`InvalidElement` for the first point that is not a
    canonical point of the prime-order subgroup other than the identity."""
    if len(points) % POINT_SIZE:
        raise InvalidElement(len(points) // POINT_SIZE, "truncated point")
    out = bytearray()
    for i in range(len(points) // POINT_SIZE):
        point = points[POINT_SIZE * i : POINT_SIZE * (i + 1)]
        for key in keys:
            out += group.multiply(key._k, point, i)
    return bytes(out)


def unblind_point(scalar: bytes, point: bytes, group: OprfGroup, index: int = 0) -> bytes:
    """``[scalar]P`` for a received point ``P``; raises :class:`InvalidElement` if ``P`` is not a
    valid point of the group."""
    return group.multiply(scalar, point, index)
