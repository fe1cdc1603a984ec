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

from xlink.agency import exchange_in_process, read_matches
from xlink.cli.cmd_serve import _print_outcome
from xlink.errors import InputError
from xlink.release.policy import ungraded

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


def test_an_exchange_says_why_its_matches_were_denied_and_check_warns_first(
    pair: QueryPair,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The registry given without its grading column, under an MOU that requires the source
    grading for sex-offender releases: every match was denied and the summary said only
    ``denied 3``. It names the reason now, with what to do, and ``ungraded`` (what ``xlink
    check`` warns of) counts the records before any exchange."""
    mapping = json.loads((DATA / "ca_sex_offenders.mapping.json").read_text())
    del mapping["columns"]["Grading"]
    stripped = tmp_path / "registry.mapping.json"
    stripped.write_text(json.dumps(mapping))
    registry = pair.holder.prepare([DATA / "ca_sex_offenders.csv"], mappings=[stripped])
    assert ungraded(registry.records, pair.holder.mou) == {"sex_offender": len(registry.records)}
    graded = pair.holder.prepare([DATA / "ca_sex_offenders.csv"])
    assert ungraded(graded.records, pair.holder.mou) == {}
    travellers = pair.travellers(FOUND)
    _, holder = asyncio.run(exchange_in_process((pair.asker, travellers), (pair.holder, registry)))
    assert holder.decided == len(FOUND) and holder.released_total == 0
    assert (
        holder.denied_reasons
        == {"grading-missing": len(FOUND)}
        == {"grading-missing": holder.denied}
    )
    _print_outcome(holder, 1.0)
    out = capsys.readouterr().out
    assert f"denied {len(FOUND)} (grading-missing {len(FOUND)})" in out
    assert "map a grading column" in out
    # each match, typed, for an integrator (it parsed the CSV's strings)
    rows = holder.read_matches()
    assert len(rows) == holder.decided
    assert {(r.outbound, r.outbound_reasons) for r in rows} == {("denied", ("grading-missing",))}
    assert all(isinstance(r.score, float) and r.agreeing_keys for r in rows)
    assert {r.own_category for r in rows} == {"sex_offender"}


def test_a_file_that_is_no_matches_file_is_said_so(tmp_path: Path) -> None:
    (tmp_path / "m.jsonl").write_text('{"session": "x"}\n', encoding="utf-8")
    for missing in (tmp_path / "m.csv", tmp_path / "none.csv"):
        with pytest.raises(InputError, match="not a matches file"):
            read_matches(missing)
