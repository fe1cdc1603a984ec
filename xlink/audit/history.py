"""What the audit log says about a partner's past set sizes: the daily set-size budget and the
alarm on an unusually large set (issue 11; docs/mou.md §7).

Every session's ``SIZES`` entry records both padded sizes; ``SESSION_STARTED`` names the peer.
A dishonest partner can spend its MOU bound on guessed tokens in every session; the MOU's
``set_size_budget_per_day`` caps the sum over a UTC day, and a declared size far above the
partner's usual one is an audited alarm, so that a probing partner shows up in the log.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import date
from typing import Final

from xlink.audit._log import AuditLog
from xlink.audit._vocab import AuditEvent

__all__ = ["ALARM_FACTOR", "ALARM_MIN_SESSIONS", "SetSizeHistory", "set_size_history"]

ALARM_FACTOR: Final = 4
"""A declared padded size more than this many times the partner's usual one raises the alarm."""
ALARM_MIN_SESSIONS: Final = 3
"""Sessions with the partner needed before its usual size means anything."""
_RECENT: Final = 10


@dataclass(frozen=True, slots=True)
class SetSizeHistory:
    """Per past session with one partner (oldest first): its UTC day, our padded size and the
    partner's."""

    sessions: tuple[tuple[date, int, int], ...]

    def used_on(self, day: date) -> tuple[int, int]:
        """Padded elements (ours, the partner's) declared in the sessions of ``day``."""
        own = sum(o for d, o, _ in self.sessions if d == day)
        peer = sum(p for d, _, p in self.sessions if d == day)
        return own, peer

    def daily_caps(
        self, budget: int, bucket: int, *, own_max: int, peer_max: int, day: date
    ) -> tuple[int, int] | None:
        """The padded-size bounds (ours, the partner's) left on ``day`` under a daily
        ``budget``: the MOU bounds, lowered to what the day's earlier sessions left, rounded
        down to the bucket. None when either is below one bucket (no session can start)."""
        own_used, peer_used = self.used_on(day)
        own_left, peer_left = budget - own_used, budget - peer_used
        own_cap = min(own_max, own_left - own_left % bucket)
        peer_cap = min(peer_max, peer_left - peer_left % bucket)
        if own_cap < bucket or peer_cap < bucket:
            return None
        return own_cap, peer_cap

    def usual_peer_size(self) -> int | None:
        """The median of the partner's last ten declared sizes, or None with fewer than
        :data:`ALARM_MIN_SESSIONS` sessions."""
        recent = [p for _, _, p in self.sessions[-_RECENT:]]
        if len(recent) < ALARM_MIN_SESSIONS:
            return None
        return int(statistics.median(recent))

    def is_alarming(self, peer_padded: int) -> bool:
        usual = self.usual_peer_size()
        return usual is not None and peer_padded > ALARM_FACTOR * usual


def set_size_history(log: AuditLog, peer: str) -> SetSizeHistory:
    """The sizes of every session with ``peer`` recorded in ``log`` (one pass over it)."""
    peer_of: dict[object, bool] = {}
    sessions: list[tuple[date, int, int]] = []
    for entry in log.entries():
        if entry.kind is AuditEvent.SESSION_STARTED:
            peer_of[entry.fields["session"]] = entry.fields["peer"] == peer
        elif entry.kind is AuditEvent.SIZES and peer_of.get(entry.fields["session"]):
            own, theirs = entry.fields["own_padded"], entry.fields["peer_padded"]
            assert isinstance(own, int) and isinstance(theirs, int)
            sessions.append((entry.time.date(), own, theirs))
    return SetSizeHistory(tuple(sessions))
