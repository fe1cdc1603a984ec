"""Two honest agencies under an MOU with ``release.reciprocal`` (xlink-release-v1 §10.5) and
two-step release, over real mutual TLS on 127.0.0.1 (both through `xlink.agency.run_agency`).

One side's officers approve before the other's: its releases are held back, not lost, while
the partner offers none, and go with the first exchange in which both offer theirs; nothing is
sent or stored twice."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from _officers import approve, enrol_agency_officers
from _two_agencies import CA, US, TwoAgencies, both_completed, small_files

from xlink.agency import AgencyOutcome
from xlink.audit import AuditEvent
from xlink.cli.cmd_serve import _print_outcome
from xlink.crypto.rand import system_random

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
