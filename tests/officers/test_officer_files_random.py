"""Garbled officer enrolments, revocations and public key files raise only xlink's errors, and
reading them writes nothing: "random bytes into any decoder raise only our own exception
types". (Random bytes alone: tests/officers/test_officers.py.)"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from _mutations import DECODER_SETTINGS, mutated_json
from _officers import APPROVER, READER, enrol_officers
from hypothesis import given
from hypothesis import strategies as st

from xlink.audit import AuditLog
from xlink.crypto.keys import SigningKey
from xlink.crypto.rand import DeterministicRandom
from xlink.errors import InputError, XlinkError
from xlink.officers import OFFICERS_DIR, OfficerRegistry, load_officer_public

AGENCY = "US-DHS"
AGENCY_KEY = SigningKey(DeterministicRandom("officer-random-agency")(32))
NOW = datetime(2026, 3, 1, tzinfo=UTC)


def _registry_files() -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        with AuditLog.open(Path(tmp) / "audit.db", signing_key=AGENCY_KEY) as audit:
            registry = enrol_officers(
                Path(tmp), agency=AGENCY, agency_key=AGENCY_KEY, audit=audit, now=NOW
            )
            registry.revoke(APPROVER.fingerprint, agency_key=AGENCY_KEY, audit=audit, now=NOW)
        return {p.name: p.read_bytes() for p in (Path(tmp) / OFFICERS_DIR).iterdir()}


FILES = _registry_files()
ENROLMENT = f"{READER.fingerprint}.json"
REVOCATION = f"{APPROVER.fingerprint}.revoked.json"


@contextlib.contextmanager
def _registry_with(name: str, data: bytes) -> Iterator[Path]:
    """A registry directory holding every valid file, ``name`` replaced by ``data``."""
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / OFFICERS_DIR
        directory.mkdir()
        for file, content in FILES.items():
            (directory / file).write_bytes(data if file == name else content)
        yield directory


def _load_refused_or_not(directory: Path) -> None:
    before = {p.name: p.read_bytes() for p in directory.iterdir()}
    with contextlib.suppress(XlinkError):
        OfficerRegistry.load(directory, agency_id=AGENCY, agency_key=AGENCY_KEY.verify_key)
    assert {p.name: p.read_bytes() for p in directory.iterdir()} == before


def _enrolment(**changes: object) -> bytes:
    doc = json.loads(FILES[ENROLMENT])
    doc.update(changes)
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    "changes",
    [
        {"roles": [["reader"]]},  # TypeError: unhashable type: 'list'
        {"roles": [{}]},
        {"enrolled_at": "0001-01-01T00:00:00+01:00"},  # OverflowError once in UTC
        {"expires_at": "9999-12-31T23:59:59-01:00"},
    ],
)
def test_an_enrolment_of_impossible_roles_or_times_is_an_input_error(
    changes: dict[str, object],
) -> None:
    with (
        _registry_with(ENROLMENT, _enrolment(**changes)) as directory,
        pytest.raises(InputError, match=ENROLMENT),
    ):
        OfficerRegistry.load(directory, agency_id=AGENCY, agency_key=AGENCY_KEY.verify_key)


def test_a_revocation_of_an_impossible_time_is_an_input_error() -> None:
    doc = json.loads(FILES[REVOCATION])
    doc["revoked_at"] = "0001-01-01T00:00:00+00:01"
    with (
        _registry_with(REVOCATION, json.dumps(doc).encode()) as directory,
        pytest.raises(InputError, match=REVOCATION),
    ):
        OfficerRegistry.load(directory, agency_id=AGENCY, agency_key=AGENCY_KEY.verify_key)


@DECODER_SETTINGS
@given(mutated_json(json.loads(FILES[ENROLMENT])))
def test_a_garbled_enrolment_raises_only_xlink_errors(data: bytes) -> None:
    with _registry_with(ENROLMENT, data) as directory:
        _load_refused_or_not(directory)


@DECODER_SETTINGS
@given(mutated_json(json.loads(FILES[REVOCATION])))
def test_a_garbled_revocation_raises_only_xlink_errors(data: bytes) -> None:
    with _registry_with(REVOCATION, data) as directory:
        _load_refused_or_not(directory)


@DECODER_SETTINGS
@given(mutated_json(json.loads(READER.public.to_json())) | st.binary(max_size=200))
def test_a_garbled_officer_public_file_raises_only_xlink_errors(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "officer.json"
        path.write_bytes(data)
        with contextlib.suppress(XlinkError):
            load_officer_public(path)
        assert [p.name for p in Path(tmp).iterdir()] == ["officer.json"]
