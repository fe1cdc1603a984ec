"""A partner that takes our releases and gives none (xlink-release-v1 §10.5), over real mutual
TLS on 127.0.0.1, both agencies through `xlink.agency.run_agency`: US-DHS (`serve`, honest,
under test) against CA-RCMP (`match`), which decides honestly and then lies in the release
transfer.

Under an MOU with ``release.reciprocal`` a partner that offers none of its releases gets none
of ours, and one that offers all and then sends a release we refuse gets at most
``RECIPROCAL_AHEAD`` of them. Without it, both sides send at once and such a partner had every
release of ours. What is held back is audited, counted and offered again by the next exchange.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from _forging import forge_releases_of
from _two_agencies import BUNDLED, CA, US, TwoAgencies, both_completed, small_files

import xlink.agency._exchange as exchange_step
import xlink.agency._releasing as releasing
from xlink.audit import AuditEvent
from xlink.decide import Decision
from xlink.errors import BadRelease
from xlink.protocol.abort import AbortCode
from xlink.release import release_decided
from xlink.release.transfer import RECIPROCAL_AHEAD
from xlink.transport import TransportTimeout

PASSPHRASE = b"withholding partner tests, not secret"
TIMEOUT = 10.0


def _is_partner(decision: Decision) -> bool:
    return any(m.local_record_id.startswith("CAWL") for m in decision.matches)


def _pair(base: Path, *, reciprocal: bool, whole: bool = False) -> TwoAgencies:
    return TwoAgencies(
        base,
        BUNDLED if whole else small_files(base),
        passphrase=PASSPHRASE,
        timeout=TIMEOUT,
        reciprocal=reciprocal,
    )


def _offering_none(monkeypatch: pytest.MonkeyPatch) -> None:
    """CA-RCMP offers none of the releases it built (COUNT 0) and so sends none."""
    real = exchange_step.withhold_unreciprocated

    async def withholding(gate: Any, batch: Any, decision: Decision, *a: Any, **kw: Any) -> Any:
        if _is_partner(decision):
            batch = dataclasses.replace(batch, sealed=())
        return await real(gate, batch, decision, *a, **kw)

    monkeypatch.setattr(exchange_step, "withhold_unreciprocated", withholding)


def test_a_partner_that_offers_none_gets_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _offering_none(monkeypatch)
    pair = _pair(tmp_path, reciprocal=True)
    us, ca = both_completed(pair.run())
    assert us.decided == ca.decided >= 5
    assert ca.received_total == 0 and pair.stored(CA) == 0  # nothing of ours reached it
    assert us.released_total == 0 and us.received_total == 0
    assert us.unreciprocated == us.decided and us.denied == 0  # each held back, and said so
    assert us.peer_offered == 0 and ca.peer_offered == us.decided
    entries = pair.audit(US)
    kinds = [k for k, _ in entries]
    assert AuditEvent.RELEASE_SENT not in kinds
    held = [f for k, f in entries if k is AuditEvent.RELEASE_DENIED]
    assert len(held) == us.decided and {f["reason"] for f in held} == {"unreciprocated"}
    # each stays handed out for a later exchange, not sent, not dropped
    assert {state for _, state, _ in pair.ledger(US)} == {"TAKEN"}
    assert len(pair.ledger(US)) == us.decided


def test_without_reciprocity_a_partner_that_offers_none_gets_everything(
    tmp_path: Path,
) -> None:
    """The same lie under an MOU without ``release.reciprocal``: what it costs, measured."""
    pair = _pair(tmp_path, reciprocal=False)

    async def nothing(*args: Any, **kwargs: Any) -> Any:  # pragma: no cover - never called
        raise AssertionError("offer_releases runs only under a reciprocal MOU")

    with pytest.MonkeyPatch.context() as m:
        m.setattr("xlink.agency._transfer.offer_releases", nothing)
        real = releasing.release_decided

        def none_from_the_partner(decision: Decision, *a: Any, **kw: Any) -> Any:
            batch = real(decision, *a, **kw)
            return dataclasses.replace(batch, sealed=()) if _is_partner(decision) else batch

        m.setattr(releasing, "release_decided", none_from_the_partner)
        us, ca = both_completed(pair.run())
    assert ca.received_total == us.released_total == us.decided > 0
    assert us.received_total == 0 and us.unreciprocated == 0 and us.peer_offered is None


def test_a_partner_whose_first_release_is_refused_gets_at_most_the_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CA-RCMP offers every release and then sends ones built for handles it never matched:
    the first ends our transfer (``BAD_RELEASE``), by when at most ``RECIPROCAL_AHEAD`` of
    ours had left, of the hundred or so decided."""
    forge_releases_of(CA, monkeypatch)
    pair = _pair(tmp_path, reciprocal=True, whole=True)
    out = pair.run()
    error = out[US]
    assert isinstance(error, BadRelease), error
    assert (error.code, error.reason) == (AbortCode.BAD_RELEASE, "not-decided")
    (decided,) = [f for k, f in pair.audit(US) if k is AuditEvent.DECIDED]
    assert int(decided["decided"]) > 4 * RECIPROCAL_AHEAD
    assert pair.stored(CA) <= RECIPROCAL_AHEAD  # what reached the partner
    assert pair.stored(US) == 0


def test_a_partner_that_dates_its_releases_ahead_gets_at_most_the_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CA-RCMP builds every release honestly but dates it 30 days ahead. Outside reciprocity
    such a release is refused for the clock (``created-in-future``) and the transfer goes on,
    so that an honest operator learns why; counted as an answer it would have opened our
    window each time, and CA-RCMP had all 109 of ours for none kept (found in review). Under a
    reciprocal MOU it ends the transfer, and a refusal opens no window."""

    def ahead(decision: Decision, *args: Any, **kwargs: Any) -> Any:
        if kwargs["originator"] == CA:
            kwargs["now"] = kwargs["now"] + timedelta(days=30)
        return release_decided(decision, *args, **kwargs)

    monkeypatch.setattr(releasing, "release_decided", ahead)
    pair = _pair(tmp_path, reciprocal=True, whole=True)
    out = pair.run()
    error = out[US]
    assert isinstance(error, BadRelease), error
    assert (error.code, error.reason) == (AbortCode.BAD_RELEASE, "created-in-future")
    assert pair.stored(US) == 0
    assert pair.stored(CA) <= RECIPROCAL_AHEAD
    (denied,) = [f for k, f in pair.audit(US) if k is AuditEvent.RECEIVE_DENIED]
    assert denied["reason"] == "created-in-future"


def _lose_every_receipt(pair: TwoAgencies) -> None:
    """Both ledgers as if no receipt had come back: every release handed out again (§10.4)."""
    for agency in (US, CA):
        conn = sqlite3.connect(pair.base / agency / "queue.db")
        with conn:
            conn.execute("UPDATE release_queue SET state = 'TAKEN' WHERE state = 'SENT'")
        conn.close()


def _receipted_in_last_session(pair: TwoAgencies, agency: str) -> int:
    """The partner's releases that reached ``agency`` in its last session (each receipted)."""
    entries = pair.audit(agency)
    last = max(i for i, (k, _) in enumerate(entries) if k is AuditEvent.DECIDED)
    return sum(1 for k, _ in entries[last:] if k is AuditEvent.RECEIPT_SENT)


def test_releases_we_hold_sent_again_earn_ours_once(tmp_path: Path) -> None:
    """A release of the partner's that we already hold, sent again, is receipted and not
    stored twice. The first copy of each counts as the partner's (an honest re-run after lost
    receipts completes), later ones do not: sent again in every exchange, a partner's old
    releases would otherwise buy our new ones each time (found in review). So when CA-RCMP
    sends its old releases once more, and ours are new to it, it gets at most
    ``RECIPROCAL_AHEAD`` of ours and the exchange ends at the idle timeout. Our receipts leave
    meanwhile, so an honest partner learns we hold what it sent."""
    pair = _pair(tmp_path, reciprocal=True, whole=True)
    us, ca = both_completed(pair.run())
    assert us.decided > 4 * RECIPROCAL_AHEAD
    assert pair.stored(US) == pair.stored(CA) == us.decided

    _lose_every_receipt(pair)  # the first copy of each: an honest re-run completes
    us, ca = both_completed(pair.run())
    assert us.released_total == ca.released_total == us.decided
    assert us.received_total == us.decided and us.received_before == us.decided
    assert pair.stored(US) == pair.stored(CA) == us.decided  # nothing stored twice
    assert {state for _, state, _ in pair.ledger(US) + pair.ledger(CA)} == {"SENT"}

    _lose_every_receipt(pair)  # CA-RCMP's old releases again, and ours new to it:
    conn = sqlite3.connect(pair.base / CA / "store.db")
    with conn:
        conn.execute("DELETE FROM releases")
    conn.close()
    out = pair.run()
    assert isinstance(out[US], TransportTimeout), out[US]
    assert 0 < pair.stored(CA) <= RECIPROCAL_AHEAD  # of ours, for its copies: the window
    assert pair.stored(US) == us.decided
    # what US-DHS received was receipted although its window stayed shut
    delivered = sum(state == "SENT" for _, state, _ in pair.ledger(CA))
    assert delivered == _receipted_in_last_session(pair, US) > RECIPROCAL_AHEAD
