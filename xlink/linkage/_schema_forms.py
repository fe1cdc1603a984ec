"""A linkage schema's other forms: the JSON-ready document that
:func:`~xlink.linkage.schema.validate_schema` reads back
(:func:`schema_to_document`), and the canonical object and digest both parties compare in the
handshake (:func:`schema_to_canonical`, :func:`schema_digest`). Re-exported by
:mod:`xlink.linkage.schema`, their home for callers."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xlink.linkage.schema import LinkageSchema

__all__ = ["SCHEMA_DIGEST_DST", "schema_digest", "schema_to_canonical", "schema_to_document"]

#: Domain label prefixed to the canonical encoding hashed by :func:`schema_digest`.
SCHEMA_DIGEST_DST = b"xlink/v1/linkage-schema"


def schema_to_document(schema: LinkageSchema) -> dict[str, object]:
    """``schema`` as a JSON-ready document that :func:`validate_schema` reads back to an equal
    schema: members at their defaults are left out, descriptions are kept."""
    keys: list[dict[str, object]] = []
    for k in schema.keys:
        key: dict[str, object] = {"name": k.name, "version": k.version}
        if k.description:
            key["description"] = k.description
        key["fields"] = [f.value for f in k.fields]
        pairs = zip(k.fields, k.transforms, strict=True)
        chains = {f.value: [str(t) for t in chain] for f, chain in pairs if chain}
        if chains:
            key["transforms"] = {f: c[0] if len(c) == 1 else c for f, c in chains.items()}
        for member, value, default in (
            ("use_variants", k.use_variants, True),
            ("unordered", k.unordered, False),
        ):
            if value != default:
                key[member] = value
        for member, number in (
            ("m", k.m),
            ("u", k.u),
            ("weight", k.weight),
            ("disagreement_weight", k.disagreement_weight),
        ):
            if number is not None:
                key[member] = number
        keys.append(key)
    doc: dict[str, object] = {"id": schema.id, "version": schema.version}
    if schema.description:
        doc["description"] = schema.description
    for member, number in (
        ("threshold", schema.threshold),
        ("certain_threshold", schema.certain_threshold),
    ):
        if number is not None:
            doc[member] = number
    doc.update(_members_when_set(schema))
    doc["keys"] = keys
    return doc


def _real(value: float | None) -> str | None:
    # C printf "%.17g": round-trips every double and is reproducible outside Python.
    return None if value is None else f"{value:.17g}"


def schema_to_canonical(schema: LinkageSchema) -> dict[str, object]:
    """The canonical object hashed by :func:`schema_digest` (descriptions left out).

    Every member of schema version 1 is present (defaults filled in); transforms are listed for
    every field in field order, identity steps dropped, as their string form; numbers that are
    not integers (``m``, ``u``, ``threshold``) are strings in C ``printf("%.17g")`` form, or
    ``null`` when absent. The members added later (a key's ``weight`` and
    ``disagreement_weight``, the schema's ``certain_threshold``, ``placeholder_names``,
    ``full_birth_dates``, ``min_evidence_groups`` and ``evidence``) appear only when set, so
    that the digest of a schema that does not use them is unchanged: the numbers in the same
    string form, the two flags as ``true``, ``min_evidence_groups`` as a JSON integer,
    ``evidence`` as an object from each kind listed to its field names in name order.
    """
    out: dict[str, object] = {
        "id": schema.id,
        "version": schema.version,
        "threshold": _real(schema.threshold),
        "keys": [
            {
                "name": k.name,
                "version": k.version,
                "fields": [f.value for f in k.fields],
                "transforms": [[str(t) for t in chain] for chain in k.transforms],
                "m": _real(k.m),
                "u": _real(k.u),
                "use_variants": k.use_variants,
                "unordered": k.unordered,
                **({"weight": _real(k.weight)} if k.weight is not None else {}),
                **(
                    {"disagreement_weight": _real(k.disagreement_weight)}
                    if k.disagreement_weight is not None
                    else {}
                ),
            }
            for k in schema.keys
        ],
    }
    if schema.certain_threshold is not None:
        out["certain_threshold"] = _real(schema.certain_threshold)
    out.update(_members_when_set(schema))
    return out


def _members_when_set(schema: LinkageSchema) -> dict[str, object]:
    """The schema-wide members added after version 1 that both forms write only when set (so
    that the digest of a schema without them does not change): the two flags as ``true``,
    ``min_evidence_groups`` as an integer, ``evidence`` as each kind's field names in name
    order."""
    out: dict[str, object] = {}
    if schema.placeholder_names:
        out["placeholder_names"] = True
    if schema.full_birth_dates:
        out["full_birth_dates"] = True
    if schema.min_evidence_groups is not None:
        out["min_evidence_groups"] = schema.min_evidence_groups
    if schema.evidence is not None:
        out["evidence"] = {
            group.value: [f.value for f in fields] for group, fields in schema.evidence
        }
    return out


def schema_digest(schema: LinkageSchema) -> bytes:
    """SHA-256 of the schema, independent of the file format it was read from.

    ``SHA-256(len(L) || L || C)`` where ``L = b"xlink/v1/linkage-schema"``, ``len(L)`` is 4 bytes
    big-endian, and ``C`` is :func:`schema_to_canonical` as JSON with sorted keys, separators
    ``","`` and ``":"`` (no whitespace), non-ASCII kept as UTF-8. Descriptions are not included:
    rewording them does not change how tokens are derived or pairs decided.
    """
    canonical = json.dumps(
        schema_to_canonical(schema), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")
    h = hashlib.sha256()
    h.update(len(SCHEMA_DIGEST_DST).to_bytes(4, "big") + SCHEMA_DIGEST_DST)
    h.update(canonical)
    return h.digest()
