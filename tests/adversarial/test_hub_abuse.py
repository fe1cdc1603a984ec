"""A dishonest agency abusing the hub, and a dishonest hub abusing an agent (xlink-hub-v1 §5,
§7): what the hub holds stays bounded, checkpoints cannot be rewritten through it, and an
agent reads no frame past the limit and keeps no cosignature that does not verify."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import socket
from pathlib import Path

import nacl.bindings
import pytest
from _hub import NOW, PASSPHRASE, HubWorld, clock, make_world, running_hub

from xlink.audit import Checkpoint, PublishedCheckpoint
from xlink.crypto._public_docs import audit_endorsement_message
from xlink.crypto.hub_key import HubKey
from xlink.crypto.keyfiles import AgencyKeys
from xlink.crypto.keys import SigningKey
from xlink.crypto.rand import DeterministicRandom
from xlink.error_codes import HubReason
from xlink.errors import ConnectionLost, HubError, InputError
from xlink.hub import Hub
from xlink.hub.client import HubLink, open_control, open_hub
from xlink.hub.relay import HALF_CLOSE_GRACE
from xlink.hub.schedule import MAX_CHECKPOINTS_PER_DAY, MAX_CONFLICTS_KEPT, MIN_EVERY
from xlink.hub.server import MAX_QUERIES_PER_PAIR
from xlink.hub.wire import (
    PREAMBLE_PLAIN,
    CheckpointOffer,
    Cosigned,
    Job,
    Purpose,
    cosign_message,
    read_frame,
    recv_message,
    verify,
)
from xlink.policy.multilateral import accept_multilateral, load_multilateral


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> HubWorld:
    return make_world(tmp_path_factory.mktemp("abuse"))


def _key(world: HubWorld, agency: str) -> SigningKey:
    return AgencyKeys.load(world.ceremony.keys[agency], PASSPHRASE).signing_key


async def _connect(
    world: HubWorld,
    port: int,
    agency: str,
    purpose: Purpose,
    *,
    peer: str = "",
    job: bytes = b"",
    seed: int = 0,
) -> socket.socket:
    return await open_hub(
        world.address(port),
        agency=agency,
        signing_key=_key(world, agency),
        purpose=purpose,
        peer=peer,
        job=job,
        clock=clock,
        rng=DeterministicRandom(f"{agency} {purpose} {peer} {seed}"),
    )


async def _control(world: HubWorld, port: int, agency: str) -> HubLink:
    return await open_control(
        world.address(port),
        agency=agency,
        signing_key=_key(world, agency),
        clock=clock,
        rng=DeterministicRandom(f"{agency} control"),
    )


def _run(world: HubWorld, test, tmp: Path | None = None) -> Hub:  # type: ignore[no-untyped-def]
    hub = world.hub() if tmp is None else _fresh_hub(world, tmp)

    async def main() -> None:
        async with running_hub(hub) as port:
            await test(hub, port)

    try:
        asyncio.run(main())
    finally:
        hub.close()
    return hub


def _fresh_hub(world: HubWorld, tmp: Path) -> Hub:
    return dataclasses.replace(world, base=tmp).hub()


def test_an_asker_that_never_speaks_holds_nothing_once_the_holder_leaves(
    world: HubWorld, tmp_path: Path
) -> None:
    async def test(hub: Hub, port: int) -> None:
        holder = await _control(world, port, "CA-RCMP")
        asker = await _connect(world, port, "US-DHS", Purpose.QUERY, peer="CA-RCMP")
        job = await holder.recv()
        assert isinstance(job, Job)
        side = await _connect(world, port, "CA-RCMP", Purpose.SESSION, job=job.job)
        await recv_message(side)  # SPLICED
        await recv_message(asker)  # SPLICED
        side.close()  # the holder gives up on a silent asker
        # The asker stays silent and keeps its socket open: the hub lets go of it anyway,
        # once the other direction has had its grace period.
        async with asyncio.timeout(HALF_CLOSE_GRACE + 3):
            while hub.queries or hub.waiting:
                await asyncio.sleep(0.1)
        asker.close()
        holder.close()

    _run(world, test, tmp_path)


def test_queries_in_flight_per_pair_are_bounded(world: HubWorld, tmp_path: Path) -> None:
    async def test(hub: Hub, port: int) -> None:
        holder = await _control(world, port, "CA-RCMP")
        open_ones = [
            await _connect(world, port, "US-DHS", Purpose.QUERY, peer="CA-RCMP", seed=i)
            for i in range(MAX_QUERIES_PER_PAIR)
        ]
        with pytest.raises(HubError) as caught:
            await _connect(world, port, "US-DHS", Purpose.QUERY, peer="CA-RCMP", seed=99)
        assert caught.value.reason is HubReason.BUSY
        # Another pair is not held up by this one.
        other = await _connect(world, port, "CA-CBSA", Purpose.QUERY, peer="CA-RCMP")
        for s in [*open_ones, other, holder]:
            s.close()

    _run(world, test, tmp_path)


def _checkpoint(audit: SigningKey, seq: int, head: bytes) -> PublishedCheckpoint:
    unsigned = Checkpoint(seq, head, NOW, 0, 100, bytes(64))
    signed = dataclasses.replace(unsigned, signature=audit.sign(unsigned.message()))
    return PublishedCheckpoint(audit.verify_key, signed)


def test_a_rewritten_checkpoint_is_refused_and_kept_as_evidence(
    world: HubWorld, tmp_path: Path
) -> None:
    audit = SigningKey.generate(DeterministicRandom("audit"))
    other_key = SigningKey.generate(DeterministicRandom("another audit key"))

    async def test(hub: Hub, port: int) -> None:
        control = await _control(world, port, "CA-RCMP")

        rcmp = _key(world, "CA-RCMP")

        async def offer(
            log: str, published: PublishedCheckpoint, endorser: SigningKey = rcmp
        ) -> object:
            return await _offer(control, log, published, endorser)

        first = _checkpoint(audit, 5, bytes(32))
        cosigned = await offer("US-DHS", first)
        assert isinstance(cosigned, Cosigned) and cosigned.seq == 5
        assert await offer("US-DHS", first) == cosigned  # offered again: the same answer
        assert await offer("US-DHS", _checkpoint(audit, 5, bytes([1]) * 32)) is HubReason.CONFLICT
        assert await offer("US-DHS", _checkpoint(audit, 3, bytes(32))) is HubReason.CONFLICT
        assert await offer("US-DHS", _checkpoint(other_key, 9, bytes(32))) is HubReason.CONFLICT
        assert await offer("CA-RCMP", first) is HubReason.NO_TERMS  # its own "log": no pair
        # A checkpoint under an audit key the agency never endorsed (injected by someone on
        # the path to the hub, say) is refused, and blocks nothing.
        stranger = SigningKey.generate(DeterministicRandom("stranger"))
        injected = _checkpoint(stranger, 6, bytes(32))
        assert await offer("US-DHS", injected, endorser=stranger) is HubReason.BAD_SIGNATURE
        later = await offer("US-DHS", _checkpoint(audit, 8, bytes([2]) * 32))
        assert isinstance(later, Cosigned)
        assert hub.schedule.conflicts("CA-RCMP") == 3
        kept = [json.loads(t)["seq"] for t in hub.schedule.checkpoints("CA-RCMP", "US-DHS")]
        assert kept == [5, 8]
        control.close()

    _run(world, test, tmp_path)


async def _offer(
    control: HubLink, log: str, published: PublishedCheckpoint, endorser: SigningKey
) -> object:
    """CA-RCMP offers ``published`` for ``log``: the hub's answer, or its REFUSED reason."""
    endorsed = audit_endorsement_message("CA-RCMP", published.audit_key)
    await control.send(CheckpointOffer(log, published, endorser.sign(endorsed)))
    try:
        return await control.recv()
    except HubError as exc:  # a REFUSED answer
        return exc.reason


def _hedged(key: SigningKey, message: bytes, nonce: bytes) -> bytes:
    """An Ed25519 signature of ``message`` by ``key`` whose nonce is drawn from ``nonce``
    rather than derived from the key (RFC 8032 signs deterministically; a hedged signer does
    not): another valid signature of the same message, which every verifier accepts."""
    h = hashlib.sha512(key.seed()).digest()
    a = bytearray(h[:32])
    a[0] &= 248
    a[31] &= 127
    a[31] |= 64
    secret = nacl.bindings.crypto_core_ed25519_scalar_reduce(bytes(a) + bytes(32))
    r = nacl.bindings.crypto_core_ed25519_scalar_reduce(hashlib.sha512(nonce).digest())
    big_r = nacl.bindings.crypto_scalarmult_ed25519_base_noclamp(r)
    k = nacl.bindings.crypto_core_ed25519_scalar_reduce(
        hashlib.sha512(big_r + bytes(key.verify_key) + message).digest()
    )
    s = nacl.bindings.crypto_core_ed25519_scalar_add(
        r, nacl.bindings.crypto_core_ed25519_scalar_mul(k, secret)
    )
    return big_r + s


def test_a_kept_checkpoint_offered_with_another_endorsement_is_cosigned_as_offered(
    world: HubWorld, tmp_path: Path
) -> None:
    """The same checkpoint offered again with another valid endorsement (a signer that draws
    its nonces, or a signing key the MOU names since) got the cosignature kept for the first
    one back: a signature over the other endorsement, which the agency could not verify, so it
    kept no cosignature for a checkpoint the hub holds. Now the hub signs what was offered."""
    audit = SigningKey.generate(DeterministicRandom("audit, endorsed twice"))

    async def test(hub: Hub, port: int) -> None:
        control = await _control(world, port, "CA-RCMP")
        rcmp = _key(world, "CA-RCMP")
        published = _checkpoint(audit, 4, bytes(32))
        endorsed = audit_endorsement_message("CA-RCMP", published.audit_key)
        first = await _offer(control, "US-DHS", published, rcmp)
        assert isinstance(first, Cosigned)
        hedged = _hedged(rcmp, endorsed, b"another nonce")
        assert hedged != rcmp.sign(endorsed)
        assert verify(rcmp.verify_key, hedged, endorsed)  # as valid as the first
        again = CheckpointOffer("US-DHS", published, hedged)
        await control.send(again)
        answer = await control.recv()
        assert isinstance(answer, Cosigned) and answer.seq == 4
        named = accept_multilateral(
            load_multilateral(world.ceremony.mou), local_agency=None, today=NOW.date()
        ).hub
        assert answer.signature != first.signature
        signed = cosign_message(named.hub_id, "CA-RCMP", again)
        assert verify(named.verify_key, answer.signature, signed)  # what the agent checks
        # the first endorsement, offered again, still gets the very bytes kept for it
        assert await _offer(control, "US-DHS", published, rcmp) == first
        assert len(hub.schedule.checkpoints("CA-RCMP", "US-DHS")) == 1
        control.close()

    _run(world, test, tmp_path)


def test_a_member_cannot_grow_the_hubs_checkpoints_without_bound(
    world: HubWorld, tmp_path: Path
) -> None:
    """A member signs as many checkpoints as it likes with its own endorsed audit key. Each
    one with a higher seq was kept and each contradicting one kept again (2,000 offers: 2,000
    rows, about 450 bytes each, in seconds). Now the hub keeps at most a day's worth of new
    checkpoints per log and the first few contradicting ones, each once."""
    audit = SigningKey.generate(DeterministicRandom("audit of a flood"))

    async def test(hub: Hub, port: int) -> None:
        control = await _control(world, port, "CA-RCMP")
        rcmp = _key(world, "CA-RCMP")
        answers = [
            await _offer(control, "US-DHS", _checkpoint(audit, seq, bytes(32)), rcmp)
            for seq in range(1, MAX_CHECKPOINTS_PER_DAY + 11)
        ]
        assert all(isinstance(a, Cosigned) for a in answers[:MAX_CHECKPOINTS_PER_DAY])
        assert answers[MAX_CHECKPOINTS_PER_DAY:] == [HubReason.BUSY] * 10
        assert len(hub.schedule.checkpoints("CA-RCMP", "US-DHS")) == MAX_CHECKPOINTS_PER_DAY
        same = _checkpoint(audit, 1, bytes([7]) * 32)
        for _ in range(30):
            assert await _offer(control, "US-DHS", same, rcmp) is HubReason.CONFLICT
        assert hub.schedule.conflicts("CA-RCMP") == 1
        for i in range(30):
            other = _checkpoint(audit, 2, bytes([i + 8]) * 32)
            assert await _offer(control, "US-DHS", other, rcmp) is HubReason.CONFLICT
        assert hub.schedule.conflicts("CA-RCMP") == MAX_CONFLICTS_KEPT
        control.close()

    _run(world, test, tmp_path)


def test_an_agent_reads_no_frame_past_the_limit() -> None:
    async def main() -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(b"\xff\xff\xff\xff" + b"x" * 100)
        with pytest.raises(HubError) as caught:
            await read_frame(reader)
        assert caught.value.reason is HubReason.MALFORMED

    asyncio.run(main())


@pytest.mark.parametrize(
    ("sent", "said"),
    [
        (b"", "between frames"),
        (b"\x00\x00", "inside a frame"),
        (b"\x00\x00\x00\x10ab", "inside a frame"),
    ],
)
def test_a_connection_that_ends_inside_a_frame_is_a_lost_connection(sent: bytes, said: str) -> None:
    """A hub (or anything on the path before TLS) that closes mid-frame gave the caller of
    ``open_control``/``open_hub`` an ``asyncio.IncompleteReadError``, none of ours."""

    async def main() -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(sent)
        reader.feed_eof()
        with pytest.raises(ConnectionLost, match=said):
            await read_frame(reader)

    asyncio.run(main())


def test_an_agent_keeps_no_cosignature_that_does_not_verify(
    world: HubWorld, tmp_path: Path
) -> None:
    agent = world.agent("CA-RCMP", 1)
    try:
        audit = SigningKey.generate(DeterministicRandom("audit"))
        published = _checkpoint(audit, 4, bytes(32))
        agent._offered[("US-DHS", 4)] = CheckpointOffer("US-DHS", published, bytes(64))
        agent._cosigned(Cosigned("US-DHS", 4, bytes(64)))  # a forged cosignature
        agent._cosigned(Cosigned("US-DHS", 7, bytes(64)))  # one for nothing we offered
        assert agent.state.cosigned() == []
    finally:
        agent.close()


def test_a_connection_that_stalls_its_hello_is_closed_and_forgotten(world: HubWorld) -> None:
    async def test(hub: Hub, port: int) -> None:
        loop = asyncio.get_running_loop()
        junk = socket.create_connection(("127.0.0.1", port))
        junk.setblocking(False)
        await loop.sock_sendall(junk, PREAMBLE_PLAIN)
        await recv_message(junk)
        await loop.sock_sendall(junk, b"\x00\x01\x00\x00")  # announces 65,536 bytes, sends none
        with pytest.raises((HubError, ConnectionLost)):
            async with asyncio.timeout(10):
                await recv_message(junk)  # the hello timeout ends it
        junk.close()
        assert hub._handshakes == 0

    _run(world, test)


def test_no_job_starts_once_the_mou_has_expired(world: HubWorld, tmp_path: Path) -> None:
    from datetime import timedelta

    from xlink.hub.schedule import JobState

    hub = dataclasses.replace(world, base=tmp_path).hub()
    try:
        hub.clock = lambda: NOW + timedelta(days=30)  # past valid_until
        hub.add_round()
        hub.controls = dict.fromkeys(("CA-RCMP", "CA-CBSA", "US-DHS"))  # type: ignore[arg-type]
        hub._dispatch()
        assert hub.schedule.jobs(state=JobState.RUNNING) == []
        hub.clock = lambda: NOW
        hub.controls = {}
        hub._dispatch()  # valid again, but nobody is connected: still nothing
        assert hub.schedule.jobs(state=JobState.RUNNING) == []
    finally:
        hub.close()


def test_a_hub_does_not_schedule_rounds_more_often_than_it_cosigns(
    world: HubWorld, tmp_path: Path
) -> None:
    """Rounds every few minutes would make honest agencies offer more checkpoints a day than
    the hub keeps; the hub refuses to run so, rather than refuse them quietly."""
    mou = accept_multilateral(
        load_multilateral(world.ceremony.mou), local_agency=None, today=NOW.date()
    )
    key = HubKey.load(world.ceremony.hub_key, PASSPHRASE)
    with pytest.raises(InputError, match="too often"):
        Hub(
            mou,
            key.signing_key,
            tmp_path / "hub",
            clock=clock,
            rng=DeterministicRandom("hub"),
            every=MIN_EVERY / 2,
        )
