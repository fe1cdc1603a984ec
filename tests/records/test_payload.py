"""A record's payload: an immutable mapping that shares its keys between records."""

from __future__ import annotations

import copy
import pickle
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xlink.records.model import Category, Payload, PersonName, PersonRecord


def _record(payload: dict[str, str], rid: str = "CA-1") -> PersonRecord:
    return PersonRecord(
        record_id=rid, category=Category.WATCHLIST, name=PersonName(family="X"), payload=payload
    )


@given(st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=6))
def test_a_payload_reads_like_the_dict_it_was_made_from(fields: dict[str, str]) -> None:
    payload = _record(fields).payload
    assert payload == fields
    assert dict(payload) == fields
    assert list(payload) == list(fields)  # the file's column order
    assert len(payload) == len(fields)
    for key, value in fields.items():
        assert payload[key] == value
        assert key in payload
    assert "\x00not a key" not in payload or "\x00not a key" in fields
    assert pickle.loads(pickle.dumps(payload)) == payload
    assert copy.deepcopy(payload) == payload


def test_a_payload_cannot_be_changed() -> None:
    payload = _record({"Offence": "Fraud"}).payload
    with pytest.raises(TypeError):
        payload["Offence"] = "Other"  # type: ignore[index]
    with pytest.raises(AttributeError):
        payload._values = ("Other",)  # type: ignore[misc]
    with pytest.raises(KeyError):
        payload["Remarks"]


def test_records_with_the_same_columns_share_the_keys_and_hold_only_their_values() -> None:
    a = _record({"Offence": "Fraud", "Remarks": "x"}, "CA-1").payload
    b = _record({"Offence": "Theft", "Remarks": "y"}, "CA-2").payload
    assert isinstance(a, Payload) and isinstance(b, Payload)
    assert a._index is b._index
    # A dict per record (what a mapping proxy wraps) costs more than the payload and its values.
    per_record = sys.getsizeof(a) + sys.getsizeof(a._values)
    assert per_record < sys.getsizeof({"Offence": "Fraud", "Remarks": "x"})
    assert _record({}).payload is _record({}, "CA-2").payload


def test_a_payload_repr_names_the_columns_never_the_values() -> None:
    payload = _record({"Remarks": "seen with Dmitriy Ivanov in Lviv"}).payload
    assert "Remarks" in repr(payload)
    assert "Dmitriy" not in repr(payload) and "Lviv" not in repr(payload)
