"""Export released records as a STIX 2.1 bundle marked with the standard TLP 2.0 marking
definitions (DESIGN §6; docs/store.md, "STIX 2.1 export").

Mapping: the originator agency is an ``identity`` (``identity_class: organization``); each
released record is an ``identity`` (``identity_class: individual``) created by it, named from the
released name fields, with its TLP 2.0 marking in ``object_marking_refs``. Everything else xlink
knows about the release (ids, the released fields, the caveats, the grading) goes into one
property extension, ``x-xlink-release``, declared by an ``extension-definition`` in the bundle:
STIX 2.1 §7.3 prefers extensions to the deprecated custom objects and ``x_`` properties. Every
id is a UUIDv5 of what it names, and every timestamp is the release's ``created_at``, so one set
of records always exports to the same bytes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Final

from xlink.policy.mou import Tlp
from xlink.release import ReleaseRecord
from xlink.release.policy import grading_to_wire, is_forbidden_field

__all__ = [
    "TLP2_EXTENSION_ID",
    "TLP2_MARKINGS",
    "XLINK_EXTENSION_ID",
    "XLINK_STIX_NAMESPACE",
    "to_stix_bundle",
]

#: The standard TLP 2.0 marking-definition ids and their ``tlp_2_0`` values, as published by
#: the OASIS CTI TC in oasis-open/cti-stix-common-objects,
#: extension-definition-specifications/tlp-2.0/marking-definition.json.
TLP2_MARKINGS: Final[dict[Tlp, tuple[str, str]]] = {
    Tlp.CLEAR: ("marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487", "clear"),
    Tlp.GREEN: ("marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb", "green"),
    Tlp.AMBER: ("marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421", "amber"),
    Tlp.AMBER_STRICT: ("marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003", "amber+strict"),
    Tlp.RED: ("marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1", "red"),
}
#: The OASIS extension that the TLP 2.0 marking definitions use.
TLP2_EXTENSION_ID: Final = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
_TLP2_CREATED: Final = "2022-10-01T00:00:00.000Z"

#: Namespace of every UUIDv5 in an xlink export.
XLINK_STIX_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "urn:xlink:stix:v1")
XLINK_EXTENSION_ID: Final = (
    f"extension-definition--{uuid.uuid5(XLINK_STIX_NAMESPACE, 'x-xlink-release/v1')}"
)
_XLINK_IDENTITY: Final = f"identity--{uuid.uuid5(XLINK_STIX_NAMESPACE, 'xlink')}"
_EXTENSION_CREATED: Final = "2026-01-01T00:00:00.000Z"
_NAME_FIELDS: Final = ("full_name", "given_name", "middle_name", "family_name")


def _stamp(when: datetime) -> str:
    """A STIX timestamp: UTC, millisecond precision, ``Z``."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _id(kind: str, name: str) -> str:
    return f"{kind}--{uuid.uuid5(XLINK_STIX_NAMESPACE, name)}"


def _person_name(record: ReleaseRecord) -> str:
    fields = record.fields
    if "full_name" in fields:
        return fields["full_name"][0]
    parts = [fields[n][0] for n in ("given_name", "middle_name", "family_name") if n in fields]
    return " ".join(parts) or f"xlink release {record.release_id.hex()}"


def _originator(agency_id: str) -> dict[str, object]:
    return {
        "type": "identity",
        "spec_version": "2.1",
        "id": _id("identity", f"agency:{agency_id}"),
        "created": _EXTENSION_CREATED,
        "modified": _EXTENSION_CREATED,
        "name": agency_id,
        "identity_class": "organization",
    }


def _marking(tlp: Tlp) -> dict[str, object]:
    marking_id, value = TLP2_MARKINGS[tlp]
    return {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": marking_id,
        "created": _TLP2_CREATED,
        "name": f"TLP:{tlp.value}",
        "extensions": {
            TLP2_EXTENSION_ID: {"extension_type": "property-extension", "tlp_2_0": value}
        },
    }


def _extension_definition() -> dict[str, object]:
    return {
        "type": "extension-definition",
        "spec_version": "2.1",
        "id": XLINK_EXTENSION_ID,
        "created_by_ref": _XLINK_IDENTITY,
        "created": _EXTENSION_CREATED,
        "modified": _EXTENSION_CREATED,
        "name": "x-xlink-release",
        "description": "A record released under an xlink MOU: release and session ids, the "
        "released fields, the MOU caveats (TLP 2.0, IEP 2.0, handling code, originator "
        "control, retention) and the source grading. See xlink docs/store.md.",
        "schema": "https://xlink.invalid/schemas/x-xlink-release-v1.json",
        "version": "1.0.0",
        "extension_types": ["property-extension"],
    }


def _xlink_identity() -> dict[str, object]:
    return {
        "type": "identity",
        "spec_version": "2.1",
        "id": _XLINK_IDENTITY,
        "created": _EXTENSION_CREATED,
        "modified": _EXTENSION_CREATED,
        "name": "xlink",
        "identity_class": "system",
    }


def _person(record: ReleaseRecord) -> dict[str, object]:
    if any(is_forbidden_field(name) for name in record.fields):
        raise ValueError("a release holds a source field: refusing to export it")
    c = record.caveats
    grading = None if record.grading is None else "/".join(grading_to_wire(record.grading))
    created = _stamp(record.created_at)
    return {
        "type": "identity",
        "spec_version": "2.1",
        "id": _id("identity", f"release:{record.release_id.hex()}"),
        "created_by_ref": _id("identity", f"agency:{record.originator}"),
        "created": created,
        "modified": created,
        "name": _person_name(record),
        "identity_class": "individual",
        "object_marking_refs": [TLP2_MARKINGS[c.tlp][0]],
        "extensions": {
            XLINK_EXTENSION_ID: {
                "extension_type": "property-extension",
                "release_id": record.release_id.hex(),
                "session_id": record.session_id.hex(),
                "mou_id": record.mou_id,
                "originator": record.originator,
                "recipient": record.recipient,
                "category": record.category.value,
                "fields": {name: list(values) for name, values in record.fields.items()},
                "grading": grading,
                "source_handle": record.source_handle.hex(),
                "caveats": {
                    "tlp": c.tlp.value,
                    "permitted_actions": c.permitted_actions.value,
                    "provider_attribution": c.provider_attribution,
                    "affected_party_notifications": c.affected_party_notifications,
                    "unmodified_resale": c.unmodified_resale,
                    "encrypt_at_rest": c.encrypt_at_rest,
                    "handling_code": c.handling_code.value,
                    "handling_conditions": c.handling_conditions,
                    "originator_control": c.originator_control,
                    "retention_days": c.retention_days,
                },
            }
        },
    }


def to_stix_bundle(records: Iterable[ReleaseRecord]) -> dict[str, object]:
    """A STIX 2.1 bundle of ``records`` (as :meth:`~xlink.store.ReleaseStore.read` returns
    them): the TLP 2.0 marking definitions used, the xlink extension definition, one
    ``identity`` per originator and one ``individual`` per record, in a fixed order (markings
    by TLP, then originators and records sorted by id). The bundle id is a UUIDv5 of the
    sorted release ids: the same records always give the same bundle.

    Raises ``ValueError`` if two records share a release id, or if a record holds a source
    field (none can: :func:`~xlink.release.open_release` refuses them; this is a second
    check on the way out).
    """
    ordered = sorted(records, key=lambda r: r.release_id)
    ids = [r.release_id.hex() for r in ordered]
    if len(set(ids)) != len(ids):
        raise ValueError("two records share a release id")
    people = [_person(r) for r in ordered]
    tlps = {r.caveats.tlp for r in ordered}
    markings = [_marking(t) for t in Tlp if t in tlps]
    originators = sorted(
        (_originator(a) for a in {r.originator for r in ordered}), key=lambda o: str(o["id"])
    )
    people.sort(key=lambda p: str(p["id"]))
    objects: list[dict[str, object]] = [
        *markings,
        _xlink_identity(),
        _extension_definition(),
        *originators,
        *people,
    ]
    return {
        "type": "bundle",
        "id": _id("bundle", "releases:" + ",".join(ids)),
        "objects": objects,
    }
