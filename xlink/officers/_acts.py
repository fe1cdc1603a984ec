"""What an officer signs: one act (a read, an export, an approval, a denial, an onward share)
on one release, for one stated purpose or reason, at one time (docs/store.md, "Officers").

An act is never sent anywhere: it is made where the officer unlocks their key and checked by
the store or the approval queue against the agency's enrolments before anything is opened or
decided. Its signature is kept in the audit entry of the action, so an auditor can check, entry
by entry, that an enrolled officer asked for it (:func:`act_message` rebuilds the signed bytes
from what the entry holds).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Final

from xlink import canonical
from xlink.crypto.keys import SIGNATURE_SIZE, VerifyKey
from xlink.errors import DecryptionError

__all__ = [
    "DST_OFFICER_ACT",
    "EXPORT_TARGET",
    "OfficerAct",
    "OfficerAction",
    "act_message",
]

#: Domain separation of an officer's signature over an act.
DST_OFFICER_ACT: Final = b"xlink/v1/officer-act"
_ACT_VERSION: Final = 1
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
#: The target of an export, which names no single release: every record still in retention.
EXPORT_TARGET: Final = bytes(16)


class OfficerAction(Enum):
    """What an officer may do with released records. The value is what is signed."""

    READ = "read"
    EXPORT = "export"
    SHARE = "share"
    APPROVE = "approve"
    DENY = "deny"


def _micros(when: datetime) -> int:
    if not isinstance(when, datetime) or when.utcoffset() is None:
        raise ValueError("an act's time must be an aware datetime")
    return (when - _EPOCH) // timedelta(microseconds=1)


def act_message(
    *, agency: str, action: OfficerAction, target: bytes, detail: str, time: datetime
) -> bytes:
    """The exact bytes an officer signs: the domain tag, then canonical msgpack of the agency
    the act is addressed to, the action, the 16-byte target (a release id, or
    :data:`EXPORT_TARGET`), the purpose or reason, and the time in microseconds."""
    if type(target) is not bytes or len(target) != 16:
        raise ValueError("an act's target is a 16-byte release id")
    body = canonical.pack(_ACT_VERSION, [agency, action.value, target, detail, _micros(time)])
    return len(DST_OFFICER_ACT).to_bytes(4, "big") + DST_OFFICER_ACT + body


@dataclass(frozen=True, slots=True)
class OfficerAct:
    """One signed act. Make it with :meth:`xlink.officers.OfficerKey.sign_act`; check it with
    :meth:`xlink.officers.OfficerRegistry.check`."""

    agency: str
    action: OfficerAction
    target: bytes
    detail: str
    time: datetime
    officer: VerifyKey
    signature: bytes

    def message(self) -> bytes:
        return act_message(
            agency=self.agency,
            action=self.action,
            target=self.target,
            detail=self.detail,
            time=self.time,
        )

    def verify(self) -> bool:
        """Whether the signature is the officer key's over :meth:`message`."""
        if type(self.signature) is not bytes or len(self.signature) != SIGNATURE_SIZE:
            return False
        try:
            self.officer.verify(self.signature, self.message())
        except (DecryptionError, ValueError):
            return False
        return True

    @property
    def fingerprint(self) -> str:
        """The officer's key fingerprint: what the audit entry names."""
        return self.officer.fingerprint()
