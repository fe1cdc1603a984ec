"""MOU templates: a document whose keys are filled in when they exist (docs/mou.md §6, §8.5).

Keys are generated when an agency deploys xlink (and at demo time), after the text of the MOU
was agreed. A template is an MOU document in which each party's ``verify_key``, ``sealing_key``,
``tls_cert_sha256`` and ``max_set_size``, and ``linkage.schema_digest``, may be left out;
everything else is checked when the template is read. :meth:`MouTemplate.fill` supplies them
and gives a validated :class:`~xlink.policy.mou.Mou`, ready for
:func:`~xlink.policy.signing.sign_mou`.
"""

from __future__ import annotations

import copy
import datetime
import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Final

from xlink.crypto.keys import SealingKey, SealingPublicKey, SigningKey, VerifyKey
from xlink.documents import read_document
from xlink.errors import SchemaError
from xlink.policy._validate import validate_mou
from xlink.policy.document import format_of, parse_document
from xlink.policy.mou import Mou
from xlink.policy.multilateral import (
    MultilateralMou,
    is_multilateral_document,
    validate_multilateral,
)
from xlink.protocol.limits import MAX_SET_SIZE

__all__ = [
    "HUB_TEMPLATE_RESOURCE",
    "SAMPLE_TEMPLATE_RESOURCE",
    "MouTemplate",
    "MultilateralTemplate",
    "PartyKeys",
    "load_any_template",
    "load_hub_template",
    "load_mou_template",
    "load_multilateral_template",
    "load_sample_template",
    "parse_mou_template",
    "parse_multilateral_template",
]

#: Package resource holding the sample CA-RCMP / US-DHS template.
SAMPLE_TEMPLATE_RESOURCE: Final = "data/mou/ca-us-demo.toml"
#: Package resource holding the sample multilateral template (hub CA-PS-HUB; CA-RCMP, CA-CBSA,
#: US-DHS).
HUB_TEMPLATE_RESOURCE: Final = "data/mou/hub-demo.toml"

_KEY_MEMBERS = ("verify_key", "sealing_key", "tls_cert_sha256")


@dataclass(frozen=True, slots=True)
class PartyKeys:
    """The public keys one party brings: Ed25519 verify key, X25519 sealing key, and the
    SHA-256 of its TLS certificate (DER). Raises ``ValueError`` for a fingerprint that is not
    32 bytes."""

    verify_key: VerifyKey
    sealing_key: SealingPublicKey
    tls_cert_sha256: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.tls_cert_sha256, bytes) or len(self.tls_cert_sha256) != 32:
            raise ValueError("tls_cert_sha256 must be 32 bytes")

    def as_members(self) -> dict[str, str]:
        return {
            "verify_key": bytes(self.verify_key).hex(),
            "sealing_key": bytes(self.sealing_key).hex(),
            "tls_cert_sha256": self.tls_cert_sha256.hex(),
        }


def _jsonable(value: object) -> object:
    """TOML dates as ISO strings, so that a template is plain JSON data whatever its format."""
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def _parties(doc: dict[str, object]) -> list[dict[str, object]]:
    raw = doc.get("parties")
    return [p for p in raw if isinstance(p, dict)] if isinstance(raw, list) else []


@dataclass(frozen=True, slots=True)
class MouTemplate:
    """A checked MOU template. ``document`` is its JSON text (dates as ``YYYY-MM-DD``)."""

    document: str

    @property
    def agency_ids(self) -> tuple[str, ...]:
        doc = json.loads(self.document)
        return tuple(str(p.get("agency_id")) for p in _parties(doc))

    @property
    def max_set_sizes(self) -> dict[str, object]:
        """Each party's ``max_set_size`` as the template states it, by agency id; a party whose
        template leaves it out (to be given to :meth:`fill`) is not listed."""
        doc = json.loads(self.document)
        return {
            str(p.get("agency_id")): p["max_set_size"] for p in _parties(doc) if "max_set_size" in p
        }

    def fill(
        self,
        keys: Mapping[str, PartyKeys],
        *,
        schema_digest: bytes | None = None,
        valid_from: datetime.date | None = None,
        valid_until: datetime.date | None = None,
        max_set_size: Mapping[str, int] | None = None,
        set_size_budget_per_day: int | None = None,
        approval_required: bool | None = None,
        reciprocal: bool | None = None,
        mou_id: str | None = None,
    ) -> Mou:
        """The MOU with ``keys`` (by agency id) and the optional members filled in.

        ``schema_digest`` is :func:`~xlink.linkage.schema.schema_digest` of the linkage schema
        named in ``linkage``; ``valid_from``/``valid_until`` replace the template's dates;
        ``max_set_size`` (by agency id) replaces or supplies those parties' bounds and
        ``set_size_budget_per_day`` the template's ``exchange`` budget; ``approval_required``
        replaces ``release.approval_required`` (True: an officer approves each release before
        anything is sealed; False: straight-through release) and ``reciprocal``
        ``release.reciprocal`` (xlink-release-v1 §10.5; None: keep the template's); ``mou_id``
        the template's ``id`` (an agreement's own, where a template is shared). Raises
        ``ValueError``
        for keys or sizes of an agency the template does not name, and
        :class:`~xlink.errors.SchemaError` when the result is not a valid MOU (a party left
        without keys or ``max_set_size``, a size not a multiple of the padding bucket, the
        schema digest still missing ...).
        """
        doc = json.loads(self.document)
        _fill_common(
            doc,
            set(self.agency_ids),
            keys,
            schema_digest=schema_digest,
            valid_from=valid_from,
            valid_until=valid_until,
            max_set_size=max_set_size,
            mou_id=mou_id,
        )
        if set_size_budget_per_day is not None:
            exchange = doc.get("exchange")
            if isinstance(exchange, dict):
                exchange["set_size_budget_per_day"] = set_size_budget_per_day
        _set_release(doc.get("release"), approval_required, reciprocal)
        return validate_mou(doc)


def _set_release(release: object, approval_required: bool | None, reciprocal: bool | None) -> None:
    """Set ``approval_required`` and ``reciprocal`` in a ``release`` table (None: leave it)."""
    for name, value in (("approval_required", approval_required), ("reciprocal", reciprocal)):
        if value is None:
            continue
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be True or False")
        if isinstance(release, dict):
            if name == "reciprocal" and not value:
                release.pop(name, None)  # false is the default: left out, as the digest has it
            else:
                release[name] = value


def _fill_common(
    doc: dict[str, object],
    named: set[str],
    keys: Mapping[str, PartyKeys],
    *,
    schema_digest: bytes | None,
    valid_from: datetime.date | None,
    valid_until: datetime.date | None,
    max_set_size: Mapping[str, int] | None,
    mou_id: str | None = None,
) -> None:
    """What filling a template of either kind does to its document: the parties' keys and
    ``max_set_size``, ``linkage.schema_digest``, the dates and the MOU's id."""
    unknown = sorted(set(keys) - named)
    if unknown:
        raise ValueError("keys given for agencies the template does not name")
    sizes = dict(max_set_size or {})
    if set(sizes) - named:
        raise ValueError("max_set_size given for agencies the template does not name")
    for party in _parties(doc):
        agency = str(party.get("agency_id"))
        agency_keys = keys.get(agency)
        if agency_keys is not None:
            party.update(agency_keys.as_members())
        if agency in sizes:
            party["max_set_size"] = sizes[agency]
    if schema_digest is not None:
        if not isinstance(schema_digest, bytes) or len(schema_digest) != 32:
            raise ValueError("schema_digest must be 32 bytes")
        linkage = doc.get("linkage")
        if isinstance(linkage, dict):
            linkage["schema_digest"] = schema_digest.hex()
    if valid_from is not None:
        doc["valid_from"] = valid_from.isoformat()
    if valid_until is not None:
        doc["valid_until"] = valid_until.isoformat()
    if mou_id is not None:  # checked with the rest of the MOU (a bad one: SchemaError)
        doc["id"] = mou_id


@dataclass(frozen=True, slots=True)
class MultilateralTemplate:
    """A checked multilateral MOU template (docs/mou.md §8.5): as an MOU template, and the
    hub's ``verify_key`` may be left out too. ``document`` is its JSON text."""

    document: str

    @property
    def agency_ids(self) -> tuple[str, ...]:
        doc = json.loads(self.document)
        return tuple(str(p.get("agency_id")) for p in _parties(doc))

    @property
    def hub_id(self) -> str:
        return str(json.loads(self.document)["hub"]["hub_id"])

    @property
    def max_set_sizes(self) -> dict[str, object]:
        """Each party's ``max_set_size`` as the template states it, by agency id."""
        doc = json.loads(self.document)
        return {
            str(p.get("agency_id")): p["max_set_size"] for p in _parties(doc) if "max_set_size" in p
        }

    def fill(
        self,
        keys: Mapping[str, PartyKeys],
        *,
        hub_key: VerifyKey,
        schema_digest: bytes | None = None,
        valid_from: datetime.date | None = None,
        valid_until: datetime.date | None = None,
        max_set_size: Mapping[str, int] | None = None,
        approval_required: bool | None = None,
        reciprocal: bool | None = None,
        mou_id: str | None = None,
    ) -> MultilateralMou:
        """The multilateral MOU with ``keys`` (by agency id), the hub's ``hub_key`` and the
        optional members filled in, as :meth:`MouTemplate.fill` (``mou_id`` too);
        ``approval_required`` and ``reciprocal`` replace ``release.approval_required`` and
        ``release.reciprocal`` in every ``terms`` entry. Raises ``ValueError``
        for keys or sizes of an agency the template does not name, and
        :class:`~xlink.errors.SchemaError` when the result is not a valid multilateral MOU."""
        if not isinstance(hub_key, VerifyKey):
            raise ValueError("hub_key must be a VerifyKey")
        doc = json.loads(self.document)
        _fill_common(
            doc,
            set(self.agency_ids),
            keys,
            schema_digest=schema_digest,
            valid_from=valid_from,
            valid_until=valid_until,
            max_set_size=max_set_size,
            mou_id=mou_id,
        )
        hub = doc.get("hub")
        if isinstance(hub, dict):
            hub["verify_key"] = bytes(hub_key).hex()
        for terms in _list(doc.get("terms")):
            if isinstance(terms, dict):
                _set_release(terms.get("release"), approval_required, reciprocal)
        return validate_multilateral(doc).mou


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def _placeholder_filled(doc: dict[str, object]) -> dict[str, object]:
    trial = copy.deepcopy(doc)
    exchange = trial.get("exchange")
    bucket = exchange.get("padding_bucket") if isinstance(exchange, dict) else None
    # One bucket is always a valid bound when the bucket is; a bad bucket is reported anyway.
    fits = isinstance(bucket, int) and not isinstance(bucket, bool) and 1 <= bucket <= MAX_SET_SIZE
    size_stand_in = bucket if fits else 1
    for i, party in enumerate(_parties(trial)):
        seed = bytes([i + 1]) * 32
        stand_in = PartyKeys(SigningKey(seed).verify_key, SealingKey(seed).public_key, seed)
        for member, value in stand_in.as_members().items():
            party.setdefault(member, value)
        party.setdefault("max_set_size", size_stand_in)
    linkage = trial.get("linkage")
    if isinstance(linkage, dict):
        linkage.setdefault("schema_digest", "00" * 32)
    hub = trial.get("hub")
    if isinstance(hub, dict):  # a multilateral template: the hub's key, unlike any party's
        hub.setdefault("verify_key", bytes(SigningKey(b"\xee" * 32).verify_key).hex())
    return trial


def _template_data(text: str | bytes, fmt: str) -> dict[str, object]:
    data = _jsonable(parse_document(text, fmt))
    if not isinstance(data, dict):
        raise SchemaError(["mou: must be a table/object"])
    if "signatures" in data:
        raise SchemaError(["signatures: a template is not signed (sign the filled MOU)"])
    return data


def parse_mou_template(text: str | bytes, fmt: str) -> MouTemplate:
    """Parse a template (``"json"`` or ``"toml"``) and check everything but the missing keys.

    Raises :class:`~xlink.errors.SchemaError` listing every problem (a template carries no
    ``signatures``; an unknown ``fmt`` included).
    """
    data = _template_data(text, fmt)
    validate_mou(_placeholder_filled(data))
    return MouTemplate(json.dumps(data, ensure_ascii=False, sort_keys=True))


def parse_multilateral_template(text: str | bytes, fmt: str) -> MultilateralTemplate:
    """Parse a multilateral template (``"json"`` or ``"toml"``) and check everything but the
    missing keys; raises :class:`~xlink.errors.SchemaError` listing every problem."""
    data = _template_data(text, fmt)
    validate_multilateral(_placeholder_filled(data))
    return MultilateralTemplate(json.dumps(data, ensure_ascii=False, sort_keys=True))


def load_multilateral_template(path: str | Path) -> MultilateralTemplate:
    """Read a ``.json`` or ``.toml`` multilateral template file (errors as
    :func:`parse_multilateral_template`)."""
    return parse_multilateral_template(read_document(path), format_of(path))


def load_any_template(path: str | Path) -> MouTemplate | MultilateralTemplate:
    """Read a template of either kind, decided by its ``format`` member (a multilateral one
    when it is ``xlink-mou-multilateral-v1``)."""
    text, fmt = read_document(path), format_of(path)
    if is_multilateral_document(parse_document(text, fmt)):
        return parse_multilateral_template(text, fmt)
    return parse_mou_template(text, fmt)


def load_hub_template() -> MultilateralTemplate:
    """The sample CA-PS-HUB template (CA-RCMP, CA-CBSA, US-DHS) shipped as
    ``xlink/data/mou/hub-demo.toml``."""
    text = resources.files("xlink").joinpath(HUB_TEMPLATE_RESOURCE).read_text("utf-8")
    return parse_multilateral_template(text, "toml")


def load_mou_template(path: str | Path) -> MouTemplate:
    """Read a ``.json`` or ``.toml`` template file (errors as :func:`parse_mou_template`)."""
    fmt = format_of(path)
    return parse_mou_template(read_document(path), fmt)


def load_sample_template() -> MouTemplate:
    """The sample CA-RCMP / US-DHS template shipped as ``xlink/data/mou/ca-us-demo.toml``."""
    text = resources.files("xlink").joinpath(SAMPLE_TEMPLATE_RESOURCE).read_text("utf-8")
    return parse_mou_template(text, "toml")
