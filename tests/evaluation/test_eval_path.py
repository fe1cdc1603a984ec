"""Evaluation through the real protocol path: references, processes, fitting, CLI gates."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from xlink.cli.exitcodes import ExitCode
from xlink.cli.main import main
from xlink.crypto.rand import DeterministicRandom
from xlink.evaluation import EvaluationError, evaluate, synth
from xlink.evaluation.fitting import (
    LabelledPair,
    choose_thresholds,
    fit_logistic_weights,
)
from xlink.exchange import Party, exchange_in_memory
from xlink.linkage.keys import derive_token_set, iter_key_tokens
from xlink.linkage.schema import load_default_schema, validate_schema
from xlink.protocol.events import PsiResult
from xlink.synth import generate_synth


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    generate_synth(root, 400, 11)
    return root


def test_peer_references_resolve_to_the_plaintext_join(small: Path) -> None:
    # The PSI's candidate pairs, with the peer references resolved through the right side's
    # PsiResult.revealed, are exactly the pairs sharing a token, with exactly those keys.
    data = synth(small)
    schema = load_default_schema()
    left = derive_token_set(data.left.load(), schema)
    right = derive_token_set(data.right.load(), schema)
    mine, theirs = exchange_in_memory(
        Party("l", left, DeterministicRandom("l")),
        Party("r", right, DeterministicRandom("r")),
        schema=schema,
        mou_id="m",
        mou_digest=bytes(32),
    )
    assert isinstance(mine, PsiResult) and isinstance(theirs, PsiResult)
    psi = {(p.local_record_id, theirs.revealed[p.peer_ref]): p.agreeing_keys for p in mine.pairs}
    index: dict[bytes, list[str]] = defaultdict(list)
    for rid, _key, value in iter_key_tokens(right):
        index[value].append(rid)
    plain: dict[tuple[str, str], set[str]] = defaultdict(set)
    for lid, key, value in iter_key_tokens(left):
        for rid in index.get(value, ()):
            plain[(lid, rid)].add(key)
    assert psi == {pair: frozenset(keys) for pair, keys in plain.items()}
    refs = {p.peer_ref for p in mine.pairs}
    assert len(set(theirs.revealed)) == len(theirs.revealed) == len(refs)


def test_two_processes_and_one_process_agree(small: Path) -> None:
    a = evaluate(synth(small), load_default_schema(), parallel=True)
    b = evaluate(synth(small), load_default_schema(), parallel=False)
    assert a["psi"]["parties"] == "two processes" and b["psi"]["parties"] == "one process"
    for key in ("precision", "recall", "f1", "dev", "all", "threshold", "keys", "tokens"):
        assert a[key] == b[key], key
    assert a["true_links"] > 0 and a["candidate_pairs"] >= a["all"]["n_pairs"] > 0


def test_a_failing_right_party_is_reported(small: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in small.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    (broken / "us.csv").write_text("uid\n", encoding="utf-8")  # header without rows
    with pytest.raises(EvaluationError, match="right party failed: LoadError"):
        evaluate(synth(broken), load_default_schema(), parallel=True)


def _pairs(rows: list[tuple[str, str, set[str], bool]]) -> list[LabelledPair]:
    return [LabelledPair(a, b, frozenset(k), t, True) for a, b, k, t in rows]


def _schema() -> object:
    return validate_schema(
        {
            "id": "t",
            "version": 1,
            "keys": [
                {"name": "strong", "version": 1, "fields": ["document_number"]},
                {"name": "weak", "version": 1, "fields": ["family", "birth_year"]},
            ],
        }
    )


def test_logistic_weights_rank_the_discriminating_key_first() -> None:
    rows = [(f"a{i}", f"b{i}", {"strong", "weak"}, True) for i in range(30)]
    rows += [(f"a{i}", f"c{i}", {"weak"}, False) for i in range(30)]
    rows += [(f"x{i}", f"y{i}", {"weak"}, i % 3 == 0) for i in range(30)]
    fitted = fit_logistic_weights(_schema(), _pairs(rows))  # type: ignore[arg-type]
    weights = {k.name: k.weight for k in fitted.keys}
    assert weights["strong"] is not None and weights["weak"] is not None
    assert weights["strong"] > 1 and weights["strong"] > 5 * abs(weights["weak"])
    with pytest.raises(EvaluationError, match="both true and false"):
        fit_logistic_weights(_schema(), _pairs(rows[:30]))  # type: ignore[arg-type]


def test_thresholds_respect_the_precision_floor() -> None:
    # 100 true pairs agree on both keys; on "weak" alone 20 true and 10 false pairs.
    rows = [(f"a{i}", f"b{i}", {"strong", "weak"}, True) for i in range(100)]
    rows += [(f"p{i}", f"q{i}", {"weak"}, i < 20) for i in range(30)]
    weights = validate_schema(
        {
            "id": "t",
            "version": 1,
            "keys": [
                {"name": "strong", "version": 1, "fields": ["document_number"], "weight": 10},
                {"name": "weak", "version": 1, "fields": ["family"], "weight": 1},
            ],
        }
    )
    strict = choose_thresholds(_pairs(rows), weights, 120, min_precision=0.99)
    assert strict.threshold is not None and 1 < strict.threshold <= 11
    loose = choose_thresholds(_pairs(rows), weights, 120, min_precision=0.8)
    assert loose.threshold is not None and loose.threshold <= 1  # 120/130 precise enough


def _gate(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, object]]:
    code = main(argv)
    return code, json.loads(capsys.readouterr().out)


def test_eval_synth_cli_prints_the_figures(small: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, figures = _gate(["eval", "synth", "--data", str(small), "--json", "--quiet"], capsys)
    assert code == ExitCode.OK
    for key in ("precision", "recall", "f1", "tokens_per_record", "wall_s", "psi_s", "dev"):
        assert key in figures
    assert figures["reported_on"] == "heldout" and figures["weights"] == "logistic"


def test_eval_gate_trips_when_the_target_is_missed(
    small: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A threshold no pair can reach decides nothing: F1 is 0, so the gate must trip.
    schema = json.loads(
        (Path(__file__).parents[2] / "xlink/data/schemas/default-v2.json").read_text("utf-8")
    )
    schema["threshold"] = 1e9
    schema.pop("certain_threshold", None)
    path = tmp_path / "unreachable.json"
    path.write_text(json.dumps(schema), encoding="utf-8")
    argv = ["eval", "synth", "--data", str(small), "--schema", str(path), "--weights", "schema"]
    code, figures = _gate([*argv, "--json", "--quiet", "--min-f1", "0.5"], capsys)
    assert code == ExitCode.TARGET and figures["f1"] == 0.0
    code, _ = _gate([*argv, "--json", "--quiet", "--min-precision", "0.5"], capsys)
    assert code == ExitCode.OK  # nothing decided: precision is vacuously 1


def test_a_data_set_too_small_to_fit_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["eval", "synth", "--n", "2", "--in-process", "--json", "--quiet"])
    assert code == ExitCode.INPUT
    assert "development split needs both true and false" in capsys.readouterr().err


def test_eval_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "synth", "--no-id"]) == ExitCode.USAGE
    assert main(["eval", "synth", "--n", "0"]) == ExitCode.USAGE
    assert "--no-id applies to febrl4" in capsys.readouterr().err


@pytest.mark.slow
def test_febrl4_without_id_meets_the_issue_target(capsys: pytest.CaptureFixture[str]) -> None:
    # Issue 6: FEBRL4 without soc_sec_id, through the real PSI path, held-out split:
    # F1 >= 0.995 with precision >= 0.999 (measured: 0.9958 and 1.0, docs/evaluation.md).
    argv = ["eval", "febrl4", "--no-id", "--json", "--quiet"]
    code, figures = _gate([*argv, "--min-f1", "0.995", "--min-precision", "0.999"], capsys)
    assert code == ExitCode.OK
    assert figures["dataset"] == "febrl4-no-id" and figures["true_links"] == 2500
    assert figures["psi"]["parties"] == "two processes"  # type: ignore[index]


@pytest.mark.slow
def test_febrl4_with_every_column(capsys: pytest.CaptureFixture[str]) -> None:
    # Measured 0.9970 on the held-out split, short of the issue's 0.998 (docs/evaluation.md):
    # this guards what the schema reaches, not the target.
    code, figures = _gate(["eval", "febrl4", "--json", "--quiet", "--min-f1", "0.996"], capsys)
    assert code == ExitCode.OK and figures["precision"] == 1.0


def test_eval_synth_generates_its_files(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["eval", "synth", "--n", "200", "--seed", "5", "--in-process", "--json", "--quiet"]
    code, figures = _gate(argv, capsys)
    assert code == ExitCode.OK
    assert figures["records"] == {"left": 200, "right": 200}
    assert isinstance(figures["generate_s"], float) and figures["psi"]["parties"] == "one process"  # type: ignore[index]


def test_write_schema_writes_the_fitted_schema(
    small: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from xlink.linkage.schema import load_schema

    out = tmp_path / "fitted.json"
    argv = ["eval", "synth", "--data", str(small), "--json", "--quiet", "--write-schema", str(out)]
    code, figures = _gate(argv, capsys)
    assert code == ExitCode.OK
    fitted = load_schema(out)
    assert fitted.threshold == figures["threshold"]
    assert {k.name: k.weight for k in fitted.keys} == figures["keys"]  # bits, as used
    assert fitted.key_names == load_default_schema().key_names


def test_a_failing_left_party_leaves_no_process_behind(small: Path, tmp_path: Path) -> None:
    import multiprocessing
    import time

    from xlink.errors import LoadError

    broken = tmp_path / "broken-left"
    broken.mkdir()
    for f in small.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    (broken / "ca.csv").write_bytes(b"\xff\xfe not utf-8\n")
    start = time.perf_counter()
    with pytest.raises(LoadError):
        evaluate(synth(broken), load_default_schema(), parallel=True)
    assert time.perf_counter() - start < 30  # not the 900 s idle timeout
    assert multiprocessing.active_children() == []
