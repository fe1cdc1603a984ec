"""What ``xlink query ask`` and ``xlink query manifest`` print: each traveller's answer as a
line, the session's summary, and the same as JSON; and ``xlink query serve``'s line per
connection answered."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from xlink.agency import QueryOutcome, QueryServed, TravellerAnswer
from xlink.prepare import PreparedSide, StrPath

__all__ = ["answer_line", "outcome_json", "print_ask", "print_manifest", "served_line"]

_FATE_TEXT = {
    "queued": "pending approval by {holder}'s officer (ask again once approved)",
    "pending": "still pending approval by {holder}'s officer (ask again once approved)",
    "denied": "denied by {holder} (its MOU or its officer): nothing released",
    "not-decided": "not confirmed by {holder}: nothing released",
    "not-asked": "release not asked (over the per-query limit): ask about it again",
}


def _answer_json(a: TravellerAnswer) -> dict[str, object]:
    return {
        "record_id": a.record_id,
        "matched": a.matched,
        "fate": a.fate,
        "release_id": a.release_id,
        "category": a.category,
        "score": a.score,
        "held": a.held,
        "filed_for": a.filed_for,
    }


def _fates(outcome: QueryOutcome) -> Counter[str]:
    return Counter(_fate(a) for a in outcome.answers if a.matched)


def _fate(a: TravellerAnswer) -> str:
    """An answer's count: a release refused here is not released, and one the holder says it
    delivered that our store never received is not delivered."""
    if a.fate == "sent":
        return "released" if a.category is not None else "refused-by-us"
    if a.fate == "delivered" and a.held == "unknown":
        return "delivered-unknown"
    return str(a.fate)


def outcome_json(
    o: QueryOutcome, mou_id: str, side: PreparedSide, *, every_answer: bool
) -> dict[str, object]:
    fates = _fates(o)
    return {
        "agency": o.agency,
        "holder": o.holder,
        "mou_id": mou_id,
        "session_id": o.session_id,
        "period": o.period,
        "travellers": o.travellers,
        "rejected": side.rejected,
        "evaluations": o.evaluations,
        "table_entries": o.table_entries,
        "table_fetched": o.table_fetched,
        "candidates": o.candidates,
        "matched": o.matched,
        "released": fates["released"],
        "released_by_category": dict(
            Counter(a.category for a in o.answers if a.fate == "sent" and a.category)
        ),
        "pending": fates["queued"] + fates["pending"],
        "denied": fates["denied"],
        "delivered_before": fates["delivered"],
        "delivered_unknown": fates["delivered-unknown"],
        "not_released": fates["not-decided"] + fates["not-asked"],
        "received": o.received,
        "refused_by_us": o.refused_by_us,
        "answers": [_answer_json(a) for a in o.answers if every_answer or a.matched],
    }


def answer_line(a: TravellerAnswer, holder: str) -> str:
    """``USTR-00397: match (score 31.2): released [sex_offender], release ID, in the store``."""
    if not a.matched:
        return f"{a.record_id}: no match"
    head = f"{a.record_id}: match (score {a.score})" if a.score is not None else a.record_id
    if a.fate == "sent" and a.category is not None:
        return f"{head}: released [{a.category}], release {a.release_id}, in the store"
    if a.fate == "sent":
        # any other refusal ends the session (BAD_RELEASE): only the holder's clock is left
        return (
            f"{head}: release refused here: the holder's clock (dated ahead, or past its "
            "retention); audited"
        )
    if a.fate == "delivered":
        return f"{head}: {_delivered_text(a, holder)}"
    text = _FATE_TEXT.get(str(a.fate), f"{a.fate}")
    return f"{head}: {text.format(holder=holder)}"


def _delivered_text(a: TravellerAnswer, holder: str) -> str:
    """A release delivered before, as our store has it (xlink-query-v1 §7.4), with the record
    it was filed for when that is not this traveller's id (the holder chose the release)."""
    other = f", filed for {a.filed_for}" if a.filed_for not in (None, a.record_id) else ""
    if a.held == "unknown":
        return (
            f"{holder} says delivered before, but release {a.release_id} is not one received "
            "from it here (audited): a store replaced or restored from an older copy, or a "
            "false answer"
        )
    if a.held == "purged":
        return f"delivered before, release {a.release_id}: purged from the store since{other}"
    kept = "in the store, past its retention" if a.held == "expired" else "in the store"
    return f"delivered before, release {a.release_id} [{a.category}], {kept}{other}"


def served_line(s: QueryServed, now: datetime) -> str:
    """The holder's line for one asker connection once it has ended: ``2026-12-07T21:40:03Z
    session 5e1c…: completed, 14 evaluations, 2 of 3 requested released`` (no traveller, no
    record: counts only)."""
    when = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    session = f"session {s.session_id[:16]}…" if s.session_id else "a connection"
    ended = s.outcome if s.code is None else f"{s.outcome} ({s.code})"
    if not s.session_id:  # refused before a session opened (the month's table, the quota)
        ended = f"{ended} before its session opened (audited)"
    return (
        f"{when} {session}: {ended}, {s.evaluations} evaluations, "
        f"{s.released} of {s.requested} requested released"
    )


def print_ask(o: QueryOutcome, wall: float) -> None:
    for a in o.answers:
        print(answer_line(a, o.holder))
    print(
        f"  {o.agency} asked {o.holder}, session {o.session_id[:16]}…: "
        f"{o.evaluations} evaluations, table of {o.table_entries} entries "
        f"({o.table_fetched} fetched); done in {wall:.1f} s"
    )


def print_manifest(
    o: QueryOutcome, mou_id: str, side: PreparedSide, files: Sequence[StrPath], wall: float
) -> None:
    fates = _fates(o)
    names = ", ".join(Path(f).name for f in files)
    print(f"{o.agency} asked {o.holder} about {names} (MOU {mou_id}, session {o.session_id[:16]}…)")
    print(f"  travellers {o.travellers}, rejected rows {side.rejected}")
    print(
        f"  evaluations {o.evaluations}, table {o.table_entries} entries "
        f"({o.table_fetched} fetched), candidate pairs {o.candidates}"
    )
    by_category = Counter(a.category for a in o.answers if a.fate == "sent" and a.category)
    released = ", ".join(f"{k} {v}" for k, v in sorted(by_category.items())) or "none"
    print(
        f"  matched {o.matched}: released {fates['released']} ({released}), pending approval "
        f"{fates['queued'] + fates['pending']}, denied {fates['denied']}, delivered before "
        f"{fates['delivered']}"
    )
    not_released = fates["not-decided"] + fates["not-asked"] + fates["refused-by-us"]
    if not_released:
        print(f"  not released {not_released}")
    if fates["delivered-unknown"]:
        print(
            f"  said delivered before but not received here {fates['delivered-unknown']} "
            "(audited): see each answer"
        )
    print(f"  done in {wall:.1f} s")
    for a in o.answers:
        if a.matched:
            print(answer_line(a, o.holder))
