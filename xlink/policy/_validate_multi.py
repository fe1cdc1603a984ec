"""Validating a parsed multilateral MOU document: every member, every cross-check, one error
(docs/mou.md §8.2).

The members a multilateral MOU shares with a bilateral one (header, parties, linkage schema,
padding bucket, signatures) are read by the bilateral validator's own functions
(:mod:`xlink.policy._validate`). The terms of each pair are checked by building that pair's
bilateral document and running the bilateral validator on it: its errors about the terms'
members come back under ``terms[i]`` (``terms[1].categories[0].caveats.tlp``), so every rule of
a pair's terms is the rule of a bilateral MOU, with one home.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Final

from xlink.crypto.keys import SealingKey, SigningKey
from xlink.errors import SchemaError
from xlink.identifiers import AGENCY_ID, AGENCY_ID_RULE, MOU_ID_RULE
from xlink.policy._checker import ABSENT, Checker
from xlink.policy._multi_model import (
    MULTILATERAL_MOU_FORMAT,
    HubParty,
    MultilateralMou,
    PairTerms,
    SignedMultilateralMou,
)
from xlink.policy._validate import (
    MAX_LONG_TEXT_CHARS,
    Header,
    check_bucket,
    check_header,
    check_party_list,
    check_schema_ref,
    check_set_sizes,
    check_signatures,
    check_verify_key,
    validate_mou,
)
from xlink.policy.mou import MOU_FORMAT, Mou

__all__ = [
    "MAX_PARTIES",
    "MAX_TERMS",
    "pair_id",
    "pair_legal_basis",
    "validate_multilateral",
]

#: The most parties a multilateral MOU names (a bound on the work of validating it: every pair
#: with terms is validated as a bilateral MOU).
MAX_PARTIES: Final = 64
#: The most ``terms`` entries: one per pair at most.
MAX_TERMS: Final = MAX_PARTIES * (MAX_PARTIES - 1) // 2

_TOP = frozenset(
    {"format", "id", "version", "valid_from", "valid_until", "legal_basis", "purposes",
     "linkage", "exchange", "hub", "parties", "terms", "signatures"}
)  # fmt: skip
_LINKAGE = ("schema_id", "schema_version", "schema_digest")
_EXCHANGE = ("padding_bucket",)
_HUB = ("hub_id", "name", "verify_key")
_TERMS = ("parties", "match_threshold", "release", "exchange", "categories")
_TERMS_EXCHANGE = ("query_quota_per_day", "set_size_budget_per_day")

#: Where an error of a pair's bilateral document is in the ``terms`` entry it came from:
#: bilateral location prefix -> location under ``terms[i]``. Errors elsewhere are about the
#: members every pair shares, already reported at their own location.
_TERMS_LOCATIONS: Final = (
    ("linkage.match_threshold", "match_threshold"),
    ("release", "release"),
    ("exchange.query_quota_per_day", "exchange.query_quota_per_day"),
    ("exchange.set_size_budget_per_day", "exchange.set_size_budget_per_day"),
    ("categories", "categories"),
)


def pair_id(mou_id: str, first: str, second: str) -> str:
    """The id of a pair view: ``<multilateral id>/<first>/<second>``, agency ids sorted. An MOU
    id may hold ``/`` and an agency id may not, so the last two parts are the pair."""
    return f"{mou_id}/{first}/{second}"


def pair_legal_basis(legal_basis: str, mou_id: str, version: int, digest_hex: str) -> str:
    """The ``legal_basis`` of a pair view: the multilateral MOU's, then one line naming that
    MOU, its version and its :func:`~xlink.policy.multilateral.multilateral_digest`."""
    return (
        f"{legal_basis}\n"
        f"Pair view of multilateral MOU {mou_id} version {version}, digest {digest_hex}."
    )


def _raw_parties(data: Mapping[str, object]) -> list[Mapping[str, object]]:
    raw = data.get("parties")
    return [p if isinstance(p, Mapping) else {} for p in raw] if isinstance(raw, list) else []


def _check_hub(c: Checker, data: Mapping[str, object]) -> HubParty | None:
    hub = c.table(data, "hub", "hub")
    c.members(hub, _HUB, "hub")
    hub_id = c.text(hub, "hub_id", "hub.hub_id", pattern=AGENCY_ID, rule=AGENCY_ID_RULE.description)
    name = c.text(hub, "name", "hub.name")
    verify_key = check_verify_key(c, hub, "hub.verify_key")
    for i, party in enumerate(_raw_parties(data)):
        if hub_id and party.get("agency_id") == hub_id:
            c.error("hub.hub_id", f"same as parties[{i}].agency_id (the hub is not a party)")
        if verify_key is not None and party.get("verify_key") == bytes(verify_key).hex():
            c.error("hub.verify_key", f"same as parties[{i}].verify_key (the hub has its own key)")
    if not (hub_id and name) or verify_key is None:
        return None
    return HubParty(hub_id, name, verify_key)


def _check_terms_parties(
    c: Checker, item: Mapping[str, object], where: str, named: Sequence[str]
) -> tuple[str, ...] | None:
    raw = c.list(item, "parties", f"{where}.parties")
    if raw is None:
        return None
    ok = True
    if len(raw) < 2:
        c.error(f"{where}.parties", "at least two parties required (terms are for every pair)")
        ok = False
    names: list[str] = []
    for j, name in enumerate(raw):
        if not isinstance(name, str) or name not in named:
            c.error(f"{where}.parties[{j}]", "not a party of this MOU (an agency_id of parties)")
            ok = False
        elif name in names:
            c.error(f"{where}.parties[{j}]", "listed twice")
            ok = False
        else:
            names.append(name)
    return tuple(names) if ok else None


def _terms_location(error: str, where: str) -> str | None:
    location, sep, reason = error.partition(": ")
    for prefix, under in _TERMS_LOCATIONS:
        if location == prefix or location.startswith((f"{prefix}.", f"{prefix}[")):
            return f"{where}.{under}{location[len(prefix) :]}{sep}{reason}"
    return None


def _placeholder_party(i: int, size: object) -> dict[str, object]:
    # Stands in for a party when the entry's own parties are wrong (already reported), so
    # that the rest of the entry is still checked. Key values: fixed valid points; the set
    # size: one padding bucket (``size``, when that is an integer).
    seed = bytes([0xA0 + i]) * 32
    return {
        "agency_id": f"PLACEHOLDER-{i}",
        "name": "placeholder",
        "country": "XXX",
        "verify_key": bytes(SigningKey(seed).verify_key).hex(),
        "sealing_key": bytes(SealingKey(seed).public_key).hex(),
        "tls_cert_sha256": seed.hex(),
        "max_set_size": size if isinstance(size, int) and not isinstance(size, bool) else 1,
    }


def _pair_document(
    data: Mapping[str, object],
    item: Mapping[str, object],
    exchange: Mapping[str, object],
    pair: tuple[Mapping[str, object], Mapping[str, object]],
) -> dict[str, object]:
    """The bilateral document of one pair under one terms entry, for checking the terms: the
    pair's party tables and the common padding bucket as written, the terms' members as
    written, fixed stand-ins for the members the terms do not hold."""
    linkage: dict[str, object] = {
        "schema_id": "terms-check",
        "schema_version": 1,
        "schema_digest": "00" * 32,
    }
    if "match_threshold" in item:
        linkage["match_threshold"] = item["match_threshold"]
    common = data.get("exchange")
    pair_exchange = {k: exchange[k] for k in _TERMS_EXCHANGE if k in exchange}
    if exchange is ABSENT:  # missing or not a table: reported once, not member by member
        pair_exchange["query_quota_per_day"] = 0
    if isinstance(common, Mapping) and "padding_bucket" in common:
        pair_exchange["padding_bucket"] = common["padding_bucket"]
    doc: dict[str, object] = {
        "format": MOU_FORMAT,
        "id": "terms-check",
        "version": 1,
        "valid_from": "2000-01-01",
        "valid_until": "2000-01-01",
        "legal_basis": "terms check",
        "purposes": ["terms-check"],
        "parties": list(pair),
        "linkage": linkage,
        "exchange": pair_exchange,
    }
    for member in ("release", "categories"):
        if member in item:
            doc[member] = item[member]
    return doc


def _check_pair_terms(
    c: Checker,
    data: Mapping[str, object],
    item: Mapping[str, object],
    where: str,
    pairs: Sequence[tuple[Mapping[str, object], Mapping[str, object]]],
    *,
    report_all: bool,
) -> Mou | None:
    """Run the bilateral validator on each pair's document; report its errors about the terms
    under ``where`` (each once). With ``report_all`` (nothing else was wrong) an error about
    another member is reported too, under ``where``: a rule of the pair view that the
    multilateral document breaks must not pass unseen."""
    exchange = c.table(item, "exchange", f"{where}.exchange")
    c.members(exchange, _TERMS_EXCHANGE, f"{where}.exchange")
    seen: set[str] = set()
    first: Mou | None = None
    for pair in pairs:
        try:
            mou = validate_mou(_pair_document(data, item, exchange, pair))
        except SchemaError as exc:
            for error in exc.errors:
                mapped = _terms_location(error, where)
                if mapped is None and report_all:
                    mapped = f"{where}: {error}"
                if mapped is not None and mapped not in seen:
                    seen.add(mapped)
                    c.errors.append(mapped)
            continue
        first = first or mou
    return first if not seen else None


def _check_terms(
    c: Checker, data: Mapping[str, object], *, report_all: bool
) -> list[PairTerms] | None:
    raw = c.list(data, "terms", "terms")
    if raw is None:
        return None
    if not 1 <= len(raw) <= MAX_TERMS:
        c.error("terms", f"1..{MAX_TERMS} terms entries required, found {len(raw)}")
        return None
    common = data.get("exchange")
    bucket = common.get("padding_bucket") if isinstance(common, Mapping) else None
    parties = _raw_parties(data)
    if len(parties) > MAX_PARTIES:  # reported with parties; not worth checking pair by pair
        return None
    named = [str(p.get("agency_id")) for p in parties if isinstance(p.get("agency_id"), str)]
    tables = {str(p.get("agency_id")): p for p in reversed(parties)}  # the first of a name
    covered: dict[tuple[str, str], int] = {}
    found: list[PairTerms] = []
    ok = True
    for i, item in enumerate(raw):
        where = f"terms[{i}]"
        pairs: list[tuple[Mapping[str, object], Mapping[str, object]]]
        if not isinstance(item, Mapping):
            c.error(where, "must be a table/object")
            ok = False
            continue
        c.members(item, _TERMS, where)
        members = _check_terms_parties(c, item, where, named)
        if members is None:
            ok = False
            pairs = [(_placeholder_party(0, bucket), _placeholder_party(1, bucket))]
        else:
            clashes: dict[int, tuple[str, str]] = {}
            for a, b in itertools.combinations(members, 2):
                key = (a, b) if a < b else (b, a)
                clashes.setdefault(covered.setdefault(key, i), key)
            for k, (a, b) in sorted(clashes.items()):
                if k != i:
                    pa, pb = sorted((named.index(a), named.index(b)))
                    c.error(
                        f"{where}.parties",
                        f"parties[{pa}] and parties[{pb}] already have terms in terms[{k}] "
                        "(one terms entry per pair)",
                    )
                    ok = False
            pairs = [(tables[a], tables[b]) for a, b in itertools.combinations(members, 2)]
        real = members is not None  # stand-ins break rules of their own: not reported
        pair = _check_pair_terms(c, data, item, where, pairs, report_all=report_all and real)
        if pair is None or members is None:
            ok = False
            continue
        found.append(
            PairTerms(
                parties=members,
                match_threshold=pair.match_threshold,
                approval_required=pair.approval_required,
                follow_up_hours=pair.follow_up_hours,
                reciprocal=pair.reciprocal,
                query_quota_per_day=pair.query_quota_per_day,
                set_size_budget_per_day=pair.set_size_budget_per_day,
                categories=pair.categories,
            )
        )
    return found if ok else None


def _check_pair_views(c: Checker, header: Header, terms: list[PairTerms]) -> None:
    """The pair views' ``id`` and ``legal_basis`` are longer than the multilateral MOU's: both
    must still fit the bilateral rules."""
    if header.id:
        longest = max(
            ((len(pair_id(header.id, a, b)), i) for i, t in enumerate(terms) for a, b in
             itertools.combinations(t.parties, 2)),
            default=(0, 0),
        )  # fmt: skip
        if longest[0] > MOU_ID_RULE.max_chars:
            c.error(
                "id",
                f"too long for its pair views: with /<agency>/<agency> of terms[{longest[1]}] "
                f"appended it has {longest[0]} characters, at most {MOU_ID_RULE.max_chars}",
            )
        if header.legal_basis:
            added = len(pair_legal_basis("", header.id, header.version, "0" * 64))
            if len(header.legal_basis) + added > MAX_LONG_TEXT_CHARS:
                c.error(
                    "legal_basis",
                    f"at most {MAX_LONG_TEXT_CHARS - added} characters here: each pair view "
                    "appends a line naming this MOU",
                )


def validate_multilateral(data: object) -> SignedMultilateralMou:
    """Check a parsed multilateral MOU document (JSON object or TOML table) and build the
    :class:`~xlink.policy.multilateral.SignedMultilateralMou`.

    The optional ``signatures`` table is read too; a missing signature is no error here:
    :func:`~xlink.policy.multilateral.accept_multilateral` refuses it. Every problem is
    collected and one :class:`~xlink.errors.SchemaError` lists them all, each prefixed by its
    location (``terms[1].categories[0].caveats.tlp``). Spec: docs/mou.md §8.2.
    """
    if not isinstance(data, Mapping):
        raise SchemaError(["mou: must be a table/object"])
    c = Checker()
    c.members(data, _TOP, "")
    header = check_header(c, data, MULTILATERAL_MOU_FORMAT)
    parties = check_party_list(
        c, data, least=2, most=MAX_PARTIES, rule=f"2..{MAX_PARTIES} parties required"
    )
    linkage = c.table(data, "linkage", "linkage")
    c.members(linkage, _LINKAGE, "linkage")
    schema_id, schema_version, schema_digest = check_schema_ref(c, linkage)
    exchange = c.table(data, "exchange", "exchange")
    c.members(exchange, _EXCHANGE, "exchange")
    bucket = check_bucket(c, exchange)
    check_set_sizes(c, data, bucket, None)
    hub = _check_hub(c, data)
    terms = _check_terms(c, data, report_all=not c.errors)
    if terms is not None:
        _check_pair_views(c, header, terms)
    signatures = check_signatures(c, data)
    if c.errors or not (parties and hub and terms and bucket):
        raise SchemaError(c.errors or ["mou: invalid"])
    assert header.valid_from is not None and header.valid_until is not None
    mou = MultilateralMou(
        id=header.id,
        version=header.version,
        valid_from=header.valid_from,
        valid_until=header.valid_until,
        legal_basis=header.legal_basis,
        purposes=header.purposes,
        schema_id=schema_id,
        schema_version=schema_version,
        schema_digest=schema_digest,
        padding_bucket=bucket,
        hub=hub,
        parties=parties,
        terms=tuple(terms),
    )
    return SignedMultilateralMou(mou, signatures)
