"""A party that is killed (SIGKILL, by itself) when its session reaches a given phase.

Run as ``python _victim.py <config.json>`` by tests/transport/test_killed_peer.py. The config
names the role, the phase, the TLS material and the survivor's port (for a client victim);
a server victim prints ``PORT <n>`` once it listens. The kill is real: the OS closes the
process's sockets, as when an agency's service crashes.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections import Counter
from pathlib import Path

from _transport_support import make_session

from xlink.crypto.tls_certs import TlsIdentity
from xlink.protocol import Role, decode_message
from xlink.transport import Connection, connect, run_session, serve_once

# phase -> (direction, message type, n): die just before the n-th such message is sent
# ("send"), or just after it is received ("recv").
PHASES = {
    "connect": None,
    "hello": ("recv", "Hello", 1),
    "elements": ("send", "Elements", 2),
    "reblinded": ("send", "Reblinded", 2),
    "reveal": ("send", "Reveal", 1),
    # Not killed but frozen (SIGSTOP) mid-Elements: the connection stays open and silent, so
    # the survivor can only notice by its idle timeout. The test kills it afterwards.
    "frozen": ("send", "Elements", 2),
}
FROZEN = False


def die() -> None:
    os.kill(os.getpid(), signal.SIGSTOP if FROZEN else signal.SIGKILL)


class DyingConnection:
    """Passes messages through to the real TLS connection, counting them by type."""

    def __init__(self, inner: Connection, phase: str) -> None:
        self._inner = inner
        self._trigger = PHASES[phase]
        self._seen: Counter[tuple[str, str]] = Counter()

    def _count(self, direction: str, message: bytes) -> None:
        key = (direction, type(decode_message(message)).__name__)
        self._seen[key] += 1
        if self._trigger is not None and (*key, self._seen[key]) == self._trigger:
            die()

    async def send(self, message: bytes) -> None:
        self._count("send", message)
        await self._inner.send(message)

    async def receive(self) -> bytes | None:
        message = await self._inner.receive()
        if message is not None:
            self._count("recv", message)
        return message

    async def close(self, timeout: float | None = None) -> None:
        await self._inner.close(timeout)


async def main(config: dict[str, str]) -> None:
    global FROZEN
    FROZEN = config["phase"] == "frozen"
    role = Role[config["role"]]
    identity = TlsIdentity(config["cert"].encode(), config["key"].encode())
    tls = {
        "identity": identity,
        "peer_cert_pem": config["peer_cert"].encode(),
        "pinned_sha256": bytes.fromhex(config["pin"]),
        "timeout": 10.0,
    }
    if config["side"] == "client":
        conn = await connect("127.0.0.1", int(config["port"]), **tls)  # type: ignore[arg-type]
    else:

        def announce(port: int) -> None:
            print(f"PORT {port}", flush=True)

        conn = await serve_once("127.0.0.1", 0, on_listening=announce, **tls)  # type: ignore[arg-type]
    if config["phase"] == "connect":
        die()
    session = make_session(role)
    await run_session(session, DyingConnection(conn, config["phase"]), idle_timeout=10.0)
    print("COMPLETED", flush=True)  # the phase was never reached: the test fails


if __name__ == "__main__":
    asyncio.run(main(json.loads(Path(sys.argv[1]).read_text())))
