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

import contextlib
import csv
import dataclasses
import io
import json
import shutil
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from _forging import forge_releases_of
from _two_agencies import BUNDLED, CA, US, TwoAgencies, both_completed, small_files

import xlink.agency._exchange as exchange_step
import xlink.agency._releasing as releasing
import xlink.release.recipe as recipe
from xlink.audit import AuditEvent
from xlink.cli.exitcodes import ExitCode
from xlink.cli.main import main
from xlink.decide import Decision
from xlink.errors import BadRelease, TransferError
from xlink.protocol.abort import AbortCode
from xlink.release import release_decided
from xlink.release.transfer import RECIPROCAL_AHEAD, TransferState
from xlink.transport import TransportTimeout

PASSPHRASE = b"withholding partner tests, not secret"
TIMEOUT = 10.0
SHORT_TIMEOUT = 5.0  # for exchanges that end at the idle timeout, several in a row


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


def _lose_receipts(pair: TwoAgencies, *agencies: str) -> None:
    """Those ledgers as if no receipt had come back: every release handed out again (§10.4)."""
    for agency in agencies:
        conn = sqlite3.connect(pair.base / agency / "queue.db")
        with conn:
            conn.execute("UPDATE release_queue SET state = 'TAKEN' WHERE state = 'SENT'")
        conn.close()


def _regraded(pair: TwoAgencies, agency: str) -> None:
    """Every record of ``agency`` with another source grading: each release of it is new (its
    content differs), the records match as before."""
    files = []
    for path in pair.files[agency]:
        with path.open(encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
        grade = "src_grade" if "src_grade" in rows[0] else None
        out = pair.base / "regraded" / path.name
        out.parent.mkdir(exist_ok=True)
        with out.open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            for row in rows:
                if grade is not None:
                    row[grade] = "C3" if row[grade] == "B3" else "B3"
                writer.writerow(row)
        mapping = path.with_suffix(".mapping.json")
        if mapping.is_file():
            shutil.copy(mapping, out.with_suffix(".mapping.json"))
        files.append(out)
    pair.files[agency] = files


def _receipted_in_last_session(pair: TwoAgencies, agency: str) -> int:
    """The partner's releases that reached ``agency`` in its last session (each receipted)."""
    entries = pair.audit(agency)
    last = max(i for i, (k, _) in enumerate(entries) if k is AuditEvent.DECIDED)
    return sum(1 for k, _ in entries[last:] if k is AuditEvent.RECEIPT_SENT)


@pytest.mark.slow
def test_an_honest_rerun_after_lost_receipts_completes_and_counts_each_once(
    tmp_path: Path,
) -> None:
    """Releases of the partner's we already hold, sent again after lost receipts, are
    receipted, not stored twice and credit nothing more: each side's count of what it gave and
    what it credited is what the first exchange left, and the re-run completes (ours sent
    again cost the window nothing either)."""
    pair = _pair(tmp_path, reciprocal=True, whole=True)
    us, ca = both_completed(pair.run())
    assert us.decided > 4 * RECIPROCAL_AHEAD
    assert pair.stored(US) == pair.stored(CA) == us.decided
    assert us.reciprocal_ahead == 0  # (CA-RCMP gave one content for two pairs: it is behind)
    assert ca.reciprocal_ahead is not None and ca.reciprocal_ahead <= 0

    _lose_receipts(pair, US, CA)
    us, ca = both_completed(pair.run())
    assert us.released_total == ca.released_total == us.decided
    assert us.received_total == us.decided and us.received_before == us.decided
    assert pair.stored(US) == pair.stored(CA) == us.decided  # nothing stored twice
    assert {state for _, state, _ in pair.ledger(US) + pair.ledger(CA)} == {"SENT"}
    assert us.reciprocal_ahead == 0  # (CA-RCMP gave one content for two pairs: it is behind)
    assert ca.reciprocal_ahead is not None and ca.reciprocal_ahead <= 0
    ended = [f for k, f in pair.audit(US) if k is AuditEvent.RUN_ENDED]
    assert [(f["given"], f["credited"]) for f in ended] == [(us.decided, us.decided)] * 2


def test_copies_of_releases_credited_before_buy_nothing_new(tmp_path: Path) -> None:
    """After an honest exchange, CA-RCMP sends its releases again (as after lost receipts:
    copies of what US-DHS holds, credited once already) while every release of US-DHS's is
    new to it (a new grading on each watchlist record). Copies credit nothing, so CA-RCMP gets
    ``RECIPROCAL_AHEAD`` new releases of ours and no more, and the exchange ends at the idle
    timeout. Crediting the first copy of each (before the window was carried) gave it every
    new one of ours. Our receipts for its copies leave meanwhile."""
    pair = _pair(tmp_path, reciprocal=True, whole=True)
    us, _ca = both_completed(pair.run())
    ours_held, theirs_held = pair.stored(CA), pair.stored(US)
    assert theirs_held == us.decided > 4 * RECIPROCAL_AHEAD
    (first,) = [f for k, f in pair.audit(US) if k is AuditEvent.RUN_ENDED]
    assert (first["given"], first["credited"]) == (ours_held, theirs_held)

    _lose_receipts(pair, CA)
    _regraded(pair, US)
    out = pair.run()
    assert isinstance(out[US], TransportTimeout), out[US]
    assert pair.stored(CA) - ours_held == RECIPROCAL_AHEAD  # new ones of ours: the window
    assert pair.stored(US) == theirs_held  # its copies were not stored again
    # what US-DHS received was receipted although its window stayed shut
    delivered = sum(state == "SENT" for _, state, _ in pair.ledger(CA))
    assert delivered == _receipted_in_last_session(pair, US) > RECIPROCAL_AHEAD
    (_, last), *_ = [e for e in reversed(pair.audit(US)) if e[0] is AuditEvent.RUN_ENDED]
    assert (last["outcome"], last["given"], last["credited"]) == (
        "transfer-failed",
        ours_held + RECIPROCAL_AHEAD,
        theirs_held,
    )


def _sending_none(monkeypatch: pytest.MonkeyPatch) -> None:
    """CA-RCMP offers every release it built, then sends none of them (nor END) and answers
    each of ours with a genuine receipt."""
    real = exchange_step.transfer_releases

    async def stalling(gate: Any, ours: Any, *args: Any, **kwargs: Any) -> Any:
        machine = gate.transfer
        if ours and ours[0].originator == CA:

            def send_nothing(bodies: Any, **_: Any) -> None:
                machine._ours = len(bodies)
                machine._state = TransferState.RELEASING

            monkeypatch.setattr(machine, "send_releases", send_nothing)
        return await real(gate, ours, *args, **kwargs)

    monkeypatch.setattr(exchange_step, "transfer_releases", stalling)


def _hit_no_hit(monkeypatch: pytest.MonkeyPatch, agency: str) -> None:
    """``agency`` releases no field at all (an MOU's ``releasable_fields: []``, hit/no-hit
    only): the releases of all its records of one category and grading say the same."""
    real = recipe.decide_release

    def tearline(record: Any, mou: Any, *, originator: str) -> Any:
        content = real(record, mou, originator=originator)
        return dataclasses.replace(content, fields={}) if originator == agency else content

    monkeypatch.setattr(recipe, "decide_release", tearline)


@pytest.mark.slow
@pytest.mark.parametrize("fields", ["mou", "none"], ids=["tearline", "hit-no-hit"])
def test_a_partner_that_never_sends_gets_the_window_once_over_every_exchange(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fields: str
) -> None:
    """CA-RCMP offers all, sends none and receipts ours, exchange after exchange. The window
    was the transfer's own: it had ``RECIPROCAL_AHEAD`` new releases of ours in each (our
    receipted ones are not sent again, so the next exchange sent others), 109 in 14. Counted
    over every exchange, it has ``RECIPROCAL_AHEAD`` in all, and each later exchange sends it
    nothing new; our summary and ``xlink releases reciprocity`` say so. An operator's reset
    (audited) gives it the window once more. Also when our releases say nothing but the hit
    (the window counted contents for a while, found in review: then every record of ours
    after the first of each category went for nothing, 76 in three exchanges)."""
    _sending_none(monkeypatch)
    if fields == "none":
        _hit_no_hit(monkeypatch, US)
    pair = TwoAgencies(
        tmp_path, BUNDLED, passphrase=PASSPHRASE, timeout=SHORT_TIMEOUT, reciprocal=True
    )
    for _ in range(3):
        out = pair.run()  # ends at one side's idle timeout, or the other's hang-up after it
        assert isinstance(out[US], TransportTimeout | TransferError), out[US]
        assert pair.stored(CA) == RECIPROCAL_AHEAD
        assert pair.stored(US) == 0
    assert _reciprocity(pair) == {
        "given": RECIPROCAL_AHEAD,
        "credited": 0,
        "ahead": RECIPROCAL_AHEAD,
        "window": 0,
        "reset": False,
    }
    assert _reciprocity(pair, "--reset")["given"] == RECIPROCAL_AHEAD
    (reset,) = [f for k, f in pair.audit(US) if k is AuditEvent.RECIPROCITY_RESET]
    assert (reset["peer"], reset["given"], reset["credited"]) == (CA, RECIPROCAL_AHEAD, 0)
    assert isinstance(pair.run()[US], TransportTimeout | TransferError)
    assert pair.stored(CA) == 2 * RECIPROCAL_AHEAD


def _reciprocity(pair: TwoAgencies, *extra: str) -> dict[str, Any]:
    """``xlink releases reciprocity --json`` on US-DHS's workdir, less the names."""
    c = pair.ceremony
    argv = [
        "releases", "reciprocity", "--workdir", str(pair.base / US), "--keys",
        str(c.keys[US]), "--mou", str(c.mou), "--passphrase-env", "XLINK_TEST_PASS", "--json",
        *extra,
    ]  # fmt: skip
    with pytest.MonkeyPatch.context() as m, contextlib.redirect_stdout(io.StringIO()) as out:
        m.setenv("XLINK_TEST_PASS", PASSPHRASE.decode())
        assert main(argv) == ExitCode.OK
    got: dict[str, Any] = json.loads(out.getvalue())
    assert (got.pop("peer"), got.pop("reciprocal")) == (CA, True)
    assert got.pop("mou") == "CA-US-XLINK-DEMO-2025-001"
    return got
