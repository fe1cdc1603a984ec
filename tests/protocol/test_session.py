"""End-to-end behaviour of a session pair (spec: xlink-psi-v1 §5, §7)."""

from __future__ import annotations

from collections import defaultdict

import pytest
from _support import KEYS, config, pair, record_lists, records_of, token, token_set
from hypothesis import given, settings

from xlink.crypto.rand import DeterministicRandom
from xlink.errors import LocalProtocolError, RemoteProtocolError
from xlink.linkage.tokens import TokenSet
from xlink.protocol import (
    AbortCode,
    Aborted,
    CardinalityResult,
    ExchangeComplete,
    HandshakeComplete,
    Mode,
    PsiResult,
    PsiSession,
    Role,
    State,
    run_pair,
)
from xlink.protocol.codec import decode_message
from xlink.protocol.messages import Abort


def _expected_pairs(a: TokenSet, b: TokenSet) -> dict[tuple[str, str], frozenset[str]]:
    """Plaintext answer: (record of a, record of b) -> keys whose token values are equal."""
    where_b: dict[bytes, list[str]] = defaultdict(list)
    for i in range(len(b)):
        where_b[b.value(i)].append(b.record_of(i))
    out: dict[tuple[str, str], set[str]] = defaultdict(set)
    for i in range(len(a)):
        for rb in where_b.get(a.value(i), []):
            out[(a.record_of(i), rb)].add(a.key_of(i))
    return {k: frozenset(v) for k, v in out.items()}


def _check_psi(a: TokenSet, b: TokenSet, ra: PsiResult, rb: PsiResult) -> None:
    expected = _expected_pairs(a, b)
    distinct_common = set(a.value(i) for i in range(len(a))) & set(
        b.value(i) for i in range(len(b))
    )
    assert ra.matched_tokens == rb.matched_tokens == len(distinct_common)
    assert ra.session_id == rb.session_id
    # Which record pairs share a handle: join the two sides' views through the handles.
    handles_a: dict[str, set[bytes]] = defaultdict(set)
    handles_b: dict[str, set[bytes]] = defaultdict(set)
    for p in ra.pairs:
        handles_a[p.local_record_id] |= set(p.handles)
    for p in rb.pairs:
        handles_b[p.local_record_id] |= set(p.handles)
    joined = {(x, y) for x in handles_a for y in handles_b if handles_a[x] & handles_b[y]}
    assert joined == set(expected)
    # Each side's (local record, agreement pattern) multiset equals the plaintext one.
    assert sorted((p.local_record_id, sorted(p.agreeing_keys)) for p in ra.pairs) == sorted(
        (x, sorted(keys)) for (x, _), keys in expected.items()
    )
    assert sorted((p.local_record_id, sorted(p.agreeing_keys)) for p in rb.pairs) == sorted(
        (y, sorted(keys)) for (_, y), keys in expected.items()
    )
    for p in (*ra.pairs, *rb.pairs):
        assert len(p.handles) == len(set(p.handles)) >= 1


def test_two_thousand_by_two_thousand_three_keys() -> None:
    def side(name: str, overlap: range) -> TokenSet:
        recs = []
        for r in range(2000):
            person = r if r in overlap else f"{name}-{r}"
            values = [(k, f"{person}") for k in KEYS]
            if r % 7 == 0:  # partial agreement: one key differs
                values[1] = ("passport", f"{name}-pp-{r}")
            recs.append((f"{name}{r}", values))
        return token_set(recs)

    ta, tb = side("A", range(0, 800)), side("B", range(0, 800))
    a, b = pair(ta, tb, bucket=1024, chunk=512)
    ra, rb = run_pair(a, b)
    assert isinstance(ra, PsiResult) and isinstance(rb, PsiResult)
    _check_psi(ta, tb, ra, rb)
    assert len(ra.pairs) == 800
    assert a.padded_size == b.padded_size == 6144


@settings(max_examples=30, deadline=None)
@given(record_lists, record_lists)
def test_random_sets_match_plaintext_intersection(
    va: list[list[tuple[str, int]]], vb: list[list[tuple[str, int]]]
) -> None:
    ta, tb = token_set(records_of("a", va)), token_set(records_of("b", vb))
    a, b = pair(ta, tb, bucket=4, chunk=3)
    ra, rb = run_pair(a, b)
    assert isinstance(ra, PsiResult) and isinstance(rb, PsiResult)
    _check_psi(ta, tb, ra, rb)
    ca, cb = pair(ta, tb, Mode.CARDINALITY, bucket=4, chunk=3)
    xa, xb = run_pair(ca, cb)
    assert isinstance(xa, CardinalityResult) and isinstance(xb, CardinalityResult)
    assert xa.intersection_size == xb.intersection_size == ra.matched_tokens


def test_events_and_states() -> None:
    ta = token_set([("a1", [("passport", 1)])])
    tb = token_set([("b1", [("passport", 1)]), ("b2", [("passport", 2)])])
    a, b = pair(ta, tb)
    assert a.state is State.IDLE and not a.done
    a.initiate()
    assert a.state is State.AWAIT_HELLO
    events_b = b.receive_message(a.next_message() or b"")
    assert isinstance(events_b[0], HandshakeComplete) and events_b[0].peer_id == "RCMP"
    seen: list[object] = []
    while not (a.done and b.done):
        for x, y in ((a, b), (b, a)):
            m = x.next_message()
            if m is not None:
                seen.extend(y.receive_message(m))
    completes = [e for e in seen if isinstance(e, ExchangeComplete)]
    assert len(completes) == 2 and a.state is b.state is State.COMPLETE
    assert a.next_message() is None
    with pytest.raises(LocalProtocolError):
        a.receive_message(b"\x01")


def test_illegal_local_calls() -> None:
    ta = token_set([])
    a, b = pair(ta, ta)
    with pytest.raises(LocalProtocolError):
        b.initiate()
    a.initiate()
    with pytest.raises(LocalProtocolError):
        a.initiate()
    assert b.next_message() is None


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        config(Role.INITIATOR, bucket=0)
    with pytest.raises(ValueError):
        config(Role.INITIATOR, chunk=100_000)


def test_peer_error_queues_abort_and_peer_sees_it() -> None:
    ta = token_set([("a1", [("passport", 1)])])
    a, b = pair(ta, ta)
    a.initiate()
    hello = a.next_message()
    assert hello is not None
    with pytest.raises(RemoteProtocolError) as info:
        b.receive_message(hello[:-3])
    assert info.value.code is AbortCode.TRUNCATED and b.state is State.ABORTED and b.done
    abort = b.next_message()
    assert abort is not None and b.next_message() is None
    decoded = decode_message(abort)
    assert isinstance(decoded, Abort) and decoded.code == AbortCode.TRUNCATED
    events = a.receive_message(abort)
    assert events == [Aborted(AbortCode.TRUNCATED, decoded.detail, by_peer=True)]
    assert a.state is State.ABORTED and a.next_message() is None


def test_local_abort() -> None:
    ta = token_set([])
    a, _ = pair(ta, ta)
    a.initiate()
    a.abort(AbortCode.TIMEOUT, "no answer")
    out = a.next_message()
    assert out is not None and decode_message(out) == Abort(int(AbortCode.TIMEOUT), "no answer")
    with pytest.raises(LocalProtocolError):
        a.abort(AbortCode.TIMEOUT, "again")


def test_errors_never_quote_values() -> None:
    ta = token_set([("secret-record-id", [("passport", "P1234567")])])
    a, b = pair(ta, ta)
    a.initiate()
    b.receive_message(a.next_message() or b"")
    while (m := b.next_message()) is not None:
        a.receive_message(m)
    element_msg = a.next_message()
    assert element_msg is not None
    with pytest.raises(RemoteProtocolError) as info:
        b.receive_message(element_msg[:-32] + b"\x00" * 32)
    text = str(info.value)
    assert "secret" not in text and "P1234567" not in text
    assert element_msg[-32:].hex() not in text


def test_dedup_sends_each_value_once_and_maps_back() -> None:
    shared = [("passport", "X")]
    ta = token_set([("a1", shared), ("a2", shared), ("a3", [("passport", "Y")])])
    tb = token_set([("b1", shared)])
    a, b = pair(ta, tb, bucket=1)
    assert a.padded_size == 2  # two distinct values, bucket 1
    ra, rb = run_pair(a, b)
    assert isinstance(ra, PsiResult) and isinstance(rb, PsiResult)
    assert ra.matched_tokens == 1
    assert sorted(p.local_record_id for p in ra.pairs) == ["a1", "a2"]
    assert len(rb.pairs) == 2 and {p.peer_ref for p in rb.pairs} == {0, 1}


def test_two_sessions_give_unlinkable_handles() -> None:
    ta = token_set([("a1", [("passport", 1)])])
    r1 = run_pair(*pair(ta, ta, seed=1))[0]
    r2 = run_pair(*pair(ta, ta, seed=2))[0]
    assert isinstance(r1, PsiResult) and isinstance(r2, PsiResult)
    assert r1.pairs[0].handles != r2.pairs[0].handles and r1.session_id != r2.session_id


def test_token_helper_is_domain_separated_by_key() -> None:
    assert token("passport", 1) != token("name_dob", 1)


def test_construction_draws_only_from_rng() -> None:
    ta = token_set([("a1", [("passport", 1)])])
    s1 = PsiSession(config(Role.INITIATOR), ta, rng=DeterministicRandom(5))
    s2 = PsiSession(config(Role.INITIATOR), ta, rng=DeterministicRandom(5))
    s1.initiate()
    s2.initiate()
    assert s1.next_message() == s2.next_message()
