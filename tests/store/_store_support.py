"""Shared builders for the store tests, on top of the release tests' support (keys, the sample
MOU, records): sealed releases, stores and audit logs."""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "release"))

from _officers import APPROVER, READER, STRANGER, act, enrol_officers
from _release_support import (
    CA,
    HANDLE_KEY,
    MOU,
    OTHER_SIGNING,
    SEALING,
    SESSION,
    SIGNING,
    T0,
    US,
    person,
    release_record,
    sample_mou,
)

from xlink.audit import AuditEvent, AuditLog, Entry
from xlink.crypto.rand import DeterministicRandom
from xlink.officers import OfficerAct, OfficerAction, OfficerKey
from xlink.policy import Caveats, Mou, Tlp, mou_digest
from xlink.records.model import Category
from xlink.release import ReleaseRecord, SealedRelease, seal_release, sign_release
from xlink.store import ReleaseStore

__all__ = [
    "APPROVER",
    "AUDIT_KEY",
    "CA",
    "DAY",
    "HANDLE_KEY",
    "MOU",
    "OTHER_SIGNING",
    "READER",
    "SEALING",
    "SESSION",
    "SIGNING",
    "STRANGER",
    "T0",
    "US",
    "audit_kinds",
    "entries_of",
    "make_record",
    "mou_with_caveats",
    "open_store",
    "person",
    "read_act",
    "red_mou",
    "release_record",
    "sample_mou",
    "seal",
]

AUDIT_KEY = SIGNING[US]
DAY = timedelta(days=1)


def make_record(
    n: int = 1,
    *,
    category: Category = Category.WATCHLIST,
    mou: Mou = MOU,
    sender: str = CA,
    **changes: object,
) -> ReleaseRecord:
    """The ``n``-th release of a ``category`` record from ``sender`` to its peer under ``mou``
    (a distinct release id for each ``n``), then ``changes``."""
    release_id = DeterministicRandom(f"store-{n}-{sender}")(16)
    base = release_record(person(category=category), sender=sender, release_id=release_id)
    if mou is not MOU:
        policy = mou.policy_for(category)
        assert policy is not None
        base = dataclasses.replace(base, mou_digest=mou_digest(mou), caveats=policy.caveats)
    return dataclasses.replace(base, **changes) if changes else base  # type: ignore[arg-type]


def seal(record: ReleaseRecord, *, mou: Mou = MOU, key: object = None) -> SealedRelease:
    """``record`` signed by its originator (or ``key``) and sealed to its recipient."""
    signer = SIGNING[record.originator] if key is None else key
    return seal_release(sign_release(record, signer), mou)  # type: ignore[arg-type]


def mou_with_caveats(category: Category, **changes: object) -> Mou:
    """The sample MOU with ``changes`` to the caveats of ``category``."""
    policies = []
    for policy in MOU.categories:
        if policy.category is category:
            caveats: Caveats = dataclasses.replace(policy.caveats, **changes)  # type: ignore[arg-type]
            policy = dataclasses.replace(policy, caveats=caveats)
        policies.append(policy)
    return dataclasses.replace(MOU, categories=tuple(policies))


def red_mou() -> Mou:
    return mou_with_caveats(Category.WATCHLIST, tlp=Tlp.RED)


@contextmanager
def open_store(
    path: Path, *, mou: Mou = MOU, agency: str = US, audit: AuditLog | None = None
) -> Iterator[ReleaseStore]:
    """The store at ``path`` for ``agency``, audited to ``audit`` (or to ``audit.db`` beside
    it), with READER enrolled as a reader and APPROVER as an approver (in ``.officers/``
    beside it, one per agency)."""
    with contextlib.ExitStack() as stack:
        if audit is None:
            audit = stack.enter_context(
                AuditLog.open(path.parent / "audit.db", signing_key=AUDIT_KEY)
            )
        # Enrolled in a set-up directory with a log of its own, so that the store's log holds
        # only what the store audits.
        setup = path.parent / f".officers-{agency}"
        setup.mkdir(exist_ok=True)
        with AuditLog.open(setup / "audit.db", signing_key=SIGNING[agency]) as setup_log:
            officers = enrol_officers(
                setup, agency=agency, agency_key=SIGNING[agency], audit=setup_log, now=T0
            )
        store = stack.enter_context(
            ReleaseStore.open(
                path,
                mou=mou,
                sealing_key=SEALING[agency],
                signing_key=SIGNING[agency],
                audit=audit,
                officers=officers,
            )
        )
        yield store


def read_act(
    release_id: bytes,
    now: datetime,
    *,
    purpose: str = "border-security",
    officer: OfficerKey = READER,
    agency: str = US,
) -> OfficerAct:
    """READER's (or ``officer``'s) signed read of ``release_id`` at ``now`` for ``purpose``."""
    return act(
        officer, OfficerAction.READ, agency=agency, target=release_id, now=now, detail=purpose
    )


def audit_kinds(log: AuditLog) -> list[AuditEvent]:
    return [e.kind for e in log.entries()]


def entries_of(log: AuditLog, kind: AuditEvent) -> list[Entry]:
    return [e for e in log.entries() if e.kind is kind]
