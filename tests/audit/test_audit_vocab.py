"""The closed vocabulary: free text, unknown fields and ill-typed values never reach the log."""

from __future__ import annotations

from pathlib import Path

import pytest
from _audit_support import KEY, SESSION, T0, events
from hypothesis import given

from xlink.audit import FIELDS, KINDS, AuditEvent, AuditLog, FieldType, check_fields
from xlink.protocol.abort import AbortCode

NAME = "Jean-Luc \u00c9mile DUPONT"
VALID_READ = {"handle": "ab" * 16, "purpose": "border-screening"}


def test_every_kind_declares_only_known_fields() -> None:
    assert set(KINDS) == set(AuditEvent)
    for required, optional in KINDS.values():
        assert required and not required & optional
        assert (required | optional) <= set(FIELDS)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("purpose", NAME),  # free text: spaces, capitals, non-ASCII
        ("purpose", "John Smith"),
        ("purpose", "dupont,jean"),
        ("purpose", ""),
        ("handle", NAME),
        ("handle", "AB" * 16),  # hex must be lowercase
        ("handle", "ab" * 15),  # wrong size
        ("handle", b"\x00" * 15),
        ("handle", 12),
    ],
)
def test_free_text_and_ill_typed_values_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValueError) as exc:
        check_fields(AuditEvent.RECORD_READ, {**VALID_READ, field: value})
    if isinstance(value, str) and value:
        assert value not in str(exc.value)  # the refused value is never quoted


@pytest.mark.parametrize("value", [-1, 2**63, True, 1.0, "3", None])
def test_counts_are_non_negative_ints(value: object) -> None:
    with pytest.raises(ValueError, match="MATCHES field 'matched'"):
        check_fields(AuditEvent.MATCHES, {"session": SESSION, "matched": value})


def test_agency_ids_refuse_spaces_and_non_ascii() -> None:
    base = {"mou": "MOU-CA-US-2026", "mou_digest": "00" * 32, "peer": "CA-CBSA"}
    assert check_fields(AuditEvent.MOU_ACCEPTED, base)["peer"] == "CA-CBSA"
    for bad in ("Canada Border Services", "CBSA/ASFC", "ASFC-Qu\u00e9bec", "-lead", "x" * 65):
        with pytest.raises(ValueError):
            check_fields(AuditEvent.MOU_ACCEPTED, {**base, "peer": bad})


def test_unknown_fields_are_refused_without_echoing_their_names() -> None:
    with pytest.raises(ValueError) as exc:
        check_fields(AuditEvent.RECORD_READ, {**VALID_READ, "surname": "DUPONT"})
    assert "surname" not in str(exc.value) and "DUPONT" not in str(exc.value)
    assert "allows only the fields handle, officer_sig, purpose, reader, session" in str(exc.value)
    with pytest.raises(ValueError):
        check_fields(AuditEvent.RECORD_READ, {**VALID_READ, NAME: 1})


def test_missing_required_fields_are_refused() -> None:
    with pytest.raises(ValueError, match="requires the fields purpose"):
        check_fields(AuditEvent.RECORD_READ, {"handle": "ab" * 16})


def test_enum_fields_take_members_or_their_names_only() -> None:
    fields = check_fields(AuditEvent.SESSION_ABORTED, {"code": AbortCode.TIMEOUT, "side": "PEER"})
    assert fields == {"code": "TIMEOUT", "side": "PEER"}
    for bad in ({"code": "timeout", "side": "PEER"}, {"code": 41, "side": "PEER"}):
        with pytest.raises(ValueError):
            check_fields(AuditEvent.SESSION_ABORTED, bad)


def test_bytes_become_lowercase_hex() -> None:
    fields = check_fields(AuditEvent.SESSION_COMPLETED, {"session": bytes(range(16))})
    assert fields == {"session": bytes(range(16)).hex()}


def test_kind_must_be_an_audit_event() -> None:
    with pytest.raises(ValueError):
        check_fields("RECORD_READ", VALID_READ)  # type: ignore[arg-type]


def test_a_refused_entry_writes_nothing(audit_dir: Path) -> None:
    with AuditLog.open(audit_dir / "a.db", signing_key=KEY) as log:
        log.append(AuditEvent.RECORD_READ, VALID_READ, now=T0)
        with pytest.raises(ValueError):
            log.append(AuditEvent.RECORD_READ, {**VALID_READ, "purpose": NAME}, now=T0)
        assert [e.seq for e in log.entries()] == [1]


def test_every_field_type_is_used() -> None:
    assert set(FIELDS.values()) == set(FieldType)


@given(events())
def test_generated_events_are_valid_and_idempotent(
    ev: tuple[AuditEvent, dict[str, object]],
) -> None:
    kind, fields = ev
    checked = check_fields(kind, fields)
    assert check_fields(kind, checked) == checked


def test_peer_refused_takes_a_peer_and_a_reason_code_only() -> None:
    """A refused (or absent) TLS peer: the agency expected and a reason code; no certificate,
    no address, no free text."""
    base = {"peer": "CA-RCMP", "reason": "certificate-invalid"}
    assert check_fields(AuditEvent.PEER_REFUSED, base) == base
    full = {**base, "mou": "MOU-CA-US-2026", "role": "RESPONDER"}
    assert check_fields(AuditEvent.PEER_REFUSED, full) == full
    for reason in ("no-certificate", "fingerprint-mismatch", "handshake-timeout", "no-peer"):
        check_fields(AuditEvent.PEER_REFUSED, {**base, "reason": reason})
    with pytest.raises(ValueError, match="requires the fields reason"):
        check_fields(AuditEvent.PEER_REFUSED, {"peer": "CA-RCMP"})
    for bad in (
        {**base, "reason": "certificate has expired"},  # free text
        {**base, "reason": "-----BEGIN CERTIFICATE-----"},
        {**base, "fingerprint": "ab" * 16},  # not a field of this kind
        {**base, "session": "ab" * 16},  # no session was started
    ):
        with pytest.raises(ValueError):
            check_fields(AuditEvent.PEER_REFUSED, bad)
