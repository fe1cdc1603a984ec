"""The PSI ciphersuite an agency proposes (`xlink serve|match --psi-suite`, `Agency.open(...,
suite_id=...)`), over real mutual TLS on 127.0.0.1: two agencies on suite 1 (a partner whose
xlink predates suite 2) decide what two agencies on the default suite decide; two agencies on
different suites abort at the Hello with UNSUPPORTED_SUITE, release nothing, and both audit it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from _two_agencies import CA, US, TwoAgencies, small_files

from xlink.agency import Agency, AgencyOutcome
from xlink.audit import AuditEvent
from xlink.crypto.rand import system_random
from xlink.crypto.suite import DEFAULT_SUITE, SUITE_X25519
from xlink.errors import XlinkError

PASSPHRASE = b"suite tests passphrase, not secret"
TIMEOUT = 20.0


def _pair(base: Path, suite_ids: dict[str, int]) -> TwoAgencies:
    return TwoAgencies(
        base, small_files(base), passphrase=PASSPHRASE, timeout=TIMEOUT, suite_ids=suite_ids
    )


def test_both_on_suite_1_decide_what_both_on_the_default_decide(tmp_path: Path) -> None:
    decided = {}
    for suite in (SUITE_X25519.suite_id, DEFAULT_SUITE.suite_id):
        pair = _pair(tmp_path / f"suite{suite}", {CA: suite, US: suite})
        out = pair.run()
        for agency in (CA, US):
            assert isinstance(out[agency], AgencyOutcome), out[agency]
            assert out[agency].audit_ok
            started = [f for kind, f in pair.audit(agency) if kind is AuditEvent.SESSION_STARTED]
            assert [f["suite"] for f in started] == [suite]  # the audit says which suite ran
        decided[suite] = [(o.matched_tokens, o.candidates, o.decided) for o in (out[CA], out[US])]
        assert pair.stored(CA) > 0 and pair.stored(US) > 0
    assert decided[SUITE_X25519.suite_id] == decided[DEFAULT_SUITE.suite_id]


def test_agencies_on_different_suites_abort_at_the_hello(tmp_path: Path) -> None:
    pair = _pair(tmp_path, {CA: SUITE_X25519.suite_id, US: DEFAULT_SUITE.suite_id})
    out = pair.run()
    for agency in (CA, US):
        error = out[agency]
        assert isinstance(error, XlinkError), error
        assert "UNSUPPORTED_SUITE" in str(error), error
        assert pair.stored(agency) == 0
        aborts = [f for kind, f in pair.audit(agency) if kind is AuditEvent.SESSION_ABORTED]
        assert [str(f["code"]) for f in aborts] == ["UNSUPPORTED_SUITE"], aborts


def test_an_unknown_suite_is_refused_when_the_agency_opens(tmp_path: Path) -> None:
    c = _pair(tmp_path, {}).ceremony
    with pytest.raises(ValueError, match="unknown PSI ciphersuite 3"):
        Agency.open(
            tmp_path / CA,
            agency=CA,
            keys_dir=c.keys[CA],
            passphrase=PASSPHRASE,
            mou_path=c.mou,
            peer_bundle_path=c.bundles[US],
            clock=lambda: datetime.now(UTC),
            rng=system_random,
            suite_id=3,
        )
