"""A PSI session lands in each party's audit log: start, sizes, matches and end — or the abort
with its code and which side detected it — and nothing of the tokens or names."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from _audit_support import KEY, OTHER_KEY

from xlink.audit import AuditEvent, AuditLog, verify_log
from xlink.audit.session import SessionAuditor
from xlink.crypto.rand import DeterministicRandom
from xlink.crypto.suite import DEFAULT_SUITE
from xlink.errors import ProtocolError, RemoteProtocolError
from xlink.exchange import Party, exchange_in_memory
from xlink.linkage.schema import load_default_schema, schema_digest
from xlink.linkage.tokens import TokenSetBuilder, token_digest
from xlink.protocol import Mode, PsiSession, Role, SessionConfig, run_pair
from xlink.protocol.events import Event

MOU = hashlib.sha256(b"audit test mou").digest()
NAMES = {"CA-1": "KOWALCZYK", "CA-2": "OYELARAN", "US-1": "KOWALCZYK", "US-2": "MAKAROVA"}


def _tokens(prefix: str) -> TokenSetBuilder:
    b = TokenSetBuilder(["name"])
    for rid, name in NAMES.items():
        if rid.startswith(prefix):
            b.add_record(rid, [("name", token_digest("s", 1, "name", 1, [name]))])
    return b


def _clock() -> Callable[[], datetime]:
    ticks = itertools.count()
    start = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    return lambda: start + timedelta(seconds=next(ticks))


def _kinds(path: Path) -> list[AuditEvent]:
    with AuditLog.open(path, signing_key=None) as log:
        return [e.kind for e in log.entries()]


def test_completed_session_is_audited_on_both_sides(audit_dir: Path) -> None:
    schema = load_default_schema()
    with (
        AuditLog.open(audit_dir / "ca.db", signing_key=KEY) as ca_log,
        AuditLog.open(audit_dir / "us.db", signing_key=OTHER_KEY) as us_log,
    ):
        ca, _us = exchange_in_memory(
            Party("CA-RCMP", _tokens("CA").build(), DeterministicRandom(1), audit=ca_log),
            Party("US-DHS", _tokens("US").build(), DeterministicRandom(2), audit=us_log),
            schema=schema,
            mou_id="MOU-1",
            mou_digest=MOU,
            padding_bucket=16,
            clock=_clock(),
        )
        ca_entries = list(ca_log.entries())
    expected = [
        AuditEvent.SESSION_STARTED,
        AuditEvent.SIZES,
        AuditEvent.ORACLE_QUERY,  # the peer's confirmation points we answered (psi-v2 §6.9)
        AuditEvent.MATCHES,
        AuditEvent.SESSION_COMPLETED,
    ]
    assert _kinds(audit_dir / "ca.db") == expected
    assert _kinds(audit_dir / "us.db") == expected
    assert verify_log(audit_dir / "ca.db", KEY.verify_key).ok
    assert verify_log(audit_dir / "us.db", OTHER_KEY.verify_key).ok
    started, sizes, oracle, matches, _ = (e.fields for e in ca_entries)
    assert started["session"] == ca.session_id.hex()
    assert started["peer"] == "US-DHS" and started["role"] == "INITIATOR"
    assert started["schema_digest"] == schema_digest(schema).hex()
    assert started["suite"] == DEFAULT_SUITE.suite_id  # which ciphersuite protected it
    assert sizes == {"session": ca.session_id.hex(), "own": 2, "own_padded": 16, "peer_padded": 16}
    assert matches["matched"] == 1 and matches["pairs"] == 1
    assert oracle == {"session": ca.session_id.hex(), "evaluations": 1, "peer": "US-DHS"}
    # Nothing of the names or the tokens reaches the log file.
    raw = (audit_dir / "ca.db").read_bytes() + (audit_dir / "us.db").read_bytes()
    for name in NAMES.values():
        assert name.encode() not in raw
        token = token_digest("s", 1, "name", 1, [name])
        assert token not in raw and token.hex().encode() not in raw


def test_aborted_session_records_the_code_and_the_side(audit_dir: Path) -> None:
    base = SessionConfig(
        role=Role.INITIATOR,
        mode=Mode.PSI,
        party_id="CA-RCMP",
        peer_id="US-DHS",
        mou_id="MOU-1",
        mou_digest=MOU,
        schema_digest=bytes(32),
        padding_bucket=16,
    )
    # The responder was given a different MOU digest: it must abort at the handshake.
    other = dataclasses.replace(
        base,
        role=Role.RESPONDER,
        party_id="US-DHS",
        peer_id="CA-RCMP",
        mou_digest=hashlib.sha256(b"another mou").digest(),
    )
    a = PsiSession(base, _tokens("CA").build(), rng=DeterministicRandom(1))
    b = PsiSession(other, _tokens("US").build(), rng=DeterministicRandom(2))
    clock = _clock()
    with (
        AuditLog.open(audit_dir / "ca.db", signing_key=KEY) as ca_log,
        AuditLog.open(audit_dir / "us.db", signing_key=OTHER_KEY) as us_log,
    ):
        auditors = {
            id(a): SessionAuditor(ca_log, a, own_tokens=2, clock=clock),
            id(b): SessionAuditor(us_log, b, own_tokens=2, clock=clock),
        }

        def on_events(s: PsiSession, events: list[Event]) -> None:
            auditors[id(s)].record(events)

        def on_error(s: PsiSession, error: ProtocolError) -> None:
            auditors[id(s)].record_error(error)

        with pytest.raises(RemoteProtocolError):
            run_pair(a, b, on_events=on_events, on_error=on_error)
        ca_entries, us_entries = list(ca_log.entries()), list(us_log.entries())
    assert [e.kind for e in us_entries] == [AuditEvent.SESSION_ABORTED]
    assert us_entries[0].fields == {"code": "MOU_MISMATCH", "side": "LOCAL", "peer": "CA-RCMP"}
    assert [e.kind for e in ca_entries] == [AuditEvent.SESSION_ABORTED]
    assert ca_entries[0].fields["side"] == "PEER"
    assert ca_entries[0].fields["code"] == "MOU_MISMATCH"
    assert verify_log(audit_dir / "ca.db", KEY.verify_key).ok


def test_an_audited_exchange_needs_a_clock(audit_dir: Path) -> None:
    with (
        AuditLog.open(audit_dir / "ca.db", signing_key=KEY) as log,
        pytest.raises(ValueError, match="clock"),
    ):
        exchange_in_memory(
            Party("CA-RCMP", _tokens("CA").build(), audit=log),
            Party("US-DHS", _tokens("US").build()),
            schema=load_default_schema(),
            mou_id="MOU-1",
            mou_digest=MOU,
        )


@pytest.mark.parametrize(
    ("peer_id", "mou_id", "refused"),
    [("US DHS", "MOU-1", "peer_id"), ("US-DHS", "MOU 1", "mou_id"), ("US.DHS", "MOU-1", "peer_id")],
)
def test_ids_the_log_cannot_hold_are_refused_before_the_session(
    audit_dir: Path, peer_id: str, mou_id: str, refused: str
) -> None:
    """Not in the middle of the session, when the start would be written (xlink.identifiers)."""
    from xlink.errors import IdentifierError

    config = SessionConfig(
        role=Role.INITIATOR,
        mode=Mode.PSI,
        party_id="CA-RCMP",
        peer_id=peer_id,
        mou_id=mou_id,
        mou_digest=MOU,
        schema_digest=bytes(32),
        padding_bucket=16,
    )
    session = PsiSession(config, _tokens("CA").build(), rng=DeterministicRandom(1))
    with (
        AuditLog.open(audit_dir / "a.db", signing_key=KEY) as log,
        pytest.raises(IdentifierError, match=f"^{refused}: must be"),
    ):
        SessionAuditor(log, session, own_tokens=2, clock=_clock())
    assert _kinds(audit_dir / "a.db") == []
