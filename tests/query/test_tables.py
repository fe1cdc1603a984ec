"""The query table's columns: a tag is compared as an unsigned 64-bit integer (never as a
float, which cannot tell neighbouring tags apart), and the holder finds one record's
occurrences without copying its columns."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xlink.crypto.oprf9497 import OprfKey
from xlink.errors import InputError
from xlink.linkage.tokens import TokenSet, TokenSetBuilder
from xlink.query.asker_table import AskerTable
from xlink.query.entries import RECORD_SIZE, entry_pad, label_size_for, table_digest, xor_bytes
from xlink.query.holder_table import HolderTable

KEYS = 3


def _entry(output: bytes, record: int, j: int = 0) -> tuple[int, bytes]:
    size = label_size_for(KEYS)
    tag, pad = entry_pad(output, j, size)
    plain = record.to_bytes(RECORD_SIZE, "big") + bytes([0b101])
    return tag, xor_bytes(plain, pad)


def _table(entries: list[tuple[int, bytes]]) -> AskerTable:
    entries = sorted(entries)
    tags = np.array([t for t, _ in entries], dtype=np.uint64)
    labels = np.array([list(lab) for _, lab in entries], dtype=np.uint8).reshape(
        len(entries), label_size_for(KEYS)
    )
    return AskerTable(KEYS, tags=tags, labels=labels)


def _output_with_tag_below(limit: int) -> bytes:
    while True:
        output = os.urandom(64)
        if entry_pad(output, 0, label_size_for(KEYS))[0] < limit:
            return output


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=1, max_value=1000), st.sampled_from([2**53, 2**62, 2**63, 2**64]))
def test_neighbouring_tags_are_told_apart(spread: int, limit: int) -> None:
    """Entries whose tags differ by 1..1000 next to the asker's own: only its entry opens. A
    search that turned the tags into floats (53-bit mantissa) lumped them together."""
    output = _output_with_tag_below(limit)
    tag, label = _entry(output, 7)
    noise = os.urandom(label_size_for(KEYS))
    entries = [(tag, label)]
    entries += [(t, noise) for t in (tag - spread, tag + spread) if 0 <= t < 2**64]
    (hits,) = _table(entries).lookup_many([output])
    assert [(h.record, sorted(h.presence)) for h in hits] == [(7, [0, 2])]


def test_every_occurrence_is_found_and_a_stranger_finds_nothing() -> None:
    outputs = [os.urandom(64) for _ in range(40)]
    entries = [_entry(y, r, j) for r, y in enumerate(outputs) for j in range(r % 4)]
    table = _table(entries)
    found = table.lookup_many([*outputs, os.urandom(64)])
    assert [len(h) for h in found] == [r % 4 for r in range(40)] + [0]
    assert all(h.record == r for r, hits in enumerate(found[:40]) for h in hits)


def _tokens(records: dict[str, list[bytes]]) -> TokenSet:
    builder = TokenSetBuilder(("name", "dob"))
    for rid, values in records.items():
        builder.add_record(rid, [(("name", "dob")[i % 2], v) for i, v in enumerate(values)])
    return builder.build()


def test_an_update_during_a_slow_send_does_not_tear_the_answer() -> None:
    """A table answer is read chunk by chunk as its frames go out; an update in between (a
    record removed is a tombstone, written over its entries) must not change what the answer
    already declared. Before, the rest of the answer was read from the updated table: the
    asker got a mix of two versions (and aborted on the digest)."""
    key = OprfKey.derive(b"\x01" * 32, b"xlink-test/torn-table")
    records = {f"r{i}": [bytes([i, k]) * 16 for k in range(2)] for i in range(60)}
    table = HolderTable.build(key, _tokens(records))
    table.workers = 1
    declared = table.digest()
    whole = b"".join(table.delta(0))

    sending = table.delta(0, chunk=8)
    first = next(sending)
    kept = {rid: v for rid, v in records.items() if rid not in {"r3", "r40", "r59"}}
    kept["new"] = [b"\xee" * 32]
    stats = table.update(_tokens(kept))
    assert (stats.removed, stats.added, table.version) == (3, 1, 2)
    served = first + b"".join(sending)

    assert served == whole
    size = table.label_size
    tags, labels = AskerTable.parse_chunk(served, size)
    assert table_digest(tags, labels) == declared != table.digest()
    # The next answer is of the new version, tombstones and all.
    tags, labels = AskerTable.parse_chunk(b"".join(table.delta(0)), size)
    assert table_digest(tags, labels) == table.digest()


class _Refused(Exception):
    pass


def test_a_refused_update_leaves_the_table_as_it_was() -> None:
    """``check_entries`` is told how many entries the update would leave, before anything is
    written: refusing it keeps every record, entry and version (sessions that hold the table
    go on answering from it). The entries are those of the records added or changed, on top
    of all the table has (tombstones stay)."""
    key = OprfKey.derive(b"\x02" * 32, b"xlink-test/refused-update")
    records = {f"r{i}": [bytes([i, k]) * 16 for k in range(2)] for i in range(20)}
    table = HolderTable.build(key, _tokens(records))
    before = (table.version, table.entries, list(table.record_ids), table.digest())
    changed = {**records, "r5": [b"\xaa" * 32], "new": [b"\xbb" * 32, b"\xcc" * 32]}
    asked: list[int] = []

    def refuse(entries: int) -> None:
        asked.append(entries)
        raise _Refused

    with pytest.raises(_Refused):
        table.update(_tokens(changed), check_entries=refuse)
    assert asked == [40 + 1 + 2]
    assert (table.version, table.entries, list(table.record_ids), table.digest()) == before
    assert table.record_tokens(5) == records["r5"]
    stats = table.update(_tokens(changed), check_entries=asked.append)
    assert (stats.changed, stats.added, table.entries, asked[-1]) == (1, 1, 43, 43)


def test_tokens_of_another_schema_are_refused_before_anything_is_written() -> None:
    """An update with another schema's tokens tombstoned the records it changed, then raised
    when it came to add them: a table half written, at its old version."""
    key = OprfKey.derive(b"\x03" * 32, b"xlink-test/other-schema")
    records = {f"r{i}": [bytes([i, k]) * 16 for k in range(2)] for i in range(10)}
    table = HolderTable.build(key, _tokens(records))
    before = (table.version, table.entries, list(table.record_ids), table.digest())
    other = TokenSetBuilder(("name", "dob", "postcode"))
    for rid, values in {**records, "r2": [b"\xaa" * 32]}.items():
        other.add_record(rid, [("name", v) for v in values])
    with pytest.raises(InputError, match="another linkage schema"):
        table.update(other.build())
    assert (table.version, table.entries, list(table.record_ids), table.digest()) == before
