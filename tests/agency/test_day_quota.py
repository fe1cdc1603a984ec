"""The query holder's daily quota store (:class:`xlink.agency._quota.DayQuota`): one count for
every query service on a workdir, never below what the audit log holds for the day."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from xlink.agency._quota import QUOTA_FILE, DayQuota
from xlink.errors import InputError

DAY, NEXT = date(2026, 12, 6), date(2026, 12, 7)


class Log:
    """What an audit log holds, per day: the floor of the count."""

    def __init__(self) -> None:
        self.days: dict[date, int] = {}

    def __call__(self, day: date) -> int:
        return self.days.get(day, 0)


def _quota(folder: Path, log: Log, quota: int = 100, peer: str = "US-CBP") -> DayQuota:
    return DayQuota(folder, peer, quota, log, today=DAY)


def test_two_services_take_from_one_count(tmp_path: Path) -> None:
    log = Log()
    one, two = _quota(tmp_path, log), _quota(tmp_path, log)
    assert one.take(DAY, 60)
    assert not two.take(DAY, 41)  # refused whole: nothing taken
    assert two.take(DAY, 40)
    assert one.left(DAY) == two.left(DAY) == 0
    assert not one.take(DAY, 1)


def test_a_store_lost_while_services_run_starts_again_from_the_audit_log(tmp_path: Path) -> None:
    """The store moved aside (what its error message says to do) or removed while a service
    keeps running: the day's count comes back from the log, for that service as for a new one."""
    log = Log()
    running = _quota(tmp_path, log)
    assert running.take(DAY, 75)
    log.days[DAY] = 75  # each evaluation answered is audited
    (tmp_path / QUOTA_FILE).unlink()
    assert running.left(DAY) == 25
    started = _quota(tmp_path, log)
    assert started.left(DAY) == running.left(DAY) == 25
    assert running.take(DAY, 25) and not started.take(DAY, 1)


def test_the_audit_log_is_the_floor_after_a_crash(tmp_path: Path) -> None:
    """The store is written without a sync; the log is: a service starting raises the
    day's count to what the log holds."""
    log = Log()
    _quota(tmp_path, log).take(DAY, 10)
    log.days[DAY] = 70
    restarted = _quota(tmp_path, log)
    assert restarted.left(DAY) == 30
    assert restarted.take(DAY, 30) and not restarted.take(DAY, 1)


def test_a_new_day_starts_from_its_own_log_and_another_partner_apart(tmp_path: Path) -> None:
    log = Log()
    quota = _quota(tmp_path, log)
    assert quota.take(DAY, 90) and quota.left(DAY) == 10
    log.days[NEXT] = 40  # answered on the next day by a service that kept no count here
    assert quota.left(NEXT) == 60
    assert not quota.take(NEXT, 61) and quota.take(NEXT, 60)
    assert _quota(tmp_path, Log(), peer="UK-NCA").left(NEXT) == 100  # its own log: nothing


def test_a_store_that_cannot_be_used_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / QUOTA_FILE).write_bytes(b"not a database, " * 64)
    with pytest.raises(InputError, match="quota store"):
        _quota(tmp_path, Log())
