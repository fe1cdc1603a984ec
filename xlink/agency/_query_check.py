"""The query holder's own decision on each record a release request names (xlink-query-v1
§7.5 items 1-5), mixed into :class:`~xlink.agency._query_holder.QueryService`: the claimed
handles must be the record's, the pair must reach the MOU's threshold with the schema's
evidence on the holder's scoring, and one-to-one as the holder sees it (no rival record of
ours as good a match, and the day of claims: :mod:`xlink.agency._claims`). A record decided
spends its tokens and its household's; one not decided gets a reason code, audited by the
caller."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from xlink.agency._claims import ClaimsRequest, spent_tokens, still_decided
from xlink.decide import DecidedMatch
from xlink.error_codes import AbortCode
from xlink.errors import RemoteProtocolError
from xlink.linkage._derive import TokenDeriver
from xlink.linkage.scoring import KeyWeight, fellegi_sunter_score, floor_score
from xlink.prepare import PreparedSide
from xlink.query.entries import keys_present
from xlink.query.session import HolderSession, RequestedHit, query_handle
from xlink.query.table import HolderTable
from xlink.records.model import PersonRecord

if TYPE_CHECKING:
    from xlink.agency._agency import Agency

__all__ = ["HolderChecks"]


class HolderChecks:
    """The release-request checks of :class:`~xlink.agency._query_holder.QueryService`,
    which inherits them (as :class:`~xlink.agency.Agency` inherits its release methods)."""

    agency: Agency
    side: PreparedSide  # the list as it is now
    table: HolderTable  # the table of the service's month, kept up to date with the list
    _records: Mapping[str, PersonRecord]
    _weights: tuple[Mapping[str, KeyWeight | float], Mapping[str, float]]
    _deriver: TokenDeriver  # the households of the records decided, one for the service

    def _decide_hit(
        self,
        session: HolderSession,
        table: HolderTable,
        listed: Mapping[str, list[bytes]] | None,
        claims: ClaimsRequest,
        position: int,
        hit: RequestedHit,
        outputs: dict[bytes, bytes],
    ) -> DecidedMatch | str:
        """The holder's own decision on one requested record (spec §7.5 items 1-5): the
        decided match, its handles' outputs added to ``outputs`` and every token of the record
        and of its household claimed (not only the handles': xlink-query-v1 §7.5 item 5,
        :func:`~xlink.agency._claims.spent_tokens`); or why it is not decided, a reason code
        (``not-listed``, ``below-mou-threshold``, ``too-little-evidence``, ``rival-record``,
        ``claimed-today``). A handle that is not one of the record's tokens aborts the session
        (``CONFIRMATION_FAILED``). ``table`` is the session's: the table of the month it
        started in (spec §4.2); ``listed``, :meth:`_listed_now` of the request."""
        schema = self.agency.schema
        assert session.session_id is not None
        record_id = table.record_id(hit.record)
        if record_id is None or record_id not in self._records:
            return "not-listed"  # removed since the asker's copy: not decided
        if listed is not None and set(listed.get(record_id, ())) != set(
            table.record_tokens(hit.record)
        ):
            return "not-listed"  # changed since the session's month began (:meth:`_listed_now`)
        by_handle = {
            query_handle(session.session_id, y): (key, y, token)
            for (key, y), token in zip(
                table.record_outputs(hit.record), table.record_tokens(hit.record), strict=True
            )
        }
        if not set(hit.handles) <= by_handle.keys():
            # A claimed match on a token this record does not have: the asker does not hold
            # what it claims (a guess, a copied handle), and nothing is released.
            session.abort(AbortCode.CONFIRMATION_FAILED, "a claimed match that is not one")
            raise RemoteProtocolError(
                AbortCode.CONFIRMATION_FAILED, f"record {position}: handles not of it"
            )
        agreeing = frozenset(by_handle[h][0] for h in hit.handles)
        asker_keys = keys_present(hit.presence, schema.key_names)
        disagreeing = (asker_keys & table.presence(hit.record)) - agreeing
        weights, disagreement = self._weights
        score = fellegi_sunter_score(agreeing, weights, disagreeing, disagreement)
        # the floor counts a disagreement only where it lowers the score: the asker declares
        # the key presence that makes one
        floor = floor_score(agreeing, weights, disagreeing, disagreement)
        if floor < self.agency.mou.match_threshold:
            return "below-mou-threshold"
        if not schema.has_evidence(agreeing):
            return "too-little-evidence"  # one fact about a person (a name alone)
        contested = self._contested(
            table, claims, hit.record, record_id, by_handle, hit.handles, asker_keys, score, floor
        )
        if contested is not None:
            return contested  # one-to-one refuses it
        # what the record holds, and what its household gives, is spent today
        claims.add(
            record_id,
            spent_tokens(
                self._records[record_id], table.record_tokens(hit.record), schema, self._deriver
            ),
        )
        for h in hit.handles:
            outputs[h] = by_handle[h][1]
        return DecidedMatch(
            record_id, position, agreeing, score, tuple(sorted(hit.handles)), disagreeing
        )

    def _listed_now(
        self, table: HolderTable, hits: Sequence[RequestedHit]
    ) -> Mapping[str, list[bytes]] | None:
        """For a session that began before the month changed (its ``table`` an earlier month's,
        which no update of the list reaches): the tokens the list holds now for each record the
        request names, read in one pass over the list; None for a session of this month (its
        table is kept up to date: a changed record's entries are removed from it).
        :meth:`_decide_hit` refuses a record whose tokens these are not, as this month's table
        would (spec §4.2): an updated record must not be released on the tokens it had."""
        if table is self.table:
            return None
        wanted = {rid for hit in hits if (rid := table.record_id(hit.record)) is not None}
        return self.side.tokens.tokens_of(wanted)

    def _contested(
        self,
        table: HolderTable,
        claims: ClaimsRequest,
        record: int,
        record_id: str,
        by_handle: dict[bytes, tuple[str, bytes, bytes]],
        handles: Sequence[bytes],
        asker_keys: frozenset[str],
        score: float,
        floor: float,
    ) -> str | None:
        """One-to-one, as far as the holder can see it (spec §7.5 items 4 and 5), for a pair
        that reaches the threshold with the evidence: a pair at the schema's certain threshold
        passes (None), on its ``floor`` score (:func:`~xlink.linkage.scoring.floor_score`:
        the disagreements the asker declares lift no pair past the rules); else it is refused
        when another live record of ours is as good a match
        on the claimed tokens (:meth:`_rivalled`: ``rival-record``), or when the claimed tokens
        that did not already decide another of our records today do not reach the threshold
        with the evidence on their own (:class:`~xlink.agency._claims.Claims`:
        ``claimed-today``)."""
        schema = self.agency.schema
        if schema.certain_threshold is not None and floor >= schema.certain_threshold:
            return None
        claimed = [by_handle[h][2] for h in handles]
        if self._rivalled(table, record, claimed, asker_keys, score):
            return "rival-record"
        disagreeing = (asker_keys & table.presence(record)) - frozenset(
            by_handle[h][0] for h in handles
        )
        decided = still_decided(
            claims,
            record_id,
            [(by_handle[h][0], by_handle[h][2]) for h in handles],
            disagreeing,
            schema=schema,
            weights=self._weights,
            threshold=self.agency.mou.match_threshold,
        )
        return None if decided else "claimed-today"

    def _rivalled(
        self,
        table: HolderTable,
        record: int,
        claimed: Sequence[bytes],
        asker_keys: frozenset[str],
        score: float,
    ) -> bool:
        """Whether the asker's record, holding the ``claimed`` tokens of our ``record`` (which
        scores ``score``), is as good a match for another live record of ours (spec §7.5): one
        that holds some of those tokens and, agreeing on their keys and disagreeing on the
        asker's other keys it has, scores at least as much, reaches the threshold and has the
        evidence. One-to-one refuses such a pair, as the batch path does, unless it reaches the
        schema's certain threshold: a rival is how an asker who names one person's household
        or namesakes would have every one of them released."""
        schema = self.agency.schema
        weights, disagreement = self._weights
        for rival, agreeing in table.holders_of(claimed).items():
            if rival == record:
                continue
            disagreeing = (asker_keys & table.presence(rival)) - agreeing
            rival_score = fellegi_sunter_score(agreeing, weights, disagreeing, disagreement)
            if (
                rival_score >= score
                and rival_score >= self.agency.mou.match_threshold
                and schema.has_evidence(agreeing)
            ):
                return True
        return False
