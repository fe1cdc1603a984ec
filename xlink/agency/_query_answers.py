"""What the asker of a real-time query makes of its travellers' OPRF outputs
(xlink-query-v1 §7.4): the candidate pairs its copy of the holder's table gives, the decision
with the MOU's schema exactly as the batch path decides, the releases it asks for and stores,
and the answer about each traveller."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import numpy.typing as npt

from xlink._pair_columns import PairColumns, from_table
from xlink.agency._inbound import Receiver, ending_on_dishonesty
from xlink.agency._query_common import _flush, _only, _receive
from xlink.audit import AuditEvent
from xlink.decide import DecidedMatch, Decision, OneToOneSieve, decide
from xlink.error_codes import AbortCode
from xlink.errors import RemoteProtocolError
from xlink.linkage.tokens import TokenSet
from xlink.prepare import PreparedSide
from xlink.protocol._pair_table import pair_table
from xlink.protocol._reveal import _column_at, _presence_codes, record_key_sets
from xlink.protocol.events import CandidatePair, PairTable
from xlink.protocol.limits import HANDLE_SIZE, MAX_PAIR_HANDLES
from xlink.query.asker_table import SharedHits
from xlink.query.messages import MAX_HITS
from xlink.query.session import AskerSession, Fate, ReleasesReceived, RequestedHit, query_handle
from xlink.query.table import AskerTable, presence_bits
from xlink.release.label import per_handle
from xlink.store.reasons import DENY_UNKNOWN_RELEASE
from xlink.transport import Connection

if TYPE_CHECKING:
    from xlink.agency._agency import Agency

__all__ = ["TravellerAnswer"]

Ints = npt.NDArray[np.int64]


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
    held: str | None = None
    """``delivered``: the release as our store has it (:class:`Delivered`'s ``state``:
    ``held``, ``expired``, ``purged``, or ``unknown``: not one this holder delivered to us);
    ``release_id`` is then the stored release's, ``category`` its own."""
    filed_for: str | None = None
    """``delivered``: our record the release was filed for (a traveller asked about before,
    under this id or another, or a record of an exchange)."""


class Delivered(NamedTuple):
    """A release a holder says it delivered before, as our store has it: ``state`` is
    ``held``, ``expired`` (stored, past its retention), ``purged`` or ``unknown`` (never
    received from this holder); ``release_id`` the stored release's (for a copy, the one it
    copies; the holder's id when unknown), its category while stored, and our record it was
    filed for."""

    state: str
    release_id: str
    category: str | None
    filed_for: str | None


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
    """Candidate pairs (traveller, holder record) in the shape :func:`decide` reads: a
    :class:`~xlink.protocol.events.PairTable` whose peer references number the holder's
    records found (``holders``, ascending) from 0, read by :func:`decide` with the holder's
    own record indices as the peer references."""

    def __init__(self, session_id: bytes, table: PairTable, holders: Ints) -> None:
        self.session_id = session_id
        self.table = table
        self._holders = holders
        #: The pairs in columns, peer references as in ``table`` (made once: the sieve reads
        #: them too).
        self.dense = from_table(table)

    def pair_columns(self) -> PairColumns:
        return dataclasses.replace(self.dense, ref=self._holders[self.dense.ref])

    def iter_pairs(self) -> Iterator[CandidatePair]:
        for pair in self.table:
            yield dataclasses.replace(pair, peer_ref=int(self._holders[pair.peer_ref]))


@dataclass(frozen=True, slots=True, eq=False)
class _Found:
    """The hits the candidate pairs are made of, one row each: the traveller token
    (``token``, the output's index), the holder's record (``record``), the token's key and the
    index of its handle in ``handles`` (``(m, 16)``, distinct, ascending, as the PSI's)."""

    token: Ints
    record: Ints
    key: Ints
    handle: Ints
    handles: npt.NDArray[np.uint8]

    def shared(
        self, tokens: TokenSet, pairs: set[tuple[str, int]]
    ) -> dict[tuple[str, int], dict[str, set[bytes]]]:
        """Every handle each of ``pairs`` (traveller record id, holder record) shares, by key
        name: a few pairs, so a few rows (duplicates of one entry counted once)."""
        out: dict[tuple[str, int], dict[str, set[bytes]]] = {pair: {} for pair in pairs}
        rows = np.flatnonzero(np.isin(self.record, np.array([h for _, h in pairs], np.int64)))
        traveller = _column_at(tokens.record_index, self.token[rows]).tolist()
        columns = (self.record[rows].tolist(), self.handle[rows].tolist(), self.key[rows].tolist())
        flat, ids = self.handles.tobytes(), tokens.record_ids
        for t, r, h, k in set(zip(traveller, *columns, strict=True)):
            by_key = out.get((ids[t], r))
            if by_key is not None:
                handle = flat[h * HANDLE_SIZE : (h + 1) * HANDLE_SIZE]
                by_key.setdefault(tokens.key_names[k], set()).add(handle)
        return out


def _handles(
    hits: SharedHits, handle_of: Callable[[int], bytes]
) -> tuple[Ints, npt.NDArray[np.uint8]]:
    """The handle of each row of ``hits.found``, as an index into the handles found
    (``(m, 16)``, distinct, ascending, as the PSI's: travellers holding one token, one
    handle). ``handle_of(i)`` is output ``i``'s."""
    used = np.unique(hits.found.output)
    _, first = np.unique(hits.index, return_index=True)  # an output of each distinct output
    found = [handle_of(i) for i in first[used].tolist()]
    distinct = sorted(set(found))
    where = {h: k for k, h in enumerate(distinct)}
    position = np.array([where[h] for h in found], dtype=np.int64)
    handles = np.frombuffer(b"".join(distinct), dtype=np.uint8).reshape(-1, HANDLE_SIZE)
    return position[np.searchsorted(used, hits.found.output)], handles


def _peer_key_sets(
    hits: SharedHits,
    key: Ints,
    ref: Ints,
    holders: int,
    local: npt.NDArray[np.unsignedinteger[Any]],
) -> npt.NDArray[np.unsignedinteger[Any]]:
    """The keys each holder record found has (spec §7.4), indexed by ``ref`` (each row of
    ``hits.found``'s holder record, numbered from 0): what its entries' bitmaps say, and the
    key of every output that hit it (``key[i]``, output ``i``'s; a bitmap that leaves its own
    key out cannot hide it)."""
    presence = hits.found.presence
    if presence.shape[1]:
        own = np.zeros((len(hits.counts), presence.shape[1]), dtype=np.uint8)
        np.bitwise_or.at(own, (hits.index, key >> 3), np.left_shift(1, key & 7).astype(np.uint8))
        presence = presence | own[hits.found.output]
    codes = _presence_codes(presence, local)
    peer = np.zeros((holders, *codes.shape[1:]), dtype=codes.dtype)
    np.bitwise_or.at(peer, ref, codes)
    return peer


#: About the most hit rows the asker makes candidate pairs of at once (its travellers are
#: taken in groups of whole travellers; one traveller's rows are never cut).
_MAX_ROWS = 1 << 16


def _groups(tokens: TokenSet, counts: Ints) -> list[Ints]:
    """The outputs with hits (``counts[i]`` rows for output ``i``), in groups of whole
    travellers of at most about :data:`_MAX_ROWS` rows."""
    live = np.flatnonzero(counts)
    record = _column_at(tokens.record_index, live)
    order = np.argsort(record, kind="stable")
    live, record = live[order], record[order]
    # each traveller's outputs are live[bounds[k]:bounds[k + 1]]
    bounds = np.append(np.flatnonzero(np.diff(record, prepend=-1)), len(live)).tolist()
    rows = np.concatenate([[0], np.cumsum(counts[live])]).tolist()  # rows before each output
    groups, first = [], 0
    for begin, end in itertools.pairwise(bounds):
        if begin > first and rows[end] - rows[first] > _MAX_ROWS:
            groups.append(live[first:begin])
            first = begin
    if len(live):
        groups.append(live[first:])
    return groups


def _cut(match: DecidedMatch) -> bool:
    """Whether the decision may have left out some of ``match``'s handles."""
    return len(match.handles) >= MAX_PAIR_HANDLES


#: Most holder records one traveller may be decided with at the certain threshold: a table
#: that lists one person more often than a request could name (:data:`MAX_HITS`) is a flood,
#: each of whose records would be a decided match (spec §7.4).
MAX_CERTAIN = MAX_HITS


def _refuse_a_flood(travellers: Ints) -> None:
    """Raise ``RemoteProtocolError`` (BAD_TABLE) if a traveller is among ``travellers`` (one
    entry per pair at the certain threshold) more than :data:`MAX_CERTAIN` times."""
    if len(travellers) > MAX_CERTAIN and int(np.bincount(travellers).max()) > MAX_CERTAIN:
        raise RemoteProtocolError(
            AbortCode.BAD_TABLE,
            f"the table lists one traveller as more than {MAX_CERTAIN} records at the certain "
            "threshold",
        )


def _decide(
    agency: Agency,
    session_id: bytes,
    travellers: PreparedSide,
    table: AskerTable,
    outputs: list[bytes],
) -> tuple[Decision, int]:
    """The decision on the travellers' candidate pairs (spec §7.4) and how many pairs there
    were. ``outputs[i]`` is the OPRF output of the travellers' token ``i``.

    The pairs are columns (:func:`~xlink.protocol._pair_table.pair_table`), not objects, and
    a holder that lists one token for a great many records (a table may, up to its bound)
    costs the asker a few integers for each, once however many travellers hold the token:
    beyond :data:`_MAX_ROWS` hits, the travellers' pairs are made a group of travellers at a
    time and only those the decision could keep (:class:`~xlink.decide.OneToOneSieve`: usable,
    and certain or the only best of both their records) are kept for it: the same decision.
    Traveller ids are distinct (:meth:`~xlink.agency.QueryClient.ask` checks it). Raises
    ``RemoteProtocolError`` (BAD_TABLE) when one traveller has more than :data:`MAX_CERTAIN`
    pairs at the certain threshold, before they are made matches."""
    tokens = travellers.tokens
    threshold = agency.mou.match_threshold
    hits = table.shared_hits(outputs)
    holders, ref = np.unique(hits.found.record, return_inverse=True)
    ref = ref.astype(np.int64).ravel()
    handle, handles = _handles(hits, lambda i: query_handle(session_id, outputs[i]))
    key = _column_at(tokens.key_index, np.arange(len(outputs), dtype=np.int64))
    local = record_key_sets(tokens)
    peer = _peer_key_sets(hits, key, ref, len(holders), local)

    def pairs_of(token: Ints, row: Ints) -> PairTable:
        return pair_table(
            tokens,
            token,
            ref[row],
            handle[row],
            handles=handles,
            local_key_sets=local,
            peer_key_sets=peer,
        )

    groups = _groups(tokens, hits.hit_counts())
    sieve = OneToOneSieve(agency.schema, threshold, len(holders))

    def sifted(
        some: PairTable, columns: PairColumns
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        may, score, certain = sieve.sift(columns)
        _refuse_a_flood(some.record[may & certain])
        return may, score, certain

    if len(groups) <= 1:  # every pair at once
        token, row = hits.rows_of(groups[0] if groups else np.zeros(0, dtype=np.int64))
        source = _Candidates(session_id, pairs_of(token, row), holders)
        candidates = len(source.table.record)
        sifted(source.table, source.dense)
    else:  # a group at a time, keeping only the pairs the decision could keep
        kept: list[tuple[Ints, Ints, Ints, npt.NDArray[np.float64], npt.NDArray[np.bool_]]] = []
        candidates = 0
        for group in groups:
            token, row = hits.rows_of(group)
            some = pairs_of(token, row)
            candidates += len(some.record)
            may, score, certain = sifted(some, from_table(some))
            pair = some.record * len(holders) + some.ref  # (traveller, holder record)
            rows = np.isin(
                _column_at(tokens.record_index, token) * len(holders) + ref[row], pair[may]
            )
            kept.append((token[rows], row[rows], pair[may], score[may], certain[may]))
        token, row, pair, score, certain = (np.concatenate(c) for c in zip(*kept, strict=True))
        wanted = pair[sieve.keeps(pair % len(holders), score, certain)]
        rows = np.isin(_column_at(tokens.record_index, token) * len(holders) + ref[row], wanted)
        token, row = token[rows], row[rows]
        source = _Candidates(session_id, pairs_of(token, row), holders)
    found = _Found(token, holders[ref[row]], key[token], handle[row], handles)
    decision = decide(source, agency.schema, threshold)
    # The decision names at most a request's worth of a pair's handles, the lowest: for a pair
    # that may share more, pair_handles chooses them, so that every key it agreed on is named.
    full = {(m.local_record_id, m.peer_ref) for m in decision.matches if _cut(m)}
    shared = found.shared(tokens, full) if full else {}
    matches = tuple(
        dataclasses.replace(m, handles=pair_handles(shared[m.local_record_id, m.peer_ref]))
        if _cut(m)
        else m
        for m in decision.matches
    )
    return dataclasses.replace(decision, candidates=candidates, matches=matches), candidates


async def _collect_releases(
    conn: Connection,
    session: AskerSession,
    agency: Agency,
    travellers: PreparedSide,
    decision: Decision,
    outputs: list[bytes],
    idle_timeout: float,
    budget: int,
    counts: dict[str, int],
) -> tuple[tuple[TravellerAnswer, ...], int]:
    """Ask for the releases of the decided matches, store what comes, send the receipts;
    returns the travellers' answers and the releases refused, and adds the handles asked
    about to ``counts["evaluations"]`` once asked, each release stored to
    ``counts["received"]`` once stored. The holder counts each handle named against its
    quota (§8), so only the matches whose handles fit ``budget`` (what the quota leaves
    after the evaluations), in order and at most :data:`~xlink.query.messages.MAX_HITS`, are
    asked about; the others are answered ``not-asked``. A release refused for a reason no
    honest holder causes raises :class:`~xlink.errors.BadRelease` (§7.4): no receipts sent,
    what was stored before it stays stored and counted."""
    session_id = decision.session_id
    by_record: dict[str, DecidedMatch] = {}  # each traveller's answer: its first match
    for m in decision.matches:
        by_record.setdefault(m.local_record_id, m)
    fates: dict[str, dict[str, Any]] = {}  # each decided traveller's answer, but its score
    refused = 0
    matches: list[tuple[int, DecidedMatch]] = []  # asked about, with their index in decision
    named: set[int] = set()
    for index, match in enumerate(decision.matches):
        if len(matches) == MAX_HITS or len(match.handles) > budget:
            break
        # a holder record is named once in a request (§6.11): two travellers decided with
        # it (pairs at the certain threshold) ask about it for the first
        if match.peer_ref in named:
            continue
        named.add(match.peer_ref)
        budget -= len(match.handles)
        matches.append((index, match))
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
            for _, m in matches
        ]
        session.request_releases(hits)
        counts["evaluations"] += sum(len(m.handles) for _, m in matches)
        await _flush(conn, session)
        got = _only(session.receive(await _receive(conn, idle_timeout)), ReleasesReceived)
        # a release "delivered before" is shown as our store has it, never on the holder's
        # word alone (it could name a made-up release, or another traveller's)
        delivered = _delivered_before(
            agency, session_id, [a.release_id for a in got.answers if a.fate is Fate.DELIVERED]
        )
        receiver = Receiver(agency, session_id, decision, per_handle(own_output.__getitem__))
        store_one = ending_on_dishonesty(receiver.store_one)
        receipts: list[tuple[bool, bytes]] = []
        for (index, match), answer in zip(matches, got.answers, strict=True):
            release_id = answer.release_id.hex() if any(answer.release_id) else None
            category = held = filed_for = None
            if answer.fate is Fate.DELIVERED:
                held, release_id, category, filed_for = delivered[answer.release_id]
            if answer.fate is Fate.SENT:
                # the frame must be this match's release, not another traveller's; one
                # that is not ends the session (BAD_RELEASE), unless the clock refused it
                ok, data, _ = store_one(answer.frame, for_match=index)
                receipts.append((ok, data))
                if ok:
                    stored = receiver.inbound[index]
                    category, release_id = stored.category, stored.release_id.hex()
                    counts["received"] += 1
            if by_record[match.local_record_id] is match:
                fates[match.local_record_id] = {
                    "fate": answer.fate.name.lower().replace("_", "-"),
                    "release_id": release_id,
                    "category": category,
                    "held": held,
                    "filed_for": filed_for,
                }
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
        said = fates.get(rid, {"fate": "not-asked"})
        answers.append(TravellerAnswer(rid, True, score=round(decided.score, 3), **said))
    return tuple(answers), refused


def _delivered_before(
    agency: Agency, session_id: bytes, release_ids: list[bytes]
) -> dict[bytes, Delivered]:
    """What each release id a holder answered ``DELIVERED`` with is here (xlink-query-v1
    §7.4), from what our store keeps of every release it received, copies included, after a
    purge too: the stored release it is or copies (``held``, ``expired``: past its retention,
    not readable; ``purged``), with its category and our record it was filed for. An id that
    is not a release this holder delivered to us (zeros, never received, another partner's)
    is ``unknown`` and audited ``RECEIVE_DENIED`` (``unknown-release``): a holder that says
    so lies, or our store was replaced or restored from an older copy, and the answer shows
    it as such; nothing of the holder's is taken, so the session goes on."""
    peer, now = agency.peer_id, agency.clock()
    found: dict[bytes, Delivered] = {}
    for release_id in dict.fromkeys(release_ids):
        got = agency.store.received(release_id, now) if any(release_id) else None
        if got is None or got.originator != peer:
            fields = {"session": session_id, "handle": release_id, "reason": DENY_UNKNOWN_RELEASE}
            agency.audit.append(AuditEvent.RECEIVE_DENIED, {**fields, "peer": peer}, now=now)
            found[release_id] = Delivered("unknown", release_id.hex(), None, None)
        elif got.held is None:
            found[release_id] = Delivered("purged", got.held_id.hex(), None, got.own_record_id)
        else:
            state = "expired" if got.held.expired else "held"
            held = got.held
            found[release_id] = Delivered(
                state, held.release_id.hex(), held.category.value, got.own_record_id
            )
    return found
