"""``xlink mou fill --max-set-size [AGENCY=]N --set-size-budget-per-day N`` (docs/mou.md §6)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from _mou_support import CA, US

from xlink.cli.exitcodes import ExitCode
from xlink.cli.main import main
from xlink.crypto.keyfiles import AgencyKeys
from xlink.crypto.rand import DeterministicRandom
from xlink.policy import load_mou, load_sample_template

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    base = tmp_path_factory.mktemp("bundles")
    paths = []
    for agency in (CA, US):
        keys = AgencyKeys.generate(
            agency, rng=DeterministicRandom(f"fill/{agency}"), now=NOW, valid_days=30
        )
        path = base / f"{agency}.json"
        path.write_text(keys.public_bundle().to_json(), encoding="utf-8")
        paths.append(str(path))
    return paths


@pytest.fixture
def bare_template(tmp_path: Path) -> str:
    """The sample template without any party's max_set_size."""
    doc = json.loads(load_sample_template().document)
    for party in doc["parties"]:
        del party["max_set_size"]
    path = tmp_path / "template.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return str(path)


def fill(bundles: list[str], out: Path, *extra: str) -> int:
    argv = ["mou", "fill", "--bundle", bundles[0], "--bundle", bundles[1], "--out", str(out)]
    return main([*argv, *extra])


def test_the_template_bounds_are_kept_and_printed(
    bundles: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "mou.toml"
    assert fill(bundles, out) == ExitCode.OK
    printed = capsys.readouterr().out
    assert printed.count("max set size 65536 per session") == 2
    assert "padding bucket 1024, set-size budget per day: 1048576" in printed
    mou = load_mou(out).mou
    assert [p.max_set_size for p in mou.parties] == [65536, 65536]


def test_flags_set_each_party_and_the_budget(
    bundles: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "mou.json"
    code = fill(
        bundles, out,
        "--max-set-size", "4096", "--max-set-size", f"{US}=131072",
        "--set-size-budget-per-day", "524288", "--json",
    )  # fmt: skip
    assert code == ExitCode.OK
    summary = json.loads(capsys.readouterr().out)
    assert [p["max_set_size"] for p in summary["parties"]] == [4096, 131072]
    assert summary["set_size_budget_per_day"] == 524288
    mou = load_mou(out).mou
    assert (mou.party(CA).max_set_size, mou.party(US).max_set_size) == (4096, 131072)
    assert mou.set_size_budget_per_day == 524288


def test_a_template_without_bounds_needs_the_flag(
    bundles: list[str], bare_template: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "mou.toml"
    assert fill(bundles, out, bare_template) == ExitCode.INPUT
    assert "--max-set-size: none given for CA-RCMP, US-DHS" in capsys.readouterr().err
    assert fill(bundles, out, bare_template, "--max-set-size", f"{CA}=2048") == ExitCode.INPUT
    assert "none given for US-DHS (the template does not set it)" in capsys.readouterr().err
    assert not out.exists()
    assert fill(bundles, out, bare_template, "--max-set-size", "8192") == ExitCode.OK
    assert [p.max_set_size for p in load_mou(out).mou.parties] == [8192, 8192]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--max-set-size", "1000"], "parties[0].max_set_size: must be a multiple of"),
        (["--max-set-size", f"{US}=0"], "parties[1].max_set_size: must be an integer 1..16777216"),
        (["--max-set-size", "MX-FGR=1024"], "MX-FGR is not a party in the template"),
        (["--max-set-size", f"{CA}=1024", "--max-set-size", f"{CA}=2048"], "CA-RCMP given twice"),
        (["--max-set-size", "1024", "--max-set-size", "2048"], "without AGENCY= given twice"),
        (["--set-size-budget-per-day", "0"], "exchange.set_size_budget_per_day: must be an"),
        (["--set-size-budget-per-day", "1024"], "at least every party's max_set_size"),
    ],
)
def test_bad_values_are_input_errors_naming_the_field(
    bundles: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    message: str,
) -> None:
    out = tmp_path / "mou.toml"
    assert fill(bundles, out, *flags) == ExitCode.INPUT
    assert message in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("value", ["lots", f"{CA}=", f"{CA}=1e6"])
def test_a_value_that_is_not_a_number_is_a_usage_error(
    bundles: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    with pytest.raises(SystemExit) as exc:
        fill(bundles, tmp_path / "mou.toml", "--max-set-size", value)
    assert exc.value.code == 2
    assert "not [AGENCY=]N" in capsys.readouterr().err
