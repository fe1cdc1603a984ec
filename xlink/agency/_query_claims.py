"""The query holder's record of which of its records each claimed token decided today
(xlink-query-v1 §7.5 item 5), kept in the agency's workdir so that a restart of the service
forgets nothing: one set of tokens wins one record a day, however often the holder restarts.

A token is kept as a claim id, a digest of the holder's OPRF output of it under the period's
key (:data:`DST_CLAIM`): never the token itself, which is an unkeyed digest of an identity and
open to a dictionary attack; the output is keyed, and a day lies within one period. Rows of
earlier days are deleted when a day's first claim is written, so the file holds one day.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import date
from pathlib import Path
from typing import Final

from xlink._sqlite import connect, transaction

__all__ = ["CLAIMS_FILE", "DST_CLAIM", "Claims", "claim_id"]

DST_CLAIM: Final = b"xlink-query-v1/claim"
"""Domain of a claim id: ``SHA-256(lp(DST_CLAIM) || output)[:16]``."""
CLAIMS_FILE: Final = "claims.db"
"""The claims' file, in the workdir's ``query`` folder."""

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS claims ("
    " day TEXT NOT NULL, peer TEXT NOT NULL, claim BLOB NOT NULL, record_id TEXT NOT NULL,"
    " PRIMARY KEY (day, peer, claim, record_id))"
)


def claim_id(output: bytes) -> bytes:
    """The claim id of a token whose OPRF output under the period's key is ``output``."""
    return hashlib.sha256(len(DST_CLAIM).to_bytes(4, "big") + DST_CLAIM + output).digest()[:16]


class Claims:
    """Which holder records each claimed token decided today, for one partner: a file in
    ``folder`` shared by every query service of the agency (the hub makes one per session, a
    restarted ``xlink query serve`` another), opened for each look-up and write (decided
    pairs are few: only matches are asked for)."""

    def __init__(self, folder: Path, peer: str) -> None:
        self._path = folder / CLAIMS_FILE
        self._peer = peer

    def stale(self, day: date, record_id: str, outputs: Sequence[bytes]) -> frozenset[bytes]:
        """The ``outputs`` (OPRF outputs of claimed tokens) that decided another record than
        ``record_id`` on ``day``."""
        ids = {claim_id(y): y for y in outputs}
        if not ids or not self._path.exists():
            return frozenset()
        conn = connect(self._path)
        try:
            conn.execute(_SCHEMA)
            found = [
                y
                for claim, y in ids.items()
                if conn.execute(
                    "SELECT 1 FROM claims WHERE day = ? AND peer = ? AND claim = ?"
                    " AND record_id != ? LIMIT 1",
                    (day.isoformat(), self._peer, claim, record_id),
                ).fetchone()
            ]
        finally:
            conn.close()
        return frozenset(found)

    def add(self, day: date, record_id: str, outputs: Iterable[bytes]) -> None:
        """Keep that the tokens of ``outputs`` decided ``record_id`` on ``day`` (durable before
        it returns), and forget the days before."""
        rows = [(day.isoformat(), self._peer, claim_id(y), record_id) for y in outputs]
        conn = connect(self._path)
        try:
            conn.execute(_SCHEMA)
            with transaction(conn):
                conn.execute("DELETE FROM claims WHERE day < ?", (day.isoformat(),))
                conn.executemany("INSERT OR IGNORE INTO claims VALUES (?, ?, ?, ?)", rows)
        finally:
            conn.close()
