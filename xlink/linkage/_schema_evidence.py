"""The ``evidence`` member of a linkage schema (:mod:`xlink.linkage.schema`): which fields
hold which kind of evidence for ``min_evidence_groups``, how the member is checked, and what
each key of a schema holds under it."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from xlink.linkage.fields import (
    IDENTIFYING_GROUPS,
    NEVER_EVIDENCE,
    V6_EVIDENCE_FIELDS,
    EvidenceFields,
    Field,
    FieldGroup,
    evidence_of,
)

if TYPE_CHECKING:
    from xlink.linkage.schema import KeyRecipe

__all__ = ["EvidenceMember", "check_evidence", "evidence_table", "key_evidence_of"]

#: A schema's ``evidence`` member as it is held: each kind of evidence with its fields, both in
#: name order (hashable, so that a schema stays a value).
EvidenceMember = tuple[tuple[FieldGroup, tuple[Field, ...]], ...]


def evidence_table(member: EvidenceMember | None) -> EvidenceFields:
    """The table a schema's ``evidence`` member gives (version 6's without one)."""
    if member is None:
        return V6_EVIDENCE_FIELDS
    return MappingProxyType({group: frozenset(fields) for group, fields in member})


@functools.lru_cache(maxsize=64)
def key_evidence_of(
    keys: tuple[KeyRecipe, ...], member: EvidenceMember | None
) -> Mapping[str, frozenset[FieldGroup]]:
    """:meth:`LinkageSchema.key_evidence`, worked out once per key set (deciding asks it once
    per pattern, the query holder once per hit)."""
    table = evidence_table(member)
    return MappingProxyType({k.name: evidence_of(k.fields, k.transforms, table) for k in keys})


def check_evidence(raw: object, counted: bool, errors: list[str]) -> EvidenceMember | None:
    """The ``evidence`` member: an object from kinds of evidence (``name``, ``birth``,
    ``address``, ``document``) to lists of fields of that group; only beside
    ``min_evidence_groups``."""
    if raw is None:
        return None
    kinds = {g.value: g for g in IDENTIFYING_GROUPS}
    if not counted:
        errors.append("evidence: only with min_evidence_groups")
    if not isinstance(raw, Mapping):
        errors.append(f"evidence: must be an object from {sorted(kinds)} to lists of fields")
        return None
    member: list[tuple[FieldGroup, tuple[Field, ...]]] = []
    for kind in sorted(raw, key=str):
        group = kinds.get(kind) if isinstance(kind, str) else None
        listed = raw[kind]
        if group is None:
            errors.append(f"evidence: unknown kind {kind!r} (one of {sorted(kinds)})")
            continue
        if not isinstance(listed, list) or not all(isinstance(f, str) for f in listed):
            errors.append(f"evidence.{kind}: must be a list of field names")
            continue
        if not listed:
            errors.append(f"evidence.{kind}: an empty list (leave the kind out)")
            continue
        fields: set[Field] = set()
        for name in listed:
            try:
                field = Field(name)
            except ValueError:
                errors.append(f"evidence.{kind}: unknown field {name!r}")
                continue
            if field.group is not group:
                errors.append(f"evidence.{kind}: {name!r} is not a field of the {kind} group")
                continue
            if field in NEVER_EVIDENCE:
                errors.append(f"evidence.{kind}: {name!r} holds no evidence (a few guesses)")
                continue
            if field in fields:
                errors.append(f"evidence.{kind}: {name!r} listed twice")
            fields.add(field)
        member.append((group, tuple(sorted(fields, key=lambda f: f.value))))
    return tuple(member)
