"""The parts of one exchange's release transfer around the releases themselves
(:meth:`Agency._transfer <xlink.agency.Agency>`): the agreement on the decided pairs and the
label evaluation before them (xlink-release-v1 §10.1-10.2), and the counts and matches file
after them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from xlink.agency._inbound import Receiver
from xlink.agency._matches import write_matches
from xlink.decide import Decision
from xlink.prepare import PreparedSide
from xlink.protocol.session import PsiSession
from xlink.release.queue import QueueItem
from xlink.release.recipe import ReleaseBatch
from xlink.transport.release_transfer import (
    TransferGate,
    agree_decided_pairs,
    exchange_labels,
)

__all__ = ["agree_and_label", "transfer_counts"]


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
