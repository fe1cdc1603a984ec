"""What the audit log says about a partner's past set sizes: the daily set-size budget and the
alarm on an unusually large set (issue 11; docs/mou.md §7).

Every session's ``SIZES`` entry records both padded sizes; ``SESSION_STARTED`` names the peer.
A dishonest partner can spend its MOU bound on guessed tokens in every session; the MOU's
``set_size_budget_per_day`` caps the sum over a UTC day, and a declared size far above the
partner's usual one is an audited alarm, so that a probing partner shows up in the log.
"""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Final

from xlink.audit._log import AuditLog
from xlink.audit._vocab import AuditEvent
from xlink.errors import InputError
from xlink.protocol.abort import AbortCode
from xlink.protocol.config import SessionConfig

__all__ = [
    "ALARM_FACTOR",
    "ALARM_MIN_SESSIONS",
    "SetSizeHistory",
    "apply_daily_budget",
    "query_evaluations_on",
    "set_size_history",
    "unrecorded_runs",
]

ALARM_FACTOR: Final = 4
"""A declared padded size more than this many times the partner's usual one raises the alarm."""
ALARM_MIN_SESSIONS: Final = 3
"""Sessions with the partner needed before its usual size means anything."""
_RECENT: Final = 10


@dataclass(frozen=True, slots=True)
class SetSizeHistory:
    """Per past session with one partner (oldest first): its UTC day, our padded size and the
    partner's; and the confirmation points we answered for it."""

    sessions: tuple[tuple[date, int, int], ...]
    evaluations: tuple[tuple[date, int], ...] = ()
    """Confirmation points we answered for the partner (``ORACLE_QUERY``), by UTC day: each
    is a membership test it could have spent on a guess (xlink-psi-v2 §9, §10)."""

    def used_on(self, day: date) -> tuple[int, int]:
        """What ``day``'s sessions spent (ours, the partner's): padded elements declared, and,
        for the partner, the confirmation points we answered."""
        own = sum(o for d, o, _ in self.sessions if d == day)
        peer = sum(p for d, _, p in self.sessions if d == day)
        peer += sum(n for d, n in self.evaluations if d == day)
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
    probes: list[tuple[date, int]] = []
    for entry in log.entries():
        if entry.kind is AuditEvent.SESSION_STARTED:
            peer_of[entry.fields["session"]] = entry.fields["peer"] == peer
        elif entry.kind is AuditEvent.SIZES and peer_of.get(entry.fields["session"]):
            own, theirs = entry.fields["own_padded"], entry.fields["peer_padded"]
            assert isinstance(own, int) and isinstance(theirs, int)
            sessions.append((entry.time.date(), own, theirs))
        elif entry.kind is AuditEvent.ORACLE_QUERY and peer_of.get(entry.fields["session"]):
            evaluations = entry.fields["evaluations"]
            assert isinstance(evaluations, int)
            probes.append((entry.time.date(), evaluations))
    return SetSizeHistory(tuple(sessions), tuple(probes))


def apply_daily_budget(
    config: SessionConfig,
    budget: int | None,
    history: SetSizeHistory,
    audit: AuditLog,
    now: datetime,
) -> SessionConfig:
    """``config`` with each party's set-size bound lowered to what is left today of the MOU's
    ``set_size_budget_per_day`` ``budget`` (:meth:`SetSizeHistory.daily_caps`); ``config``
    itself when the MOU sets no budget.

    Raises :class:`~xlink.errors.InputError` (after auditing ``SESSION_ABORTED`` with
    ``BAD_SET_SIZE``) when no bucket is left for one party: no session can start today."""
    if budget is None:
        return config
    caps = history.daily_caps(
        budget,
        config.padding_bucket,
        own_max=config.max_own_set_size,
        peer_max=config.max_peer_set_size,
        day=now.astimezone(UTC).date(),
    )
    if caps is None:
        audit.append(
            AuditEvent.SESSION_ABORTED,
            {"code": AbortCode.BAD_SET_SIZE, "side": "LOCAL", "peer": config.peer_id},
            now=now,
        )
        raise InputError(
            f"the MOU's daily set-size budget ({budget} padded elements) is used up today "
            "(UTC): no session can start before tomorrow"
        )
    own_cap, peer_cap = caps
    return dataclasses.replace(config, max_own_set_size=own_cap, max_peer_set_size=peer_cap)


def unrecorded_runs(log: AuditLog, peer: str) -> tuple[bytes, ...]:
    """The sessions with ``peer`` started after the last ``RUN_ENDED`` entry for ``peer``: runs
    that ended without one (a killed process, a power cut). The next run records each as
    ``RUN_ENDED`` with outcome ``unrecorded`` (xlink.agency), so every run has an end."""
    started: list[bytes] = []
    for entry in log.entries():
        if entry.kind is AuditEvent.RUN_ENDED and entry.fields.get("peer") == peer:
            started.clear()
        elif entry.kind is AuditEvent.SESSION_STARTED and entry.fields["peer"] == peer:
            started.append(bytes.fromhex(str(entry.fields["session"])))
    return tuple(started)


def query_evaluations_on(log: AuditLog, peer: str, day: date) -> int:
    """The OPRF evaluations we answered as a query holder for ``peer`` on the UTC ``day``
    (``QUERY_EVALUATED`` entries of our ``RESPONDER`` sessions with it): what the MOU's
    ``query_quota_per_day`` counts (xlink-query-v1 §8)."""
    peer_of: dict[object, bool] = {}
    used = 0
    for entry in log.entries():
        if entry.kind is AuditEvent.QUERY_STARTED:
            peer_of[entry.fields["session"]] = (
                entry.fields["peer"] == peer and entry.fields["role"] == "RESPONDER"
            )
        elif (
            entry.kind is AuditEvent.QUERY_EVALUATED
            and peer_of.get(entry.fields["session"])
            and entry.time.astimezone(UTC).date() == day
        ):
            count = entry.fields["evaluations"]
            assert isinstance(count, int)
            used += count
    return used
