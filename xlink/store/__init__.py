"""The recipient's store: released records kept sealed at rest in SQLite, under the MOU's
caveats (DESIGN §2 step 7; guide: docs/store.md).

Recipient side::

    with ReleaseStore.open("store.db", mou=mou, sealing_key=skey, signing_key=key,
                           audit=audit, officers=officers) as store:
        receipt = store.receive(sealed, expected_session_id=sid, now=now)  # back to originator
        act = officer.sign_act(OfficerAction.READ, agency=me, target=release_id,
                               detail="border-security", now=now)     # the officer's own key
        record = store.read(release_id, act=act, now=now)  # checked, audited
        store.purge(now)                                   # retention: audited

Onward sharing needs the originator's consent token (:func:`issue_consent` on its side), and
TLP:RED and TLP:AMBER+STRICT records never leave. :func:`to_stix_bundle` exports records as
STIX 2.1 with the standard TLP 2.0 markings.
"""

from __future__ import annotations

from xlink.store.consent import DST_CONSENT, ConsentToken, issue_consent, verify_consent
from xlink.store.onward import NEVER_SHARED, check_onward_sharing, consent_required
from xlink.store.reasons import (
    DENY_CONSENT_EXPIRED,
    DENY_CONSENT_INVALID,
    DENY_CONSENT_MISMATCH,
    DENY_CONSENT_REQUIRED,
    DENY_EXPIRED,
    DENY_NOT_A_THIRD_PARTY,
    DENY_PERMITTED_ACTIONS,
    DENY_PURPOSE_NOT_ALLOWED,
    DENY_TLP,
    DENY_UNKNOWN_RELEASE,
    PURGE_EXPIRED,
    PURGE_RUN,
    ReleaseReplayed,
)
from xlink.store.stix import (
    TLP2_EXTENSION_ID,
    TLP2_MARKINGS,
    XLINK_EXTENSION_ID,
    XLINK_STIX_NAMESPACE,
    to_stix_bundle,
)
from xlink.store.store import ReceivedRelease, ReleaseStore, StoredRelease

__all__ = [
    "DENY_CONSENT_EXPIRED",
    "DENY_CONSENT_INVALID",
    "DENY_CONSENT_MISMATCH",
    "DENY_CONSENT_REQUIRED",
    "DENY_EXPIRED",
    "DENY_NOT_A_THIRD_PARTY",
    "DENY_PERMITTED_ACTIONS",
    "DENY_PURPOSE_NOT_ALLOWED",
    "DENY_TLP",
    "DENY_UNKNOWN_RELEASE",
    "DST_CONSENT",
    "NEVER_SHARED",
    "PURGE_EXPIRED",
    "PURGE_RUN",
    "TLP2_EXTENSION_ID",
    "TLP2_MARKINGS",
    "XLINK_EXTENSION_ID",
    "XLINK_STIX_NAMESPACE",
    "ConsentToken",
    "ReceivedRelease",
    "ReleaseReplayed",
    "ReleaseStore",
    "StoredRelease",
    "check_onward_sharing",
    "consent_required",
    "issue_consent",
    "to_stix_bundle",
    "verify_consent",
]
