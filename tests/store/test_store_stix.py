"""STIX 2.1 export: structure, the standard TLP 2.0 marking ids, reproducible ids and no
source ids (issue 4 item 4); no null, empty or misnamed property anywhere (the validator
itself runs in test_stix_validator.py)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator

import pytest
from _store_support import make_record

from xlink.records.model import AdmiraltyGrading, Category
from xlink.release import ReleaseRecord
from xlink.store import XLINK_EXTENSION_ID, to_stix_bundle

# Copied by hand from oasis-open/cti-stix-common-objects,
# extension-definition-specifications/tlp-2.0/marking-definition.json (not from xlink).
AMBER = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"
AMBER_STRICT = "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003"
STIX_ID = re.compile(r"[a-z0-9-]+--[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def _records() -> list[object]:
    return [make_record(1), make_record(2, category=Category.SEX_OFFENDER), make_record(3)]


def test_bundle_structure_and_markings() -> None:
    records = _records()
    bundle = to_stix_bundle(records)  # type: ignore[arg-type]
    assert bundle["type"] == "bundle" and STIX_ID.fullmatch(str(bundle["id"]))
    objects = bundle["objects"]
    assert isinstance(objects, list)
    by_type: dict[str, list[dict[str, object]]] = {}
    for obj in objects:
        assert STIX_ID.fullmatch(obj["id"]) and obj["id"].startswith(obj["type"] + "--")
        assert obj["spec_version"] == "2.1"
        assert STAMP.fullmatch(obj["created"])
        by_type.setdefault(obj["type"], []).append(obj)
    markings = {m["id"]: m for m in by_type["marking-definition"]}
    assert set(markings) == {AMBER, AMBER_STRICT}
    assert markings[AMBER]["name"] == "TLP:AMBER"
    assert markings[AMBER_STRICT]["name"] == "TLP:AMBER+STRICT"
    people = [i for i in by_type["identity"] if i["identity_class"] == "individual"]
    orgs = [i for i in by_type["identity"] if i["identity_class"] == "organization"]
    assert len(people) == 3 and len(orgs) == 1 and orgs[0]["name"] == "CA-RCMP"
    assert by_type["extension-definition"][0]["id"] == XLINK_EXTENSION_ID
    for person in people:
        ext = person["extensions"][XLINK_EXTENSION_ID]  # type: ignore[index]
        expected = AMBER_STRICT if ext["category"] == "sex_offender" else AMBER
        assert person["object_marking_refs"] == [expected]
        assert person["created_by_ref"] == orgs[0]["id"]
        assert person["name"] == "Grzegorz Dąbrowski"
        # A UUIDv4 derived from the release id (the exact construction and its stability:
        # test_stix_validator.py).
        assert uuid.UUID(person["id"].removeprefix("identity--")).version == 4
    refs = {ref for p in people for ref in p["object_marking_refs"]}  # type: ignore[attr-defined]
    assert refs <= set(markings)


def test_export_is_deterministic_and_order_free() -> None:
    records = _records()
    one = json.dumps(to_stix_bundle(records), sort_keys=True)  # type: ignore[arg-type]
    two = json.dumps(to_stix_bundle(list(reversed(records))), sort_keys=True)  # type: ignore[arg-type]
    assert one == two
    other = json.dumps(to_stix_bundle(records[:2]), sort_keys=True)  # type: ignore[arg-type]
    assert json.loads(other)["id"] != json.loads(one)["id"]


def test_no_source_id_is_ever_exported() -> None:
    records = _records()
    text = json.dumps(to_stix_bundle(records))  # type: ignore[arg-type]
    assert "RCMP-SRC-0001" not in text and "source_id" not in text
    assert "secret remark" not in text  # a payload column the MOU does not release
    bad = make_record(fields={"family_name": ("X",), "payload.source_ref": ("S-1",)})
    with pytest.raises(ValueError, match="source field"):
        to_stix_bundle([bad])
    with pytest.raises(ValueError, match="share a release id"):
        to_stix_bundle([records[0], records[0]])  # type: ignore[list-item]


# STIX 2.1: dictionary keys ("Dictionary") and custom property names.
DICT_KEY = re.compile(r"[A-Za-z0-9_-]{1,250}")
PROPERTY = re.compile(r"[a-z0-9_]{3,250}")


def _walk(value: object, where: str) -> Iterator[tuple[str, object]]:
    yield where, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, f"{where}[{i}]")


def _records_of_every_shape() -> list[ReleaseRecord]:
    return [
        make_record(1),
        make_record(2, category=Category.SEX_OFFENDER),
        make_record(3, category=Category.TRAVELLER, grading=None),
        make_record(4, grading=AdmiraltyGrading("B", 2)),
        make_record(5, grading=None, fields={"payload.risk_level": ("High",)}),
    ]


def test_no_null_or_empty_value_and_valid_names_everywhere() -> None:
    bundle = to_stix_bundle(_records_of_every_shape())
    for where, value in _walk(bundle, "bundle"):
        assert value is not None, where
        assert value != [] and value != {}, where  # STIX 2.1: omit instead
        assert value != "", where
    for person in bundle["objects"]:  # type: ignore[attr-defined]
        if XLINK_EXTENSION_ID not in person.get("extensions", {}):
            continue
        ext = person["extensions"][XLINK_EXTENSION_ID]
        for key in [*ext, *ext["caveats"]]:
            assert PROPERTY.fullmatch(key), key
        for name in ("fields", "payload"):  # xlink's dictionary-valued properties
            for key in ext.get(name, {}):
                assert DICT_KEY.fullmatch(key), key


def test_absent_values_are_omitted() -> None:
    people = {
        p["extensions"][XLINK_EXTENSION_ID]["release_id"]: p["extensions"][XLINK_EXTENSION_ID]
        for p in to_stix_bundle(_records_of_every_shape())["objects"]  # type: ignore[attr-defined]
        if p["type"] == "identity" and p["identity_class"] == "individual"
    }
    by_n = {n: people[make_record(n).release_id.hex()] for n in range(1, 6)}
    assert by_n[1]["grading"] == "3x5x2/2A"
    assert by_n[4]["grading"] == "admiralty/B2"
    assert "grading" not in by_n[3] and "grading" not in by_n[5]
    # Released fields: record fields in ``fields``, payload fields in ``payload`` (no "." key).
    assert by_n[1]["fields"]["family_name"] == ["Dąbrowski"]
    assert by_n[1]["payload"] == {"risk_level": ["High"]}
    assert "fields" not in by_n[5] and by_n[5]["payload"] == {"risk_level": ["High"]}
    assert "payload" not in by_n[3]
    # Handling conditions come with code C only.
    assert by_n[2]["caveats"]["handling_code"] == "C" and by_n[2]["caveats"]["handling_conditions"]
    assert by_n[1]["caveats"]["handling_code"] == "P"
    assert "handling_conditions" not in by_n[1]["caveats"]


def test_nameless_record_and_unexportable_field_name() -> None:
    nameless = make_record(5, fields={"payload.risk_level": ("High",)})
    (person,) = [
        o
        for o in to_stix_bundle([nameless])["objects"]  # type: ignore[attr-defined]
        if o.get("identity_class") == "individual"
    ]
    assert person["name"] == f"xlink release {nameless.release_id.hex()}"
    bad = make_record(fields={"family_name": ("X",), "payload.risk level": ("High",)})
    with pytest.raises(ValueError, match="dictionary key"):
        to_stix_bundle([bad])
