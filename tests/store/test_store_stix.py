"""STIX 2.1 export: structure, the standard TLP 2.0 marking ids, reproducible ids and no
source ids (issue 4 item 4)."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from _store_support import make_record

from xlink.records.model import Category
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
        assert person["id"] == "identity--" + str(
            uuid.uuid5(
                uuid.uuid5(uuid.NAMESPACE_URL, "urn:xlink:stix:v1"), "release:" + ext["release_id"]
            )
        )
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
