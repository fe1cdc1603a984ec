#!/usr/bin/env python3
"""Generate the fuzzy-transform test vectors (spec: docs/records-and-linkage.md §4, "Fuzzy
transforms").

Writes ``protocols/vectors/fuzzy-v1/transforms.json``: inputs and expected values of the
``nospace``, ``deletions`` and ``minhash:BxR`` transforms, with the intermediate values of
``minhash`` (bigrams, the hash input of one function, every minimum) so that another
implementation can find where it differs, and pairs of values showing which tokens they share.
Nothing is random, so running this twice gives identical files; ``tests/linkage/
test_fuzzy_vectors.py`` regenerates the vectors in memory, checks the file, and checks every
value against an independent implementation of the spec text.

Usage: ``python protocols/generate_fuzzy_vectors.py [--check]``
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vector_files

from xlink.linkage.fields import MINHASH_DST, Transform, apply_transform

OUT_DIR = Path(__file__).resolve().parent / "vectors" / "fuzzy-v1"
FILE_NAME = "transforms.json"

NOSPACE_INPUTS = ("VAN DER BERG", "NEW YORK", "PETROV", " ")
DELETIONS_INPUTS = ("ANNA", "MULLER", "A", "AAA", "AB", "NEW YORK", "")
MINHASH_INPUTS: tuple[tuple[str, str], ...] = (
    ("minhash:4x2", "DMITRIY"),
    ("minhash:4x2", "DMITRII"),
    ("minhash:3x3", "DMITRIY"),
    ("minhash:3x3", "DMITRII"),
    ("minhash:4x2", "MUELLER"),
    ("minhash:4x2", "MULLER"),
    ("minhash:3x3", "MUELLER"),
    ("minhash:3x3", "MULLER"),
    ("minhash:2x2", "NEW YORK"),
    ("minhash:2x2", "NEWYORK"),
    ("minhash:2x2", "A"),
    ("minhash:2x2", "MÜLLER"),
    ("minhash:1x1", "AAAA"),
    ("minhash:2x2", " "),
    ("minhash:2x2", ""),
)
PAIRS: tuple[tuple[str, str, str], ...] = (
    ("deletions", "ANNA", "ANA"),
    ("deletions", "MULLER", "MUELLER"),
    ("deletions", "SMITH", "SMIHT"),
    ("deletions", "ANNA", "ANTONIA"),
    ("deletions", "A", "B"),
    ("minhash:4x2", "DMITRIY", "DMITRII"),
    ("minhash:3x3", "DMITRIY", "DMITRII"),
    ("minhash:4x2", "MUELLER", "MULLER"),
    ("minhash:3x3", "MUELLER", "MULLER"),
    ("minhash:4x2", "SHCHUKIN", "SCHUKIN"),
    ("minhash:3x3", "SHCHUKIN", "SCHUKIN"),
    ("minhash:4x2", "MOHAMMED", "MUHAMMAD"),
    ("minhash:2x2", "NEW YORK", "NEWYORK"),
)


def _bigrams(value: str) -> list[bytes]:
    """The bigram set of the spec, sorted by bytes (the order does not matter)."""
    letters = value.replace(" ", "")
    if not letters:
        return []
    wrapped = f"^{letters}$"
    return sorted({wrapped[i : i + 2].encode("utf-8") for i in range(len(wrapped) - 1)})


def _hash_input(index: int, gram: bytes) -> bytes:
    """u32(len(D)) || D || u32(index) || gram. (The minimum of the first 8 bytes big-endian is
    the minimum of those 8-byte strings compared as bytes.)"""
    return len(MINHASH_DST).to_bytes(4, "big") + MINHASH_DST + index.to_bytes(4, "big") + gram


def _minhash_case(spec: str, value: str) -> dict[str, Any]:
    step = Transform.parse(spec)
    assert step.length is not None and step.rows is not None
    grams = _bigrams(value)
    case: dict[str, Any] = {
        "transform": spec,
        "input": value,
        "bigrams_utf8_hex": [g.hex() for g in grams],
    }
    if grams:
        first = _hash_input(0, grams[0])
        case["example_hash"] = {
            "function": 0,
            "bigram_utf8_hex": grams[0].hex(),
            "sha256_input_hex": first.hex(),
            "sha256_hex": hashlib.sha256(first).hexdigest(),
            "value_hex": hashlib.sha256(first).digest()[:8].hex(),
        }
        case["minimums_hex"] = [
            min(hashlib.sha256(_hash_input(i, g)).digest()[:8] for g in grams).hex()
            for i in range(step.length * step.rows)
        ]
    case["output"] = list(apply_transform(step, value))
    return case


def build() -> dict[str, Any]:
    """The vector document."""
    cases: list[dict[str, Any]] = []
    for spec, inputs in (("nospace", NOSPACE_INPUTS), ("deletions", DELETIONS_INPUTS)):
        step = Transform.parse(spec)
        cases.extend(
            {"transform": spec, "input": v, "output": list(apply_transform(step, v))}
            for v in inputs
        )
    cases.extend(_minhash_case(spec, value) for spec, value in MINHASH_INPUTS)
    pairs = []
    for spec, a, b in PAIRS:
        step = Transform.parse(spec)
        out_a, out_b = apply_transform(step, a), apply_transform(step, b)
        pairs.append(
            {
                "transform": spec,
                "a": a,
                "b": b,
                "a_output": list(out_a),
                "b_output": list(out_b),
                "shared": [v for v in out_a if v in out_b],
            }
        )
    return {
        "spec": "docs/records-and-linkage.md §4, Fuzzy transforms",
        "generator": "protocols/generate_fuzzy_vectors.py",
        "minhash_dst": MINHASH_DST.decode("ascii"),
        "cases": cases,
        "pairs": pairs,
    }


def build_vectors() -> dict[str, str]:
    """The file name -> JSON text of every vector file."""
    return {FILE_NAME: json.dumps(build(), indent=1, ensure_ascii=False) + "\n"}


def main(argv: list[str] | None = None) -> int:
    description = __doc__.splitlines()[0] if __doc__ else None
    return vector_files.main(build_vectors, OUT_DIR, description, argv)


if __name__ == "__main__":
    raise SystemExit(main())
