"""How often a schedule runs, in runs per day. Pure (time zones are static data).

A cron schedule is counted over a whole week from a fixed Monday in its time
zone, divided by seven, so ``0 9 * * 1-5`` runs 5/7 a day; an interval runs
``86400 / every`` times a day. The cron fields are crontab's, read the way the
scheduler reads them (:func:`omnisync.config.cron.crontab_trigger_fields`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from omnisync.config.cron import crontab_trigger_fields
from omnisync.config.model import Schedule

#: A Monday far from any daylight-saving change in either hemisphere.
_WEEK_START = datetime(2024, 1, 8)
_WEEK = timedelta(days=7)


def runs_per_day(schedule: Schedule | None) -> float:
    """Scheduled runs a day; ``0`` for an export without a schedule (on demand only)."""
    if schedule is None:
        return 0.0
    if schedule.every_seconds is not None:
        return 86400 / schedule.every_seconds
    if schedule.cron is None:
        return 0.0
    zone = ZoneInfo(schedule.timezone)
    trigger = CronTrigger(**crontab_trigger_fields(schedule.cron), timezone=zone)
    start = _WEEK_START.replace(tzinfo=zone)
    end = start + _WEEK
    count = 0
    previous: datetime | None = None
    moment = start - timedelta(microseconds=1)
    while True:
        fire = trigger.get_next_fire_time(previous, moment)
        if fire is None or fire >= end:
            break
        count += 1
        previous = fire
        moment = fire + timedelta(microseconds=1)
    return count / 7


def describe_runs(per_day: float) -> str:
    """``24/day``, ``0.71/day``, or ``on demand``."""
    if per_day == 0:
        return "on demand"
    text = f"{per_day:.2f}".rstrip("0").rstrip(".")
    return f"{text}/day"
