"""Cron triggers that follow a zone's clocks (:func:`omnisync.config.cron.crontab_trigger`).

Apart from :mod:`omnisync.config.cron` because they subclass APScheduler's trigger at
import: validating a config imports APScheduler only for a cron schedule it has.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger


class InstantTrigger(CronTrigger):  # type: ignore[misc]  # APScheduler 3 is untyped
    """APScheduler's cron trigger, its fire times told as the zone's clocks show them:
    it can return a wall time a spring change skipped (02:00-05:00 for 03:00-04:00),
    the right instant under a name that /status and the logs would show."""

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        found = super().get_next_fire_time(previous_fire_time, now)
        return None if found is None else found.astimezone(UTC).astimezone(self.timezone)


#: How far back of the earliest moment wall times are looked at: more than any change of
#: offset, so that a time the spring change skips still fires just after it.
_LOOKBACK = timedelta(hours=3)
_TICK = timedelta(microseconds=1)


class WallClockTrigger(CronTrigger):  # type: ignore[misc]  # APScheduler 3 is untyped
    """A cron trigger at set times of the wall clock of ``zone``, as crontab's are.

    The matching runs on wall-clock times written as UTC, where no day is 23 or 25 hours
    long. A wall time the spring change skips fires just after it (02:30 becomes 03:30);
    one the autumn change repeats fires once, at its first occurrence."""

    def __init__(self, fields: dict[str, str], *, zone: ZoneInfo) -> None:
        super().__init__(**fields, timezone=UTC)
        self.zone = zone

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        # APScheduler's contract: the first fire time from just after the previous one
        # (missed ones included), or from now.
        earliest = now
        if previous_fire_time is not None:
            earliest = min(now, previous_fire_time + _TICK)
            if earliest == previous_fire_time:
                earliest += _TICK
        start = (earliest - _LOOKBACK).astimezone(self.zone).replace(tzinfo=UTC, fold=0)
        wall = super().get_next_fire_time(None, start)
        while wall is not None:
            # fold=0, the first of a repeated hour; through UTC, a skipped time comes out
            # just after the change.
            moment = wall.replace(tzinfo=self.zone, fold=0).astimezone(UTC).astimezone(self.zone)
            if moment >= earliest:
                return moment  # type: ignore[no-any-return]
            wall = super().get_next_fire_time(None, wall + timedelta(seconds=1))
        return None
