"""The day of claims' store (:class:`xlink.agency._claims.Claims`): an exchange's view, read
before its releases are built, is written after them; what a query session committed in
between is handed to the exchange to apply again, inside the write, and nothing else is."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from xlink.agency._claims import Claims, ClaimsRequest

DAY = date(2026, 12, 6)
KEY = bytes(range(32))


def _store(tmp_path: Path) -> Claims:
    return Claims(tmp_path / "query", "US-CBP", KEY)


def test_a_view_is_written_as_it_is_when_nothing_was_claimed_meanwhile(tmp_path: Path) -> None:
    claims = _store(tmp_path)
    view = claims.snapshot(DAY)
    view.add("R1", [b"t1", b"t2"])
    replayed: list[ClaimsRequest] = []
    claims.keep(view, replayed.append)
    assert replayed == []
    after = claims.snapshot(DAY)
    assert after.rows_read == 2
    assert after.stale("R2", [b"t1", b"t3"]) == {b"t1"}
    assert after.stale("R1", [b"t1", b"t2"]) == frozenset()


def test_claims_made_after_the_view_was_read_are_replayed_inside_the_write(
    tmp_path: Path,
) -> None:
    """A query session commits R2 on t1 after the exchange read the day: the exchange's
    ``replay`` sees it, and what the replay adds is written, not what the old view added."""
    claims = _store(tmp_path)
    view = claims.snapshot(DAY)
    view.add("R1", [b"t1", b"t2"])
    with claims.request(DAY) as query:  # the query session, in between
        query.add("R2", [b"t1"])

    def replay(day: ClaimsRequest) -> None:
        assert day.stale("R1", [b"t1", b"t2"]) == {b"t1"}
        day.add("R3", [b"t9"])

    claims.keep(view, replay)
    after = claims.snapshot(DAY)
    assert after.rows_read == 2  # R2 on t1 (the query's), R3 on t9 (the replay's)
    assert after.stale("R1", [b"t1", b"t2", b"t9"]) == {b"t1", b"t9"}


def test_without_a_replay_the_view_is_written_as_before(tmp_path: Path) -> None:
    claims = _store(tmp_path)
    view = claims.snapshot(DAY)
    view.add("R1", [b"t1"])
    with claims.request(DAY) as query:
        query.add("R2", [b"t1"])
    claims.keep(view)
    assert claims.snapshot(DAY).stale("R3", [b"t1"]) == {b"t1"}  # held by R1 and R2: several
    assert claims.snapshot(DAY).rows_read == 2


def test_a_household_holds_the_family_name_read_from_case_too() -> None:
    """A name written whole whose family name alone is in capitals is read there too (key
    derivation's second reading), so its household holds that family name: without it, a
    household member's family name and address (``GARCIALOPEZ``, its postcode) decided
    nothing against the day's claims (xlink-query-v1 §7.5 item 5)."""
    from xlink.agency._claims import household_names
    from xlink.records.model import Category, PersonName, PersonRecord

    def names(full: str) -> set[str]:
        record = PersonRecord("R", Category.WATCHLIST, PersonName(full=full))
        return set(household_names(record))

    assert names("José GARCÍA LÓPEZ") == {"lópez", "josé", "garcía lópez", "GARCIA", "LOPEZ"}
    assert names("Jose Garcia Lopez") == {"lopez", "jose"}
    assert names("BABY Smith") == {"smith", "baby"}  # a placeholder is no family name


def test_rows_are_written_in_the_order_of_the_tables_key(tmp_path: Path) -> None:
    """An exchange writes a few hundred thousand rows of random claim ids: taken in the key's
    order, each lands beside the one before in the key's index (about half the write's time
    of the same rows in the order they were added); the same rows, a repeat once."""
    view = _store(tmp_path).snapshot(DAY)
    tokens = [bytes([i]) * 32 for i in range(200)]
    view.add("R2", tokens[::2])
    view.add("R1", tokens[::-1])
    view.add("R1", tokens[:3])
    rows = view.take_rows()
    assert rows == sorted(rows) and len(rows) == 303
    assert {(claim, rid) for _, _, claim, rid in rows} == {
        (view._id(token), rid)
        for rid, added in (("R2", tokens[::2]), ("R1", tokens))
        for token in added
    }
    assert view.take_rows() == []
