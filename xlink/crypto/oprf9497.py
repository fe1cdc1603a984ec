"""RFC 9497 OPRF ("OPRFV1"), mode 0x00 (OPRF: not verifiable, not partially oblivious), with
the ciphersuite ristretto255-SHA512, on libsodium's ristretto255 (bundled by ``rbcl``).

The client hashes each private input to the group and blinds it with a fresh scalar
(:func:`blind`); the key holder multiplies each blinded element by its secret scalar
(:meth:`OprfKey.blind_evaluate`); the client removes its blinds and hashes the result with the
input (:func:`finalize`), obtaining the 64-byte PRF output without the key holder learning the
input, and without the client learning the key. The key holder computes the same output for an
input it holds itself with :meth:`OprfKey.evaluate`. Sections of RFC 9497 followed here: §2.1
(prime-order group API), §3.1-§3.2 (context string, ``DeriveKeyPair``), §3.3.1 (the OPRF
protocol: ``Blind``, ``BlindEvaluate``, ``Finalize``, ``Evaluate``), §4.1 (ristretto255-SHA512:
``HashToGroup`` is RFC 9380 ``expand_message_xmd`` with SHA-512 to 64 bytes, then ristretto255's
one-way map, libsodium's ``crypto_core_ristretto255_from_hash``; ``HashToScalar`` is
``expand_message_xmd`` to 64 bytes read little-endian and reduced modulo the group order ``L``;
elements and scalars are 32 bytes) and §4.7 (random scalars: 64 random bytes reduced modulo
``L``, drawn again if zero). The published test vectors of Appendix A.1.1 are in
tests/crypto/test_oprf9497.py.

**Validation.** Every element received from the peer (the blinded elements the key holder
evaluates, the evaluated elements the client unblinds) is checked before it is used: its top
bit must be clear, it must not be the identity (32 zero bytes), and
``crypto_core_ristretto255_is_valid_point`` must accept it. A failure raises
:class:`~xlink.errors.InvalidElement` with the element's position in the buffer
(``identity=True`` for the identity), as does a buffer that is not a whole number of elements.
ristretto255 encodings are canonical (RFC 9496 §4.3.1): every element of the prime-order group
has exactly one 32-byte encoding, decoding rejects every other string (a value ``>= p``, a
negative ``s``, no square root), and the group has no cofactor and no small-order elements, so
once decoded nothing else needs checking. Two checks are ours because libsodium's are not
enough: ``is_valid_point`` accepts the identity, and the libsodium that rbcl bundles (1.0.18)
ignores the top bit when it decodes, so without the first check ``e`` and ``e`` with bit 255
set would both be accepted as the same element (an alias of the identity included). An input
whose ``HashToGroup`` is the identity (the RFC's ``InvalidInputError``; probability about
``2**-252``) raises ``ValueError``.

Messages name positions and reasons only, never an input, a scalar or an element. The secret
scalars (the key, the blinds) stay inside :class:`OprfKey` and :class:`BlindState`: neither
prints, pickles or copies them. Buffers are concatenations (``n * 32`` bytes), as in the rest
of :mod:`xlink.crypto`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Final

from xlink.crypto import _rbcl
from xlink.crypto.oprf import GROUP_ORDER, scalar_product_with_inverses
from xlink.crypto.rand import RandomSource
from xlink.crypto.suite import expand_message_xmd_sha512
from xlink.errors import InvalidElement

__all__ = [
    "CONTEXT_STRING",
    "DERIVE_KEY_PAIR_DST",
    "ELEMENT_SIZE",
    "HASH_TO_GROUP_DST",
    "HASH_TO_SCALAR_DST",
    "MAX_INPUT_SIZE",
    "MODE_OPRF",
    "OUTPUT_SIZE",
    "SCALAR_SIZE",
    "SEED_SIZE",
    "SUITE",
    "BlindState",
    "OprfKey",
    "blind",
    "blind_with",
    "finalize",
    "hash_to_group",
    "hash_to_scalar",
]

SUITE: Final = "ristretto255-SHA512"
MODE_OPRF: Final = 0x00
CONTEXT_STRING: Final = b"OPRFV1-" + bytes([MODE_OPRF]) + b"-" + SUITE.encode("ascii")
"""RFC 9497 §3.1: ``"OPRFV1-" || I2OSP(mode, 1) || "-" || identifier``."""
HASH_TO_GROUP_DST: Final = b"HashToGroup-" + CONTEXT_STRING
HASH_TO_SCALAR_DST: Final = b"HashToScalar-" + CONTEXT_STRING
DERIVE_KEY_PAIR_DST: Final = b"DeriveKeyPair" + CONTEXT_STRING

ELEMENT_SIZE: Final = 32
"""``Ne``: a serialized ristretto255 element."""
SCALAR_SIZE: Final = 32
"""``Ns``: a serialized scalar, little-endian, below ``L``."""
OUTPUT_SIZE: Final = 64
"""``Nh``: the PRF output, one SHA-512 digest."""
SEED_SIZE: Final = 32
"""The seed of :meth:`OprfKey.derive` (``Ns`` bytes, RFC 9497 §3.2.1)."""
MAX_INPUT_SIZE: Final = 0xFFFF
"""The longest input: ``Finalize`` writes the length in two bytes."""

_IDENTITY: Final = bytes(ELEMENT_SIZE)
_ZERO_SCALAR: Final = bytes(SCALAR_SIZE)
_ONE_SCALAR: Final = (1).to_bytes(SCALAR_SIZE, "little")
_ELEMENT_LENGTH_PREFIX: Final = ELEMENT_SIZE.to_bytes(2, "big")
_FINALIZE_LABEL: Final = b"Finalize"
_UNIFORM_SIZE: Final = 64

_from_hash: Final = _rbcl.from_hash
_is_valid_point: Final = _rbcl.is_valid_point
_scalar_reduce: Final = _rbcl.scalar_reduce
_scalarmult: Final = _rbcl.scalarmult


# -- the group (RFC 9497 §2.1, §4.1) ----------------------------------------------------------


def hash_to_group(data: bytes) -> bytes:
    """``HashToGroup``: the serialized ristretto255 element for ``data`` (RFC 9497 §4.1).

    The result may be the identity (32 zero bytes) with probability about ``2**-252``; the
    protocol functions refuse such an input."""
    return _from_hash(expand_message_xmd_sha512(data, HASH_TO_GROUP_DST, _UNIFORM_SIZE))


def hash_to_scalar(data: bytes, dst: bytes | None = None) -> bytes:
    """``HashToScalar``: a 32-byte little-endian scalar modulo ``L`` (RFC 9497 §4.1), with the
    DST ``"HashToScalar-" || contextString`` unless another is given."""
    dst = HASH_TO_SCALAR_DST if dst is None else dst
    return _scalar_reduce(expand_message_xmd_sha512(data, dst, _UNIFORM_SIZE))


def _random_scalar(rng: RandomSource) -> bytes:
    """``RandomScalar``: 64 random bytes reduced modulo ``L``, drawn again if zero."""
    while True:
        scalar = _scalar_reduce(rng(_UNIFORM_SIZE))
        if scalar != _ZERO_SCALAR:
            return scalar


def _finalize_hash(data: bytes, element: bytes) -> bytes:
    """RFC 9497 §3.3.1 ``Finalize``/``Evaluate``: ``Hash(I2OSP(len(input), 2) || input ||
    I2OSP(len(element), 2) || element || "Finalize")``."""
    return hashlib.sha512(
        len(data).to_bytes(2, "big") + data + _ELEMENT_LENGTH_PREFIX + element + _FINALIZE_LABEL
    ).digest()


def _check_inputs(inputs: Sequence[bytes]) -> tuple[bytes, ...]:
    checked = tuple(inputs)
    for i, data in enumerate(checked):
        if not isinstance(data, bytes):
            raise TypeError(f"input {i} is not bytes")
        if len(data) > MAX_INPUT_SIZE:
            raise ValueError(f"input {i} is longer than {MAX_INPUT_SIZE} bytes")
    return checked


def _element_count(buffer: bytes) -> int:
    n, rest = divmod(len(buffer), ELEMENT_SIZE)
    if rest:
        raise InvalidElement(n, "truncated element")
    return n


def _check_element(index: int, element: bytes) -> None:
    """Raise :class:`InvalidElement` unless ``element`` is the canonical encoding of an element
    other than the identity (the module docstring says why each check is needed)."""
    if element[31] & 0x80 or not _is_valid_point(element):
        raise InvalidElement(index, "not a canonical ristretto255 encoding")
    if element == _IDENTITY:
        raise InvalidElement(index, "identity", identity=True)


# -- the key holder (RFC 9497 §3.2, §3.3.1 BlindEvaluate and Evaluate) ------------------------


class OprfKey:
    """The OPRF's secret key: a non-zero scalar modulo ``L``.

    Made by :meth:`derive` or :meth:`generate`. Not printable, not picklable, not copyable, not
    compared (equality is identity); the scalar is never returned.
    """

    __slots__ = ("_k",)

    def __init__(self, scalar: bytes) -> None:
        """Wrap a canonical non-zero scalar. Prefer :meth:`derive` or :meth:`generate`."""
        if (
            not isinstance(scalar, bytes)
            or len(scalar) != SCALAR_SIZE
            or scalar == _ZERO_SCALAR
            or int.from_bytes(scalar, "little") >= GROUP_ORDER
        ):
            raise ValueError("an OPRF key is a canonical non-zero 32-byte scalar")
        self._k = scalar

    @classmethod
    def derive(cls, seed: bytes, info: bytes) -> OprfKey:
        """RFC 9497 §3.2.1 ``DeriveKeyPair`` (the private half): the key for a 32-byte ``seed``
        (which must be secret and uniformly random) and public ``info``.

        Raises ``ValueError`` for a seed that is not 32 bytes or an ``info`` longer than 65535
        bytes, and (the RFC's ``DeriveKeyPairError``) if 256 counters all hash to zero, which
        does not happen in practice."""
        if len(seed) != SEED_SIZE:
            raise ValueError(f"the seed is {SEED_SIZE} bytes")
        if len(info) > MAX_INPUT_SIZE:
            raise ValueError(f"info is longer than {MAX_INPUT_SIZE} bytes")
        derive_input = bytes(seed) + len(info).to_bytes(2, "big") + bytes(info)
        for counter in range(256):
            scalar = hash_to_scalar(derive_input + bytes([counter]), DERIVE_KEY_PAIR_DST)
            if scalar != _ZERO_SCALAR:
                return cls(scalar)
        raise ValueError("DeriveKeyPairError: every counter hashed to the zero scalar")

    @classmethod
    def generate(cls, rng: RandomSource) -> OprfKey:
        """A uniform non-zero key (RFC 9497 ``RandomScalar``): 64 bytes of ``rng`` reduced
        modulo ``L``, drawn again if zero."""
        return cls(_random_scalar(rng))

    def blind_evaluate(self, blinded: bytes) -> bytes:
        """RFC 9497 §3.3.1 ``BlindEvaluate`` for each of the ``n`` concatenated blinded
        elements: the ``n`` evaluated elements, concatenated in the same order.

        Raises :class:`~xlink.errors.InvalidElement` for a buffer that is not a whole number of
        elements, or for the first element that is not a valid encoding or is the identity."""
        blinded = bytes(blinded)
        n = _element_count(blinded)
        k = self._k

        def work(low: int, high: int) -> list[bytes]:
            out: list[bytes] = []
            for i in range(low, high):
                element = blinded[i * ELEMENT_SIZE : (i + 1) * ELEMENT_SIZE]
                out.append(_multiply_received(i, k, element))
            return out

        return b"".join(_spread(work, n))

    def evaluate(self, data: bytes) -> bytes:
        """RFC 9497 §3.3.1 ``Evaluate``: the 64-byte PRF output for an input the key holder has
        itself, equal to what a client obtains through :func:`blind` and :func:`finalize`.

        Raises ``ValueError`` for an input longer than 65535 bytes or one that hashes to the
        identity (the RFC's ``InvalidInputError``)."""
        return self.evaluate_many((data,))[0]

    def evaluate_many(self, inputs: Sequence[bytes]) -> list[bytes]:
        """:meth:`evaluate` for each input, in order."""
        checked = _check_inputs(inputs)
        k = self._k
        mult, from_hash, xmd, finalize_hash = (
            _scalarmult,
            _from_hash,
            expand_message_xmd_sha512,
            _finalize_hash,
        )
        out: list[bytes] = []
        for i, data in enumerate(checked):
            element = from_hash(xmd(data, HASH_TO_GROUP_DST, _UNIFORM_SIZE))
            if element == _IDENTITY:
                raise ValueError(f"input {i} hashes to the identity")
            out.append(finalize_hash(data, mult(k, element)))
        return out

    def __repr__(self) -> str:
        return "OprfKey(<secret>)"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("OprfKey cannot be pickled")


# -- the client (RFC 9497 §3.3.1 Blind and Finalize) ------------------------------------------


class BlindState:
    """What :func:`finalize` needs from :func:`blind`: the inputs and their secret blinds.

    Opaque: not printable (the inputs are private too), not picklable, not copyable."""

    __slots__ = ("_blinds", "_inputs")

    def __init__(self, inputs: tuple[bytes, ...], blinds: tuple[bytes, ...]) -> None:
        self._inputs = inputs
        self._blinds = blinds

    def __len__(self) -> int:
        """The number of inputs (and of elements :func:`finalize` expects)."""
        return len(self._inputs)

    def __repr__(self) -> str:
        return f"BlindState({len(self._inputs)} inputs, <secret>)"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("BlindState cannot be pickled")


def blind(inputs: Sequence[bytes], rng: RandomSource) -> tuple[BlindState, bytes]:
    """RFC 9497 §3.3.1 ``Blind`` for each input, with a fresh random blind each (64 bytes of
    ``rng`` per input, reduced modulo ``L``, drawn again if zero): the state for
    :func:`finalize` and the concatenated blinded elements to send, in input order.

    Raises ``TypeError`` for an input that is not ``bytes``, ``ValueError`` for one longer than
    65535 bytes or one that hashes to the identity (the RFC's ``InvalidInputError``)."""
    checked = _check_inputs(inputs)
    blinds = tuple(_random_scalar(rng) for _ in checked)
    return _blind(checked, blinds)


def blind_with(inputs: Sequence[bytes], blinds: Sequence[bytes]) -> tuple[BlindState, bytes]:
    """:func:`blind` with the given blinds (canonical non-zero 32-byte scalars, one per input)
    instead of random ones: for test vectors. A blind must never be used twice."""
    checked = _check_inputs(inputs)
    scalars = tuple(blinds)
    if len(scalars) != len(checked):
        raise ValueError("one blind per input")
    for i, r in enumerate(scalars):
        if (
            not isinstance(r, bytes)
            or len(r) != SCALAR_SIZE
            or r == _ZERO_SCALAR
            or int.from_bytes(r, "little") >= GROUP_ORDER
        ):
            raise ValueError(f"blind {i} is not a canonical non-zero 32-byte scalar")
    return _blind(checked, scalars)


def _multiply_received(index: int, scalar: bytes, element: bytes) -> bytes:
    """``[scalar]element`` for an element received from the peer, or
    :class:`~xlink.errors.InvalidElement` naming ``index``. libsodium decodes the element
    (refusing an invalid or non-canonical encoding, except that version 1.0.18 ignores the top
    bit, refused here first) and refuses an identity result: the hot path decodes once, the
    reason is found on failure only."""
    if element[31] & 0x80:
        _check_element(index, element)
    try:
        return _scalarmult(scalar, element)
    except RuntimeError:
        _check_element(index, element)
        raise InvalidElement(index, "identity", identity=True) from None


_PARALLEL_MIN: Final = 128
"""Fewest elements per thread when a batch is shared between threads: a manifest's batches
are, one traveller's (a few dozen tokens, where a hand-off measured no gain) are not."""
_POOL: ThreadPoolExecutor | None = None


def _spread(work: Callable[[int, int], list[bytes]], n: int) -> list[bytes]:
    """``work(low, high)`` over ``[0, n)``, in contiguous ranges on every core, concatenated in
    order. The group operations run in libsodium, which releases the GIL, so threads share
    them; an exception of the first failing range (the lowest index) is raised."""
    global _POOL
    workers = min(os.cpu_count() or 1, n // _PARALLEL_MIN)
    if workers <= 1:
        return work(0, n)
    if _POOL is None:
        _POOL = ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="xlink-oprf")
    bounds = [n * k // workers for k in range(workers + 1)]
    futures = [_POOL.submit(work, bounds[k], bounds[k + 1]) for k in range(1, workers)]
    first = work(bounds[0], bounds[1])  # this thread takes the first range
    out = list(first)
    for future in futures:
        out.extend(future.result())
    return out


def _blind(inputs: tuple[bytes, ...], blinds: tuple[bytes, ...]) -> tuple[BlindState, bytes]:
    mult, from_hash, xmd = _scalarmult, _from_hash, expand_message_xmd_sha512

    def work(low: int, high: int) -> list[bytes]:
        out: list[bytes] = []
        for i in range(low, high):
            element = from_hash(xmd(inputs[i], HASH_TO_GROUP_DST, _UNIFORM_SIZE))
            if element == _IDENTITY:
                raise ValueError(f"input {i} hashes to the identity")
            out.append(mult(blinds[i], element))
        return out

    return BlindState(inputs, blinds), b"".join(_spread(work, len(inputs)))


def finalize(state: BlindState, evaluated: bytes) -> list[bytes]:
    """RFC 9497 §3.3.1 ``Finalize`` for each input of ``state``: the 64-byte PRF outputs, in
    input order, from the concatenated evaluated elements the key holder returned.

    Raises :class:`~xlink.errors.InvalidElement` for a buffer that is not a whole number of
    elements, for a count other than the number of inputs (``index`` is the first missing or
    the first extra element), and for the first element that is not a valid encoding or is the
    identity. The blinds are inverted together (Montgomery's trick, one modular inversion)."""
    evaluated = bytes(evaluated)
    n = _element_count(evaluated)
    expected = len(state._inputs)
    if n < expected:
        raise InvalidElement(n, "missing element")
    if n > expected:
        raise InvalidElement(expected, "unexpected element")
    if n == 0:
        return []
    inverses = scalar_product_with_inverses(_ONE_SCALAR, list(state._blinds))
    finalize_hash, inputs = _finalize_hash, state._inputs

    def work(low: int, high: int) -> list[bytes]:
        out: list[bytes] = []
        for i in range(low, high):
            element = evaluated[i * ELEMENT_SIZE : (i + 1) * ELEMENT_SIZE]
            out.append(finalize_hash(inputs[i], _multiply_received(i, inverses[i], element)))
        return out

    return _spread(work, n)
