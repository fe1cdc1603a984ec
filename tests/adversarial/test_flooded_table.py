"""A dishonest query holder floods its table: one of the traveller's tokens listed for tens of
thousands of records (a table may list a token as often as its bound allows; an honest one
lists a common family name and city a thousand times at ten million records). The asker
must decide as before, holding a few integers per entry found, not an object: it built a
table hit and a candidate pair (each with its key sets and handles) per entry, 1.2 GB for one
traveller at the demo MOU's bound; then a few integers per entry and traveller holding the
token, 201 MiB for twenty travellers (a family, a tour group) at sixty thousand entries."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

import xlink.agency._query_answers as qa
from xlink.error_codes import AbortCode
from xlink.errors import RemoteProtocolError
from xlink.linkage.schema import load_default_schema

FLOOD = 60_000  # entries of one token
PEAK_BYTES = 32 << 20  # 12 MiB now; the old asker held 244 MiB here
# The table and the measurement are the benchmark's (bench/flooded_table_bench.py), one copy.
_BENCH = Path(__file__).resolve().parents[2] / "bench" / "flooded_table_bench.py"
_spec = importlib.util.spec_from_file_location("flooded_table_bench", _BENCH)
assert _spec is not None and _spec.loader is not None
bench = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = bench
_spec.loader.exec_module(bench)


def test_a_token_listed_for_sixty_thousand_records_costs_the_asker_little() -> None:
    keys = load_default_schema().key_names
    decision, candidates, peak, _ = bench.flood(FLOOD, 1)

    assert candidates == FLOOD + 1
    (match,) = decision.matches  # one-to-one: the traveller's record, not the flood
    assert match.peer_ref == 5 and match.agreeing_keys == frozenset(keys)
    assert peak < PEAK_BYTES, f"the asker peaked at {peak / 2**20:.0f} MiB"


@pytest.mark.parametrize(
    ("key", "alone"),
    [
        ("names", False),  # each flooded pair disagrees on every other key: never decided
        ("family_postcode", True),  # each may be decided on the family name and postcode alone
    ],
)
def test_travellers_sharing_a_flooded_token_do_not_multiply_the_asker_s_memory(
    key: str, alone: bool
) -> None:
    """Twenty travellers (a family, a group) hold the flooded token: 1.2M candidate pairs, of
    which the asker keeps only those the decision could keep; it held all of them (201 MiB),
    then, for a flood whose pairs the schema may decide, still 195 MiB."""
    keys = load_default_schema().key_names
    decision, candidates, peak, _ = bench.flood(FLOOD, 20, [key], alone=alone)

    assert candidates == 20 * (FLOOD + 1)
    assert len(decision.matches) == 20  # every traveller and record 5, at the certain threshold
    assert {m.peer_ref for m in decision.matches} == {5}
    assert all(m.agreeing_keys == frozenset(keys) for m in decision.matches)
    assert peak < PEAK_BYTES, f"the asker peaked at {peak / 2**20:.0f} MiB"


def test_a_flood_of_certain_records_is_refused_before_they_become_matches() -> None:
    """Each flooded record agrees with the travellers on the document number and the date of
    birth with the postcode: every pair reaches the certain threshold, escapes the link rule
    and was a decided match, 1.2M objects for twenty travellers (750 MiB, 40 s). No honest
    registry lists one person more often than a request could name: the table is refused."""
    decision, _, peak, _ = bench.flood(FLOOD, 20, ["document", "dob_postcode"], alone=True)

    assert isinstance(decision, RemoteProtocolError)
    assert decision.code is AbortCode.BAD_TABLE
    assert peak < PEAK_BYTES, f"the asker peaked at {peak / 2**20:.0f} MiB"


def test_a_person_listed_a_few_times_is_decided_with_each_record() -> None:
    """Below the bound the certain pairs are decided as before: a holder that lists a
    traveller as a thousand records (at the bound) gives a thousand and one matches."""
    entries = qa.MAX_CERTAIN - 1
    decision, candidates, _, _ = bench.flood(entries, 2, ["document", "dob_postcode"], alone=True)

    assert not isinstance(decision, RemoteProtocolError)
    assert candidates == len(decision.matches) == 2 * (entries + 1)
