"""May a stored release be shared with a third party? Pure policy over the release's caveats
(TLP 2.0, IEP 2.0 permitted actions, originator control) and an optional consent token
(DESIGN §6; docs/store.md, "Onward sharing").

Reading of TLP 2.0 (FIRST, https://www.first.org/tlp/): TLP:RED is for the named recipients
only and TLP:AMBER+STRICT for the recipient organisation only; a third-party agency is outside
both, so xlink refuses them whatever consent is shown (an originator who wants a third party to
have such a record releases it to that party itself, under its own MOU). TLP:AMBER reaches the
recipient organisation and its clients: another agency is beyond that, and TLP 2.0 asks for the
source's explicit permission to share more widely, which is what a consent token is. TLP:GREEN
and TLP:CLEAR need no permission from TLP itself.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from xlink.errors import PolicyDenied
from xlink.policy.mou import Caveats, Mou, PermittedAction, Tlp
from xlink.release import ReleaseRecord
from xlink.store.consent import ConsentToken, verify_consent
from xlink.store.reasons import (
    DENY_CONSENT_REQUIRED,
    DENY_NOT_A_THIRD_PARTY,
    DENY_PERMITTED_ACTIONS,
    DENY_TLP,
)

__all__ = ["NEVER_SHARED", "check_onward_sharing", "consent_required"]

#: TLP labels that never leave the recipient organisation, with or without consent.
NEVER_SHARED: Final = frozenset({Tlp.RED, Tlp.AMBER_STRICT})
# TLP labels beyond which sharing needs the source's explicit permission (TLP 2.0).
_TLP_NEEDS_PERMISSION: Final = frozenset({Tlp.AMBER})


def consent_required(caveats: Caveats) -> bool:
    """True when onward sharing needs the originator's consent: originator control (the
    third-party rule), IEP ``contact-for-instruction`` (the token is the instruction), or
    TLP:AMBER (TLP 2.0's explicit permission to share beyond the organisation)."""
    return (
        caveats.originator_control
        or caveats.permitted_actions is PermittedAction.CONTACT_FOR_INSTRUCTION
        or caveats.tlp in _TLP_NEEDS_PERMISSION
    )


def check_onward_sharing(
    record: ReleaseRecord,
    *,
    mou: Mou,
    third_party: str,
    consent: ConsentToken | None,
    now: datetime,
) -> None:
    """Raise :class:`~xlink.errors.PolicyDenied` unless ``record`` may go to ``third_party``.

    In this order, first refusal wins: ``third_party`` is an MOU party
    (``not-a-third-party``); TLP:RED or TLP:AMBER+STRICT (``tlp-forbids-sharing``); IEP
    ``permitted_actions = none`` (``permitted-actions-forbid-sharing``); consent required
    (:func:`consent_required`) and none given (``consent-required``); a given token that does
    not verify (:func:`~xlink.store.verify_consent`'s reasons). A token given when none is
    required is still checked: a bad token is never ignored.
    """
    if third_party in mou.agency_ids:
        raise PolicyDenied([DENY_NOT_A_THIRD_PARTY])
    caveats = record.caveats
    if caveats.tlp in NEVER_SHARED:
        raise PolicyDenied([DENY_TLP])
    if caveats.permitted_actions is PermittedAction.NONE:
        raise PolicyDenied([DENY_PERMITTED_ACTIONS])
    if consent is None:
        if consent_required(caveats):
            raise PolicyDenied([DENY_CONSENT_REQUIRED])
        return
    verify_consent(consent, record, mou=mou, third_party=third_party, now=now)
