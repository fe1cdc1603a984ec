"""Multilateral MOUs: one signed document for many agencies and the hub that relays their
pairwise exchanges (docs/mou.md §8).

The members every pair shares (dates, legal basis, purposes, linkage schema, padding bucket,
the parties and their keys, the hub) are stated once; ``terms`` entries state what each pair
(or each pair of a group) agreed. Every party signs :func:`multilateral_digest`.

An exchange still runs between two agencies under one bilateral :class:`~xlink.policy.mou.Mou`:
:func:`pair_mou` derives it (the *pair view*), identically on both sides, and its
:func:`~xlink.policy.document.mou_digest`, compared in the PSI handshake, commits to the whole
multilateral document through a line of its ``legal_basis``. The usual path::

    mou = load_pair_mou("hub-mou.toml", local_agency="CA-RCMP", peer="US-DHS", today=today)

which reads a bilateral MOU file as well (decided by its ``format`` member).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from xlink.crypto.keys import SigningKey
from xlink.documents import read_document
from xlink.errors import InputError, MouRefused
from xlink.identifiers import check_agency_id
from xlink.policy._multi_model import (
    MULTILATERAL_MOU_FORMAT,
    HubParty,
    MultilateralMou,
    PairTerms,
    SignedMultilateralMou,
)
from xlink.policy._validate_multi import (
    MAX_PARTIES,
    pair_id,
    pair_legal_basis,
    validate_multilateral,
)
from xlink.policy.document import (
    as_list,
    as_table,
    canonical_real,
    category_to_document,
    domain_digest,
    format_of,
    mou_to_document,
    parse_document,
    party_to_document,
    release_document,
    toml_header,
    toml_signatures,
    toml_table,
    validate_mou,
    validate_signed_mou,
)
from xlink.policy.mou import Mou, SignedMou
from xlink.policy.signing import (
    NO_TERMS,
    NOT_A_PARTY,
    accept_mou,
    check_today,
    party_signature,
    signature_reasons,
    window_reasons,
)

__all__ = [
    "MAX_PARTIES",
    "MULTILATERAL_DIGEST_DST",
    "MULTILATERAL_MOU_FORMAT",
    "HubParty",
    "MultilateralMou",
    "PairTerms",
    "SignedMultilateralMou",
    "accept_multilateral",
    "dump_multilateral",
    "is_multilateral_document",
    "load_any_mou",
    "load_multilateral",
    "load_pair_mou",
    "multilateral_digest",
    "multilateral_to_canonical",
    "multilateral_to_document",
    "pair_mou",
    "parse_multilateral",
    "sign_multilateral",
    "validate_multilateral",
]

#: Domain label prefixed (with its length) to the canonical encoding hashed by
#: :func:`multilateral_digest`; not the bilateral ``MOU_DIGEST_DST``, so that no multilateral
#: document's digest is ever a bilateral one's (or the other way round).
MULTILATERAL_DIGEST_DST: Final = b"xlink/v1/mou-multilateral"


# -- reading ------------------------------------------------------------------------------------


def is_multilateral_document(data: object) -> bool:
    """Whether a parsed document says it is a multilateral MOU (its ``format`` member)."""
    return isinstance(data, Mapping) and data.get("format") == MULTILATERAL_MOU_FORMAT


def parse_multilateral(text: str | bytes, fmt: str) -> SignedMultilateralMou:
    """Parse and validate a multilateral MOU document (``"json"`` or ``"toml"``), with its
    ``signatures`` if any. Raises :class:`~xlink.errors.SchemaError` listing every problem.
    Signatures are not verified here: see :func:`accept_multilateral`."""
    return validate_multilateral(parse_document(text, fmt))


def load_multilateral(path: str | Path) -> SignedMultilateralMou:
    """Read a ``.json`` or ``.toml`` multilateral MOU file. Raises ``OSError`` if unreadable
    and :class:`~xlink.errors.SchemaError` for another suffix or an invalid document."""
    return parse_multilateral(read_document(path), format_of(path))


def load_any_mou(path: str | Path) -> SignedMou | SignedMultilateralMou:
    """Read an MOU file of either kind, decided by its ``format`` member: a multilateral one
    when it is :data:`MULTILATERAL_MOU_FORMAT`, otherwise a bilateral one (whose validator
    reports a wrong ``format``). Raises as :func:`load_multilateral`."""
    data = parse_document(read_document(path), format_of(path))
    if is_multilateral_document(data):
        return validate_multilateral(data)
    return validate_signed_mou(data)


# -- document form, canonical form, digest --------------------------------------------------


def _terms_document(terms: PairTerms, threshold: object) -> dict[str, object]:
    exchange: dict[str, object] = {"query_quota_per_day": terms.query_quota_per_day}
    if terms.set_size_budget_per_day is not None:  # optional: present only when set
        exchange["set_size_budget_per_day"] = terms.set_size_budget_per_day
    return {
        "parties": list(terms.parties),
        "match_threshold": threshold,
        "release": release_document(
            terms.approval_required, terms.follow_up_hours, terms.reciprocal
        ),
        "exchange": exchange,
        "categories": [category_to_document(c) for c in terms.categories],
    }


def _document(mou: MultilateralMou, *, canonical: bool) -> dict[str, object]:
    return {
        "format": MULTILATERAL_MOU_FORMAT,
        "id": mou.id,
        "version": mou.version,
        "valid_from": mou.valid_from.isoformat(),
        "valid_until": mou.valid_until.isoformat(),
        "legal_basis": mou.legal_basis,
        "purposes": list(mou.purposes),
        "linkage": {
            "schema_id": mou.schema_id,
            "schema_version": mou.schema_version,
            "schema_digest": mou.schema_digest.hex(),
        },
        "exchange": {"padding_bucket": mou.padding_bucket},
        "hub": {
            "hub_id": mou.hub.hub_id,
            "name": mou.hub.name,
            "verify_key": bytes(mou.hub.verify_key).hex(),
        },
        "parties": [party_to_document(p) for p in mou.parties],
        "terms": [
            _terms_document(
                t, canonical_real(t.match_threshold) if canonical else t.match_threshold
            )
            for t in mou.terms
        ],
    }


def multilateral_to_canonical(mou: MultilateralMou) -> dict[str, object]:
    """The canonical object hashed by :func:`multilateral_digest` (docs/mou.md §8.4): the JSON
    document form without ``signatures``, built by the rules of the bilateral canonical form
    (every member present but an unset ``set_size_budget_per_day``, lists in document order,
    dates ``YYYY-MM-DD``, keys and digests lower-case hex, each ``match_threshold`` a string in
    C ``printf("%.17g")`` form)."""
    return _document(mou, canonical=True)


def multilateral_digest(mou: MultilateralMou) -> bytes:
    """SHA-256 of the multilateral MOU, independent of the file format it was read from.

    ``SHA-256(len(L) || L || C)`` with ``L = b"xlink/v1/mou-multilateral"``, ``len(L)`` 4 bytes
    big-endian and ``C`` :func:`multilateral_to_canonical` as JSON with sorted member names, no
    whitespace, UTF-8: exactly as :func:`~xlink.policy.document.mou_digest`, under its own
    label. Every party signs it; each pair view names it (:func:`pair_mou`).
    """
    return domain_digest(MULTILATERAL_DIGEST_DST, multilateral_to_canonical(mou))


def multilateral_to_document(
    mou: MultilateralMou | SignedMultilateralMou,
) -> dict[str, object]:
    """The JSON document form, with ``signatures`` when given a signed MOU that has any;
    :func:`validate_multilateral` of the result gives back an equal object."""
    signed = mou if isinstance(mou, SignedMultilateralMou) else SignedMultilateralMou(mou)
    doc = _document(signed.mou, canonical=False)
    if signed.signatures:
        doc["signatures"] = {a: s.hex() for a, s in signed.signatures.items()}
    return doc


def dump_multilateral(mou: MultilateralMou | SignedMultilateralMou, fmt: str) -> str:
    """Write a multilateral MOU (with its signatures, if any) as a ``"json"`` or ``"toml"``
    document that :func:`parse_multilateral` reads back to an equal object. Raises
    ``ValueError`` for another ``fmt``."""
    doc = multilateral_to_document(mou)
    if fmt == "json":
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if fmt != "toml":
        raise ValueError("fmt must be 'json' or 'toml'")
    lines = toml_header(doc)
    for section in ("linkage", "exchange", "hub"):
        lines += ["", *toml_table(f"[{section}]", as_table(doc[section]))]
    for party in as_list(doc["parties"]):
        lines += ["", *toml_table("[[parties]]", as_table(party))]
    for raw in as_list(doc["terms"]):
        terms = as_table(raw)
        head = {k: v for k, v in terms.items() if k != "categories"}
        lines += ["", *toml_table("[[terms]]", head)]
        for section in ("release", "exchange"):
            lines += ["", *toml_table(f"[terms.{section}]", as_table(terms[section]))]
        for category in as_list(terms["categories"]):
            cat = as_table(category)
            lines += ["", *toml_table("[[terms.categories]]", cat)]
            lines += toml_table("[terms.categories.caveats]", as_table(cat["caveats"]))
    return "\n".join(lines + toml_signatures(doc)) + "\n"


# -- signing and accepting ------------------------------------------------------------------


def sign_multilateral(
    mou: MultilateralMou | SignedMultilateralMou, agency_id: str, signing_key: SigningKey
) -> SignedMultilateralMou:
    """Add (or replace) ``agency_id``'s signature over :func:`multilateral_digest`.

    Raises ``ValueError`` if the MOU does not name ``agency_id`` as a party (the hub does not
    sign) or if ``signing_key`` is not the key it names for that party.
    """
    signed = mou if isinstance(mou, SignedMultilateralMou) else SignedMultilateralMou(mou)
    digest = multilateral_digest(signed.mou)
    signature = party_signature(signed.mou.party, agency_id, signing_key, digest)
    return SignedMultilateralMou(signed.mou, {**signed.signatures, agency_id: signature})


def accept_multilateral(
    signed: SignedMultilateralMou, *, local_agency: str | None, today: datetime.date
) -> MultilateralMou:
    """Return the multilateral MOU if it may be used on ``today``; raise
    :class:`~xlink.errors.MouRefused` listing every reason, in the order of
    :func:`~xlink.policy.signing.accept_mou`: ``not-a-party`` (``local_agency`` is not a party;
    ``None`` means the hub is accepting it, and skips this check), then
    ``signature-missing:<agency>`` / ``signature-invalid:<agency>`` for every party in document
    order (every party must sign), then ``not-yet-valid`` / ``expired``."""
    check_today(today)
    mou = signed.mou
    reasons: list[str] = []
    if local_agency is not None and local_agency not in mou.agency_ids:
        reasons.append(NOT_A_PARTY)
    reasons += signature_reasons(mou.parties, signed.signatures, multilateral_digest(mou))
    reasons += window_reasons(mou.valid_from, mou.valid_until, today)
    if reasons:
        raise MouRefused(reasons)
    return mou


# -- the pair view --------------------------------------------------------------------------


def pair_mou(mou: MultilateralMou, a: str, b: str) -> Mou:
    """The bilateral MOU the agencies ``a`` and ``b`` exchange under (docs/mou.md §8.3): the
    same whichever of the two asks, and whichever order they are given in.

    Its ``id`` is ``<id>/<first>/<second>`` (agency ids sorted; the MOU id rule has no ``+``),
    its two parties are in the multilateral MOU's party order, the common members are the
    multilateral MOU's, the terms are the pair's, and its ``legal_basis`` is the multilateral
    one followed by the line ``Pair view of multilateral MOU <id> version <n>, digest <hex>.``
    naming :func:`multilateral_digest`: its ``mou_digest`` therefore commits to the whole
    multilateral document. Built through :func:`~xlink.policy.document.validate_mou`.

    Raises :class:`~xlink.errors.IdentifierError` for a string that is no agency id,
    ``ValueError`` when ``a == b``, :class:`~xlink.errors.MouRefused` with
    ``not-a-party:<agency>`` for an agency that is not a party and
    ``no-terms:<first>+<second>`` when the pair has no terms. It does not check signatures or
    dates: accept the multilateral MOU first (:func:`accept_multilateral`).
    """
    check_agency_id(a, what="agency")
    check_agency_id(b, what="agency")
    if a == b:
        raise ValueError("a pair is two different agencies")
    unknown = [f"{NOT_A_PARTY}:{x}" for x in (a, b) if x not in mou.agency_ids]
    if unknown:
        raise MouRefused(unknown)
    first, second = sorted((a, b))
    terms = mou.terms_for(a, b)
    if terms is None:
        raise MouRefused([f"{NO_TERMS}:{first}+{second}"])
    first_party, second_party = (p for p in mou.parties if p.agency_id in (a, b))
    view = Mou(
        id=pair_id(mou.id, first, second),
        version=mou.version,
        valid_from=mou.valid_from,
        valid_until=mou.valid_until,
        legal_basis=pair_legal_basis(
            mou.legal_basis, mou.id, mou.version, multilateral_digest(mou).hex()
        ),
        purposes=mou.purposes,
        parties=(first_party, second_party),
        schema_id=mou.schema_id,
        schema_version=mou.schema_version,
        schema_digest=mou.schema_digest,
        match_threshold=terms.match_threshold,
        approval_required=terms.approval_required,
        follow_up_hours=terms.follow_up_hours,
        reciprocal=terms.reciprocal,
        categories=terms.categories,
        padding_bucket=mou.padding_bucket,
        query_quota_per_day=terms.query_quota_per_day,
        set_size_budget_per_day=terms.set_size_budget_per_day,
    )
    return validate_mou(mou_to_document(view))


def load_pair_mou(
    path: str | Path, *, local_agency: str, peer: str | None, today: datetime.date
) -> Mou:
    """The MOU ``local_agency`` exchanges with ``peer`` under, read from ``path``: the one
    place an agency loads an MOU (:meth:`xlink.agency.Agency.check`).

    - A bilateral MOU file: :func:`~xlink.policy.signing.accept_mou`; ``peer``, when given,
      must be the other party (else :class:`~xlink.errors.MouRefused`
      ``not-a-party:<peer>``).
    - A multilateral one (``format = "xlink-mou-multilateral-v1"``): ``peer`` is required
      (:class:`~xlink.errors.InputError` otherwise), then :func:`accept_multilateral` for
      ``local_agency`` and :func:`pair_mou`.

    Raises as those do; :class:`~xlink.errors.InputError` for a ``peer`` that is no agency id
    or is ``local_agency`` itself; ``OSError`` and :class:`~xlink.errors.SchemaError` as
    :func:`load_any_mou`.
    """
    if peer is not None:
        check_agency_id(peer, what="peer")
        if peer == local_agency:
            raise InputError("peer: names the local agency itself, not a partner")
    signed = load_any_mou(path)
    if isinstance(signed, SignedMou):
        mou = accept_mou(signed, local_agency=local_agency, today=today)
        if peer is not None and peer != mou.peer_of(local_agency).agency_id:
            raise MouRefused([f"{NOT_A_PARTY}:{peer}"])
        return mou
    if peer is None:
        raise InputError(
            f"{path}: a multilateral MOU covers several partners: name the peer agency to "
            "exchange with"
        )
    return pair_mou(
        accept_multilateral(signed, local_agency=local_agency, today=today), local_agency, peer
    )
