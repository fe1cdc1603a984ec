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
from xlink.protocol._reveal import _gather_ranges
from xlink.query.entries import (
    MAX_PROBES,
    RECORD_SIZE,
    TAG_DTYPE,
    TAG_SIZE,
    TOMBSTONE,
    UNREADABLE_TABLE,
    entry_pad,
    label_size_for,
    table_digest,
)

__all__ = ["AskerTable", "SharedHits", "TableHit", "TableHits"]


@dataclass(frozen=True, slots=True)
class TableHit:
    """One entry an asker found for one of its outputs: the holder's record index and the keys
    that record has tokens for (indexes into the schema's key names)."""

    record: int
    presence: frozenset[int]


Ints = npt.NDArray[np.int64]
#: Most occurrences of one output, and most probes in all, in one round of
#: :meth:`AskerTable.hits`: a round's memory is bounded whatever the table and the outputs.
_MAX_BLOCK = 1 << 14
_MAX_ROUND = 1 << 16


@dataclass(frozen=True, slots=True, eq=False)
class TableHits:
    """The live entries found for a list of outputs, one row each: ``output`` (the index of
    the output in the list), ``record`` (the holder's record index) and ``presence`` (that
    record's key-presence bitmap as the label holds it, bit ``i % 8`` of byte ``i // 8`` for
    key ``i``), by output then occurrence."""

    output: Ints
    record: Ints
    presence: npt.NDArray[np.uint8]

    @classmethod
    def none(cls, presence_size: int) -> TableHits:
        empty = np.zeros(0, dtype=np.int64)
        return cls(empty, empty.copy(), np.zeros((0, presence_size), dtype=np.uint8))

    def __len__(self) -> int:
        return len(self.output)


@dataclass(frozen=True, slots=True, eq=False)
class SharedHits:
    """:meth:`AskerTable.shared_hits`: the hits of each distinct output once (``found``, whose
    ``output`` column numbers the distinct outputs, ``starts`` and ``counts`` its rows for
    each), and ``index[i]``, the distinct output of output ``i``. Travellers who share a token
    share its rows, so a token the holder lists a great many times is held once, however many
    travellers hold it."""

    found: TableHits
    index: Ints
    starts: Ints
    counts: Ints

    def rows_of(self, outputs: Ints) -> tuple[Ints, Ints]:
        """The hits of ``outputs`` (output indexes), by output then occurrence: each row's
        output index and its row of ``found``."""
        counts = self.counts[self.index[outputs]]
        return np.repeat(outputs, counts), _gather_ranges(self.starts[self.index[outputs]], counts)

    def hit_counts(self) -> Ints:
        """How many hits each output has."""
        counts: Ints = self.counts[self.index]
        return counts

    def spread(self) -> TableHits:
        """The hits of every output, by output then occurrence."""
        output, rows = self.rows_of(np.arange(len(self.index), dtype=np.int64))
        return TableHits(output, self.found.record[rows], self.found.presence[rows])


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
        # the bits of the bitmap that name one of the schema's keys: a label's others are noise
        keys_bits = np.zeros((self.label_size - RECORD_SIZE) * 8, dtype=np.uint8)
        keys_bits[:keys] = 1
        self._known_keys = np.packbits(keys_bits, bitorder="little")
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
        """:meth:`hits` as a list of :class:`TableHit` for each output (for a few outputs: a
        query's decision reads :meth:`hits` itself)."""
        found = self.hits(outputs)
        out: list[list[TableHit]] = [[] for _ in outputs]
        bits = np.unpackbits(found.presence, axis=1, bitorder="little")[:, : self.keys]
        for i, record, row in zip(
            found.output.tolist(), found.record.tolist(), bits.tolist(), strict=True
        ):
            out[i].append(TableHit(record, frozenset(k for k, bit in enumerate(row) if bit)))
        return out

    def hits(self, outputs: Sequence[bytes]) -> TableHits:
        """Every live entry of each output's token, in columns, by output then occurrence
        (:meth:`shared_hits` spread over the outputs)."""
        return self.shared_hits(outputs).spread()

    def shared_hits(self, outputs: Sequence[bytes]) -> SharedHits:
        """Every live entry of each output's token, each distinct output's once.

        Occurrences ``j = 0, 1, ...`` of an output are probed until the first that is not in
        the table (§5.3), in blocks that double: every output still found is probed for the
        block's occurrences in one binary search over the column (the tags compared as
        unsigned 64-bit integers, never as floats), and what a block finds past an output's
        first miss is not kept. Equal outputs (travellers sharing a token) are probed once
        and share their rows. So a token listed ``n`` times costs about ``log2(n)`` rounds
        and at most ``2n + 1`` hashes, a round holds at most :data:`_MAX_ROUND` probes, and
        nothing is made per entry but its row in the columns: a table that lists one token
        for a great many records costs its reader some twenty bytes for each, not an
        object, however many of its travellers hold the token."""
        distinct: dict[bytes, int] = {}
        index = np.fromiter(
            (distinct.setdefault(y, len(distinct)) for y in outputs), np.int64, len(outputs)
        )
        found = self._probe(list(distinct))
        every = np.arange(len(distinct))
        starts = np.searchsorted(found.output, every, side="left").astype(np.int64)
        counts = np.searchsorted(found.output, every, side="right").astype(np.int64) - starts
        return SharedHits(found, index, starts, counts)

    def _probe(self, outputs: Sequence[bytes]) -> TableHits:
        """:meth:`hits` of distinct outputs."""
        size = self.label_size
        found: list[tuple[Ints, Ints, npt.NDArray[np.uint8]]] = []
        probing = np.arange(len(outputs), dtype=np.int64)
        first, block = 0, 1
        while len(probing) and len(self.tags) and first < MAX_PROBES:
            block = max(1, min(block, MAX_PROBES - first, _MAX_ROUND // len(probing)))
            pads = [
                entry_pad(outputs[i], j, size)
                for i in probing.tolist()
                for j in range(first, first + block)
            ]
            tags = np.array([tag for tag, _ in pads], dtype=np.uint64)
            left = self.tags.searchsorted(tags, side="left").astype(np.int64)
            counts = self.tags.searchsorted(tags, side="right").astype(np.int64) - left
            # an output's occurrences end at its first miss: keep the block's run up to it
            run = np.cumprod((counts > 0).reshape(len(probing), block), axis=1).astype(np.bool_)
            kept = run.ravel()
            if kept.any():
                rows = np.frombuffer(b"".join(p for _, p in pads), dtype=np.uint8)
                per = counts[kept]
                found.append(
                    (
                        np.repeat(np.repeat(probing, block)[kept], per),
                        _gather_ranges(left[kept], per),
                        np.repeat(rows.reshape(len(pads), size)[kept], per, axis=0),
                    )
                )
            probing = probing[run[:, -1]]
            first, block = first + block, min(2 * block, _MAX_BLOCK)
        if not found:
            return TableHits.none(size - RECORD_SIZE)
        output, row, pad = (np.concatenate(c) for c in zip(*found, strict=True))
        plain = self.labels[row] ^ pad
        record = np.ascontiguousarray(plain[:, :RECORD_SIZE]).view(">u4").ravel().astype(np.int64)
        live = record != TOMBSTONE
        order = np.argsort(output[live], kind="stable")  # by output, then occurrence
        return TableHits(
            output=output[live][order],
            record=record[live][order],
            presence=plain[live][order][:, RECORD_SIZE:] & self._known_keys,
        )

    def save(self, path: Path, *, meta: bytes) -> None:
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("wb") as fh:
            np.savez(
                fh,
                tags=self.tags,
                labels=self.labels,
                info=np.array([self.keys, self.version], dtype=np.uint64),  # any u64 (§6.8)
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
        except UNREADABLE_TABLE:  # damaged or cut short on disk: built or fetched again
            return None
