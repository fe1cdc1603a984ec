"""The label evaluation of release transfer v3 (xlink-release-v1 §10.2) between two real,
completed PSI sessions over the in-memory connection: both sides end with the OPRF output of
each decided pair's tokens under the other's key, and a partner that asks for more evaluations
than there are decided pairs is refused."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from xlink.crypto.rand import DeterministicRandom
from xlink.errors import TransportTimeout
from xlink.linkage.tokens import TokenSetBuilder
from xlink.protocol import AbortCode, Mode, PsiResult, PsiSession, Role, SessionConfig, run_pair
from xlink.transport import memory_pair
from xlink.transport.release_transfer import (
    LABEL_CHUNK,
    RELEASE_MAGIC,
    TransferError,
    TransferGate,
    agree_decided_pairs,
    decided_pairs_digest,
    exchange_labels,
    label_pairs,
)

TIMEOUT = 5.0


def _session(role: Role, people: range) -> PsiSession:
    me, peer = ("CA-RCMP", "US-DHS") if role is Role.INITIATOR else ("US-DHS", "CA-RCMP")
    builder = TokenSetBuilder(("a", "b"))
    for n in people:
        builder.add_record(
            f"{me}-{n}",
            [(k, hashlib.sha256(f"{k}{n}".encode()).digest()) for k in ("a", "b")],
        )
    config = SessionConfig(
        role=role,
        mode=Mode.PSI,
        party_id=me,
        peer_id=peer,
        mou_id="MOU-1",
        mou_digest=b"\x01" * 32,
        schema_digest=b"\x02" * 32,
        padding_bucket=8,
    )
    return PsiSession(config, builder.build(), rng=DeterministicRandom(me))


def _completed() -> tuple[PsiSession, PsiSession, list[tuple[bytes, ...]]]:
    a, b = _session(Role.INITIATOR, range(0, 12)), _session(Role.RESPONDER, range(6, 20))
    ra, _ = run_pair(a, b)
    assert isinstance(ra, PsiResult)
    return a, b, [p.handles for p in ra.pairs]


def test_both_sides_get_the_other_keys_outputs() -> None:
    a, b, pairs = _completed()
    handles = label_pairs(pairs)
    assert len(handles) == len(pairs) and handles == label_pairs(reversed(pairs))
    assert a.session_id is not None

    async def side(session: PsiSession, gate: TransferGate) -> dict[tuple[bytes, ...], bytes]:
        assert session.session_id is not None
        await agree_decided_pairs(gate, session.session_id, pairs, TIMEOUT, role=session.role)
        return await exchange_labels(
            gate,
            request=session.labels.request,
            answer=session.labels.answer,
            outputs=session.labels.outputs,
            idle_timeout=TIMEOUT,
        )

    async def scenario() -> tuple[dict[tuple[bytes, ...], bytes], dict[tuple[bytes, ...], bytes]]:
        x, y = memory_pair(capacity=2)
        return await asyncio.gather(side(a, TransferGate(x)), side(b, TransferGate(y)))

    from_b, from_a = asyncio.run(scenario())
    assert from_b == {h: b.labels.own_output(h) for h in handles}
    assert from_a == {h: a.labels.own_output(h) for h in handles}


@pytest.mark.parametrize("extra", ["one more", "one per handle"])
def test_more_points_than_decided_pairs_is_refused(extra: str) -> None:
    """One point per distinct decided pair, no more: a partner asking for one guess more, or
    for one evaluation per handle as release transfer v1 allowed, is refused."""
    a, _, pairs = _completed()
    listed = label_pairs(pairs)
    handles = sum(len(p) for p in listed)
    assert handles > len(listed) and handles < LABEL_CHUNK
    count = len(listed) + 1 if extra == "one more" else handles
    assert a.session_id is not None

    async def scenario() -> TransferError:
        ours, theirs = memory_pair(capacity=8)
        gate = TransferGate(ours)
        assert a.session_id is not None
        digest = decided_pairs_digest(a.session_id, pairs, sender=Role.RESPONDER)
        await theirs.send(RELEASE_MAGIC + bytes([7]) + digest)
        probe = b"\x00" * 4 + bytes.fromhex("58" + "66" * 31) * count
        await theirs.send(RELEASE_MAGIC + bytes([8]) + probe)
        await agree_decided_pairs(gate, a.session_id, pairs, TIMEOUT, role=Role.INITIATOR)
        with pytest.raises(TransferError) as info:
            await exchange_labels(
                gate,
                request=a.labels.request,
                answer=a.labels.answer,
                outputs=a.labels.outputs,
                idle_timeout=TIMEOUT,
            )
        return info.value

    error = asyncio.run(scenario())
    assert error.code is AbortCode.WRONG_COUNT


def test_a_partner_that_stops_reading_times_out_typed() -> None:
    """The partner sends every label frame it owes but never reads ours: once our frames can
    no longer leave, the idle timeout ends the exchange with TransportTimeout (TIMEOUT), the
    code the agency audits, not a bare TimeoutError."""
    a, b, pairs = _completed()
    assert a.session_id is not None and b.session_id == a.session_id
    listed = label_pairs(pairs)

    async def scenario() -> BaseException:
        ours, theirs = memory_pair(capacity=2)  # our DIGEST and LABELS fill it: nothing read
        gate = TransferGate(ours)
        assert a.session_id is not None
        digest = decided_pairs_digest(a.session_id, pairs, sender=Role.RESPONDER)
        answers = b.labels.answer(a.labels.request(listed))  # what it would answer to ours

        async def partner() -> None:  # sends all it owes, reads nothing
            await theirs.send(RELEASE_MAGIC + bytes([7]) + digest)
            await theirs.send(RELEASE_MAGIC + bytes([8]) + b"\x00" * 4 + b.labels.request(listed))
            await theirs.send(RELEASE_MAGIC + bytes([9]) + b"\x00" * 4 + answers)

        sending = asyncio.create_task(partner())
        await agree_decided_pairs(gate, a.session_id, pairs, TIMEOUT, role=Role.INITIATOR)
        try:
            await exchange_labels(
                gate,
                request=a.labels.request,
                answer=a.labels.answer,
                outputs=a.labels.outputs,
                idle_timeout=0.5,
            )
        except BaseException as exc:
            return exc
        finally:
            await sending
        raise AssertionError("the exchange completed with a partner that reads nothing")

    error = asyncio.run(scenario())
    assert isinstance(error, TransportTimeout) and error.code is AbortCode.TIMEOUT
