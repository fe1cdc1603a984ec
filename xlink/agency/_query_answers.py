"""What the asker of a real-time query makes of its travellers' OPRF outputs
(xlink-query-v1 §7.4): the candidate pairs its copy of the holder's table gives, the decision
with the MOU's schema exactly as the batch path decides, the releases it asks for and stores,
and the answer about each traveller."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from xlink.agency._inbound import Receiver
from xlink.agency._query_common import _flush, _only, _receive
from xlink.decide import DecidedMatch, Decision, decide
from xlink.prepare import PreparedSide
from xlink.protocol.events import CandidatePair
from xlink.protocol.limits import MAX_PAIR_HANDLES
from xlink.query.messages import MAX_HITS
from xlink.query.session import AskerSession, Fate, ReleasesReceived, RequestedHit, query_handle
from xlink.query.table import AskerTable, presence_bits
from xlink.release.label import per_handle
from xlink.transport import Connection

if TYPE_CHECKING:
    from xlink.agency._agency import Agency

__all__ = ["TravellerAnswer"]


@dataclass(frozen=True, slots=True)
class TravellerAnswer:
    """The answer about one traveller (one of the asker's records): no match, or a decided
    match and what the holder did with its release (``sent`` and stored, ``queued`` or
    ``pending`` an officer's approval, ``denied``, ``delivered`` before, or ``not-decided``
    by the holder)."""

    record_id: str
    matched: bool
    fate: str | None = None
    release_id: str | None = None
    category: str | None = None
    score: float | None = None


def pair_handles(by_key: dict[str, set[bytes]]) -> tuple[bytes, ...]:
    """The handles a pair names (spec §7.4), ascending: all of them when they fit in
    :data:`~xlink.protocol.limits.MAX_PAIR_HANDLES`; else the lowest handle of each agreeing key
    first, then the lowest of the rest. The holder scores a pair on the keys its handles name
    (§7.5), so a cut that dropped every handle of one key would score it lower than the asker
    did and refuse a match the asker decided."""
    every = sorted(set().union(*by_key.values()))
    if len(every) <= MAX_PAIR_HANDLES:
        return tuple(every)
    chosen = {min(handles) for handles in by_key.values() if handles}
    for handle in every:
        if len(chosen) >= MAX_PAIR_HANDLES:
            break
        chosen.add(handle)
    return tuple(sorted(chosen))


class _Candidates:
    """Candidate pairs (traveller, holder record) in the shape :func:`decide` reads."""

    def __init__(self, session_id: bytes, pairs: list[CandidatePair]) -> None:
        self.session_id = session_id
        self._pairs = pairs

    def iter_pairs(self) -> Iterator[CandidatePair]:
        return iter(self._pairs)


def _decide(
    agency: Agency,
    session_id: bytes,
    travellers: PreparedSide,
    table: AskerTable,
    outputs: list[bytes],
) -> tuple[Decision, int]:
    tokens = travellers.tokens
    names = agency.schema.key_names
    own_keys: dict[int, set[str]] = {}
    found: dict[tuple[int, int], tuple[dict[str, set[bytes]], frozenset[int]]] = {}
    for i, (output, found_hits) in enumerate(zip(outputs, table.lookup_many(outputs), strict=True)):
        record, key = tokens.record_index[i], tokens.key_names[tokens.key_index[i]]
        own_keys.setdefault(record, set()).add(key)
        for hit in found_hits:
            by_key, _ = found.setdefault((record, hit.record), ({}, hit.presence))
            by_key.setdefault(key, set()).add(query_handle(session_id, output))
    pairs = [
        CandidatePair(
            local_record_id=tokens.record_ids[record],
            peer_ref=holder_record,
            agreeing_keys=frozenset(by_key),
            handles=pair_handles(by_key),
            local_keys=frozenset(own_keys[record]),
            peer_keys=frozenset(names[k] for k in presence) | frozenset(by_key),
        )
        for (record, holder_record), (by_key, presence) in sorted(found.items())
    ]
    decision = decide(_Candidates(session_id, pairs), agency.schema, agency.mou.match_threshold)
    return decision, len(pairs)


async def _collect_releases(
    conn: Connection,
    session: AskerSession,
    agency: Agency,
    travellers: PreparedSide,
    decision: Decision,
    outputs: list[bytes],
    idle_timeout: float,
    budget: int,
) -> tuple[tuple[TravellerAnswer, ...], int, int, int]:
    """Ask for the releases of the decided matches, store what comes, send the receipts;
    returns the travellers' answers, the releases received, those refused and the handles
    asked about. The holder counts each handle named against its quota (§8), so only the
    matches whose handles fit ``budget`` (what the quota leaves after the evaluations), in
    order and at most :data:`~xlink.query.messages.MAX_HITS`, are asked about; the others
    are answered ``not-asked``."""
    session_id = decision.session_id
    by_record: dict[str, DecidedMatch] = {m.local_record_id: m for m in decision.matches}
    fates: dict[str, tuple[str, str | None, str | None]] = {}
    received = refused = 0
    matches: list[DecidedMatch] = []
    for match in decision.matches[:MAX_HITS]:
        if len(match.handles) > budget:
            break
        budget -= len(match.handles)
        matches.append(match)
    if matches:
        names = agency.schema.key_names
        tokens = travellers.tokens
        own_output = {query_handle(session_id, y): y for y in outputs}
        keys_of: dict[str, set[int]] = {}
        for i in range(len(tokens)):
            keys_of.setdefault(tokens.record_ids[tokens.record_index[i]], set()).add(
                tokens.key_index[i]
            )
        hits = [
            RequestedHit(
                m.peer_ref,
                presence_bits(sorted(keys_of[m.local_record_id]), len(names)),
                m.handles,
            )
            for m in matches
        ]
        session.request_releases(hits)
        await _flush(conn, session)
        got = _only(session.receive(await _receive(conn, idle_timeout)), ReleasesReceived)
        receiver = Receiver(agency, session_id, decision, per_handle(own_output.__getitem__))
        receipts: list[tuple[bool, bytes]] = []
        for match, answer in zip(matches, got.answers, strict=True):
            release_id = answer.release_id.hex() if any(answer.release_id) else None
            category = None
            if answer.fate is Fate.SENT:
                ok, data = receiver.store_one(answer.frame)
                receipts.append((ok, data))
                if ok:
                    category = receiver.accepted[-1].category
                    received += 1
            fates[match.local_record_id] = (
                answer.fate.name.lower().replace("_", "-"),
                release_id,
                category,
            )
        refused = receiver.refused
        if receipts:
            session.send_receipts(receipts)
            await _flush(conn, session)
    answers = []
    for rid in travellers.tokens.record_ids:
        decided = by_record.get(rid)
        if decided is None:
            answers.append(TravellerAnswer(rid, False))
            continue
        fate, release_id, category = fates.get(rid, ("not-asked", None, None))
        answers.append(
            TravellerAnswer(rid, True, fate, release_id, category, round(decided.score, 3))
        )
    return tuple(answers), received, refused, sum(len(m.handles) for m in matches)
