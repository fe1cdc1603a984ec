"""The MOU: model, document format, canonical digest, signatures and acceptance (DESIGN §6).

Read docs/mou.md for the document format field by field and what each caveat makes xlink do.
The usual path::

    signed = load_mou("ca-us.toml")                      # SchemaError lists every problem
    mou = accept_mou(signed, local_agency="CA-RCMP", today=datetime.date.today())
    digest = mou_digest(mou)                             # compared in the handshake
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
from xlink.policy.signing import MouRefused, accept_mou, sign_mou
from xlink.policy.template import (
    MouTemplate,
    PartyKeys,
    load_mou_template,
    load_sample_template,
    parse_mou_template,
)

__all__ = [
    "FORBIDDEN_FIELDS",
    "MOU_DIGEST_DST",
    "MOU_FORMAT",
    "RECORD_FIELDS",
    "CategoryPolicy",
    "Caveats",
    "Mou",
    "MouRefused",
    "MouTemplate",
    "Party",
    "PartyKeys",
    "PermittedAction",
    "SignedMou",
    "Tlp",
    "accept_mou",
    "dump_mou",
    "load_mou",
    "load_mou_template",
    "load_sample_template",
    "mou_digest",
    "mou_to_canonical",
    "mou_to_document",
    "parse_mou",
    "parse_mou_template",
    "payload_field",
    "sign_mou",
    "validate_mou",
    "validate_signed_mou",
]
