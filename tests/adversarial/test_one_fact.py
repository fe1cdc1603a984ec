"""A partner that knows one fact about a person (a name, or an address) and lists just that,
declaring every other key missing, or lists it with every birth year guessed, or with every
birth year and a city it guesses: under the default schema (v7, ``min_evidence_groups`` 2,
the city no evidence) nothing is decided or released, in the batch exchange over mutual TLS and
in the query mode, even when the asker decides on its own rules and asks for the release
anyway. Under schema v5, which has no such rule, the same record was decided on ``names`` alone
(score 0.2602, above the threshold 0.06694) and released; under v6, which counted the city as an
address, on the name, the year and the city (``family_locality``; 2.432)."""

from __future__ import annotations

import asyncio
import csv
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from _query_agencies import query_pair, traveller_file
from _two_agencies import CA, US, TwoAgencies, small_files

from xlink.agency import AgencyOutcome
from xlink.agency._query import ask
from xlink.decide import decide
from xlink.linkage.schema import load_default_schema, load_schema
from xlink.protocol.events import CandidatePair
from xlink.transport import memory_pair

PASSPHRASE = b"one-fact partner tests, not a secret"
SCHEMAS = Path(__file__).resolve().parents[2] / "xlink" / "data" / "schemas"
FOUND = ["USTR-00022", "USTR-00039", "USTR-00057"]  # decided on their full records


@dataclass(frozen=True)
class _Pairs:
    session_id: bytes
    pairs: tuple[CandidatePair, ...]

    def iter_pairs(self) -> Iterator[CandidatePair]:
        return iter(self.pairs)


def _alone(*keys: str) -> _Pairs:
    """One of our records (holding every key) paired with a partner record that declares only
    ``keys`` present and agrees on them."""
    every = frozenset(load_default_schema().key_names)
    agreed = frozenset(keys)
    pair = CandidatePair("ours", 0, agreed, (b"\1" * 16,), every, agreed)
    return _Pairs(b"s" * 32, (pair,))


@pytest.mark.parametrize(
    "key", ["names", "street_postcode", "family_postcode", "dob_street", "dob_locality"]
)
def test_one_key_declared_alone_decided_under_v5_is_weighed_under_v6(key: str) -> None:
    v5 = load_schema(SCHEMAS / "default-v5.json")
    v6 = load_default_schema()
    assert v5.threshold is not None
    assert len(decide(_alone(key), v5, v5.threshold).matches) == 1  # the flaw, as it was
    decided = decide(_alone(key), v6, v6.threshold).matches
    # one identifying group (a name, an address) never decides; two may, on their weight
    assert len(decided) == (v6.evidence_groups([key]) >= 2)


def test_a_name_with_a_guessed_birth_year_is_one_fact() -> None:
    """A birth year is a hundred guesses away: agreeing on it with the name scored 4.19 under
    v5, and is no second fact under v6."""
    v5 = load_schema(SCHEMAS / "default-v5.json")
    v6 = load_default_schema()
    guessed = _alone("names", "metaphone_names_year")
    assert len(decide(guessed, v5, v5.threshold).matches) == 1
    assert decide(guessed, v6, v6.threshold).matches == ()
    # a date of birth to the month (1,200 guesses, docs/security.md) or in full is a second fact
    for birth in ("names_year_month", "names_dob_swapped"):
        assert len(decide(_alone("names", birth), v6, v6.threshold).matches) == 1


def test_a_name_with_a_guessed_birth_year_and_city_is_one_fact() -> None:
    """A city is a few guesses away too (one city holds an eighth of the bundled registry):
    v6 counted it as an address, so the name and year with it made two facts (2.432 points,
    with ``family_locality`` weighing against a match); under v7 it holds nothing."""
    v6 = load_schema(SCHEMAS / "default-v6.json")
    v7 = load_default_schema()
    guessed = _alone("names", "metaphone_names_year", "family_locality")
    assert len(decide(guessed, v6, v6.threshold).matches) == 1  # the flaw, as it was
    assert decide(guessed, v7, v7.threshold).matches == ()
    # a street or a postcode is still an address: a name with one of them may be decided
    for address in ("given_postcode", "minhash_name_postcode"):
        assert v7.has_evidence(["names", address])


def _guess_years(
    path: Path, keep: Iterable[str], date: str, years: range, cities: tuple[str, ...] = ()
) -> Path:
    """``path`` rewritten in place: each row once per year of ``years`` (a year-only date in
    the ``date`` column) and, with ``cities`` (the city column, then the guesses), per guessed
    city, with only the ``keep`` columns of the row besides."""
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    head, out = rows[0], [rows[0]]
    kept = [head.index(c) for c in keep]
    column, guesses = (head.index(cities[0]), cities[1:]) if cities else (-1, ("",))
    for row in rows[1:]:
        for year, city in itertools.product(years, guesses):
            guess = [row[i] if i in kept else "" for i in range(len(head))]
            guess[0] = f"{row[0]}-{year}{city[:3]}"
            guess[head.index(date)] = str(year)
            if cities:
                guess[column] = city
            out.append(guess)
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(out)
    return path


def _keep_only(path: Path, columns: Iterable[str], blank: Iterable[str]) -> Path:
    """``path`` rewritten in place with the ``blank`` columns emptied: a partner's records
    that say only what the other columns say. ``columns`` must all still hold a value."""
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    gone = [header.index(c) for c in blank]
    for row in rows[1:]:
        for i in gone:
            row[i] = ""
        assert all(row[header.index(c)] for c in columns)
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


_WATCHLIST_FACTS = ("middle_name", "aka", "citizenship", "doc_type", "doc_num", "doc_country",
                    "doc_exp", "street", "city", "state", "zip", "country")  # fmt: skip


def _exchange(base: Path, blank: tuple[str, ...]) -> dict[str, Any]:
    files = small_files(base)
    _keep_only(files[US][0], ("last_name", "first_name"), blank)
    pair = TwoAgencies(base, files, passphrase=PASSPHRASE, timeout=10.0)
    outcomes = pair.run()
    for outcome in outcomes.values():
        assert isinstance(outcome, AgencyOutcome), outcome
    return {"outcomes": outcomes, "stored": pair.stored(US)}


@pytest.mark.slow
def test_a_partner_listing_only_names_gets_no_release_over_tls(tmp_path: Path) -> None:
    """The partner (US-DHS, serving) lists ten of our people (CA-RCMP's watchlist) twice over:
    with name and date of birth, some are decided and released (the control: the exchange
    works on sparse records); with the name alone, no record is revealed, nothing is decided
    on either side and nothing released."""
    with_dob = _exchange(tmp_path / "dob", (*_WATCHLIST_FACTS,))
    assert with_dob["outcomes"][CA].decided >= 1 and with_dob["stored"] >= 1
    names_only = _exchange(tmp_path / "names", (*_WATCHLIST_FACTS, "dob"))
    ca, us = names_only["outcomes"][CA], names_only["outcomes"][US]
    assert ca.matched_tokens >= 1  # the names did meet
    # and neither side revealed a record on a name alone (the minimal reveal, spec §6.7)
    assert ca.candidates == us.candidates == 0
    assert ca.decided == us.decided == 0
    assert names_only["stored"] == 0 and sum(ca.released.values()) == 0


_TRAVELLER_FACTS = ("dob", "passport_number", "passport_issuer", "passport_expiry",
                    "us_address", "us_city", "us_state", "us_zip")  # fmt: skip


def _both_askers(
    pair: Any, side: Any, monkeypatch: pytest.MonkeyPatch, **lie: Any
) -> tuple[Any, ...]:
    """The holder answers ``side`` twice: to the honest asker, then to one that decides
    without the rule on evidence (or with the schema's members replaced by ``lie``) and so
    asks for releases the honest one would not. Returns (served, outcome) of each."""
    service = pair.holder.query_service(pair.registry)

    def run() -> Any:
        async def both() -> Any:
            a, b = memory_pair()
            return await asyncio.gather(service.handle(b, idle_timeout=5), ask(pair.asker, a, side))

        return asyncio.run(both())

    honest = run()
    real = decide
    monkeypatch.setattr(
        "xlink.agency._query_answers.decide",
        lambda source, schema, threshold: real(
            source, replace(schema, **(lie or {"min_evidence_groups": None})), threshold
        ),
    )
    return (*honest, *run())


def _nothing_released(pair: Any, served: Any, liar: Any, asked: int) -> None:
    assert liar.matched == asked  # it asked for them
    assert served.requested == asked and served.released == 0
    assert all(a.fate == "not-decided" for a in liar.answers if a.matched)
    assert liar.received == 0
    assert pair.asker.store.list(now=pair.asker.clock()) == ()


def test_a_query_on_a_name_alone_is_not_released_even_when_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three travellers the holder's registry holds, with the name alone. The honest asker
    decides nothing; an asker that decides without the evidence rule asks for the releases,
    and the holder refuses each (``not-decided``) and releases nothing."""
    with query_pair(tmp_path) as pair:
        manifest = traveller_file(pair.base / "asker-files", FOUND)
        _keep_only(manifest, ("surname", "given_names"), _TRAVELLER_FACTS)
        side = pair.asker.prepare([manifest])
        served, honest, served_liar, liar = _both_askers(pair, side, monkeypatch)
        assert honest.candidates >= len(FOUND) and honest.matched == 0
        assert served.requested == 0 and served.released == 0
        _nothing_released(pair, served_liar, liar, len(FOUND))


def test_a_query_on_a_name_with_every_birth_year_is_not_released(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same three names, each listed once per birth year 1935-2009 (225 ordinary-looking
    rows, a year-only date each): one row per person agrees on the name and the year, which a
    hundred guesses find. Under v5 the holder released all three (4.19 points each); under v6
    the year is no second fact, and nothing is released however the asker decides."""
    with query_pair(tmp_path) as pair:
        manifest = traveller_file(pair.base / "asker-files", FOUND)
        _keep_only(manifest, ("surname", "given_names"), _TRAVELLER_FACTS)
        with manifest.open(encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f))
        head, guesses = rows[0], [rows[0]]
        for row in rows[1:]:
            for year in range(1935, 2010):
                guess = list(row)
                guess[head.index("pax_id")] = f"{row[0]}-{year}"
                guess[head.index("dob")] = str(year)
                guesses.append(guess)
        with manifest.open("w", encoding="utf-8", newline="") as f:
            csv.writer(f).writerows(guesses)
        side = pair.asker.prepare([manifest])
        served, honest, served_liar, liar = _both_askers(pair, side, monkeypatch)
        assert honest.matched == 0 and served.released == 0
        _nothing_released(pair, served_liar, liar, len(FOUND))


@pytest.mark.slow
def test_a_partner_guessing_birth_years_with_a_known_city_gets_no_release_over_tls(
    tmp_path: Path,
) -> None:
    """The partner (US-DHS) knows the name and the city of each of the people it lists and
    lists each once per birth year 1950-2009, nothing else: under v6 a record was decided and
    released on the name, the year and the city; under v7 nothing is decided or released."""
    files = small_files(tmp_path)
    identity = ("uid", "list_type", "last_name", "first_name", "city", "src", "src_grade",
                "handling")  # fmt: skip
    _guess_years(files[US][0], identity, "dob", range(1950, 2010))
    pair = TwoAgencies(tmp_path, files, passphrase=PASSPHRASE, timeout=20.0)
    outcomes = pair.run()
    ca, us = outcomes[CA], outcomes[US]
    assert isinstance(ca, AgencyOutcome) and isinstance(us, AgencyOutcome), outcomes
    assert ca.matched_tokens >= 1  # names, years and cities did meet
    assert ca.decided == us.decided == 0
    assert pair.stored(US) == 0 and sum(ca.released.values()) == 0


def test_a_query_on_a_name_with_every_birth_year_and_three_cities_is_not_released(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The three names, each once per birth year 1935-2009 and per guessed city (the
    registry's commonest and two more: 675 rows): under v6 the holder released all three
    (2.432 points each); under v7 nothing is released however the asker decides."""
    with query_pair(tmp_path) as pair:
        manifest = traveller_file(pair.base / "asker-files", FOUND)
        cities = ("us_city", "Toronto", "Saskatoon", "Los Angeles")
        _guess_years(manifest, ("surname", "given_names"), "dob", range(1935, 2010), cities)
        side = pair.asker.prepare([manifest])
        # the asker decides as v6 did, counting the city, and asks for what that decides
        served, honest, served_liar, liar = _both_askers(pair, side, monkeypatch, evidence=None)
        assert honest.candidates >= 3 * len(FOUND) and honest.matched == 0
        assert served.released == 0
        _nothing_released(pair, served_liar, liar, len(FOUND))
