"""The holder's query table: built from its list's tokens, updated record by record, served as
deltas since a version (spec: xlink-query-v1 §5.2)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from xlink.crypto.oprf9497 import OprfKey
from xlink.errors import InputError
from xlink.linkage.tokens import TOKEN_SIZE, TokenSet
from xlink.progress import ProgressFn
from xlink.query._columns import evaluate_ranges, fingerprints, presence_columns
from xlink.query.entries import (
    MAX_RECORDS,
    RECORD_SIZE,
    TAG_DTYPE,
    TAG_SIZE,
    TOMBSTONE,
    UNREADABLE_TABLE,
    entries_of,
    entry_pad,
    label_size_for,
    table_digest,
    xor_bytes,
)

__all__ = ["HolderTable", "TableView", "UpdateStats"]


@dataclass(frozen=True, slots=True)
class UpdateStats:
    """What one :meth:`HolderTable.update` did."""

    added: int
    removed: int
    changed: int
    evaluations: int
    entries: int
    version: int
    seconds: float


@dataclass(frozen=True, slots=True)
class TableView:
    """One version of the table as it stood when taken (:meth:`HolderTable.view`): its
    version, size and digest, and its entries. An update of the table after the view was
    taken changes neither: the view holds the arrays of its version, which the table never
    writes again (:meth:`HolderTable.update` writes copies), so a session declares and serves
    one version however long its answer takes to send."""

    version: int
    entries: int
    digest: bytes
    tags: npt.NDArray[np.uint64]
    labels: npt.NDArray[np.uint8]
    versions: npt.NDArray[np.uint32]
    order: npt.NDArray[np.intp]
    """The entries' indexes in ascending order of tag."""

    def delta(self, since: int, *, chunk: int = 65536) -> Iterator[bytes]:
        """The entries written after version ``since`` (all of them for 0), ascending by tag,
        as ``tag || label`` byte strings of at most ``chunk`` entries each."""
        order = self.order if since <= 0 else self.order[self.versions[self.order] > since]
        for start in range(0, len(order), chunk):
            part = order[start : start + chunk]
            tags = self.tags[part].astype(TAG_DTYPE).view(np.uint8).reshape(-1, TAG_SIZE)
            yield np.hstack([tags, self.labels[part]]).tobytes()


class HolderTable:
    """The holder's table of one key period, with the token occurrences behind it.

    Occurrences are kept in record order (a record's tokens are contiguous, records in the
    order they were added), each with its token, record index, key index, occurrence number
    ``j``, tag, label and the table version that last wrote it. Not thread-safe.
    """

    def __init__(
        self,
        key: OprfKey,
        key_names: Sequence[str],
        *,
        record_ids: list[str | None],
        tokens: npt.NDArray[np.void],
        records: npt.NDArray[np.uint32],
        keys: npt.NDArray[np.uint8],
        js: npt.NDArray[np.uint32],
        tags: npt.NDArray[np.uint64],
        labels: npt.NDArray[np.uint8],
        versions: npt.NDArray[np.uint32],
        version: int,
    ) -> None:
        self._key = key
        self.key_names = tuple(key_names)
        self.label_size = label_size_for(len(self.key_names))
        self.record_ids = record_ids
        self._index_of = {rid: i for i, rid in enumerate(record_ids) if rid is not None}
        self._tokens = tokens
        self._records = records
        self._keys = keys
        self._js = js
        self._tags = tags
        self._labels = labels
        self._versions = versions
        self.version = version
        self._sorted: tuple[int, npt.NDArray[np.intp]] | None = None
        self._by_token: tuple[tuple[int, int], npt.NDArray[np.intp]] | None = None
        self._digest: tuple[int, bytes] | None = None
        self.workers = os.cpu_count() or 1
        """Threads that evaluate the OPRF when the table is built or updated."""

    # -- building ----------------------------------------------------------------------------

    @classmethod
    def build(
        cls, key: OprfKey, tokens: TokenSet, *, progress: ProgressFn | None = None
    ) -> HolderTable:
        """The table of ``tokens`` (version 1). One OPRF evaluation per distinct token value."""
        empty = cls(
            key,
            tokens.key_names,
            record_ids=[],
            tokens=np.zeros(0, dtype=f"V{TOKEN_SIZE}"),
            records=np.zeros(0, dtype=np.uint32),
            keys=np.zeros(0, dtype=np.uint8),
            js=np.zeros(0, dtype=np.uint32),
            tags=np.zeros(0, dtype=np.uint64),
            labels=np.zeros((0, label_size_for(len(tokens.key_names))), dtype=np.uint8),
            versions=np.zeros(0, dtype=np.uint32),
            version=0,
        )
        empty._append(tokens, range(len(tokens.record_ids)), progress=progress)
        empty.version = 1
        empty._versions[:] = 1
        return empty

    def _append(
        self, tokens: TokenSet, which: Sequence[int] | range, *, progress: ProgressFn | None
    ) -> int:
        """Add the records ``which`` of ``tokens`` (positions in ``tokens.record_ids``) as new
        records; returns the OPRF evaluations made."""
        self._same_keys(tokens)
        wanted = np.zeros(len(tokens.record_ids), dtype=bool)
        wanted[list(which)] = True
        rec_col = np.frombuffer(tokens.record_index, dtype=np.uint32)
        keep = wanted[rec_col] if len(rec_col) else np.zeros(0, dtype=bool)
        values = np.frombuffer(tokens.values, dtype=f"V{TOKEN_SIZE}")[keep]
        old_rec = rec_col[keep]
        key_col = np.frombuffer(tokens.key_index, dtype=np.uint8)[keep]
        first = len(self.record_ids)
        chosen = np.flatnonzero(wanted)
        self._room_for(len(chosen))
        new_index = np.zeros(len(tokens.record_ids), dtype=np.uint32)
        new_index[chosen] = np.arange(first, first + len(chosen), dtype=np.uint32)
        recs = new_index[old_rec]
        order = np.argsort(recs, kind="stable")
        values, recs, key_col = values[order], recs[order], key_col[order]
        for position in chosen:
            new_id = tokens.record_ids[position]
            self._index_of[new_id] = len(self.record_ids)
            self.record_ids.append(new_id)
        # Occurrence numbers: after every existing occurrence of the same value, in order.
        unique, inverse = np.unique(values, return_inverse=True)
        counts = self._occurrences(unique)
        js = np.zeros(len(values), dtype=np.uint32)
        by_value = np.argsort(inverse, kind="stable")
        sorted_inv = inverse[by_value]
        starts = np.searchsorted(sorted_inv, np.arange(len(unique) + 1))
        if len(values):
            rank = np.arange(len(values)) - starts[sorted_inv]
            js[by_value] = (counts[sorted_inv] + rank).astype(np.uint32)
        plain = np.zeros((len(values), self.label_size), dtype=np.uint8)
        plain[:, :RECORD_SIZE] = recs.astype(">u4").view(np.uint8).reshape(-1, RECORD_SIZE)
        plain[:, RECORD_SIZE:] = presence_columns(recs, key_col, self.label_size - RECORD_SIZE)
        tags = np.zeros(len(values), dtype=np.uint64)
        labels = np.zeros((len(values), self.label_size), dtype=np.uint8)
        # Value by value range: the outputs of one range are used for its occurrences and
        # dropped, so memory stays that of the columns, not of a Python object per output.
        for low, high, outputs in evaluate_ranges(self._key, unique, self.workers, progress):
            occurrences = by_value[starts[low] : starts[high]]
            part_tags, part_labels = entries_of(
                outputs, inverse[occurrences] - low, js[occurrences], plain[occurrences]
            )
            tags[occurrences] = part_tags
            labels[occurrences] = part_labels
        del plain, by_value, sorted_inv
        self._tokens = np.concatenate([self._tokens, values])
        self._records = np.concatenate([self._records, recs])
        self._keys = np.concatenate([self._keys, key_col])
        self._js = np.concatenate([self._js, js])
        self._tags = np.concatenate([self._tags, tags])
        self._labels = np.concatenate([self._labels, labels])
        fresh = np.full(len(values), self.version + 1, dtype=np.uint32)
        self._versions = np.concatenate([self._versions, fresh])
        self._sorted = None
        return len(unique)

    def _same_keys(self, tokens: TokenSet) -> None:
        if tuple(tokens.key_names) != self.key_names:
            raise InputError("these tokens were derived with another linkage schema")

    def _room_for(self, records: int) -> None:
        if len(self.record_ids) + records > MAX_RECORDS:
            raise InputError(f"a query table holds at most {MAX_RECORDS} records")

    def _occurrences(self, unique: npt.NDArray[np.void]) -> npt.NDArray[np.int64]:
        """How many occurrences (tombstones included) each value of ``unique`` has already."""
        if not len(self._tokens) or not len(unique):
            return np.zeros(len(unique), dtype=np.int64)
        existing = np.sort(self._tokens)
        left = np.searchsorted(existing, unique, side="left")
        right = np.searchsorted(existing, unique, side="right")
        return (right - left).astype(np.int64)

    # -- updating ----------------------------------------------------------------------------

    def update(
        self,
        tokens: TokenSet,
        *,
        progress: ProgressFn | None = None,
        check_entries: Callable[[int], object] | None = None,
    ) -> UpdateStats:
        """Bring the table to the records of ``tokens``: a record id no longer there becomes
        tombstones, a new id is added, an id whose tokens changed is both. Records unchanged
        cost nothing; the version goes up by one if anything changed.

        Everything that can refuse the update runs before the table is touched, so a refused
        update leaves it as it was (sessions that hold the table go on answering from it):
        tokens of another schema or more records than a table holds raise ``InputError``, and
        ``check_entries`` is called with the number of entries the table would have, to raise
        when that is too many."""
        started = time.perf_counter()
        self._same_keys(tokens)
        incoming: dict[str, int] = {rid: i for i, rid in enumerate(tokens.record_ids)}
        # Each record's tokens as an order-free fingerprint (sum and count), computed in
        # numpy for both sides: a million records compare in about a second.
        theirs = fingerprints(
            np.frombuffer(tokens.record_index, dtype=np.uint32),
            np.frombuffer(tokens.key_index, dtype=np.uint8),
            np.frombuffer(tokens.values, dtype=f"V{TOKEN_SIZE}"),
            len(tokens.record_ids),
        )
        ours = fingerprints(self._records, self._keys, self._tokens, len(self.record_ids))
        removed: set[int] = set()
        changed = 0
        for rid, index in list(self._index_of.items()):
            position = incoming.get(rid)
            if position is None:
                removed.add(index)
            elif ours[index] != theirs[position]:
                removed.add(index)
                changed += 1
        added = [
            position
            for rid, position in incoming.items()
            if rid not in self._index_of or self._index_of[rid] in removed
        ]
        if not removed and not added:
            return UpdateStats(0, 0, 0, 0, len(self._tags), self.version, 0.0)
        self._room_for(len(added))
        if check_entries is not None:
            per_record = np.bincount(
                np.frombuffer(tokens.record_index, dtype=np.uint32),
                minlength=len(tokens.record_ids),
            )
            check_entries(self.entries + int(per_record[added].sum()))
        evaluations = self._tombstone(sorted(removed))
        for index in removed:
            gone = self.record_ids[index]
            self.record_ids[index] = None
            if gone is not None and self._index_of.get(gone) == index:
                del self._index_of[gone]
        evaluations += self._append(tokens, added, progress=progress)
        self.version += 1
        return UpdateStats(
            added=len(added) - changed,
            removed=len(removed) - changed,
            changed=changed,
            evaluations=evaluations,
            entries=len(self._tags),
            version=self.version,
            seconds=time.perf_counter() - started,
        )

    def _record_slice(self, index: int) -> slice:
        # An np.uint32 key: a Python int would make numpy copy the whole column to int64.
        key = np.uint32(index)
        left = int(self._records.searchsorted(key, side="left"))
        right = int(self._records.searchsorted(key, side="right"))
        return slice(left, right)

    def _tombstone(self, indexes: Sequence[int]) -> int:
        evaluations = 0
        if len(indexes):
            # Written on copies: a view taken before this update keeps its version intact.
            self._labels = self._labels.copy()
            self._versions = self._versions.copy()
        plain = TOMBSTONE.to_bytes(RECORD_SIZE, "big") + bytes(self.label_size - RECORD_SIZE)
        for index in indexes:
            part = self._record_slice(index)
            values = [bytes(v) for v in self._tokens[part]]
            outputs = self._key.evaluate_many(values)
            evaluations += len(values)
            for offset, (output, j) in enumerate(zip(outputs, self._js[part], strict=True)):
                _, pad = entry_pad(output, int(j), self.label_size)
                self._labels[part.start + offset] = np.frombuffer(xor_bytes(plain, pad), np.uint8)
                self._versions[part.start + offset] = self.version + 1
        self._sorted = None
        return evaluations

    # -- serving -----------------------------------------------------------------------------

    @property
    def entries(self) -> int:
        return len(self._tags)

    @property
    def records(self) -> int:
        """Live records (not removed)."""
        return len(self._index_of)

    def view(self) -> TableView:
        """The current version, as it stands now, to be served later (:class:`TableView`)."""
        if self._sorted is None or self._sorted[0] != self.version:
            self._sorted = (self.version, np.argsort(self._tags, kind="stable"))
        return TableView(
            version=self.version,
            entries=len(self._tags),
            digest=self.digest(),
            tags=self._tags,
            labels=self._labels,
            versions=self._versions,
            order=self._sorted[1],
        )

    def delta(self, since: int, *, chunk: int = 65536) -> Iterator[bytes]:
        """:meth:`TableView.delta` of the current version, taken now."""
        return self.view().delta(since, chunk=chunk)

    def digest(self) -> bytes:
        """:func:`table_digest` of the current version (computed once per version)."""
        if self._digest is None or self._digest[0] != self.version:
            self._digest = (self.version, table_digest(self._tags, self._labels))
        return self._digest[1]

    def record_id(self, index: int) -> str | None:
        """The record id at table index ``index`` (None: removed or out of range)."""
        return self.record_ids[index] if 0 <= index < len(self.record_ids) else None

    def record_outputs(self, index: int) -> list[tuple[str, bytes]]:
        """The ``(key name, OPRF output)`` of each token of record ``index`` (one evaluation
        per token: the outputs are not kept)."""
        part = self._record_slice(index)
        values = [bytes(v) for v in self._tokens[part]]
        outputs = self._key.evaluate_many(values)
        return [(self.key_names[int(k)], y) for k, y in zip(self._keys[part], outputs, strict=True)]

    def record_tokens(self, index: int) -> list[bytes]:
        """The tokens of record ``index``, in the order of :meth:`record_outputs`."""
        return [bytes(v) for v in self._tokens[self._record_slice(index)]]

    def holders_of(self, tokens: Sequence[bytes]) -> dict[int, frozenset[str]]:
        """Every live record (not removed) that holds one of ``tokens``, with the keys it holds
        them under (a token is of one key: its key is in its hash)."""
        stamp = (self.version, len(self._tokens))
        if self._by_token is None or self._by_token[0] != stamp:
            self._by_token = (stamp, np.argsort(self._tokens, kind="stable"))
        order = self._by_token[1]  # an index, not a sorted copy of the tokens
        found: dict[int, set[str]] = {}
        for token in tokens:
            value = np.frombuffer(token, dtype=f"V{TOKEN_SIZE}")
            left = int(self._tokens.searchsorted(value, side="left", sorter=order)[0])
            right = int(self._tokens.searchsorted(value, side="right", sorter=order)[0])
            for at in order[left:right]:
                record = int(self._records[at])
                if self.record_ids[record] is not None:
                    found.setdefault(record, set()).add(self.key_names[int(self._keys[at])])
        return {record: frozenset(keys) for record, keys in found.items()}

    def presence(self, index: int) -> frozenset[str]:
        """The keys record ``index`` has tokens for."""
        part = self._record_slice(index)
        return frozenset(self.key_names[int(k)] for k in self._keys[part])

    # -- persistence -------------------------------------------------------------------------

    def save(self, path: Path, *, check: bytes) -> None:
        """Write the table to ``path`` (npz) with ``check``, a value that tells the key it was
        built with (:meth:`load` refuses another)."""
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("wb") as fh:
            np.savez(
                fh,
                tokens=self._tokens.view(np.uint8).reshape(-1, TOKEN_SIZE),
                records=self._records,
                keys=self._keys,
                js=self._js,
                tags=self._tags,
                labels=self._labels,
                versions=self._versions,
                meta=np.frombuffer(
                    _meta(self.key_names, self.record_ids, self.version, check), dtype=np.uint8
                ),
            )
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path, key: OprfKey, *, check: bytes) -> HolderTable | None:
        """The table saved at ``path`` if it was built with the key ``check`` names; None if
        there is none, it is unreadable, or it is of another key."""
        import json

        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(bytes(data["meta"]).decode("utf-8"))
                if bytes.fromhex(meta["check"]) != check:
                    return None
                return cls(
                    key,
                    meta["keys"],
                    record_ids=list(meta["records"]),
                    tokens=np.ascontiguousarray(data["tokens"]).view(f"V{TOKEN_SIZE}").ravel(),
                    records=data["records"].astype(np.uint32),
                    keys=data["keys"].astype(np.uint8),
                    js=data["js"].astype(np.uint32),
                    tags=data["tags"].astype(np.uint64),
                    labels=data["labels"].astype(np.uint8),
                    versions=data["versions"].astype(np.uint32),
                    version=int(meta["version"]),
                )
        except UNREADABLE_TABLE:  # damaged or cut short on disk: built or fetched again
            return None


def _meta(
    key_names: Sequence[str], record_ids: list[str | None], version: int, check: bytes
) -> bytes:
    import json

    doc = {"keys": list(key_names), "records": record_ids, "version": version, "check": check.hex()}
    return json.dumps(doc, separators=(",", ":")).encode("utf-8")
