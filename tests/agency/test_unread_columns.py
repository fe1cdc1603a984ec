"""A list given with a mapping that leaves out fields it holds: the exchange says which
columns its records matched without (``AgencyOutcome.unread_columns``, the summary of
``xlink serve|match``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from _query_agencies import DATA, QueryPair, query_pair

from xlink.agency import exchange_in_process
from xlink.cli.cmd_serve import _print_outcome

FOUND = ["USTR-00022", "USTR-00039", "USTR-00057"]  # on the holder's sex-offender registry


@pytest.fixture()
def pair(tmp_path: Path) -> Iterator[QueryPair]:
    with query_pair(tmp_path) as p:
        yield p


def test_an_exchange_names_the_columns_its_records_matched_without(
    pair: QueryPair, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The registry given with a mapping that leaves out its date of birth and sex: the
    exchange ran on names and addresses alone and said nothing of it. Its outcome names the
    columns now, and so does the summary ``xlink serve|match`` print."""
    mapping = json.loads((DATA / "ca_sex_offenders.mapping.json").read_text())
    for column in ("Date of Birth", "Sex"):
        del mapping["columns"][column]
    stripped = tmp_path / "registry.mapping.json"
    stripped.write_text(json.dumps(mapping))
    registry = pair.holder.prepare([DATA / "ca_sex_offenders.csv"], mappings=[stripped])
    travellers = pair.travellers(FOUND)
    asker, holder = asyncio.run(
        exchange_in_process((pair.asker, travellers), (pair.holder, registry))
    )
    assert holder.unread_columns == (("Date of Birth", "birth_date"), ("Sex", "sex"))
    assert asker.unread_columns == ()
    assert holder.to_json()["unread_columns"] == [
        {"column": "Date of Birth", "usually": "birth_date"},
        {"column": "Sex", "usually": "sex"},
    ]
    _print_outcome(holder, 1.0)
    assert (
        'never matched on: "Date of Birth" (usually birth_date), "Sex" (usually sex)'
        in capsys.readouterr().out
    )
