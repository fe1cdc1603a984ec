"""What the store keeps and says about a release without opening it, and the time rules it
reads them with (docs/store.md): the metadata of a stored release, what ``accept`` returns,
the decided matches a transfer may deliver, and expiry from the signed record."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from xlink.officers import CLOCK_TOLERANCE as OFFICERS_CLOCK_TOLERANCE
from xlink.records.model import Category
from xlink.release import ReleaseRecord
from xlink.release.record import MAX_AHEAD
from xlink.store.reasons import DENY_MATCH_ALREADY_RECEIVED, DENY_NOT_DECIDED

__all__ = [
    "CLOCK_TOLERANCE",
    "MAX_CREATED_AHEAD",
    "Accepted",
    "DecidedMatches",
    "ReceivedRelease",
    "StoredRelease",
    "expires_at",
]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_US_PER_DAY: Final = 86_400_000_000
#: A release dated more than this after it arrives is refused (``created-in-future``): its
#: signed ``created_at`` is what its retention runs from.
MAX_CREATED_AHEAD: Final = MAX_AHEAD
_CREATED_AHEAD_US: Final = MAX_CREATED_AHEAD // timedelta(microseconds=1)
CLOCK_TOLERANCE: Final = OFFICERS_CLOCK_TOLERANCE  # the officers' gate, xlink.officers


def _micros(when: datetime) -> int:
    if not isinstance(when, datetime) or when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
    return (when - _EPOCH) // timedelta(microseconds=1)


def _time(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _expires_us(record: ReleaseRecord) -> int:
    """When ``record`` may no longer be used, from what its originator signed: its
    ``created_at`` plus its caveats' ``retention_days`` (never from a column of the file)."""
    return _micros(record.created_at) + record.caveats.retention_days * _US_PER_DAY


def expires_at(record: ReleaseRecord) -> datetime:
    """When ``record`` may no longer be used: its signed ``created_at`` plus its caveats'
    ``retention_days`` (what reads, exports and purges go by)."""
    return _time(_expires_us(record))


def _release_id(value: object) -> bytes:
    if not isinstance(value, bytes) or len(value) != 16:
        raise ValueError("a release id is 16 bytes")
    return value


@dataclass(frozen=True, slots=True)
class StoredRelease:
    """What the store says about a release without opening it: metadata only, no field value.
    ``expires_at`` is the release's signed ``created_at`` plus the caveats'
    ``retention_days``, as indexed when it was stored (a listing opens nothing: reads, exports
    and purges decide from the opened record); ``expired`` is as of the ``now`` the listing
    was made for."""

    release_id: bytes
    session_id: bytes
    category: Category
    originator: str
    received_at: datetime
    expires_at: datetime
    expired: bool
    own_record_id: str | None = None


@dataclass(frozen=True, slots=True)
class Accepted:
    """A release :meth:`ReleaseStore.accept` took: the receipt to return, the release's id and
    category, whether it was stored (False: a re-run's copy of content already held), and
    whether it credited the originator under a reciprocal MOU (xlink-release-v1 §10.5): each
    stored release credits it once, ever, when it or a copy of it first comes in a reciprocal
    transfer (False outside one, and for a copy of a release that credited it before).
    ``held_id`` is the stored release's id: the release's own, or for a copy the one it copies
    (what ``store read`` takes)."""

    receipt: bytes
    release_id: bytes
    category: Category
    stored: bool
    credited: bool = False
    held_id: bytes = b""

    def __post_init__(self) -> None:
        if not self.held_id:
            object.__setattr__(self, "held_id", self.release_id)


@dataclass(frozen=True, slots=True)
class ReceivedRelease:
    """What the store keeps of every release it received and receipted, copies included, and
    keeps after a purge (:meth:`ReleaseStore.received`): who sent it, the stored release it is
    or copies (``held``, its metadata; None once purged) and our record it was filed for."""

    release_id: bytes
    originator: str
    held_id: bytes
    own_record_id: str | None
    held: StoredRelease | None


class DecidedMatches:
    """What one release transfer may deliver (xlink-release-v1 §7 step 11): our own decided
    matches of the session, each named by the set of its shared PSI handles
    (:attr:`xlink.decide.DecidedMatch.handles`, which both parties hold), each taking one
    release. Give it to :meth:`ReleaseStore.receive` as ``expected_matches``: a release is
    stored only for a decided match that has none yet, and counted against it.

    ``len()`` is the number of decided matches, received or not.
    """

    __slots__ = ("_left", "_total")

    def __init__(self, matches: Iterable[Iterable[bytes]]) -> None:
        self._left: Counter[frozenset[bytes]] = Counter(frozenset(m) for m in matches)
        self._total = self._left.total()

    def __len__(self) -> int:
        return self._total

    def __repr__(self) -> str:  # the handles are opaque but need not reach logs
        return f"DecidedMatches({self._total} decided, {self._left.total()} not yet received)"

    def refusal(self, match_handles: Iterable[bytes]) -> str | None:
        """None if a release for ``match_handles`` may be stored now; otherwise the reason:
        ``not-decided`` (not exactly, as a set, the handles of one of our decided matches) or
        ``match-already-received`` (each decided match with these handles has its release)."""
        key = frozenset(match_handles)
        if key not in self._left:
            return DENY_NOT_DECIDED
        return None if self._left[key] > 0 else DENY_MATCH_ALREADY_RECEIVED

    def _received(self, match_handles: Iterable[bytes]) -> None:
        self._left[frozenset(match_handles)] -= 1


@dataclass(frozen=True, slots=True)
class _Row:
    release_id: bytes
    session_id: bytes
    category: str
    originator: str
    received_us: int
    expires_us: int
    sealed: bytes
    own_record_id: str | None = None


_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS releases (
    release_id BLOB PRIMARY KEY,
    session_id BLOB NOT NULL,
    category TEXT NOT NULL,
    originator TEXT NOT NULL,
    received_us INTEGER NOT NULL,
    expires_us INTEGER NOT NULL,
    sealed BLOB NOT NULL,
    receipt BLOB NOT NULL,
    own_record_id TEXT,
    content BLOB
) STRICT;
CREATE INDEX IF NOT EXISTS releases_expiry ON releases (expires_us);
CREATE INDEX IF NOT EXISTS releases_content ON releases (originator, content);
CREATE TABLE IF NOT EXISTS credits (
    held_id BLOB PRIMARY KEY,
    originator TEXT NOT NULL,
    mou_id TEXT NOT NULL,
    credited_us INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS credits_originator ON credits (originator, mou_id);
"""
# ``credits``: each stored release that credited its originator under a reciprocal MOU
# (xlink-release-v1 §10.5), once, kept after a purge: the count the reciprocal window carries
# from exchange to exchange. A store written before it starts with none (its releases credit
# once, when a copy of one comes). An older store's ``copy_credited`` column is no longer read.
# Every release id received and receipted, copies included, kept after a purge (our record id
# is cleared then, with the record): what a query holder's "delivered before" is checked
# against (xlink-query-v1 §7.4). A store written before it gains it, in one transaction, with
# the releases it holds and those its audit log says it received.
_RECEIVED_TABLE: Final = """
CREATE TABLE IF NOT EXISTS received (
    release_id BLOB PRIMARY KEY,
    originator TEXT NOT NULL,
    held_id BLOB NOT NULL,
    own_record_id TEXT
) STRICT
"""
_RECEIVED_FROM_RELEASES: Final = (
    "INSERT OR IGNORE INTO received (release_id, originator, held_id, own_record_id)"
    " SELECT release_id, originator, release_id, own_record_id FROM releases"
)
_INSERT_RECEIVED: Final = (
    "INSERT OR IGNORE INTO received (release_id, originator, held_id, own_record_id)"
    " VALUES (?, ?, ?, ?)"
)
# Columns added after the first stores were written: added in place to an older store.
_ADDED_COLUMNS: Final = (
    ("own_record_id", "TEXT"),
    ("content", "BLOB"),
)
_SELECT: Final = (
    "SELECT release_id, session_id, category, originator, received_us, expires_us, sealed,"
    " own_record_id FROM releases"
)
_INSERT: Final = (
    "INSERT INTO releases (release_id, session_id, category, originator, received_us,"
    " expires_us, sealed, receipt, own_record_id, content) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
