"""Validating a parsed MOU document: every member, every cross-check, one error (docs/mou.md §2).

Limits here and the identifier rules of :mod:`xlink.identifiers` (agency, MOU and schema ids,
purposes, countries, payload names) are mirrored in ``protocols/schemas/mou-v1.json``; the checks
that a JSON Schema cannot express (date order, parties that differ, categories listed once,
signatures filed under a party, valid key points, set sizes that fit the padding bucket and the
daily budget) are made here only.

The multilateral validator (:mod:`xlink.policy._validate_multi`) reads the members it shares
with this format through the same functions (``check_header``, ``check_party_list``,
``check_schema_ref``, ``check_bucket``, ``check_set_sizes``, ``check_signatures``): one home
for each rule.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass

from nacl import bindings as nacl_bindings
from nacl.exceptions import RuntimeError as NaclRuntimeError

from xlink.crypto.keys import SIGNATURE_SIZE, SealingPublicKey, VerifyKey
from xlink.errors import SchemaError
from xlink.identifiers import (
    AGENCY_ID,
    AGENCY_ID_RULE,
    COUNTRY,
    COUNTRY_RULE,
    MOU_ID,
    MOU_ID_RULE,
    PAYLOAD_NAME,
    PURPOSE,
    PURPOSE_RULE,
    SCHEMA_ID,
    SCHEMA_ID_RULE,
)
from xlink.policy._checker import ABSENT, MISSING, Checker
from xlink.policy.mou import (
    FORBIDDEN_FIELDS,
    MOU_FORMAT,
    PAYLOAD_PREFIX,
    RECORD_FIELDS,
    CategoryPolicy,
    Caveats,
    Mou,
    Party,
    PermittedAction,
    SignedMou,
    Tlp,
)
from xlink.protocol import limits as L
from xlink.records.model import Category, HandlingCode

__all__ = ["validate_mou", "validate_signed_mou"]


MAX_VERSION = 2**32 - 1
MAX_RETENTION_DAYS = 36500
MAX_FOLLOW_UP_HOURS = 8760
MAX_QUERY_QUOTA = 10**9
#: Largest ``exchange.set_size_budget_per_day`` (2^40 padded elements: 65,536 sessions at
#: ``MAX_SET_SIZE``), so that the daily sum fits any integer type the enforcement uses.
MAX_SET_SIZE_BUDGET = 1 << 40
MAX_PURPOSES = 32
MAX_LONG_TEXT_CHARS = 4000

_TEST_SCALAR = bytes(range(1, 33))

_TOP = frozenset(
    {"format", "id", "version", "valid_from", "valid_until", "legal_basis", "purposes",
     "parties", "linkage", "release", "exchange", "categories", "signatures"}
)  # fmt: skip
_PARTY = (
    "agency_id", "name", "country", "verify_key", "sealing_key", "tls_cert_sha256",
    "max_set_size",
)  # fmt: skip
_LINKAGE = ("schema_id", "schema_version", "schema_digest", "match_threshold", "weights", "links")
#: ``linkage.weights`` and ``linkage.links``, optional; the first of each is the default.
WEIGHTINGS = ("fixed", "estimated")
LINKS = ("one-to-one", "best-of-either", "auto")
_RELEASE = ("approval_required", "follow_up_hours", "reciprocal")
_EXCHANGE = ("padding_bucket", "query_quota_per_day", "set_size_budget_per_day")
_CATEGORY = ("category", "releasable_fields", "caveats")
_CAVEATS = (
    "tlp", "permitted_actions", "provider_attribution", "affected_party_notifications",
    "unmodified_resale", "encrypt_at_rest", "handling_code", "handling_conditions",
    "originator_control", "retention_days", "require_grading",
)  # fmt: skip


def _ed25519_point_ok(raw: bytes) -> bool:
    # OpenSSL accepts any 32 bytes as a public key; a small-order or off-curve key would make
    # signatures meaningless, so the MOU refuses it (libsodium checks canonical, on-curve,
    # prime-order subgroup).
    return bool(nacl_bindings.crypto_core_ed25519_is_valid_point(raw))


def _x25519_point_ok(raw: bytes) -> bool:
    # Records sealed to a low-order point would have an all-zero shared secret; libsodium
    # refuses that product for every clamped scalar, so one fixed scalar tests the point.
    try:
        nacl_bindings.crypto_scalarmult(_TEST_SCALAR, raw)
    except NaclRuntimeError:
        return False
    return True


def check_verify_key(c: Checker, raw: Mapping[str, object], where: str) -> VerifyKey | None:
    """``raw["verify_key"]`` (the last part of ``where``): an Ed25519 key of prime order."""
    member = where.rpartition(".")[2]
    verify_key = c.key(raw, member, where, VerifyKey, "Ed25519")
    if verify_key is not None and not _ed25519_point_ok(bytes(verify_key)):
        c.error(where, "not a valid Ed25519 public key (not a prime-order point)")
        return None
    return verify_key


def check_party(c: Checker, raw: object, where: str) -> Party | None:
    if not isinstance(raw, Mapping):
        c.error(where, "must be a table/object")
        return None
    c.members(raw, _PARTY, where)
    agency_id = c.text(
        raw,
        "agency_id",
        f"{where}.agency_id",
        pattern=AGENCY_ID,
        rule=AGENCY_ID_RULE.description,
    )
    name = c.text(raw, "name", f"{where}.name")
    country = c.text(
        raw,
        "country",
        f"{where}.country",
        pattern=COUNTRY,
        rule=COUNTRY_RULE.description,
    )
    verify_key = check_verify_key(c, raw, f"{where}.verify_key")
    sealing_key = c.key(raw, "sealing_key", f"{where}.sealing_key", SealingPublicKey, "X25519")
    if sealing_key is not None and not _x25519_point_ok(bytes(sealing_key)):
        c.error(f"{where}.sealing_key", "not a usable X25519 public key (a low-order point)")
        sealing_key = None
    tls = c.hexbytes(raw, "tls_cert_sha256", f"{where}.tls_cert_sha256", 32)
    # Checked against exchange.padding_bucket by check_set_sizes, once the bucket is read.
    max_set_size = c.integer(raw, "max_set_size", f"{where}.max_set_size", 1, L.MAX_SET_SIZE)
    if not (agency_id and name and country and tls) or verify_key is None or sealing_key is None:
        return None
    return Party(agency_id, name, country, verify_key, sealing_key, tls, max_set_size)


def check_party_list(
    c: Checker, data: Mapping[str, object], *, least: int, most: int, rule: str
) -> tuple[Party, ...] | None:
    """``parties``: ``least`` to ``most`` parties (``rule`` says so in the error), each checked,
    no two with the same agency id, verify key, sealing key or certificate. ``None`` when any of
    it is wrong."""
    raw_parties = c.list(data, "parties", "parties")
    if raw_parties is None:
        return None
    if not least <= len(raw_parties) <= most:
        c.error("parties", f"{rule}, found {len(raw_parties)}")
    if len(raw_parties) > most:
        return None  # not read any further: a party list that long is no agreement
    parties = [check_party(c, raw, f"parties[{i}]") for i, raw in enumerate(raw_parties)]
    seen: dict[object, int] = {}
    for i, party in enumerate(parties):
        if party is None:
            continue
        for member in ("agency_id", "verify_key", "sealing_key", "tls_cert_sha256"):
            value = getattr(party, member)
            first = seen.setdefault((member, value), i)
            if first != i:
                c.error(f"parties[{i}].{member}", f"same as parties[{first}] (parties must differ)")
    if not least <= len(parties) <= most:
        return None
    checked = tuple(p for p in parties if p is not None)
    return checked if len(checked) == len(parties) else None


def _check_parties(c: Checker, data: Mapping[str, object]) -> tuple[Party, Party] | None:
    parties = check_party_list(c, data, least=2, most=2, rule="exactly two parties required")
    return None if parties is None else (parties[0], parties[1])


def _is_integer(value: object, lo: int, hi: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi


def check_set_sizes(
    c: Checker, data: Mapping[str, object], bucket: int | None, budget: int | None
) -> None:
    """Cross-check each party's ``max_set_size`` (already range-checked where it was read, and
    not reported again) against the valid ``padding_bucket`` and ``set_size_budget_per_day``."""
    raw = data.get("parties")
    sizes = [
        (i, p["max_set_size"])
        for i, p in enumerate(raw if isinstance(raw, list) else [])
        if isinstance(p, Mapping) and _is_integer(p.get("max_set_size"), 1, L.MAX_SET_SIZE)
    ]
    if bucket is not None:
        for i, size in sizes:
            if size % bucket:
                c.error(
                    f"parties[{i}].max_set_size",
                    "must be a multiple of exchange.padding_bucket (a padded set size always is)",
                )
    if budget is not None and any(size > budget for _, size in sizes):
        c.error(
            "exchange.set_size_budget_per_day",
            "must be at least every party's max_set_size (one session at the bound must fit)",
        )


def _check_field(c: Checker, raw: object, where: str) -> str:
    if not isinstance(raw, str):
        c.error(where, "must be a string")
        return ""
    name = raw.removeprefix(PAYLOAD_PREFIX) if raw.startswith(PAYLOAD_PREFIX) else raw
    if name in FORBIDDEN_FIELDS:
        c.error(where, "never releasable: it identifies or grades the source (source protection)")
        return ""
    if raw.startswith(PAYLOAD_PREFIX):
        if PAYLOAD_NAME.fullmatch(name):
            return raw
        c.error(where, "a payload field is payload.<name>, name lower-case [a-z][a-z0-9_]*")
        return ""
    if raw in RECORD_FIELDS:
        return raw
    c.error(where, f"unknown field; one of {', '.join(RECORD_FIELDS)} or payload.<name>")
    return ""


def _check_caveats(c: Checker, raw: Mapping[str, object], where: str) -> Caveats | None:
    c.members(raw, _CAVEATS, where)
    tlp = c.enum(raw, "tlp", f"{where}.tlp", Tlp)
    actions = c.enum(raw, "permitted_actions", f"{where}.permitted_actions", PermittedAction)
    flags = {
        f: c.boolean(raw, f, f"{where}.{f}")
        for f in (
            "provider_attribution",
            "affected_party_notifications",
            "unmodified_resale",
            "encrypt_at_rest",
            "originator_control",
            "require_grading",
        )
    }
    code = c.enum(raw, "handling_code", f"{where}.handling_code", HandlingCode)
    conditions = c.text(
        raw,
        "handling_conditions",
        f"{where}.handling_conditions",
        max_chars=MAX_LONG_TEXT_CHARS,
        multiline=True,
        required=False,
    )
    if code is HandlingCode.CONDITIONS and not conditions.strip():
        c.error(f"{where}.handling_conditions", "required with handling code C (state them)")
    if code is HandlingCode.PERMITTED and conditions:
        c.error(f"{where}.handling_conditions", "only with handling code C")
    retention = c.integer(raw, "retention_days", f"{where}.retention_days", 1, MAX_RETENTION_DAYS)
    if tlp is None or actions is None or code is None:
        return None
    return Caveats(
        tlp=tlp,
        permitted_actions=actions,
        handling_code=code,
        handling_conditions=conditions,
        retention_days=retention,
        **flags,
    )


def _check_category(c: Checker, raw: object, where: str) -> CategoryPolicy | None:
    if not isinstance(raw, Mapping):
        c.error(where, "must be a table/object")
        return None
    c.members(raw, _CATEGORY, where)
    category = c.enum(raw, "category", f"{where}.category", Category)
    fields: list[str] = []
    raw_fields = c.list(raw, "releasable_fields", f"{where}.releasable_fields") or []
    for j, f in enumerate(raw_fields):
        name = _check_field(c, f, f"{where}.releasable_fields[{j}]")
        if name and name in fields:
            c.error(f"{where}.releasable_fields[{j}]", "listed twice")
        elif name:
            fields.append(name)
    caveats = _check_caveats(c, c.table(raw, "caveats", f"{where}.caveats"), f"{where}.caveats")
    if category is None or caveats is None:
        return None
    return CategoryPolicy(category, tuple(fields), caveats)


def check_categories(c: Checker, data: Mapping[str, object]) -> tuple[CategoryPolicy, ...]:
    raw = c.list(data, "categories", "categories")
    if raw is None:
        return ()
    if not raw:
        c.error("categories", "at least one record category required")
    policies: list[CategoryPolicy] = []
    seen: dict[Category, int] = {}
    for i, item in enumerate(raw):
        policy = _check_category(c, item, f"categories[{i}]")
        if policy is None:
            continue
        first = seen.setdefault(policy.category, i)
        if first != i:
            c.error(f"categories[{i}].category", f"listed twice (also categories[{first}])")
        policies.append(policy)
    return tuple(policies)


def _check_purposes(c: Checker, data: Mapping[str, object]) -> tuple[str, ...]:
    raw = c.list(data, "purposes", "purposes")
    if raw is None:
        return ()
    if not 1 <= len(raw) <= MAX_PURPOSES:
        c.error("purposes", f"1..{MAX_PURPOSES} purposes required")
    purposes: list[str] = []
    for i, p in enumerate(raw):
        if not isinstance(p, str) or not PURPOSE.fullmatch(p):
            c.error(f"purposes[{i}]", f"must be {PURPOSE_RULE.description}")
        elif p in purposes:
            c.error(f"purposes[{i}]", "listed twice")
        else:
            purposes.append(p)
    return tuple(purposes)


def _named_parties(data: Mapping[str, object]) -> set[str]:
    """The agency ids the document names, even when other members of the party are wrong."""
    raw = data.get("parties")
    items = raw if isinstance(raw, list) else []
    named = (p.get("agency_id") for p in items if isinstance(p, Mapping))
    return {agency for agency in named if isinstance(agency, str)}  # a partner's file: any shape


def check_signatures(c: Checker, data: Mapping[str, object]) -> dict[str, bytes]:
    parties = _named_parties(data)
    raw = data.get("signatures", {})
    if not isinstance(raw, Mapping):
        c.error("signatures", "must be a table/object of agency id -> signature")
        return {}
    signatures: dict[str, bytes] = {}
    for agency_id in sorted(raw, key=str):
        where = f"signatures.{agency_id}"
        if agency_id not in parties:
            c.error(where, "not a party of this MOU")
        signature = c.hexbytes(raw, agency_id, where, SIGNATURE_SIZE)
        if signature and agency_id in parties:
            signatures[agency_id] = signature
    return signatures


@dataclass(frozen=True, slots=True)
class Header:
    """The members every MOU document begins with, as read (stand-ins where wrong)."""

    id: str
    version: int
    valid_from: datetime.date | None
    valid_until: datetime.date | None
    legal_basis: str
    purposes: tuple[str, ...]


def check_header(c: Checker, data: Mapping[str, object], fmt: str) -> Header:
    """``format`` (must be ``fmt``), ``id``, ``version``, the validity dates, ``legal_basis``
    and ``purposes``: the same rules for a bilateral and a multilateral MOU."""
    value = data.get("format", MISSING)
    if value is MISSING:
        c.error("format", "required")
    elif value != fmt:
        c.error("format", f"must be {fmt!r}")
    mou_id = c.text(data, "id", "id", pattern=MOU_ID, rule=MOU_ID_RULE.description)
    version = c.integer(data, "version", "version", 1, MAX_VERSION)
    valid_from = c.date(data, "valid_from", "valid_from")
    valid_until = c.date(data, "valid_until", "valid_until")
    if valid_from and valid_until and valid_until < valid_from:
        c.error("valid_until", "must not be before valid_from")
    legal_basis = c.text(
        data, "legal_basis", "legal_basis", max_chars=MAX_LONG_TEXT_CHARS, multiline=True
    )
    purposes = _check_purposes(c, data)
    return Header(mou_id, version, valid_from, valid_until, legal_basis, purposes)


def check_schema_ref(c: Checker, linkage: Mapping[str, object]) -> tuple[str, int, bytes]:
    """``linkage.schema_id``, ``.schema_version`` and ``.schema_digest``."""
    schema_id = c.text(
        linkage,
        "schema_id",
        "linkage.schema_id",
        pattern=SCHEMA_ID,
        rule=f"a linkage schema id ({SCHEMA_ID_RULE.description})",
    )
    schema_version = c.integer(linkage, "schema_version", "linkage.schema_version", 1, MAX_VERSION)
    schema_digest = c.hexbytes(linkage, "schema_digest", "linkage.schema_digest", L.DIGEST_SIZE)
    return schema_id, schema_version, schema_digest


def check_bucket(c: Checker, exchange: Mapping[str, object]) -> int | None:
    """``exchange.padding_bucket``; ``None`` when it is missing or wrong (already reported)."""
    before = len(c.errors)
    bucket = c.integer(
        exchange, "padding_bucket", "exchange.padding_bucket", 1, L.MAX_PADDING_BUCKET
    )
    return bucket if len(c.errors) == before and exchange is not ABSENT else None


def validate_signed_mou(data: object) -> SignedMou:
    """Check a parsed MOU document (JSON object or TOML table) and build the :class:`SignedMou`.

    The optional ``signatures`` table is read too (agency id → 128 lower-case hex digits); a
    missing signature is no error here (a draft is a valid document): :func:`accept_mou` refuses
    it. Every problem is collected and one :class:`~xlink.errors.SchemaError` lists them all,
    each prefixed by its location (``categories[1].caveats.tlp``). Spec: docs/mou.md §2.
    """
    if not isinstance(data, Mapping):
        raise SchemaError(["mou: must be a table/object"])
    c = Checker()
    c.members(data, _TOP, "")
    header = check_header(c, data, MOU_FORMAT)
    parties = _check_parties(c, data)
    linkage = c.table(data, "linkage", "linkage")
    c.members(linkage, _LINKAGE, "linkage")
    schema_id, schema_version, schema_digest = check_schema_ref(c, linkage)
    threshold = c.number(linkage, "match_threshold", "linkage.match_threshold")
    weights = _choice(c, linkage, "weights", WEIGHTINGS)
    links = _choice(c, linkage, "links", LINKS)
    release = c.table(data, "release", "release")
    c.members(release, _RELEASE, "release")
    approval = c.boolean(release, "approval_required", "release.approval_required")
    follow_up = c.integer(
        release, "follow_up_hours", "release.follow_up_hours", 1, MAX_FOLLOW_UP_HOURS
    )
    # optional: absent means each side sends every release it has (docs/mou.md)
    reciprocal = "reciprocal" in release and c.boolean(release, "reciprocal", "release.reciprocal")
    exchange = c.table(data, "exchange", "exchange")
    c.members(exchange, _EXCHANGE, "exchange")
    bucket = check_bucket(c, exchange)
    quota = c.integer(
        exchange, "query_quota_per_day", "exchange.query_quota_per_day", 0, MAX_QUERY_QUOTA
    )
    budget: int | None = None
    if "set_size_budget_per_day" in exchange:  # optional: absent means no daily budget
        before = len(c.errors)
        value = c.integer(
            exchange,
            "set_size_budget_per_day",
            "exchange.set_size_budget_per_day",
            1,
            MAX_SET_SIZE_BUDGET,
        )
        budget = value if len(c.errors) == before else None
    check_set_sizes(c, data, bucket, budget)
    categories = check_categories(c, data)
    mou = None
    if not c.errors and parties and header.valid_from and header.valid_until and bucket:
        mou = Mou(
            id=header.id,
            version=header.version,
            valid_from=header.valid_from,
            valid_until=header.valid_until,
            legal_basis=header.legal_basis,
            purposes=header.purposes,
            parties=parties,
            schema_id=schema_id,
            schema_version=schema_version,
            schema_digest=schema_digest,
            match_threshold=threshold,
            approval_required=approval,
            follow_up_hours=follow_up,
            reciprocal=reciprocal,
            categories=categories,
            padding_bucket=bucket,
            query_quota_per_day=quota,
            weights=weights,
            links=links,
            set_size_budget_per_day=budget,
        )
    signatures = check_signatures(c, data)
    if c.errors or mou is None:
        raise SchemaError(c.errors or ["mou: invalid"])
    return SignedMou(mou, signatures)


def _choice(c: Checker, linkage: Mapping[str, object], key: str, allowed: tuple[str, ...]) -> str:
    """An optional ``linkage`` member that is one of ``allowed`` (the first when absent)."""
    value = linkage.get(key, allowed[0])
    if value not in allowed:
        c.error(f"linkage.{key}", "must be one of " + ", ".join(allowed))
        return allowed[0]
    return str(value)


def validate_mou(data: object) -> Mou:
    """:func:`validate_signed_mou` without the signatures (which are still checked)."""
    return validate_signed_mou(data).mou
