"""Shared test set-up: the tests folder on sys.path, so helpers used by several test folders
(``_two_agencies``) have one home."""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
