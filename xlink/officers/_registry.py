"""The officers an agency has enrolled: signed enrolment and revocation files in the workdir's
``officers/`` directory, and the one check every read, export, share, approval and denial goes
through (docs/store.md, "Officers").

An enrolment is signed by the agency's signing key: it names the officer's verify key, the
roles it holds and how long it is valid. A revocation, also signed, ends it. Loading checks
every file; a file that does not verify is an error, not an officer left out, so that tampering
with the directory is seen at once. Enrolling and revoking are audited as ``KEY_EVENT``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path
from types import MappingProxyType
from typing import Final

from xlink import canonical
from xlink.audit import AuditEvent, AuditLog
from xlink.crypto.keyfiles import write_file
from xlink.crypto.keys import KEY_SIZE, SIGNATURE_SIZE, SigningKey, VerifyKey
from xlink.documents import DocumentError, parse_document, read_document
from xlink.errors import DecryptionError, InputError, PolicyDenied
from xlink.identifiers import check_agency_id
from xlink.officers._acts import OfficerAct, OfficerAction
from xlink.officers._keys import OfficerPublic, check_officer_name

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
    "DST_ENROLMENT",
    "DST_REVOCATION",
    "OFFICERS_DIR",
    "Enrolment",
    "OfficerRegistry",
    "OfficerRole",
    "authorize",
]

OFFICERS_DIR: Final = "officers"
ENROLMENT_FORMAT: Final = "xlink-officer-enrolment-v1"
REVOCATION_FORMAT: Final = "xlink-officer-revocation-v1"
#: Domain separation of the agency's signatures over enrolments and revocations.
DST_ENROLMENT: Final = b"xlink/v1/officer-enrolment"
DST_REVOCATION: Final = b"xlink/v1/officer-revocation"
#: How far ``now`` may be behind the latest time in the audit log before an act is refused
#: (``time-before-log``): a clock corrected by a few seconds is not an attack; a clock (or
#: ``--now``) set back to step into a retention period or an enrolment is.
CLOCK_TOLERANCE: Final = timedelta(minutes=5)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

#: Refusal reasons (the audit vocabulary's reason charset).
DENY_OFFICER_UNKNOWN: Final = "officer-not-enrolled"
DENY_OFFICER_REVOKED: Final = "officer-revoked"
DENY_OFFICER_EXPIRED: Final = "officer-enrolment-expired"
DENY_OFFICER_ROLE: Final = "officer-not-authorised"
DENY_OFFICER_SIGNATURE: Final = "officer-signature-invalid"
DENY_OFFICER_ACT: Final = "officer-act-mismatch"
DENY_OFFICER_REPLAYED: Final = "officer-act-replayed"
#: An act dated before the audit log's latest entry (see :data:`CLOCK_TOLERANCE`).
DENY_TIME_BEFORE_LOG: Final = "time-before-log"

#: What each refusal of an officer's act asks of the user, said after the reason.
REFUSAL_HINTS: Final[Mapping[str, str]] = MappingProxyType(
    {
        DENY_OFFICER_UNKNOWN: "this officer's key is not enrolled in the workdir: the agency "
        "enrols it with `xlink officer enrol --officer DIR/officer.json --role ...`",
        DENY_OFFICER_REVOKED: "this officer's key was revoked in the workdir, for good: "
        "enrol a new key (`xlink officer keygen`, then `xlink officer enrol`)",
        DENY_OFFICER_EXPIRED: "this officer's enrolment is not in force at the act's time (run "
        "out, or not begun yet): a key is enrolled once, so after it runs out enrol a new key "
        "(`xlink officer keygen`, then `xlink officer enrol`)",
        DENY_OFFICER_ROLE: "this officer is not enrolled for this: an approver approves and "
        "denies, a reader reads, exports and shares onward (`xlink officer list`)",
        DENY_TIME_BEFORE_LOG: "the act is dated before the audit log's latest entry: check "
        "this machine's clock (or --now)",
    }
)


class OfficerRole(Enum):
    """What an enrolment allows: ``reader`` reads, exports and shares onward; ``approver``
    approves and denies releases waiting in the queue."""

    READER = "reader"
    APPROVER = "approver"


ROLE_ACTIONS: Final[Mapping[OfficerRole, frozenset[OfficerAction]]] = MappingProxyType(
    {
        OfficerRole.READER: frozenset(
            {OfficerAction.READ, OfficerAction.EXPORT, OfficerAction.SHARE}
        ),
        OfficerRole.APPROVER: frozenset({OfficerAction.APPROVE, OfficerAction.DENY}),
    }
)


def _aware(when: object) -> bool:
    return isinstance(when, datetime) and when.utcoffset() is not None


def _us(when: datetime) -> int:
    if not isinstance(when, datetime) or when.utcoffset() is None:
        raise ValueError("times must be aware datetimes")
    return (when - _EPOCH) // timedelta(microseconds=1)


def _time(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _signed(dst: bytes, body: list[object]) -> bytes:
    return len(dst).to_bytes(4, "big") + dst + canonical.pack(1, body)


@dataclass(frozen=True, slots=True)
class Enrolment:
    """One officer enrolled by ``agency_id``: their key, roles and validity."""

    agency_id: str
    name: str
    verify_key: VerifyKey
    roles: frozenset[OfficerRole]
    enrolled_at: datetime
    expires_at: datetime
    signature: bytes

    @property
    def fingerprint(self) -> str:
        return self.verify_key.fingerprint()

    def message(self) -> bytes:
        roles = sorted(r.value for r in self.roles)
        return _signed(
            DST_ENROLMENT,
            [
                self.agency_id,
                self.name,
                bytes(self.verify_key),
                roles,
                _us(self.enrolled_at),
                _us(self.expires_at),
            ],
        )

    def to_json(self) -> str:
        doc = {
            "format": ENROLMENT_FORMAT,
            "agency_id": self.agency_id,
            "name": self.name,
            "verify_key": bytes(self.verify_key).hex(),
            "roles": sorted(r.value for r in self.roles),
            "enrolled_at": _iso(self.enrolled_at),
            "expires_at": _iso(self.expires_at),
            "signature": self.signature.hex(),
        }
        return json.dumps(doc, indent=2) + "\n"


@dataclass(frozen=True, slots=True)
class _Revocation:
    agency_id: str
    verify_key: VerifyKey
    revoked_at: datetime
    signature: bytes

    def message(self) -> bytes:
        return _signed(
            DST_REVOCATION, [self.agency_id, bytes(self.verify_key), _us(self.revoked_at)]
        )

    def to_json(self) -> str:
        doc = {
            "format": REVOCATION_FORMAT,
            "agency_id": self.agency_id,
            "verify_key": bytes(self.verify_key).hex(),
            "revoked_at": _iso(self.revoked_at),
            "signature": self.signature.hex(),
        }
        return json.dumps(doc, indent=2) + "\n"


def _hex(data: dict[str, object], name: str, size: int, where: str) -> bytes:
    value = data.get(name)
    if not isinstance(value, str) or len(value) != 2 * size or value != value.lower():
        raise InputError(f"{where}: {name} must be {2 * size} lower-case hex digits")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise InputError(f"{where}: {name} must be {2 * size} lower-case hex digits") from None


def _when(data: dict[str, object], name: str, where: str) -> datetime:
    value = data.get(name)
    try:
        if not isinstance(value, str):
            raise ValueError
        parsed = datetime.fromisoformat(value)
        if parsed.utcoffset() is None:
            raise ValueError
        return parsed.astimezone(UTC)  # OverflowError: in year 1 or 9999 once in UTC
    except (ValueError, OverflowError):
        raise InputError(f"{where}: {name} must be an ISO 8601 time with a UTC offset") from None


def _document(path: Path, members: set[str], fmt: str) -> dict[str, object]:
    try:
        data = parse_document(read_document(path), "json")
    except OSError:
        raise InputError(f"{path}: cannot read it") from None
    except DocumentError as exc:
        raise InputError(f"{path}: {exc.reason}") from None
    if not isinstance(data, dict) or set(data) != members or data.get("format") != fmt:
        raise InputError(f"{path}: not an {fmt} document")
    return data


def _key(raw: bytes, where: str) -> VerifyKey:
    try:
        return VerifyKey(raw)
    except ValueError:
        raise InputError(f"{where}: verify_key is not an Ed25519 public key") from None


def _parse_enrolment(path: Path) -> Enrolment:
    members = {"format", "agency_id", "name", "verify_key", "roles", "enrolled_at", "expires_at"}
    data = _document(path, members | {"signature"}, ENROLMENT_FORMAT)
    agency = data["agency_id"]
    roles = data["roles"]
    try:
        check_agency_id(agency, what="agency_id")
        name = check_officer_name(data["name"])
        if not isinstance(roles, list) or not roles or len(set(roles)) != len(roles):
            raise ValueError
        parsed_roles = frozenset(OfficerRole(r) for r in roles)
    except (InputError, ValueError, TypeError) as exc:  # TypeError: a role that is a list
        raise InputError(f"{path}: invalid enrolment ({exc})") from None
    assert isinstance(agency, str)
    return Enrolment(
        agency,
        name,
        _key(_hex(data, "verify_key", KEY_SIZE, str(path)), str(path)),
        parsed_roles,
        _when(data, "enrolled_at", str(path)),
        _when(data, "expires_at", str(path)),
        _hex(data, "signature", SIGNATURE_SIZE, str(path)),
    )


def _parse_revocation(path: Path) -> _Revocation:
    members = {"format", "agency_id", "verify_key", "revoked_at", "signature"}
    data = _document(path, members, REVOCATION_FORMAT)
    agency = data["agency_id"]
    if not isinstance(agency, str):
        raise InputError(f"{path}: agency_id must be a string")
    return _Revocation(
        agency,
        _key(_hex(data, "verify_key", KEY_SIZE, str(path)), str(path)),
        _when(data, "revoked_at", str(path)),
        _hex(data, "signature", SIGNATURE_SIZE, str(path)),
    )


def _check_signature(signature: bytes, message: bytes, agency_key: VerifyKey, path: Path) -> None:
    try:
        agency_key.verify(signature, message)
    except DecryptionError:
        raise InputError(
            f"{path}: not signed by this agency's key (altered, or from another agency)"
        ) from None


class OfficerRegistry:
    """The enrolments and revocations of one agency, each verified against its signing key.
    Load with :meth:`load`; add with :meth:`enrol` and :meth:`revoke`."""

    __slots__ = ("_enrolments", "_revoked", "agency_id", "directory")

    def __init__(
        self,
        agency_id: str,
        directory: Path,
        enrolments: Iterable[Enrolment],
        revoked: Mapping[str, datetime],
    ) -> None:
        self.agency_id = agency_id
        self.directory = directory
        self._enrolments = {e.fingerprint: e for e in enrolments}
        self._revoked = dict(revoked)

    @classmethod
    def load(
        cls,
        directory: str | Path,
        *,
        agency_id: str,
        agency_key: VerifyKey,
        audit: AuditLog | None = None,
    ) -> OfficerRegistry:
        """Read every enrolment (``<fingerprint>.json``) and revocation
        (``<fingerprint>.revoked.json``) in ``directory`` (none if it does not exist).
        ``InputError`` naming the file for one that does not parse, is for another agency or
        officer than its name says, or is not signed by ``agency_key``. With ``audit`` (the
        agency's log), every officer key the log records as revoked (``KEY_EVENT REVOKED``)
        stays revoked even if its revocation file was deleted."""
        path = Path(directory)
        enrolments: list[Enrolment] = []
        revoked: dict[str, datetime] = {}
        files = sorted(path.glob("*.json")) if path.is_dir() else []
        for file in files:
            if file.name.endswith(".revoked.json"):
                revocation = _parse_revocation(file)
                _check_signature(revocation.signature, revocation.message(), agency_key, file)
                fingerprint = revocation.verify_key.fingerprint()
                expected = f"{fingerprint}.revoked.json"
                owner = revocation.agency_id
                revoked[fingerprint] = revocation.revoked_at
            else:
                enrolment = _parse_enrolment(file)
                _check_signature(enrolment.signature, enrolment.message(), agency_key, file)
                fingerprint = enrolment.fingerprint
                expected = f"{fingerprint}.json"
                owner = enrolment.agency_id
                enrolments.append(enrolment)
            if file.name != expected or owner != agency_id:
                raise InputError(f"{file}: is not an enrolment file of {agency_id} by that name")
        if audit is not None:
            for entry in audit.entries(kinds=(AuditEvent.KEY_EVENT,)):
                fields = entry.fields
                if (
                    entry.kind is AuditEvent.KEY_EVENT
                    and fields.get("action") == "REVOKED"
                    and fields.get("key_type") == "ED25519"
                ):
                    revoked.setdefault(str(fields["fingerprint"]), entry.time)
        return cls(agency_id, path, enrolments, revoked)

    def enrolments(self) -> tuple[Enrolment, ...]:
        """Every enrolment, revoked or not, by fingerprint."""
        return tuple(self._enrolments[f] for f in sorted(self._enrolments))

    def revoked_at(self, fingerprint: str) -> datetime | None:
        return self._revoked.get(fingerprint)

    def enrol(
        self,
        officer: OfficerPublic,
        roles: Iterable[OfficerRole],
        *,
        agency_key: SigningKey,
        audit: AuditLog,
        now: datetime,
        valid_for: timedelta,
    ) -> Enrolment:
        """Sign and write an enrolment for ``officer`` (valid from ``now`` for ``valid_for``);
        audited as ``KEY_EVENT`` ``ENROLLED``. ``InputError`` if the officer is enrolled
        already (revoked keys are not enrolled again: make a new key)."""
        role_set = frozenset(roles)
        if not role_set:
            raise InputError("an enrolment needs at least one role")
        if valid_for <= timedelta(0):
            raise InputError("an enrolment must be valid for a positive time")
        fingerprint = officer.verify_key.fingerprint()
        if fingerprint in self._enrolments or fingerprint in self._revoked:
            raise InputError(f"officer key {fingerprint} is enrolled already (or was revoked)")
        unsigned = Enrolment(
            self.agency_id, officer.name, officer.verify_key, role_set, now, now + valid_for, b""
        )
        enrolment = Enrolment(
            self.agency_id,
            officer.name,
            officer.verify_key,
            role_set,
            now,
            now + valid_for,
            agency_key.sign(unsigned.message()),
        )
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.directory / f"{fingerprint}.json"
        if path.exists():
            raise InputError(f"{path}: already exists; refusing to overwrite it")
        # Audited first: a failure after it leaves an entry for an enrolment that is not in
        # force (fail closed), never an enrolment in force without its entry.
        fields = {"action": "ENROLLED", "key_type": "ED25519", "fingerprint": fingerprint}
        audit.append(AuditEvent.KEY_EVENT, fields, now=now)
        write_file(path, enrolment.to_json().encode(), overwrite=False)
        self._enrolments[fingerprint] = enrolment
        return enrolment

    def revoke(
        self, fingerprint: str, *, agency_key: SigningKey, audit: AuditLog, now: datetime
    ) -> None:
        """Sign and write a revocation: the officer's acts are refused for good, whatever time
        they state.
        Audited as ``KEY_EVENT`` ``REVOKED``. ``InputError`` if not enrolled or revoked
        already."""
        enrolment = self._enrolments.get(fingerprint)
        if enrolment is None or fingerprint in self._revoked:
            raise InputError(f"officer key {fingerprint} is not enrolled (or already revoked)")
        unsigned = _Revocation(self.agency_id, enrolment.verify_key, now, b"")
        revocation = _Revocation(
            self.agency_id, enrolment.verify_key, now, agency_key.sign(unsigned.message())
        )
        path = self.directory / f"{fingerprint}.revoked.json"
        # Audited first: the log's entry alone keeps the officer revoked (:meth:`load`).
        fields = {"action": "REVOKED", "key_type": "ED25519", "fingerprint": fingerprint}
        audit.append(AuditEvent.KEY_EVENT, fields, now=now)
        self._revoked[fingerprint] = now
        write_file(path, revocation.to_json().encode(), overwrite=False)

    def check(
        self,
        act: OfficerAct,
        *,
        action: OfficerAction,
        target: bytes,
        detail: str,
        now: datetime,
    ) -> str:
        """Return the officer's fingerprint if ``act`` may do ``action`` on ``target`` for
        ``detail`` at ``now``; else :class:`~xlink.errors.PolicyDenied` with one reason:
        ``officer-not-enrolled``, ``officer-revoked`` (a revocation is for good, whatever
        ``now`` says), ``officer-enrolment-expired``, ``officer-not-authorised`` (no role
        allows the action), ``officer-act-mismatch`` (an act for another agency, action,
        release, purpose, or a time other than ``now`` exactly, so that the audit entry dated
        ``now`` holds everything the officer signed) or ``officer-signature-invalid``."""
        if not isinstance(act, OfficerAct) or not _aware(act.time):
            raise PolicyDenied([DENY_OFFICER_ACT])
        fingerprint = act.fingerprint
        enrolment = self._enrolments.get(fingerprint)
        if enrolment is None:
            raise PolicyDenied([DENY_OFFICER_UNKNOWN])
        if fingerprint in self._revoked:
            raise PolicyDenied([DENY_OFFICER_REVOKED])
        if not enrolment.enrolled_at <= now < enrolment.expires_at:
            raise PolicyDenied([DENY_OFFICER_EXPIRED])
        if not any(action in ROLE_ACTIONS[role] for role in enrolment.roles):
            raise PolicyDenied([DENY_OFFICER_ROLE])
        if (
            act.agency != self.agency_id
            or act.action is not action
            or act.target != target
            or act.detail != detail
            or act.time != now
        ):
            raise PolicyDenied([DENY_OFFICER_ACT])
        if not act.verify():
            raise PolicyDenied([DENY_OFFICER_SIGNATURE])
        return fingerprint


def authorize(
    registry: OfficerRegistry | None,
    act: OfficerAct,
    *,
    action: OfficerAction,
    target: bytes,
    detail: str,
    now: datetime,
    audit: AuditLog,
) -> str:
    """The one gate of every officer act (store reads, exports and onward shares; approvals
    and denials): ``now`` is not before the audit log's latest time (``time-before-log``),
    :meth:`OfficerRegistry.check` passes, and the act was never used before
    (``officer-act-replayed``: its signature is spent in the audit database). Returns the
    officer's fingerprint, else :class:`~xlink.errors.PolicyDenied`. ``ValueError`` without a
    registry (a store or queue opened without the agency's officers)."""
    if registry is None:
        raise ValueError("opened without the agency's officers: officer acts are refused")
    head = audit.head_time()
    if head is not None and now < head - CLOCK_TOLERANCE:
        raise PolicyDenied([DENY_TIME_BEFORE_LOG])
    fingerprint = registry.check(act, action=action, target=target, detail=detail, now=now)
    if not audit.spend_once(act.signature):
        raise PolicyDenied([DENY_OFFICER_REPLAYED])
    return fingerprint
