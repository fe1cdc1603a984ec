"""Export released records as a STIX 2.1 bundle marked with the standard TLP 2.0 marking
definitions (DESIGN §6; docs/store.md, "STIX 2.1 export").

Mapping: the originator agency is an ``identity`` (``identity_class: organization``); each
released record is an ``identity`` (``identity_class: individual``) created by it, named from the
released name fields, with its TLP 2.0 marking in ``object_marking_refs``. Everything else xlink
knows about the release (ids, the released fields, the caveats, the grading) goes into one
property extension, ``x-xlink-release``, declared by an ``extension-definition`` in the bundle:
STIX 2.1 §7.3 prefers extensions to the deprecated custom objects and ``x_`` properties.

The bundle passes the OASIS validator (``stix2-validator``) with no error and no warning:

* no property is ever ``null``, an empty list or an empty dictionary (STIX 2.1 forbids all
  three; its "Dictionary" and "List" data types): an absent optional value (no grading, no
  handling conditions, no released payload field) is left out;
* every dictionary key is ``[A-Za-z0-9_-]`` ("Dictionary"), which is why the released payload
  fields go into ``payload`` without their ``payload.`` prefix;
* every id is a UUIDv4 ("Identifier": SDO ids SHOULD be v4) yet stable: see :func:`stix_id`.

Every timestamp is the release's ``created_at`` or a constant, so one set of records always
exports to the same bytes.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Final

from xlink.policy.mou import PAYLOAD_PREFIX, Tlp
from xlink.release import ReleaseRecord
from xlink.release.policy import grading_to_wire, is_forbidden_field

__all__ = [
    "TLP2_EXTENSION_ID",
    "TLP2_MARKINGS",
    "XLINK_EXTENSION_ID",
    "XLINK_STIX_NAMESPACE",
    "stix_id",
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

#: Domain-separation tag of every STIX id xlink derives (:func:`stix_id`). Until xlink's
#: ids became UUIDv4 this name held the UUIDv5 namespace (a ``uuid.UUID``); the tag only
#: changes with the id scheme, since a new one gives every exported object a new id.
XLINK_STIX_NAMESPACE: Final = b"xlink/v1/stix-id"


def _lp(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def stix_id(kind: str, name: str) -> str:
    """The STIX id ``<kind>--<uuid>`` of the object of type ``kind`` that ``name`` names
    (``release:<release id hex>``, ``agency:<agency id>`` ...).

    Two requirements: STIX 2.1 ("Identifier") says SDO ids SHOULD be UUIDv4 (UUIDv5 is for
    cyber-observables, whose ids come from their contents), and a downstream platform dedupes
    on id, so every export of one release must give it the same id. So the uuid is the first
    16 bytes of ``SHA-256(lp(D) || lp(kind) || lp(name))`` (``D`` =
    :data:`XLINK_STIX_NAMESPACE`, ``lp`` = 4-byte big-endian length, then the UTF-8 bytes)
    with the version nibble set to 4 and the variant bits to RFC 9562's: 122 bits from a
    domain-separated hash where a v4 has 122 random bits. It is a well-formed v4 that is a
    pure function of what it names. Nothing secret goes in: the names are in the export.
    """
    digest = hashlib.sha256(
        _lp(XLINK_STIX_NAMESPACE) + _lp(kind.encode()) + _lp(name.encode())
    ).digest()
    return f"{kind}--{uuid.UUID(bytes=digest[:16], version=4)}"


#: The name of the extension's definition, and so of its id: a new major version when the
#: properties the extension carries change incompatibly (v2: ``payload`` split out of
#: ``fields``, absent values omitted rather than ``null``).
_EXTENSION_NAME: Final = "x-xlink-release/v2"
XLINK_EXTENSION_ID: Final = stix_id("extension-definition", _EXTENSION_NAME)
_XLINK_IDENTITY: Final = stix_id("identity", "xlink")
_EXTENSION_CREATED: Final = "2026-01-01T00:00:00.000Z"
_NAME_FIELDS: Final = ("given_name", "middle_name", "family_name")
# STIX 2.1, "Dictionary": keys are ASCII letters, digits, hyphen and underscore, 1-250 long.
_DICT_KEY: Final = re.compile(r"[A-Za-z0-9_-]{1,250}")


def _stamp(when: datetime) -> str:
    """A STIX timestamp: UTC, millisecond precision, ``Z``."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _person_name(record: ReleaseRecord) -> str:
    """``name`` is required and a string, never empty: the first non-blank full name, else the
    name parts, else the release id."""
    fields = record.fields
    full = [v for v in fields.get("full_name", ()) if v.strip()]
    if full:
        return full[0]
    parts = [fields[n][0] for n in _NAME_FIELDS if n in fields and fields[n][0].strip()]
    return " ".join(parts) or f"xlink release {record.release_id.hex()}"


def _originator(agency_id: str) -> dict[str, object]:
    return {
        "type": "identity",
        "spec_version": "2.1",
        "id": stix_id("identity", f"agency:{agency_id}"),
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
        "released record fields and payload fields, the MOU caveats (TLP 2.0, IEP 2.0, "
        "handling code, originator control, retention) and the source grading. Optional "
        "properties are omitted when absent. See xlink docs/store.md.",
        "schema": "https://xlink.invalid/schemas/x-xlink-release-v2.json",
        "version": "2.0.0",
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


def _released(record: ReleaseRecord) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """The released fields as ``fields`` (record fields) and ``payload`` (payload fields,
    without the ``payload.`` prefix, which a STIX dictionary key cannot hold)."""
    fields: dict[str, list[str]] = {}
    payload: dict[str, list[str]] = {}
    for name, values in record.fields.items():
        if is_forbidden_field(name):
            raise ValueError("a release holds a source field: refusing to export it")
        into, key = (
            (payload, name.removeprefix(PAYLOAD_PREFIX))
            if name.startswith(PAYLOAD_PREFIX)
            else (fields, name)
        )
        if not _DICT_KEY.fullmatch(key):
            # open_release never lets one through (MOUs name fields [a-z0-9_.]).
            raise ValueError(f"field name {name!r} cannot be a STIX dictionary key")
        into[key] = list(values)
    return fields, payload


def _person(record: ReleaseRecord) -> dict[str, object]:
    fields, payload = _released(record)
    c = record.caveats
    caveats: dict[str, object] = {
        "tlp": c.tlp.value,
        "permitted_actions": c.permitted_actions.value,
        "provider_attribution": c.provider_attribution,
        "affected_party_notifications": c.affected_party_notifications,
        "unmodified_resale": c.unmodified_resale,
        "encrypt_at_rest": c.encrypt_at_rest,
        "handling_code": c.handling_code.value,
        "originator_control": c.originator_control,
        "retention_days": c.retention_days,
    }
    if c.handling_conditions:  # only handling code C has conditions
        caveats["handling_conditions"] = c.handling_conditions
    release: dict[str, object] = {
        "extension_type": "property-extension",
        "release_id": record.release_id.hex(),
        "session_id": record.session_id.hex(),
        "mou_id": record.mou_id,
        "originator": record.originator,
        "recipient": record.recipient,
        "category": record.category.value,
    }
    # STIX 2.1 forbids null and empty lists or dictionaries: absent values are left out.
    if fields:
        release["fields"] = fields
    if payload:
        release["payload"] = payload
    if record.grading is not None:
        release["grading"] = "/".join(grading_to_wire(record.grading))
    release["source_handle"] = record.source_handle.hex()
    release["caveats"] = caveats
    created = _stamp(record.created_at)
    return {
        "type": "identity",
        "spec_version": "2.1",
        "id": stix_id("identity", f"release:{record.release_id.hex()}"),
        "created_by_ref": stix_id("identity", f"agency:{record.originator}"),
        "created": created,
        "modified": created,
        "name": _person_name(record),
        "identity_class": "individual",
        "object_marking_refs": [TLP2_MARKINGS[c.tlp][0]],
        "extensions": {XLINK_EXTENSION_ID: release},
    }


def to_stix_bundle(records: Iterable[ReleaseRecord]) -> dict[str, object]:
    """A STIX 2.1 bundle of ``records`` (as :meth:`~xlink.store.ReleaseStore.read` returns
    them): the TLP 2.0 marking definitions used, the xlink extension definition, one
    ``identity`` per originator and one ``individual`` per record, in a fixed order (markings
    by TLP, then originators and records sorted by id). Ids come from :func:`stix_id`: a
    record's from its release id, the bundle's from the sorted release ids, so the same
    records always give the same bundle and a release the same id in every bundle.

    Raises ``ValueError`` if two records share a release id, or if a record holds a source
    field (none can: :func:`~xlink.release.open_release` refuses them; this is a second
    check on the way out) or a field name no STIX dictionary key can hold (likewise).
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
        "id": stix_id("bundle", "releases:" + ",".join(ids)),
        "objects": objects,
    }
