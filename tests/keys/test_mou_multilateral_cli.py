"""``xlink mou fill|sign|verify`` on a multilateral MOU (docs/mou.md §8.5): the hub template
filled with three bundles and the hub's key, signed by each agency, verified by each agency and
the hub, and the pair view's digest printed with ``--peer``. The bilateral commands are tested
in test_keys_cli.py; ``verify --peer`` on a bilateral MOU here."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from xlink.ceremony import demo_ceremony
from xlink.cli.exitcodes import ExitCode
from xlink.cli.main import main
from xlink.crypto.envelope import TEST_KDF
from xlink.crypto.hub_key import HubKey
from xlink.crypto.keyfiles import AgencyKeys
from xlink.crypto.rand import DeterministicRandom, system_random
from xlink.policy import (
    load_hub_template,
    load_multilateral,
    mou_digest,
    multilateral_digest,
    pair_mou,
)
from xlink.policy.template import HUB_TEMPLATE_RESOURCE

RCMP, CBSA, DHS, HUB = "CA-RCMP", "CA-CBSA", "US-DHS", "CA-PS-HUB"
AGENCIES = (RCMP, CBSA, DHS)
PASSPHRASE = "multilateral cli tests, not secret"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TODAY = "2026-03-01"
TEMPLATE = str(Path(__file__).resolve().parents[2] / "xlink" / HUB_TEMPLATE_RESOURCE)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A key directory per agency (sealed with TEST_KDF), by agency id."""
    base = tmp_path_factory.mktemp("keys")
    dirs = {}
    for agency in AGENCIES:
        generated = AgencyKeys.generate(
            agency, rng=DeterministicRandom(f"cli/{agency}"), now=NOW, valid_days=30
        )
        dirs[agency] = base / agency
        generated.save(dirs[agency], PASSPHRASE.encode(), params=TEST_KDF, rng=system_random)
    return dirs


HUB_KEY = HubKey.generate(HUB, rng=DeterministicRandom("cli/hub"))
HUB_HEX = bytes(HUB_KEY.verify_key).hex()


@pytest.fixture(autouse=True)
def _passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XLINK_PASSPHRASE", PASSPHRASE)


def _fill(keys: dict[str, Path], out: Path, *extra: str, template: str = TEMPLATE) -> int:
    bundles = [arg for a in AGENCIES for arg in ("--bundle", str(keys[a] / "public.json"))]
    argv = ["mou", "fill", template, *bundles, "--out", str(out), "--today", TODAY, *extra]
    return main(argv)


def _sign(keys: dict[str, Path], mou: Path, agency: str) -> int:
    return main(["mou", "sign", str(mou), "--keys", str(keys[agency]), "--agency", agency])


def _verify(mou: Path, agency: str, *extra: str) -> int:
    return main(["mou", "verify", str(mou), "--agency", agency, "--today", TODAY, *extra])


def _json(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    parsed = json.loads(capsys.readouterr().out)
    assert isinstance(parsed, dict)
    return parsed


@pytest.fixture
def signed(keys: dict[str, Path], tmp_path: Path) -> Path:
    out = tmp_path / "hub-mou.toml"
    assert _fill(keys, out, "--hub-key-pub", HUB_HEX) == ExitCode.OK
    for agency in AGENCIES:
        assert _sign(keys, out, agency) == ExitCode.OK
    return out


def test_fill_sign_verify_end_to_end(
    keys: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "hub-mou.json"
    assert _fill(keys, out, "--hub-key-pub", HUB_HEX, "--json") == ExitCode.OK
    filled = _json(capsys)
    assert filled["format"] == "xlink-mou-multilateral-v1"
    assert filled["hub"] == {"hub_id": HUB, "verify_key": HUB_HEX}
    assert filled["signatures"] == []
    mou = load_multilateral(out).mou
    assert filled["digest"] == multilateral_digest(mou).hex()
    for agency in AGENCIES:
        assert _verify(out, agency) == ExitCode.POLICY  # not signed by everyone yet
        capsys.readouterr()
        assert _sign(keys, out, agency) == ExitCode.OK
    printed = capsys.readouterr().out
    assert "pairs with terms (3):" in printed and f"{CBSA}+{DHS}: watchlist, traveller" in printed
    assert f"signed by: {RCMP}, {CBSA}, {DHS}" in printed
    for agency in (*AGENCIES, HUB):
        assert _verify(out, agency) == ExitCode.OK
    assert f"accepted for the hub {HUB} on {TODAY}" in capsys.readouterr().out


def test_verify_prints_the_pair_view_digest(
    signed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    view = pair_mou(load_multilateral(signed).mou, DHS, CBSA)
    assert _verify(signed, DHS, "--peer", CBSA) == ExitCode.OK
    out = capsys.readouterr().out
    assert f"pair view {view.id} ({DHS} + {CBSA}): digest {mou_digest(view).hex()}" in out
    assert _verify(signed, CBSA, "--peer", DHS, "--json") == ExitCode.OK
    summary = _json(capsys)
    assert summary["accepted"] is True
    assert summary["pair"] == {"id": view.id, "peer": DHS, "digest": mou_digest(view).hex()}
    pairs = summary["pairs"]
    assert isinstance(pairs, list)
    assert [p["pair"] for p in pairs] == [[CBSA, RCMP], [CBSA, DHS], [RCMP, DHS]]


def test_verify_refuses_a_missing_signature(
    keys: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "hub-mou.toml"
    assert _fill(keys, out, "--hub-key-pub", HUB_HEX) == ExitCode.OK
    for agency in (RCMP, DHS):
        assert _sign(keys, out, agency) == ExitCode.OK
    capsys.readouterr()
    assert _verify(out, HUB, "--json") == ExitCode.POLICY
    assert _json(capsys)["reasons"] == [f"signature-missing:{CBSA}"]


def test_verify_refuses_a_pair_without_terms(
    keys: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = json.loads(load_hub_template().document)
    doc["terms"] = [t for t in doc["terms"] if set(t["parties"]) != {CBSA, DHS}]
    template = tmp_path / "template.json"
    template.write_text(json.dumps(doc), encoding="utf-8")
    out = tmp_path / "hub-mou.toml"
    assert _fill(keys, out, "--hub-key-pub", HUB_HEX, template=str(template)) == ExitCode.OK
    for agency in AGENCIES:
        assert _sign(keys, out, agency) == ExitCode.OK
    capsys.readouterr()
    assert _verify(out, CBSA, "--peer", DHS) == ExitCode.POLICY
    assert f"  no-terms:{CBSA}+{DHS}" in capsys.readouterr().out
    assert _verify(out, CBSA, "--peer", RCMP) == ExitCode.OK


def test_verify_peer_needs_an_agency_of_the_pair(
    signed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _verify(signed, HUB, "--peer", DHS) == ExitCode.INPUT
    assert "--peer" in capsys.readouterr().err
    assert _verify(signed, DHS, "--peer", DHS) == ExitCode.INPUT
    assert _verify(signed, "MX-SAT") == ExitCode.POLICY


def test_the_hub_key_may_come_from_a_file(keys: dict[str, Path], tmp_path: Path) -> None:
    hex_file = tmp_path / "hub.pub"
    hex_file.write_text(HUB_HEX + "\n", encoding="utf-8")
    out = tmp_path / "a.toml"
    assert _fill(keys, out, "--hub-key-pub", str(hex_file)) == ExitCode.OK
    assert load_multilateral(out).mou.hub.verify_key == HUB_KEY.verify_key
    json_file = tmp_path / "hub.json"
    json_file.write_text(json.dumps({"hub_id": HUB, "verify_key": HUB_HEX}), encoding="utf-8")
    out = tmp_path / "b.toml"
    assert _fill(keys, out, "--hub-key-pub", str(json_file)) == ExitCode.OK
    assert load_multilateral(out).mou.hub.verify_key == HUB_KEY.verify_key


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ((), "--hub-key-pub: required"),
        (("--hub-key-pub", "00" * 32), "--hub-key-pub: not a valid Ed25519 public key"),
        (("--hub-key-pub", "nowhere.pub"), "--hub-key-pub: cannot read nowhere.pub"),
        (
            ("--hub-key-pub", HUB_HEX, "--set-size-budget-per-day", "1048576"),
            "--set-size-budget-per-day: a multilateral MOU sets it per pair",
        ),
    ],
)
def test_fill_refuses_what_a_multilateral_template_cannot_take(
    keys: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: tuple[str, ...],
    message: str,
) -> None:
    out = tmp_path / "mou.toml"
    assert _fill(keys, out, *extra) == ExitCode.INPUT
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_fill_refuses_another_hubs_key_file(
    keys: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    json_file = tmp_path / "hub.json"
    json_file.write_text(json.dumps({"hub_id": "US-HUB", "verify_key": HUB_HEX}), "utf-8")
    assert _fill(keys, tmp_path / "m.toml", "--hub-key-pub", str(json_file)) == ExitCode.INPUT
    assert "the key of another hub" in capsys.readouterr().err


def test_fill_refuses_a_hub_key_for_a_bilateral_template(
    keys: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundles = [arg for a in (RCMP, DHS) for arg in ("--bundle", str(keys[a] / "public.json"))]
    argv = ["mou", "fill", *bundles, "--out", str(tmp_path / "m.toml"), "--today", TODAY]
    assert main([*argv, "--hub-key-pub", HUB_HEX]) == ExitCode.INPUT
    assert "--hub-key-pub: only for a multilateral template" in capsys.readouterr().err
    assert main(argv) == ExitCode.OK


def test_sign_refuses_keys_that_are_not_the_agencys(
    keys: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "hub-mou.toml"
    assert _fill(keys, out, "--hub-key-pub", HUB_HEX) == ExitCode.OK
    argv = ["mou", "sign", str(out), "--keys", str(keys[DHS]), "--agency", CBSA]
    assert main(argv) == ExitCode.INPUT
    assert f"holds the keys of {DHS}, not {CBSA}" in capsys.readouterr().err
    assert main(["mou", "sign", str(out), "--keys", str(keys[DHS]), "--agency", HUB]) == 3
    assert load_multilateral(out).signatures == {}


def test_verify_peer_on_a_bilateral_mou(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c = demo_ceremony(
        tmp_path, passphrase=PASSPHRASE.encode(), now=datetime.now(UTC), rng=system_random
    )
    today = datetime.now(UTC).date().isoformat()
    argv = ["mou", "verify", str(c.mou), "--agency", RCMP, "--today", today]
    assert main([*argv, "--peer", DHS]) == ExitCode.OK
    capsys.readouterr()
    assert main([*argv, "--peer", CBSA, "--json"]) == ExitCode.POLICY
    assert _json(capsys)["reasons"] == [f"not-a-party:{CBSA}"]
