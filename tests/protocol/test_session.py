"""End-to-end behaviour of a session pair (spec: xlink-psi-v2 §5, §7)."""

from __future__ import annotations

from collections import defaultdict

import pytest
from _support import KEYS, config, pair, record_lists, records_of, token_set
from hypothesis import given, settings

from xlink.crypto import _rbcl, suite
from xlink.crypto.rand import DeterministicRandom
from xlink.crypto.suite import SUITE_R255, SUITE_X25519
from xlink.error_codes import LOCAL_FAILURE
from xlink.errors import LocalProtocolError, RemoteProtocolError
from xlink.linkage.tokens import TokenSet, token_digest
from xlink.protocol import (
    AbortCode,
    Aborted,
    CardinalityResult,
    ExchangeComplete,
    HandshakeComplete,
    InternalProtocolError,
    Mode,
    PsiResult,
    PsiSession,
    Role,
    State,
    run_pair,
)
from xlink.protocol import limits as L
from xlink.protocol.codec import decode_message, encode_message
from xlink.protocol.messages import Abort
from xlink.protocol.session import sanitize_detail


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


@pytest.mark.parametrize("suite_id", [SUITE_X25519.suite_id, SUITE_R255.suite_id])
@settings(max_examples=30, deadline=None)
@given(record_lists, record_lists)
def test_random_sets_match_plaintext_intersection(
    suite_id: int, va: list[list[tuple[str, int]]], vb: list[list[tuple[str, int]]]
) -> None:
    ta, tb = token_set(records_of("a", va)), token_set(records_of("b", vb))
    a, b = pair(ta, tb, bucket=4, chunk=3, suite_id=suite_id)
    ra, rb = run_pair(a, b)
    assert isinstance(ra, PsiResult) and isinstance(rb, PsiResult)
    _check_psi(ta, tb, ra, rb)
    ca, cb = pair(ta, tb, Mode.CARDINALITY, bucket=4, chunk=3, suite_id=suite_id)
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
        a.receive_message(b"\x02")


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
    while element_msg is not None and element_msg[2] != 2:  # skip Reblinded: to Elements
        b.receive_message(element_msg)
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


def test_token_digest_is_domain_separated_by_key() -> None:
    """Spec §3.1: the key name (and version, schema) is inside the token digest."""
    base = token_digest("schema", 1, "passport", 1, ["P1234567", "CA"])
    assert len(base) == 32
    assert token_digest("schema", 1, "passport", 1, ["P1234567", "CA"]) == base
    assert token_digest("schema", 1, "passport_alias", 1, ["P1234567", "CA"]) != base
    assert token_digest("schema", 1, "passport", 2, ["P1234567", "CA"]) != base
    assert token_digest("schema", 2, "passport", 1, ["P1234567", "CA"]) != base
    assert token_digest("other", 1, "passport", 1, ["P1234567", "CA"]) != base
    # Length prefixes: moving a boundary between parts gives another token.
    assert token_digest("schema", 1, "passport", 1, ["P1234567C", "A"]) != base


def _transcript(
    ta: TokenSet, tb: TokenSet, mode: Mode, seeds: tuple[str, str]
) -> tuple[list[tuple[str, bytes]], object, object]:
    a = PsiSession(config(Role.INITIATOR, mode), ta, rng=DeterministicRandom(seeds[0]))
    b = PsiSession(config(Role.RESPONDER, mode), tb, rng=DeterministicRandom(seeds[1]))
    sent: list[tuple[str, bytes]] = []
    ra, rb = run_pair(a, b, observer=lambda s, m: sent.append((s.role.name, m)))
    return sent, ra, rb


@pytest.mark.parametrize("mode", list(Mode))
def test_construction_draws_only_from_rng(mode: Mode) -> None:
    """Same inputs and seeds give the same whole transcript and results: the nonce, scalar,
    shuffle, dummies and reveal order all come from the given random source (spec §5.3)."""
    ta = token_set([("a1", [("passport", 1), ("name_dob", 2)]), ("a2", [("passport", 3)])])
    tb = token_set([("b1", [("passport", 1)]), ("b2", [("name_dob", 2)]), ("b3", [])])
    first = _transcript(ta, tb, mode, ("x", "y"))
    assert first == _transcript(ta, tb, mode, ("x", "y"))
    assert _transcript(ta, tb, mode, ("x", "z"))[0] != first[0]


def test_record_with_too_many_tokens_is_refused_at_construction() -> None:
    """A record with more than MAX_HANDLES_PER_RECORD tokens could not be revealed (§6.3)."""
    many = [("passport", i) for i in range(L.MAX_HANDLES_PER_RECORD + 1)]
    with pytest.raises(ValueError, match="MAX_HANDLES_PER_RECORD"):
        PsiSession(config(Role.INITIATOR), token_set([("r", many)]), rng=DeterministicRandom(1))
    ok = token_set([("r", many[:-1])])
    PsiSession(config(Role.INITIATOR, bucket=1024, chunk=512), ok, rng=DeterministicRandom(1))


def _expect_internal_abort(session: PsiSession, info: pytest.ExceptionInfo[Exception]) -> bytes:
    """The Abort ``session`` queued for its local failure (checked: INTERNAL_ERROR, telling
    the peer nothing of what failed), which the failure ``info`` names for the caller."""
    assert isinstance(info.value, InternalProtocolError)
    assert isinstance(info.value, LocalProtocolError)
    assert info.value.code is AbortCode.INTERNAL_ERROR
    assert session.state is State.ABORTED and session.done
    out = session.next_message()
    assert out is not None and session.next_message() is None
    abort = decode_message(out)
    assert isinstance(abort, Abort) and abort.code == AbortCode.INTERNAL_ERROR
    # the peer is told that something failed here, never what (it named the exception's type)
    assert abort.detail == LOCAL_FAILURE
    assert info.value.detail.startswith(f"{LOCAL_FAILURE}: ")
    return out


def test_reveal_preparation_failure_aborts_with_internal_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A local failure while a received message is processed (here: building the reveal of a
    record with more matched handles than the limit, past the construction check) aborts with
    INTERNAL_ERROR instead of escaping and leaving the session in EXCHANGE (spec §5.5, §8)."""
    values = [("passport", 1), ("name_dob", 2), ("surname_postcode", 3)]
    ta, tb = token_set([("a1", values)]), token_set([("b1", values)])
    a, b = pair(ta, tb)
    monkeypatch.setattr(L, "MAX_HANDLES_PER_RECORD", 2)  # after construction
    a.initiate()
    failed: PsiSession | None = None
    with pytest.raises(LocalProtocolError) as info:
        while not (a.done or b.done):
            for x, y in ((a, b), (b, a)):
                m = x.next_message()
                if m is not None:
                    failed = y
                    y.receive_message(m)
    assert failed is not None
    abort = _expect_internal_abort(failed, info)
    peer = b if failed is a else a
    events = peer.receive_message(abort)
    assert events[0] == Aborted(AbortCode.INTERNAL_ERROR, LOCAL_FAILURE, by_peer=True)
    assert peer.state is State.ABORTED and peer.next_message() is None


@pytest.mark.parametrize("suite_id", [SUITE_X25519.suite_id, SUITE_R255.suite_id])
def test_hash_to_identity_in_next_message_aborts_with_internal_error(
    monkeypatch: pytest.MonkeyPatch, suite_id: int
) -> None:
    """Spec §4.1, §4.6: a token hashed to the identity aborts the session with INTERNAL_ERROR."""
    ta = token_set([("a1", [("passport", 1)])])
    a, b = pair(ta, ta, suite_id=suite_id)
    a.initiate()
    b.receive_message(a.next_message() or b"")
    a.receive_message(b.next_message() or b"")

    if suite_id == SUITE_X25519.suite_id:
        to_u = suite._edwards_y_to_montgomery_u
        monkeypatch.setattr(suite, "_edwards_y_to_montgomery_u", lambda ys: to_u([1] * len(ys)))
    else:  # the ristretto255 identity encodes as 32 zero bytes
        monkeypatch.setattr(_rbcl, "from_hash", lambda uniform: bytes(32))
    with pytest.raises(InternalProtocolError) as info:
        a.next_message()
    assert "identity" not in info.value.detail  # the type only, never a value
    _expect_internal_abort(a, info)


@pytest.mark.parametrize("initiator_suite", [SUITE_X25519.suite_id, SUITE_R255.suite_id])
def test_parties_of_different_suites_abort_at_the_hello(initiator_suite: int) -> None:
    """Spec §6.4: a partner on the other suite is refused with UNSUPPORTED_SUITE before any
    element is sent, whichever side proposes which."""
    other = (
        SUITE_R255.suite_id if initiator_suite == SUITE_X25519.suite_id else SUITE_X25519.suite_id
    )
    ta = token_set([("a1", [("passport", 1)])])
    a = PsiSession(config(Role.INITIATOR, suite_id=initiator_suite), ta, rng=DeterministicRandom(1))
    b = PsiSession(config(Role.RESPONDER, suite_id=other), ta, rng=DeterministicRandom(2))
    a.initiate()
    with pytest.raises(RemoteProtocolError) as info:
        b.receive_message(a.next_message() or b"")
    assert info.value.code is AbortCode.UNSUPPORTED_SUITE
    assert b.state is State.ABORTED and b.result is None


def test_initiator_in_idle_does_not_answer_an_abort() -> None:
    """Spec §6.8: no Abort is sent in answer to an Abort, in any state."""
    ta = token_set([])
    for role in Role:
        s = PsiSession(config(role), ta, rng=DeterministicRandom(1))
        events = s.receive_message(encode_message(Abort(int(AbortCode.TIMEOUT), "bye")))
        assert events == [Aborted(AbortCode.TIMEOUT, "bye", by_peer=True)]
        assert s.state is State.ABORTED and s.next_message() is None


def test_received_abort_detail_is_sanitised() -> None:
    """Spec §6.8: control and format characters of a peer's detail never reach the caller."""
    ta = token_set([])
    a, _ = pair(ta, ta)
    a.initiate()
    nasty = "ok\nFAKE LOG LINE\r\x1b[31m\x00\x7f\x85\u202etxet\u2028end\U000e0041é"
    (event,) = a.receive_message(encode_message(Abort(int(AbortCode.MOU_MISMATCH), nasty)))
    assert isinstance(event, Aborted)
    assert event.detail == (
        "ok\\x0aFAKE LOG LINE\\x0d\\x1b[31m\\x00\\x7f\\x85\\u202etxet\\u2028end\\U000e0041é"
    )
    assert event.detail.isprintable()
    long = "\x01" * 256  # escapes are longer than the input: still cut to the limit
    assert len(sanitize_detail(long).encode()) <= L.MAX_DETAIL_BYTES
    assert sanitize_detail("é" * 200).encode("utf-8").decode("utf-8") == "é" * 128


def test_frame_too_large_aborts_the_session() -> None:
    """FRAME_TOO_LARGE is not in invalid.json (the case is over 1 MiB); spec §11.2."""
    ta = token_set([])
    _, b = pair(ta, ta)
    with pytest.raises(RemoteProtocolError) as info:
        b.receive_message(b"\x02" + b"\x00" * L.MAX_MESSAGE_SIZE)
    assert info.value.code is AbortCode.FRAME_TOO_LARGE and b.state is State.ABORTED
    out = b.next_message()
    assert out is not None and decode_message(out) == Abort(
        int(AbortCode.FRAME_TOO_LARGE), "message exceeds the limit"
    )


def test_type_error_does_not_abort() -> None:
    ta = token_set([])
    _, b = pair(ta, ta)
    with pytest.raises(TypeError):
        b.receive_message("not bytes")  # type: ignore[arg-type]
    assert b.state is State.IDLE and b.next_message() is None
