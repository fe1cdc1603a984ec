"""A party's chunk size says only whether it works on a cluster (xlink.protocol.config.
chunk_size_for): the largest chunks there, so that a cluster's slices pay for their trip; the
default otherwise, whatever its number of cores (the Hello declares the size to the peer)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
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
from xlink.protocol.config import CLUSTER_CHUNK_SIZE, DEFAULT_CHUNK_SIZE, chunk_size_for

PASSPHRASE = b"chunk size tests passphrase, not secret"


def test_chunk_size_for() -> None:
    assert chunk_size_for(False) == DEFAULT_CHUNK_SIZE == 2048
    assert chunk_size_for(True) == CLUSTER_CHUNK_SIZE == L.MAX_CHUNK_ELEMENTS


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


@pytest.mark.parametrize(
    ("workers", "chunk"),
    [
        (GroupWorkers(1), DEFAULT_CHUNK_SIZE),
        (GroupWorkers(64), DEFAULT_CHUNK_SIZE),  # never the core count: the peer sees the size
        (GroupWorkers(2, executor=ThreadPoolExecutor(1)), CLUSTER_CHUNK_SIZE),
    ],
    ids=["one-core", "many-cores", "cluster"],
)
def test_the_agency_sizes_its_chunks_for_where_it_works(
    tmp_path: Path, workers: GroupWorkers, chunk: int
) -> None:
    with _open(tmp_path, workers) as agency:  # pools never started: sizing needs no work
        assert agency.session_config(Role.INITIATOR).chunk_size == chunk


def test_a_callers_pool_outlives_the_agency(tmp_path: Path) -> None:
    with GroupWorkers(2, start_after=0) as pool:
        pool.hash_to_group(DEFAULT_SUITE, b"xlink-test-dst", bytes(32 * 2048))  # started
        with _open(tmp_path, pool):
            pass
        assert pool._pool is not None  # still running: the caller's to stop
