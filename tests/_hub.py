"""Three agencies and a hub for the hub tests (docs/hub.md): CA-RCMP, CA-CBSA and US-DHS under
the bundled multilateral demo MOU, each with bundled lists of its own."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from xlink.ceremony import HubCeremonyFiles, hub_ceremony
from xlink.crypto.hub_key import HubKey
from xlink.crypto.rand import DeterministicRandom, RandomSource
from xlink.crypto.suite import DEFAULT_SUITE
from xlink.hub import AgentFiles, Hub, HubAddress, HubAgent
from xlink.hub.schedule import JobState
from xlink.hub.server import Capture
from xlink.policy.multilateral import accept_multilateral, load_multilateral
from xlink.samples import sample_path

PASSPHRASE = b"correct horse battery staple hub"
# The start of this hour, fixed for the run: the tests pass it as every party's clock, but TLS
# checks the ceremony's certificates (valid two days from it) against the real time, so a
# fixed date made every hub test fail two days after it was written.
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
LISTS: dict[str, tuple[str, ...]] = {
    "CA-RCMP": ("ca_sex_offenders.csv",),
    "CA-CBSA": ("ca_watchlist.csv",),
    "US-DHS": ("us_watchlist.csv", "us_travellers.csv"),
}
AGENCIES = tuple(LISTS)


def clock() -> datetime:
    return NOW


@dataclass
class HubWorld:
    base: Path
    ceremony: HubCeremonyFiles
    #: The PSI ciphersuite each agency's agent proposes (default: the default suite).
    suites: dict[str, int] = field(default_factory=dict)

    def files(self, agency: str, lists: tuple[str, ...] | None = None) -> AgentFiles:
        names = LISTS[agency] if lists is None else lists
        return AgentFiles(
            agency=agency,
            keys_dir=self.ceremony.keys[agency],
            passphrase=PASSPHRASE,
            mou=self.ceremony.mou,
            bundles={a: p for a, p in self.ceremony.bundles.items() if a != agency},
            files=tuple(sample_path(n) for n in names),
            suite_id=self.suites.get(agency, DEFAULT_SUITE.suite_id),
        )

    def workdir(self, agency: str) -> Path:
        return self.base / f"{agency.lower()}-work"

    def hub(
        self,
        *,
        capture: Capture | None = None,
        job_timeout: float = 60.0,
        workdir: Path | None = None,
    ) -> Hub:
        mou = accept_multilateral(
            load_multilateral(self.ceremony.mou), local_agency=None, today=NOW.date()
        )
        key = HubKey.load(self.ceremony.hub_key, PASSPHRASE)
        return Hub(
            mou,
            key.signing_key,
            self.base / "hub-work" if workdir is None else workdir,
            clock=clock,
            rng=DeterministicRandom("hub"),
            job_timeout=job_timeout,
            capture=capture,
        )

    def address(self, port: int) -> HubAddress:
        mou = accept_multilateral(
            load_multilateral(self.ceremony.mou), local_agency=None, today=NOW.date()
        )
        return HubAddress("127.0.0.1", port, mou.hub)

    def agent(
        self,
        agency: str,
        port: int,
        rng: RandomSource | None = None,
        *,
        workdir: Path | None = None,
    ) -> HubAgent:
        return HubAgent(
            self.files(agency),
            self.address(port),
            self.workdir(agency) if workdir is None else workdir,
            clock=clock,
            rng=rng or DeterministicRandom(f"agent {agency}"),
            session_wait=30.0,
            idle_timeout=30.0,
        )


def make_world(base: Path, *, now: datetime = NOW) -> HubWorld:
    """The ceremony for the three agencies and the hub, dated ``now`` (valid two days): the
    fixed :data:`NOW` for tests that pass clocks, the real time for separate processes."""
    ceremony = hub_ceremony(
        base / "ceremony", passphrase=PASSPHRASE, now=now, rng=DeterministicRandom("ceremony")
    )
    return HubWorld(base, ceremony)


@contextlib.asynccontextmanager
async def running_hub(hub: Hub) -> AsyncIterator[int]:
    """The hub serving on 127.0.0.1 (a free port, yielded) until the block ends."""
    bound: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(hub.serve("127.0.0.1", 0, on_listening=bound.set_result))
    try:
        yield await bound
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@contextlib.asynccontextmanager
async def running_agents(agents: list[HubAgent]) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(a.run()) for a in agents]
    try:
        async with asyncio.timeout(30):
            for a in agents:
                await a.connected.wait()
        yield
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for a in agents:
            a.close()


async def until(condition: Callable[[], bool], timeout: float = 120.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.1)


async def run_round(hub: Hub) -> None:
    """Schedule a round of every pair and wait until none of its jobs is pending or running."""
    hub.add_round()
    await until(
        lambda: (
            not hub.schedule.jobs(state=JobState.PENDING)
            and not hub.schedule.jobs(state=JobState.RUNNING)
        )
    )
