"""The analyst's combined view (docs/hub.md, "What an analyst sees"): which of our records
matched which partners, read from the matches files each partner's exchanges wrote
(``partners/<peer>/matches/*.jsonl`` under the agent's workdir).

Each partner's releases stay where they are: in that partner's store, under that partner's
caveats; this view names them by release id and partner only. ``min_lists`` keeps the records
matched on at least that many partners' lists. That figure is computed here, from pairwise
results we already hold, so it tells us nothing the pairwise exchanges did not, and tells no
partner anything (docs/hub.md says why a private "on k lists" across partners is not offered).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from xlink.documents import parse_document
from xlink.errors import DocumentError, InputError

__all__ = ["CombinedMatch", "PartnerMatch", "combined_matches"]


@dataclass(frozen=True, slots=True)
class PartnerMatch:
    """One partner's latest decided match of one of our records."""

    partner: str
    session: str
    score: str
    outbound: str
    inbound: str
    inbound_release_id: str
    inbound_category: str

    def as_json(self) -> dict[str, str]:
        return {
            "partner": self.partner,
            "session": self.session,
            "score": self.score,
            "outbound": self.outbound,
            "inbound": self.inbound,
            "inbound_release_id": self.inbound_release_id,
            "inbound_category": self.inbound_category,
        }


@dataclass(frozen=True, slots=True)
class CombinedMatch:
    """One of our records and its matches, partner by partner (``partners`` holds every
    match, so one partner may appear more than once)."""

    own_record_id: str
    own_category: str
    partners: tuple[PartnerMatch, ...] = field(default_factory=tuple)

    @property
    def lists(self) -> int:
        """On how many partners' lists the record was matched."""
        return len({p.partner for p in self.partners})

    def as_json(self) -> dict[str, object]:
        return {
            "own_record_id": self.own_record_id,
            "own_category": self.own_category,
            "lists": self.lists,
            "partners": [p.as_json() for p in self.partners],
        }


def combined_matches(workdir: Path, *, min_lists: int = 1) -> list[CombinedMatch]:
    """Our records matched by at least ``min_lists`` partners, by record id. For each partner,
    every match of the record in the most recent matches file that has it (files in order of
    modification): a record can match two of one partner's records (a watchlist entry and a
    traveller, say), and each has its own release. ``lists`` counts partners, not matches.
    :class:`~xlink.errors.InputError` when ``workdir`` has no partner workdirs or a matches
    file is unreadable."""
    if min_lists < 1:
        raise InputError("--min-lists: must be at least 1")
    partners_dir = workdir / "partners"
    if not partners_dir.is_dir():
        raise InputError(f"{workdir}: no partners/ directory (has the agent run here?)")
    found: dict[str, dict[str, list[PartnerMatch]]] = {}
    categories: dict[str, str] = {}
    for partner_dir in sorted(p for p in partners_dir.iterdir() if p.is_dir()):
        files = sorted((partner_dir / "matches").glob("*.jsonl"), key=lambda p: p.stat().st_mtime)
        for path in files:
            in_this_file: dict[str, list[PartnerMatch]] = {}
            for number, row in _rows(path):
                if not isinstance(row, dict) or not isinstance(row.get("own_record_id"), str):
                    raise InputError(f"{path}:{number}: not a matches row")
                record = row["own_record_id"]
                categories[record] = str(row.get("own_category", ""))
                in_this_file.setdefault(record, []).append(_partner_match(partner_dir.name, row))
            for record, matches in in_this_file.items():  # a later session replaces an earlier
                found.setdefault(record, {})[partner_dir.name] = matches
    out = [
        CombinedMatch(record, categories[record], tuple(m for p in sorted(by) for m in by[p]))
        for record, by in found.items()
        if len(by) >= min_lists
    ]
    return sorted(out, key=lambda m: (-m.lists, m.own_record_id))


def _rows(path: Path) -> list[tuple[int, object]]:
    """Each row of a matches file (JSON Lines) with its line number, blank lines skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a matches file ({type(exc).__name__})") from None
    rows: list[tuple[int, object]] = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            try:  # strictly, as every document: no nesting or number that breaks the parser
                rows.append((number, parse_document(line, "json")))
            except DocumentError as exc:
                raise InputError(f"{path}:{number}: not a matches row ({exc})") from None
    return rows


def _partner_match(partner: str, row: dict[str, object]) -> PartnerMatch:
    return PartnerMatch(
        partner=partner,
        session=str(row.get("session", "")),
        score=str(row.get("score", "")),
        outbound=str(row.get("outbound", "")),
        inbound=str(row.get("inbound", "")),
        inbound_release_id=str(row.get("inbound_release_id", "")),
        inbound_category=str(row.get("inbound_category", "")),
    )
