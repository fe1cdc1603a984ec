"""Recipes: release a whole :class:`~xlink.decide.Decision` in one call (DESIGN §2 step 6;
docs/release.md); receiving and settling the answers are :mod:`xlink.release.settle`'s.

The layer below (:func:`decide_release`, :class:`ReleaseRecord`, :func:`sign_release`,
:func:`seal_release`, :func:`open_release`, :class:`ApprovalQueue`) is for integrators who need
the parts; these calls make no choices the MOU does not already make.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Protocol

from xlink.audit import AuditEvent, AuditLog
from xlink.crypto.keys import SigningKey
from xlink.crypto.rand import RandomSource
from xlink.decide import DecidedMatch, Decision
from xlink.errors import PolicyDenied
from xlink.linkage.schema import LinkageSchema
from xlink.linkage.scoring import ONE_TO_ONE, KeyWeight, floor_score
from xlink.policy.document import mou_digest
from xlink.policy.mou import Mou
from xlink.records.model import PersonRecord
from xlink.release.handles import SourceHandleKey, make_source_handle
from xlink.release.policy import ReleaseContent, decide_release
from xlink.release.queue import ApprovalQueue, QueueItem, QueueState
from xlink.release.record import (
    ID_SIZE,
    ReleaseRecord,
    content_digest,
    fields_fit,
    sign_release,
)
from xlink.release.seal import SealedRelease, seal_release

__all__ = [
    "MAX_PAIRS_PER_RECORD",
    "MAX_PAIRS_PER_RECORD_EVENTS",
    "DeniedRelease",
    "Fate",
    "MatchFate",
    "ReleaseBatch",
    "audit_denied",
    "build_release",
    "release_decided",
]


#: Under the one-to-one link rule, the most decided pairs of one record of ours that are
#: released in a session: its best pair, and one more for a person the partner lists twice
#: (the certain threshold, docs/concepts.md). A partner that lists one of our people many times
#: gets its pairs decided, but the record sealed and sent this many times, not once per copy.
MAX_PAIRS_PER_RECORD = 2
#: Under the best-of-either link rule (a list of events, holding one person several times), the
#: most decided pairs of one record of ours released in a session: a partner that splits one
#: record of its own into thousands of Reveal entries would otherwise be sent one release each.
MAX_PAIRS_PER_RECORD_EVENTS = 16


@dataclass(frozen=True, slots=True)
class DeniedRelease:
    """A decided match the MOU does not let out: the local record id and the reasons."""

    record_id: str
    reasons: tuple[str, ...]


class DayClaims(Protocol):
    """An agency's day of claims with the partner, as :func:`release_decided` consults it
    (:class:`xlink.agency._transfer.ExchangeClaims`): ``allows`` is asked for each match in
    the decision's order (False: denied ``claimed-today``), ``claim`` for each match whose
    record is sent, or was delivered before."""

    def allows(self, match: DecidedMatch) -> bool: ...

    def claim(self, match: DecidedMatch) -> None: ...


class Fate(Enum):
    """What became of one decided match on the originator's side in one exchange."""

    SENT = "sent"  # signed, sealed and offered to the peer in this exchange
    QUEUED = "queued"  # newly queued for an officer's approval
    PENDING = "pending"  # queued before, still awaiting approval: not queued again
    DENIED = "denied"  # denied by the MOU now, or by an officer before: never sent
    DELIVERED = "delivered"  # this record version was delivered (receipted) before


@dataclass(frozen=True, slots=True)
class MatchFate:
    """One decided match's fate: the local record id, what happened, and the release id that
    stands for it (the release offered now, the queued one, or the one delivered before)."""

    record_id: str
    fate: Fate
    release_id: bytes | None = None
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ReleaseBatch:
    """What :func:`release_decided` did with each decided match: sealed and ready to send,
    queued for approval, or denied by the MOU. ``fates`` has one entry per decided match, in
    the decision's order; ``items`` the outbound-ledger item of each sealed release (``None``
    without a ledger), in the order of ``sealed``."""

    sealed: tuple[SealedRelease, ...]
    queued: tuple[QueueItem, ...]
    denied: tuple[DeniedRelease, ...]
    fates: tuple[MatchFate, ...] = ()
    items: tuple[int | None, ...] = ()


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


def _seal(record: ReleaseRecord, mou: Mou, key: SigningKey) -> SealedRelease:
    return seal_release(sign_release(record, key), mou)


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
    schema: LinkageSchema | None = None,
    day_claims: DayClaims | None = None,
) -> ReleaseBatch:
    """Release what the MOU allows of every decided match (DESIGN §2 step 6).

    A match scoring below the MOU's ``match_threshold`` is denied (``below-mou-threshold``),
    whatever threshold the decision used (on the schema's own weights:
    :attr:`~xlink.decide.DecidedMatch.policy_score`); with ``schema`` (the MOU's, as an agency
    gives it), so is one whose score with its disagreements counted only where they lower it
    is below (:func:`~xlink.linkage.scoring.floor_score`), and a match whose agreeing keys
    lack the schema's evidence
    (``too-little-evidence``: :meth:`~xlink.linkage.schema.LinkageSchema.has_evidence`), however
    the decision was made; with ``day_claims`` (:class:`DayClaims`: the agency's day of claims
    with the partner), so is a match it does not allow (``claimed-today``), and the matches
    whose record is sent, or was delivered before, claim their tokens. Under the one-to-one link
    rule a record's decided pairs beyond its first :data:`MAX_PAIRS_PER_RECORD` (in the
    decision's order: best first) are denied ``too-many-pairs``, and under best-of-either (a
    list of events) those beyond its first :data:`MAX_PAIRS_PER_RECORD_EVENTS`: audited once per
    record, with their count. For the others, :func:`decide_release` cuts the record to its
    tearline; a record its release cannot carry (:func:`build_release`'s bounds: 64 values a
    field, 4,096 bytes a value) is denied ``unreleasable-record``, that match alone. A denial is
    collected (and audited as ``RELEASE_DENIED`` under the pair's first match handle).
    ``records`` are the originator's own (``KeyError`` if a decided record is missing).

    ``queue`` is the outbound ledger; an MOU that requires approval needs one (``ValueError``
    without). It is consulted once per record version
    (:func:`~xlink.release.record.content_digest`) for all the pairs the record is decided in,
    so an exchange run again changes nothing (xlink-release-v1 §10.4): a version an officer
    denied is never sent; one awaiting approval is not queued again (a new version is queued
    once, whatever its number of pairs); an approved or straight-through version is sent to
    every pair of this session, built afresh for it, unless every item of it is delivered
    (receipted) and one session delivered it to as many pairs as there are now. Without a
    ledger every release is sealed. Nothing is audited as sent here: the caller audits
    ``RELEASE_SENT`` as it hands each release to the connection, and settles the answers with
    :func:`settle_receipts`.
    """
    if mou.approval_required and queue is None:
        raise ValueError("this MOU requires approval: give an ApprovalQueue")
    by_id = {r.record_id: r for r in records}
    sealed: list[SealedRelease] = []
    items: list[int | None] = []
    queued: list[QueueItem] = []
    denied: list[DeniedRelease] = []
    fates: dict[int, MatchFate] = {}
    # The decided pairs of each record, in the decision's order: the ledger is consulted once
    # per record version, for all its pairs (a record may be decided with two peer records).
    pairs: dict[str, list[tuple[int, ReleaseRecord]]] = {}
    most = MAX_PAIRS_PER_RECORD if decision.links == ONE_TO_ONE else MAX_PAIRS_PER_RECORD_EVENTS
    beyond: dict[str, list[bytes]] = {}  # record -> first handle of each pair past ``most``
    # the floor counts a disagreement only where it lowers the score: key presence, which
    # makes a disagreement, is the partner's word
    floor_weights = None if schema is None else (schema.weights(), schema.disagreement_weights())
    for index, match in enumerate(decision.matches):
        record = by_id[match.local_record_id]
        try:
            if _below_floor(match, mou.match_threshold, floor_weights):
                raise PolicyDenied(["below-mou-threshold"])
            if schema is not None and not schema.has_evidence(match.agreeing_keys):
                raise PolicyDenied(["too-little-evidence"])
            if day_claims is not None and not day_claims.allows(match):
                raise PolicyDenied(["claimed-today"])
            if len(pairs.get(record.record_id, ())) >= most:
                raise PolicyDenied(["too-many-pairs"])
            content = decide_release(record, mou, originator=originator)
            if not fields_fit(content.fields):
                raise PolicyDenied(["unreleasable-record"])
        except PolicyDenied as exc:
            denied.append(DeniedRelease(record.record_id, exc.reasons))
            fates[index] = MatchFate(record.record_id, Fate.DENIED, reasons=exc.reasons)
            if exc.reasons[0] == "too-many-pairs":  # audited once per record, below
                beyond.setdefault(record.record_id, []).append(match.handles[0])
            elif audit is not None:
                audit_denied(audit, decision.session_id, match.handles[0], exc.reasons[0], now)
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
        pairs.setdefault(record.record_id, []).append((index, release))

    if audit is not None:  # one entry per record for its pairs past the bound, with their count
        for handles in beyond.values():
            audit.append(
                AuditEvent.RELEASE_DENIED,
                {
                    "session": decision.session_id,
                    "handle": handles[0],
                    "reason": "too-many-pairs",
                    "pairs": len(handles),
                },
                now=now,
            )

    def send(index: int, release: ReleaseRecord, item: int | None) -> None:
        sealed.append(_seal(release, mou, signing_key))
        items.append(item)
        fates[index] = MatchFate(release_record_id[index], Fate.SENT, release.release_id)

    release_record_id = {
        index: record_id for record_id, group in pairs.items() for index, _ in group
    }
    for record_id, group in pairs.items():
        if queue is None:
            for index, release in group:
                send(index, release, None)
            continue
        first = group[0][1]
        version = content_digest(first)
        earlier = queue.lookup(
            mou_id=mou.id, recipient=first.recipient, record_id=record_id, version=version, now=now
        )
        states = {i.state for i in earlier}
        approved = bool(states & {QueueState.APPROVED, QueueState.TAKEN, QueueState.SENT})
        if mou.approval_required and QueueState.DENIED in states:
            item = next(i for i in earlier if i.state is QueueState.DENIED)
            for index, _ in group:  # an officer denied this version: never sent
                fates[index] = MatchFate(
                    record_id, Fate.DENIED, item.release_id, _reasons(item.reason)
                )
            continue
        if mou.approval_required and not approved:
            pending = [i for i in earlier if i.state is QueueState.PENDING]
            if pending:  # queued by an earlier run: not queued again
                fate, item = Fate.PENDING, pending[0]
            else:  # one queue item for the version, whatever its number of pairs
                item = queue.enqueue(first, record_id=record_id, mou=mou, now=now, version=version)
                queued.append(item)
                fate = Fate.QUEUED
            for index, _ in group:
                fates[index] = MatchFate(record_id, fate, item.release_id)
            continue
        delivered = [i for i in earlier if i.state is QueueState.SENT]
        # Delivered to as many pairs as now, in one session, and nothing left undelivered.
        per_session = Counter(i.sent_session for i in delivered)
        if delivered and len(delivered) == len(earlier) and max(per_session.values()) >= len(group):
            for (index, _), item in zip(group, delivered, strict=False):
                fates[index] = MatchFate(record_id, Fate.DELIVERED, item.sent_release_id)
            continue
        # Not every pair is known to have it: send the version to every pair of this session
        # (the partner stores a copy it already holds for a record only once, §10.4). Items
        # approved or handed out and never receipted are used first, then new ones.
        reusable = [i for i in earlier if i.state in (QueueState.APPROVED, QueueState.TAKEN)]
        for index, release in group:
            if reusable:
                item = queue.take(reusable.pop(0).item_id, now=now)
            else:
                item = queue.hold_for_sending(
                    release, record_id=record_id, mou=mou, now=now, version=version
                )
            send(index, release, item.item_id)
    ordered = tuple(fates[i] for i in range(len(decision.matches)))
    if day_claims is not None:  # what leaves (or left before) claims its tokens
        for match, outcome in zip(decision.matches, ordered, strict=True):
            if outcome.fate in (Fate.SENT, Fate.DELIVERED):
                day_claims.claim(match)
    return ReleaseBatch(tuple(sealed), tuple(queued), tuple(denied), ordered, tuple(items))


def audit_denied(
    audit: AuditLog, session_id: bytes, handle: bytes, reason: str, now: datetime
) -> None:
    """Audit one decided pair that is not released: ``RELEASE_DENIED`` under its first match
    handle with the reason code (the batch path's denials, the day of claims taking one back,
    and the query holder's refusals alike)."""
    fields = {"session": session_id, "handle": handle, "reason": reason}
    audit.append(AuditEvent.RELEASE_DENIED, fields, now=now)


def _reasons(reason: str | None) -> tuple[str, ...]:
    return () if reason is None else (reason,)


def _below_floor(
    match: DecidedMatch,
    threshold: float,
    weights: tuple[Mapping[str, KeyWeight | float], Mapping[str, float]] | None,
) -> bool:
    """Whether ``match`` is below the MOU's floor: with the schema's ``weights``, its
    :func:`~xlink.linkage.scoring.floor_score` (never above its score on those weights);
    without them, its :attr:`~xlink.decide.DecidedMatch.policy_score`."""
    if weights is None:
        return match.policy_score < threshold
    agreement, disagreement = weights
    floor = floor_score(match.agreeing_keys, agreement, match.disagreeing_keys, disagreement)
    return floor < threshold
