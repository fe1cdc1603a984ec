"""The parts of one exchange's release transfer around the releases themselves
(:meth:`Agency._transfer <xlink.agency.Agency>`): the agreement on the decided pairs and the
label evaluation before them (xlink-release-v1 §10.1-10.2), and the counts and matches file
after them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xlink.agency._claims import ClaimsRequest, spent_tokens, still_decided
from xlink.agency._inbound import Receiver
from xlink.agency._matches import write_matches
from xlink.decide import DecidedMatch, Decision
from xlink.linkage.scoring import ONE_TO_ONE
from xlink.prepare import PreparedSide
from xlink.protocol._confirm import SessionLabels
from xlink.protocol.session import PsiSession
from xlink.release.queue import QueueItem
from xlink.release.recipe import ReleaseBatch
from xlink.transport.release_transfer import (
    TransferGate,
    agree_decided_pairs,
    exchange_labels,
)

if TYPE_CHECKING:
    from xlink.agency._agency import Agency

__all__ = ["ExchangeClaims", "agree_and_label", "transfer_counts"]


async def agree_and_label(
    gate: TransferGate, session: PsiSession, decision: Decision, idle_timeout: float
) -> dict[tuple[bytes, ...], bytes]:
    """Both sides must have decided the same pairs before anything is released
    (:func:`agree_decided_pairs`); then the key material of the labels, for the decided
    pairs' tokens only, one evaluation per decided pair (:func:`exchange_labels`). Returns
    decided pair (its handles, ascending) -> the peer's OPRF output."""
    decided_handles = [m.handles for m in decision.matches]
    await agree_decided_pairs(
        gate, decision.session_id, decided_handles, idle_timeout, role=session.role
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
    ours whose best candidate it is."""

    def __init__(
        self,
        agency: Agency,
        view: ClaimsRequest,
        labels: SessionLabels,
        decision: Decision,
        own: PreparedSide,
    ) -> None:
        self._view, self._labels = view, labels
        self._schema, self._threshold = agency.schema, agency.mou.match_threshold
        self._weights = (agency.schema.weights(), agency.schema.disagreement_weights())
        self._active = decision.links == ONE_TO_ONE
        self._tokens: dict[tuple[bytes, ...], list[tuple[str, bytes]]] = {}
        decided = {m.local_record_id for m in decision.matches} if self._active else set()
        self._held = own.tokens.tokens_of(decided) if decided else {}
        self._records = {r.record_id: r for r in own.records if r.record_id in decided}
        self._spent: dict[str, list[bytes]] = {}

    def _claimed(self, match: DecidedMatch) -> list[tuple[str, bytes]]:
        found = self._tokens.get(match.handles)
        if found is None:
            found = self._tokens[match.handles] = self._labels.tokens(match.handles)
        return found

    def allows(self, match: DecidedMatch) -> bool:
        if not self._active:
            return True
        claimed, certain = self._claimed(match), self._schema.certain_threshold
        if (certain is None or match.policy_score < certain) and not still_decided(
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

    def _tokens_spent(self, match: DecidedMatch) -> list[bytes]:
        """What the match's record of ours spends (those behind its handles among them)."""
        rid = match.local_record_id
        found = self._spent.get(rid)
        if found is None:
            held = [*self._held.get(rid, []), *(token for _, token in self._claimed(match))]
            found = self._spent[rid] = spent_tokens(self._records[rid], held, self._schema)
        return found


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
    received = Counter(got.category for got in receiver.accepted)
    fields = {
        "released": dict(sorted(Counter(s.category for s in batch.sealed).items())),
        "queued": fates["queued"],
        "pending": fates["pending"],
        "denied": fates["denied"],
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
