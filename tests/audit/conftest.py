"""Fixtures for the audit tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _audit_support import scratch_dir


@pytest.fixture
def audit_dir() -> Iterator[Path]:
    """A fresh directory, on tmpfs when there is one: the log fsyncs every commit, which is
    right for an audit log and needless for a test."""
    with scratch_dir() as path:
        yield path
