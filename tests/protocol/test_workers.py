"""The worker pool computes exactly what the suite computes in-process, and a session run on it
sends exactly the messages of a session that hashes and blinds by itself."""

from __future__ import annotations

import hashlib
import os

import pytest
from _support import MOU_DIGEST, config

from xlink.crypto.oprf import OprfScalar, blind_points, blind_scalar, evaluate_points
from xlink.crypto.rand import DeterministicRandom
from xlink.crypto.suite import (
    DEFAULT_SUITE,
    SMALL_ORDER_U,
    SUITE_R255,
    SUITE_X25519,
    BlindingKey,
    Ciphersuite,
)
from xlink.crypto.workers import POOL_MIN_ELEMENTS, GroupWorkers
from xlink.errors import InvalidElement
from xlink.linkage.tokens import TokenSetBuilder
from xlink.protocol import Role, _keys, run_pair
from xlink.protocol.hashed import hash_tokens
from xlink.protocol.session import PsiSession

DST = b"xlink-psi-v1:test-dst"
N = POOL_MIN_ELEMENTS + 700  # above the threshold: the pool runs, in two uneven slices


@pytest.fixture(scope="module")
def pool() -> GroupWorkers:
    with GroupWorkers(2, start_after=0) as workers:
        yield workers


@pytest.fixture(scope="module")
def tokens() -> bytes:
    return DeterministicRandom("worker tokens")(32 * N)


@pytest.mark.parametrize("suite", [SUITE_X25519, SUITE_R255], ids=["suite1", "suite2"])
def test_pool_equals_in_process(pool: GroupWorkers, tokens: bytes, suite: Ciphersuite) -> None:
    key = BlindingKey(DeterministicRandom("key")(32))
    hashed = suite.hash_to_group(DST, tokens)
    assert pool.hash_to_group(suite, DST, tokens) == hashed
    assert pool.blind(suite, key, hashed) == suite.blind(key, hashed)
    assert pool.hash_and_blind(suite, key, DST, tokens) == suite.blind(key, hashed)
    assert pool._pool is not None  # the work did go to the workers


def test_tags_computed_on_the_pool_are_the_sessions_tags(pool: GroupWorkers, tokens: bytes) -> None:
    """blind_and_tag gives, per element, the two direction tags of xlink-psi-v2 §4.5 that
    ``reblinded_hasher`` computes over the re-blinded value, in the order of the prefixes."""
    suite = DEFAULT_SUITE
    key = BlindingKey(DeterministicRandom("tag key")(32))
    elements = suite.hash_to_group(DST, tokens)
    transcript = hashlib.sha256(b"a transcript").digest()
    prefixes = (_keys.reblinded_prefix(transcript, 1), _keys.reblinded_prefix(transcript, 0))
    hashers = (_keys.reblinded_hasher(transcript, 1), _keys.reblinded_hasher(transcript, 0))
    blinded = suite.blind(key, elements)
    expected = b"".join(h(blinded[i : i + 32]) for i in range(0, len(blinded), 32) for h in hashers)
    before = pool.slices_sent
    assert pool.blind_and_tag(suite, key, elements, prefixes, 16) == expected
    assert pool.slices_sent == before + 2  # on the workers
    assert GroupWorkers(1).blind_and_tag(suite, key, elements, prefixes, 16) == expected


@pytest.mark.parametrize(
    ("suite", "identity"),
    [(SUITE_X25519, b"\x01" + bytes(31)), (SUITE_R255, bytes(32))],
    ids=["suite1", "suite2"],
)
def test_point_operations_equal_in_process(
    pool: GroupWorkers, tokens: bytes, suite: Ciphersuite, identity: bytes
) -> None:
    points = suite.hash_to_points(DST, tokens)
    assert pool.hash_to_points(suite, DST, tokens) == points
    scalars = [blind_scalar(b"s" * 32, b"test", i) for i in range(N)]
    blinded = blind_points(points, scalars, suite.group)
    assert pool.multiply(suite, b"".join(scalars), points) == blinded
    key = OprfScalar(blind_scalar(b"k" * 32, b"test", 0))
    assert pool.evaluate(suite, key, points) == evaluate_points((key,), points, suite.group)
    assert pool.confirmed_values(suite, blinded) == suite.confirmed_values(blinded)
    bad = bytearray(points)
    bad[32 * (N - 3) : 32 * (N - 2)] = identity  # the identity's encoding
    with pytest.raises(InvalidElement) as caught:
        pool.evaluate(suite, key, bytes(bad))
    assert caught.value.index == N - 3
    with pytest.raises(ValueError, match="one scalar per point"):
        pool.multiply(suite, b"".join(scalars[:-1]), points)


@pytest.mark.parametrize(
    ("bad", "identity"), [(SMALL_ORDER_U[2], True), (b"\xff" * 32, False)], ids=["small", "big"]
)
def test_invalid_element_reported_at_its_place_in_the_whole_buffer(
    pool: GroupWorkers, tokens: bytes, bad: bytes, identity: bool
) -> None:
    elements = bytearray(SUITE_X25519.hash_to_group(DST, tokens))
    at = N - 5  # in the second worker's slice
    elements[32 * at : 32 * at + 32] = bad
    key = BlindingKey(os.urandom(32))
    with pytest.raises(InvalidElement) as caught:
        pool.blind(SUITE_X25519, key, bytes(elements))
    assert caught.value.index == at
    assert caught.value.identity is identity
    with pytest.raises(InvalidElement) as serial:
        SUITE_X25519.blind(key, bytes(elements))
    assert (serial.value.index, serial.value.reason) == (caught.value.index, caught.value.reason)


def test_the_pool_starts_only_for_a_large_set(tokens: bytes) -> None:
    with GroupWorkers(2) as workers:  # the default: a few seconds of work in-process first
        assert workers.hash_to_group(SUITE_X25519, DST, tokens) == SUITE_X25519.hash_to_group(
            DST, tokens
        )
        assert workers._pool is None
    with GroupWorkers(2, start_after=N // 2) as workers:
        workers.hash_to_group(SUITE_X25519, DST, tokens)
        assert workers._pool is not None


def test_truncated_buffers_are_refused(pool: GroupWorkers) -> None:
    key = BlindingKey(os.urandom(32))
    with pytest.raises(InvalidElement):
        pool.blind(SUITE_X25519, key, b"\x09" * 33)
    with pytest.raises(ValueError):
        pool.hash_to_group(SUITE_X25519, DST, b"\x00" * 31)
    with pytest.raises(ValueError):
        GroupWorkers(0)


def _tokens(side: str, n: int, shared: int) -> TokenSetBuilder:
    builder = TokenSetBuilder(("k",))
    for i in range(n):
        value = f"shared {i}" if i < shared else f"{side} {i}"
        builder.add_record(f"{side}{i}", [("k", hashlib.sha256(value.encode()).digest())])
    return builder


def test_session_on_workers_with_hashed_tokens_sends_the_same_bytes(pool: GroupWorkers) -> None:
    """Same seeds, same messages: hashing before the session (and from a cache) and running on
    the pool change where the work happens, never what crosses the wire."""
    tokens_a = _tokens("a", 1500, 1100).build()  # enough matches for the confirmation round
    tokens_b = _tokens("b", 1300, 1100).build()  # to run on the pool as well

    def run(**kwargs: object) -> tuple[list[bytes], object, object]:
        sent: list[bytes] = []
        a = PsiSession(
            config(Role.INITIATOR, bucket=64, chunk=2048),
            tokens_a,
            rng=DeterministicRandom("a"),
            **kwargs.get("a", {}),  # type: ignore[arg-type]
        )
        b = PsiSession(
            config(Role.RESPONDER, bucket=64, chunk=2048),
            tokens_b,
            rng=DeterministicRandom("b"),
            **kwargs.get("b", {}),  # type: ignore[arg-type]
        )
        ra, rb = run_pair(a, b, observer=lambda _s, m: sent.append(m))
        return sent, ra, rb

    plain = run()
    hashed_a = hash_tokens(
        tokens_a, suite_id=DEFAULT_SUITE.suite_id, mou_digest=MOU_DIGEST, workers=pool
    )
    pooled = run(a={"workers": pool, "hashed": hashed_a}, b={"workers": pool})
    assert pooled[0] == plain[0]
    assert pooled[1].matched_tokens == plain[1].matched_tokens == 1100  # type: ignore[attr-defined]
