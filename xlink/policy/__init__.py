"""The MOU: model, document format, canonical digest, signatures and acceptance (DESIGN §6).

Read docs/mou.md for the document format field by field and what each caveat makes xlink do.
The usual path::

    signed = load_mou("ca-us.toml")                      # SchemaError lists every problem
    mou = accept_mou(signed, local_agency="CA-RCMP", today=datetime.date.today())
    digest = mou_digest(mou)                             # compared in the handshake

A multilateral MOU (many agencies and a hub, docs/mou.md §8) gives each pair its bilateral
view; ``load_pair_mou`` reads either kind of file::

    mou = load_pair_mou("hub-mou.toml", local_agency="CA-RCMP", peer="US-DHS", today=today)
"""

from __future__ import annotations

from xlink.policy.document import (
    MOU_DIGEST_DST,
    dump_mou,
    load_mou,
    mou_digest,
    mou_to_canonical,
    mou_to_document,
    parse_mou,
    validate_mou,
    validate_signed_mou,
)
from xlink.policy.mou import (
    FORBIDDEN_FIELDS,
    MOU_FORMAT,
    RECORD_FIELDS,
    CategoryPolicy,
    Caveats,
    Mou,
    Party,
    PermittedAction,
    SignedMou,
    Tlp,
    payload_field,
)
from xlink.policy.multilateral import (
    MULTILATERAL_DIGEST_DST,
    MULTILATERAL_MOU_FORMAT,
    HubParty,
    MultilateralMou,
    PairTerms,
    SignedMultilateralMou,
    accept_multilateral,
    dump_multilateral,
    is_multilateral_document,
    load_any_mou,
    load_multilateral,
    load_pair_mou,
    multilateral_digest,
    multilateral_to_canonical,
    multilateral_to_document,
    pair_mou,
    parse_multilateral,
    sign_multilateral,
    validate_multilateral,
)
from xlink.policy.signing import NO_TERMS, MouRefused, accept_mou, sign_mou
from xlink.policy.template import (
    MouTemplate,
    MultilateralTemplate,
    PartyKeys,
    load_any_template,
    load_hub_template,
    load_mou_template,
    load_multilateral_template,
    load_sample_template,
    parse_mou_template,
    parse_multilateral_template,
)

__all__ = [
    "FORBIDDEN_FIELDS",
    "MOU_DIGEST_DST",
    "MOU_FORMAT",
    "MULTILATERAL_DIGEST_DST",
    "MULTILATERAL_MOU_FORMAT",
    "NO_TERMS",
    "RECORD_FIELDS",
    "CategoryPolicy",
    "Caveats",
    "HubParty",
    "Mou",
    "MouRefused",
    "MouTemplate",
    "MultilateralMou",
    "MultilateralTemplate",
    "PairTerms",
    "Party",
    "PartyKeys",
    "PermittedAction",
    "SignedMou",
    "SignedMultilateralMou",
    "Tlp",
    "accept_mou",
    "accept_multilateral",
    "dump_mou",
    "dump_multilateral",
    "is_multilateral_document",
    "load_any_mou",
    "load_any_template",
    "load_hub_template",
    "load_mou",
    "load_mou_template",
    "load_multilateral",
    "load_multilateral_template",
    "load_pair_mou",
    "load_sample_template",
    "mou_digest",
    "mou_to_canonical",
    "mou_to_document",
    "multilateral_digest",
    "multilateral_to_canonical",
    "multilateral_to_document",
    "pair_mou",
    "parse_mou",
    "parse_mou_template",
    "parse_multilateral",
    "parse_multilateral_template",
    "payload_field",
    "sign_mou",
    "sign_multilateral",
    "validate_mou",
    "validate_multilateral",
    "validate_signed_mou",
]
