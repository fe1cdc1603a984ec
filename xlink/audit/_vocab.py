"""The closed vocabulary of audit entries: which kinds exist, which fields each allows, and
what each field may hold (docs/audit.md, "Entries").

This is the guard against plaintext leaking into the log. An entry carries only counts,
hex-encoded opaque ids (session ids, handles, digests, key fingerprints), enum names, agency
and MOU identifiers, purposes and reason codes from short fixed charsets. Free text has no
field to go into: an unknown field, a value of the wrong type, a space, a comma or a non-ASCII
letter is refused with ``ValueError`` before anything is written. Error messages name the
kind and the field, never the refused value.

Identifier fields (``mou``, ``peer``, ``category``, ``purpose``, ``reason``) follow the rules of
:mod:`xlink.identifiers`, the ones the MOU validator applies: every MOU id, agency id and
purpose a valid MOU holds can be logged. A refused identifier raises
:class:`~xlink.errors.IdentifierError` (a ``ValueError`` and an ``InputError``). Entries read
back from a log (:func:`check_fields` with ``stored=True``) are also allowed the narrower or
different charsets earlier versions wrote (``_STORED_ALSO``), so that an old log still verifies.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import Enum
from typing import Final

from xlink.error_codes import AbortCode
from xlink.identifiers import (
    AGENCY_ID_RULE,
    MOU_ID_RULE,
    PURPOSE_RULE,
    REASON_CODE_RULE,
    IdentifierRule,
)

__all__ = ["FIELDS", "KINDS", "AuditEvent", "FieldType", "FieldValue", "check_fields"]

FieldValue = int | str
"""A field value as stored and hashed: a non-negative integer or an ASCII string."""

MAX_COUNT: Final = 2**63 - 1


class AuditEvent(Enum):
    """What an audit entry records. The member name is what is stored and hashed."""

    SESSION_STARTED = "session_started"
    SESSION_COMPLETED = "session_completed"
    SESSION_ABORTED = "session_aborted"
    SIZES = "sizes"
    MATCHES = "matches"
    ORACLE_QUERY = "oracle_query"
    RELEASE_PENDING = "release_pending"
    RELEASE_APPROVED = "release_approved"
    RELEASE_DENIED = "release_denied"
    RELEASE_SENT = "release_sent"
    RELEASE_RECEIVED = "release_received"
    RECEIPT_SENT = "receipt_sent"
    RECEIVE_DENIED = "receive_denied"
    RECEIPT_RECEIVED = "receipt_received"
    RECORD_READ = "record_read"
    PURGE = "purge"
    READ_DENIED = "read_denied"
    CONSENT_ISSUED = "consent_issued"
    ONWARD_SHARED = "onward_shared"
    ONWARD_DENIED = "onward_denied"
    MOU_ACCEPTED = "mou_accepted"
    KEY_EVENT = "key_event"
    PEER_REFUSED = "peer_refused"
    SET_SIZE_ALARM = "set_size_alarm"
    RELEASE_OVERDUE = "release_overdue"
    RELEASE_REFUSED = "release_refused"
    RECEIPT_INVALID = "receipt_invalid"
    RUN_ENDED = "run_ended"
    QUERY_STARTED = "query_started"
    QUERY_EVALUATED = "query_evaluated"
    QUERY_REFUSED = "query_refused"
    QUERY_ENDED = "query_ended"
    CHECKPOINT_RECEIVED = "checkpoint_received"
    RECORDS_EXPORTED = "records_exported"
    DECISION_REFUSED = "decision_refused"
    DECIDED = "decided"
    RECIPROCITY_RESET = "reciprocity_reset"


class FieldType(Enum):
    """The type of one field; each admits a fixed, short charset or a closed set of names."""

    COUNT = "count"  # int, 0 .. 2**63-1 (bool refused)
    ID16 = "id16"  # 16 bytes as 32 lowercase hex digits: session ids, handles, fingerprints
    DIGEST = "digest"  # 32 bytes as 64 lowercase hex digits: SHA-256 digests
    IDENT = "ident"  # agency id, category: identifiers.AGENCY_ID [A-Za-z0-9][A-Za-z0-9_-]{0,63}
    MOU_ID = "mou_id"  # identifiers.MOU_ID: [A-Za-z0-9][A-Za-z0-9._:/-]{0,127}
    PURPOSE = "purpose"  # identifiers.PURPOSE: [a-z][a-z0-9-]{0,63}
    REASON = "reason"  # reason code, identifiers.REASON_CODE: [a-z][a-z0-9_.-]{0,63}
    ABORT_CODE = "abort_code"  # an AbortCode member name
    SIDE = "side"  # LOCAL | PEER
    ROLE = "role"  # INITIATOR | RESPONDER
    MODE = "mode"  # PSI | CARDINALITY
    KEY_ACTION = "key_action"  # GENERATED ROTATED REVOKED IMPORTED PINNED ENROLLED FIRST_USE
    SIGNATURE = "signature"  # 64 bytes as 128 lowercase hex digits: an officer's signed act
    KEY_TYPE = "key_type"  # ED25519 | X25519 | P256
    KEY_USE = "key_use"  # SIGNING | SEALING | TLS | AUDIT
    DECIMAL = "decimal"  # a score in bits, as -?[0-9]{1,12}(.[0-9]{1,9})?


_PATTERNS: Final[dict[FieldType, re.Pattern[str]]] = {
    FieldType.ID16: re.compile(r"[0-9a-f]{32}"),
    FieldType.DIGEST: re.compile(r"[0-9a-f]{64}"),
    FieldType.SIGNATURE: re.compile(r"[0-9a-f]{128}"),
    FieldType.DECIMAL: re.compile(r"-?[0-9]{1,12}(\.[0-9]{1,9})?"),
}

_RULES: Final[dict[FieldType, IdentifierRule]] = {
    FieldType.IDENT: AGENCY_ID_RULE,
    FieldType.MOU_ID: MOU_ID_RULE,
    FieldType.PURPOSE: PURPOSE_RULE,
    FieldType.REASON: REASON_CODE_RULE,
}

# What logs written before xlink.identifiers may hold beyond its rules (agency ids with '.' or
# ':', purposes with '_'): accepted when reading a log back, never when writing. (MOU ids were
# written with the IDENT charset, which the MOU id rule includes.)
_STORED_ALSO: Final[dict[FieldType, re.Pattern[str]]] = {
    FieldType.IDENT: re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}"),
    FieldType.PURPOSE: re.compile(r"[a-z][a-z0-9_-]{0,47}"),
}

_NAMES: Final[dict[FieldType, frozenset[str]]] = {
    FieldType.ABORT_CODE: frozenset(c.name for c in AbortCode),
    FieldType.SIDE: frozenset({"LOCAL", "PEER"}),
    FieldType.ROLE: frozenset({"INITIATOR", "RESPONDER"}),
    FieldType.MODE: frozenset({"PSI", "CARDINALITY"}),
    FieldType.KEY_ACTION: frozenset(
        {"GENERATED", "ROTATED", "REVOKED", "IMPORTED", "PINNED", "ENROLLED", "FIRST_USE"}
    ),
    FieldType.KEY_TYPE: frozenset({"ED25519", "X25519", "P256"}),
    FieldType.KEY_USE: frozenset({"SIGNING", "SEALING", "TLS", "AUDIT"}),
}

_HEX_SIZES: Final = {FieldType.ID16: 16, FieldType.DIGEST: 32, FieldType.SIGNATURE: 64}

FIELDS: Final[Mapping[str, FieldType]] = {
    # A field name has one type everywhere it is used.
    "session": FieldType.ID16,
    "handle": FieldType.ID16,
    "fingerprint": FieldType.ID16,
    "approver": FieldType.ID16,  # the approving officer's signing-key fingerprint, not a name
    "reader": FieldType.ID16,  # the reading officer's signing-key fingerprint, not a name
    # The officer's signature over the act (xlink.officers.act_message) the entry records.
    "officer_sig": FieldType.SIGNATURE,
    "digest": FieldType.DIGEST,
    "mou_digest": FieldType.DIGEST,
    "schema_digest": FieldType.DIGEST,
    "mou": FieldType.MOU_ID,
    "peer": FieldType.IDENT,
    "category": FieldType.IDENT,
    "purpose": FieldType.PURPOSE,
    "reason": FieldType.REASON,
    "outcome": FieldType.REASON,
    "code": FieldType.ABORT_CODE,
    "side": FieldType.SIDE,
    "role": FieldType.ROLE,
    "mode": FieldType.MODE,
    "action": FieldType.KEY_ACTION,
    "key_type": FieldType.KEY_TYPE,
    "key_use": FieldType.KEY_USE,
    "own": FieldType.COUNT,
    "own_padded": FieldType.COUNT,
    "withheld": FieldType.COUNT,  # records of a category the MOU does not list, left out
    "peer_padded": FieldType.COUNT,
    "matched": FieldType.COUNT,
    "pairs": FieldType.COUNT,
    "released": FieldType.COUNT,
    "received": FieldType.COUNT,
    "evaluations": FieldType.COUNT,
    "records": FieldType.COUNT,
    "usual": FieldType.COUNT,
    "seq": FieldType.COUNT,  # an entry's seq in a partner's audit log (CHECKPOINT_RECEIVED)
    "suite": FieldType.COUNT,  # the PSI ciphersuite's wire id (xlink-psi-v2 §4, §4.6)
    # How a session's matches were decided (DECIDED): the weighting, the link rule, the
    # threshold in bits, and with estimated weights the estimate's expected matches and the
    # dominated pairs it learnt non-matches from.
    "weights": FieldType.REASON,
    "links": FieldType.REASON,
    # links = "auto": what was asked, and the evidence the rule was chosen on (link_rule.py)
    "links_asked": FieldType.REASON,
    "likely": FieldType.COUNT,
    "likely_shared": FieldType.COUNT,
    "threshold": FieldType.DECIMAL,
    "certain": FieldType.DECIMAL,  # the estimate's certain threshold, in bits
    "candidates": FieldType.COUNT,
    "decided": FieldType.COUNT,
    "expected": FieldType.COUNT,
    "dominated": FieldType.COUNT,
    # Under a reciprocal MOU (xlink-release-v1 §10.5), since the last reset: the records of
    # ours given to the partner (each version of a record once) and the partner's stored
    # releases that credited it (each once).
    "given": FieldType.COUNT,
    "credited": FieldType.COUNT,
}

E = AuditEvent
# kind -> (required fields, optional fields)
KINDS: Final[Mapping[AuditEvent, tuple[frozenset[str], frozenset[str]]]] = {
    E.SESSION_STARTED: (
        frozenset({"session", "mou", "peer", "role", "mode"}),
        frozenset({"mou_digest", "schema_digest", "suite"}),
    ),
    E.SESSION_COMPLETED: (frozenset({"session"}), frozenset()),
    E.SESSION_ABORTED: (frozenset({"code", "side"}), frozenset({"session", "peer"})),
    E.SIZES: (frozenset({"session", "own", "own_padded", "peer_padded"}), frozenset({"withheld"})),
    # A partner declared a padded set far above its usual one (xlink.audit.history): usual is
    # the median of its recent sessions' sizes.
    E.SET_SIZE_ALARM: (frozenset({"session", "peer", "peer_padded", "usual"}), frozenset()),
    E.MATCHES: (frozenset({"session", "matched"}), frozenset({"pairs"})),
    E.ORACLE_QUERY: (frozenset({"session", "evaluations"}), frozenset({"peer"})),
    E.RELEASE_PENDING: (frozenset({"session", "handle"}), frozenset({"category"})),
    E.RELEASE_APPROVED: (
        frozenset({"session", "handle", "approver"}),
        frozenset({"officer_sig"}),
    ),
    E.RELEASE_DENIED: (
        frozenset({"session", "handle", "reason"}),
        frozenset({"approver", "officer_sig", "pairs"}),  # pairs: too-many-pairs, per record
    ),
    E.RELEASE_SENT: (frozenset({"session", "handle", "digest"}), frozenset({"category"})),
    E.RELEASE_RECEIVED: (frozenset({"session", "handle", "digest", "peer"}), frozenset()),
    E.RECEIPT_SENT: (frozenset({"session", "handle", "digest"}), frozenset()),
    # A verified release of the peer refused on receipt (xlink.store.reasons): handle is its
    # release id, digest its release digest, peer its originator.
    E.RECEIVE_DENIED: (frozenset({"session", "handle", "reason"}), frozenset({"digest", "peer"})),
    E.RECEIPT_RECEIVED: (frozenset({"session", "handle", "digest"}), frozenset()),
    E.RECORD_READ: (
        frozenset({"handle", "purpose"}),
        frozenset({"session", "reader", "officer_sig"}),
    ),
    # One PURGE per record removed (handle, session), and one per purge run (records: count).
    E.PURGE: (frozenset({"reason"}), frozenset({"handle", "session", "records"})),
    E.READ_DENIED: (frozenset({"handle", "reason"}), frozenset({"session", "reader"})),
    # An approval or denial refused before anything changed (an officer not enrolled, not an
    # approver, a bad act): reason the refusal, approver the key that signed the act.
    E.DECISION_REFUSED: (frozenset({"session", "handle", "reason"}), frozenset({"approver"})),
    # The decision of a session: digest is the SHA-256 of its decision file
    # (matches/<session>.decision.json), which holds the whole estimate.
    E.DECIDED: (
        frozenset({"session", "weights", "links", "threshold", "candidates", "decided", "digest"}),
        frozenset({"expected", "dominated", "certain", "links_asked", "likely", "likely_shared"}),
    ),
    # One export (xlink store export) by one officer: records is how many were read.
    E.RECORDS_EXPORTED: (
        frozenset({"records", "purpose", "reader"}),
        frozenset({"officer_sig"}),
    ),
    E.CONSENT_ISSUED: (frozenset({"handle", "peer", "purpose"}), frozenset({"session"})),
    E.ONWARD_SHARED: (
        frozenset({"handle", "peer"}),
        frozenset({"session", "purpose", "reader", "officer_sig"}),
    ),
    E.ONWARD_DENIED: (frozenset({"handle", "peer", "reason"}), frozenset({"session"})),
    E.MOU_ACCEPTED: (frozenset({"mou", "mou_digest", "peer"}), frozenset()),
    # FIRST_USE: the first time this log is written with one of the agency's keys in use
    # (xlink.audit.milestones); key_use says which, digest is a TLS certificate's SHA-256.
    E.KEY_EVENT: (
        frozenset({"action", "key_type", "fingerprint"}),
        frozenset({"mou", "key_use", "digest"}),
    ),
    # A partner's signed checkpoint, carried by its receipt (xlink-release-v1 §8) and kept
    # (docs/audit.md, "Partner checkpoints"): seq and digest (its head hash) in the partner's
    # log, fingerprint its audit key; session and handle the release it receipted.
    E.CHECKPOINT_RECEIVED: (
        frozenset({"peer", "seq", "digest", "fingerprint"}),
        frozenset({"session", "handle"}),
    ),
    # A peer refused, or never reached, before any session (a RefusalReason value):
    # the agency expected and why, never a certificate or an address.
    E.PEER_REFUSED: (frozenset({"peer", "reason"}), frozenset({"mou", "role"})),
    # The peer answered one of our releases with REFUSED (reason: its code, or `unreadable`),
    # or with a receipt that does not verify: the release stays offered for the next exchange.
    E.RELEASE_REFUSED: (frozenset({"session", "handle", "reason"}), frozenset()),
    E.RECEIPT_INVALID: (frozenset({"session", "handle", "digest"}), frozenset()),
    # A queued release still pending past the MOU's follow-up deadline (audited once).
    E.RELEASE_OVERDUE: (frozenset({"session", "handle"}), frozenset()),
    # How one run of an exchange (xlink.agency) ended, on each side: outcome is completed,
    # aborted, interrupted, transfer-failed, refused, or unrecorded (a run that ended without
    # an entry, found by the next run); code the abort code when there is one.
    E.RUN_ENDED: (
        frozenset({"outcome", "peer"}),
        frozenset({"session", "code", "released", "received", "mou", "given", "credited"}),
    ),
    # An operator set the reciprocal window's count back to nothing (xlink releases
    # reciprocity --reset): given and credited are the counts it had.
    E.RECIPROCITY_RESET: (frozenset({"peer", "mou", "given", "credited"}), frozenset()),
    # Real-time queries (xlink-query-v1): counts, never content. role is RESPONDER on the
    # holder's side, INITIATOR on the asker's; evaluations counts OPRF elements (the quota's
    # unit), records the travellers asked about, matched the records decided.
    E.QUERY_STARTED: (frozenset({"session", "peer", "role"}), frozenset({"mou"})),
    E.QUERY_EVALUATED: (frozenset({"session", "evaluations", "role"}), frozenset({"peer"})),
    E.QUERY_REFUSED: (
        frozenset({"peer", "reason"}),
        frozenset({"session", "evaluations", "role"}),
    ),
    E.QUERY_ENDED: (
        frozenset({"session", "outcome", "role"}),
        frozenset({"code", "evaluations", "records", "matched", "released", "received"}),
    ),
}
del E


def _check_value(
    kind: AuditEvent, name: str, ftype: FieldType, value: object, stored: bool
) -> FieldValue:
    where = f"{kind.name} field {name!r}"
    rule = _RULES.get(ftype)
    if rule is not None:
        also = _STORED_ALSO.get(ftype) if stored else None
        if also is not None and isinstance(value, str) and also.fullmatch(value):
            return value
        return rule.check(value, what=where)
    if ftype is FieldType.COUNT:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
            raise ValueError(f"{where} must be an int in 0..2**63-1")
        return value
    if ftype in _HEX_SIZES and isinstance(value, bytes | bytearray):
        if len(value) != _HEX_SIZES[ftype]:
            raise ValueError(f"{where} must be {_HEX_SIZES[ftype]} bytes")
        return bytes(value).hex()
    if ftype in _NAMES and isinstance(value, Enum):
        value = value.name
    if not isinstance(value, str):
        raise ValueError(f"{where} must be a {ftype.value}")
    pattern = _PATTERNS.get(ftype)
    if pattern is not None:
        if not pattern.fullmatch(value):
            raise ValueError(f"{where} must be a {ftype.value} matching {pattern.pattern}")
    elif value not in _NAMES[ftype]:
        raise ValueError(f"{where} must be one of {', '.join(sorted(_NAMES[ftype]))}")
    return value


def check_fields(
    kind: AuditEvent, fields: Mapping[str, object], *, stored: bool = False
) -> dict[str, FieldValue]:
    """Validate ``fields`` for ``kind`` against the vocabulary; return them normalised.

    Accepts ``bytes`` for hex fields and enum members for name fields (stored as hex and as
    the member name). Raises ``ValueError`` for an unknown kind, a missing, unknown or
    ill-typed field, :class:`~xlink.errors.IdentifierError` (a ``ValueError``) for an
    identifier field that breaks its :mod:`xlink.identifiers` rule; the message never quotes
    the refused value or the unknown field names. ``stored=True`` checks fields read back from
    a log: identifiers are then also allowed the charsets earlier versions wrote.
    """
    if not isinstance(kind, AuditEvent):
        raise ValueError("kind must be an AuditEvent")
    if not isinstance(fields, Mapping):
        raise ValueError(f"{kind.name} fields must be a mapping")
    required, optional = KINDS[kind]
    allowed = required | optional
    names = set(fields)
    if not names <= allowed:
        raise ValueError(
            f"{kind.name} allows only the fields {', '.join(sorted(allowed))}; "
            f"{len(names - allowed)} other field(s) given"
        )
    missing = required - names
    if missing:
        raise ValueError(f"{kind.name} requires the fields {', '.join(sorted(missing))}")
    return {
        name: _check_value(kind, name, FIELDS[name], fields[name], stored) for name in sorted(names)
    }
