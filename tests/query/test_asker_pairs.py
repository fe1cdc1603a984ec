"""The handles an asker names for a decided pair (xlink-query-v1 §7.4): the holder scores the
pair again on the keys those handles name (§7.5), so a traveller of many aliases, whose pair
shares more tokens than a request names, must still name every key it agreed on."""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from xlink.agency._query_answers import _decide, pair_handles
from xlink.linkage.schema import load_default_schema
from xlink.linkage.tokens import TokenSetBuilder
from xlink.protocol.limits import MAX_PAIR_HANDLES
from xlink.query.asker_table import SharedHits, TableHits
from xlink.query.session import query_handle

SESSION = bytes(range(16))


def test_a_pair_of_many_aliases_names_every_key_it_agreed_on() -> None:
    """300 alias tokens and one document token hit the same holder record; the document's
    handle sorts after every alias's. Cutting the ascending handles at 255 dropped it: the
    holder then scored the pair on the names alone (0.26) and refused what the asker decided
    on names and document (8.05)."""
    schema = load_default_schema()
    names = [os.urandom(64) for _ in range(300)]
    top = max(query_handle(SESSION, y) for y in names)
    while query_handle(SESSION, document := os.urandom(64)) <= top:
        pass
    builder = TokenSetBuilder(schema.key_names)
    builder.add_record(
        "traveller",
        [("names", bytes([i % 256, i // 256]) * 16) for i in range(300)]
        + [("document", b"\xdd" * 32)],
    )
    tokens = builder.build()
    outputs = [*names, document]
    size = (len(schema.key_names) + 7) // 8
    every = np.arange(len(outputs), dtype=np.int64)  # distinct outputs, one entry each
    hits = TableHits(
        output=every,
        record=np.full(len(outputs), 7, dtype=np.int64),
        presence=np.full((len(outputs), size), 0xFF, dtype=np.uint8),
    )
    table = SimpleNamespace(shared_hits=lambda ys: SharedHits(hits, every, every, every * 0 + 1))
    agency = SimpleNamespace(schema=schema, mou=SimpleNamespace(match_threshold=6.0))

    decision, candidates = _decide(
        cast(Any, agency), SESSION, cast(Any, SimpleNamespace(tokens=tokens)), table, outputs
    )

    assert candidates == 1
    (match,) = decision.matches
    assert match.agreeing_keys == {"names", "document"}
    assert len(match.handles) == MAX_PAIR_HANDLES
    assert query_handle(SESSION, document) in match.handles
    assert list(match.handles) == sorted(set(match.handles))


_HANDLES = st.binary(min_size=16, max_size=16)


@given(st.dictionaries(st.sampled_from("abcdefgh"), st.sets(_HANDLES, min_size=1, max_size=80)))
def test_named_handles_fit_a_request_and_name_every_key(by_key: dict[str, set[bytes]]) -> None:
    named = pair_handles(by_key) if by_key else ()
    every = set().union(*by_key.values()) if by_key else set()
    assert list(named) == sorted(set(named)) and set(named) <= every
    assert len(named) == min(len(every), MAX_PAIR_HANDLES)
    assert all(set(named) & handles for handles in by_key.values())
    if len(every) <= MAX_PAIR_HANDLES:
        assert set(named) == every
