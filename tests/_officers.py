"""Officers for tests: deterministic officer keys, an agency's registry with them enrolled, and
their signed acts (xlink.officers)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

from xlink.agency import Agency
from xlink.audit import AuditLog
from xlink.crypto.keys import SigningKey
from xlink.crypto.rand import DeterministicRandom
from xlink.officers import (
    EXPORT_TARGET,
    OFFICERS_DIR,
    OfficerAct,
    OfficerAction,
    OfficerKey,
    OfficerRegistry,
    OfficerRole,
)
from xlink.release import ApprovalQueue, QueueItem

__all__ = [
    "APPROVER",
    "READER",
    "STRANGER",
    "act",
    "approve",
    "deny",
    "enrol_agency_officers",
    "enrol_into",
    "enrol_officers",
    "export_act",
    "officer_key",
    "open_queue",
]

#: Enrolments in tests start this long before the time the test acts at.
ENROLLED_BEFORE = timedelta(days=30)
VALID_FOR = timedelta(days=3650)


def officer_key(label: str) -> OfficerKey:
    """A deterministic officer key named ``label``."""
    return OfficerKey(label, SigningKey(DeterministicRandom(f"officer-{label}")(32)))


READER = officer_key("reader")
APPROVER = officer_key("approver")
STRANGER = officer_key("stranger")  # never enrolled


def enrol_officers(
    workdir: Path,
    *,
    agency: str,
    agency_key: SigningKey,
    audit: AuditLog,
    now: datetime,
    officers: dict[OfficerKey, tuple[OfficerRole, ...]] | None = None,
) -> OfficerRegistry:
    """``workdir``'s registry with ``officers`` enrolled (by default READER as a reader and
    APPROVER as an approver) from ``now - 30 days`` for ten years."""
    registry = OfficerRegistry.load(
        workdir / OFFICERS_DIR, agency_id=agency, agency_key=agency_key.verify_key
    )
    return enrol_into(registry, agency_key=agency_key, audit=audit, now=now, officers=officers)


def enrol_into(
    registry: OfficerRegistry,
    *,
    agency_key: SigningKey,
    audit: AuditLog,
    now: datetime,
    officers: dict[OfficerKey, tuple[OfficerRole, ...]] | None = None,
) -> OfficerRegistry:
    """:func:`enrol_officers` into an open registry (an Agency's ``officers``)."""
    wanted = officers or {READER: (OfficerRole.READER,), APPROVER: (OfficerRole.APPROVER,)}
    known = {e.fingerprint for e in registry.enrolments()}
    for officer, roles in wanted.items():
        if officer.fingerprint not in known:
            registry.enrol(
                officer.public,
                roles,
                agency_key=agency_key,
                audit=audit,
                now=now - ENROLLED_BEFORE,
                valid_for=VALID_FOR,
            )
    return registry


def act(
    officer: OfficerKey,
    action: OfficerAction,
    *,
    agency: str,
    target: bytes,
    now: datetime,
    detail: str = "",
) -> OfficerAct:
    return officer.sign_act(action, agency=agency, target=target, detail=detail, now=now)


def export_act(officer: OfficerKey, *, agency: str, purpose: str, now: datetime) -> OfficerAct:
    return act(
        officer, OfficerAction.EXPORT, agency=agency, target=EXPORT_TARGET, now=now, detail=purpose
    )


def enrol_agency_officers(agency: Agency, now: datetime) -> None:
    """READER and APPROVER enrolled with an open :class:`~xlink.agency.Agency`."""
    enrol_into(agency.officers, agency_key=agency.keys.signing_key, audit=agency.audit, now=now)


@contextlib.contextmanager
def open_queue(
    path: Path, *, agency: str, agency_key: SigningKey, now: datetime
) -> Iterator[ApprovalQueue]:
    """The approval queue at ``path``, audited to ``audit.db`` beside it (signed with
    ``agency_key``), with READER and APPROVER enrolled in ``officers/`` beside it (the
    directory is made if need be)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        audit = stack.enter_context(AuditLog.open(path.parent / "audit.db", signing_key=agency_key))
        officers = enrol_officers(
            path.parent, agency=agency, agency_key=agency_key, audit=audit, now=now
        )
        yield stack.enter_context(ApprovalQueue.open(path, audit=audit, officers=officers))


def approve(queue: ApprovalQueue, item_id: int, *, agency: str, now: datetime) -> QueueItem:
    """APPROVER's signed approval of queue item ``item_id``."""
    target = queue.item(item_id, now=now).release_id
    return queue.approve(
        item_id,
        act=act(APPROVER, OfficerAction.APPROVE, agency=agency, target=target, now=now),
        now=now,
    )


def deny(
    queue: ApprovalQueue, item_id: int, reason: str, *, agency: str, now: datetime
) -> QueueItem:
    """APPROVER's signed denial of queue item ``item_id`` for ``reason``."""
    target = queue.item(item_id, now=now).release_id
    signed = act(APPROVER, OfficerAction.DENY, agency=agency, target=target, now=now, detail=reason)
    return queue.deny(item_id, act=signed, now=now)
