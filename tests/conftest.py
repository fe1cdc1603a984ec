"""Shared test set-up: the tests folder on sys.path, so helpers used by several test folders
(``_two_agencies``) have one home; the ``scratch`` fixture (a directory on tmpfs)."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A temporary directory on tmpfs when there is one: the audit log, the store and the
    ledger fsync every commit, which a test of many exchanges need not wait for."""
    shm = "/dev/shm"
    where = shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None
    with tempfile.TemporaryDirectory(dir=where, prefix="xlink-test-") as tmp:
        yield Path(tmp)
