"""MOU documents: reading TOML or JSON, writing them back, the canonical form and its digest.

The document format is specified in docs/mou.md §2 and as a JSON Schema in
``protocols/schemas/mou-v1.json``; the canonical form and :func:`mou_digest` in docs/mou.md §4.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Final

from xlink.documents import DocumentError, document_format, read_document
from xlink.documents import parse_document as _parse
from xlink.errors import SchemaError
from xlink.policy._validate import validate_mou, validate_signed_mou
from xlink.policy.mou import MOU_FORMAT, CategoryPolicy, Mou, Party, SignedMou

__all__ = [
    "MOU_DIGEST_DST",
    "dump_mou",
    "load_mou",
    "mou_digest",
    "mou_to_canonical",
    "mou_to_document",
    "parse_document",
    "parse_mou",
    "validate_mou",
    "validate_signed_mou",
]

#: Domain label prefixed (with its length) to the canonical encoding hashed by :func:`mou_digest`.
MOU_DIGEST_DST: Final = b"xlink/v1/mou"


def parse_document(text: str | bytes, fmt: str) -> object:
    """Parse ``text`` as ``fmt`` (``"json"`` or ``"toml"``) without checking its content, with
    the strict rules of :func:`xlink.documents.parse_document` (no member twice, no ``NaN``).

    Raises :class:`~xlink.errors.SchemaError` for an unknown format or a syntax error.
    """
    try:
        return _parse(text, fmt)
    except DocumentError as exc:
        raise SchemaError([exc.reason]) from None


def parse_mou(text: str | bytes, fmt: str) -> SignedMou:
    """Parse and validate an MOU document (with its ``signatures``, if any).

    Raises :class:`~xlink.errors.SchemaError` listing every problem (an unknown ``fmt``
    included). Signatures are not verified here: see
    :func:`~xlink.policy.signing.accept_mou`.
    """
    return validate_signed_mou(parse_document(text, fmt))


def format_of(path: str | Path) -> str:
    """``"json"`` or ``"toml"`` from a file's suffix; :class:`SchemaError` otherwise."""
    try:
        return document_format(path)
    except DocumentError as exc:
        raise SchemaError([exc.reason]) from None


def load_mou(path: str | Path) -> SignedMou:
    """Read a ``.json`` or ``.toml`` MOU file. Raises ``OSError`` if unreadable and
    :class:`~xlink.errors.SchemaError` for another suffix or an invalid document."""
    fmt = format_of(path)
    return parse_mou(read_document(path), fmt)


def canonical_real(value: float) -> str:
    # C printf "%.17g": round-trips every double and is reproducible outside Python.
    return f"{value:.17g}"


def _exchange(mou: Mou) -> dict[str, object]:
    exchange: dict[str, object] = {
        "padding_bucket": mou.padding_bucket,
        "query_quota_per_day": mou.query_quota_per_day,
    }
    if mou.set_size_budget_per_day is not None:  # optional: present only when the MOU sets it
        exchange["set_size_budget_per_day"] = mou.set_size_budget_per_day
    return exchange


def party_to_document(p: Party) -> dict[str, object]:
    """One ``parties[]`` table of the document form."""
    return {
        "agency_id": p.agency_id,
        "name": p.name,
        "country": p.country,
        "verify_key": bytes(p.verify_key).hex(),
        "sealing_key": bytes(p.sealing_key).hex(),
        "tls_cert_sha256": p.tls_cert_sha256.hex(),
        "max_set_size": p.max_set_size,
    }


def category_to_document(c: CategoryPolicy) -> dict[str, object]:
    """One ``categories[]`` table of the document form (``handling_conditions`` always there)."""
    return {
        "category": c.category.value,
        "releasable_fields": list(c.releasable_fields),
        "caveats": {
            "tlp": c.caveats.tlp.value,
            "permitted_actions": c.caveats.permitted_actions.value,
            "provider_attribution": c.caveats.provider_attribution,
            "affected_party_notifications": c.caveats.affected_party_notifications,
            "unmodified_resale": c.caveats.unmodified_resale,
            "encrypt_at_rest": c.caveats.encrypt_at_rest,
            "handling_code": c.caveats.handling_code.value,
            "handling_conditions": c.caveats.handling_conditions,
            "originator_control": c.caveats.originator_control,
            "retention_days": c.caveats.retention_days,
            "require_grading": c.caveats.require_grading,
        },
    }


def _linkage(mou: Mou, threshold: object) -> dict[str, object]:
    out: dict[str, object] = {
        "schema_id": mou.schema_id,
        "schema_version": mou.schema_version,
        "schema_digest": mou.schema_digest.hex(),
        "match_threshold": threshold,
    }
    # optional members, only when not the default: MOUs without them keep their digests
    if mou.weights != "fixed":
        out["weights"] = mou.weights
    if mou.links != "one-to-one":
        out["links"] = mou.links
    return out


def release_document(
    approval_required: bool, follow_up_hours: int, reciprocal: bool
) -> dict[str, object]:
    """The ``release`` table of an MOU or of a multilateral MOU's terms entry; the optional
    ``reciprocal`` only when true, so that MOUs without it keep their digests."""
    out: dict[str, object] = {
        "approval_required": approval_required,
        "follow_up_hours": follow_up_hours,
    }
    if reciprocal:
        out["reciprocal"] = True
    return out


def _document(mou: Mou, threshold: object) -> dict[str, object]:
    return {
        "format": MOU_FORMAT,
        "id": mou.id,
        "version": mou.version,
        "valid_from": mou.valid_from.isoformat(),
        "valid_until": mou.valid_until.isoformat(),
        "legal_basis": mou.legal_basis,
        "purposes": list(mou.purposes),
        "parties": [party_to_document(p) for p in mou.parties],
        "linkage": _linkage(mou, threshold),
        "release": release_document(mou.approval_required, mou.follow_up_hours, mou.reciprocal),
        "exchange": _exchange(mou),
        "categories": [category_to_document(c) for c in mou.categories],
    }


def mou_to_canonical(mou: Mou) -> dict[str, object]:
    """The canonical object hashed by :func:`mou_digest` (docs/mou.md §4).

    It is the JSON document form without ``signatures``: every member present (an empty
    ``handling_conditions`` included; the optional ``exchange.set_size_budget_per_day`` only when
    set, ``linkage.weights`` / ``linkage.links`` only when not ``fixed`` / ``one-to-one``, and
    ``release.reciprocal`` only when true),
    lists in document order, dates as ``YYYY-MM-DD``, keys and
    digests as lower-case hex, ``match_threshold`` as a string in C ``printf("%.17g")`` form.
    """
    return _document(mou, canonical_real(mou.match_threshold))


def mou_digest(mou: Mou) -> bytes:
    """SHA-256 of the MOU, independent of the file format it was read from (docs/mou.md §4).

    ``SHA-256(len(L) || L || C)`` where ``L = b"xlink/v1/mou"``, ``len(L)`` is 4 bytes
    big-endian, and ``C`` is :func:`mou_to_canonical` as JSON with sorted member names,
    separators ``","`` and ``":"`` (no whitespace), non-ASCII kept as UTF-8. Both parties sign
    this digest; the handshake compares it.

    A :class:`Mou` is immutable, so the digest of the last few MOU objects is kept (by
    identity): every release and every release opened checks it.
    """
    kept = _DIGESTS.get(id(mou))
    if kept is not None and kept[0] is mou:
        return kept[1]
    digest = domain_digest(MOU_DIGEST_DST, mou_to_canonical(mou))
    if len(_DIGESTS) >= _DIGESTS_KEPT:
        del _DIGESTS[next(iter(_DIGESTS))]
    _DIGESTS[id(mou)] = (mou, digest)
    return digest


# id(mou) -> (mou, its digest): holding the object keeps its id from being reused.
_DIGESTS: dict[int, tuple[Mou, bytes]] = {}
_DIGESTS_KEPT: Final = 16


def canonical_bytes(canonical: object) -> bytes:
    """``canonical`` as JSON with sorted member names, no whitespace, UTF-8 (docs/mou.md §4)."""
    return json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def domain_digest(dst: bytes, canonical: object) -> bytes:
    """``SHA-256(uint32_be(len(dst)) || dst || canonical_bytes(canonical))``: the digest of an
    MOU (:data:`MOU_DIGEST_DST`) and of a multilateral MOU, each under its own label."""
    h = hashlib.sha256()
    h.update(len(dst).to_bytes(4, "big") + dst)
    h.update(canonical_bytes(canonical))
    return h.digest()


def mou_to_document(mou: Mou | SignedMou) -> dict[str, object]:
    """The JSON document form of an MOU, with its ``signatures`` when given a :class:`SignedMou`.

    :func:`validate_signed_mou` of the result gives back an equal object.
    """
    signed = mou if isinstance(mou, SignedMou) else SignedMou(mou)
    doc = _document(signed.mou, signed.mou.match_threshold)
    if signed.signatures:
        doc["signatures"] = {a: s.hex() for a, s in signed.signatures.items()}
    return doc


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        # A JSON string is a valid TOML basic string: same escapes (\" \\ \n \t \uXXXX ...).
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def toml_table(header: str, table: dict[str, object]) -> list[str]:
    lines = [header] if header else []
    lines += [f"{k} = {toml_value(v)}" for k, v in table.items() if not isinstance(v, dict)]
    return lines


def dump_mou(mou: Mou | SignedMou, fmt: str) -> str:
    """Write an MOU (with its signatures, if any) as a ``"json"`` or ``"toml"`` document that
    :func:`parse_mou` reads back to an equal object. Raises ``ValueError`` for another ``fmt``."""
    doc = mou_to_document(mou)
    if fmt == "json":
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if fmt != "toml":
        raise ValueError("fmt must be 'json' or 'toml'")
    lines = toml_header(doc)
    for section in ("linkage", "release", "exchange"):
        lines += ["", *toml_table(f"[{section}]", as_table(doc[section]))]
    for party in as_list(doc["parties"]):
        lines += ["", *toml_table("[[parties]]", as_table(party))]
    for category in as_list(doc["categories"]):
        cat = as_table(category)
        lines += ["", *toml_table("[[categories]]", cat)]
        lines += toml_table("[categories.caveats]", as_table(cat["caveats"]))
    return "\n".join(lines + toml_signatures(doc)) + "\n"


def toml_header(doc: dict[str, object]) -> list[str]:
    """The top-level lines of an MOU document in TOML: its scalars and ``purposes``."""
    return [
        # valid_from/valid_until as TOML local dates (bare YYYY-MM-DD), not strings.
        f"{k} = {v}" if k in ("valid_from", "valid_until") else f"{k} = {toml_value(v)}"
        for k, v in doc.items()
        if not isinstance(v, dict) and (not isinstance(v, list) or k == "purposes")
    ]


def toml_signatures(doc: dict[str, object]) -> list[str]:
    """The ``[signatures]`` table, when the document has one (its last lines)."""
    if "signatures" not in doc:
        return []
    # agency ids are TOML bare keys by construction ([A-Za-z0-9_-]).
    return ["", *toml_table("[signatures]", as_table(doc["signatures"]))]


def as_table(value: object) -> dict[str, object]:
    assert isinstance(value, dict)
    return value


def as_list(value: object) -> list[object]:
    assert isinstance(value, list)
    return value
