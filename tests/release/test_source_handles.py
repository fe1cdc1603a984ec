"""Source handles: unlinkable across releases, resolvable only with the originator's key."""

from __future__ import annotations

import pytest

from xlink.crypto.rand import DeterministicRandom
from xlink.release import (
    SOURCE_HANDLE_SIZE,
    SourceHandleKey,
    make_source_handle,
    resolve_source_handle,
)

KEY = SourceHandleKey(b"\x01" * 32)
SOURCES = [f"RCMP-SRC-{i:04d}" for i in range(200)]


def test_same_source_twice_gives_unrelated_handles() -> None:
    rng = DeterministicRandom("h")
    a = make_source_handle(KEY, "RCMP-SRC-0042", rng)
    b = make_source_handle(KEY, "RCMP-SRC-0042", rng)
    assert len(a) == len(b) == SOURCE_HANDLE_SIZE
    assert a != b
    assert a[:16] != b[:16] and a[16:] != b[16:]
    assert b"RCMP" not in a + b


def test_resolution_needs_the_key_and_the_candidates() -> None:
    rng = DeterministicRandom("r")
    handles = {s: make_source_handle(KEY, s, rng) for s in SOURCES[:20]}
    for source, handle in handles.items():
        assert resolve_source_handle(handle, KEY, SOURCES) == source
        assert resolve_source_handle(handle, SourceHandleKey(b"\x02" * 32), SOURCES) is None
        assert resolve_source_handle(handle, KEY, SOURCES[100:]) is None
    h = handles["RCMP-SRC-0000"]
    assert resolve_source_handle(h[:-1], KEY, SOURCES) is None
    assert resolve_source_handle(h[:16] + bytes(16), KEY, SOURCES) is None


def test_key_hygiene() -> None:
    with pytest.raises(ValueError):
        SourceHandleKey(b"short")
    assert "01" not in repr(KEY)
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(KEY)
    assert SourceHandleKey(b"\x01" * 32) == KEY and SourceHandleKey(b"\x02" * 32) != KEY
