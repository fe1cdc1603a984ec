"""The asker looks its outputs up in columns and decides on candidate pairs in columns
(xlink-query-v1 §5.3, §7.4): the same hits as probing one occurrence at a time gave, and the
same decision, pair for pair, as one candidate pair object per (traveller, holder record)
gave, on tables where travellers share tokens with each other and with several holder
records, some listed more than once, some removed (tombstones), with gaps and tags shared by
two entries."""

from __future__ import annotations

import hashlib
import os
from types import SimpleNamespace
from typing import Any, cast
from unittest import mock

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

import xlink.agency._query_answers as qa
import xlink.query.asker_table as asker_table
from xlink.agency._query_answers import _decide, _handles, pair_handles
from xlink.decide import decide
from xlink.linkage.schema import load_default_schema
from xlink.linkage.tokens import TokenSet, TokenSetBuilder
from xlink.protocol.events import CandidatePair
from xlink.query.asker_table import AskerTable, TableHit
from xlink.query.entries import (
    MAX_PROBES,
    RECORD_SIZE,
    TOMBSTONE,
    entries_of,
    entry_pad,
    label_size_for,
    xor_bytes,
)
from xlink.query.session import query_handle

SCHEMA = load_default_schema()
KEYS = SCHEMA.key_names
SESSION = bytes(range(16))
WIDTH = label_size_for(len(KEYS))

# a record: key index -> value (0..2), so that records share tokens often
_RECORD = st.dictionaries(st.integers(0, len(KEYS) - 1), st.integers(0, 2), min_size=1)


def _token(key: int, value: int) -> bytes:
    return bytes([key, value]) * 16


def _output(token: bytes) -> bytes:
    return hashlib.sha512(b"an OPRF output, for the test: " + token).digest()


def _table(holders: list[tuple[dict[int, int], int, bool]]) -> AskerTable:
    """The holder's table of ``holders``: each record's tokens, the record listed ``repeats``
    times under each, as a tombstone if ``removed``."""
    occurrences: dict[bytes, list[tuple[int, int]]] = {}
    for r, (record, repeats, removed) in enumerate(holders):
        label = (TOMBSTONE, 0) if removed else (r, sum(1 << k for k in record))
        for k, v in record.items():
            occurrences.setdefault(_output(_token(k, v)), []).extend([label] * repeats)
    outputs = list(occurrences)
    inverse, js, plain = [], [], []
    for o, y in enumerate(outputs):
        for j, (r, bits) in enumerate(occurrences[y]):
            inverse.append(o)
            js.append(j)
            plain.append(r.to_bytes(RECORD_SIZE, "big") + bits.to_bytes(8, "little")[:2])
    tags, labels = entries_of(
        outputs,
        np.array(inverse, dtype=np.intp),
        np.array(js, dtype=np.uint32),
        np.frombuffer(b"".join(plain), dtype=np.uint8).reshape(-1, WIDTH),
    )
    order = np.argsort(tags, kind="stable")
    return AskerTable(len(KEYS), tags=tags[order], labels=labels[order])


def _one_at_a_time(table: AskerTable, outputs: list[bytes]) -> list[list[TableHit]]:
    """§5.3's lookup as written: for j = 0, 1, ... until a tag is absent, every entry with
    the tag opened; a tombstone skipped."""
    found: list[list[TableHit]] = []
    for y in outputs:
        hits: list[TableHit] = []
        for j in range(asker_table.MAX_PROBES):
            tag, pad = entry_pad(y, j, table.label_size)
            lo = int(table.tags.searchsorted(np.uint64(tag), side="left"))
            hi = int(table.tags.searchsorted(np.uint64(tag), side="right"))
            if lo == hi:
                break
            for row in range(lo, hi):
                plain = xor_bytes(table.labels[row].tobytes(), pad)
                record = int.from_bytes(plain[:RECORD_SIZE], "big")
                if record != TOMBSTONE:
                    bits = plain[RECORD_SIZE:]
                    keys = frozenset(k for k in range(table.keys) if bits[k // 8] >> (k % 8) & 1)
                    hits.append(TableHit(record, keys))
        found.append(hits)
    return found


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.integers(0, 25), min_size=1, max_size=6),  # occurrences of each output
    st.data(),
    st.integers(1, 20),  # MAX_PROBES
    st.integers(1, 8),  # most occurrences a round probes, per output
    st.integers(1, 12),  # most probes a round
)
def test_lookup_finds_what_probing_one_occurrence_at_a_time_finds(
    counts: list[int], data: st.DataObject, max_probes: int, block: int, budget: int
) -> None:
    outputs = [os.urandom(64) for _ in counts]
    entries: list[tuple[int, bytes]] = []
    for o, n in enumerate(counts):
        removed = data.draw(st.booleans())  # every fifth occurrence a tombstone
        for j in range(n):
            tag, pad = entry_pad(outputs[o], j, WIDTH)
            record = TOMBSTONE if removed and j % 5 == 4 else o
            entries.append((tag, xor_bytes(record.to_bytes(4, "big") + b"\x05\x80", pad)))
        if data.draw(st.booleans()):  # a gap, then an entry of a later occurrence
            tag, pad = entry_pad(outputs[o], n + 1, WIDTH)
            entries.append((tag, xor_bytes(o.to_bytes(4, "big") + b"\x01\x00", pad)))
        if n and data.draw(st.booleans()):  # a second entry under an occurrence's tag
            tag, _ = entry_pad(outputs[o], data.draw(st.integers(0, n - 1)), WIDTH)
            entries.append((tag, os.urandom(WIDTH)))
    entries.sort(key=lambda e: e[0])
    tags = np.array([t for t, _ in entries], dtype=np.uint64)
    labels = np.frombuffer(b"".join(lab for _, lab in entries), dtype=np.uint8)
    table = AskerTable(len(KEYS), tags=tags, labels=labels.reshape(-1, WIDTH))
    asked = [*outputs, outputs[0], os.urandom(64)]  # one asked twice, one unknown

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(asker_table, "MAX_PROBES", max_probes)
        patch.setattr(asker_table, "_MAX_BLOCK", block)
        patch.setattr(asker_table, "_MAX_ROUND", budget)
        got = table.lookup_many(asked)
        expected = _one_at_a_time(table, asked)
    assert got == expected


def test_the_probes_stop_at_the_protocols_bound() -> None:
    assert asker_table.MAX_PROBES == MAX_PROBES


def _by_objects(tokens: TokenSet, table: AskerTable, outputs: list[bytes], threshold: Any) -> Any:
    """The decision as the asker made it with one object per hit and per pair."""
    own_keys: dict[int, set[str]] = {}
    found: dict[tuple[int, int], tuple[dict[str, set[bytes]], frozenset[int]]] = {}
    for i, (y, hits) in enumerate(zip(outputs, _one_at_a_time(table, outputs), strict=True)):
        record, key = tokens.record_index[i], KEYS[tokens.key_index[i]]
        own_keys.setdefault(record, set()).add(key)
        for hit in hits:
            by_key, _ = found.setdefault((record, hit.record), ({}, hit.presence))
            by_key.setdefault(key, set()).add(query_handle(SESSION, y))
    pairs = [
        CandidatePair(
            local_record_id=tokens.record_ids[record],
            peer_ref=holder,
            agreeing_keys=frozenset(by_key),
            handles=pair_handles(by_key),
            local_keys=frozenset(own_keys[record]),
            peer_keys=frozenset(KEYS[k] for k in presence) | frozenset(by_key),
        )
        for (record, holder), (by_key, presence) in sorted(found.items())
    ]
    source = SimpleNamespace(session_id=SESSION, iter_pairs=lambda: iter(pairs))
    return decide(cast(Any, source), SCHEMA, threshold), len(pairs)


@settings(max_examples=120, deadline=None)
@given(
    st.lists(_RECORD, min_size=1, max_size=12),
    st.lists(st.tuples(_RECORD, st.integers(1, 3), st.booleans()), min_size=1, max_size=8),
    st.sampled_from([None, 3.0, 8.0]),
    st.sampled_from([1, 5, qa._MAX_ROWS]),
)
def test_columns_decide_as_one_object_per_pair_did(
    travellers: list[dict[int, int]],
    holders: list[tuple[dict[int, int], int, bool]],
    threshold: float | None,
    group_rows: int,
) -> None:
    """``group_rows`` small: the travellers' pairs made a few travellers at a time, and only
    those the one-to-one decision could keep (``OneToOneSieve``) kept for it."""
    builder = TokenSetBuilder(KEYS)
    for n, record in enumerate(travellers):  # ids T0..T11: T10 sorts before T2
        builder.add_record(f"T{n}", [(KEYS[k], _token(k, v)) for k, v in record.items()])
    tokens = builder.build()
    outputs = [_output(tokens.value(i)) for i in range(len(tokens))]
    table = _table(holders)
    agency = SimpleNamespace(schema=SCHEMA, mou=SimpleNamespace(match_threshold=threshold))

    with mock.patch.object(qa, "_MAX_ROWS", group_rows):
        decision, candidates = _decide(
            cast(Any, agency), SESSION, cast(Any, SimpleNamespace(tokens=tokens)), table, outputs
        )
    expected, expected_candidates = _by_objects(tokens, table, outputs, threshold)

    event(f"matches: {min(len(expected.matches), 3)}")
    assert candidates == expected_candidates
    assert decision.threshold == expected.threshold
    assert decision.matches == expected.matches


def test_travellers_holding_one_token_share_one_handle() -> None:
    """The pairs' handles are distinct, as the PSI's are: two travellers holding one token
    gave its handle twice."""
    builder = TokenSetBuilder(KEYS)
    for rid in ("T0", "T1"):
        builder.add_record(rid, [(KEYS[k], _token(k, 0)) for k in (0, 3)])
    tokens = builder.build()
    outputs = [_output(tokens.value(i)) for i in range(len(tokens))]
    table = _table([({0: 0, 3: 0}, 1, False)])
    hits = table.shared_hits(outputs)
    handle, handles = _handles(hits, lambda i: query_handle(SESSION, outputs[i]))
    rows = [bytes(row) for row in handles]
    assert len(rows) == 2 and rows == sorted(set(rows))
    _, found = hits.rows_of(np.arange(len(outputs), dtype=np.int64))
    assert sorted(handle[found].tolist()) == [0, 0, 1, 1]
