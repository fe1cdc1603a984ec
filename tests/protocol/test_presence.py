"""Key presence in the reveal (spec: xlink-psi-v1 §6.7, §7.3): each candidate pair says which
keys each of its two records has, so that a key that disagreed can be told from one that is
missing on either side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _support import KEYS, config, pair, token, token_set
from hypothesis import given, settings
from hypothesis import strategies as st

from xlink.crypto.rand import DeterministicRandom
from xlink.linkage.tokens import TokenSet, TokenSetBuilder
from xlink.protocol import PsiResult, run_pair
from xlink.protocol.config import Role
from xlink.protocol.session import PsiSession
from xlink.query.entries import keys_present, presence_bits

VECTORS = Path(__file__).parents[2] / "protocols" / "vectors" / "psi-v2"


def _keys_of(records: list[tuple[str, list[tuple[str, object]]]]) -> dict[str, frozenset[str]]:
    return {rid: frozenset(k for k, _ in values) for rid, values in records}


def _check(
    result: PsiResult,
    peer: PsiResult,
    mine: dict[str, frozenset[str]],
    theirs: dict[str, frozenset[str]],
) -> None:
    for p in result.iter_pairs():
        peer_id = peer.revealed[p.peer_ref]
        assert p.local_keys == mine[p.local_record_id]
        assert p.peer_keys == theirs[peer_id]
        assert p.agreeing_keys <= p.local_keys & p.peer_keys
        assert p.disagreeing_keys == (mine[p.local_record_id] & theirs[peer_id]) - p.agreeing_keys


def test_pairs_say_which_keys_each_record_has() -> None:
    a = [
        ("a1", [("passport", 1), ("name_dob", 2), ("surname_postcode", 3)]),
        ("a2", [("name_dob", 5)]),  # no passport, no address on file
    ]
    b = [
        ("b1", [("passport", 1), ("name_dob", 9)]),  # passport agrees, name_dob differs
        ("b2", [("name_dob", 5), ("passport", 6), ("surname_postcode", 7)]),
    ]
    ra, rb = run_pair(*pair(token_set(a), token_set(b)))
    assert isinstance(ra, PsiResult) and isinstance(rb, PsiResult)
    by_local = {p.local_record_id: p for p in ra.iter_pairs()}
    assert by_local["a1"].agreeing_keys == {"passport"}
    assert by_local["a1"].disagreeing_keys == {"name_dob"}  # both have it; no token shared
    # a2's only key agreed: nothing disagrees, although b2 has keys a2 lacks (a key missing
    # on one side is not a disagreement).
    assert by_local["a2"].peer_keys == set(KEYS) and by_local["a2"].disagreeing_keys == set()
    _check(ra, rb, _keys_of(a), _keys_of(b))
    _check(rb, ra, _keys_of(b), _keys_of(a))


_records = st.lists(
    st.lists(st.tuples(st.sampled_from(KEYS), st.integers(0, 6)), min_size=1, max_size=4),
    min_size=0,
    max_size=6,
)


@settings(max_examples=60, deadline=None)
@given(_records, _records)
def test_presence_is_the_keys_of_each_record(a_values: Any, b_values: Any) -> None:
    a = [(f"a{i}", v) for i, v in enumerate(a_values)]
    b = [(f"b{i}", v) for i, v in enumerate(b_values)]
    ra, rb = run_pair(*pair(token_set(a), token_set(b), bucket=4, chunk=3))
    assert isinstance(ra, PsiResult) and isinstance(rb, PsiResult)
    _check(ra, rb, _keys_of(a), _keys_of(b))
    _check(rb, ra, _keys_of(b), _keys_of(a))


def test_vectors_state_each_records_keys() -> None:
    """The valid vectors' results agree with the keys of the records in their inputs (read
    from the JSON, not from our sessions)."""
    cases = json.loads((VECTORS / "valid.json").read_text())["cases"]
    seen_disagreement = False
    for case in cases:
        if case["initiator"]["mode"] != "PSI":
            continue
        keys = {
            side: {r["id"]: sorted({k for k, _ in r["tokens"]}) for r in case[side]["records"]}
            for side in ("initiator", "responder")
        }
        for side, peer in (("initiator", "responder"), ("responder", "initiator")):
            for p in case["results"][side]["pairs"]:
                assert p["local_keys"] == keys[side][p["local_record_id"]]
                assert p["peer_keys"] in keys[peer].values()
                both = set(p["local_keys"]) & set(p["peer_keys"])
                seen_disagreement |= bool(both - set(p["agreeing_keys"]))
    assert seen_disagreement


def _build(names: tuple[str, ...], records: list[tuple[str, list[tuple[str, int]]]]) -> TokenSet:
    builder = TokenSetBuilder(names)
    for rid, values in records:
        builder.add_record(rid, [(k, token(k, v)) for k, v in values])
    return builder.build()


@pytest.mark.parametrize("names", [tuple(f"k{i}" for i in range(70)), ("only",)])
def test_schemas_of_more_than_64_keys_and_of_one_key(names: tuple[str, ...]) -> None:
    """Key sets beyond one 64-bit word (presence beyond 8 bytes) round-trip, as do the one-byte
    sets of a single key."""
    first, last = names[0], names[-1]
    a = [("a1", [(first, 1), (last, 2)]), ("a2", [(last, 3)])]
    b = [("b1", [(last, 2), (first, 9)]), ("b2", [(last, 3)])]
    sa = PsiSession(config(Role.INITIATOR), _build(names, a), rng=DeterministicRandom("a"))
    sb = PsiSession(config(Role.RESPONDER), _build(names, b), rng=DeterministicRandom("b"))
    ra, rb = run_pair(sa, sb)
    assert isinstance(ra, PsiResult) and isinstance(rb, PsiResult)
    assert ra.pair_count == 2
    _check(ra, rb, _keys_of(a), _keys_of(b))  # type: ignore[arg-type]
    _check(rb, ra, _keys_of(b), _keys_of(a))  # type: ignore[arg-type]
    a1 = next(p for p in ra.iter_pairs() if p.local_record_id == "a1")
    assert a1.disagreeing_keys == ({first} if len(names) > 1 else set())


@given(st.integers(1, 40).flatmap(lambda n: st.tuples(st.just(n), st.sets(st.integers(0, n - 1)))))
def test_keys_present_reads_back_presence_bits(case: tuple[int, set[int]]) -> None:
    n, indexes = case
    names = [f"k{i}" for i in range(n)]
    bitmap = presence_bits(sorted(indexes), n)
    assert keys_present(bitmap, names) == {names[i] for i in indexes}
    assert keys_present(bitmap[:0], names) == frozenset()  # a short bitmap: keys absent
