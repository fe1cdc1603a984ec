"""A party's group operations beyond one machine: the workers of a Dask cluster (the optional
extra ``xlink[dask]``; docs/PERFORMANCE.md, "Beyond one machine").

:func:`dask_workers` gives a :class:`~xlink.crypto.workers.GroupWorkers` whose slices run on a
Dask cluster's workers instead of this machine's processes: hashing to the group, blinding,
re-blinding and the confirmation round's evaluations. The session, its state, its matching
and its connection to the partner stay in the calling process; nothing changes on the wire, so
the partner cannot tell a clustered party from any other, and nothing more is revealed.

The cluster is inside the party's own trust domain: the session's blinding scalar and its
tokens' points travel to the workers with each call. So every connection to and within the
cluster is mutual TLS:

- ``local`` starts a cluster on this machine (one worker process per core, started with
  ``spawn``, listening on 127.0.0.1 only) with credentials made for it alone
  (``Security.temporary``): no other user of the machine can reach its scheduler or its
  workers. The HTTP servers Dask starts beside them answer health checks only.
- Any other address is an existing cluster's scheduler, ``tls://HOST:PORT``; the credentials
  come from the Dask configuration (``distributed.comm.tls.*``), and encryption is required.
  A plain ``tcp://`` address is refused.

Before it is used, every worker computes a known answer (the hash to the group of a fixed
token in every ciphersuite) and a worker whose answer differs from this process's (another
xlink, another libsodium) is refused: a party must never blind with a function its partner
does not share. The check covers the workers the cluster has when the party connects; a
remote cluster should keep them for the exchange (workers that join later are not checked).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import logging
from collections.abc import Iterator
from typing import Any, Final

from xlink._processes import default_worker_count
from xlink.crypto.suite import SUITES
from xlink.crypto.workers import GroupWorkers
from xlink.errors import ClusterError

__all__ = ["LOCAL", "ClusterError", "check_address", "dask_workers", "known_answers"]

LOCAL: Final = "local"
"""The address that starts a cluster on this machine."""

_KAT_DST: Final = b"xlink/v1/cluster-known-answer"
"""Domain separation of the known-answer check's hash to group (never a session's)."""
_KAT_TOKEN: Final = hashlib.sha256(b"xlink/v1/cluster-known-answer-token").digest()
_CONNECT_TIMEOUT_S: Final = 30.0


def check_address(address: str) -> str:
    """``address`` if it is :data:`LOCAL` or a ``tls://`` scheduler address; raises
    :class:`ClusterError` otherwise."""
    if address == LOCAL or (address.startswith("tls://") and len(address) > len("tls://")):
        return address
    raise ClusterError(
        f"the Dask scheduler address must be {LOCAL!r} or tls://HOST:PORT: the session's "
        "blinding scalar goes to the workers, never in the clear"
    )


def known_answers() -> dict[int, bytes]:
    """The hash to the group of a fixed token in every ciphersuite this build speaks (run on
    each worker and compared with the caller's)."""
    return {suite.suite_id: suite.hash_to_group(_KAT_DST, _KAT_TOKEN, 32) for suite in SUITES}


@contextlib.contextmanager
def dask_workers(
    address: str = LOCAL, *, local_workers: int | None = None
) -> Iterator[GroupWorkers]:
    """The group operations of a party on a Dask cluster, for the ``with`` block.

    ``address`` is :data:`LOCAL` (a cluster on this machine with ``local_workers`` worker
    processes, default one per core, stopped when the block ends) or the ``tls://`` address
    of a running scheduler (left running). Raises :class:`ClusterError` (the extra
    ``xlink[dask]`` missing, an address that is not TLS, a scheduler that cannot be reached or
    has no workers, a worker that computes differently from this process).

    A script that starts a local cluster must guard its entry point with
    ``if __name__ == "__main__":``, as for any Dask program: the worker processes are started
    with ``spawn``.
    """
    check_address(address)
    if local_workers is not None and local_workers < 1:
        raise ValueError("the worker count must be at least 1")
    try:  # untyped: the optional extra
        distributed: Any = importlib.import_module("distributed")
    except ImportError:
        raise ClusterError(
            "a Dask cluster needs the optional extra: pip install 'xlink[dask]'"
        ) from None
    with contextlib.ExitStack() as stack:
        try:
            if address == LOCAL:
                stack.enter_context(_quiet_http())
                security = distributed.Security.temporary()
                cluster = stack.enter_context(
                    distributed.LocalCluster(
                        n_workers=local_workers or default_worker_count(),
                        threads_per_worker=1,
                        processes=True,
                        host="127.0.0.1",
                        dashboard_address="127.0.0.1:0",
                        security=security,
                        silence_logs=logging.ERROR,
                    )
                )
                client = stack.enter_context(distributed.Client(cluster, security=security))
            else:
                client = stack.enter_context(
                    distributed.Client(
                        address,
                        security=distributed.Security(require_encryption=True),
                        timeout=_CONNECT_TIMEOUT_S,
                    )
                )
        except (OSError, TimeoutError, ValueError) as exc:
            raise ClusterError(f"the Dask cluster could not be started or reached: {exc}") from None
        count = _checked_threads(client)
        yield GroupWorkers(count, executor=client.get_executor(pure=False))


def _quiet_http() -> Any:
    """Dask's configuration while a local cluster starts: its nodes' HTTP servers (which Dask
    always starts, on this host here) answer health checks only, never the pages that describe
    tasks and their arguments."""
    health = ["distributed.http.health"]
    config: Any = importlib.import_module("dask.config")
    return config.set(
        {"distributed.scheduler.http.routes": health, "distributed.worker.http.routes": health}
    )


def _checked_threads(client: Any) -> int:
    """The cluster's worker threads, once every worker gave the known answers."""
    threads: dict[str, int] = client.nthreads()
    count = sum(threads.values())
    if count < 1:
        raise ClusterError("the Dask cluster has no workers")
    expected = known_answers()
    answers: dict[str, dict[int, bytes]] = client.run(known_answers)
    wrong = sorted(worker for worker, answer in answers.items() if answer != expected)
    if wrong:
        raise ClusterError(
            f"{len(wrong)} of the cluster's {len(answers)} workers compute the hash to the "
            "group differently from this process (another xlink or libsodium): refused"
        )
    return count
