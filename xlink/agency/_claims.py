"""An agency's record of which of its records each of its tokens decided today with one
partner (xlink-query-v1 §7.5 item 5; xlink-release-v1 §3.1), kept in the agency's workdir so
that a restart forgets nothing: what one record won today holds wins no other record that day,
however often the holder restarts and whether the partner asks in the query mode or in a batch
exchange. The query holder claims what each record it decides spends (:func:`spent_tokens`:
every token of the record and of its household); a batch exchange what each record it
releases spends, not only the tokens behind the pair's handles: a household's family name and
address give a partner several tokens (the family name with the postcode, the street, MinHash
bands of the family name), and one member won on one of them spends them all
(:func:`still_decided` is the rule both apply).

A token is kept as a claim id, ``HMAC-SHA-256(claims key, token)[:16]``: never the token itself,
which is an unkeyed digest of an identity and open to a dictionary attack. The claims key is
derived from the agency's sealing key and the MOU (:data:`DST_CLAIMS_KEY`), not from the
month's OPRF key, so a session that straddles the end of a month claims under the same ids as
the next month's sessions. Rows of earlier days are deleted when a day's claims are written,
so the file holds one day.

A query's release request looks up and writes in one transaction (:meth:`Claims.request`),
committed before its answer leaves. An exchange reads the day at once (:meth:`Claims.snapshot`),
holds no lock while it builds its releases, and writes what they claim in one short
transaction before anything is sent (:meth:`Claims.keep`); if the day's claims changed in
between (a query session with the same partner), the exchange's rule is applied again to the
day as it is when they are written, and what it no longer allows is withdrawn before it
leaves. A file that cannot be used is an
:class:`~xlink.errors.InputError` when the service starts and an ``INTERNAL_ERROR`` abort
(audited) during a session.
"""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from xlink._sqlite import connect, transaction
from xlink.errors import InputError, InternalProtocolError, UntransliterableError
from xlink.linkage._derive import TokenDeriver
from xlink.linkage.schema import LinkageSchema
from xlink.linkage.scoring import KeyWeight, floor_score
from xlink.linkage.tokens import TOKEN_SIZE
from xlink.records.model import PersonName, PersonRecord
from xlink.records.names import name_readings
from xlink.records.normalise import name_part_components

__all__ = [
    "CLAIMS_FILE",
    "DST_CLAIMS_KEY",
    "Claims",
    "ClaimsRequest",
    "claims_key",
    "spent_tokens",
    "still_decided",
]

DST_CLAIMS_KEY: Final = b"xlink-query-v1/claims-key"
"""HKDF ``info`` of the claims key (salt: the MOU digest; input: the sealing key's secret)."""
CLAIMS_FILE: Final = "claims.db"
"""The claims' file, in the workdir's ``query`` folder."""

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS claims ("
    " day TEXT NOT NULL, peer TEXT NOT NULL, claim BLOB NOT NULL, record_id TEXT NOT NULL,"
    " PRIMARY KEY (day, peer, claim, record_id))"
)


def claims_key(sealing_secret: bytes, mou_digest: bytes) -> bytes:
    """The key of the claim ids of one agency under one MOU."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=mou_digest, info=DST_CLAIMS_KEY).derive(
        sealing_secret
    )


class ClaimsRequest:
    """A view of the day's claims with one partner: looked up and added to in memory; what is
    added is written when the view is kept (:meth:`Claims.request` ends, :meth:`Claims.keep`).
    ``fetch`` looks claim ids up in the store as they are asked about (a query's few tokens);
    without it the view holds the whole day, read at once (an exchange's many). What this view
    notes or adds is held by token, and a token's claim id is computed only to look the store
    up or to write it."""

    def __init__(
        self,
        key: bytes,
        day: date,
        peer: str,
        *,
        decided: dict[bytes, str] | None = None,
        fetch: Callable[[Sequence[bytes]], dict[bytes, str]] | None = None,
    ) -> None:
        self._keyed = hmac.new(key, digestmod=hashlib.sha256)  # copied per token: keyed once
        self.day = day.isoformat()
        self._peer = peer
        # claim id (stored) or token (noted here) -> the record it decided, or "" for several
        self._stored: dict[bytes, str] = decided if decided is not None else {}
        self._fetch = fetch
        self._fetched: set[bytes] = set()
        self._noted: dict[bytes, str] = {}
        self._added: list[tuple[str, bytes]] = []  # (record id, token) to write
        self.rows_read = 0  # the store's rows of the day a snapshot read

    def _id(self, token: bytes) -> bytes:
        mac = self._keyed.copy()
        mac.update(token)
        return mac.digest()[:16]

    def stale(self, record_id: str, tokens: Sequence[bytes]) -> frozenset[bytes]:
        """The ``tokens`` that decided another record than ``record_id`` today."""
        ids: dict[bytes, bytes] = {}
        if self._stored or self._fetch is not None:
            ids = {token: self._id(token) for token in tokens}
        if self._fetch is not None:
            wanted = [claim for claim in ids.values() if claim not in self._fetched]
            self._stored.update(self._fetch(wanted))
            self._fetched.update(wanted)
        stored, noted = self._stored, self._noted
        return frozenset(
            token
            for token in tokens
            if noted.get(token, record_id) != record_id
            or stored.get(ids.get(token, b""), record_id) != record_id
        )

    def note(self, record_id: str, tokens: Iterable[bytes]) -> None:
        """Count ``tokens`` as deciding ``record_id`` for the rest of this view, not kept."""
        noted = self._noted
        for token in tokens:
            _one_or_several(noted, token, record_id)

    def add(self, record_id: str, tokens: Iterable[bytes]) -> None:
        """Keep that ``tokens`` decided ``record_id`` today."""
        tokens = list(tokens)
        self.note(record_id, tokens)
        self._added.extend((record_id, token) for token in tokens)

    def take_rows(self) -> list[tuple[str, str, bytes, str]]:
        """The rows of what was added since the last take, claim ids computed now, in the
        order of the table's key: written in that order, each lands next to the one before in
        the key's index instead of on a page of its own (an exchange writes a few hundred
        thousand; claim ids are random)."""
        day, peer = self.day, self._peer
        ids = sorted((self._id(token), rid) for rid, token in self._added)
        self._added.clear()
        return [(day, peer, claim, rid) for claim, rid in ids]


def still_decided(
    claims: ClaimsRequest,
    record_id: str,
    claimed: Sequence[tuple[str, bytes]],
    disagreeing: frozenset[str],
    *,
    schema: LinkageSchema,
    weights: tuple[Mapping[str, KeyWeight | float], Mapping[str, float]],
    threshold: float,
) -> bool:
    """Whether a pair of our record ``record_id`` resting on the ``claimed`` tokens (``(key,
    token)``; the keys that disagree: ``disagreeing``) is still decided once the tokens that
    decided another of our records today are set aside (xlink-query-v1 §7.5 item 5): the rest,
    as agreeing keys, must reach ``threshold`` on ``weights`` (the schema's agreement and
    disagreement weights, each disagreement counted only where it lowers the score:
    :func:`~xlink.linkage.scoring.floor_score`) with the schema's evidence. True when
    nothing is set aside. The caller exempts a pair at the schema's ``certain_threshold`` (a
    person recorded twice)."""
    stale = claims.stale(record_id, [token for _, token in claimed])
    if not stale:
        return True
    fresh = frozenset(key for key, token in claimed if token not in stale)
    agreement, disagreement = weights
    # as the floor is checked: a disagreement (the partner's key presence) only lowers
    score = floor_score(fresh, agreement, disagreeing, disagreement)
    return score >= threshold and schema.has_evidence(fresh)


class Claims:
    """Which of our records each claimed token decided today, for one partner: a file in
    ``folder`` shared by every query service of the agency (the hub makes one per session, a
    restarted ``xlink query serve`` another) and its batch exchanges. Raises
    :class:`~xlink.errors.InputError` when the file cannot be opened as a claims store."""

    def __init__(self, folder: Path, peer: str, key: bytes) -> None:
        self._path = folder / CLAIMS_FILE
        self._peer = peer
        self._key = key
        try:
            folder.mkdir(parents=True, exist_ok=True)
            conn = connect(self._path)
            try:
                conn.execute(_SCHEMA)
            finally:
                conn.close()
        except (sqlite3.Error, OSError) as exc:
            raise InputError(
                f"the query claims store {self._path} cannot be used ({type(exc).__name__}); "
                "move it aside: the day's claims start again"
            ) from None

    @contextmanager
    def request(self, day: date) -> Iterator[ClaimsRequest]:
        """The claims of ``day`` for one release request: its look-ups and writes in one
        transaction, committed (durably) when the block ends, with the days before deleted.
        A store that fails raises :class:`~xlink.errors.InternalProtocolError`."""
        try:
            conn = connect(self._path)
        except (sqlite3.Error, OSError) as exc:
            raise InternalProtocolError(f"the claims store failed: {type(exc).__name__}") from None
        try:
            with transaction(conn):
                conn.execute("DELETE FROM claims WHERE day < ?", (day.isoformat(),))

                def fetch(claims: Sequence[bytes]) -> dict[bytes, str]:
                    found: dict[bytes, str] = {}
                    for claim in claims:
                        for (record_id,) in conn.execute(
                            "SELECT record_id FROM claims WHERE day = ? AND peer = ? AND claim = ?",
                            (day.isoformat(), self._peer, claim),
                        ):
                            _one_or_several(found, claim, record_id)
                    return found

                request = ClaimsRequest(self._key, day, self._peer, fetch=fetch)
                yield request
                _write(conn, request)
        except (sqlite3.Error, OSError) as exc:
            raise InternalProtocolError(f"the claims store failed: {type(exc).__name__}") from None
        finally:
            conn.close()

    def snapshot(self, day: date) -> ClaimsRequest:
        """The claims of ``day``, read at once, for an exchange's releases: looked up and added
        to in memory while its releases are built, with no lock held on the store (a query
        service of the same agency goes on meanwhile), and written by :meth:`keep`. Raises
        :class:`~xlink.errors.InternalProtocolError` when the store fails."""
        try:
            conn = connect(self._path)
            try:
                return self._read(conn, day)
            finally:
                conn.close()
        except (sqlite3.Error, OSError) as exc:
            raise InternalProtocolError(f"the claims store failed: {type(exc).__name__}") from None

    def keep(
        self, view: ClaimsRequest, replay: Callable[[ClaimsRequest], None] | None = None
    ) -> None:
        """Write what ``view`` (:meth:`snapshot`) added, in one short transaction (the days
        before its day deleted). With ``replay``, the day is written only as the store holds
        it at that moment: if its rows changed since ``view`` was read (a query session wrote
        in between), ``replay`` is given the day read again and adds to it what is still
        claimed, and that is written instead. It is first called outside the write lock (a
        query service is not kept waiting) and, if the day changed once more before the
        write, inside it, with nothing written in between. Raises
        :class:`~xlink.errors.InternalProtocolError`."""
        day = date.fromisoformat(view.day)
        try:
            conn = connect(self._path)
            try:
                if replay is not None and self._count(conn, day) != view.rows_read:
                    view = self._read(conn, day)
                    replay(view)
                with transaction(conn):
                    conn.execute("DELETE FROM claims WHERE day < ?", (view.day,))
                    if replay is not None and self._count(conn, day) != view.rows_read:
                        view = self._read(conn, day)
                        replay(view)
                    _write(conn, view)
            finally:
                conn.close()
        except (sqlite3.Error, OSError) as exc:
            raise InternalProtocolError(f"the claims store failed: {type(exc).__name__}") from None

    def _count(self, conn: sqlite3.Connection, day: date) -> int:
        """The store's rows of ``day`` with this partner (added to during the day, never
        removed from it)."""
        (rows,) = conn.execute(
            "SELECT count(*) FROM claims WHERE day = ? AND peer = ?", (day.isoformat(), self._peer)
        ).fetchone()
        return int(rows)

    def _read(self, conn: sqlite3.Connection, day: date) -> ClaimsRequest:
        """A view of the whole of ``day`` as the store holds it on ``conn``."""
        decided: dict[bytes, str] = {}
        rows = 0
        for claim, record_id in conn.execute(
            "SELECT claim, record_id FROM claims WHERE day = ? AND peer = ?",
            (day.isoformat(), self._peer),
        ):
            _one_or_several(decided, bytes(claim), record_id)
            rows += 1
        view = ClaimsRequest(self._key, day, self._peer, decided=decided)
        view.rows_read = rows
        return view


def _one_or_several(seen: dict[bytes, str], key: bytes, record_id: str) -> None:
    """Note that ``key`` decided ``record_id``: the record, or "" once it decided several (a
    record id is never empty), which is all :meth:`ClaimsRequest.stale` asks of it."""
    if seen.setdefault(key, record_id) != record_id:
        seen[key] = ""


def spent_tokens(
    record: PersonRecord,
    held: Sequence[bytes],
    schema: LinkageSchema,
    deriver: TokenDeriver | None = None,
) -> list[bytes]:
    """What ``record`` spends of the day when it is won: every token it holds (``held``), and
    the tokens of its household, those a partner derives from one of its family names and one
    of its addresses alone (the family name with the postcode, the street, a MinHash band of
    the family name with the postcode, ...). A member does not hold every band of the family
    name alone (a band depends on the given name too), so a partner that knows the household
    would win a member with a band another member won today does not hold; a band of the
    household is spent by whichever member is won. Its family names are those key derivation
    reads (:func:`household_names`), each address on its own (a key keeps a bounded number of
    tokens per record). The household's tokens are derived as a prepared side's are
    (``deriver``: a :class:`~xlink.linkage._derive.TokenDeriver` of ``schema``, which a
    caller spending many records makes once; a new one without)."""
    derive = (deriver or TokenDeriver(schema)).derive
    spent = dict.fromkeys(held)
    for family in household_names(record):
        for address in record.addresses:
            household = PersonRecord(
                record_id=record.record_id,
                category=record.category,
                name=PersonName(family=family),
                addresses=(address,),
            )
            _, values = derive(household)
            spent.update(
                dict.fromkeys(values[i : i + TOKEN_SIZE] for i in range(0, len(values), TOKEN_SIZE))
            )
    return list(spent)


def household_names(record: PersonRecord) -> tuple[str, ...]:
    """The family names a household of ``record`` may share, as key derivation reads its
    names and aliases (:func:`~xlink.records.names.name_readings`: a name written whole
    gives its last word, or what comes before a comma, the words in capitals when its
    family name alone is so written, and its last word with the particles before it):
    each family name, each part of a compound
    or particled one (``Garcia Lopez``: ``GARCIA``, ``LOPEZ``; a key may hold the one a
    partner names), and the given name of a name with both (a name entered the other way
    round is read the other way round too)."""
    names: dict[str, None] = {}
    for name in (record.name, *record.aliases):
        for given, family in name_readings(name)[0]:
            if not family.strip():
                continue
            names[family] = None
            names.update(dict.fromkeys(_components(family)))
            if given.strip():
                names[given] = None
    return tuple(names)


def _components(family: str) -> tuple[str, ...]:
    try:
        return name_part_components(family)
    except UntransliterableError:
        return ()


def _write(conn: sqlite3.Connection, view: ClaimsRequest) -> None:
    conn.executemany("INSERT OR IGNORE INTO claims VALUES (?, ?, ?, ?)", view.take_rows())
