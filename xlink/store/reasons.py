"""The store's refusals: machine-readable reasons carried by :class:`~xlink.errors.PolicyDenied`,
and :class:`ReleaseReplayed` for a release delivered twice (docs/store.md).

Reasons are short codes from the audit vocabulary's ``reason`` charset, so each refusal can be
audited as it is raised.
"""

from __future__ import annotations

from typing import Final

from xlink.errors import ReleaseReplayed
from xlink.officers import DENY_TIME_BEFORE_LOG as _DENY_TIME_BEFORE_LOG

__all__ = [
    "CLOCK_REFUSALS",
    "DENY_CONSENT_EXPIRED",
    "DENY_CONSENT_INVALID",
    "DENY_CONSENT_MISMATCH",
    "DENY_CONSENT_REQUIRED",
    "DENY_CREATED_IN_FUTURE",
    "DENY_EXPIRED",
    "DENY_MATCH_ALREADY_RECEIVED",
    "DENY_NOT_A_THIRD_PARTY",
    "DENY_NOT_DECIDED",
    "DENY_PERMITTED_ACTIONS",
    "DENY_PURPOSE_NOT_ALLOWED",
    "DENY_RECORD_UNREADABLE",
    "DENY_TIME_BEFORE_LOG",
    "DENY_TLP",
    "DENY_UNKNOWN_RELEASE",
    "PURGE_EXPIRED",
    "PURGE_RUN",
    "PURGE_UNREADABLE",
    "ReleaseReplayed",
]

#: The release id is not in the store (never received, or purged).
DENY_UNKNOWN_RELEASE: Final = "unknown-release"
#: A read, export or onward share dated before the audit log's latest entry: the clock (or
#: ``--now``) was set back, which must not step back into a retention period (the officers'
#: gate's reason, :func:`xlink.officers.authorize`).
DENY_TIME_BEFORE_LOG: Final = _DENY_TIME_BEFORE_LOG
#: Receiving: the release's signed ``created_at`` is more than an hour after it arrived
#: (retention runs from it, so a date in the future would lengthen it).
DENY_CREATED_IN_FUTURE: Final = "created-in-future"
#: The stated purpose is not one of the MOU's ``purposes``.
DENY_PURPOSE_NOT_ALLOWED: Final = "purpose-not-allowed"
#: The record's retention period is over: it may no longer be used (and the next purge removes it).
DENY_EXPIRED: Final = "retention-expired"
#: Onward sharing: the release is under originator control and no consent token was given.
DENY_CONSENT_REQUIRED: Final = "consent-required"
#: The consent token does not parse or its signature is not the originator's.
DENY_CONSENT_INVALID: Final = "consent-invalid"
#: The consent token is for another release, MOU or third party.
DENY_CONSENT_MISMATCH: Final = "consent-mismatch"
#: The consent token's ``expires_at`` has passed.
DENY_CONSENT_EXPIRED: Final = "consent-expired"
#: TLP:RED and TLP:AMBER+STRICT never leave the recipient organisation (docs/store.md).
DENY_TLP: Final = "tlp-forbids-sharing"
#: IEP ``permitted_actions = none``: the recipient may not act on the record at all.
DENY_PERMITTED_ACTIONS: Final = "permitted-actions-forbid-sharing"
#: The "third party" is one of the MOU's own parties: that is not onward sharing.
DENY_NOT_A_THIRD_PARTY: Final = "not-a-third-party"

#: Receiving within a release transfer (xlink-release-v1 §7 step 11): the release's match handles
#: are not, as a set, the handles of one of our own decided matches of the session.
DENY_NOT_DECIDED: Final = "not-decided"
#: Receiving within a release transfer: every decided match with these handles already has its
#: release (a second release for the same decided match).
DENY_MATCH_ALREADY_RECEIVED: Final = "match-already-received"
#: Receiving within a release transfer: a labelled release (xlink-release-v1 §10.2) that is
#: malformed or does not open with the OPRF outputs of the handles it names.
DENY_LABEL_FAILED: Final = "label-failed"

#: The refusals an honest partner can cause, with its clock set wrong (more than an hour ahead,
#: or so far behind that a release is past its retention): a release transfer answers them
#: ``REFUSED`` with the reason (a query's asker, in RECEIPTS), so its operator learns why, and
#: goes on. Any other refusal ends the transfer or the query session (``BAD_RELEASE``,
#: xlink-release-v1 §10, xlink-query-v1 §7.4).
CLOCK_REFUSALS: Final = frozenset({DENY_CREATED_IN_FUTURE, DENY_EXPIRED})

#: Audit reasons of PURGE entries: one per record removed, one per purge run.
PURGE_EXPIRED: Final = "retention-expired"
PURGE_RUN: Final = "retention-run"
#: A stored record that no longer opens (altered in the file): a read is refused with it, and
#: a purge keeps the record and says so.
DENY_RECORD_UNREADABLE: Final = "record-unreadable"
PURGE_UNREADABLE: Final = DENY_RECORD_UNREADABLE
