"""Running an exchange again, after success or after an interrupt, over real mutual TLS on
127.0.0.1 (both agencies through `xlink.agency.run_agency`, in one event loop).

- The same exchange twice: the second run changes neither store nor the outbound ledger.
- The two-step: queued releases stay queued on a re-run; approved ones are delivered by the
  next exchange, with receipts; denied ones never are.
- Either side interrupted during PSI or during the release transfer (cancelled as Ctrl-C does,
  or the process killed), then run again: both stores hold each delivered release once, every
  sent release has its receipt, and both audit logs record how every run ended.
"""

from __future__ import annotations

import asyncio
import csv
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from _officers import approve, deny, enrol_agency_officers
from _two_agencies import BUNDLED, CA, US, TwoAgencies, both_completed, small_files

from xlink.agency import Agency, AgencyOutcome
from xlink.audit import AuditEvent
from xlink.crypto.rand import system_random

PASSPHRASE = b"rerun tests passphrase, not secret"
TIMEOUT = 20.0

pytestmark = pytest.mark.slow


class Pair(TwoAgencies):
    """Both agencies on small subsets of the bundled watchlists, or on the whole bundled files
    (``whole``)."""

    def __init__(
        self,
        base: Path,
        *,
        approval_required: bool,
        whole: bool = False,
        reciprocal: bool = False,
    ) -> None:
        super().__init__(
            base,
            BUNDLED if whole else small_files(base),
            passphrase=PASSPHRASE,
            timeout=TIMEOUT,
            approval_required=approval_required,
            reciprocal=reciprocal,
        )

    def stored(self, agency: str) -> list[tuple[Any, ...]]:  # type: ignore[override]
        return self.stored_ids(agency)

    def open(self, agency: str, now: datetime) -> Agency:
        """The agency's own ``Agency`` on its workdir between runs (as its officers use it),
        with READER and APPROVER enrolled."""
        opened = self.ceremony.open_agency(
            agency,
            self.base / agency,
            passphrase=PASSPHRASE,
            clock=lambda: now,
            rng=system_random,
        )
        enrol_agency_officers(opened, now)
        return opened


def _run_ends(pair: Pair, agency: str) -> list[str]:
    return [f["outcome"] for k, f in pair.audit(agency) if k is AuditEvent.RUN_ENDED]


def test_the_same_exchange_twice_changes_nothing_the_second_time(tmp_path: Path) -> None:
    pair = Pair(tmp_path, approval_required=False, whole=True)
    us1, ca1 = both_completed(pair.run())
    assert us1.released_total == ca1.received_total > 0
    assert ca1.released_total == us1.received_total > 0
    before = {a: (pair.stored(a), pair.ledger(a)) for a in (US, CA)}
    assert len(before[US][0]) == us1.received_total - us1.received_before

    us2, ca2 = both_completed(pair.run())
    after = {a: (pair.stored(a), pair.ledger(a)) for a in (US, CA)}
    assert after == before  # no release stored twice, no ledger item added or changed
    for first, second in ((us1, us2), (ca1, ca2)):
        assert second.decided == first.decided
        assert second.released_total == second.received_total == 0
        assert second.delivered_before == first.released_total
    for agency in (US, CA):
        assert _run_ends(pair, agency) == ["completed", "completed"]
        matches = Path((ca2 if agency == CA else us2).matches_file)
        assert matches.exists() and matches.with_suffix(".jsonl").exists()


def test_approved_releases_go_with_the_next_exchange_and_denied_ones_never(
    tmp_path: Path,
) -> None:
    pair = Pair(tmp_path, approval_required=True)
    us1, ca1 = both_completed(pair.run())
    assert ca1.released_total == us1.released_total == 0
    assert ca1.queued > 0 and us1.queued > 0

    # A re-run with nothing approved: nothing queued again, nothing sent.
    ledger = pair.ledger(CA)
    us2, ca2 = both_completed(pair.run())
    assert pair.ledger(CA) == ledger
    assert ca2.queued == 0 and ca2.pending == ca1.queued + ca1.pending
    assert us2.received_total == 0

    # CA's officer approves all but one, which is denied.
    now = datetime.now(UTC)
    with pair.open(CA, now) as ca:
        first, *rest = ca.queue.pending(now)
        deny(ca.queue, first.item_id, "insufficient-grounds", agency=CA, now=now)
        for item in rest:
            approve(ca.queue, item.item_id, agency=CA, now=now)
    approved = {item.record_id for item in rest}
    us3, ca3 = both_completed(pair.run())
    with Path(ca3.matches_file).open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    sent = [r for r in rows if r["outbound"] == "sent"]
    # Every decided pair of an approved record is released (a record in two pairs twice).
    assert {r["own_record_id"] for r in sent} == approved
    assert all(r["outbound"] == "denied" for r in rows if r["own_record_id"] == first.record_id)
    assert ca3.released_total == len(sent) == ca3.receipts_verified == us3.received_total
    stored = pair.stored(US)
    assert len(stored) == len(sent) - us3.received_before
    states = Counter(state for _, state, _ in pair.ledger(CA))
    assert states["SENT"] == len(sent) and states["DENIED"] == 1 and states["APPROVED"] == 0

    # And once more: delivered ones are not sent again, the denied one never.
    _us4, ca4 = both_completed(pair.run())
    assert ca4.released_total == 0 and ca4.delivered_before == len(sent)
    assert pair.stored(US) == stored


def _psi_started(phase: str, done: int) -> bool:
    return phase.startswith("PSI") and done >= 1


def _releasing(phase: str, done: int) -> bool:
    return phase == "releases sent"


@pytest.mark.parametrize("reciprocal", [False, True], ids=["plain", "reciprocal"])
@pytest.mark.parametrize("victim", [US, CA])
@pytest.mark.parametrize("when", [_psi_started, _releasing], ids=["psi", "transfer"])
def test_an_interrupted_run_is_completed_by_the_next_one(
    tmp_path: Path, victim: str, when: Callable[[str, int], bool], reciprocal: bool
) -> None:
    """Under a reciprocal MOU too, and then each side has given exactly what the other
    credited: the window carried to the next exchange is whole (xlink-release-v1 §10.5)."""
    pair = Pair(tmp_path, approval_required=False, reciprocal=reciprocal)
    out = pair.run(interrupt=(victim, when))
    assert isinstance(out[victim], asyncio.CancelledError), out[victim]
    other = CA if victim == US else US
    assert _run_ends(pair, victim) == ["interrupted"]
    # The partner saw the connection end, unless everything it needed had already arrived.
    finished = isinstance(out[other], AgencyOutcome)
    assert _run_ends(pair, other) == ["completed" if finished else "transfer-failed"] or (
        when is _psi_started and _run_ends(pair, other) == ["aborted"]
    )

    us, ca = both_completed(pair.run())
    for agency, me, peer in ((US, us, ca), (CA, ca, us)):
        # Everything the peer has delivered, in either run, is held here exactly once.
        ids = pair.stored(agency)
        assert len(ids) == len(set(ids))
        assert me.received_total == peer.released_total
        assert peer.receipts_verified == peer.released_total
        # Every decided release of the peer's is now delivered: sent now or receipted before.
        sent = Counter(state for _, state, _ in pair.ledger(agency))
        assert set(sent) <= {"SENT"}
        assert _run_ends(pair, agency)[-1] == "completed"
        kinds = [k for k, _ in pair.audit(agency)]
        assert kinds.count(AuditEvent.RUN_ENDED) == 2
    assert us.delivered_before + us.released_total == us.decided
    assert ca.delivered_before + ca.released_total == ca.decided
    if reciprocal:
        assert us.reciprocal_ahead == ca.reciprocal_ahead == 0
    else:
        assert us.reciprocal_ahead is None and ca.reciprocal_ahead is None


@pytest.mark.parametrize(
    "kill_at",
    ["[xlink] PSI own elements", "[xlink] PSI reveal"],
    ids=["psi", "transfer"],
)
def test_a_killed_process_is_recorded_and_completed_by_the_next_run(
    tmp_path: Path, kill_at: str
) -> None:
    """`xlink match` killed with SIGKILL (no chance to write anything) during PSI, or as the
    release transfer begins (its PSI session complete): the partner records its failed run; the
    next run records the killed one as `unrecorded` and completes the exchange, each release
    stored once and every ledger item delivered."""
    pair = Pair(tmp_path, approval_required=False)
    c = pair.ceremony
    env = {**os.environ, "XLINK_RERUN_PASS": PASSPHRASE.decode()}

    def argv(role: str, agency: str, peer: str, where: list[str]) -> list[str]:
        return [
            sys.executable, "-m", "xlink.cli.main", role, *where,
            "--agency", agency, "--keys", str(c.keys[agency]), "--mou", str(c.mou),
            "--peer-bundle", str(c.bundles[peer]), "--workdir", str(tmp_path / agency),
            "--passphrase-env", "XLINK_RERUN_PASS", "--timeout", "20", "--json",
            *(str(f) for f in pair.files[agency]),
        ]  # fmt: skip

    def run_both(kill_ca_at: str | None) -> tuple[int, int]:
        port_file = tmp_path / "port"
        port_file.unlink(missing_ok=True)
        serve = subprocess.Popen(
            argv("serve", US, CA, ["--listen", "127.0.0.1:0", "--port-file", str(port_file)]),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + TIMEOUT
            while not port_file.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            port = int(port_file.read_text(encoding="ascii"))
            match = subprocess.Popen(
                argv("match", CA, US, ["--peer", f"127.0.0.1:{port}"]),
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            assert match.stderr is not None
            if kill_ca_at is not None:
                for line in match.stderr:
                    if kill_ca_at in line:
                        match.send_signal(signal.SIGKILL)
                        break
            else:
                match.stderr.read()
            return match.wait(TIMEOUT), serve.wait(TIMEOUT)
        finally:
            for proc in (serve,):
                if proc.poll() is None:
                    proc.kill()

    ca_code, us_code = run_both(kill_ca_at=kill_at)
    assert ca_code == -signal.SIGKILL and us_code == 4
    assert _run_ends(pair, CA) == []  # killed: no chance to write its end
    assert _run_ends(pair, US)[-1] in ("aborted", "transfer-failed")
    ca_kinds = [k for k, _ in pair.audit(CA)]
    if kill_at.endswith("reveal"):
        assert AuditEvent.SESSION_COMPLETED in ca_kinds  # killed after its PSI session
    else:
        assert pair.stored(US) == pair.stored(CA) == []

    assert run_both(kill_ca_at=None) == (0, 0)
    assert _run_ends(pair, CA) == ["unrecorded", "completed"]
    assert _run_ends(pair, US)[-1] == "completed"
    for agency in (US, CA):
        ids = pair.stored(agency)
        assert ids and len(ids) == len(set(ids))
        assert {state for _, state, _ in pair.ledger(agency)} == {"SENT"}
