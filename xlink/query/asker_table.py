"""The asker's copy of a holder's query table: merged from deltas, checked against the
announced digest, looked up by OPRF output (spec: xlink-query-v1 §5.3)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from xlink.error_codes import AbortCode
from xlink.errors import RemoteProtocolError
from xlink.query.entries import (
    MAX_PROBES,
    RECORD_SIZE,
    TAG_DTYPE,
    TAG_SIZE,
    TOMBSTONE,
    entry_pad,
    label_size_for,
    table_digest,
    xor_bytes,
)

__all__ = ["AskerTable", "TableHit"]


@dataclass(frozen=True, slots=True)
class TableHit:
    """One entry an asker found for one of its outputs: the holder's record index and the keys
    that record has tokens for (indexes into the schema's key names)."""

    record: int
    presence: frozenset[int]


class AskerTable:
    """The asker's copy of one holder's table for one key period (§5.3): tags ascending and
    their labels, the table version and the number of keys of the schema."""

    def __init__(
        self,
        keys: int,
        *,
        tags: npt.NDArray[np.uint64] | None = None,
        labels: npt.NDArray[np.uint8] | None = None,
        version: int = 0,
        digest: bytes | None = None,
    ) -> None:
        self.keys = keys
        self.label_size = label_size_for(keys)
        self.tags = tags if tags is not None else np.zeros(0, dtype=np.uint64)
        self.labels = (
            labels if labels is not None else np.zeros((0, self.label_size), dtype=np.uint8)
        )
        self.version = version
        self.digest = digest if digest is not None else table_digest(self.tags, self.labels)

    @property
    def entries(self) -> int:
        return len(self.tags)

    @staticmethod
    def parse_chunk(
        chunk: bytes, label_size: int
    ) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint8]]:
        """The tags and labels of one table chunk; raises ``RemoteProtocolError`` (BAD_TABLE)
        for a length that is not whole entries."""
        width = TAG_SIZE + label_size
        if len(chunk) % width:
            raise RemoteProtocolError(AbortCode.BAD_TABLE, "a table chunk of partial entries")
        raw = np.frombuffer(chunk, dtype=np.uint8).reshape(-1, width)
        tags = raw[:, :TAG_SIZE].copy().view(TAG_DTYPE).ravel().astype(np.uint64)
        return tags, raw[:, TAG_SIZE:].copy()

    def merge(
        self,
        tags: npt.NDArray[np.uint64],
        labels: npt.NDArray[np.uint8],
        *,
        version: int,
        total: int,
        digest: bytes | None = None,
    ) -> None:
        """Apply a delta (entries ascending by tag): an entry replaces the one with its tag,
        the others are added. Raises ``RemoteProtocolError`` (BAD_TABLE) if the result does
        not have ``total`` entries or (given ``digest``) not that :func:`table_digest`, or the
        delta is not ascending; the copy is then unchanged."""
        if len(tags) > 1 and bool(np.any(tags[1:] < tags[:-1])):
            raise RemoteProtocolError(AbortCode.BAD_TABLE, "table entries out of order")
        if len(tags):
            keep = ~np.isin(self.tags, tags)
            merged_tags = np.concatenate([self.tags[keep], tags])
            merged_labels = np.concatenate([self.labels[keep], labels])
            order = np.argsort(merged_tags, kind="stable")
            merged_tags, merged_labels = merged_tags[order], merged_labels[order]
        else:
            merged_tags, merged_labels = self.tags, self.labels
        if len(merged_tags) != total:
            raise RemoteProtocolError(
                AbortCode.BAD_TABLE, f"the table has {len(merged_tags)} entries, not {total}"
            )
        merged_digest = table_digest(merged_tags, merged_labels)
        if digest is not None and merged_digest != digest:
            raise RemoteProtocolError(AbortCode.BAD_TABLE, "the table is not the one announced")
        self.tags, self.labels, self.version = merged_tags, merged_labels, version
        self.digest = merged_digest

    def lookup(self, output: bytes) -> list[TableHit]:
        """Every live entry of the token whose OPRF output is ``output``."""
        return self.lookup_many([output])[0]

    def lookup_many(self, outputs: Sequence[bytes]) -> list[list[TableHit]]:
        """:meth:`lookup` for each output: occurrence ``j`` of every output still found is
        probed in one binary search over the column (the tags compared as unsigned 64-bit
        integers, never as floats)."""
        hits: list[list[TableHit]] = [[] for _ in outputs]
        probing = list(range(len(outputs)))
        for j in range(MAX_PROBES):
            if not probing or not len(self.tags):
                break
            pads = [entry_pad(outputs[i], j, self.label_size) for i in probing]
            tags = np.array([tag for tag, _ in pads], dtype=np.uint64)
            left = self.tags.searchsorted(tags, side="left")
            right = self.tags.searchsorted(tags, side="right")
            still = []
            for n, i in enumerate(probing):
                lo, hi = int(left[n]), int(right[n])
                if lo == hi:
                    continue
                still.append(i)
                pad = pads[n][1]
                for row in range(lo, hi):
                    hit = self._open(row, pad)
                    if hit is not None:
                        hits[i].append(hit)
            probing = still
        return hits

    def _open(self, row: int, pad: bytes) -> TableHit | None:
        plain = xor_bytes(self.labels[row].tobytes(), pad)
        record = int.from_bytes(plain[:RECORD_SIZE], "big")
        if record == TOMBSTONE:
            return None
        bits = plain[RECORD_SIZE:]
        return TableHit(
            record, frozenset(k for k in range(self.keys) if bits[k // 8] >> (k % 8) & 1)
        )

    def save(self, path: Path, *, meta: bytes) -> None:
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("wb") as fh:
            np.savez(
                fh,
                tags=self.tags,
                labels=self.labels,
                info=np.array([self.keys, self.version], dtype=np.int64),
                digest=np.frombuffer(self.digest, dtype=np.uint8),
                meta=np.frombuffer(meta, dtype=np.uint8),
            )
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path, *, meta: bytes) -> AskerTable | None:
        """The copy at ``path`` if it was saved with ``meta`` (holder, period, digests);
        None otherwise."""
        try:
            with np.load(path, allow_pickle=False) as data:
                if bytes(data["meta"]) != meta:
                    return None
                keys, version = (int(x) for x in data["info"])
                return cls(
                    keys,
                    tags=data["tags"].astype(np.uint64),
                    labels=data["labels"].astype(np.uint8),
                    version=version,
                    digest=bytes(data["digest"]),
                )
        except (OSError, ValueError, KeyError, TypeError):
            return None
