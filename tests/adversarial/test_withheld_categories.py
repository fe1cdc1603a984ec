"""A partner learns nothing about our records of a category the MOU does not list: they take no
part in an exchange or in the query table (``Agency.releasable``). Before, they were matched
like any other and only their release was denied, so the partner saw the match (a query answer
``denied``; in the batch path, the decided pair both sides agree on): that a person is on, say,
a sex-offender registry it may not receive."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from _query_agencies import DATA, QueryPair, query_pair

from xlink.agency import exchange_in_process, query_in_process
from xlink.audit import AuditEvent
from xlink.records.model import Category

FOUND = ["USTR-00022", "USTR-00039", "USTR-00057"]  # on the holder's sex-offender registry


@pytest.fixture()
def pair(tmp_path: Path) -> Iterator[QueryPair]:
    with query_pair(tmp_path) as p:
        yield p


def _without_sex_offenders(pair: QueryPair) -> None:
    """Both agencies under terms that do not list the sex-offender category."""
    for agency in (pair.holder, pair.asker):
        kept = tuple(c for c in agency.mou.categories if c.category is not Category.SEX_OFFENDER)
        agency.mou = dataclasses.replace(agency.mou, categories=kept)


def test_a_query_shows_no_match_on_a_category_the_pair_may_not_receive(pair: QueryPair) -> None:
    service = pair.holder.query_service(pair.registry)
    listed = asyncio.run(query_in_process(service, (pair.asker, pair.travellers(FOUND))))
    assert {a.record_id for a in listed.answers if a.matched} == set(FOUND)  # the control
    _without_sex_offenders(pair)
    service = pair.holder.query_service(pair.registry)
    outcome = asyncio.run(query_in_process(service, (pair.asker, pair.travellers(FOUND, "b.csv"))))
    assert [a.matched for a in outcome.answers] == [False] * len(FOUND)
    assert all(a.fate is None for a in outcome.answers)
    assert service.table.records == 0  # the registry is all sex offenders: nothing in the table


def test_an_exchange_decides_nothing_on_a_category_the_pair_may_not_receive(
    pair: QueryPair,
) -> None:
    _without_sex_offenders(pair)
    travellers = pair.travellers(FOUND)  # both hashed under the terms now in force
    registry = pair.holder.prepare([DATA / "ca_sex_offenders.csv"])
    asker, holder = asyncio.run(
        exchange_in_process((pair.asker, travellers), (pair.holder, registry))
    )
    assert holder.records == 0 and holder.tokens == 0  # withheld before the session
    assert holder.withheld == registry.withheld > 0 and asker.withheld == 0
    assert holder.decided == asker.decided == 0
    assert holder.denied == 0 and asker.received == {}
    # the holder's log says how many records were kept out; the asker's has nothing to say
    (sizes,) = [e for e in pair.holder.audit.entries() if e.kind is AuditEvent.SIZES]
    assert sizes.fields["withheld"] == registry.withheld
    (asker_sizes,) = [e for e in pair.asker.audit.entries() if e.kind is AuditEvent.SIZES]
    assert "withheld" not in asker_sizes.fields
