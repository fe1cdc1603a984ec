"""The matches file: what an analyst acts on after a run (docs/cli.md, "Matches file").

One row per decided match of the session, local to the agency that wrote it: its own record
id and category, the score and which linkage keys agreed, disagreed or were missing, what this
side did with its own record (``outbound``) and what the partner's release for that match did
here (``inbound``), each with its release id. Written twice, as CSV and as JSON Lines, into
``WORKDIR/matches/`` and named by the session id; the partner's data appears only as release
ids (open them with ``xlink store read``).
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from xlink._files import written_whole
from xlink.audit import AuditEvent, AuditLog
from xlink.decide import Decision
from xlink.errors import InputError
from xlink.linkage.link_rule import AUTO
from xlink.release.recipe import MatchFate

__all__ = [
    "COLUMNS",
    "Inbound",
    "MatchRow",
    "decision_document",
    "read_matches",
    "record_decision",
    "write_decision",
    "write_matches",
]

COLUMNS: Final = (
    "session",
    "own_record_id",
    "own_category",
    "score",
    "agreeing_keys",
    "disagreeing_keys",
    "missing_keys",
    "outbound",
    "outbound_release_id",
    "outbound_reasons",
    "inbound",
    "inbound_release_id",
    "inbound_category",
)


@dataclass(frozen=True, slots=True)
class Inbound:
    """What became of the partner's release for one decided match: ``received`` (stored now) or
    ``held-before`` (the same content was already stored for this record). A refused release
    is not filed against a match (it is audited as ``RECEIVE_DENIED``)."""

    status: str
    release_id: bytes
    category: str


@dataclass(frozen=True, slots=True)
class MatchRow:
    """One row of the matches file, typed (:func:`read_matches`): the decided match's own
    record, score and keys, what this side did with its own record (``outbound``: ``sent``,
    ``queued``, ``pending``, ``denied``, ``delivered``, ``not-released``; its release id and
    reasons) and what the partner's release did here (``inbound``: ``received``,
    ``held-before``, ``none``; the release id ``xlink store read`` takes, its category)."""

    session: str
    own_record_id: str
    own_category: str
    score: float
    agreeing_keys: tuple[str, ...]
    disagreeing_keys: tuple[str, ...]
    missing_keys: tuple[str, ...]
    outbound: str
    outbound_release_id: str | None
    outbound_reasons: tuple[str, ...]
    inbound: str
    inbound_release_id: str | None
    inbound_category: str | None


def read_matches(path: Path | str) -> tuple[MatchRow, ...]:
    """The rows of a matches file (``matches/<session>.csv`` as an outcome's
    ``matches_file`` names it, or its ``.jsonl`` twin), typed, in the decision's order.
    Raises :class:`~xlink.errors.InputError` when the file is missing or not a matches
    file."""
    jsonl = Path(path).with_suffix(".jsonl")
    try:
        lines = jsonl.read_text(encoding="utf-8").splitlines()
        return tuple(_row(json.loads(line)) for line in lines if line)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"{jsonl}: not a matches file ({type(exc).__name__})") from None


def _row(doc: dict[str, str]) -> MatchRow:
    words = {k: tuple(doc[k].split()) for k in _WORD_COLUMNS}
    return MatchRow(
        session=doc["session"],
        own_record_id=doc["own_record_id"],
        own_category=doc["own_category"],
        score=float(doc["score"]),
        agreeing_keys=words["agreeing_keys"],
        disagreeing_keys=words["disagreeing_keys"],
        missing_keys=words["missing_keys"],
        outbound=doc["outbound"],
        outbound_release_id=doc["outbound_release_id"] or None,
        outbound_reasons=words["outbound_reasons"],
        inbound=doc["inbound"],
        inbound_release_id=doc["inbound_release_id"] or None,
        inbound_category=doc["inbound_category"] or None,
    )


_WORD_COLUMNS: Final = ("agreeing_keys", "disagreeing_keys", "missing_keys", "outbound_reasons")


def write_matches(
    directory: Path,
    decision: Decision,
    fates: Sequence[MatchFate],
    categories: Mapping[str, str],
    inbound: Mapping[int, Inbound],
) -> Path:
    """Write ``matches/<session>.csv`` and ``.jsonl`` (mode 0600: they name own records);
    return the CSV's path. ``fates`` are in the decision's order; ``categories`` maps own
    record ids to their category; ``inbound`` the partner's release for a match, by the
    match's index in the decision."""
    directory.mkdir(parents=True, exist_ok=True)
    session = decision.session_id.hex()
    rows: list[dict[str, str]] = []
    for i, match in enumerate(decision.matches):
        fate = fates[i] if i < len(fates) else None
        got = inbound.get(i)
        rows.append(
            {
                "session": session,
                "own_record_id": match.local_record_id,
                "own_category": categories.get(match.local_record_id, ""),
                "score": f"{match.score:.3f}",
                "agreeing_keys": " ".join(sorted(match.agreeing_keys)),
                "disagreeing_keys": " ".join(sorted(match.disagreeing_keys)),
                "missing_keys": " ".join(sorted(match.missing_keys)),
                "outbound": fate.fate.value if fate is not None else "not-released",
                "outbound_release_id": _hex(fate.release_id if fate is not None else None),
                "outbound_reasons": " ".join(fate.reasons) if fate is not None else "",
                "inbound": got.status if got is not None else "none",
                "inbound_release_id": _hex(got.release_id if got is not None else None),
                "inbound_category": got.category if got is not None else "",
            }
        )
    csv_path = directory / f"{session}.csv"
    with written_whole(csv_path) as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    with written_whole(directory / f"{session}.jsonl") as f:
        for row in rows:
            f.write(json.dumps(row, sort_keys=True) + "\n")
    return csv_path


def decision_document(decision: Decision) -> dict[str, object]:
    """How a session's matches were decided, as JSON: the weighting, the link rule, the
    threshold, the counts, and the whole estimate when weights were estimated (no record id:
    the estimate is over agreement patterns only)."""
    return {
        "session": decision.session_id.hex(),
        "weights": decision.weights,
        "links": decision.links,
        "threshold": decision.threshold,
        "candidates": decision.candidates,
        "decided": len(decision.matches),
        "estimate": decision.estimate.to_dict() if decision.estimate is not None else None,
        "estimate_note": decision.estimate_note,
        "link_choice": (
            decision.link_choice.to_dict() if decision.link_choice is not None else None
        ),
    }


def write_decision(directory: Path, decision: Decision) -> tuple[Path, bytes]:
    """Write ``matches/<session>.decision.json`` (:func:`decision_document`, mode 0600);
    return its path and the SHA-256 of its bytes, which the ``DECIDED`` audit entry holds."""
    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps(decision_document(decision), indent=2, sort_keys=True) + "\n"
    path = directory / f"{decision.session_id.hex()}.decision.json"
    with written_whole(path) as f:
        f.write(text)
    return path, hashlib.sha256(text.encode("utf-8")).digest()


def record_decision(directory: Path, decision: Decision, audit: AuditLog, now: datetime) -> None:
    """Write the decision file (:func:`write_decision`) and audit ``DECIDED`` with its digest,
    and with estimated weights the expected matches, the dominated pairs learnt from and the
    estimate's certain threshold (a pair must also reach the schema's to pass the link rule)."""
    _, digest = write_decision(directory, decision)
    fields: dict[str, object] = {
        "session": decision.session_id,
        "weights": decision.weights,
        "links": decision.links,
        # bounded to what the audit's decimal field holds (an MOU may set any finite floor)
        "threshold": f"{min(max(decision.threshold, -1e11), 1e11):.6f}",
        "candidates": decision.candidates,
        "decided": len(decision.matches),
        "digest": digest,
    }
    if decision.link_choice is not None:
        fields["links_asked"] = AUTO
        fields["likely"] = decision.link_choice.likely
        fields["likely_shared"] = max(
            decision.link_choice.shared_left, decision.link_choice.shared_right
        )
    if decision.estimate is not None:
        fields["expected"] = decision.estimate.expected_matches
        fields["dominated"] = decision.estimate.dominated_pairs
        fields["certain"] = f"{min(max(decision.estimate.certain, -1e11), 1e11):.6f}"
    audit.append(AuditEvent.DECIDED, fields, now=now)


def _hex(value: bytes | None) -> str:
    return "" if value is None else value.hex()
