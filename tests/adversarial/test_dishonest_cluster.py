"""A party whose group operations run on a Dask cluster (``xlink serve --dask``) against a
dishonest partner: it aborts as a party alone does, with the same code, after sending the same
messages, and never matches what it would not have matched alone. The cluster re-blinds the
partner's elements and runs the confirmation round's evaluations, so the attacks here are
the ones whose checks sit on those results: answers moved to other slots, confirmation answers
swapped, an invalid element deep in a chunk (past the first slice of the work)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

import pytest
from _rewrites import rotate_reblinded, swap_confirmation_answers
from _sessions import psi_config

from xlink.crypto.cluster import LOCAL, dask_workers
from xlink.crypto.rand import DeterministicRandom
from xlink.crypto.workers import POOL_MIN_ELEMENTS, GroupWorkers
from xlink.errors import RemoteProtocolError
from xlink.linkage.tokens import TokenSet, TokenSetBuilder
from xlink.protocol import AbortCode, PsiResult, PsiSession, Role, SessionConfig
from xlink.protocol.codec import decode_message, encode_message
from xlink.protocol.messages import Elements

SHARED = POOL_MIN_ELEMENTS + 76  # enough matches for the confirmation round to go out too
BAD_AT = POOL_MIN_ELEMENTS + 200  # an element in the second slice of a chunk


@pytest.fixture(scope="module")
def on_cluster() -> Iterator[GroupWorkers]:
    with dask_workers(LOCAL, local_workers=2) as pool:
        yield pool


def _config(role: Role) -> SessionConfig:
    return psi_config(role, padding_bucket=64, chunk_size=2048)  # chunks the cluster slices


def _tokens(side: str, n: int) -> TokenSet:
    builder = TokenSetBuilder(("k",))
    for i in range(n):
        value = f"shared {i}" if i < SHARED else f"{side} {i}"
        builder.add_record(f"{side}{i}", [("k", hashlib.sha256(value.encode()).digest())])
    return builder.build()


VICTIM, ATTACKER = _tokens("ca", SHARED + 400), _tokens("us", SHARED + 200)
Rewrite = Callable[[bytes], bytes]


def _run(workers: GroupWorkers | None, rewrite: Rewrite) -> tuple[list[bytes], object]:
    """The victim (on ``workers``, or alone) against an honest session whose messages pass
    through ``rewrite``: every message the victim sent, and its error or its result."""
    victim = PsiSession(
        _config(Role.INITIATOR), VICTIM, rng=DeterministicRandom("victim"), workers=workers
    )
    attacker = PsiSession(_config(Role.RESPONDER), ATTACKER, rng=DeterministicRandom("attacker"))
    sent: list[bytes] = []
    victim.initiate()
    while not victim.done:
        moved = False
        while (m := victim.next_message()) is not None:
            moved = True
            sent.append(m)
            if not attacker.done:
                attacker.receive_message(m)
        while (m := attacker.next_message()) is not None:
            moved = True
            try:
                victim.receive_message(rewrite(m))
            except RemoteProtocolError as exc:
                return sent, exc.code
        if not moved:
            break
    return sent, victim.result


def _zero_element(message: bytes) -> bytes:
    """The attacker's first Elements chunk with one element replaced by 32 zero bytes (the
    identity's encoding: never a valid element)."""
    msg = decode_message(message)
    if not isinstance(msg, Elements) or msg.seq != 0:
        return message
    at = 32 * BAD_AT
    elements = msg.elements[:at] + bytes(32) + msg.elements[at + 32 :]
    return encode_message(Elements(msg.seq, elements))


@pytest.mark.parametrize(
    ("rewrite", "codes"),
    [
        (rotate_reblinded, {AbortCode.CONFIRMATION_FAILED, AbortCode.WRONG_COUNT}),
        (swap_confirmation_answers, {AbortCode.CONFIRMATION_FAILED}),
        (_zero_element, {AbortCode.INVALID_ELEMENT, AbortCode.IDENTITY_ELEMENT}),
    ],
    ids=["permuted answers", "swapped confirmation answers", "invalid element"],
)
def test_a_party_on_a_cluster_aborts_as_it_would_alone(
    on_cluster: GroupWorkers, rewrite: Rewrite, codes: set[AbortCode]
) -> None:
    before = on_cluster.slices_sent
    clustered = _run(on_cluster, rewrite)
    assert on_cluster.slices_sent > before  # the cluster did the victim's group operations
    alone = _run(None, rewrite)
    assert clustered[1] in codes
    assert clustered == alone


def test_the_honest_baseline_on_a_cluster(on_cluster: GroupWorkers) -> None:
    """The harness: unmodified, the victim on the cluster matches exactly the shared people."""
    sent, result = _run(on_cluster, lambda m: m)
    assert isinstance(result, PsiResult)
    assert {p.local_record_id for p in result.pairs} == {f"ca{i}" for i in range(SHARED)}
    assert sent == _run(None, lambda m: m)[0]
