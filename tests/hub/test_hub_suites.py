"""The PSI ciphersuite a hub agent proposes (`xlink hub agent --psi-suite`, `AgentFiles.suite_id`),
through a hub on 127.0.0.1: agencies on suite 1 (a partner whose xlink predates suite 2)
exchange every pair, and each audit log names the suite its sessions ran."""

from __future__ import annotations

import asyncio
from pathlib import Path

from _hub import AGENCIES, make_world, run_round, running_agents, running_hub

from xlink.audit import AuditEvent, AuditLog
from xlink.crypto.suite import SUITE_X25519
from xlink.hub import partner_workdir
from xlink.hub.schedule import JobState


def test_agents_on_suite_1_exchange_every_pair_and_audit_the_suite(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    world.suites = {a: SUITE_X25519.suite_id for a in AGENCIES}

    async def main() -> dict[tuple[str, str], JobState]:
        hub = world.hub()
        async with running_hub(hub) as port:
            agents = [world.agent(a, port) for a in AGENCIES]
            async with running_agents(agents):
                await run_round(hub)
        states = {(j.initiator, j.responder): j.state for j in hub.schedule.jobs()}
        hub.close()
        return states

    states = asyncio.run(main())
    assert set(states.values()) == {JobState.DONE} and len(states) == 3, states
    for agency in AGENCIES:
        for peer in AGENCIES:
            if peer == agency:
                continue
            path = partner_workdir(world.workdir(agency), peer) / "audit.db"
            with AuditLog.open(path, signing_key=None) as log:
                started = [e.fields for e in log.entries() if e.kind is AuditEvent.SESSION_STARTED]
            assert [f["suite"] for f in started] == [SUITE_X25519.suite_id], (agency, peer)
