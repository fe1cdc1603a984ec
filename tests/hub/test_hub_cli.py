"""``xlink hub`` refuses bad input before anything reaches the network, with the exit codes of
docs/cli.md."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from _hub import PASSPHRASE, HubWorld, make_world

from xlink.audit import Checkpoint, PublishedCheckpoint
from xlink.cli.main import main
from xlink.crypto.keys import SigningKey
from xlink.crypto.rand import DeterministicRandom
from xlink.crypto.suite import DEFAULT_SUITE
from xlink.hub import AgentFiles
from xlink.hub.schedule import Schedule
from xlink.samples import sample_path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> HubWorld:
    return make_world(tmp_path_factory.mktemp("cli"), now=datetime.now(UTC))


@pytest.fixture(autouse=True)
def _passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XLINK_HUB_CLI_PASS", PASSPHRASE.decode())


def _agency_args(world: HubWorld, agency: str, bundles: list[str], work: Path) -> list[str]:
    c = world.ceremony
    return [
        "--agency", agency, "--keys", str(c.keys[agency]), "--mou", str(c.mou),
        *(x for b in bundles for x in ("--bundle", str(c.bundles[b]))),
        "--hub", "127.0.0.1:9", "--workdir", str(work), "--passphrase-env", "XLINK_HUB_CLI_PASS",
    ]  # fmt: skip


def test_hub_agent_proposes_the_suite_given(
    world: HubWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``hub agent --psi-suite`` reaches the agent's exchanges (AgentFiles.suite_id; the
    exchange itself: tests/hub/test_hub_suites.py). The agent is stood in for, so that nothing
    connects."""
    import xlink.cli.cmd_hub

    seen: list[int] = []

    class _Agent:
        def __init__(self, files: AgentFiles, *args: object, **kwargs: object) -> None:
            seen.append(files.suite_id)

        async def run(self) -> None:
            return None

        def close(self) -> None:
            return None

    monkeypatch.setattr(xlink.cli.cmd_hub, "HubAgent", _Agent)
    args = _agency_args(world, "US-DHS", ["CA-RCMP", "CA-CBSA"], tmp_path)
    lists = str(sample_path("us_watchlist.csv"))
    assert main(["hub", "agent", *args, lists]) == 0
    assert main(["hub", "agent", *args, "--psi-suite", "1", lists]) == 0
    assert seen == [DEFAULT_SUITE.suite_id, 1]


def test_ask_without_a_partners_bundle_is_an_input_error(world: HubWorld, tmp_path: Path) -> None:
    args = _agency_args(world, "US-DHS", ["CA-RCMP"], tmp_path)
    assert main(["hub", "ask", *args, str(sample_path("us_travellers.csv"))]) == 3


def test_ask_of_a_partner_the_mou_does_not_allow_is_a_policy_refusal(
    world: HubWorld, tmp_path: Path
) -> None:
    args = _agency_args(world, "US-DHS", ["CA-RCMP", "CA-CBSA"], tmp_path)
    manifest = str(sample_path("us_travellers.csv"))
    assert main(["hub", "ask", *args, "--partner", "CA-CSBA", manifest]) == 5
    assert main(["hub", "ask", *args, "--partner", "US-DHS", manifest]) == 5


def test_our_own_bundle_is_not_a_partners(world: HubWorld, tmp_path: Path) -> None:
    args = _agency_args(world, "US-DHS", ["CA-RCMP", "CA-CBSA", "US-DHS"], tmp_path)
    assert main(["hub", "ask", *args, str(sample_path("us_travellers.csv"))]) == 3


def test_export_checkpoints_of_a_pair_the_hub_never_saw_is_an_input_error(
    world: HubWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hub_dir = tmp_path / "hub"
    hub_dir.mkdir()
    with Schedule.open(hub_dir / "schedule.db", now=datetime.now(UTC)) as schedule:
        audit = SigningKey.generate(DeterministicRandom("audit"))
        unsigned = Checkpoint(1, bytes(32), datetime.now(UTC), 0, 100, bytes(64))
        signed = dataclasses.replace(unsigned, signature=audit.sign(unsigned.message()))
        text = json.dumps(PublishedCheckpoint(audit.verify_key, signed).to_json())
        schedule.keep_checkpoint("CA-RCMP", "US-DHS", 1, text, bytes(64), datetime.now(UTC))
    base = ["hub", "export-checkpoints", "--workdir", str(hub_dir), "--agency"]
    assert main([*base, "CA-CSBA", "--partner", "US-DHS"]) == 3
    assert "keeps no checkpoint" in capsys.readouterr().err
    out = tmp_path / "existing.json"
    out.write_text("keep me", encoding="utf-8")
    assert main([*base, "CA-RCMP", "--partner", "US-DHS", "--out", str(out)]) == 3
    assert out.read_text(encoding="utf-8") == "keep me"


def test_min_lists_below_one_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["hub", "matches", "--workdir", str(tmp_path), "--min-lists", "0"])
    assert caught.value.code == 2
