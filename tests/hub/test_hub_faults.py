"""The hub's faults with every party in its own process on 127.0.0.1 (docs/hub.md, "Faults"):
``xlink hub serve`` and three ``xlink hub agent`` s, killed and started again."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from _hub import AGENCIES, LISTS, PASSPHRASE, HubWorld, make_world

from xlink.audit import AuditEvent, AuditLog
from xlink.hub import partner_workdir
from xlink.samples import sample_path

pytestmark = pytest.mark.slow

ENV_VAR = "XLINK_HUB_TEST_PASSPHRASE"


def _xlink(*args: str) -> list[str]:
    return [sys.executable, "-m", "xlink.cli.main", *args]


def _env() -> dict[str, str]:
    return {**os.environ, ENV_VAR: PASSPHRASE.decode()}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Processes:
    def __init__(self, world: HubWorld, port: int) -> None:
        self.world, self.port = world, port
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def _start(self, name: str, argv: list[str]) -> None:
        log = (self.world.base / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(argv, env=_env(), stdout=log, stderr=log)

    def hub(self, *extra: str) -> None:
        c = self.world.ceremony
        self._start("hub", _xlink(
            "hub", "serve", "--mou", str(c.mou), "--key", str(c.hub_key),
            "--workdir", str(self.world.base / "hub-work"),
            "--listen", f"127.0.0.1:{self.port}", "--job-timeout", "60",
            "--passphrase-env", ENV_VAR, *extra,
        ))  # fmt: skip

    def agent(self, agency: str) -> None:
        c = self.world.ceremony
        bundles = [a for p, b in c.bundles.items() if p != agency for a in ("--bundle", str(b))]
        self._start(agency, _xlink(
            "hub", "agent", "--agency", agency, "--keys", str(c.keys[agency]),
            "--mou", str(c.mou), *bundles, "--hub", f"127.0.0.1:{self.port}",
            "--workdir", str(self.world.workdir(agency)), "--passphrase-env", ENV_VAR,
            *(str(sample_path(n)) for n in LISTS[agency]),
        ))  # fmt: skip

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()

    def status(self) -> list[dict[str, object]]:
        db = self.world.base / "hub-work" / "schedule.db"
        if not db.exists():
            return []
        out = subprocess.run(
            _xlink("hub", "status", "--workdir", str(self.world.base / "hub-work"), "--json"),
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if out.returncode != 0:
            return []  # the hub is creating it
        jobs: list[dict[str, object]] = json.loads(out.stdout)["jobs"]
        return jobs

    def wait_for(self, what: str, test: Callable[[list[dict[str, object]]], bool]) -> None:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            jobs = self.status()
            if jobs and test(jobs):
                return
            for name, proc in self.procs.items():
                assert proc.poll() is None, f"{name} exited: {self._log(name)}"
            time.sleep(0.3)
        raise AssertionError(f"timed out waiting for {what}: {self.status()}\n{self._log('hub')}")

    def _log(self, name: str) -> str:
        path = self.world.base / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


@contextlib.contextmanager
def processes(tmp_path: Path) -> Iterator[Processes]:
    world = make_world(tmp_path, now=datetime.now(UTC))
    p = Processes(world, _free_port())
    try:
        yield p
    finally:
        p.stop_all()


def _with(agency: str) -> Callable[[dict[str, object]], bool]:
    return lambda j: agency in (j["initiator"], j["responder"])


def _sent_twice(world: HubWorld) -> list[str]:
    """Releases any agency sent twice over all its runs (the exchange path must never)."""
    twice = []
    for agency in AGENCIES:
        for peer in AGENCIES:
            log = partner_workdir(world.workdir(agency), peer) / "audit.db"
            if peer == agency or not log.exists():
                continue
            with AuditLog.open(log, signing_key=None) as audit:
                handles = [
                    e.fields["handle"] for e in audit.entries(kinds={AuditEvent.RELEASE_SENT})
                ]
            if len(handles) != len(set(handles)):
                twice.append(f"{agency}->{peer}")
    return twice


def test_an_agency_that_drops_mid_schedule_stalls_only_its_own_jobs(tmp_path: Path) -> None:
    with processes(tmp_path) as p:
        p.hub("--round")
        for agency in AGENCIES:
            p.agent(agency)
        p.wait_for(
            "a job of US-DHS running",
            lambda jobs: any(j["state"] == "running" and _with("US-DHS")(j) for j in jobs),
        )
        p.kill("US-DHS")
        p.wait_for(
            "the other pair done and US-DHS's jobs waiting",
            lambda jobs: all(
                j["state"] == "pending" if _with("US-DHS")(j)
                else j["state"] == "done"
                for j in jobs
            )
            and any(_with("US-DHS")(j) and j["reason"] == "peer-failed" for j in jobs),
        )  # fmt: skip
        p.agent("US-DHS")
        p.wait_for("every job done", lambda jobs: all(j["state"] == "done" for j in jobs))
        assert _sent_twice(p.world) == []


def test_a_hub_that_crashes_and_restarts_loses_no_scheduled_exchange(tmp_path: Path) -> None:
    with processes(tmp_path) as p:
        p.hub("--round")
        for agency in AGENCIES:
            p.agent(agency)
        p.wait_for("a job running", lambda jobs: any(j["state"] == "running" for j in jobs))
        p.kill("hub")
        p.hub()  # no new round: the one scheduled before the crash must finish
        p.wait_for("every job done", lambda jobs: all(j["state"] == "done" for j in jobs))
        jobs = p.status()
        assert len(jobs) == 3 and {j["round"] for j in jobs} == {1}
        assert _sent_twice(p.world) == []
        for agency in AGENCIES:
            for peer in AGENCIES:
                if peer != agency:
                    matches = partner_workdir(p.world.workdir(agency), peer) / "matches"
                    assert list(matches.glob("*.csv")), (agency, peer)


def test_a_rogue_agency_in_its_own_process_cannot_pass_for_another(tmp_path: Path) -> None:
    """CA-CBSA's operator runs a process that signs as CA-RCMP with CA-CBSA's key, on every
    kind of connection, throughout a round of the three real agents: every try is refused
    and the round completes as if it were not there."""
    with processes(tmp_path) as p:
        p.hub("--round")
        for agency in AGENCIES:
            p.agent(agency)
        p.wait_for("the hub's round", lambda jobs: len(jobs) == 3)
        rogue = subprocess.run(
            [sys.executable, str(Path(__file__).with_name("_rogue_agent.py")), str(p.port),
             str(p.world.ceremony.mou), str(p.world.ceremony.keys["CA-CBSA"]), ENV_VAR, "30"],
            env=_env(), capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert rogue.returncode == 0, rogue.stderr
        p.wait_for("every job done", lambda jobs: all(j["state"] == "done" for j in jobs))
        assert all(j["attempts"] == 1 for j in p.status())


def test_the_hub_demo_runs_three_agencies_through_the_hub(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from xlink.cli.main import main

    assert main(["demo", "--hub", "--out", str(tmp_path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["ok"] is True
    assert [j["state"] for j in summary["round"]] == ["done"] * 3
    assert {p["partner"]: p["ok"] for p in summary["query"]} == {"CA-RCMP": True, "CA-CBSA": True}
    assert all(p["matched"] > 0 for p in summary["query"])
    dhs = summary["combined"]["US-DHS"]["by_partner"]
    assert dhs["CA-RCMP"] > 0 and dhs["CA-CBSA"] > 0
