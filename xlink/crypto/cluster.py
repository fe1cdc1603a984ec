"""A party's group operations beyond one machine: the workers of a Dask cluster (the optional
extra ``xlink[dask]``; docs/PERFORMANCE.md, "Beyond one machine").

:func:`dask_workers` gives a :class:`~xlink.crypto.workers.GroupWorkers` whose slices run on a
Dask cluster's workers instead of this machine's processes: hashing to the group, blinding,
re-blinding and the confirmation round's evaluations. The session, its state, its matching
and its connection to the partner stay in the calling process. The messages are the same; the
only thing the partner can tell is the chunk size its Hello declares, larger for a party on a
cluster (:func:`xlink.protocol.config.chunk_size_for`).

The cluster is inside the party's own trust domain: the session's blinding scalar and its
tokens' points travel to the workers with each call. So the party's connection to the
cluster is TLS, and every worker must listen on TLS:

- ``local`` starts a cluster on this machine (one worker process per core, started with
  ``spawn``, listening on 127.0.0.1 only) with credentials made for it alone
  (``Security.temporary``): no other user of the machine can reach its scheduler or its
  workers. The HTTP servers Dask starts beside them answer health checks only.
- Any other address is an existing cluster's scheduler, ``tls://HOST:PORT``; the credentials
  come from the Dask configuration (``distributed.comm.tls.*``), and encryption is required.
  A plain ``tcp://`` address is refused, and so is a cluster with a worker whose address is
  not ``tls://``. Dask does not check host names: any certificate the configured CA signed is
  accepted, so that CA must be the agency's own.
- Dask's log of each connection's recent messages is off for the party's client and a local
  cluster (the scheduler's messages to its workers carry the slices and the blinding scalar);
  a remote scheduler should run with ``distributed.admin.low-level-log-length: 0`` as well.

Before it is used, every worker runs each of its operations on fixed inputs
(:func:`xlink.crypto.workers.known_answers`, every ciphersuite) and a worker whose answers
differ from this process's (another xlink, another libsodium) is refused: a party must never
blind with a function its partner does not share. A cluster that fails during the exchange
(a lost worker, a slice unanswered for ten minutes) raises :class:`ClusterError`. The checks
cover the workers the cluster has when the party connects; a remote cluster should keep them
for the exchange (workers that join later are not checked).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from collections.abc import Iterator
from typing import Any, Final

from xlink._processes import default_worker_count
from xlink.crypto.workers import GroupWorkers, known_answers
from xlink.errors import ClusterError

__all__ = ["LOCAL", "ClusterError", "check_address", "dask_workers"]

LOCAL: Final = "local"
"""The address that starts a cluster on this machine."""

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
                security = distributed.Security.temporary()
                with _dask_config(local=True):  # the workers take it when they start
                    cluster = stack.enter_context(
                        distributed.LocalCluster(
                            n_workers=local_workers or default_worker_count(),
                            threads_per_worker=1,
                            processes=True,
                            host="127.0.0.1",
                            dashboard_address="127.0.0.1:0",
                            scheduler_kwargs={"dashboard": False},
                            security=security,
                            silence_logs=logging.ERROR,
                        )
                    )
                    client = stack.enter_context(
                        distributed.Client(cluster, security=security, set_as_default=False)
                    )
            else:
                with _dask_config(local=False):
                    client = stack.enter_context(
                        distributed.Client(
                            address,
                            security=distributed.Security(require_encryption=True),
                            timeout=_CONNECT_TIMEOUT_S,
                            set_as_default=False,
                        )
                    )
            count = _checked_workers(client)
        except ClusterError:
            raise
        except Exception as exc:  # Dask's own types, TLS set-up, a worker without xlink...
            raise ClusterError(
                f"the Dask cluster could not be started or used: {type(exc).__name__}: {exc}"
            ) from None
        yield GroupWorkers(count, executor=client.get_executor(pure=False))


def _dask_config(*, local: bool) -> Any:
    """Dask's configuration while the client (and a local cluster) start.

    - No log of recent messages (``distributed.admin.low-level-log-length``): Dask keeps the
      last thousand messages of each of its connections under a megabyte, and the
      scheduler's to its workers carry every slice with its arguments, the blinding scalar
      among them. The log would hold them in the party's process (up to about 500 MB with the
      cluster's chunks) long after the slice is done.
    - For a local cluster, its nodes' HTTP servers (which Dask always starts, on this host
      here) answer health checks only, never the pages that describe tasks and their
      arguments.
    """
    settings: dict[str, object] = {"distributed.admin.low-level-log-length": 0}
    if local:
        health = ["distributed.http.health"]
        settings["distributed.scheduler.http.routes"] = health
        settings["distributed.worker.http.routes"] = health
    config: Any = importlib.import_module("dask.config")
    return config.set(settings)


def _checked_workers(client: Any) -> int:
    """The cluster's worker threads, once every worker listens on TLS and gave the known
    answers."""
    threads: dict[str, int] = client.nthreads()
    count = sum(threads.values())
    if count < 1:
        raise ClusterError("the Dask cluster has no workers")
    clear = [worker for worker in threads if not worker.startswith("tls://")]
    if clear:
        raise ClusterError(
            f"{len(clear)} of the cluster's {len(threads)} workers do not listen on TLS: refused"
        )
    expected = known_answers()
    answers: dict[str, dict[str, bytes]] = client.run(known_answers)
    wrong = sorted(worker for worker, answer in answers.items() if answer != expected)
    if wrong:
        raise ClusterError(
            f"{len(wrong)} of the cluster's {len(answers)} workers compute the group "
            "operations differently from this process (another xlink or libsodium): refused"
        )
    return count
