"""Onward sharing: refused without the originator's valid consent token under originator
control, and never for TLP:RED or TLP:AMBER+STRICT; every decision audited (issue 4 item 4)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from _officers import READER, STRANGER, act
from _store_support import (
    AUDIT_KEY,
    CA,
    DAY,
    MOU,
    OTHER_SIGNING,
    SESSION,
    SIGNING,
    T0,
    US,
    entries_of,
    make_record,
    mou_with_caveats,
    open_store,
    red_mou,
    seal,
)
from hypothesis import example, given, settings
from hypothesis import strategies as st

from xlink.audit import AuditEvent, AuditLog, verify_log
from xlink.errors import PolicyDenied
from xlink.officers import OfficerAct, OfficerAction
from xlink.policy import Mou, PermittedAction, Tlp
from xlink.records.model import Category
from xlink.release import ReleaseRecord, ReleaseRejected
from xlink.release.codec import lp, pack
from xlink.store import (
    DENY_CONSENT_EXPIRED,
    DENY_CONSENT_INVALID,
    DENY_CONSENT_MISMATCH,
    DENY_CONSENT_REQUIRED,
    DENY_NOT_A_THIRD_PARTY,
    DENY_PERMITTED_ACTIONS,
    DENY_PURPOSE_NOT_ALLOWED,
    DENY_TLP,
    DENY_UNKNOWN_RELEASE,
    DST_CONSENT,
    ConsentToken,
    issue_consent,
    verify_consent,
)

THIRD = "GB-NCA"


def _consent(
    record: ReleaseRecord,
    *,
    mou: Mou = MOU,
    third_party: str = THIRD,
    purpose: str = "border-security",
    expires_at: datetime = T0 + 30 * DAY,
) -> ConsentToken:
    return issue_consent(
        record,
        mou=mou,
        third_party=third_party,
        purpose=purpose,
        expires_at=expires_at,
        signing_key=SIGNING[CA],
        now=T0,
    )


def _share(
    tmp_path: Path,
    record: ReleaseRecord,
    consent: ConsentToken | None,
    *,
    mou: Mou = MOU,
    third_party: str = THIRD,
    now: datetime = T0 + DAY,
) -> tuple[ReleaseRecord | PolicyDenied, list[dict[str, object]]]:
    """Store ``record`` at US, try to share it; return the outcome and the onward audit."""
    with AuditLog.open(tmp_path / "audit.db", signing_key=AUDIT_KEY) as audit:
        with open_store(tmp_path / "store.db", mou=mou, audit=audit) as store:
            store.receive(seal(record, mou=mou), expected_session_id=SESSION, now=T0)
            outcome: ReleaseRecord | PolicyDenied
            try:
                outcome = store.share_onward(
                    record.release_id,
                    third_party=third_party,
                    consent=consent,
                    act=_share_act(record.release_id, third_party, now),
                    now=now,
                )
            except PolicyDenied as exc:
                outcome = exc
        onward = [
            {"kind": e.kind.name, **e.fields}
            for e in audit.entries()
            if e.kind in (AuditEvent.ONWARD_SHARED, AuditEvent.ONWARD_DENIED)
        ]
    assert verify_log(tmp_path / "audit.db", AUDIT_KEY.verify_key).ok
    return outcome, onward


def _share_act(release_id: bytes, third_party: str, now: datetime) -> OfficerAct:
    return act(
        READER, OfficerAction.SHARE, agency=US, target=release_id, now=now, detail=third_party
    )


def _denied(outcome: object, reason: str, onward: list[dict[str, object]]) -> None:
    assert isinstance(outcome, PolicyDenied), outcome
    assert list(outcome.reasons) == [reason]
    assert len(onward) == 1 and onward[0]["kind"] == "ONWARD_DENIED"
    assert onward[0]["reason"] == reason and onward[0]["peer"] == THIRD


def test_a_valid_consent_token_allows_sharing(tmp_path: Path) -> None:
    record = make_record()
    outcome, onward = _share(tmp_path, record, _consent(record))
    assert isinstance(outcome, ReleaseRecord) and outcome.release_id == record.release_id
    assert onward == [
        {
            "kind": "ONWARD_SHARED",
            "handle": record.release_id.hex(),
            "session": SESSION.hex(),
            "peer": THIRD,
            "purpose": "border-security",
            "reader": READER.fingerprint,
            "officer_sig": _share_act(record.release_id, THIRD, T0 + DAY).signature.hex(),
        }
    ]


def test_without_a_token_originator_control_refuses(tmp_path: Path) -> None:
    assert MOU.categories[0].caveats.originator_control
    outcome, onward = _share(tmp_path, make_record(), None)
    _denied(outcome, DENY_CONSENT_REQUIRED, onward)


def test_a_token_not_signed_by_the_originator_is_refused(tmp_path: Path) -> None:
    record = make_record()
    good = _consent(record)
    forged = ConsentToken(
        good.release_id,
        good.mou_id,
        good.third_party,
        good.purpose,
        good.expires_at,
        OTHER_SIGNING.sign(b"anything"),
    )
    outcome, onward = _share(tmp_path, record, forged)
    _denied(outcome, DENY_CONSENT_INVALID, onward)


def test_a_token_altered_after_signing_is_refused(tmp_path: Path) -> None:
    record = make_record()
    good = _consent(record)
    stretched = ConsentToken(
        good.release_id, good.mou_id, good.third_party, good.purpose, T0 + 999 * DAY, good.signature
    )
    outcome, onward = _share(tmp_path, record, stretched)
    _denied(outcome, DENY_CONSENT_INVALID, onward)


def test_an_expired_token_is_refused(tmp_path: Path) -> None:
    record = make_record()
    consent = _consent(record, expires_at=T0 + 2 * DAY)
    outcome, onward = _share(tmp_path, record, consent, now=T0 + 2 * DAY)
    _denied(outcome, DENY_CONSENT_EXPIRED, onward)


def test_a_token_for_another_party_is_refused(tmp_path: Path) -> None:
    record = make_record()
    outcome, onward = _share(tmp_path, record, _consent(record, third_party="AU-AFP"))
    _denied(outcome, DENY_CONSENT_MISMATCH, onward)


def test_a_token_for_another_release_is_refused(tmp_path: Path) -> None:
    outcome, onward = _share(tmp_path, make_record(1), _consent(make_record(2)))
    _denied(outcome, DENY_CONSENT_MISMATCH, onward)


@pytest.mark.parametrize("tlp", [Tlp.RED, Tlp.AMBER_STRICT])
def test_red_and_amber_strict_never_leave_even_with_consent(tmp_path: Path, tlp: Tlp) -> None:
    mou = red_mou() if tlp is Tlp.RED else mou_with_caveats(Category.WATCHLIST, tlp=tlp)
    record = make_record(mou=mou)
    assert record.caveats.tlp is tlp
    outcome, onward = _share(tmp_path, record, _consent(record, mou=mou), mou=mou)
    _denied(outcome, DENY_TLP, onward)


def test_the_sample_sex_offender_category_is_amber_strict_and_never_shared(tmp_path: Path) -> None:
    record = make_record(category=Category.SEX_OFFENDER)
    consent = _consent(record, purpose="child-protection")
    outcome, onward = _share(tmp_path, record, consent)
    _denied(outcome, DENY_TLP, onward)


def test_iep_permitted_actions_none_forbids_sharing(tmp_path: Path) -> None:
    mou = mou_with_caveats(Category.WATCHLIST, permitted_actions=PermittedAction.NONE)
    record = make_record(mou=mou)
    outcome, onward = _share(tmp_path, record, _consent(record, mou=mou), mou=mou)
    _denied(outcome, DENY_PERMITTED_ACTIONS, onward)


def test_green_without_originator_control_needs_no_token(tmp_path: Path) -> None:
    mou = mou_with_caveats(
        Category.WATCHLIST,
        tlp=Tlp.GREEN,
        originator_control=False,
        permitted_actions=PermittedAction.INTERNALLY_VISIBLE,
    )
    record = make_record(mou=mou)
    outcome, onward = _share(tmp_path, record, None, mou=mou)
    assert isinstance(outcome, ReleaseRecord)
    assert onward[0]["kind"] == "ONWARD_SHARED" and "purpose" not in onward[0]


def test_amber_needs_a_token_even_without_originator_control(tmp_path: Path) -> None:
    mou = mou_with_caveats(
        Category.WATCHLIST,
        originator_control=False,
        permitted_actions=PermittedAction.INTERNALLY_VISIBLE,
    )
    outcome, onward = _share(tmp_path, make_record(mou=mou), None, mou=mou)
    _denied(outcome, DENY_CONSENT_REQUIRED, onward)


def test_sharing_with_an_mou_party_is_not_onward_sharing(tmp_path: Path) -> None:
    record = make_record()
    outcome, onward = _share(tmp_path, record, None, third_party=CA)
    assert isinstance(outcome, PolicyDenied) and outcome.reasons == (DENY_NOT_A_THIRD_PARTY,)
    assert onward[0]["peer"] == CA


def test_unknown_and_expired_records_are_not_shared(tmp_path: Path) -> None:
    record = make_record()
    outcome, _ = _share(tmp_path, record, _consent(record), now=T0 + 365 * DAY)
    assert isinstance(outcome, PolicyDenied) and outcome.reasons == ("retention-expired",)
    late = T0 + 365 * DAY  # not before what the audit log has seen
    unknown = make_record(7).release_id
    with open_store(tmp_path / "store.db") as store, pytest.raises(PolicyDenied) as exc:
        store.share_onward(
            unknown,
            third_party=THIRD,
            consent=None,
            act=_share_act(unknown, THIRD, late),
            now=late,
        )
    assert exc.value.reasons == (DENY_UNKNOWN_RELEASE,)
    with open_store(tmp_path / "store.db") as store, pytest.raises(ValueError):
        store.share_onward(
            record.release_id,
            third_party="GB NCA",
            consent=None,
            act=_share_act(record.release_id, THIRD, late),
            now=late,
        )


def test_an_onward_share_needs_an_enrolled_readers_act(tmp_path: Path) -> None:
    record = make_record()
    with open_store(tmp_path / "store.db") as store:
        store.receive(seal(record), expected_session_id=SESSION, now=T0)
        stranger = act(
            STRANGER, OfficerAction.SHARE, agency=US, target=record.release_id, now=T0,
            detail=THIRD,
        )  # fmt: skip
        with pytest.raises(PolicyDenied, match="officer-not-enrolled"):
            store.share_onward(
                record.release_id, third_party=THIRD, consent=None, act=stranger, now=T0
            )
        other_party = _share_act(record.release_id, "AU-AFP", T0)
        with pytest.raises(PolicyDenied, match="officer-act-mismatch"):
            store.share_onward(
                record.release_id, third_party=THIRD, consent=None, act=other_party, now=T0
            )


def test_consent_tokens_round_trip_and_reject_garbage() -> None:
    token = _consent(make_record())
    assert ConsentToken.from_bytes(token.to_bytes()) == token
    for bad in (b"", token.to_bytes()[:-1], token.to_bytes() + b"\x00", b"\x02" + b"x" * 10):
        with pytest.raises(ReleaseRejected):
            ConsentToken.from_bytes(bad)


_LAST_US = (datetime.max.replace(tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(
    microseconds=1
)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**64 - 1))
@example(_LAST_US + 1).via("past year 9999 (issue 11: an OverflowError)")
@example(2**63 - 1).via("the largest time the wire allows")
def test_consent_tokens_of_any_time_raise_only_xlink_errors(micros: int) -> None:
    """The originator signs whatever expiry it likes: a token parses when a ``datetime`` can
    hold the time and is otherwise ``malformed``, never an OverflowError."""
    record = make_record()
    token = _consent(record)
    body = pack([token.release_id, token.mou_id, token.third_party, token.purpose, micros])
    data = pack([body, SIGNING[CA].sign(hashlib.sha256(lp(DST_CONSENT) + body).digest())])
    if micros > _LAST_US:
        with pytest.raises(ReleaseRejected) as exc:
            ConsentToken.from_bytes(data)
        assert exc.value.reason == "malformed"
        return
    parsed = ConsentToken.from_bytes(data)
    assert parsed.expires_at == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
    try:
        verify_consent(parsed, record, mou=MOU, third_party=THIRD, now=T0)
    except PolicyDenied as denied:
        assert denied.reasons == (DENY_CONSENT_EXPIRED,)


def test_issue_consent_checks_its_inputs() -> None:
    record = make_record()
    with pytest.raises(PolicyDenied, match=DENY_PURPOSE_NOT_ALLOWED):
        _consent(record, purpose="marketing")
    with pytest.raises(PolicyDenied, match=DENY_NOT_A_THIRD_PARTY):
        _consent(record, third_party=US)
    with pytest.raises(ValueError, match="after now"):
        _consent(record, expires_at=T0)
    with pytest.raises(ValueError, match="originator"):
        issue_consent(
            record,
            mou=MOU,
            third_party=THIRD,
            purpose="border-security",
            expires_at=T0 + DAY,
            signing_key=SIGNING[US],
            now=T0,
        )


def test_issuing_consent_is_audited_at_the_originator(tmp_path: Path) -> None:
    record = make_record()
    with AuditLog.open(tmp_path / "ca-audit.db", signing_key=SIGNING[CA]) as audit:
        issue_consent(
            record,
            mou=MOU,
            third_party=THIRD,
            purpose="border-security",
            expires_at=T0 + DAY,
            signing_key=SIGNING[CA],
            now=T0,
            audit=audit,
        )
        (entry,) = entries_of(audit, AuditEvent.CONSENT_ISSUED)
    assert entry.fields["peer"] == THIRD and entry.fields["handle"] == record.release_id.hex()
