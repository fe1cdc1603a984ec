"""The asker decides on candidate pairs in columns (xlink-query-v1 §7.4): the same decision,
pair for pair, as one candidate pair object per (traveller, holder record) gave, on tables
where travellers share tokens with each other and with several holder records, some of them
listed more than once."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
from hypothesis import event, given, settings
from hypothesis import strategies as st

from xlink.agency._query_answers import _decide, pair_handles
from xlink.decide import decide
from xlink.linkage.schema import load_default_schema
from xlink.linkage.tokens import TokenSet, TokenSetBuilder
from xlink.protocol.events import CandidatePair
from xlink.query.asker_table import AskerTable
from xlink.query.entries import RECORD_SIZE, entries_of, label_size_for
from xlink.query.session import query_handle

SCHEMA = load_default_schema()
KEYS = SCHEMA.key_names
SESSION = bytes(range(16))

# a record: key index -> value (0..2), so that records share tokens often
_RECORD = st.dictionaries(st.integers(0, len(KEYS) - 1), st.integers(0, 2), min_size=1)


def _token(key: int, value: int) -> bytes:
    return bytes([key, value]) * 16


def _output(token: bytes) -> bytes:
    return hashlib.sha512(b"an OPRF output, for the test: " + token).digest()


def _table(holders: list[dict[int, int]], repeats: list[int]) -> AskerTable:
    """The holder's table of ``holders`` (record ``r`` listed ``repeats[r]`` times)."""
    occurrences: dict[bytes, list[tuple[int, int]]] = {}
    for r, record in enumerate(holders):
        bits = sum(1 << k for k in record)
        for k, v in record.items():
            for _ in range(repeats[r]):
                occurrences.setdefault(_output(_token(k, v)), []).append((r, bits))
    outputs = list(occurrences)
    inverse, js, plain = [], [], []
    for o, y in enumerate(outputs):
        for j, (r, bits) in enumerate(occurrences[y]):
            inverse.append(o)
            js.append(j)
            plain.append(r.to_bytes(RECORD_SIZE, "big") + bits.to_bytes(8, "little")[:2])
    width = label_size_for(len(KEYS))
    tags, labels = entries_of(
        outputs,
        np.array(inverse, dtype=np.intp),
        np.array(js, dtype=np.uint32),
        np.frombuffer(b"".join(plain), dtype=np.uint8).reshape(-1, width),
    )
    order = np.argsort(tags, kind="stable")
    return AskerTable(len(KEYS), tags=tags[order], labels=labels[order])


def _by_objects(tokens: TokenSet, table: AskerTable, outputs: list[bytes]) -> tuple[Any, int]:
    """The decision as the asker made it with one object per hit and per pair."""
    own_keys: dict[int, set[str]] = {}
    found: dict[tuple[int, int], tuple[dict[str, set[bytes]], frozenset[int]]] = {}
    for i, (y, hits) in enumerate(zip(outputs, table.lookup_many(outputs), strict=True)):
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
    return decide(cast(Any, source), SCHEMA, None), len(pairs)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(_RECORD, min_size=1, max_size=4),
    st.lists(st.tuples(_RECORD, st.integers(1, 3)), min_size=1, max_size=6),
)
def test_columns_decide_as_one_object_per_pair_did(
    travellers: list[dict[int, int]], holders: list[tuple[dict[int, int], int]]
) -> None:
    builder = TokenSetBuilder(KEYS)
    for n, record in enumerate(travellers):
        builder.add_record(f"T{n}", [(KEYS[k], _token(k, v)) for k, v in record.items()])
    tokens = builder.build()
    outputs = [_output(tokens.value(i)) for i in range(len(tokens))]
    table = _table([h for h, _ in holders], [r for _, r in holders])
    agency = SimpleNamespace(schema=SCHEMA, mou=SimpleNamespace(match_threshold=None))

    decision, candidates = _decide(
        cast(Any, agency), SESSION, cast(Any, SimpleNamespace(tokens=tokens)), table, outputs
    )
    expected, expected_candidates = _by_objects(tokens, table, outputs)

    event(f"matches: {min(len(expected.matches), 3)}")
    assert candidates == expected_candidates
    assert [
        (m.local_record_id, m.peer_ref, m.agreeing_keys, m.score, m.handles)
        for m in decision.matches
    ] == [
        (m.local_record_id, m.peer_ref, m.agreeing_keys, m.score, m.handles)
        for m in expected.matches
    ]
