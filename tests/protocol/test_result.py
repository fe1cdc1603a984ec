"""The PSI result's compact pair table and the chunked reveal (spec: xlink-psi-v1 §6.7, §7.3)."""

from __future__ import annotations

import dataclasses
import hashlib
import tracemalloc
from array import array

import pytest
from _support import pair, token_set

from xlink.crypto.rand import DeterministicRandom
from xlink.linkage.tokens import TokenSet
from xlink.protocol import PsiResult, run_pair
from xlink.protocol import limits as L
from xlink.protocol._reveal import RevealWriter
from xlink.protocol.codec import decode_message
from xlink.protocol.messages import Reveal


def _psi(ta: TokenSet, tb: TokenSet, **kw: int) -> tuple[PsiResult, PsiResult]:
    ra, rb = run_pair(*pair(ta, tb, **kw))
    assert isinstance(ra, PsiResult) and isinstance(rb, PsiResult)
    return ra, rb


def _sides() -> tuple[TokenSet, TokenSet]:
    ta = token_set(
        [
            ("a10", [("passport", 1), ("name_dob", 2)]),
            ("a2", [("passport", 1)]),
            ("a3", [("surname_postcode", 9)]),
            ("a1", [("name_dob", 2), ("surname_postcode", 3)]),
        ]
    )
    tb = token_set(
        [
            ("b1", [("passport", 1), ("name_dob", 2), ("surname_postcode", 3)]),
            ("b2", [("name_dob", 2)]),
            ("b3", [("passport", 7)]),
        ]
    )
    return ta, tb


def test_lazy_pairs_api() -> None:
    ta, tb = _sides()
    ra, rb = _psi(ta, tb)
    for r in (ra, rb):
        pairs = r.pairs
        assert r.pair_count == len(pairs) == len(list(r.iter_pairs()))
        assert list(r.iter_pairs()) == list(pairs) and r.pairs == pairs
        # Sorted by local record id (as strings: "a10" < "a2"), then peer reference.
        keys = [(p.local_record_id, p.peer_ref) for p in pairs]
        assert keys == sorted(keys) and len(set(keys)) == len(keys)
        # One frozenset per distinct agreement pattern.
        by_value = {p.agreeing_keys: p.agreeing_keys for p in pairs}
        assert all(p.agreeing_keys is by_value[p.agreeing_keys] for p in pairs)
        for p in pairs:
            assert list(p.handles) == sorted(set(p.handles))
            assert all(len(h) == L.HANDLE_SIZE for h in p.handles)
    assert [p.local_record_id for p in ra.pairs] == ["a1", "a1", "a10", "a10", "a2"]
    assert [p.local_record_id for p in rb.pairs] == ["b1", "b1", "b1", "b2", "b2"]
    assert ra.pair_count == rb.pair_count == 5 and ra.matched_tokens == 3


def test_result_value_semantics() -> None:
    ta, tb = _sides()
    ra, _ = _psi(ta, tb)
    again, _ = _psi(ta, tb)
    other, _ = _psi(ta, tb, seed=1)
    assert ra == again and hash(ra) == hash(again) and ra is not again
    assert ra != other and ra != object()
    with pytest.raises(dataclasses.FrozenInstanceError):
        ra.matched_tokens = 0  # type: ignore[misc]
    text = repr(ra)
    assert "pair_count=5" in text and f"matched_tokens={ra.matched_tokens}" in text
    for p in ra.pairs:
        for h in p.handles:
            assert h.hex() not in text and repr(h) not in text


def test_no_match_gives_empty_table() -> None:
    ra, rb = _psi(token_set([("a1", [("passport", 1)])]), token_set([("b1", [("passport", 2)])]))
    assert ra.pair_count == rb.pair_count == 0 and ra.pairs == () and list(rb.iter_pairs()) == []
    assert ra.matched_tokens == 0


def _raw_tokens(ids: list[str], values: list[tuple[int, int, bytes]]) -> TokenSet:
    """A TokenSet built directly: ``values`` = (record index, key index, token), in any order."""
    return TokenSet(
        key_names=("k0", "k1"),
        record_ids=tuple(ids),
        values=b"".join(v for _, _, v in values),
        record_index=array("I", [r for r, _, _ in values]),
        key_index=array("B", [k for _, k, _ in values]),
    )


def test_repeated_record_ids_and_ungrouped_tokens() -> None:
    t = [hashlib.sha256(bytes([i])).digest() for i in range(4)]
    ta = _raw_tokens(
        ["x", "x", "a", "x"],
        [(3, 0, t[0]), (0, 1, t[1]), (1, 0, t[0]), (2, 1, t[2]), (0, 0, t[0]), (3, 1, t[1])],
    )
    tb = _raw_tokens(["p", "q"], [(1, 0, t[0]), (0, 1, t[1]), (1, 1, t[2]), (0, 0, t[3])])
    ra, rb = _psi(ta, tb, bucket=4, chunk=2)
    keys = [(p.local_record_id, p.peer_ref) for p in ra.pairs]
    assert keys == sorted(keys)
    assert sorted(p.local_record_id for p in ra.pairs) == ["a", "x", "x", "x", "x", "x"]
    assert ra.matched_tokens == rb.matched_tokens == 3


def test_reveal_chunks_respect_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small limits force many Reveal chunks; entries fill each chunk greedily (spec §6.7)."""
    monkeypatch.setattr(RevealWriter, "max_records", 3)
    monkeypatch.setattr(RevealWriter, "max_handles", 5)
    records = [(f"r{i}", [("passport", i), ("name_dob", i % 4)][: 1 + i % 2]) for i in range(20)]
    ta, tb = token_set(records), token_set(records)
    a, b = pair(ta, tb)
    reveals: list[Reveal] = []

    def observe(sender: object, message: bytes) -> None:
        decoded = decode_message(message)
        if sender is a and isinstance(decoded, Reveal):
            reveals.append(decoded)

    ra, rb = run_pair(a, b, observer=observe)
    assert isinstance(ra, PsiResult) and isinstance(rb, PsiResult)
    assert [r.seq for r in reveals] == list(range(len(reveals))) and len(reveals) > 5
    assert [r.final for r in reveals] == [False] * (len(reveals) - 1) + [True]
    sizes = [[len(e) // L.HANDLE_SIZE for e in r.records] for r in reveals]
    assert all(len(r.presence) == len(r.records) for r in reveals)  # 3 keys: 1 byte each
    for i, chunk in enumerate(sizes):
        assert 1 <= len(chunk) <= 3 and sum(chunk) <= 5
        if i + 1 < len(sizes):  # greedy: the next entry did not fit
            assert len(chunk) == 3 or sum(chunk) + sizes[i + 1][0] > 5
    assert sum(map(len, sizes)) == 20 and rb.pair_count >= 20


def test_memory_per_matched_token() -> None:
    """Regression guard: no Python object per matched token while the protocol runs.

    Two sessions in one process, 4,000 single-key records each, half shared: the traced peak
    (numpy buffers included) is about 500 bytes per token, most of it fixed overhead at this
    size; the former per-match dicts and tuples reached 1,600.
    """
    n, shared = 4000, 2000
    common = DeterministicRandom("mem/shared")(32 * shared)

    def side(name: str) -> TokenSet:
        values = common + DeterministicRandom(f"mem/{name}")(32 * (n - shared))
        return TokenSet(("k0",), tuple(f"{name}{i}" for i in range(n)), values,
                        array("I", range(n)), array("B", bytes(n)))  # fmt: skip

    ta, tb = side("A"), side("B")
    _psi(ta, token_set([]))  # warm up: first-use imports and caches are not per-token costs
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        ra, rb = _psi(ta, tb, bucket=1024, chunk=512)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert ra.matched_tokens == rb.matched_tokens == shared and ra.pair_count == shared
    assert peak / n < 900, f"{peak / n:.0f} bytes per token"
