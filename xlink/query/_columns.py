"""The columns of the holder's query table that are computed in bulk
(:class:`~xlink.query.holder_table.HolderTable`, spec xlink-query-v1 §5.2): the OPRF outputs of
the distinct token values on every core, each occurrence's presence bitmap, and the records'
fingerprints an update compares."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import numpy.typing as npt

from xlink.crypto.oprf9497 import OprfKey
from xlink.linkage.tokens import TOKEN_SIZE
from xlink.progress import ProgressFn

__all__ = ["evaluate_ranges", "fingerprints", "presence_columns"]


def evaluate_ranges(
    key: OprfKey, unique: npt.NDArray[np.void], workers: int, progress: ProgressFn | None
) -> Iterator[tuple[int, int, list[bytes]]]:
    """The OPRF outputs of ``unique``, range by range, in order: ``(low, high, outputs of
    unique[low:high])``. On every core: the group operations run in libsodium without the
    GIL, so threads share the work (and the key stays in this process); a few ranges are
    in flight at a time."""
    step = 4096
    ranges = [(low, min(low + step, len(unique))) for low in range(0, len(unique), step)]

    def evaluate(bounds: tuple[int, int]) -> list[bytes]:
        return key.evaluate_many([bytes(v) for v in unique[bounds[0] : bounds[1]]])

    workers = min(workers, len(ranges))
    if workers <= 1:
        for low, high in ranges:
            yield low, high, evaluate((low, high))
            if progress is not None:
                progress("building the query table", high, len(unique))
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="xlink-table") as pool:
        pending: deque[tuple[int, int, Future[list[bytes]]]] = deque()
        todo = iter(ranges)
        for low, high in itertools.islice(todo, 2 * workers):
            pending.append((low, high, pool.submit(evaluate, (low, high))))
        while pending:
            low, high, future = pending.popleft()
            for more in itertools.islice(todo, 1):
                pending.append((*more, pool.submit(evaluate, more)))
            yield low, high, future.result()
            if progress is not None:
                progress("building the query table", high, len(unique))


def presence_columns(
    recs: npt.NDArray[np.uint32], key_col: npt.NDArray[np.uint8], width: int
) -> npt.NDArray[np.uint8]:
    """For each occurrence (in record order), its record's presence bitmap (``width``
    bytes)."""
    bits = np.zeros((len(recs), width), dtype=np.uint8)
    if not len(recs):
        return bits
    starts = np.concatenate([[0], np.flatnonzero(np.diff(recs)) + 1])
    group = np.cumsum(np.isin(np.arange(len(recs)), starts)) - 1
    per_record = np.zeros((len(starts), width), dtype=np.uint8)
    np.bitwise_or.at(
        per_record,
        (group, key_col // 8),
        (1 << (key_col % 8)).astype(np.uint8),
    )
    spread: npt.NDArray[np.uint8] = per_record[group]
    return spread


def fingerprints(
    records: npt.NDArray[np.uint32],
    keys: npt.NDArray[np.uint8],
    values: npt.NDArray[np.void],
    count: int,
) -> list[tuple[int, int]]:
    """Per record index: the sum (mod 2**64) over its tokens of the token's first eight bytes
    mixed with its key, and its number of tokens. Equal token sets give equal fingerprints in
    any order; the holder's own lists are not adversarial, so a 64-bit sum is enough."""
    head = values.view(np.uint8).reshape(-1, TOKEN_SIZE)[:, :8].copy().view("<u8").ravel()
    mixed = head ^ (keys.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15))
    sums = np.zeros(count, dtype=np.uint64)
    np.add.at(sums, records, mixed)
    counts = np.bincount(records, minlength=count)
    return list(zip(sums.tolist(), counts.tolist(), strict=True))
