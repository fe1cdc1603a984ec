"""Recipes: release a whole :class:`~xlink.decide.Decision`, or receive one release, in one call
(DESIGN §2 steps 6-7; docs/release.md).

The layer below (:func:`decide_release`, :class:`ReleaseRecord`, :func:`sign_release`,
:func:`seal_release`, :func:`open_release`, :class:`ApprovalQueue`) is for integrators who need
the parts; these calls make no choices the MOU does not already make.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from xlink.audit import AuditEvent, AuditLog
from xlink.crypto.keys import SealingKey, SigningKey
from xlink.crypto.rand import RandomSource
from xlink.decide import DecidedMatch, Decision
from xlink.errors import PolicyDenied
from xlink.policy.document import mou_digest
from xlink.policy.mou import Mou
from xlink.records.model import PersonRecord
from xlink.release.handles import SourceHandleKey, make_source_handle
from xlink.release.policy import ReleaseContent, decide_release
from xlink.release.queue import ApprovalQueue, QueueItem
from xlink.release.receipt import issue_receipt
from xlink.release.record import (
    ID_SIZE,
    ReleaseRecord,
    encode_release,
    release_digest,
    sign_release,
)
from xlink.release.seal import SealedRelease, open_release, seal_release

__all__ = [
    "DeniedRelease",
    "ReleaseBatch",
    "build_release",
    "receive_release",
    "release_approved",
    "release_decided",
]


@dataclass(frozen=True, slots=True)
class DeniedRelease:
    """A decided match the MOU does not let out: the local record id and the reasons."""

    record_id: str
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ReleaseBatch:
    """What :func:`release_decided` did with each decided match: sealed and ready to send,
    queued for approval, or denied by the MOU."""

    sealed: tuple[SealedRelease, ...]
    queued: tuple[QueueItem, ...]
    denied: tuple[DeniedRelease, ...]


def build_release(
    content: ReleaseContent,
    match: DecidedMatch,
    source_id: str,
    *,
    session_id: bytes,
    mou: Mou,
    originator: str,
    handle_key: SourceHandleKey,
    rng: RandomSource,
    now: datetime,
) -> ReleaseRecord:
    """The release record for one decided match: a fresh release id and source handle from
    ``rng`` (the source id goes into the handle's MAC and nowhere else), bound to the session,
    the MOU and the pair's match handles (spec §4.1)."""
    return ReleaseRecord(
        release_id=rng(ID_SIZE),
        session_id=session_id,
        mou_id=mou.id,
        mou_digest=mou_digest(mou),
        originator=originator,
        recipient=mou.peer_of(originator).agency_id,
        category=content.category,
        match_handles=match.handles,
        created_at=now,
        fields=content.fields,
        caveats=content.caveats,
        grading=content.grading,
        source_handle=make_source_handle(handle_key, source_id, rng),
    )


def _seal(
    record: ReleaseRecord, mou: Mou, key: SigningKey, audit: AuditLog | None, now: datetime
) -> SealedRelease:
    sealed = seal_release(sign_release(record, key), mou)
    if audit is not None:
        fields = {
            "session": record.session_id,
            "handle": record.release_id,
            "digest": sealed.digest,
            "category": record.category.value,
        }
        audit.append(AuditEvent.RELEASE_SENT, fields, now=now)
    return sealed


def release_decided(
    decision: Decision,
    records: Iterable[PersonRecord],
    *,
    mou: Mou,
    originator: str,
    signing_key: SigningKey,
    handle_key: SourceHandleKey,
    rng: RandomSource,
    now: datetime,
    queue: ApprovalQueue | None = None,
    audit: AuditLog | None = None,
) -> ReleaseBatch:
    """Release what the MOU allows of every decided match (DESIGN §2 step 6).

    A match scoring below the MOU's ``match_threshold`` is denied (``below-mou-threshold``),
    whatever threshold the decision used. For the others, :func:`decide_release` cuts the record
    to its tearline. A denial is collected (and audited as ``RELEASE_DENIED`` under the pair's
    first match handle). When
    ``mou.approval_required`` the release waits in ``queue`` (``ValueError`` if none is given);
    otherwise it is signed, sealed to the peer and audited as ``RELEASE_SENT``. ``records``
    are the originator's own (``KeyError`` if a decided record is missing).
    """
    if mou.approval_required and queue is None:
        raise ValueError("this MOU requires approval: give an ApprovalQueue")
    by_id = {r.record_id: r for r in records}
    sealed: list[SealedRelease] = []
    queued: list[QueueItem] = []
    denied: list[DeniedRelease] = []
    for match in decision.matches:
        record = by_id[match.local_record_id]
        try:
            if match.score < mou.match_threshold:
                raise PolicyDenied(["below-mou-threshold"])
            content = decide_release(record, mou, originator=originator)
        except PolicyDenied as exc:
            denied.append(DeniedRelease(record.record_id, exc.reasons))
            if audit is not None:
                fields = {
                    "session": decision.session_id,
                    "handle": match.handles[0],
                    "reason": exc.reasons[0],
                }
                audit.append(AuditEvent.RELEASE_DENIED, fields, now=now)
            continue
        source_id = record.source.source_id if record.source is not None else ""
        release = build_release(
            content,
            match,
            source_id,
            session_id=decision.session_id,
            mou=mou,
            originator=originator,
            handle_key=handle_key,
            rng=rng,
            now=now,
        )
        if queue is not None and mou.approval_required:
            queued.append(queue.enqueue(release, record_id=record.record_id, mou=mou, now=now))
        else:
            sealed.append(_seal(release, mou, signing_key, audit, now))
    return ReleaseBatch(tuple(sealed), tuple(queued), tuple(denied))


def release_approved(
    queue: ApprovalQueue,
    *,
    mou: Mou,
    signing_key: SigningKey,
    now: datetime,
    audit: AuditLog | None = None,
) -> tuple[SealedRelease, ...]:
    """Sign and seal every release approved since the last call (each once), audited as
    ``RELEASE_SENT``. Raises :class:`~xlink.errors.PolicyDenied` (``mou-mismatch``) for a
    queued release made under another MOU or MOU version."""
    digest = mou_digest(mou)
    out = []
    for _, record in queue.take_approved(now=now):
        if record.mou_id != mou.id or record.mou_digest != digest:
            raise PolicyDenied(["mou-mismatch"])
        out.append(_seal(record, mou, signing_key, audit, now))
    return tuple(out)


def receive_release(
    sealed: bytes,
    *,
    mou: Mou,
    sealing_key: SealingKey,
    signing_key: SigningKey,
    expected_session_id: bytes,
    now: datetime,
    audit: AuditLog | None = None,
) -> tuple[ReleaseRecord, bytes]:
    """The recipient's step (DESIGN §2 step 7): :func:`open_release` with every check, then
    a signed receipt to return. Audited as ``RELEASE_RECEIVED`` and ``RECEIPT_SENT``. Raises
    what :func:`open_release` raises; nothing is audited for a refused release (the caller
    logs the refusal with its session)."""
    record = open_release(sealed, sealing_key, mou=mou, expected_session_id=expected_session_id)
    receipt = issue_receipt(record, signing_key, now=now)
    if audit is not None:
        digest = release_digest(encode_release(record))
        base = {"session": record.session_id, "handle": record.release_id, "digest": digest}
        audit.append(AuditEvent.RELEASE_RECEIVED, {**base, "peer": record.originator}, now=now)
        audit.append(AuditEvent.RECEIPT_SENT, base, now=now)
    return record, receipt
