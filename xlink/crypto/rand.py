"""Randomness as a parameter.

Every function in xlink that needs randomness takes an ``rng: RandomSource`` — a callable that
returns ``n`` random bytes, like :func:`os.urandom`. Production code passes :data:`system_random`;
tests and test vectors pass a :class:`DeterministicRandom` so that every byte is reproducible.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, MutableSequence
from typing import TypeVar

__all__ = ["DeterministicRandom", "RandomSource", "randbelow", "shuffle", "system_random"]

RandomSource = Callable[[int], bytes]
"""A source of random bytes: ``rng(n)`` returns ``n`` bytes."""

system_random: RandomSource = os.urandom

_DRBG_DST = b"xlink/v1/deterministic-random"
_BLOCK = 4096  # bytes of SHAKE-256 output per counter value
T = TypeVar("T")


class DeterministicRandom:
    """A reproducible byte stream: SHAKE-256 over a label and a seed, read in order.

    FOR TESTS AND TEST VECTORS ONLY. The same seed always yields the same stream, which is the
    point; a seed used twice in production would reuse session secrets.
    """

    __slots__ = ("_buffer", "_counter", "_pos", "_seed")

    def __init__(self, seed: bytes | int | str) -> None:
        if isinstance(seed, int):
            seed = seed.to_bytes(16, "big", signed=True)
        elif isinstance(seed, str):
            seed = seed.encode("utf-8")
        self._seed = bytes(seed)
        self._counter = 0
        self._buffer = b""
        self._pos = 0

    def __call__(self, n: int) -> bytes:
        if n < 0:
            raise ValueError("n must be >= 0")
        short = n - (len(self._buffer) - self._pos)
        if short > 0:
            # Every block still needed at once: one copy of the buffer, not one per block.
            prefix = _DRBG_DST + len(self._seed).to_bytes(4, "big") + self._seed
            first = self._counter
            self._counter += -(-short // _BLOCK)
            blocks = [
                hashlib.shake_256(prefix + c.to_bytes(8, "big")).digest(_BLOCK)
                for c in range(first, self._counter)
            ]
            self._buffer = self._buffer[self._pos :] + b"".join(blocks)
            self._pos = 0
        out = self._buffer[self._pos : self._pos + n]
        self._pos += n
        return out

    def __repr__(self) -> str:
        return "DeterministicRandom(<seed>)"


def randbelow(n: int, rng: RandomSource) -> int:
    """A uniform integer in ``[0, n)`` by rejection sampling (no modulo bias)."""
    if n <= 0:
        raise ValueError("n must be > 0")
    if n == 1:
        return 0
    bits = (n - 1).bit_length()
    nbytes = (bits + 7) // 8
    mask = (1 << bits) - 1
    while True:
        r = int.from_bytes(rng(nbytes), "big") & mask
        if r < n:
            return r


def shuffle(items: MutableSequence[T], rng: RandomSource) -> None:
    """Fisher-Yates shuffle in place, drawing from ``rng`` (via :func:`randbelow`).

    Not used by xlink-psi-v2: the protocol orders its slots and reveal records by sorting random
    64-bit keys (xlink-psi-v2 §5.3 step 5, §6.7), which fixes the random bytes drawn exactly."""
    for i in range(len(items) - 1, 0, -1):
        j = randbelow(i + 1, rng)
        items[i], items[j] = items[j], items[i]
