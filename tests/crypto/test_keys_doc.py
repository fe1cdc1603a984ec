"""docs/keys.md points each claim about keys at rest at its test: every reference names a test
that exists (``tests/PATH.py::test_name``, or ``::test_name`` for the file named last)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KEYS_DOC = ROOT / "docs" / "keys.md"
_REFERENCE = re.compile(r"(tests/[\w/]+\.py)?::(test_\w+)")


def _references() -> list[tuple[str, str]]:
    found, current = [], None
    for m in _REFERENCE.finditer(KEYS_DOC.read_text(encoding="utf-8")):
        current = m.group(1) or current
        assert current is not None, f"::{m.group(2)} before any test file is named"
        found.append((current, m.group(2)))
    return found


def _tests(path: str) -> set[str]:
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}


def test_every_test_docs_keys_md_names_exists() -> None:
    references = _references()
    assert len(references) >= 30
    missing = [f"{path}::{name}" for path, name in references if name not in _tests(path)]
    assert missing == []


def test_the_documented_envelope_example_is_the_format() -> None:
    """The JSON example of §2.1 has the members, in the order, that the envelope writes."""
    text = KEYS_DOC.read_text(encoding="utf-8")
    example = text.split("### 2.1", 1)[1].split("```json", 1)[1].split("```", 1)[0]
    members = re.findall(r'^  "(\w+)":', example, flags=re.MULTILINE)  # the top level
    assert members == ["format", "purpose", "kdf", "aead", "ciphertext"]
    assert '"memory_kib": 262144, "iterations": 3, "lanes": 4' in example
