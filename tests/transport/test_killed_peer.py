"""A peer process killed (SIGKILL) at each phase of a session over real TLS sockets: the
survivor aborts within its idle timeout with TIMEOUT or CONNECTION_LOST, has no result, and
its audit log holds the abort."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import pytest
from _transport_support import Identities, audit_key, make_session, ticking_clock

from xlink.audit import AuditEvent, AuditLog
from xlink.audit.session import SessionAuditor
from xlink.crypto.tls_certs import TlsIdentity
from xlink.errors import RemoteProtocolError
from xlink.protocol import AbortCode, Role, State
from xlink.transport import FramedConnection, connect, run_session, serve_once

VICTIM = Path(__file__).with_name("_victim.py")
IDLE = 2.0  # the survivor's idle timeout
SLACK = 1.5  # the bounded Abort and close (abort_timeout, 1 s), and scheduling
PHASES = ["connect", "hello", "elements", "reblinded", "reveal"]


def _victim_config(
    path: Path, *, side: str, phase: str, me: TlsIdentity, peer: TlsIdentity, port: int = 0
) -> Path:
    path.write_text(
        json.dumps(
            {
                "side": side,
                "role": "INITIATOR" if side == "client" else "RESPONDER",
                "phase": phase,
                "cert": me.cert_pem.decode(),
                "key": me.key_pem.decode(),
                "peer_cert": peer.cert_pem.decode(),
                "pin": peer.fingerprint.hex(),
                "port": port,
            }
        )
    )
    return path


async def _spawn(config: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, str(VICTIM), str(config), stdout=asyncio.subprocess.PIPE
    )


async def _survive(
    identities: Identities, tmp_path: Path, *, victim_side: str, phase: str
) -> tuple[BaseException | None, float, int, bytes, Role]:
    """Run the survivor against a victim process; the survivor's error, how long its session
    ran, the victim's exit status and output, and the survivor's role."""
    loop = asyncio.get_running_loop()
    config = tmp_path / "victim.json"
    if victim_side == "client":
        role = Role.RESPONDER
        port: asyncio.Future[int] = loop.create_future()
        serving = asyncio.create_task(
            serve_once(
                "127.0.0.1",
                0,
                identity=identities.us,
                peer_cert_pem=identities.ca.cert_pem,
                pinned_sha256=identities.ca.fingerprint,
                timeout=10.0,
                on_listening=port.set_result,
            )
        )
        victim = await _spawn(
            _victim_config(
                config,
                side="client",
                phase=phase,
                me=identities.ca,
                peer=identities.us,
                port=await port,
            )
        )
        conn: FramedConnection = await serving
    else:
        role = Role.INITIATOR
        victim = await _spawn(
            _victim_config(config, side="server", phase=phase, me=identities.us, peer=identities.ca)
        )
        assert victim.stdout is not None
        line = await asyncio.wait_for(victim.stdout.readline(), 10.0)
        conn = await connect(
            "127.0.0.1",
            int(line.split()[1]),
            identity=identities.ca,
            peer_cert_pem=identities.us.cert_pem,
            pinned_sha256=identities.us.fingerprint,
            timeout=10.0,
        )
    session = make_session(role)
    error: BaseException | None = None
    with AuditLog.open(tmp_path / "survivor.db", signing_key=audit_key("survivor")) as log:
        auditor = SessionAuditor(log, session, own_tokens=80, clock=ticking_clock())
        start = loop.time()
        try:
            await run_session(session, conn, auditor=auditor, idle_timeout=IDLE)
        except Exception as exc:
            error = exc
        elapsed = loop.time() - start
    assert session.result is None and session.state is State.ABORTED
    if phase == "frozen":
        victim.send_signal(signal.SIGKILL)
    out, _ = await asyncio.wait_for(victim.communicate(), 10.0)
    return error, elapsed, victim.returncode or 0, out, role


def _audited_aborts(path: Path) -> list[dict[str, object]]:
    with AuditLog.open(path, signing_key=None) as log:
        return [dict(e.fields) for e in log.entries() if e.kind is AuditEvent.SESSION_ABORTED]


@pytest.mark.parametrize("victim_side", ["client", "server"])
@pytest.mark.parametrize("phase", PHASES)
def test_survivor_aborts_cleanly_when_the_peer_is_killed(
    identities: Identities, tmp_path: Path, phase: str, victim_side: str
) -> None:
    error, elapsed, status, out, role = asyncio.run(
        _survive(identities, tmp_path, victim_side=victim_side, phase=phase)
    )
    assert status == -signal.SIGKILL, out  # it died at the phase, not by finishing
    assert b"COMPLETED" not in out
    assert isinstance(error, RemoteProtocolError)
    assert error.code in {AbortCode.CONNECTION_LOST, AbortCode.TIMEOUT}
    assert elapsed < IDLE + SLACK
    peer = "CA-RCMP" if role is Role.RESPONDER else "US-DHS"
    (aborted,) = _audited_aborts(tmp_path / "survivor.db")
    assert {k: aborted[k] for k in ("code", "side", "peer")} == {
        "code": error.code.name,
        "side": "LOCAL",
        "peer": peer,
    }


def test_frozen_peer_is_noticed_by_the_idle_timeout(identities: Identities, tmp_path: Path) -> None:
    """A peer that stops (SIGSTOP) keeps its socket open: only the idle timeout can notice."""
    error, elapsed, status, _, _ = asyncio.run(
        _survive(identities, tmp_path, victim_side="client", phase="frozen")
    )
    assert status == -signal.SIGKILL
    assert isinstance(error, RemoteProtocolError) and error.code is AbortCode.TIMEOUT
    assert IDLE <= elapsed < IDLE + SLACK
    assert _audited_aborts(tmp_path / "survivor.db")[0]["code"] == "TIMEOUT"
