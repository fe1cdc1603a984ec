"""A rogue agency, a rogue hub and a colluding relay (xlink-hub-v1 §1, §4; docs/hub.md): nobody
impersonates an agency through the hub, and an agency talks only to the hub its MOU names."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from _hub import NOW, HubWorld, clock, make_world, running_hub

from xlink.crypto.hub_key import HubKey
from xlink.crypto.keyfiles import AgencyKeys
from xlink.crypto.keys import SigningKey
from xlink.crypto.rand import DeterministicRandom
from xlink.crypto.tls_certs import make_tls_identity
from xlink.error_codes import HubReason
from xlink.errors import HubError, PeerRefused
from xlink.hub import Hub, HubAddress
from xlink.hub.client import open_control, open_hub
from xlink.hub.wire import (
    PREAMBLE_CONTROL,
    PREAMBLE_PLAIN,
    PREAMBLE_SIZE,
    TLS_READY,
    Hello,
    Purpose,
    recv_message,
    send_message,
)
from xlink.policy.multilateral import HubParty, accept_multilateral, load_multilateral
from xlink.transport.handshake import tls_on_socket
from xlink.transport.tls import bound_client_context, bound_server_context

from _hub import PASSPHRASE  # isort: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> HubWorld:
    return make_world(tmp_path_factory.mktemp("rogue"))


def _key(world: HubWorld, agency: str) -> SigningKey:
    return AgencyKeys.load(world.ceremony.keys[agency], PASSPHRASE).signing_key


def _with_hub(world: HubWorld, test: Callable[[int], Awaitable[None]]) -> None:
    async def main() -> None:
        hub = world.hub()
        try:
            async with running_hub(hub) as port:
                await test(port)
        finally:
            hub.close()

    asyncio.run(main())


async def _refused(coro: Awaitable[object]) -> HubReason:
    with pytest.raises(HubError) as caught:
        await coro
    return caught.value.reason


def test_an_agency_signing_as_another_is_refused(world: HubWorld) -> None:
    async def test(port: int) -> None:
        reason = await _refused(
            open_control(
                world.address(port),
                agency="CA-RCMP",
                signing_key=_key(world, "CA-CBSA"),
                clock=clock,
                rng=DeterministicRandom(1),
            )
        )
        assert reason is HubReason.BAD_SIGNATURE
        # The hub is still there for the real one.
        sock = await open_control(
            world.address(port),
            agency="CA-RCMP",
            signing_key=_key(world, "CA-RCMP"),
            clock=clock,
            rng=DeterministicRandom(2),
        )
        sock.close()

    _with_hub(world, test)


def test_an_agency_the_mou_does_not_name_is_refused(world: HubWorld) -> None:
    async def test(port: int) -> None:
        stranger = SigningKey.generate(DeterministicRandom("stranger"))
        reason = await _refused(
            open_control(
                world.address(port),
                agency="XX-ROGUE",
                signing_key=stranger,
                clock=clock,
                rng=DeterministicRandom(1),
            )
        )
        # Refused as a bad signature: a stranger does not learn who the parties are.
        assert reason is HubReason.BAD_SIGNATURE

    _with_hub(world, test)


def test_a_hello_replayed_on_a_new_connection_is_refused(world: HubWorld) -> None:
    async def test(port: int) -> None:
        captured: list[Hello] = []
        original = send_message

        async def spy(sock: socket.socket, message: object) -> None:
            if isinstance(message, Hello):
                captured.append(message)
            await original(sock, message)  # type: ignore[arg-type]

        import xlink.hub.client as client

        client.send_message = spy  # type: ignore[assignment]
        try:
            with contextlib.suppress(HubError):  # US-DHS is offline: refused after the check
                sock = await open_hub(
                    world.address(port),
                    agency="CA-RCMP",
                    signing_key=_key(world, "CA-RCMP"),
                    purpose=Purpose.QUERY,
                    peer="US-DHS",
                    clock=clock,
                    rng=DeterministicRandom(3),
                )
                sock.close()
        finally:
            client.send_message = original
        (hello,) = captured
        # An eavesdropper replays the hello on its own connection: a new challenge.
        loop = asyncio.get_running_loop()
        replay = socket.create_connection(("127.0.0.1", port))
        replay.setblocking(False)
        await loop.sock_sendall(replay, PREAMBLE_PLAIN)
        await recv_message(replay)
        await send_message(replay, hello)
        with pytest.raises(HubError) as caught:
            await recv_message(replay)
        assert caught.value.reason is HubReason.BAD_SIGNATURE
        replay.close()
        del loop

    _with_hub(world, test)


def test_a_stale_hello_is_refused(world: HubWorld) -> None:
    async def test(port: int) -> None:
        reason = await _refused(
            open_control(
                world.address(port),
                agency="CA-RCMP",
                signing_key=_key(world, "CA-RCMP"),
                rng=DeterministicRandom(1),
                clock=lambda: NOW + timedelta(hours=1),
            )
        )
        assert reason is HubReason.STALE

    _with_hub(world, test)


def test_a_session_for_a_job_that_is_not_the_agencys_is_refused(world: HubWorld) -> None:
    async def test(port: int) -> None:
        reason = await _refused(
            open_hub(
                world.address(port),
                agency="CA-CBSA",
                signing_key=_key(world, "CA-CBSA"),
                purpose=Purpose.SESSION,
                job=bytes(16),
                clock=clock,
                rng=DeterministicRandom(1),
            )
        )
        assert reason is HubReason.UNKNOWN_JOB

    _with_hub(world, test)


def test_a_query_to_an_offline_partner_or_to_no_partner_is_refused(world: HubWorld) -> None:
    async def test(port: int) -> None:
        def ask(peer: str) -> Awaitable[object]:
            return open_hub(
                world.address(port),
                agency="US-DHS",
                signing_key=_key(world, "US-DHS"),
                purpose=Purpose.QUERY,
                peer=peer,
                clock=clock,
                rng=DeterministicRandom(peer),
            )

        assert await _refused(ask("CA-RCMP")) is HubReason.PEER_OFFLINE
        assert await _refused(ask("US-DHS")) is HubReason.NO_TERMS

    _with_hub(world, test)


def test_junk_instead_of_a_hello_is_refused_and_the_hub_goes_on(world: HubWorld) -> None:
    async def test(port: int) -> None:
        junk = socket.create_connection(("127.0.0.1", port))
        junk.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(junk, PREAMBLE_PLAIN)
        await recv_message(junk)
        await loop.sock_sendall(junk, b"\x00\x00\x00\x05hello")
        with pytest.raises(HubError) as caught:
            await recv_message(junk)
        assert caught.value.reason is HubReason.MALFORMED
        junk.close()
        sock = await open_control(
            world.address(port),
            agency="US-DHS",
            signing_key=_key(world, "US-DHS"),
            clock=clock,
            rng=DeterministicRandom(9),
        )
        sock.close()

    _with_hub(world, test)


def test_an_agency_refuses_a_hub_the_mou_does_not_name(world: HubWorld, tmp_path: Path) -> None:
    mou = accept_multilateral(
        load_multilateral(world.ceremony.mou), local_agency=None, today=NOW.date()
    )
    rogue = HubKey.generate(mou.hub.hub_id, rng=DeterministicRandom("rogue hub"))
    impostor = dataclasses.replace(
        mou, hub=HubParty(mou.hub.hub_id, mou.hub.name, rogue.verify_key)
    )

    async def main() -> None:
        hub = Hub(
            impostor,
            rogue.signing_key,
            tmp_path / "rogue-hub",
            clock=clock,
            rng=DeterministicRandom("rogue"),
        )
        try:
            async with running_hub(hub) as port:
                real = HubAddress("127.0.0.1", port, mou.hub)
                reason = await _refused(
                    open_control(
                        real,
                        agency="CA-RCMP",
                        signing_key=_key(world, "CA-RCMP"),
                        clock=clock,
                        rng=DeterministicRandom(1),
                    )
                )
                assert reason is HubReason.BAD_SIGNATURE
        finally:
            hub.close()

    asyncio.run(main())


def test_a_relay_that_splices_the_wrong_agency_is_caught_by_the_tls_pin(
    world: HubWorld, tmp_path: Path
) -> None:
    """Even a hub that colludes — splicing CA-CBSA into a job of CA-RCMP and US-DHS — gets
    CA-CBSA nowhere: US-DHS expects the certificate the MOU pins for CA-RCMP. A socket pair
    stands for the perfect splice."""

    async def main() -> None:
        dhs_side, rogue_side = socket.socketpair()
        for s in (dhs_side, rogue_side):
            s.setblocking(False)
        with (
            world.ceremony.open_agency(
                "US-DHS",
                "CA-RCMP",
                tmp_path / "dhs",
                passphrase=PASSPHRASE,
                clock=clock,
                rng=DeterministicRandom(1),
            ) as dhs,
            world.ceremony.open_agency(
                "CA-CBSA",
                "US-DHS",
                tmp_path / "cbsa",
                passphrase=PASSPHRASE,
                clock=clock,
                rng=DeterministicRandom(2),
            ) as cbsa,
        ):
            results = await asyncio.gather(
                tls_on_socket(
                    dhs_side,
                    server=True,
                    where="CA-RCMP through the hub",
                    timeout=5,
                    **dhs.tls_options(),
                ),
                tls_on_socket(
                    rogue_side,
                    server=False,
                    where="US-DHS through the hub",
                    timeout=5,
                    **cbsa.tls_options(),
                ),
                return_exceptions=True,
            )
        assert isinstance(results[0], PeerRefused), results

    asyncio.run(main())


def test_a_man_in_the_middle_of_a_control_connection_is_refused(world: HubWorld) -> None:
    """Someone on the path terminates the agency's control TLS with a certificate of its own
    and opens its own TLS to the hub, relaying the messages in between: the agency's hello
    signs the certificate it saw, which is not the hub's, so the hub refuses it (§4)."""

    async def test(port: int) -> None:
        ctx = bound_server_context(
            make_tls_identity(
                "MITM",
                not_before=NOW - timedelta(days=1),
                not_after=NOW + timedelta(days=1),
                key_seed=bytes(32),
            )
        )

        async def pump(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            w.transport.abort()

        async def in_the_middle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readexactly(PREAMBLE_SIZE)
            writer.write(TLS_READY)
            await writer.drain()
            await writer.start_tls(ctx)
            hub_r, hub_w = await asyncio.open_connection("127.0.0.1", port)
            hub_w.write(PREAMBLE_CONTROL)
            await hub_w.drain()
            assert await hub_r.readexactly(1) == TLS_READY
            await hub_w.start_tls(bound_client_context(), server_hostname="")
            await asyncio.gather(pump(reader, hub_w), pump(hub_r, writer))

        server = await asyncio.start_server(in_the_middle, "127.0.0.1", 0)
        try:
            mitm = HubAddress(
                "127.0.0.1", server.sockets[0].getsockname()[1], world.address(port).hub
            )
            reason = await _refused(
                open_control(
                    mitm,
                    agency="CA-RCMP",
                    signing_key=_key(world, "CA-RCMP"),
                    clock=clock,
                    rng=DeterministicRandom(5),
                )
            )
            assert reason is HubReason.BAD_SIGNATURE
        finally:
            server.close()

    _with_hub(world, test)
