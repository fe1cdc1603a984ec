"""A party's chunk size follows its workers (xlink.protocol.config.chunk_size_for): each worker
gets at least SLICE_ELEMENTS of every chunk, so a cluster's slices pay for their trip; a party
on this machine's few cores keeps the default."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from xlink.agency import Agency
from xlink.ceremony import demo_ceremony
from xlink.crypto.rand import system_random
from xlink.crypto.suite import DEFAULT_SUITE
from xlink.crypto.workers import GroupWorkers
from xlink.protocol import Role
from xlink.protocol import limits as L
from xlink.protocol.config import DEFAULT_CHUNK_SIZE, SLICE_ELEMENTS, chunk_size_for

PASSPHRASE = b"chunk size tests passphrase, not secret"


@pytest.mark.parametrize(
    ("workers", "chunk"),
    [
        (1, DEFAULT_CHUNK_SIZE),
        (4, DEFAULT_CHUNK_SIZE),
        (8, 8 * SLICE_ELEMENTS),
        (32, 16384),
        (64, 16384),
    ],
)
def test_chunk_size_for(workers: int, chunk: int) -> None:
    assert chunk_size_for(workers) == chunk
    assert chunk <= L.MAX_CHUNK_ELEMENTS
    if chunk < L.MAX_CHUNK_ELEMENTS:
        assert chunk // workers >= SLICE_ELEMENTS or chunk == DEFAULT_CHUNK_SIZE


def _open(tmp_path: Path, workers: GroupWorkers) -> Agency:
    c = demo_ceremony(
        tmp_path / "ceremony",
        passphrase=PASSPHRASE,
        now=datetime.now(UTC),
        rng=system_random,
    )
    return Agency.open(
        tmp_path / "CA-RCMP",
        agency="CA-RCMP",
        keys_dir=c.keys["CA-RCMP"],
        passphrase=PASSPHRASE,
        mou_path=c.mou,
        peer_bundle_path=c.bundles["US-DHS"],
        clock=lambda: datetime.now(UTC),
        rng=system_random,
        workers=workers,
    )


@pytest.mark.parametrize(("workers", "chunk"), [(1, DEFAULT_CHUNK_SIZE), (16, 8192)])
def test_the_agency_sizes_its_chunks_for_its_workers(
    tmp_path: Path, workers: int, chunk: int
) -> None:
    # a pool never started: sizing needs only its count
    with _open(tmp_path, GroupWorkers(workers)) as agency:
        assert agency.session_config(Role.INITIATOR).chunk_size == chunk


def test_a_callers_pool_outlives_the_agency(tmp_path: Path) -> None:
    with GroupWorkers(2, start_after=0) as pool:
        pool.hash_to_group(DEFAULT_SUITE, b"xlink-test-dst", bytes(32 * 2048))  # started
        with _open(tmp_path, pool):
            pass
        assert pool._pool is not None  # still running: the caller's to stop
