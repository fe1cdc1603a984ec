"""Two honest agencies under an MOU with ``release.reciprocal`` (xlink-release-v1 §10.5) and
two-step release, over real mutual TLS on 127.0.0.1 (both through `xlink.agency.run_agency`).

One side's officers approve before the other's: its releases are held back, not lost, while
the partner offers none, and go with the first exchange in which both offer theirs; nothing is
sent or stored twice."""

from __future__ import annotations

import shutil
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from _officers import approve, enrol_agency_officers
from _two_agencies import BUNDLED, CA, US, TwoAgencies, both_completed, small_files

from xlink.agency import AgencyOutcome
from xlink.audit import AuditEvent
from xlink.cli.cmd_serve import _print_outcome
from xlink.crypto.rand import system_random
from xlink.transport import release_transfer

PASSPHRASE = b"reciprocal release tests, not secret"


def _approve_all(pair: TwoAgencies, agency: str) -> int:
    now = datetime.now(UTC)
    opened = pair.ceremony.open_agency(
        agency, pair.base / agency, passphrase=PASSPHRASE, clock=lambda: now, rng=system_random
    )
    try:
        enrol_agency_officers(opened, now)
        items = opened.queue.pending(now)
        for item in items:
            approve(opened.queue, item.item_id, agency=agency, now=now)
        return len(items)
    finally:
        opened.close()


def test_releases_approved_on_one_side_wait_for_the_other_and_go_once(tmp_path: Path) -> None:
    pair = TwoAgencies(
        tmp_path,
        small_files(tmp_path),
        passphrase=PASSPHRASE,
        timeout=10.0,
        approval_required=True,
        reciprocal=True,
    )
    us1, ca1 = both_completed(pair.run())
    assert us1.decided == ca1.decided >= 5
    assert us1.queued > 0 and ca1.queued > 0
    assert us1.released_total == ca1.released_total == 0

    # US-DHS approves everything; CA-RCMP nothing yet: US-DHS offers, CA-RCMP offers none.
    assert _approve_all(pair, US) == us1.queued
    us2, ca2 = both_completed(pair.run())
    assert us2.released_total == ca2.received_total == 0
    assert us2.unreciprocated == us1.decided  # one release per decided pair, all held back
    assert us2.denied == 0 and (us2.peer_offered, ca2.peer_offered) == (0, us1.decided)
    assert ca2.pending == ca1.queued and ca2.unreciprocated == 0
    assert Counter(state for _, state, _ in pair.ledger(US)) == {"TAKEN": us1.queued}
    held = [f for k, f in pair.audit(US) if k is AuditEvent.RELEASE_DENIED]
    assert {f["reason"] for f in held} == {"unreciprocated"}

    # CA-RCMP approves: both offer, every release goes, each way, once.
    assert _approve_all(pair, CA) == ca1.queued
    us3, ca3 = both_completed(pair.run())
    assert us3.released_total == ca3.received_total == us1.decided
    assert ca3.released_total == us3.received_total == ca1.decided
    assert us3.unreciprocated == ca3.unreciprocated == 0
    assert us3.receipts_verified == us3.released_total
    assert Counter(state for _, state, _ in pair.ledger(US)) == {"SENT": us1.queued}
    stored = {a: pair.stored_ids(a) for a in (US, CA)}
    assert len(stored[CA]) == us1.decided and len(stored[US]) == ca1.decided

    # Once more: nothing sent again, nothing stored twice.
    us4, ca4 = both_completed(pair.run())
    assert us4.released_total == ca4.released_total == 0
    assert us4.delivered_before == us1.decided and ca4.delivered_before == ca1.decided
    assert {a: pair.stored_ids(a) for a in (US, CA)} == stored


def test_each_side_is_told_who_holds_releases_back(capsys: pytest.CaptureFixture[str]) -> None:
    """The summary of ``serve``/``match``: the side that offered more says how many it kept
    back; the side that offered fewer says the peer had more for it (a new user running the
    quickstart under a reciprocal MOU saw nothing on that side)."""
    base: dict[str, Any] = {
        "peer": CA, "role": "serve", "mou_id": "M", "session_id": "00" * 16, "records": 9,
        "rejected": 0, "tokens": 90, "matched_tokens": 9, "candidates": 9, "decided": 3,
        "approval_required": True,
    }  # fmt: skip
    more = AgencyOutcome(agency=US, **base, unreciprocated=3, peer_offered=0)
    fewer = AgencyOutcome(agency=CA, **base, peer_offered=3)
    _print_outcome(more, 1.0)
    assert "3 kept back: the MOU is reciprocal and the peer offered 0" in capsys.readouterr().out
    _print_outcome(fewer, 1.0)
    out = capsys.readouterr().out
    assert "the peer offered 3 releases and sent 0, as many as we offered" in out
    assert "kept back" not in out


def _listing_twice(pair: TwoAgencies, agency: str, how_many: int) -> None:
    """``agency``'s first file with ``how_many`` of the people it delivered last time listed a
    second time, under new ids (a list that holds a person twice, as real lists do)."""
    delivered = {r for (r,) in pair.rows(agency, "queue.db", "SELECT record_id FROM release_queue")}
    source = pair.files[agency][0]
    lines = source.read_text(encoding="utf-8-sig").splitlines(keepends=True)
    twice = [ln for ln in lines[1:] if ln.split(",", 1)[0] in delivered][:how_many]
    assert len(twice) == how_many
    out = pair.base / "twice" / source.name
    out.parent.mkdir(exist_ok=True)
    out.write_text("".join([*lines, *(ln.replace("-", "-9", 1) for ln in twice)]), "utf-8")
    shutil.copy(source.with_suffix(".mapping.json"), out.with_suffix(".mapping.json"))
    pair.files[agency] = [out, *pair.files[agency][1:]]


@pytest.mark.slow
def test_a_partner_listing_people_twice_never_shuts_the_windows(tmp_path: Path) -> None:
    """After a complete exchange, CA-RCMP lists ten people it delivered a second time. Each of
    our records of them now has two pairs: what we send for the new pair has the content the
    partner already had (it goes for nothing, and is stored for its new record), and its
    release for the new pair has the content we hold (a copy, crediting nothing). Counting
    ledger items instead of contents, both sides fell behind each other with nothing lost and
    exchanges ended at the idle timeout (found in review)."""
    pair = TwoAgencies(tmp_path, BUNDLED, passphrase=PASSPHRASE, timeout=10.0, reciprocal=True)
    us, ca = both_completed(pair.run())
    # (one record of CA-RCMP's in two pairs sends one content twice: it gave fewer than it got)
    assert us.reciprocal_ahead == 0 and ca.reciprocal_ahead is not None
    assert ca.reciprocal_ahead <= 0
    _listing_twice(pair, CA, 12)
    for _ in range(2):
        us, ca = both_completed(pair.run())
        assert us.reciprocal_ahead is not None and us.reciprocal_ahead <= 0
        assert ca.reciprocal_ahead is not None and ca.reciprocal_ahead <= 0
    assert us.decided > ca.decided - 12  # the second pairs were decided


def _cut_after_the_first_marks(monkeypatch: pytest.MonkeyPatch, agency: str) -> None:
    """``agency``'s run ends (a crash, a lost connection) right after its window marked its
    first releases given and committed that, before any frame of the releases left."""
    real = release_transfer._exchange

    async def cut(gate: Any, machine: Any, idle: float, **kw: Any) -> Any:
        window = getattr(machine, "_window", None)
        owner = getattr(window, "_agency", None)
        if kw.get("window_writes") and owner is not None and owner.agency_id == agency:
            raise ConnectionResetError(f"{agency} cut")
        return await real(gate, machine, idle, **kw)

    monkeypatch.setattr(release_transfer, "_exchange", cut)


def _without_given(pair: TwoAgencies, agency: str) -> None:
    """``agency``'s files without the records whose releases were given: the next day's lists,
    in which they changed or are gone."""
    gone = {
        r
        for (r,) in pair.rows(
            agency, "queue.db", "SELECT record_id FROM release_queue WHERE given_us IS NOT NULL"
        )
    }
    files = []
    for path in pair.files[agency]:
        lines = path.read_text(encoding="utf-8-sig").splitlines(keepends=True)
        out = pair.base / "next-day" / path.name
        out.parent.mkdir(exist_ok=True)
        out.write_text(
            "".join([lines[0], *(ln for ln in lines[1:] if ln.split(",", 1)[0] not in gone)]),
            "utf-8",
        )
        shutil.copy(path.with_suffix(".mapping.json"), out.with_suffix(".mapping.json"))
        files.append(out)
    pair.files[agency] = files


def test_a_cut_exchange_is_made_whole_by_the_next_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """US-DHS's run ends right after its window marked its first releases given, before any
    left; CA-RCMP's had marked its own. The next exchange sends those again for nothing, they
    credit on arrival, and neither side is left ahead of the other."""
    pair = TwoAgencies(tmp_path, BUNDLED, passphrase=PASSPHRASE, timeout=5.0, reciprocal=True)
    with monkeypatch.context() as m:
        _cut_after_the_first_marks(m, US)
        out = pair.run()
    assert not isinstance(out[US], AgencyOutcome)
    assert pair.stored(US) == 0
    us, ca = both_completed(pair.run())
    assert us.reciprocal_ahead == 0
    assert ca.reciprocal_ahead is not None and ca.reciprocal_ahead <= 0


@pytest.mark.slow
def test_both_windows_shut_by_cuts_open_again_by_one_sides_reset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The limit of a count each side keeps alone (xlink-release-v1 §10.5): after a cut
    exchange whose given records then leave both lists, nothing can credit those, both sides
    are ``RECIPROCAL_AHEAD`` ahead of each other and exchanges end at the idle timeout with
    nothing sent. Both sides' ``xlink releases reciprocity`` then show a window of 0; one
    side's reset (audited) is enough for the next exchange to complete."""
    pair = TwoAgencies(tmp_path, BUNDLED, passphrase=PASSPHRASE, timeout=5.0, reciprocal=True)
    with monkeypatch.context() as m:
        _cut_after_the_first_marks(m, US)
        pair.run()
    _without_given(pair, US)
    _without_given(pair, CA)
    out = pair.run()
    assert not isinstance(out[US], AgencyOutcome) and not isinstance(out[CA], AgencyOutcome)
    assert pair.stored(US) == pair.stored(CA) == 0
    balances = {}
    for agency in (US, CA):
        opened = pair.ceremony.open_agency(
            agency,
            pair.base / agency,
            passphrase=PASSPHRASE,
            clock=lambda: datetime.now(UTC),
            rng=system_random,
        )
        try:
            balances[agency] = opened.reciprocity()
            if agency == US:
                assert opened.reset_reciprocity() == balances[US]
        finally:
            opened.close()
    assert {b.window for b in balances.values()} == {0}
    us, ca = both_completed(pair.run())
    assert us.released_total > 0 and ca.released_total > 0
