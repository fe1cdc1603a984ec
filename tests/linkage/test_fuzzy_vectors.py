"""The fuzzy-transform vectors (protocols/vectors/fuzzy-v1/transforms.json): up to date with
their generator, equal to the library's values, and equal to an independent implementation
written from the spec text (docs/records-and-linkage.md §4, Fuzzy transforms)."""

from __future__ import annotations

import hashlib
import json
import struct
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from _generators import generator

from xlink.linkage.fields import Transform, apply_transform

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = ROOT / "protocols" / "generate_fuzzy_vectors.py"
VECTORS = ROOT / "protocols" / "vectors" / "fuzzy-v1" / "transforms.json"


def _generator() -> ModuleType:
    return generator("generate_fuzzy_vectors")


DOC: dict[str, Any] = json.loads(VECTORS.read_text(encoding="utf-8"))


# -- independent implementation of the spec text (no xlink import) ----------------------------

SPEC_DST = b"xlink/v1/minhash"


def spec_nospace(value: str) -> list[str]:
    out = value.replace(" ", "")
    return [out] if out else []


def spec_deletions(value: str) -> list[str]:
    if not value:
        return []
    if len(value) == 1:
        return [value]
    out = [value]
    for i in range(len(value)):
        shorter = value[:i] + value[i + 1 :]
        if shorter not in out:
            out.append(shorter)
    return out


def spec_bigrams(value: str) -> set[bytes]:
    w = "^" + value.replace(" ", "") + "$"
    return {w[i : i + 2].encode("utf-8") for i in range(len(w) - 1)} if len(w) > 2 else set()


def spec_hash_input(i: int, gram: bytes) -> bytes:
    return struct.pack(">I", len(SPEC_DST)) + SPEC_DST + struct.pack(">I", i) + gram


def spec_hash(i: int, gram: bytes) -> int:
    (h,) = struct.unpack(">Q", hashlib.sha256(spec_hash_input(i, gram)).digest()[:8])
    return int(h)


def spec_minimums(value: str, n: int) -> list[int]:
    grams = spec_bigrams(value)
    return [min(spec_hash(i, g) for g in grams) for i in range(n)] if grams else []


def spec_minhash(value: str, bands: int, rows: int) -> list[str]:
    mins = spec_minimums(value, bands * rows)
    if not mins:
        return []
    out = []
    for j in range(bands):
        row = mins[j * rows : (j + 1) * rows]
        out.append(str(j) + ":" + ".".join("%016x" % m for m in row))  # noqa: UP031
    return out


def spec_apply(transform: str, value: str) -> list[str]:
    name, _, arg = transform.partition(":")
    if name == "nospace":
        return spec_nospace(value)
    if name == "deletions":
        return spec_deletions(value)
    assert name == "minhash"
    bands, rows = (int(x) for x in arg.split("x"))
    return spec_minhash(value, bands, rows)


# -- tests -------------------------------------------------------------------------------------


def test_vectors_are_up_to_date() -> None:
    assert _generator().main(["--check"]) == 0


def test_generator_check_as_a_command() -> None:
    done = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


def test_check_reports_a_stale_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gen = _generator()
    monkeypatch.setattr(gen, "OUT_DIR", tmp_path)
    assert gen.main(["--check"]) == 1  # missing
    assert gen.main([]) == 0
    assert gen.main(["--check"]) == 0
    path = tmp_path / gen.FILE_NAME
    path.write_text(path.read_text(encoding="utf-8").replace("ANNA", "ANNE"), encoding="utf-8")
    assert gen.main(["--check"]) == 1


def test_header() -> None:
    assert DOC["minhash_dst"].encode("ascii") == SPEC_DST
    kinds = {c["transform"].partition(":")[0] for c in DOC["cases"]}
    assert kinds == {"nospace", "deletions", "minhash"}


@pytest.mark.parametrize("case", DOC["cases"], ids=lambda c: f"{c['transform']}-{c['input']!r}")
def test_case_matches_library_and_spec(case: dict[str, Any]) -> None:
    expected = case["output"]
    assert list(apply_transform(Transform.parse(case["transform"]), case["input"])) == expected
    assert spec_apply(case["transform"], case["input"]) == expected


@pytest.mark.parametrize(
    "case",
    [c for c in DOC["cases"] if c["transform"].startswith("minhash")],
    ids=lambda c: f"{c['transform']}-{c['input']!r}",
)
def test_minhash_intermediates_match_spec(case: dict[str, Any]) -> None:
    grams = sorted(spec_bigrams(case["input"]))
    assert case["bigrams_utf8_hex"] == [g.hex() for g in grams]
    if not grams:
        assert "minimums_hex" not in case and case["output"] == []
        return
    example = case["example_hash"]
    i, gram = example["function"], bytes.fromhex(example["bigram_utf8_hex"])
    assert example["sha256_input_hex"] == spec_hash_input(i, gram).hex()
    assert example["sha256_hex"] == hashlib.sha256(spec_hash_input(i, gram)).hexdigest()
    assert int(example["value_hex"], 16) == spec_hash(i, gram)
    bands, rows = (int(x) for x in case["transform"].partition(":")[2].split("x"))
    mins = spec_minimums(case["input"], bands * rows)
    assert case["minimums_hex"] == [f"{m:016x}" for m in mins]
    assert [b.partition(":")[2] for b in case["output"]] == [
        ".".join(case["minimums_hex"][j * rows : (j + 1) * rows]) for j in range(bands)
    ]


@pytest.mark.parametrize("pair", DOC["pairs"], ids=lambda p: f"{p['transform']}-{p['a']}-{p['b']}")
def test_pair_shared_values(pair: dict[str, Any]) -> None:
    a, b = spec_apply(pair["transform"], pair["a"]), spec_apply(pair["transform"], pair["b"])
    assert pair["a_output"] == a and pair["b_output"] == b
    assert pair["shared"] == [v for v in a if v in b]


def test_vectors_show_the_interesting_outcomes() -> None:
    # Documented examples: the vectors must keep covering full, partial and no agreement.
    shared = {(p["transform"], p["a"], p["b"]): len(p["shared"]) for p in DOC["pairs"]}
    assert shared[("minhash:4x2", "DMITRIY", "DMITRII")] == 4
    assert shared[("minhash:3x3", "DMITRIY", "DMITRII")] == 3
    assert 0 < shared[("minhash:4x2", "SHCHUKIN", "SCHUKIN")] < 4
    assert shared[("minhash:4x2", "MOHAMMED", "MUHAMMAD")] == 0
    assert shared[("deletions", "A", "B")] == 0
    assert shared[("deletions", "MULLER", "MUELLER")] == 1
