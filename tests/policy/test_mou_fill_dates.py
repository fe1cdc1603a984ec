"""``xlink mou fill``: the validity window is checked against today (``--today``), and
``--release officer-approval|straight-through`` sets ``release.approval_required``."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest
from _mou_support import CA, PARTY_KEYS, US

from xlink.cli.exitcodes import ExitCode
from xlink.cli.main import main
from xlink.crypto.keyfiles import AgencyKeys
from xlink.crypto.rand import DeterministicRandom
from xlink.policy import load_mou, load_sample_template

NOW = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC)
TODAY = "2026-03-01"


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    base = tmp_path_factory.mktemp("bundles")
    paths = []
    for agency in (CA, US):
        keys = AgencyKeys.generate(
            agency, rng=DeterministicRandom(f"fill-dates/{agency}"), now=NOW, valid_days=30
        )
        path = base / f"{agency}.json"
        path.write_text(keys.public_bundle().to_json(), encoding="utf-8")
        paths.append(str(path))
    return paths


def fill(bundles: list[str], out: Path, *extra: str) -> int:
    argv = ["mou", "fill", "--bundle", bundles[0], "--bundle", bundles[1], "--out", str(out)]
    return main([*argv, *extra])


def test_a_window_that_has_ended_is_refused_naming_the_field_and_today(
    bundles: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "mou.toml"
    code = fill(
        bundles, out, "--valid-from", "2025-06-01", "--valid-until", "2026-02-28",
        "--today", TODAY,
    )  # fmt: skip
    assert code == ExitCode.INPUT
    err = capsys.readouterr().err
    assert "--valid-until" in err and "2026-02-28" in err and f"today ({TODAY})" in err
    assert not out.exists()


def test_a_window_ending_today_is_refused(
    bundles: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "mou.toml"
    code = fill(
        bundles, out, "--valid-from", "2026-01-01", "--valid-until", TODAY, "--today", TODAY
    )
    assert code == ExitCode.INPUT
    assert f"today ({TODAY})" in capsys.readouterr().err
    assert not out.exists()


def test_the_template_dates_are_checked_too(
    bundles: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The bundled sample ends on 2027-12-31: a day after that, filling it is refused."""
    out = tmp_path / "mou.toml"
    assert fill(bundles, out, "--today", "2028-01-01") == ExitCode.INPUT
    err = capsys.readouterr().err
    assert "valid_until (from the template)" in err and "2027-12-31" in err
    assert "today (2028-01-01)" in err


def test_a_start_in_the_past_is_accepted_while_the_window_is_open(
    bundles: list[str], tmp_path: Path
) -> None:
    out = tmp_path / "mou.toml"
    code = fill(
        bundles, out, "--valid-from", "2025-01-01", "--valid-until", "2026-03-02",
        "--today", TODAY,
    )  # fmt: skip
    assert code == ExitCode.OK
    mou = load_mou(out).mou
    assert (mou.valid_from, mou.valid_until) == (
        datetime.date(2025, 1, 1),
        datetime.date(2026, 3, 2),
    )


def test_without_today_the_clock_decides(bundles: list[str], tmp_path: Path) -> None:
    yesterday = datetime.datetime.now(datetime.UTC).date() - datetime.timedelta(days=1)
    tomorrow = yesterday + datetime.timedelta(days=2)
    past = fill(bundles, tmp_path / "a.toml", "--valid-until", yesterday.isoformat())
    future = fill(bundles, tmp_path / "b.toml", "--valid-from", yesterday.isoformat(),
                  "--valid-until", tomorrow.isoformat())  # fmt: skip
    assert (past, future) == (ExitCode.INPUT, ExitCode.OK)


@pytest.mark.parametrize(
    ("mode", "required"), [("officer-approval", True), ("straight-through", False)]
)
def test_release_mode_sets_approval_required(
    bundles: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    mode: str,
    required: bool,
) -> None:
    out = tmp_path / "mou.json"
    assert fill(bundles, out, "--release", mode, "--today", TODAY, "--json") == ExitCode.OK
    summary = json.loads(capsys.readouterr().out)
    assert summary["approval_required"] is required
    assert load_mou(out).mou.approval_required is required
    # And in the text summary each agency checks before signing.
    assert fill(bundles, tmp_path / "again.toml", "--release", mode, "--today", TODAY) == 0
    assert f"release: {mode} (" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("flag", "reciprocal"), [("--reciprocal", True), ("--no-reciprocal", False)]
)
def test_reciprocal_sets_release_reciprocal(
    bundles: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    flag: str,
    reciprocal: bool,
) -> None:
    out = tmp_path / "mou.json"
    assert fill(bundles, out, flag, "--today", TODAY, "--json") == ExitCode.OK
    assert json.loads(capsys.readouterr().out)["reciprocal"] is reciprocal
    assert load_mou(out).mou.reciprocal is reciprocal
    assert fill(bundles, tmp_path / "again.toml", flag, "--today", TODAY) == ExitCode.OK
    assert ("reciprocal: each side sends" in capsys.readouterr().out) is reciprocal
    # left out when false, as the canonical form leaves it out
    assert ("reciprocal" in (tmp_path / "again.toml").read_text()) is reciprocal


def test_an_agreement_is_given_its_own_id(
    bundles: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The sample template's id stayed on every MOU filled from it (a new user found no way
    to change it but writing a template): ``--id`` gives the agreement its own, checked as
    any MOU id is."""
    out = tmp_path / "mou.toml"
    assert fill(bundles, out, "--today", TODAY) == ExitCode.OK
    assert load_mou(out).mou.id == "CA-US-XLINK-DEMO-2025-001"
    own = tmp_path / "own.toml"
    assert fill(bundles, own, "--id", "RCMP-DHS/2026-07", "--today", TODAY) == ExitCode.OK
    assert load_mou(own).mou.id == "RCMP-DHS/2026-07"
    capsys.readouterr()
    assert fill(bundles, tmp_path / "bad.toml", "--id", "no spaces", "--today", TODAY) == 3
    assert "id" in capsys.readouterr().err and not (tmp_path / "bad.toml").exists()


def test_without_release_the_template_decides(bundles: list[str], tmp_path: Path) -> None:
    out = tmp_path / "mou.toml"
    assert fill(bundles, out, "--today", TODAY) == ExitCode.OK
    assert load_mou(out).mou.approval_required is True  # the sample's Prüm-style two-step


def test_an_unknown_release_mode_is_a_usage_error(
    bundles: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        fill(bundles, tmp_path / "mou.toml", "--release", "automatic")
    assert exc.value.code == ExitCode.USAGE
    assert "officer-approval" in capsys.readouterr().err


def test_template_fill_sets_approval_required() -> None:
    template = load_sample_template()
    assert template.fill(PARTY_KEYS, schema_digest=b"\0" * 32).approval_required is True
    filled = template.fill(PARTY_KEYS, schema_digest=b"\0" * 32, approval_required=False)
    assert filled.approval_required is False
    with pytest.raises(ValueError):
        template.fill(PARTY_KEYS, schema_digest=b"\0" * 32, approval_required="no")  # type: ignore[arg-type]
