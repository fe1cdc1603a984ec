"""A partner spending its set-size bound on guesses, session after session (issue 11, item 2):
the MOU's daily budget is counted from the audit log and refuses a session once spent, and a
declared size far above the partner's usual one is an audited alarm."""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from _agencies import CA, PASSPHRASE, US, Agencies

from xlink.audit import AuditEvent, AuditLog
from xlink.audit.history import ALARM_FACTOR, SetSizeHistory, set_size_history
from xlink.audit.session import SessionAuditor
from xlink.crypto.keyfiles import AgencyKeys
from xlink.crypto.keys import SigningKey
from xlink.crypto.rand import DeterministicRandom
from xlink.errors import InputError
from xlink.linkage.tokens import TokenSetBuilder
from xlink.protocol import Mode, PsiSession, Role, SessionConfig, run_pair
from xlink.protocol.abort import AbortCode

DAY = date(2026, 12, 2)
T0 = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def _log_sessions(log: AuditLog, peer: str, sizes: list[tuple[datetime, int, int]]) -> None:
    for n, (when, own, theirs) in enumerate(sizes):
        session = hashlib.sha256(f"{peer}{n}".encode()).digest()[:16]
        log.append(
            AuditEvent.SESSION_STARTED,
            {
                "session": session,
                "mou": "MOU-1",
                "peer": peer,
                "role": Role.RESPONDER,
                "mode": Mode.PSI,
            },
            now=when,
        )
        log.append(
            AuditEvent.SIZES,
            {"session": session, "own": 1, "own_padded": own, "peer_padded": theirs},
            now=when,
        )


def test_history_counts_one_partner_per_day(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path / "a.db", signing_key=SigningKey(b"\x01" * 32)) as log:
        _log_sessions(log, "CA-RCMP", [(T0, 1024, 2048), (T0 + timedelta(hours=1), 1024, 4096)])
        _log_sessions(log, "MX-FGR", [(T0, 1024, 65536)])  # another partner: not counted
        _log_sessions(log, "CA-RCMP", [(T0 - timedelta(days=1), 1024, 9999)])  # yesterday
        history = set_size_history(log, "CA-RCMP")
    assert history.used_on(DAY) == (2048, 6144)
    assert history.usual_peer_size() == 4096  # median of 2048, 4096, 9999
    assert history.daily_caps(8192, 1024, own_max=65536, peer_max=65536, day=DAY) == (6144, 2048)
    assert history.daily_caps(7000, 1024, own_max=65536, peer_max=65536, day=DAY) is None
    assert history.daily_caps(8192, 1024, own_max=1024, peer_max=1024, day=DAY) == (1024, 1024)


def test_alarm_needs_a_usual_size_and_a_large_jump() -> None:
    assert not SetSizeHistory(((DAY, 1, 1024),) * 2).is_alarming(1 << 20)  # too few sessions
    usual = SetSizeHistory(((DAY, 1, 1024),) * 3)
    assert not usual.is_alarming(ALARM_FACTOR * 1024)
    assert usual.is_alarming(ALARM_FACTOR * 1024 + 1)


def _session(role: Role, records: int) -> PsiSession:
    me, peer = ("CA-RCMP", "US-DHS") if role is Role.INITIATOR else ("US-DHS", "CA-RCMP")
    builder = TokenSetBuilder(("k",))
    for i in range(records):
        builder.add_record(f"{me}-{i}", [("k", hashlib.sha256(f"{i}".encode()).digest())])
    config = SessionConfig(
        role=role,
        mode=Mode.PSI,
        party_id=me,
        peer_id=peer,
        mou_id="MOU-1",
        mou_digest=b"\x01" * 32,
        schema_digest=b"\x02" * 32,
        padding_bucket=16,
    )
    return PsiSession(config, builder.build(), rng=DeterministicRandom(f"{me}"))


def test_session_far_above_usual_is_an_audited_alarm(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path / "us.db", signing_key=SigningKey(b"\x02" * 32)) as log:
        _log_sessions(log, "CA-RCMP", [(T0, 16, 16)] * 3)
        probing, victim = _session(Role.INITIATOR, 200), _session(Role.RESPONDER, 5)
        auditor = SessionAuditor(
            log, victim, own_tokens=5, clock=lambda: T0, history=set_size_history(log, "CA-RCMP")
        )
        run_pair(
            probing, victim, on_events=lambda s, ev: auditor.record(ev) if s is victim else None
        )
        alarms = [e.fields for e in log.entries() if e.kind is AuditEvent.SET_SIZE_ALARM]
    assert len(alarms) == 1
    assert alarms[0]["peer_padded"] == 208 and alarms[0]["usual"] == 16
    assert alarms[0]["peer"] == "CA-RCMP"


def test_spent_daily_budget_refuses_the_session_and_is_audited(tmp_path: Path) -> None:
    """The bundled MOU allows 1,048,576 padded elements a day per party; earlier sessions today
    (as the audit log records them) leave less than one bucket: the run refuses before any
    element moves, and says so in the log."""
    agencies = Agencies(tmp_path)
    keys = AgencyKeys.load(agencies.ceremony.keys[US], PASSPHRASE)
    now = datetime.now(UTC)
    (tmp_path / US).mkdir(parents=True, exist_ok=True)
    with AuditLog.open(tmp_path / US / "audit.db", signing_key=keys.audit_key) as log:
        _log_sessions(log, CA, [(now, 1024, 65536)] * 16)  # 16 x the bound: the whole budget
    with pytest.raises(InputError, match="budget"):  # before it even listens
        asyncio.run(agencies._run("serve", US, CA, 0))
    entries = agencies.audit(US)
    aborted = [f for k, f in entries if k is AuditEvent.SESSION_ABORTED]
    assert aborted == [{"code": AbortCode.BAD_SET_SIZE.name, "side": "LOCAL", "peer": CA}]
    assert AuditEvent.SESSION_STARTED not in [k for k, _ in entries[-2:]]


@pytest.mark.parametrize("spent", [0, 15])
def test_budget_left_lets_the_session_run(tmp_path: Path, spent: int) -> None:
    agencies = Agencies(tmp_path)
    keys = AgencyKeys.load(agencies.ceremony.keys[US], PASSPHRASE)
    (tmp_path / US).mkdir(parents=True, exist_ok=True)
    with AuditLog.open(tmp_path / US / "audit.db", signing_key=keys.audit_key) as log:
        _log_sessions(log, CA, [(datetime.now(UTC), 1024, 65536)] * spent)
    out = agencies.run()
    assert not isinstance(out[US], BaseException), out[US]
    assert out[US].decided > 0


def test_confirmation_points_answered_count_against_the_partner(tmp_path: Path) -> None:
    """Every confirmation point we answer is a membership test the partner could spend on a
    guess (xlink-psi-v2 §9): the audit log's ORACLE_QUERY entries count in its daily use."""
    with AuditLog.open(tmp_path / "a.db", signing_key=SigningKey(b"\x03" * 32)) as log:
        _log_sessions(log, "CA-RCMP", [(T0, 1024, 2048)])
        session = hashlib.sha256(b"CA-RCMP0").digest()[:16]
        log.append(
            AuditEvent.ORACLE_QUERY,
            {"session": session, "evaluations": 700, "peer": "CA-RCMP"},
            now=T0,
        )
        history = set_size_history(log, "CA-RCMP")
    assert history.used_on(DAY) == (1024, 2748)
    assert history.daily_caps(4096, 1024, own_max=4096, peer_max=4096, day=DAY) == (3072, 1024)


def test_a_second_run_on_the_same_workdir_is_refused_at_once(tmp_path: Path) -> None:
    """Two runs on one workdir would each read the whole remaining daily budget (and share the
    audit log and store): the second is refused before it reads anything."""
    agencies = Agencies(tmp_path)
    work = tmp_path / US
    work.mkdir(parents=True, exist_ok=True)
    with open(work / "run.lock", "a", encoding="ascii") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a run in progress
        with pytest.raises(InputError, match="another xlink run"):
            asyncio.run(agencies._run("serve", US, CA, 0))
    assert not (work / "audit.db").exists()
    out = agencies.run()  # once the first run is over, the workdir is usable again
    assert not isinstance(out[US], BaseException), out[US]
