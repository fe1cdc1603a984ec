"""Whole PSI sessions over real TLS sockets on 127.0.0.1, and over the in-memory pair."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from _stalling import against_a_stalling_peer, drip
from _transport_support import (
    OTHER_MOU_DIGEST,
    Identities,
    audit_key,
    make_session,
    ticking_clock,
    tokens_for,
)

from xlink.audit import AuditEvent, AuditLog
from xlink.audit.session import SessionAuditor
from xlink.errors import RemoteProtocolError
from xlink.protocol import AbortCode, PsiResult, PsiSession, Role, State, run_pair
from xlink.transport import (
    ConnectionLost,
    MemoryConnection,
    PeerAborted,
    TransportTimeout,
    connect,
    driver,
    memory_pair,
    run_session,
    serve_once,
)

IDLE = 5.0


async def _over_tls(
    identities: Identities,
    initiator: PsiSession,
    responder: PsiSession,
    *,
    initiator_auditor: SessionAuditor | None = None,
    responder_auditor: SessionAuditor | None = None,
) -> list[object]:
    """The responder serves, the initiator connects; each side's result or error."""
    port: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def responder_side() -> object:
        conn = await serve_once(
            "127.0.0.1",
            0,
            identity=identities.us,
            peer_cert_pem=identities.ca.cert_pem,
            pinned_sha256=identities.ca.fingerprint,
            timeout=IDLE,
            on_listening=port.set_result,
        )
        return await run_session(responder, conn, auditor=responder_auditor, idle_timeout=IDLE)

    async def initiator_side() -> object:
        conn = await connect(
            "127.0.0.1",
            await port,
            identity=identities.ca,
            peer_cert_pem=identities.us.cert_pem,
            pinned_sha256=identities.us.fingerprint,
            timeout=IDLE,
        )
        return await run_session(initiator, conn, auditor=initiator_auditor, idle_timeout=IDLE)

    return list(await asyncio.gather(responder_side(), initiator_side(), return_exceptions=True))


def _expected() -> tuple[PsiResult, PsiResult]:
    a, b = run_pair(make_session(Role.INITIATOR), make_session(Role.RESPONDER))
    assert isinstance(a, PsiResult) and isinstance(b, PsiResult)
    return a, b


def test_session_over_tls_gives_the_in_memory_results(identities: Identities) -> None:
    expected_initiator, expected_responder = _expected()
    assert expected_initiator.matched_tokens > 0
    responder_result, initiator_result = asyncio.run(
        _over_tls(identities, make_session(Role.INITIATOR), make_session(Role.RESPONDER))
    )
    assert initiator_result == expected_initiator
    assert responder_result == expected_responder


def test_session_over_the_memory_pair_gives_the_same_results() -> None:
    expected_initiator, expected_responder = _expected()

    async def scenario() -> list[object]:
        a, b = memory_pair(capacity=2)  # small: the writers must wait for the readers
        return list(
            await asyncio.gather(
                run_session(make_session(Role.INITIATOR), a, idle_timeout=IDLE),
                run_session(make_session(Role.RESPONDER), b, idle_timeout=IDLE),
            )
        )

    assert asyncio.run(scenario()) == [expected_initiator, expected_responder]


def test_tiny_receive_buffer_still_completes() -> None:
    """Backpressure from the driver's own inbox (max_buffered) must not deadlock the pair."""
    expected = list(_expected())

    async def scenario() -> list[object]:
        a, b = memory_pair(capacity=1)
        return list(
            await asyncio.gather(
                run_session(make_session(Role.INITIATOR), a, idle_timeout=IDLE, max_buffered=1),
                run_session(make_session(Role.RESPONDER), b, idle_timeout=IDLE, max_buffered=1),
            )
        )

    assert asyncio.run(scenario()) == expected


async def _send_all_then_read(session: PsiSession, conn: MemoryConnection) -> object:
    """A peer that sends every message it has due before it reads the next one: an order the
    spec allows (the send preference is a SHOULD), and the one that fills every buffer."""
    if session.role is Role.INITIATOR:
        session.initiate()
    while not session.done:
        while (message := session.next_message()) is not None:
            await conn.send(message)
        if not session.done:
            received = await conn.receive()
            assert received is not None
            session.receive_message(received)
    while (message := session.next_message()) is not None:
        await conn.send(message)
    return session.result


@pytest.mark.parametrize("ours", [Role.INITIATOR, Role.RESPONDER])
def test_a_peer_that_reads_only_between_bursts_does_not_stall_the_driver(ours: Role) -> None:
    """With a full inbox, a driver that only waited while its send was blocked would stop
    reading, and a peer still sending its burst would wait on it for ever. The driver goes on
    delivering while its send waits."""
    theirs = Role.RESPONDER if ours is Role.INITIATOR else Role.INITIATOR
    expected = dict(zip((Role.INITIATOR, Role.RESPONDER), _expected(), strict=True))

    async def scenario() -> list[object]:
        a, b = memory_pair(capacity=1)
        return list(
            await asyncio.wait_for(
                asyncio.gather(
                    run_session(make_session(ours), a, idle_timeout=IDLE, max_buffered=1),
                    _send_all_then_read(make_session(theirs), b),
                ),
                timeout=2 * IDLE,
            )
        )

    assert asyncio.run(scenario()) == [expected[ours], expected[theirs]]


def _aborts(path: Path) -> list[dict[str, object]]:
    with AuditLog.open(path, signing_key=None) as log:
        return [dict(e.fields) for e in log.entries() if e.kind is AuditEvent.SESSION_ABORTED]


def test_mou_digest_mismatch_aborts_both_sides_and_both_audit_it(
    identities: Identities, tmp_path: Path
) -> None:
    initiator = make_session(Role.INITIATOR)
    responder = make_session(Role.RESPONDER, mou_digest=OTHER_MOU_DIGEST)
    clock = ticking_clock()
    with (
        AuditLog.open(tmp_path / "ca.db", signing_key=audit_key("ca")) as ca_log,
        AuditLog.open(tmp_path / "us.db", signing_key=audit_key("us")) as us_log,
    ):
        ca = SessionAuditor(ca_log, initiator, own_tokens=80, clock=clock)
        us = SessionAuditor(us_log, responder, own_tokens=80, clock=clock)
        responder_error, initiator_error = asyncio.run(
            _over_tls(identities, initiator, responder, initiator_auditor=ca, responder_auditor=us)
        )
    # The responder detects it and tells the initiator, which learns it from the Abort.
    assert isinstance(responder_error, RemoteProtocolError)
    assert not isinstance(responder_error, PeerAborted)
    assert responder_error.code is AbortCode.MOU_MISMATCH
    assert isinstance(initiator_error, PeerAborted)
    assert initiator_error.code is AbortCode.MOU_MISMATCH
    for session in (initiator, responder):
        assert session.state is State.ABORTED and session.result is None
    assert _aborts(tmp_path / "us.db") == [
        {"code": "MOU_MISMATCH", "side": "LOCAL", "peer": "CA-RCMP"}
    ]
    assert _aborts(tmp_path / "ca.db") == [
        {"code": "MOU_MISMATCH", "side": "PEER", "peer": "US-DHS"}
    ]


def test_silent_peer_times_out_and_is_told_why(tmp_path: Path) -> None:
    """A peer that connects and says nothing: TIMEOUT within the idle timeout, an Abort is
    sent, and the abort is audited."""
    session = make_session(Role.RESPONDER)

    async def scenario() -> tuple[BaseException, bytes | None, float]:
        a, b = memory_pair()
        loop = asyncio.get_running_loop()
        start = loop.time()
        with AuditLog.open(tmp_path / "us.db", signing_key=audit_key("us")) as log:
            auditor = SessionAuditor(log, session, own_tokens=80, clock=ticking_clock())
            with pytest.raises(TransportTimeout) as info:
                await run_session(session, b, auditor=auditor, idle_timeout=0.3)
        return info.value, await a.receive(), loop.time() - start

    error, told, elapsed = asyncio.run(scenario())
    assert isinstance(error, RemoteProtocolError) and error.code is AbortCode.TIMEOUT
    assert told is not None  # the Abort frame
    assert 0.3 <= elapsed < 1.5
    assert session.result is None
    assert _aborts(tmp_path / "us.db") == [{"code": "TIMEOUT", "side": "LOCAL", "peer": "CA-RCMP"}]


def test_a_peer_dripping_messages_inside_the_idle_timeout_meets_the_time_limit(
    tmp_path: Path,
) -> None:
    """A peer that declares chunks of one element and sends one every 0.05 s never lets the
    0.5 s idle timeout fire (the margin is wide, so that a stall of the shared event loop does
    not fire it instead): its messages would hold us as long as it likes (with the largest
    sets and the default timeout, weeks). The session's time limit (ten idle timeouts plus the
    sets at ``min_pace``, here so fast that the sets add nothing: 5 s) ends it with TIMEOUT,
    audited."""
    victim = make_session(Role.RESPONDER)
    attacker = make_session(Role.INITIATOR, chunk_size=1)
    attacker.initiate()

    with AuditLog.open(tmp_path / "us.db", signing_key=audit_key("us")) as log:
        auditor = SessionAuditor(log, victim, own_tokens=80, clock=ticking_clock())
        error, elapsed = against_a_stalling_peer(
            lambda b: run_session(victim, b, auditor=auditor, idle_timeout=0.5, min_pace=1e9),
            lambda a: drip(
                a, attacker.receive_message, attacker.next_message, every=0.05, stop_after=12
            ),
        )
    assert isinstance(error, TransportTimeout), "the dripping peer held the session"
    assert error.code is AbortCode.TIMEOUT and "time limit" in error.detail
    assert 5.0 <= elapsed < 9.0
    assert victim.result is None and victim.state is State.ABORTED
    (aborted,) = _aborts(tmp_path / "us.db")
    assert (aborted["code"], aborted["side"]) == ("TIMEOUT", "LOCAL")


def test_peer_closing_early_is_connection_lost() -> None:
    session = make_session(Role.INITIATOR)

    async def scenario() -> None:
        a, b = memory_pair()
        await b.close()
        await run_session(session, a, idle_timeout=IDLE)

    with pytest.raises(ConnectionLost) as info:
        asyncio.run(scenario())
    assert info.value.code is AbortCode.CONNECTION_LOST
    assert session.state is State.ABORTED and session.result is None


def test_garbage_from_the_peer_is_answered_with_an_abort() -> None:
    session = make_session(Role.RESPONDER)

    async def scenario() -> bytes | None:
        a, b = memory_pair()
        await a.send(b"\xff not a message")
        with pytest.raises(RemoteProtocolError):
            await run_session(session, b, idle_timeout=IDLE)
        return await a.receive()

    assert asyncio.run(scenario()) is not None
    assert session.state is State.ABORTED


def test_finished_session_is_refused() -> None:
    a_session, b_session = make_session(Role.INITIATOR), make_session(Role.RESPONDER)
    run_pair(a_session, b_session)

    async def scenario() -> None:
        a, _ = memory_pair()
        await run_session(a_session, a, idle_timeout=IDLE)

    with pytest.raises(Exception, match="already finished"):
        asyncio.run(scenario())
    assert len(tokens_for(Role.INITIATOR)) == 80


def test_a_finished_session_waits_for_its_last_send_without_spinning() -> None:
    """The message that finishes a session may still be waiting for the peer to read when the
    peer's next frame (or its close) is already in: the driver must wait for the send, not go
    round checking an inbox it will never deliver (which kept a core busy until the write
    timeout)."""
    initiator, responder = make_session(Role.INITIATOR), make_session(Role.RESPONDER)
    run_pair(initiator, responder)
    assert initiator.done

    async def scenario() -> int:
        ours, theirs = memory_pair(capacity=1)
        await ours.send(b"fills the pipe")  # the peer reads only later: our next send waits
        inbox = driver._Inbox(1 << 20)
        await inbox.put(b"a frame that arrived after the end")
        waits = 0
        wait = inbox.wait

        async def counted() -> None:
            nonlocal waits
            waits += 1
            await wait()

        inbox.wait = counted  # type: ignore[method-assign]

        async def read_later() -> None:
            await asyncio.sleep(0.05)
            await theirs.receive()

        reader = asyncio.create_task(read_later())
        await driver._send(initiator, ours, b"our last message", inbox, None)
        await reader
        return waits

    assert asyncio.run(scenario()) == 0
