"""PSI ciphersuites: hash to a prime-order group, blind with a secret scalar
(spec: xlink-psi-v2 §4).

Two suites; both blind with X25519 and differ in how a token becomes an element, and so in the
group their confirmation round and label evaluation work in (spec §4.4, §4.6, §7.5).

Suite 1, ``XLINK-PSI-X25519-SHA512-ELL2RO`` (the only one in xlink-psi-v1):

- **Hash to group.** ``expand_message_xmd`` with SHA-512 (RFC 9380 §5.3.1) turns the per-MOU
  domain label and a 32-byte match token into 64 uniform bytes ``r0 || r1``. Each half goes
  through libsodium's ``crypto_core_ed25519_from_uniform`` (Elligator 2 to edwards25519, then the
  cofactor cleared) and the two points are added — the structure of RFC 9380's random-oracle
  ``hash_to_curve`` (two maps and an addition, indifferentiable from a random oracle), though not
  the RFC's own edwards25519 suite (spec §4.1 gives the exact steps). The result is in the
  prime-order subgroup. The point is then written as its Montgomery u-coordinate
  ``u = (1 + y) / (1 - y)`` (RFC 7748 §4.1) so that X25519 can act on it.
- **Blind.** X25519 (RFC 7748 §5) with a per-session 32-byte scalar. X25519 clamps the scalar:
  the result is ``[8k]P`` with ``k`` secret, so the cofactor is cleared on every input and
  scalar multiplication commutes (``X25519(a, X25519(b, P)) == X25519(b, X25519(a, P))``), which
  is all DH-PSI needs. X25519 is twist-secure, so an input on the quadratic twist reveals nothing
  useful about the scalar; inputs of small order give the all-zero output and are rejected.
- **Validation of received elements.** An element must be 32 bytes, have its top bit clear and
  encode an integer below ``p = 2**255 - 19`` (canonical), must not be ``u = 0``, and must not
  blind to the all-zero output (which catches every small-order point).

Suite 2, ``XLINK-PSI-X25519-SHA512-R255`` (xlink-psi-v2 §4.6, the default):

- **Hash to group.** The same ``expand_message_xmd`` output goes through ristretto255's one-way
  map (RFC 9496 §4.3.4, libsodium's ``crypto_core_ristretto255_from_hash``: two Elligator maps
  and an addition in one C call), giving the element's canonical encoding ``s``. The element
  is ``u = s² mod p``: a point of Curve25519 that differs from the ristretto255 element's
  prime-order point only by a point of order dividing 8, which X25519's clamped scalar kills.
  About a quarter of suite 1's cost per token, with the same random-oracle structure.
- **Blind, validate:** as suite 1. Its confirmation round and labels work in ristretto255.

X25519 cannot unblind (no inverse of a clamped scalar), so these suites serve batch PSI only; the
real-time OPRF query mode has its own suite (:mod:`xlink.crypto.oprf9497`).

The functions work on *concatenated* element buffers (``n * 32`` bytes) so that a million
elements are one ``bytes`` object, not a million.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Final

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from nacl import bindings as _sodium

from xlink.crypto.oprf import EDWARDS25519, GROUP_ORDER, RISTRETTO255, OprfGroup
from xlink.crypto.rand import RandomSource
from xlink.errors import InvalidElement

__all__ = [
    "DEFAULT_SUITE",
    "ELEMENT_SIZE",
    "SMALL_ORDER_U",
    "SUITES",
    "SUITE_R255",
    "SUITE_X25519",
    "BlindingKey",
    "Ciphersuite",
    "InvalidElement",
    "check_elements",
    "edwards_to_u",
    "expand_message_xmd_sha512",
    "get_suite",
]

ELEMENT_SIZE: Final = 32
_P: Final = 2**255 - 19
_MASK255: Final = (1 << 255) - 1


def _u(value: int) -> bytes:
    return value.to_bytes(32, "little")


SMALL_ORDER_U: Final = (
    _u(0),
    _u(1),
    _u(325606250916557431795983626356110631294008115727848805560023387167927233504),
    _u(39382357235489614581723060781553021112529911719440698176882885853963445705823),
    _u(_P - 1),
    _u(_P),
    _u(_P + 1),
)
"""The u-coordinates of the points of small order (orders 1, 2, 4 and 8) on Curve25519 and
their non-canonical aliases ``p`` and ``p + 1`` (Bernstein's list, as in libsodium's
blocklist). X25519 maps every one of them to the all-zero output."""

_SMALL_ORDER_CANONICAL: Final = np.frombuffer(b"".join(SMALL_ORDER_U[:5]), dtype=np.uint8).reshape(
    5, 32
)


def expand_message_xmd_sha512(msg: bytes, dst: bytes, len_in_bytes: int) -> bytes:
    """RFC 9380 §5.3.1 ``expand_message_xmd`` with SHA-512 (b_in_bytes 64, s_in_bytes 128)."""
    if len(dst) > 255:
        raise ValueError("DST longer than 255 bytes")
    ell = -(-len_in_bytes // 64)
    if ell > 255 or len_in_bytes > 65535:
        raise ValueError("len_in_bytes too large")
    dst_prime = dst + bytes([len(dst)])
    b0 = hashlib.sha512(
        b"\x00" * 128 + msg + len_in_bytes.to_bytes(2, "big") + b"\x00" + dst_prime
    ).digest()
    b_prev = hashlib.sha512(b0 + b"\x01" + dst_prime).digest()
    out = [b_prev]
    b0_int = int.from_bytes(b0, "big")
    for i in range(2, ell + 1):
        mixed = (b0_int ^ int.from_bytes(b_prev, "big")).to_bytes(64, "big")
        b_prev = hashlib.sha512(mixed + bytes([i]) + dst_prime).digest()
        out.append(b_prev)
    return b"".join(out)[:len_in_bytes]


class BlindingKey:
    """A per-session secret scalar. Never serialised, never printed, never compared."""

    __slots__ = ("_key",)

    def __init__(self, secret: bytes) -> None:
        if len(secret) != 32:
            raise ValueError("a blinding scalar is 32 bytes")
        self._key = X25519PrivateKey.from_private_bytes(secret)

    @classmethod
    def generate(cls, rng: RandomSource) -> BlindingKey:
        return cls(rng(32))

    def group_scalar(self) -> bytes:
        """The scalar X25519 multiplies by (RFC 7748 clamping) reduced modulo the group order
        ``l``: on the prime-order subgroup ``X25519(k, u(P)) == u([group_scalar]P)``. The
        confirmation round evaluates the PSI key in the suite's group with it (spec §4.4,
        §4.6)."""
        clamped = bytearray(self._key.private_bytes_raw())
        clamped[0] &= 248
        clamped[31] &= 127
        clamped[31] |= 64
        return bytes(_sodium.crypto_core_ed25519_scalar_reduce(bytes(clamped) + bytes(32)))

    def __repr__(self) -> str:
        return "BlindingKey(<secret>)"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("BlindingKey cannot be pickled")


class Ciphersuite:
    """One PSI ciphersuite: its wire id, name, the group of its confirmation round, and batch
    operations on element buffers. This class is suite 1; :class:`_Ristretto255Suite` is
    suite 2."""

    __slots__ = ("group", "name", "suite_id")

    def __init__(self, suite_id: int, name: str, group: OprfGroup = EDWARDS25519) -> None:
        self.suite_id = suite_id
        self.name = name
        self.group = group

    def __repr__(self) -> str:
        return f"Ciphersuite({self.suite_id}, {self.name!r})"

    def hash_to_group(self, dst: bytes, tokens: bytes, token_size: int = 32) -> bytes:
        """Hash every ``token_size``-byte token in ``tokens`` to an element; returns the buffer.

        ``dst`` is the domain separation tag (per MOU, spec §4.1). Raises ``ValueError`` only for
        a malformed buffer; a token hashing to the identity has probability ~2**-252 and raises
        ``ArithmeticError`` (spec §4.1 says to abort the session).
        """
        points = self.hash_to_points(dst, tokens, token_size)
        ys = [
            int.from_bytes(points[i : i + 32], "little") & _MASK255
            for i in range(0, len(points), 32)
        ]
        return _edwards_y_to_montgomery_u(ys)

    def hash_to_points(self, dst: bytes, tokens: bytes, token_size: int = 32) -> bytes:
        """The points of :attr:`group` (32-byte encodings) behind the elements
        :meth:`hash_to_group` gives: the inputs of the confirmation round and of the label
        evaluation (spec §4.1 step 3, §4.4, §4.6)."""
        n = _token_count(tokens, token_size)
        from_uniform = _sodium.crypto_core_ed25519_from_uniform
        add = _sodium.crypto_core_ed25519_add
        out = bytearray()
        for i in range(n):
            uniform = expand_message_xmd_sha512(
                tokens[i * token_size : (i + 1) * token_size], dst, 64
            )
            out += add(from_uniform(uniform[:32]), from_uniform(uniform[32:]))
        return bytes(out)

    def requester_scalar(self, group_scalar: bytes) -> bytes:
        """The scalar the confirmation requester divides by its blinds before
        :meth:`confirmed_values` (spec §4.4 Check): its own :meth:`BlindingKey.group_scalar`."""
        return group_scalar

    def confirmed_values(self, points: bytes) -> bytes:
        """The doubly-blinded values (32-byte u-coordinates) of the requester's unblinded
        answers ``[requester_scalar / r]Y`` (spec §4.4 Check): here the Montgomery
        u-coordinates of the edwards points, with one field inversion for all."""
        return edwards_to_u(points)

    def blind(self, key: BlindingKey, elements: bytes) -> bytes:
        """Return ``X25519(key, e)`` for every element ``e`` of the buffer, in order.

        Raises :class:`InvalidElement` for the first element that fails validation (spec §4.3).
        """
        if len(elements) % ELEMENT_SIZE:
            raise InvalidElement(len(elements) // ELEMENT_SIZE, "truncated element")
        exchange: Callable[[X25519PublicKey], bytes] = key._key.exchange
        from_bytes = X25519PublicKey.from_public_bytes
        out = bytearray()
        for i in range(0, len(elements), ELEMENT_SIZE):
            element = elements[i : i + ELEMENT_SIZE]
            if element[31] & 0x80 or int.from_bytes(element, "little") >= _P:
                raise InvalidElement(i // ELEMENT_SIZE, "non-canonical encoding")
            try:
                out += exchange(from_bytes(element))
            except ValueError:
                # OpenSSL refuses an all-zero shared secret: the input has small order.
                raise InvalidElement(
                    i // ELEMENT_SIZE, "identity or small-order element", identity=True
                ) from None
        return bytes(out)


def check_elements(elements: bytes) -> None:
    """Validate received elements that will only be compared, not multiplied (spec §4.3).

    Raises :class:`InvalidElement` for the first element, in buffer order, that is not 32 bytes,
    is not canonical (top bit set, or ``u >= p``: ``INVALID_ELEMENT``) or is of small order
    (``identity=True``). Vectorised: no Python work per element.
    """
    n, rest = divmod(len(elements), ELEMENT_SIZE)
    if rest:
        raise InvalidElement(n, "truncated element")
    if n == 0:
        return
    rows = np.frombuffer(elements, dtype=np.uint8).reshape(n, ELEMENT_SIZE)
    top = rows[:, 31]
    non_canonical = (top & 0x80) != 0
    non_canonical |= (top == 0x7F) & np.all(rows[:, 1:31] == 0xFF, axis=1) & (rows[:, 0] >= 0xED)
    small = np.zeros(n, dtype=np.bool_)
    for value in _SMALL_ORDER_CANONICAL:
        small |= np.all(rows == value, axis=1)
    bad = np.nonzero(non_canonical | small)[0]
    if len(bad):
        i = int(bad[0])
        if non_canonical[i]:
            raise InvalidElement(i, "non-canonical encoding")
        raise InvalidElement(i, "identity or small-order element", identity=True)


def edwards_to_u(points: bytes) -> bytes:
    """The Montgomery u-coordinates (RFC 7748 §4.1) of concatenated edwards25519 point
    encodings, with one field inversion for all of them. The points are not checked: use it on
    points libsodium has produced (the confirmation round's unblinded answers)."""
    ys = [
        int.from_bytes(points[i : i + 32], "little") & _MASK255 for i in range(0, len(points), 32)
    ]
    return _edwards_y_to_montgomery_u(ys)


def _edwards_y_to_montgomery_u(ys: list[int]) -> bytes:
    """Map edwards25519 y-coordinates to Montgomery u = (1+y)/(1-y), with one inversion in all
    (Montgomery's batch-inversion trick: three multiplications per element instead of one
    255-bit exponentiation)."""
    n = len(ys)
    if n == 0:
        return b""
    dens = [(1 - y) % _P for y in ys]
    prefix = [0] * n
    acc = 1
    for i, d in enumerate(dens):
        if d == 0:  # y == 1: the identity. Unreachable except with probability ~2**-252.
            raise ArithmeticError("hash to group produced the identity")
        prefix[i] = acc
        acc = acc * d % _P
    inv = pow(acc, _P - 2, _P)
    us: list[bytes] = [b""] * n
    for i in range(n - 1, -1, -1):
        d_inv = inv * prefix[i] % _P
        inv = inv * dens[i] % _P
        us[i] = ((1 + ys[i]) * d_inv % _P).to_bytes(32, "little")
    return b"".join(us)


def _token_count(tokens: bytes, token_size: int) -> int:
    if len(tokens) % token_size:
        raise ValueError("token buffer is not a whole number of tokens")
    return len(tokens) // token_size


_X25519_SCALAR_2_254: Final = bytes(32)
"""The X25519 private key whose clamped integer is ``2**254`` (all bits cleared but bit 254)."""
_INV_2_254: Final = pow(2**254, -1, GROUP_ORDER)


class _Ristretto255Suite(Ciphersuite):
    """Suite 2 (spec §4.6): ristretto255's one-way map, the element ``u = s² mod p`` of the
    encoding ``s``, the confirmation round in ristretto255."""

    __slots__ = ()

    def hash_to_group(self, dst: bytes, tokens: bytes, token_size: int = 32) -> bytes:
        points = self.hash_to_points(dst, tokens, token_size)
        out = bytearray()
        for i in range(0, len(points), 32):
            s = int.from_bytes(points[i : i + 32], "little")
            if s == 0:  # the identity: probability ~2**-252
                raise ArithmeticError("hash to group produced the identity")
            out += (s * s % _P).to_bytes(32, "little")
        return bytes(out)

    def hash_to_points(self, dst: bytes, tokens: bytes, token_size: int = 32) -> bytes:
        from xlink.crypto import _rbcl  # imported on first use: it loads a second libsodium

        n = _token_count(tokens, token_size)
        from_hash = _rbcl.from_hash
        out = bytearray()
        for i in range(n):
            out += from_hash(
                expand_message_xmd_sha512(tokens[i * token_size : (i + 1) * token_size], dst, 64)
            )
        return bytes(out)

    def requester_scalar(self, group_scalar: bytes) -> bytes:
        """``group_scalar / 2**254`` modulo ``l``: :meth:`confirmed_values` multiplies by
        ``2**254`` again through X25519 (spec §4.6)."""
        value = int.from_bytes(group_scalar, "little") * _INV_2_254 % GROUP_ORDER
        return value.to_bytes(32, "little")

    def confirmed_values(self, points: bytes) -> bytes:
        """``X25519(K, s²)`` for each ristretto255 encoding ``s``, where ``K`` clamps to
        ``2**254``: the u-coordinate of ``[2**254]`` times the element's prime-order point,
        its torsion cleared (spec §4.6)."""
        exchange = X25519PrivateKey.from_private_bytes(_X25519_SCALAR_2_254).exchange
        from_bytes = X25519PublicKey.from_public_bytes
        out = bytearray()
        for i in range(0, len(points), 32):
            s = int.from_bytes(points[i : i + 32], "little")
            out += exchange(from_bytes((s * s % _P).to_bytes(32, "little")))
        return bytes(out)


SUITE_X25519: Final = Ciphersuite(1, "XLINK-PSI-X25519-SHA512-ELL2RO")
SUITE_R255: Final = _Ristretto255Suite(2, "XLINK-PSI-X25519-SHA512-R255", RISTRETTO255)
DEFAULT_SUITE: Final = SUITE_R255
"""The suite an exchange proposes unless told otherwise (spec §4.6)."""

SUITES: Final = (SUITE_X25519, SUITE_R255)
"""Every suite this implementation speaks, by wire id."""

_SUITES: Final = {suite.suite_id: suite for suite in SUITES}


def get_suite(suite_id: int) -> Ciphersuite:
    """The ciphersuite with this wire id. Raises ``KeyError`` for an unknown id."""
    return _SUITES[suite_id]
