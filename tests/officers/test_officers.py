"""Officers (issue 14): keys of their own, enrolments signed by the agency, acts that are checked
before anything is opened or decided."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from _officers import APPROVER, READER, STRANGER, act, enrol_officers
from hypothesis import given, settings
from hypothesis import strategies as st

from xlink.audit import AuditEvent, AuditLog
from xlink.crypto.envelope import TEST_KDF
from xlink.crypto.keys import SigningKey
from xlink.crypto.rand import DeterministicRandom
from xlink.errors import DecryptionError, InputError, PolicyDenied, XlinkError
from xlink.officers import (
    OFFICERS_DIR,
    OfficerAction,
    OfficerKey,
    OfficerRegistry,
    act_message,
    load_officer_public,
)

AGENCY = "US-DHS"
AGENCY_KEY = SigningKey(DeterministicRandom("officer-test-agency")(32))
OTHER_AGENCY_KEY = SigningKey(DeterministicRandom("officer-test-other")(32))
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RID = bytes(range(16))


@pytest.fixture
def registry(tmp_path: Path) -> OfficerRegistry:
    with AuditLog.open(tmp_path / "audit.db", signing_key=AGENCY_KEY) as audit:
        return enrol_officers(tmp_path, agency=AGENCY, agency_key=AGENCY_KEY, audit=audit, now=T0)


def _check(registry: OfficerRegistry, officer: OfficerKey, action: OfficerAction, **kw: object):  # type: ignore[no-untyped-def]
    detail = str(kw.pop("detail", "border-security"))
    now = kw.pop("now", T0)
    signed = act(officer, action, agency=AGENCY, target=RID, now=now, detail=detail)  # type: ignore[arg-type]
    return registry.check(signed, action=action, target=RID, detail=detail, now=now)  # type: ignore[arg-type]


def test_enrolled_roles_allow_their_actions_only(registry: OfficerRegistry) -> None:
    for action in (OfficerAction.READ, OfficerAction.EXPORT, OfficerAction.SHARE):
        assert _check(registry, READER, action) == READER.fingerprint
        with pytest.raises(PolicyDenied, match="officer-not-authorised"):
            _check(registry, APPROVER, action)
    for action in (OfficerAction.APPROVE, OfficerAction.DENY):
        assert _check(registry, APPROVER, action) == APPROVER.fingerprint
        with pytest.raises(PolicyDenied, match="officer-not-authorised"):
            _check(registry, READER, action)
    with pytest.raises(PolicyDenied, match="officer-not-enrolled"):
        _check(registry, STRANGER, OfficerAction.READ)


def test_enrolments_survive_a_reload_and_are_audited(
    registry: OfficerRegistry, tmp_path: Path
) -> None:
    again = OfficerRegistry.load(
        tmp_path / OFFICERS_DIR, agency_id=AGENCY, agency_key=AGENCY_KEY.verify_key
    )
    assert [e.fingerprint for e in again.enrolments()] == sorted(
        [READER.fingerprint, APPROVER.fingerprint]
    )
    with AuditLog.open(tmp_path / "audit.db", signing_key=None) as log:
        events = [dict(e.fields) for e in log.entries() if e.kind is AuditEvent.KEY_EVENT]
    assert {e["fingerprint"] for e in events} == {READER.fingerprint, APPROVER.fingerprint}
    assert {e["action"] for e in events} == {"ENROLLED"}


def test_a_revoked_or_expired_officer_is_refused(registry: OfficerRegistry, tmp_path: Path) -> None:
    later = T0 + timedelta(days=1)
    with AuditLog.open(tmp_path / "audit.db", signing_key=AGENCY_KEY) as audit:
        registry.revoke(READER.fingerprint, agency_key=AGENCY_KEY, audit=audit, now=later)
        with pytest.raises(InputError, match="not enrolled"):
            registry.revoke(READER.fingerprint, agency_key=AGENCY_KEY, audit=audit, now=later)
    for when in (later, T0):  # for good: an act dated before the revocation is refused too
        with pytest.raises(PolicyDenied, match="officer-revoked"):
            _check(registry, READER, OfficerAction.READ, now=when)
    reloaded = OfficerRegistry.load(
        tmp_path / OFFICERS_DIR, agency_id=AGENCY, agency_key=AGENCY_KEY.verify_key
    )
    with pytest.raises(PolicyDenied, match="officer-revoked"):
        _check(reloaded, READER, OfficerAction.READ, now=later)
    with pytest.raises(PolicyDenied, match="officer-enrolment-expired"):
        _check(registry, APPROVER, OfficerAction.APPROVE, now=T0 + timedelta(days=4000))
    with pytest.raises(PolicyDenied, match="officer-enrolment-expired"):  # before enrolment
        _check(registry, APPROVER, OfficerAction.APPROVE, now=T0 - timedelta(days=31))


def test_a_deleted_revocation_file_does_not_bring_an_officer_back(
    registry: OfficerRegistry, tmp_path: Path
) -> None:
    with AuditLog.open(tmp_path / "audit.db", signing_key=AGENCY_KEY) as audit:
        registry.revoke(READER.fingerprint, agency_key=AGENCY_KEY, audit=audit, now=T0)
    (tmp_path / OFFICERS_DIR / f"{READER.fingerprint}.revoked.json").unlink()
    without_log = OfficerRegistry.load(
        tmp_path / OFFICERS_DIR, agency_id=AGENCY, agency_key=AGENCY_KEY.verify_key
    )
    assert _check(without_log, READER, OfficerAction.READ) == READER.fingerprint
    with AuditLog.open(tmp_path / "audit.db", signing_key=None) as log:
        with_log = OfficerRegistry.load(
            tmp_path / OFFICERS_DIR, agency_id=AGENCY, agency_key=AGENCY_KEY.verify_key, audit=log
        )
    with pytest.raises(PolicyDenied, match="officer-revoked"):
        _check(with_log, READER, OfficerAction.READ)


def test_a_small_order_officer_key_is_no_key(tmp_path: Path) -> None:
    """With R the identity and S = 0, a "signature" verifies under a small-order key for any
    message: such a key must never be enrolled."""
    small_order = bytes([1]) + bytes(31)  # the identity point
    doc = {"format": "xlink-officer-key-v1", "name": "x", "verify_key": small_order.hex()}
    (tmp_path / "officer.json").write_text(json.dumps(doc))
    with pytest.raises(XlinkError, match="verify_key"):
        load_officer_public(tmp_path / "officer.json")
    from xlink.crypto.keys import VerifyKey

    with pytest.raises(ValueError, match="prime-order"):
        VerifyKey(small_order)


def test_an_officer_key_needs_a_strong_passphrase_of_its_own(tmp_path: Path) -> None:
    key = OfficerKey.generate("Badge 7", rng=DeterministicRandom("weak"))
    with pytest.raises(InputError):
        key.save(tmp_path / "o", b"password1234", rng=DeterministicRandom("s"), params=TEST_KDF)
    assert not (tmp_path / "o" / "officer.key").exists()


def test_files_that_do_not_verify_stop_the_load(registry: OfficerRegistry, tmp_path: Path) -> None:
    directory = tmp_path / OFFICERS_DIR
    with pytest.raises(InputError, match="not signed by this agency's key"):
        OfficerRegistry.load(directory, agency_id=AGENCY, agency_key=OTHER_AGENCY_KEY.verify_key)
    with pytest.raises(InputError, match="enrolment file of CA-RCMP"):
        OfficerRegistry.load(directory, agency_id="CA-RCMP", agency_key=AGENCY_KEY.verify_key)
    path = directory / f"{READER.fingerprint}.json"
    doc = json.loads(path.read_text())
    doc["expires_at"] = "2099-01-01T00:00:00Z"
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="not signed by this agency's key"):
        OfficerRegistry.load(directory, agency_id=AGENCY, agency_key=AGENCY_KEY.verify_key)
    path.rename(directory / f"{STRANGER.fingerprint}.json")  # renamed: another officer's name
    with pytest.raises(InputError):
        OfficerRegistry.load(directory, agency_id=AGENCY, agency_key=AGENCY_KEY.verify_key)


def test_an_act_signs_every_part_of_what_it_asks() -> None:
    base = dict(agency=AGENCY, action=OfficerAction.READ, target=RID, detail="p", time=T0)
    message = act_message(**base)  # type: ignore[arg-type]
    changes = [
        {"agency": "CA-RCMP"},
        {"action": OfficerAction.EXPORT},
        {"target": bytes(16)},
        {"detail": "q"},
        {"time": T0 + timedelta(microseconds=1)},
    ]
    assert all(act_message(**{**base, **c}) != message for c in changes)  # type: ignore[arg-type]
    assert message.startswith(b"\x00\x00\x00\x14xlink/v1/officer-act")


def test_an_officer_key_round_trips_under_its_own_passphrase(tmp_path: Path) -> None:
    key = OfficerKey.generate("Badge 4411", rng=DeterministicRandom("ok"))
    public = key.save(
        tmp_path / "o", b"an officer passphrase 31", rng=DeterministicRandom("s"), params=TEST_KDF
    )
    assert load_officer_public(public).verify_key == key.signing_key.verify_key
    loaded = OfficerKey.load(tmp_path / "o", b"an officer passphrase 31")
    assert loaded.fingerprint == key.fingerprint and loaded.name == "Badge 4411"
    with pytest.raises(DecryptionError):
        OfficerKey.load(tmp_path / "o", b"the agency's passphrase 1")
    with pytest.raises(InputError, match="already exists"):
        key.save(
            tmp_path / "o",
            b"an officer passphrase 31",
            rng=DeterministicRandom("s"),
            params=TEST_KDF,
        )
    with pytest.raises(InputError, match="officer name"):
        OfficerKey.generate("bad\nname", rng=DeterministicRandom("n"))
    assert "Badge" not in repr(loaded)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_into_the_officer_files_raise_only_xlink_errors(data: bytes) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / OFFICERS_DIR
        directory.mkdir()
        (directory / f"{READER.fingerprint}.json").write_bytes(data)
        with pytest.raises(XlinkError):
            OfficerRegistry.load(directory, agency_id=AGENCY, agency_key=AGENCY_KEY.verify_key)
        (Path(tmp) / "officer.json").write_bytes(data)
        with pytest.raises(XlinkError):
            load_officer_public(Path(tmp) / "officer.json")


def test_each_refusal_hint_asks_for_something_the_cli_does(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A hint that names a command names one that exists, and an expired enrolment is not
    enrolled again (a key is enrolled once; found in review: the hint said to)."""
    import argparse

    from xlink.cli import cmd_officer
    from xlink.officers import DENY_OFFICER_EXPIRED, REFUSAL_HINTS

    parser = argparse.ArgumentParser(prog="xlink")
    cmd_officer.register(parser.add_subparsers(dest="command"))
    named = 0
    for hint in REFUSAL_HINTS.values():
        for action in re.findall(r"`xlink officer (\w+)", hint):
            with pytest.raises(SystemExit) as done:
                parser.parse_args(["officer", action, "--help"])
            assert done.value.code == 0, action  # 2: no such action
            named += 1
    assert named >= 4
    capsys.readouterr()
    expired = REFUSAL_HINTS[DENY_OFFICER_EXPIRED]
    assert "enrol a new key" in expired and "`xlink officer keygen`" in expired
