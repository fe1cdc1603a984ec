"""The confirmation round's outputs and the minimal reveal (spec: xlink-psi-v2 §6.7, §6.9-§6.11,
§7.5)."""

from __future__ import annotations

import hashlib
import math

import pytest
from _support import KEYS, config, pair, record_lists, records_of, token, token_set
from hypothesis import example, given, settings

from xlink.crypto.rand import DeterministicRandom
from xlink.errors import LocalProtocolError, RemoteProtocolError
from xlink.protocol import AbortCode, PsiResult, PsiSession, RevealBound, Role, run_pair
from xlink.protocol._keys import label_input

BOUND = RevealBound((1.5, 2.0, 0.5), (-1.0, 0.0, -0.5), 2.0)
# The same weights with evidence groups as bits: name_dob two groups, the others one each.
EVIDENCE_BOUND = RevealBound((1.5, 2.0, 0.5), (-1.0, 0.0, -0.5), 2.0, (3, 4, 8), 2)


def _decidable(pair_keys: tuple[frozenset[str], frozenset[str]], bound: RevealBound) -> bool:
    """What decide() would allow, on the bound's own terms: the score reaches the threshold
    and the agreeing keys hold ``min_groups`` groups."""
    drawn = 0
    for k in pair_keys[0]:
        drawn |= bound.groups[KEYS.index(k)] if bound.groups else 0
    return _score(pair_keys, bound) >= bound.threshold and drawn.bit_count() >= bound.min_groups


def _score(pair_keys: tuple[frozenset[str], frozenset[str]], bound: RevealBound) -> float:
    agreeing, disagreeing = pair_keys
    terms = [bound.agreement[KEYS.index(k)] for k in agreeing]
    terms += [bound.disagreement[KEYS.index(k)] for k in disagreeing - agreeing]
    return math.fsum(terms)


def _bounded_pair(ta: object, tb: object, bound: RevealBound) -> tuple[PsiSession, PsiSession]:
    from dataclasses import replace

    from xlink.protocol import Mode

    a = PsiSession(
        replace(config(Role.INITIATOR, Mode.PSI), reveal_bound=bound),
        ta,  # type: ignore[arg-type]
        rng=DeterministicRandom("a0"),
    )
    b = PsiSession(
        replace(config(Role.RESPONDER, Mode.PSI), reveal_bound=bound),
        tb,  # type: ignore[arg-type]
        rng=DeterministicRandom("b0"),
    )
    return a, b


@pytest.mark.parametrize("bound", [BOUND, EVIDENCE_BOUND], ids=["score", "score-and-evidence"])
@settings(max_examples=25, deadline=None)
@given(record_lists, record_lists)
@example(
    left=[[("name_dob", 0), ("passport", 0), ("surname_postcode", 0)]],
    right=[[("name_dob", 1), ("passport", 0)], [("passport", 0)]],
)
def test_minimal_reveal_keeps_every_pair_that_can_be_decided(
    bound: RevealBound, left: list[list[tuple[str, int]]], right: list[list[tuple[str, int]]]
) -> None:
    """Every pair the full reveal gives that could be decided (scores at or above the
    threshold; with evidence groups, agrees on enough of them) is also given by the minimal
    reveal, with the same pattern; the minimal reveal gives no other pair."""
    ta, tb = token_set(records_of("L", left)), token_set(records_of("R", right))
    full_a, full_b = pair(ta, tb)
    ra, _ = run_pair(full_a, full_b)
    min_a, min_b = _bounded_pair(ta, tb, bound)
    ma, _ = run_pair(min_a, min_b)
    assert isinstance(ra, PsiResult) and isinstance(ma, PsiResult)

    def by_record(
        result: PsiResult,
    ) -> dict[tuple[str, frozenset[bytes], frozenset[str]], object]:
        # Peer references differ between the two reveals; two peer records may share the same
        # matched handles (one token in common) and differ in their key presence, so the
        # presence is part of the key (pairs equal in all three have the same pattern).
        return {
            (p.local_record_id, frozenset(p.handles), p.peer_keys): (
                p.agreeing_keys,
                p.disagreeing_keys,
            )
            for p in result.pairs
        }

    full, minimal = by_record(ra), by_record(ma)
    decidable = {
        k: v
        for k, v in full.items()
        if _decidable(v, bound)  # type: ignore[arg-type]
    }
    assert set(decidable) <= set(minimal)
    assert all(minimal[k] == v for k, v in decidable.items())
    assert set(minimal) <= set(full)


def test_a_record_without_the_evidence_is_not_revealed() -> None:
    """With evidence groups, a record whose matched keys draw on one group cannot be in a
    decided pair, whatever its score bound: passport alone (4) or surname_postcode alone (8)
    is refused, name_dob alone (two groups) and any two keys are kept."""
    assert not EVIDENCE_BOUND.reaches(frozenset({1}))  # upper bound 2.0, one group
    assert not EVIDENCE_BOUND.reaches(frozenset({2}))  # upper bound 0.5 as well
    assert BOUND.reaches(frozenset({1}))  # the same record without the rule
    assert not EVIDENCE_BOUND.reaches(frozenset({0}))  # two groups, upper bound 1.5 < 2.0
    assert EVIDENCE_BOUND.reaches(frozenset({0, 2}))  # two groups, 2.0
    assert EVIDENCE_BOUND.reaches(frozenset({1, 2}))  # document and address, 2.5


def test_upper_bound_counts_only_what_can_help() -> None:
    assert BOUND.upper_bound(frozenset()) == 0.0
    assert BOUND.upper_bound(frozenset({0})) == 1.5
    assert BOUND.upper_bound(frozenset({0, 1, 2})) == 4.0
    positive_disagreement = RevealBound((1.0, 1.0), (0.25, -3.0), 1.2)
    assert positive_disagreement.upper_bound(frozenset({0})) == 1.0
    assert positive_disagreement.upper_bound(frozenset({1})) == 1.25


def test_label_outputs_agree_across_sides_and_differ_per_key() -> None:
    shared = [("name_dob", "x"), ("passport", "P1")]
    ta = token_set([("a1", shared), ("a2", [("name_dob", "only-a")])])
    tb = token_set([("b1", shared), ("b2", [("passport", "only-b")])])
    a, b = pair(ta, tb)
    with pytest.raises(LocalProtocolError):
        a.labels.request([(b"\x00" * 16,)])
    ra, _ = run_pair(a, b)
    assert isinstance(ra, PsiResult)
    handles = sorted({h for p in ra.pairs for h in p.handles})
    assert len(handles) == 2
    # One item per decided pair (spec §7.5): here the pair of both handles, and each alone.
    items = [tuple(handles), (handles[0],), (handles[1],)]
    from_b = a.labels.outputs(items, b.labels.answer(a.labels.request(items)))
    from_a = b.labels.outputs(items, a.labels.answer(b.labels.request(items)))
    for item, out_b, out_a in zip(items, from_b, from_a, strict=True):
        assert out_b == b.labels.own_output(item)
        assert out_a == a.labels.own_output(item)
        assert out_b != out_a
    assert len(set(from_b)) == 3  # a pair's output is none of its handles' alone
    # The handles of a pair count in ascending order, whatever order they are given in.
    assert b.labels.own_output(tuple(reversed(handles))) == from_b[0]
    # A chunk's blinds are those of its place in the whole list (spec §7.5): a request cut in two
    # is the whole request cut in two, and no blind is used twice.
    whole = a.labels.request(items)
    assert a.labels.request(items[:1]) + a.labels.request(items[1:], 1) == whole
    assert a.labels.request(items[1:]) != whole[32:]
    assert a.labels.outputs(items[1:], b.labels.answer(whole[32:]), 1) == from_b[1:]
    with pytest.raises(KeyError):
        a.labels.request([(handles[0], b"\x01" * 16)])
    with pytest.raises(RemoteProtocolError) as info:  # an answer that is not a point
        a.labels.outputs(items[:2], b"\xff" * 64)
    assert info.value.code is AbortCode.INVALID_ELEMENT
    with pytest.raises(RemoteProtocolError) as info:
        a.labels.outputs(items[:2], b"\x00" * 32)
    assert info.value.code is AbortCode.WRONG_COUNT


def test_label_input_is_the_spec_hash_of_the_pairs_tokens() -> None:
    """xlink-psi-v2 §7.5, computed here from the formula: SHA-256(lp("xlink-psi-v2/label-pair")
    || u32(k) || lp(t_1) || ... || lp(t_k)), the tokens in ascending handle order."""
    t1, t2 = token("name_dob", "x"), token("passport", "P1")

    def lp(data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + data

    expected = hashlib.sha256(
        lp(b"xlink-psi-v2/label-pair") + (2).to_bytes(4, "big") + lp(t1) + lp(t2)
    ).digest()
    assert label_input([t1, t2]) == expected
    assert label_input([t2, t1]) != expected  # the order is the handles', fixed by the caller
    assert label_input([t1]) != t1 and len(label_input([t1])) == 32
    with pytest.raises(ValueError):
        label_input([])


def test_a_pair_is_a_non_empty_set_of_handles() -> None:
    shared = [("name_dob", "x"), ("passport", "P1")]
    a, b = pair(token_set([("a1", shared)]), token_set([("b1", shared)]))
    run_pair(a, b)
    (h1, h2) = sorted({h for p in a.result.pairs for h in p.handles})  # type: ignore[union-attr]
    for bad in [(), (h1, h1)]:
        with pytest.raises(ValueError):
            a.labels.request([bad])
        with pytest.raises(ValueError):
            a.labels.own_output(bad)
    assert a.labels.own_output((h2, h1)) == a.labels.own_output((h1, h2))
