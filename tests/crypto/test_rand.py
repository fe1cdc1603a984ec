"""Randomness as a parameter (spec: xlink-psi-v1 §5.3)."""

from __future__ import annotations

from xlink.crypto.rand import DeterministicRandom, randbelow, shuffle


def test_deterministic_stream_is_reproducible_and_chunking_free() -> None:
    a, b = DeterministicRandom("s"), DeterministicRandom("s")
    assert a(10) + a(5000) == b(5010)
    assert DeterministicRandom("t")(32) != DeterministicRandom("s")(32)


def test_randbelow_and_shuffle() -> None:
    rng = DeterministicRandom(7)
    assert all(0 <= randbelow(13, rng) < 13 for _ in range(200))
    items = list(range(50))
    shuffle(items, rng)
    assert sorted(items) == list(range(50)) and items != list(range(50))
