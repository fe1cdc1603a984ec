"""A dishonest query holder floods its table: one of the traveller's tokens listed for tens of
thousands of records (a table may list a token as often as its bound allows; an honest one
lists a common family name and city a thousand times at ten million records). The asker
must decide as before, holding a few integers per entry found, not an object: it built a
table hit and a candidate pair (each with its key sets and handles) per entry, 1.2 GB for one
traveller at the demo MOU's bound."""

from __future__ import annotations

import os
import tracemalloc
from types import SimpleNamespace
from typing import Any, cast

import numpy as np

from xlink.agency._query_answers import _decide
from xlink.linkage.schema import load_default_schema
from xlink.linkage.tokens import TokenSetBuilder
from xlink.query.asker_table import AskerTable
from xlink.query.entries import RECORD_SIZE, entries_of, label_size_for

SESSION = bytes(range(16))
FLOOD = 60_000  # entries of one token
PEAK_BYTES = 32 << 20  # 12 MiB now; the old asker held 244 MiB here


def test_a_token_listed_for_sixty_thousand_records_costs_the_asker_little() -> None:
    schema = load_default_schema()
    keys = schema.key_names
    builder = TokenSetBuilder(keys)
    builder.add_record("traveller", [(k, bytes([i]) * 32) for i, k in enumerate(keys)])
    tokens = builder.build()
    outputs = [os.urandom(64) for _ in keys]  # the traveller's OPRF outputs, one per key
    names = keys.index("names")
    # The holder's record 5 agrees on every key (the traveller); records 100.. agree on the
    # names key alone, FLOOD of them, each declaring every key present.
    width = label_size_for(len(keys))
    occurrences = [(k, 0, 5) for k in range(len(keys))]
    occurrences += [(names, 1 + j, 100 + j) for j in range(FLOOD)]
    inverse = np.array([o for o, _, _ in occurrences], dtype=np.intp)
    js = np.array([j for _, j, _ in occurrences], dtype=np.uint32)
    plain = np.full((len(occurrences), width), 0xFF, dtype=np.uint8)
    plain[:, :RECORD_SIZE] = (
        np.array([r for _, _, r in occurrences], dtype=">u4").view(np.uint8).reshape(-1, 4)
    )
    tags, labels = entries_of(outputs, inverse, js, plain)
    order = np.argsort(tags, kind="stable")
    table = AskerTable(len(keys), tags=tags[order], labels=labels[order])
    agency = SimpleNamespace(schema=schema, mou=SimpleNamespace(match_threshold=None))
    travellers = SimpleNamespace(tokens=tokens)

    tracemalloc.start()
    try:
        decision, candidates = _decide(
            cast(Any, agency), SESSION, cast(Any, travellers), table, outputs
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert candidates == FLOOD + 1
    (match,) = decision.matches  # one-to-one: the traveller's record, not the flood
    assert match.peer_ref == 5 and match.agreeing_keys == frozenset(keys)
    assert peak < PEAK_BYTES, f"the asker peaked at {peak / 2**20:.0f} MiB"
