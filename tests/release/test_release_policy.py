"""decide_release: the tearline. Property: nothing outside the MOU ever gets out."""

from __future__ import annotations

import pytest
from _release_support import CA, MOU, US, mous, person, records
from hypothesis import given, settings

from xlink.errors import PolicyDenied
from xlink.policy import FORBIDDEN_FIELDS, Mou
from xlink.records.model import Category, PersonRecord
from xlink.release import decide_release, record_fields
from xlink.release.policy import is_forbidden_field


@settings(max_examples=300, deadline=None)
@given(record=records(), mou=mous())
def test_nothing_outside_the_mou_is_ever_released(record: PersonRecord, mou: Mou) -> None:
    policy = mou.policy_for(record.category)
    grading = record.source.grading if record.source is not None else None
    try:
        content = decide_release(record, mou, originator=CA)
    except PolicyDenied as exc:
        if policy is None:
            assert exc.reasons == ("category-not-allowed",)
        else:
            assert exc.reasons == ("grading-missing",)
            assert policy.caveats.require_grading and grading is None
        return
    assert policy is not None, "a category the MOU forbids was released"
    allowed = set(policy.releasable_fields)
    assert set(content.fields) <= allowed
    assert not any(is_forbidden_field(name) for name in content.fields)
    assert not any(name.removeprefix("payload.") in FORBIDDEN_FIELDS for name in content.fields)
    # Exactly the allowed fields the record holds, with their values.
    expected = {k: v for k, v in record_fields(record).items() if k in allowed}
    expected = {k: v for k, v in expected.items() if not is_forbidden_field(k)}
    assert dict(content.fields) == expected
    # The source never appears: not as a field, not inside a value.
    assert not any("SRC#" in v for values in content.fields.values() for v in values)
    assert content.record_id == record.record_id
    assert content.caveats == policy.caveats
    assert content.grading == (grading if policy.caveats.require_grading else None)


def test_sample_watchlist_tearline() -> None:
    content = decide_release(person(), MOU, originator=CA)
    assert dict(content.fields) == {
        "aliases": ("Greg Dabrowski",),
        "birth_date": ("1978-04-18",),
        "documents": ("P|AB123456|CAN|2031-01-01",),
        "family_name": ("Dąbrowski",),
        "given_name": ("Grzegorz",),
        "nationalities": ("CAN",),
        "payload.risk_level": ("High",),
    }
    assert content.grading is not None and content.caveats.tlp.value == "AMBER"
    assert "RCMP" not in repr(content) and "Grzegorz" not in repr(content)


def test_sex_offender_category_carries_other_fields_and_caveats() -> None:
    content = decide_release(person(category=Category.SEX_OFFENDER), MOU, originator=CA)
    assert set(content.fields) == {"birth_date", "family_name", "given_name", "payload.offence"}
    assert content.caveats.tlp.value == "AMBER+STRICT"
    assert content.caveats.handling_code.value == "C" and content.caveats.handling_conditions


def test_category_not_allowed_and_grading_missing() -> None:
    with pytest.raises(PolicyDenied) as exc:
        decide_release(person(category=Category.OTHER), MOU, originator=CA)
    assert exc.value.reasons == ("category-not-allowed",)
    with pytest.raises(PolicyDenied) as exc:
        decide_release(person(grading=None), MOU, originator=CA)
    assert exc.value.reasons == ("grading-missing",)
    with pytest.raises(PolicyDenied) as exc:
        decide_release(person(), MOU, originator="XX-NOBODY")
    assert exc.value.reasons == ("not-a-party",)


def test_grading_left_out_when_not_required() -> None:
    content = decide_release(person(category=Category.TRAVELLER), MOU, originator=US)
    assert content.grading is None
