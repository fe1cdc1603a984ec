"""``xlink synth``: files written, JSON manifest, refusals and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xlink.cli.exitcodes import ExitCode
from xlink.cli.main import main
from xlink.synth import OUTPUT_FILES


def test_synth_writes_the_files_and_prints_the_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "data"
    assert main(["synth", "--n", "300", "--seed", "9", "--out", str(out), "--json"]) == 0
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["n"] == 300 and manifest["seed"] == 9 and manifest["overlap"] == 0.5
    assert manifest["generator"]["name"] == "xlink-synth"
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)
    assert json.loads((out / "manifest.json").read_text()) == manifest


def test_synth_prints_a_summary_without_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["synth", "--n", "50", "--seed", "1", "--out", str(tmp_path / "x")]) == 0
    assert "50 CA and 50 US records" in capsys.readouterr().out


def test_synth_refuses_a_non_empty_directory_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    args = ["synth", "--n", "20", "--seed", "1", "--out", str(tmp_path)]
    assert main(args) == ExitCode.INPUT
    assert "not empty" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
    assert main([*args, "--force"]) == ExitCode.OK
    assert (tmp_path / "manifest.json").exists() and (tmp_path / "keep.txt").exists()


def test_synth_refuses_a_file_as_out(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    assert main(["synth", "--n", "5", "--seed", "1", "--out", str(target)]) == ExitCode.INPUT


@pytest.mark.parametrize(
    "bad", [["--n", "0"], ["--n", "-3"], ["--n", "ten"], ["--n", "5", "--overlap", "1.5"]]
)
def test_synth_bad_arguments_exit_with_the_usage_code(
    tmp_path: Path, bad: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["synth", *bad, "--seed", "1", "--out", str(tmp_path / "o")])
    assert exc.value.code == ExitCode.USAGE
    assert "usage: xlink synth" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_synth_is_deterministic_through_the_cli(tmp_path: Path) -> None:
    for name in ("a", "b"):
        assert main(["synth", "--n", "200", "--seed", "4", "--out", str(tmp_path / name)]) == 0
    for file in OUTPUT_FILES:
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes()
