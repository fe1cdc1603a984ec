"""Officers: people the agency has enrolled, each holding their own key, whose signed acts are
the only way to read, export or share a released record or to approve or deny a release
(docs/store.md, "Officers").

Usage::

    officer = OfficerKey.load(officer_dir, officer_passphrase)
    act = officer.sign_act(OfficerAction.READ, agency="CA-RCMP", target=release_id,
                           detail="border-security", now=now)
    record = store.read(release_id, act=act, now=now)   # the store checks the enrolment

Nothing accepts a bare fingerprint: an unenrolled, revoked or expired officer, an act for
another release, purpose or time, or a bad signature is refused with a reason and audited.
"""

from __future__ import annotations

from xlink.officers._acts import EXPORT_TARGET, OfficerAct, OfficerAction, act_message
from xlink.officers._keys import (
    OFFICER_KEY_FILE,
    OFFICER_PUBLIC_FILE,
    OfficerKey,
    OfficerPublic,
    load_officer_public,
)
from xlink.officers._registry import (
    CLOCK_TOLERANCE,
    DENY_OFFICER_ACT,
    DENY_OFFICER_EXPIRED,
    DENY_OFFICER_REPLAYED,
    DENY_OFFICER_REVOKED,
    DENY_OFFICER_ROLE,
    DENY_OFFICER_SIGNATURE,
    DENY_OFFICER_UNKNOWN,
    DENY_TIME_BEFORE_LOG,
    OFFICERS_DIR,
    REFUSAL_HINTS,
    Enrolment,
    OfficerRegistry,
    OfficerRole,
    authorize,
)

__all__ = [
    "CLOCK_TOLERANCE",
    "DENY_OFFICER_ACT",
    "DENY_OFFICER_EXPIRED",
    "DENY_OFFICER_REPLAYED",
    "DENY_OFFICER_REVOKED",
    "DENY_OFFICER_ROLE",
    "DENY_OFFICER_SIGNATURE",
    "DENY_OFFICER_UNKNOWN",
    "DENY_TIME_BEFORE_LOG",
    "EXPORT_TARGET",
    "OFFICERS_DIR",
    "OFFICER_KEY_FILE",
    "OFFICER_PUBLIC_FILE",
    "REFUSAL_HINTS",
    "Enrolment",
    "OfficerAct",
    "OfficerAction",
    "OfficerKey",
    "OfficerPublic",
    "OfficerRegistry",
    "OfficerRole",
    "act_message",
    "authorize",
    "load_officer_public",
]
