"""Randomness as a parameter (spec: xlink-psi-v1 §5.3)."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from xlink.crypto.rand import DeterministicRandom, randbelow, shuffle


def test_deterministic_stream_is_reproducible_and_chunking_free() -> None:
    a, b = DeterministicRandom("s"), DeterministicRandom("s")
    assert a(10) + a(5000) == b(5010)
    assert DeterministicRandom("t")(32) != DeterministicRandom("s")(32)


def _block(seed: bytes, counter: int) -> bytes:
    """Block ``counter`` of the stream, as the docstring defines it (the vectors rely on it)."""
    prefix = b"xlink/v1/deterministic-random" + len(seed).to_bytes(4, "big") + seed
    return hashlib.shake_256(prefix + counter.to_bytes(8, "big")).digest(4096)


def test_the_stream_is_shake256_blocks_in_counter_order() -> None:
    expected = b"".join(_block(b"s", c) for c in range(3))
    rng = DeterministicRandom("s")
    assert rng(1) + rng(4096) + rng(3 * 4096 - 4097) == expected


@given(st.lists(st.integers(min_value=0, max_value=20_000), max_size=12))
def test_any_split_of_reads_gives_one_stream(sizes: list[int]) -> None:
    split = DeterministicRandom("p")
    assert b"".join(split(n) for n in sizes) == DeterministicRandom("p")(sum(sizes))


def test_randbelow_and_shuffle() -> None:
    rng = DeterministicRandom(7)
    assert all(0 <= randbelow(13, rng) < 13 for _ in range(200))
    items = list(range(50))
    shuffle(items, rng)
    assert sorted(items) == list(range(50)) and items != list(range(50))
