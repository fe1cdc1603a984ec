"""The parts of one exchange's release transfer around the releases themselves
(:meth:`Agency._transfer <xlink.agency.Agency>`): the agreement on the decided pairs and the
label evaluation before them (xlink-release-v1 §10.1-10.2), and the counts and matches file
after them."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xlink.agency._claims import ClaimsRequest, spent_tokens, still_decided
from xlink.agency._inbound import Receiver
from xlink.agency._matches import write_matches
from xlink.audit import AuditLog
from xlink.decide import DecidedMatch, Decision
from xlink.linkage._derive import TokenDeriver
from xlink.linkage.scoring import ONE_TO_ONE, floor_score
from xlink.prepare import PreparedSide
from xlink.protocol._confirm import SessionLabels
from xlink.protocol.session import PsiSession
from xlink.release.queue import QueueItem
from xlink.release.recipe import DeniedRelease, Fate, MatchFate, ReleaseBatch, audit_denied
from xlink.transport.release_transfer import (
    TransferGate,
    agree_decided_pairs,
    exchange_labels,
    offer_releases,
)

if TYPE_CHECKING:
    from xlink.agency._agency import Agency

__all__ = [
    "UNRECIPROCATED",
    "ExchangeClaims",
    "agree_and_label",
    "deny_after_all",
    "transfer_counts",
    "withhold_unreciprocated",
]


async def agree_and_label(
    gate: TransferGate,
    session: PsiSession,
    decision: Decision,
    idle_timeout: float,
    *,
    reciprocal: bool = False,
) -> dict[tuple[bytes, ...], bytes]:
    """Both sides must have decided the same pairs before anything is released
    (:func:`agree_decided_pairs`); then the key material of the labels, for the decided
    pairs' tokens only, one evaluation per decided pair (:func:`exchange_labels`). Returns
    decided pair (its handles, ascending) -> the peer's OPRF output. ``reciprocal``: the
    MOU's ``release.reciprocal`` (:func:`withhold_unreciprocated` follows)."""
    decided_handles = [m.handles for m in decision.matches]
    await agree_decided_pairs(
        gate,
        decision.session_id,
        decided_handles,
        idle_timeout,
        role=session.role,
        reciprocal=reciprocal,
    )
    return await exchange_labels(
        gate,
        request=session.labels.request,
        answer=session.labels.answer,
        outputs=session.labels.outputs,
        idle_timeout=idle_timeout,
    )


class ExchangeClaims:
    """The day of claims for a batch exchange's releases (xlink-release-v1 §3.1), over
    ``view`` (:meth:`~xlink.agency._claims.Claims.snapshot`), with ``labels`` giving our tokens
    behind each match's handles. Under the one-to-one link rule, asked in the decision's order,
    a match whose tokens already decided another of our records today (in a query, an earlier
    exchange, or before it in this one) is not allowed unless the rest still decide it
    (:func:`~xlink.agency._claims.still_decided`) or it reaches the schema's certain
    threshold; the matches whose record is sent, or was delivered before, claim every token of
    that record and of its household (``own``: our side;
    :func:`~xlink.agency._claims.spent_tokens`), not only those behind its handles: so a
    partner that won one member of a household in a query, or in an exchange earlier today,
    with the family name and address wins no second one in an exchange, whichever of the
    tokens those give (a MinHash band of the family name, the family name with the postcode,
    the street) it puts in each fabricated record. Under best-of-either (a list of events: one
    person is several of our records, each holding the same tokens) it allows everything and
    claims nothing, as the link rule itself lets one record of the partner's win every one of
    ours whose best candidate it is.

    The view is read before the releases are built and written after
    (:meth:`~xlink.agency._claims.Claims.keep`); when a query session claimed tokens in between,
    :meth:`replay` applies the rule again to the day as it now is and :meth:`withdraw` takes
    back, before anything leaves, the releases it no longer allows."""

    def __init__(
        self,
        agency: Agency,
        view: ClaimsRequest,
        labels: SessionLabels,
        decision: Decision,
        own: PreparedSide,
    ) -> None:
        self._view, self._labels = view, labels
        self._decision = decision
        self._asked: set[int] = set()  # id() of the matches allowed, in the decision's order
        self.withdrawn: set[int] = set()  # indices of sent matches replay no longer allows
        self._schema, self._threshold = agency.schema, agency.mou.match_threshold
        self._weights = (agency.schema.weights(), agency.schema.disagreement_weights())
        self._active = decision.links == ONE_TO_ONE
        self._tokens: dict[tuple[bytes, ...], list[tuple[str, bytes]]] = {}
        decided = {m.local_record_id for m in decision.matches} if self._active else set()
        self._held = own.tokens.tokens_of(decided) if decided else {}
        self._records = {r.record_id: r for r in own.records if r.record_id in decided}
        self._spent: dict[str, list[bytes]] = {}
        self._deriver = TokenDeriver(agency.schema) if decided else None

    def _claimed(self, match: DecidedMatch) -> list[tuple[str, bytes]]:
        found = self._tokens.get(match.handles)
        if found is None:
            found = self._tokens[match.handles] = self._labels.tokens(match.handles)
        return found

    def allows(self, match: DecidedMatch) -> bool:
        if not self._active:
            return True
        if not self._allowed_now(match):
            return False
        self._asked.add(id(match))
        return True

    def _allowed_now(self, match: DecidedMatch) -> bool:
        claimed, certain = self._claimed(match), self._schema.certain_threshold
        agreement, disagreement = self._weights
        # at the certain threshold on its floor score (the partner's declared disagreements
        # lift no pair past the day of claims), a pair is one person recorded twice
        floor = floor_score(match.agreeing_keys, agreement, match.disagreeing_keys, disagreement)
        if (certain is None or floor < certain) and not still_decided(
            self._view,
            match.local_record_id,
            claimed,
            match.disagreeing_keys,
            schema=self._schema,
            weights=self._weights,
            threshold=self._threshold,
        ):
            return False
        # later matches of this exchange see it, whatever becomes of this one
        self._view.note(match.local_record_id, self._tokens_spent(match))
        return True

    def claim(self, match: DecidedMatch) -> None:
        if self._active:
            self._view.add(match.local_record_id, self._tokens_spent(match))

    def replay(self, day: ClaimsRequest, fates: Sequence[MatchFate]) -> None:
        """Apply the rule again over ``day`` (the day's claims as the store now holds them,
        changed since the view was read), in the decision's order, to the matches it allowed:
        one sent, or delivered before, that it no longer allows is :attr:`withdrawn` (denied
        ``claimed-today``, as it would have been had the view been read after those claims);
        the others claim on ``day`` as before. A match denied before stays denied, and one
        queued for an officer's approval stays queued (it is checked again when it is sent)."""
        self._view = day
        self.withdrawn = set()  # the day read again is the whole truth: start over
        kept = (Fate.SENT, Fate.DELIVERED)
        matches = self._decision.matches
        for index, match in enumerate(matches):
            if id(match) not in self._asked:
                continue
            if not self._allowed_now(match) and fates[index].fate in kept:
                self.withdrawn.add(index)  # (the check notes what it allows: it runs first)
        for index, (match, fate) in enumerate(zip(matches, fates, strict=True)):
            if fate.fate in kept and index not in self.withdrawn:
                self.claim(match)

    def withdraw(self, batch: ReleaseBatch, audit: AuditLog, now: datetime) -> ReleaseBatch:
        """``batch`` without the releases of the :attr:`withdrawn` matches, each denied
        ``claimed-today`` and audited so under the pair's first handle, as
        :func:`~xlink.release.release_decided` denies one; the ledger item of one that was to
        be sent stays handed out (``TAKEN``), never sent, for a later exchange to use, as after
        a transfer that ends before it is sent."""
        return deny_after_all(
            batch, self._decision, self.withdrawn, "claimed-today", audit=audit, now=now
        )

    def _tokens_spent(self, match: DecidedMatch) -> list[bytes]:
        """What the match's record of ours spends (those behind its handles among them)."""
        rid = match.local_record_id
        found = self._spent.get(rid)
        if found is None:
            held = [*self._held.get(rid, []), *(token for _, token in self._claimed(match))]
            found = self._spent[rid] = spent_tokens(
                self._records[rid], held, self._schema, self._deriver
            )
        return found


#: The reason a release of ours stays with us under a reciprocal MOU: the partner offered fewer.
UNRECIPROCATED = "unreciprocated"


async def withhold_unreciprocated(
    gate: TransferGate,
    batch: ReleaseBatch,
    decision: Decision,
    idle_timeout: float,
    *,
    audit: AuditLog,
    now: datetime,
    given: Collection[int] = frozenset(),
) -> ReleaseBatch:
    """Under a reciprocal MOU (xlink-release-v1 §10.5): offer our releases
    (:func:`offer_releases`) and return ``batch`` with those beyond the partner's offer
    withheld: each denied :data:`UNRECIPROCATED` and audited so, its ledger item still
    handed out (``TAKEN``) for a later exchange to send, as :func:`deny_after_all` leaves it.
    The releases of the ledger items ``given`` before (the partner had them; they cost the
    window nothing) come first, so that none waits behind a new one the window holds."""
    if given:
        order = sorted(range(len(batch.sealed)), key=lambda i: batch.items[i] not in given)
        batch = dataclasses.replace(
            batch,
            sealed=tuple(batch.sealed[i] for i in order),
            items=tuple(batch.items[i] for i in order),
        )
    sending = await offer_releases(gate, len(batch.sealed), idle_timeout)
    kept = {sealed.release_id for sealed in batch.sealed[:sending]}
    withheld = [
        index
        for index, fate in enumerate(batch.fates)
        if fate.fate is Fate.SENT and fate.release_id not in kept
    ]
    return deny_after_all(batch, decision, withheld, UNRECIPROCATED, audit=audit, now=now)


def deny_after_all(
    batch: ReleaseBatch,
    decision: Decision,
    indices: Iterable[int],
    reason: str,
    *,
    audit: AuditLog,
    now: datetime,
) -> ReleaseBatch:
    """``batch`` (of ``decision``) with the decided matches at ``indices`` denied for
    ``reason`` after it was built, before anything is sent: a sent one's release taken out
    (with its ledger item's place, so ``sealed`` and ``items`` stay aligned), each audited
    ``RELEASE_DENIED`` under the pair's first handle, as
    :func:`~xlink.release.release_decided` denies one."""
    fates, denied = list(batch.fates), list(batch.denied)
    gone: set[bytes] = set()
    for index in sorted(indices):
        match, fate = decision.matches[index], fates[index]
        if fate.fate is Fate.SENT:
            if fate.release_id is None:  # never: a sent match has its release
                raise ValueError("a sent match without its release id")
            gone.add(fate.release_id)
        fates[index] = MatchFate(fate.record_id, Fate.DENIED, reasons=(reason,))
        denied.append(DeniedRelease(fate.record_id, (reason,)))
        audit_denied(audit, decision.session_id, match.handles[0], reason, now)
    kept = [i for i, sealed in enumerate(batch.sealed) if sealed.release_id not in gone]
    return dataclasses.replace(
        batch,
        sealed=tuple(batch.sealed[i] for i in kept),
        items=tuple(batch.items[i] for i in kept) if batch.items else (),
        denied=tuple(denied),
        fates=tuple(fates),
    )


def transfer_counts(
    workdir: Path,
    decision: Decision,
    side: PreparedSide,
    batch: ReleaseBatch,
    receiver: Receiver,
    overdue: Sequence[QueueItem],
    settled: tuple[int, int],
) -> dict[str, Any]:
    """Write the matches file and count what the transfer did: ``released`` and ``received``
    (totals), and ``fields``, the :class:`~xlink.agency.AgencyOutcome` members. ``settled``
    is ``(receipts verified, refused by the peer)``."""
    categories = {r.record_id: r.category.value for r in side.records}
    matches_file = write_matches(
        workdir / "matches", decision, batch.fates, categories, receiver.inbound
    )
    fates = Counter(f.fate.value for f in batch.fates)
    kept_back = sum(1 for f in batch.fates if UNRECIPROCATED in f.reasons)
    received = Counter(got.category for got in receiver.accepted)
    fields = {
        "released": dict(sorted(Counter(s.category for s in batch.sealed).items())),
        "queued": fates["queued"],
        "pending": fates["pending"],
        "denied": fates["denied"] - kept_back,
        "denied_reasons": dict(
            sorted(
                Counter(
                    f.reasons[0]
                    for f in batch.fates
                    if f.fate.value == "denied" and f.reasons and UNRECIPROCATED not in f.reasons
                ).items()
            )
        ),
        "unreciprocated": kept_back,
        "delivered_before": fates["delivered"],
        "received": dict(sorted(received.items())),
        "received_before": sum(1 for got in receiver.accepted if got.status == "held-before"),
        "overdue": len(overdue),
        "refused_by_us": receiver.refused,
        "receipts_verified": settled[0],
        "refused_by_peer": settled[1],
        "matches_file": str(matches_file),
    }
    return {"released": len(batch.sealed), "received": received.total(), "fields": fields}
