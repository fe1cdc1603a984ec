"""A party's group operations on a Dask cluster (xlink.crypto.cluster, the extra xlink[dask]):
the work does go to the cluster's workers, over TLS, and comes back byte for byte what the
suite computes in-process; a session on the cluster sends exactly the messages of one that
works alone; addresses that would carry the blinding scalar in the clear, and workers that
compute differently, are refused."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import Executor, Future
from typing import Any

import distributed
import pytest
from _support import config

from xlink.cli.main import main
from xlink.crypto import cluster
from xlink.crypto import workers as workers_module
from xlink.crypto.cluster import LOCAL, ClusterError, check_address, dask_workers
from xlink.crypto.oprf import OprfScalar, blind_scalar, evaluate_points
from xlink.crypto.rand import DeterministicRandom
from xlink.crypto.suite import SMALL_ORDER_U, SUITE_R255, SUITE_X25519, BlindingKey, Ciphersuite
from xlink.crypto.workers import POOL_MIN_ELEMENTS, GroupWorkers
from xlink.errors import InputError, InvalidElement
from xlink.linkage.tokens import TokenSetBuilder
from xlink.protocol import Role, run_pair
from xlink.protocol.session import PsiSession

DST = b"xlink-psi-v1:test-dst"
N = POOL_MIN_ELEMENTS + 700  # above the threshold: the cluster runs it, in two uneven slices


@pytest.fixture(scope="module")
def on_cluster() -> Iterator[GroupWorkers]:
    with dask_workers(LOCAL, local_workers=2) as pool:
        yield pool


@pytest.fixture(scope="module")
def tokens() -> bytes:
    return DeterministicRandom("cluster tokens")(32 * N)


@pytest.mark.parametrize("suite", [SUITE_X25519, SUITE_R255], ids=["suite1", "suite2"])
def test_the_cluster_computes_what_the_suite_computes(
    on_cluster: GroupWorkers, tokens: bytes, suite: Ciphersuite
) -> None:
    client = _client(on_cluster)
    assert client.scheduler.address.startswith("tls://127.0.0.1:")  # mutual TLS, this host
    key = BlindingKey(DeterministicRandom("key")(32))
    hashed = suite.hash_to_group(DST, tokens)
    with distributed.get_task_stream(client) as stream:
        assert on_cluster.hash_to_group(suite, DST, tokens) == hashed
        assert on_cluster.blind(suite, key, hashed) == suite.blind(key, hashed)
        assert on_cluster.hash_and_blind(suite, key, DST, tokens) == suite.blind(key, hashed)
        points = suite.hash_to_points(DST, tokens)
        oprf = OprfScalar(blind_scalar(b"k" * 32, b"test", 0))
        assert on_cluster.evaluate(suite, oprf, points) == evaluate_points(
            (oprf,), points, suite.group
        )
    # Four calls of two slices each ran on the cluster's two worker processes, not here.
    assert len(stream.data) == 8
    assert {task["worker"] for task in stream.data} == set(client.nthreads())
    assert on_cluster.count == 2


def test_the_clusters_http_servers_answer_health_checks_only(on_cluster: GroupWorkers) -> None:
    """Dask starts an HTTP server beside each node; pages describing tasks (and the arguments
    they were given, the blinding scalar among them) must not be among its answers."""
    info = _client(on_cluster).scheduler_info()
    nodes = [(info["services"]["dashboard"], "/info/main/workers.html")]
    nodes += [(w["services"]["dashboard"], "/metrics") for w in info["workers"].values()]
    assert len(nodes) == 3
    for port, page in nodes:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as answer:
            assert answer.read() == b"ok"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{page}", timeout=5)
        assert refused.value.code == 404


def test_no_connection_keeps_a_log_of_the_slices_it_carried(
    on_cluster: GroupWorkers, tokens: bytes
) -> None:
    """Dask logs the last thousand messages of each connection by default; the scheduler's
    to its workers carry every slice with its arguments (the blinding scalar among them), and
    the log would keep them in the party's process long after the work is done."""
    client = _client(on_cluster)
    on_cluster.blind(SUITE_R255, BlindingKey(os.urandom(32)), SUITE_R255.hash_to_group(DST, tokens))
    scheduler = client.cluster.scheduler
    logs = [send.recent_message_log for send in scheduler.stream_comms.values()]
    logs.append(client.scheduler_comm.recent_message_log)
    assert len(logs) == 3  # two workers, and this client
    assert all(log.maxlen == 0 and not log for log in logs)


def test_an_invalid_element_is_reported_at_its_place_in_the_whole_buffer(
    on_cluster: GroupWorkers, tokens: bytes
) -> None:
    elements = bytearray(SUITE_X25519.hash_to_group(DST, tokens))
    at = N - 5  # in the second worker's slice
    elements[32 * at : 32 * at + 32] = SMALL_ORDER_U[2]
    with pytest.raises(InvalidElement) as caught:
        on_cluster.blind(SUITE_X25519, BlindingKey(os.urandom(32)), bytes(elements))
    assert (caught.value.index, caught.value.identity) == (at, True)


def test_a_session_on_the_cluster_sends_the_same_bytes(on_cluster: GroupWorkers) -> None:
    def tokens(side: str, n: int, shared: int) -> TokenSetBuilder:
        builder = TokenSetBuilder(("k",))
        for i in range(n):
            value = f"shared {i}" if i < shared else f"{side} {i}"
            builder.add_record(f"{side}{i}", [("k", hashlib.sha256(value.encode()).digest())])
        return builder

    tokens_a = tokens("a", 1500, 1100).build()  # enough matches for the confirmation round
    tokens_b = tokens("b", 1300, 1100).build()  # to run on the cluster as well

    def run(workers: GroupWorkers | None) -> tuple[list[bytes], object]:
        sent: list[bytes] = []
        a = PsiSession(
            config(Role.INITIATOR, bucket=64, chunk=2048),
            tokens_a,
            rng=DeterministicRandom("a"),
            workers=workers,
        )
        b = PsiSession(
            config(Role.RESPONDER, bucket=64, chunk=2048), tokens_b, rng=DeterministicRandom("b")
        )
        ra, _ = run_pair(a, b, observer=lambda _s, m: sent.append(m))
        return sent, ra

    before = on_cluster.slices_sent
    clustered = run(on_cluster)
    assert on_cluster.slices_sent > before  # the initiator's work went to the cluster
    alone = run(None)
    assert clustered[0] == alone[0]
    assert clustered[1].matched_tokens == 1100  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "address", ["tcp://10.0.0.5:8786", "10.0.0.5:8786", "tls://", "inproc://x", "LOCAL", ""]
)
def test_an_address_that_is_not_tls_is_refused(address: str) -> None:
    with pytest.raises(ClusterError, match="tls://HOST:PORT"):
        check_address(address)
    with pytest.raises(ClusterError), dask_workers(address):
        pass
    assert issubclass(ClusterError, InputError)  # exit code 3 at the command line


def test_the_command_line_refuses_a_clear_text_scheduler(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["serve", "--listen", "127.0.0.1:0", "--dask", "tcp://10.0.0.5:8786", "x.csv"])
    assert exc.value.code == 2
    assert "never in the clear" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # one pool or the other
        main(["match", "--peer", "127.0.0.1:1", "--dask", LOCAL, "--workers", "2", "x.csv"])
    assert exc.value.code == 2


def test_a_worker_that_computes_differently_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # This process now speaks one suite less, so its known answers differ from those the
    # workers (other processes, with the real module) compute.
    monkeypatch.setattr(workers_module, "SUITES", (SUITE_R255,))
    refused = pytest.raises(ClusterError, match="2 of the cluster's 2 workers compute")
    with refused, dask_workers(LOCAL, local_workers=2):
        pass  # pragma: no cover - refused before the block runs


def test_the_cluster_is_the_callers_to_stop(on_cluster: GroupWorkers) -> None:
    on_cluster.close()  # the cluster keeps running for its owner
    before = on_cluster.slices_sent
    with distributed.get_task_stream(_client(on_cluster)) as stream:
        assert on_cluster.hash_to_group(SUITE_R255, DST, bytes(32 * POOL_MIN_ELEMENTS))
    assert on_cluster.slices_sent == before + 2 and len(stream.data) == 2  # still the cluster
    assert on_cluster.on_executor and "executor" in repr(on_cluster)


def test_a_cluster_that_fails_raises_a_cluster_error_that_names_no_argument(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A slice that fails on the cluster, or never comes back, ends the call with
    ClusterError (exit 3, and an abort inside a session), naming only the kind of failure:
    Dask's own messages can quote a task's arguments, the blinding scalar among them."""
    scalar = "blinding scalar 0x1234"
    pool = GroupWorkers(2, executor=_FailingExecutor(RuntimeError(f"task failed, args: {scalar}")))
    with pytest.raises(ClusterError, match="failed a slice: RuntimeError") as failed:
        pool.blind(SUITE_R255, BlindingKey(os.urandom(32)), bytes(32 * POOL_MIN_ELEMENTS))
    assert scalar not in str(failed.value)
    monkeypatch.setattr(workers_module, "CLUSTER_SLICE_TIMEOUT_S", 0.05)
    silent = GroupWorkers(2, executor=_FailingExecutor(None))  # a cluster with no worker left
    with pytest.raises(ClusterError, match="failed a slice: TimeoutError"):
        silent.hash_to_group(SUITE_R255, DST, bytes(32 * POOL_MIN_ELEMENTS))


def test_workers_that_do_not_listen_on_tls_are_refused() -> None:
    class Scheduler:  # what dask_workers asks of a Client, for a cluster with a clear worker
        def nthreads(self) -> dict[str, int]:
            return {"tls://10.0.0.7:40001": 1, "tcp://10.0.0.8:40001": 1}

    with pytest.raises(ClusterError, match="1 of the cluster's 2 workers do not listen on TLS"):
        cluster._checked_workers(Scheduler())


def test_a_scheduler_without_tls_credentials_is_a_cluster_error() -> None:
    refused = pytest.raises(ClusterError, match="could not be started or used: TypeError")
    with refused, dask_workers("tls://127.0.0.1:1"):
        pass  # pragma: no cover - refused before the block runs


class _FailingExecutor(Executor):
    """An executor whose every future fails with ``error``, or never completes (``None``)."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        if self.error is not None:
            future.set_exception(self.error)
        return future


def _client(pool: GroupWorkers) -> Any:
    """The Dask client behind ``dask_workers``'s pool (it is not the process's default)."""
    return pool._executor._client  # type: ignore[union-attr]
