"""A party's worker pool for the PSI's group operations: hashing to the group, blinding and
re-blinding, and the confirmation round's blinded evaluations (spec: xlink-psi-v2 §4), on
every core of the machine.

The operations are independent per element, so a call on a buffer of ``n`` elements is cut
into one slice per worker, the slices run in parallel in worker processes, and the results
are joined in order: the output is byte for byte what :class:`~xlink.crypto.suite.Ciphersuite`
computes in-process. Calls smaller than :data:`POOL_MIN_ELEMENTS` run in-process, and the
pool's processes start only once a party has done :data:`POOL_START_ELEMENTS` elements' work
in-process (a few seconds), so small exchanges never pay for starting them.

Workers are started as all of xlink's are (:mod:`xlink._processes`: ``spawn``, never a fork
of a process that holds keys; the caller's script is not run again; they exit with their
owner). The session's blinding scalar travels to the workers with each call over the pool's
local pipe, as 32 raw bytes (so do the confirmation round's scalars); a worker keeps nothing
between calls. Memory is bounded by the caller's
chunk: a worker holds one slice at a time.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import Executor, Future
from types import TracebackType
from typing import Final, Self

from xlink._processes import default_worker_count, start_pool
from xlink.crypto.oprf import POINT_SIZE, SCALAR_SIZE, OprfScalar, unblind_point
from xlink.crypto.suite import ELEMENT_SIZE, SUITES, BlindingKey, Ciphersuite, get_suite
from xlink.errors import ClusterError, InvalidElement

__all__ = [
    "CLUSTER_SLICE_TIMEOUT_S",
    "POOL_MIN_ELEMENTS",
    "POOL_START_ELEMENTS",
    "GroupWorkers",
    "default_worker_count",
    "direction_tags",
    "known_answers",
]

POOL_MIN_ELEMENTS: Final = 1024
"""A call on fewer elements than this runs in the calling process: below it, handing the
slices to the workers costs more than it saves (about a hundred milliseconds of work)."""
CLUSTER_SLICE_TIMEOUT_S: Final = 600.0
"""How long a party waits for one slice on an executor (a cluster) before it gives up: a
slice is at most a few seconds of work, so this is a cluster that lost its workers, not a
slow one (Dask would otherwise wait for new workers for ever)."""
POOL_START_ELEMENTS: Final = 16384
"""Elements worked in-process before the pool starts (about two seconds on one core): starting
the workers costs about half a second, which only a larger set pays back."""

_HASH: Final = "hash"
_BLIND: Final = "blind"
_HASH_BLIND: Final = "hash+blind"
_POINTS: Final = "points"
_MULTIPLY: Final = "multiply"
_VALUES: Final = "values"

_Failure = tuple[int, str, bool]  # index within the slice, reason, identity
_Tags = tuple[tuple[bytes, ...], int]  # the tag prefixes, the tag size


def direction_tags(values: bytes, prefixes: tuple[bytes, ...], size: int) -> bytes:
    """For each 32-byte value ``v``, ``SHA-256(prefix || v)`` cut to ``size`` bytes, for each
    prefix in turn (xlink-psi-v2 §4.5: the direction tags of a re-blinded element; the one
    home of that rule, :func:`xlink.protocol._keys.reblinded_hasher` included)."""
    bases = [hashlib.sha256(prefix) for prefix in prefixes]
    out = bytearray()
    for i in range(0, len(values), ELEMENT_SIZE):
        value = values[i : i + ELEMENT_SIZE]
        for base in bases:
            h = base.copy()
            h.update(value)
            out += h.digest()[:size]
    return bytes(out)


def _work(
    op: str,
    suite_id: int,
    secret: bytes,
    dst: bytes,
    data: bytes,
    token_size: int,
    tags: _Tags | None = None,
) -> tuple[bytes, _Failure | None]:
    """One slice, in a worker (or in-process). Returns the output, or the first invalid
    element's position and reason (exceptions are not sent back across the pipe)."""
    suite = get_suite(suite_id)
    try:
        if op == _HASH:
            return suite.hash_to_group(dst, data, token_size), None
        if op == _POINTS:
            return suite.hash_to_points(dst, data, token_size), None
        if op == _VALUES:
            return suite.confirmed_values(data), None
        if op == _MULTIPLY:  # ``secret``: one scalar for all, or one per point
            each = len(secret) > SCALAR_SIZE
            return b"".join(
                unblind_point(
                    secret[SCALAR_SIZE * i : SCALAR_SIZE * (i + 1)] if each else secret,
                    data[POINT_SIZE * i : POINT_SIZE * (i + 1)],
                    suite.group,
                    i,
                )
                for i in range(len(data) // POINT_SIZE)
            ), None
        key = BlindingKey(secret)
        if op == _HASH_BLIND:
            data = suite.hash_to_group(dst, data, token_size)
        blinded = suite.blind(key, data)
        return (blinded if tags is None else direction_tags(blinded, *tags)), None
    except InvalidElement as exc:
        return b"", (exc.index, exc.reason, exc.identity)


class GroupWorkers:
    """The group operations of one party, on ``count`` worker processes (default: every core
    this process may use; ``1`` runs everything in-process), started once ``start_after``
    elements have been worked in-process. Use as a context manager, or call :meth:`close`; a
    closed pool starts again on its next large call.

    With ``executor``, the slices run there instead, ``count`` of them per call (the
    executor's workers): a cluster's (:func:`xlink.crypto.cluster.dask_workers`), which the
    caller started and stops; :meth:`close` leaves it running.

    Raises ``ValueError`` for a count below 1. Each operation raises what the in-process
    operation raises (:class:`~xlink.errors.InvalidElement` with the element's position in the
    whole buffer, ``ValueError`` for a buffer that is not whole elements).
    """

    def __init__(
        self,
        count: int | None = None,
        *,
        start_after: int = POOL_START_ELEMENTS,
        executor: Executor | None = None,
    ) -> None:
        count = default_worker_count() if count is None else count
        if count < 1:
            raise ValueError("the worker count must be at least 1")
        self.count = count
        self._start_after = 0 if executor is not None else start_after
        self._worked = 0
        self._executor = executor
        self._pool: Executor | None = executor
        #: Slices handed to the worker processes or the executor so far (work done in-process
        #: is not counted): how a caller sees that its pool, or its cluster, did the work.
        self.slices_sent = 0

    @property
    def on_executor(self) -> bool:
        """Whether the work runs on an executor of the caller's (a cluster's)."""
        return self._executor is not None

    def __repr__(self) -> str:
        where = "executor" if self._executor is not None else "processes"
        return f"GroupWorkers(count={self.count}, {where}, started={self._pool is not None})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the worker processes (they hold nothing worth keeping); an ``executor`` given
        at construction is its owner's to stop."""
        if self._executor is not None:
            return
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    # -- operations ---------------------------------------------------------------------------

    def hash_to_group(
        self, suite: Ciphersuite, dst: bytes, tokens: bytes, token_size: int = 32
    ) -> bytes:
        """:meth:`Ciphersuite.hash_to_group` of every token, in order."""
        return self._run(_HASH, suite, b"", dst, tokens, token_size)

    def blind(self, suite: Ciphersuite, key: BlindingKey, elements: bytes) -> bytes:
        """:meth:`Ciphersuite.blind` of every element, in order."""
        return self._run(_BLIND, suite, _secret(key), b"", elements, ELEMENT_SIZE)

    def blind_and_tag(
        self,
        suite: Ciphersuite,
        key: BlindingKey,
        elements: bytes,
        prefixes: tuple[bytes, ...],
        size: int,
    ) -> bytes:
        """Blind every element, then give for each result, instead of it, ``SHA-256(prefix ||
        result)[:size]`` for each prefix in turn: the re-blinded value's direction tags
        (xlink-psi-v2 §4.5), computed where the re-blinding is, so the party's own process
        never hashes per element."""
        return self._run(_BLIND, suite, _secret(key), b"", elements, ELEMENT_SIZE, (prefixes, size))

    def hash_and_blind(
        self, suite: Ciphersuite, key: BlindingKey, dst: bytes, tokens: bytes
    ) -> bytes:
        """Hash every 32-byte token to the group and blind it, in one trip to the workers."""
        return self._run(_HASH_BLIND, suite, _secret(key), dst, tokens, 32)

    def hash_to_points(self, suite: Ciphersuite, dst: bytes, tokens: bytes) -> bytes:
        """:meth:`Ciphersuite.hash_to_points` of every 32-byte token, in order."""
        return self._run(_POINTS, suite, b"", dst, tokens, 32)

    def multiply(self, suite: Ciphersuite, scalars: bytes, points: bytes) -> bytes:
        """``[s_i]P_i`` in the suite's group for every point ``P_i`` and its 32-byte scalar
        ``s_i`` (``scalars`` as long as ``points``; spec §4.4). Raises
        :class:`~xlink.errors.InvalidElement` for the first point that is not a canonical
        encoding of a group element, or whose product is the identity."""
        if len(scalars) != len(points) - len(points) % POINT_SIZE:
            raise ValueError("give one scalar per point")
        return self._run(_MULTIPLY, suite, scalars, b"", points, POINT_SIZE)

    def evaluate(self, suite: Ciphersuite, key: OprfScalar, points: bytes) -> bytes:
        """``[k]P`` in the suite's group for every point ``P``, with the secret ``key``; raises
        as :meth:`multiply` does."""
        return self._run(_MULTIPLY, suite, key._k, b"", points, POINT_SIZE)

    def confirmed_values(self, suite: Ciphersuite, points: bytes) -> bytes:
        """:meth:`Ciphersuite.confirmed_values` of every point, in order."""
        return self._run(_VALUES, suite, b"", b"", points, POINT_SIZE)

    # -- running ------------------------------------------------------------------------------

    def _run(
        self,
        op: str,
        suite: Ciphersuite,
        secret: bytes,
        dst: bytes,
        data: bytes,
        width: int,
        tags: _Tags | None = None,
    ) -> bytes:
        if len(data) % width:
            if op in (_BLIND, _MULTIPLY):
                raise InvalidElement(len(data) // width, "truncated element")
            raise ValueError("token buffer is not a whole number of tokens")
        n = len(data) // width
        self._worked += n
        warming = self._pool is None and self._worked <= self._start_after
        in_process = self.count == 1 and self._executor is None
        if in_process or n < POOL_MIN_ELEMENTS or warming:
            out, failure = _work(op, suite.suite_id, secret, dst, bytes(data), width, tags)
            return _checked(out, failure, 0)
        pool = self._started()
        step = -(-n // self.count)
        futures: list[tuple[int, Future[tuple[bytes, _Failure | None]]]] = []
        each = op == _MULTIPLY and len(secret) > SCALAR_SIZE
        for start in range(0, n, step):
            part = bytes(data[start * width : (start + step) * width])
            scalars = secret[start * SCALAR_SIZE : (start + step) * SCALAR_SIZE] if each else secret
            futures.append(
                (start, pool.submit(_work, op, suite.suite_id, scalars, dst, part, width, tags))
            )
        self.slices_sent += len(futures)
        outputs = []
        for start, future in futures:  # in order: the first invalid element is reported
            if self._executor is None:
                out, failure = future.result()
            else:
                out, failure = _from_cluster(future)
            outputs.append(_checked(out, failure, start))
        return b"".join(outputs)

    def _started(self) -> Executor:
        if self._pool is None:
            self._pool = start_pool(self.count)
        return self._pool


def _from_cluster(future: Future[tuple[bytes, _Failure | None]]) -> tuple[bytes, _Failure | None]:
    """A slice's result from an executor, within :data:`CLUSTER_SLICE_TIMEOUT_S`; a cluster
    that fails (a lost worker, a scheduler gone, a timeout) raises
    :class:`~xlink.errors.ClusterError` naming only the kind of failure (Dask's messages may
    quote a task, and a task's arguments hold the blinding scalar)."""
    try:
        return future.result(timeout=CLUSTER_SLICE_TIMEOUT_S)
    except Exception as exc:
        future.cancel()
        raise ClusterError(f"the Dask cluster failed a slice: {type(exc).__name__}") from None


def known_answers() -> dict[str, bytes]:
    """Every operation a worker runs (:func:`_work`), in every ciphersuite, on fixed inputs:
    what a cluster's workers must reproduce before they get any work
    (:func:`xlink.crypto.cluster.dask_workers`)."""
    seed = hashlib.sha512(b"xlink/v1/worker-known-answers").digest()
    scalar, token = seed[:32], seed[32:]
    dst = b"xlink/v1/worker-known-answers"
    out: dict[str, bytes] = {}
    for suite in SUITES:
        sid = suite.suite_id
        element = _work(_HASH, sid, b"", dst, token, 32)[0]
        points = _work(_POINTS, sid, b"", dst, token, 32)[0]
        tags = ((dst, dst[::-1]), 16)
        out[f"{sid}/{_HASH}"] = element
        out[f"{sid}/{_HASH_BLIND}"] = _work(_HASH_BLIND, sid, scalar, dst, token, 32)[0]
        out[f"{sid}/{_BLIND}+tags"] = _work(_BLIND, sid, scalar, b"", element, 32, tags)[0]
        out[f"{sid}/{_POINTS}"] = points
        out[f"{sid}/{_MULTIPLY}"] = _work(_MULTIPLY, sid, scalar, b"", points, POINT_SIZE)[0]
        out[f"{sid}/{_VALUES}"] = _work(_VALUES, sid, b"", b"", points, POINT_SIZE)[0]
    return out


def _secret(key: BlindingKey) -> bytes:
    return key._key.private_bytes_raw()


def _checked(out: bytes, failure: _Failure | None, offset: int) -> bytes:
    if failure is not None:
        index, reason, identity = failure
        raise InvalidElement(offset + index, reason, identity=identity)
    return out
