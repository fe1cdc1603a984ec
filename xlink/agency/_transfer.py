"""The parts of one exchange's release transfer around the releases themselves
(:meth:`Agency._transfer <xlink.agency.Agency>`): the agreement on the decided pairs and the
label evaluation before them (xlink-release-v1 §10.1-10.2), and the counts and matches file
after them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xlink.agency._claims import ClaimsRequest, still_decided
from xlink.agency._inbound import Receiver
from xlink.agency._matches import write_matches
from xlink.decide import DecidedMatch, Decision
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

__all__ = ["agree_and_label", "claims_rule", "transfer_counts"]


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


def claims_rule(
    agency: Agency, claims: ClaimsRequest, labels: SessionLabels
) -> Callable[[DecidedMatch], bool]:
    """The day of claims for a batch exchange's releases (xlink-release-v1 §3.1): asked in the
    decision's order, a match whose tokens (``labels``: ours behind its handles) already
    decided another of our records today is refused unless the rest still decide it
    (:func:`~xlink.agency._claims.still_decided`) or it reaches the schema's certain
    threshold; a match allowed claims its tokens for its record. So a partner that won one
    member of a household in a query, or in an exchange earlier today, with the family name
    and address wins no second one with the same tokens in an exchange."""
    schema, mou = agency.schema, agency.mou
    weights = (schema.weights(), schema.disagreement_weights())

    def allowed(match: DecidedMatch) -> bool:
        claimed = labels.tokens(match.handles)
        certain = schema.certain_threshold
        if (certain is None or match.policy_score < certain) and not still_decided(
            claims,
            match.local_record_id,
            claimed,
            match.disagreeing_keys,
            schema=schema,
            weights=weights,
            threshold=mou.match_threshold,
        ):
            return False
        claims.add(match.local_record_id, [token for _, token in claimed])
        return True

    return allowed


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
