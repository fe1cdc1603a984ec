"""What one exchange did, as counts (never a record): :class:`AgencyOutcome`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from xlink.agency._matches import MatchRow, read_matches
from xlink.records.header_hints import unread_json

__all__ = ["AgencyOutcome"]


@dataclass(frozen=True, slots=True)
class AgencyOutcome:
    """What one agency's exchange did: counts only, never a record. ``matches_file`` is the
    run's matches file (CSV; the JSON Lines twin beside it), local to this agency."""

    agency: str
    peer: str
    role: str
    mou_id: str
    session_id: str
    records: int
    rejected: int
    tokens: int
    matched_tokens: int
    candidates: int
    decided: int
    approval_required: bool
    withheld: int = 0
    """Records left out because the MOU lists no policy for their category
    (:meth:`Agency.releasable <xlink.agency.Agency.releasable>`): not in ``records``."""
    released: dict[str, int] = field(default_factory=dict)
    queued: int = 0
    """Decided matches newly queued for approval (a record in two pairs is one queue item)."""
    pending: int = 0
    """Decided matches whose record was queued by an earlier run and awaits approval."""
    overdue: int = 0
    """Releases newly past their follow-up deadline, still awaiting approval (audited)."""
    denied: int = 0
    """Decided matches the MOU's policy, an officer or the day's claims let nothing out for."""
    denied_reasons: dict[str, int] = field(default_factory=dict)
    """``denied`` by the first reason of each (``grading-missing``, ``claimed-today``, ...)."""
    unreciprocated: int = 0
    """Releases kept back under a reciprocal MOU because the partner offered fewer
    (xlink-release-v1 §10.5), not counted in ``denied``: the next exchange offers them
    again."""
    peer_offered: int | None = None
    """Under a reciprocal MOU, the releases the partner offered (its COUNT); it sent as many
    as the fewer of its offer and ours. None otherwise."""
    reciprocal_ahead: int | None = None
    """Under a reciprocal MOU, how many records of ours the partner has beyond its releases that
    credited it, over every exchange since the last reset (xlink-release-v1 §10.5; negative:
    it gave more); new ones of ours go only while this is under ``RECIPROCAL_AHEAD``. None
    otherwise."""
    delivered_before: int = 0
    received: dict[str, int] = field(default_factory=dict)
    received_before: int = 0
    refused_by_us: int = 0
    receipts_verified: int = 0
    refused_by_peer: int = 0
    audit_ok: bool = False
    audit_entries: int = 0
    audit_reason: str | None = None
    workdir: str = ""
    matches_file: str = ""
    phases: dict[str, float] = field(default_factory=dict)
    unread_columns: tuple[tuple[str, str], ...] = ()
    """Columns of our files kept in the payload, never matched on, whose names usually hold a
    field (:attr:`xlink.records.LoadResult.unread_columns`): ``(column, field)``."""

    @property
    def released_total(self) -> int:
        return sum(self.released.values())

    @property
    def received_total(self) -> int:
        return sum(self.received.values())

    def read_matches(self) -> tuple[MatchRow, ...]:
        """The decided matches, typed, from :attr:`matches_file` (:func:`~xlink.agency.
        read_matches`): one row per match, own record, score, keys, and what became of each
        side's release. Empty when the run wrote none (it ended before deciding)."""
        return read_matches(self.matches_file) if self.matches_file else ()

    def to_json(self) -> dict[str, object]:
        doc = asdict(self)
        doc["released_total"] = self.released_total
        doc["received_total"] = self.received_total
        doc["unread_columns"] = unread_json(self.unread_columns)
        return doc
