"""Token derivation in worker processes, for large lists.

The records are cut into chunks of :data:`CHUNK` records, in order; each chunk goes to a worker
as :func:`~xlink.linkage._derive.record_fields` (plain values, cheap to send), the worker derives
its tokens with its own :class:`~xlink.linkage._derive.TokenDeriver` and sends back three
columns (key indices, token values, tokens per record), and the results are added in chunk
order: the :class:`~xlink.linkage.tokens.TokenSet` is the same, byte for byte, as one process
derives. Workers are started as all of xlink's are (:mod:`xlink._processes`: no fork of a
process that may hold threads, the caller's script is not run again, they exit with their
owner), one per core, and only for :data:`PARALLEL_MIN` records or more, where their start-up
(an import of xlink each) is small beside the work. At most two chunks per worker are in
flight, so memory stays bounded whatever the list's size.
"""

from __future__ import annotations

import atexit
import gc
import multiprocessing
from array import array
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future

from xlink._processes import default_worker_count, start_pool
from xlink.linkage._derive import RecordFields, TokenDeriver, record_fields
from xlink.linkage.schema import LinkageSchema
from xlink.linkage.tokens import TokenSetBuilder
from xlink.records.model import PersonRecord

__all__ = ["CHUNK", "PARALLEL_MIN", "default_workers", "derive_in_workers"]

#: Records per task (and per ``progress`` call).
CHUNK = 1_000
#: Fewer records than this are derived in the calling process.
PARALLEL_MIN = 20_000

_deriver: TokenDeriver | None = None


def default_workers(records: int) -> int:
    """Worker processes for ``records`` records: one per core this process may run on, or 1
    (derive here) below :data:`PARALLEL_MIN` records, on one core, or inside a daemonic
    process (which may not start any)."""
    if records < PARALLEL_MIN or multiprocessing.current_process().daemon:
        return 1
    return default_worker_count()


def _start(schema: LinkageSchema) -> None:
    global _deriver
    # A worker only derives, which makes no reference cycles (xlink._gc): without the cyclic
    # collector, it never walks the deriver's memos.
    gc.disable()
    # At exit the interpreter's last collection walks every object still tracked, whether the
    # collector is enabled or not: the memos, a few seconds of a worker's CPU over a large list.
    # Nothing of a worker's needs finalising, so it exits with its objects frozen (out of
    # that walk); the memory goes with the process.
    atexit.register(gc.freeze)
    _deriver = TokenDeriver(schema)


def _derive_chunk(chunk: list[RecordFields]) -> tuple[bytes, bytes, bytes]:
    """One chunk's tokens: key indices, values, and each record's number of tokens."""
    assert _deriver is not None
    derive = _deriver.derive_fields
    keys: list[bytes] = []
    values: list[bytes] = []
    counts = array("I")
    for fields in chunk:
        key_index, tokens = derive(fields)
        keys.append(key_index)
        values.append(tokens)
        counts.append(len(key_index))
    return b"".join(keys), b"".join(values), counts.tobytes()


def derive_in_workers(
    records: Sequence[PersonRecord],
    schema: LinkageSchema,
    builder: TokenSetBuilder,
    workers: int,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Add the tokens of ``records`` to ``builder``, derived in ``workers`` processes;
    ``progress(n)`` after each whole chunk (every :data:`CHUNK` records)."""
    n = len(records)
    chunks = (
        [record_fields(r) for r in records[start : start + CHUNK]] for start in range(0, n, CHUNK)
    )
    pool = start_pool(workers, _start, (schema,))
    try:
        done = 0
        for keys, values, counts in _in_order(pool.submit, chunks, 2 * workers):
            start, done = done, min(done + CHUNK, n)
            per_record = array("I")
            per_record.frombytes(counts)
            builder.add_chunk([r.record_id for r in records[start:done]], per_record, keys, values)
            if progress is not None and done % CHUNK == 0:
                progress(done)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


_Chunk = tuple[bytes, bytes, bytes]


def _in_order(
    submit: Callable[..., Future[_Chunk]], chunks: Iterator[list[RecordFields]], ahead: int
) -> Iterator[_Chunk]:
    """Each chunk's result, in order, with at most ``ahead`` chunks in flight."""
    flying: deque[Future[_Chunk]] = deque()
    for chunk in chunks:
        flying.append(submit(_derive_chunk, chunk))
        if len(flying) >= ahead:
            yield flying.popleft().result()
    while flying:
        yield flying.popleft().result()
