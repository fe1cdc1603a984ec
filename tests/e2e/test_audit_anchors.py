"""The audit trail over a real exchange (two agencies, mutual TLS on 127.0.0.1, issue 14):
each side signs its log with its own audit key, writes MOU_ACCEPTED and the keys it runs under
once, audits each receipt it gets (RECEIPT_RECEIVED), keeps the receipt and countersigns the
partner's checkpoint the receipt carries; the partner's export of those checkpoints then
catches a log its operator rewrote and re-signed with the audit key."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from _two_agencies import CA, US, TwoAgencies, small_files

from xlink.agency import AgencyOutcome
from xlink.audit import AuditEvent, AuditLog, verify_log
from xlink.cli.exitcodes import ExitCode
from xlink.cli.main import main
from xlink.crypto.keyfiles import AgencyKeys, load_audit_verify_key, load_public_bundle
from xlink.crypto.rand import system_random
from xlink.errors import InputError

PASSPHRASE = b"audit anchor tests, not secret"


def _kinds(entries: list[tuple[AuditEvent, dict[str, Any]]], kind: AuditEvent) -> list[Any]:
    return [fields for k, fields in entries if k is kind]


def _run(pair: TwoAgencies) -> dict[str, AgencyOutcome]:
    out = pair.run()
    for agency, outcome in out.items():
        assert isinstance(outcome, AgencyOutcome), (agency, outcome)
        assert outcome.audit_ok, outcome.audit_reason
    return out


def test_receipts_carry_checkpoints_that_catch_a_rewritten_log(tmp_path: Path) -> None:
    pair = TwoAgencies(tmp_path, small_files(tmp_path), passphrase=PASSPHRASE, timeout=10.0)
    out = _run(pair)
    ca, us = pair.audit(CA), pair.audit(US)  # each verifies with its audit key
    assert out[CA].receipts_verified > 0 and out[US].receipts_verified > 0

    # The agency's signing key no longer signs its audit log.
    bundle_key = load_public_bundle(pair.ceremony.bundles[US]).verify_key
    assert not verify_log(tmp_path / US / "audit.db", bundle_key).ok

    # RECEIPT_RECEIVED for every receipt, each with the partner's checkpoint countersigned.
    received = _kinds(ca, AuditEvent.RECEIPT_RECEIVED)
    anchors = _kinds(ca, AuditEvent.CHECKPOINT_RECEIVED)
    assert len(received) == out[CA].receipts_verified == len(anchors)
    us_audit_key = load_audit_verify_key(pair.ceremony.keys[US])
    assert {a["fingerprint"] for a in anchors} == {us_audit_key.fingerprint()}
    assert {a["peer"] for a in anchors} == {US}
    assert [a["handle"] for a in anchors] == [r["handle"] for r in received]
    # Each receipt is kept in the outbound ledger beside its SENT item.
    sent = pair.rows(CA, "queue.db", "SELECT receipt FROM release_queue WHERE state = 'SENT'")
    assert len(sent) == out[CA].receipts_verified and all(r[0] for r in sent)

    # MOU_ACCEPTED and the four keys, once per log, whatever the number of runs.
    for entries in (ca, us):
        assert len(_kinds(entries, AuditEvent.MOU_ACCEPTED)) == 1
        uses = sorted(e["key_use"] for e in _kinds(entries, AuditEvent.KEY_EVENT))
        assert uses == ["AUDIT", "SEALING", "SIGNING", "TLS"]
    _run(pair)
    for agency in (CA, US):
        again = pair.audit(agency)
        assert len(_kinds(again, AuditEvent.MOU_ACCEPTED)) == 1
        assert len(_kinds(again, AuditEvent.KEY_EVENT)) == 4

    # CA-RCMP exports US-DHS's checkpoints; US-DHS's auditor checks its log against them.
    export = tmp_path / "us-checkpoints.json"
    argv = ["audit", "export-checkpoints", "--workdir", str(tmp_path / CA), "--peer", US]
    assert main([*argv, "--out", str(export)]) == ExitCode.OK
    log = tmp_path / US / "audit.db"
    keys = str(pair.ceremony.keys[US])
    verify = ["audit", "verify", str(log), "--keys", keys]
    assert main([*verify, "--partner-checkpoints", str(export)]) == ExitCode.OK

    # US-DHS's operator, who holds the audit key, drops its RELEASE_SENT entries and
    # re-chains and re-signs the rest. Alone, the log passes; against CA-RCMP's checkpoints
    # (the first taken after US-DHS audited its releases as sent), it does not.
    audit_key = AgencyKeys.load(pair.ceremony.keys[US], PASSPHRASE).audit_key
    with AuditLog.open(log, signing_key=None) as old:
        kept = [e for e in old.entries() if e.kind is not AuditEvent.RELEASE_SENT]
    for file in log.parent.glob("audit.db*"):
        file.unlink()
    with AuditLog.open(log, signing_key=audit_key) as new:
        for entry in kept:
            new.append(entry.kind, dict(entry.fields), now=entry.time)
    assert main(verify) == ExitCode.OK
    assert main([*verify, "--partner-checkpoints", str(export)]) == ExitCode.TAMPERED


def test_an_agency_does_not_write_on_a_log_signed_by_another_key(tmp_path: Path) -> None:
    """A workdir log begun under the agency's signing key (before the audit key existed) is
    refused, not continued with the audit key: mixed, it could be verified with neither."""
    pair = TwoAgencies(tmp_path, small_files(tmp_path), passphrase=PASSPHRASE, timeout=10.0)
    keys = AgencyKeys.load(pair.ceremony.keys[US], PASSPHRASE)
    (tmp_path / US).mkdir()
    with AuditLog.open(tmp_path / US / "audit.db", signing_key=keys.signing_key) as old:
        old.append(AuditEvent.PURGE, {"reason": "retention", "records": 0}, now=datetime.now(UTC))
    with pytest.raises(InputError, match="not signed by this agency's audit key"):
        pair.ceremony.open_agency(
            US,
            tmp_path / US,
            passphrase=PASSPHRASE,
            clock=lambda: datetime.now(UTC),
            rng=system_random,
        )
    with AuditLog.open(tmp_path / US / "audit.db", signing_key=None) as log:
        assert [e.kind for e in log.entries()] == [AuditEvent.PURGE]  # nothing written
