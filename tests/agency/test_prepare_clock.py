"""An agency loads its files under its own clock: a date of birth after the clock's date is a
field error (the loaders read no clock of their own, docs/loading.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from xlink.ceremony import demo_ceremony
from xlink.crypto.rand import DeterministicRandom, system_random

PASSPHRASE = b"agency clock tests, not secret"


def test_an_agency_refuses_a_date_of_birth_after_its_clock(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    ceremony = demo_ceremony(tmp_path / "c", passphrase=PASSPHRASE, now=now, rng=system_random)
    late = (now + timedelta(days=3)).date().isoformat()
    path = tmp_path / "list.csv"
    path.write_text(
        "record_id,category,family_name,given_name,birth_date\n"
        f"1,watchlist,Smith,Ann,{late}\n2,watchlist,Roe,Bo,1980-03-04\n"
    )
    agency = ceremony.open_agency(
        "CA-RCMP",
        tmp_path / "ca",
        passphrase=PASSPHRASE,
        clock=lambda: now,
        rng=DeterministicRandom(1),
    )
    with agency:
        side = agency.prepare([path], psi=False)
    born = {r.record_id: r.birth_date for r in side.records}
    assert born["1"] is None and born["2"] is not None
    ((load,),) = [side.loads]
    assert [(e.line, e.field, e.reason) for e in load.field_errors] == [
        (2, "birth_date", "a date of birth after the date of the load")
    ]
