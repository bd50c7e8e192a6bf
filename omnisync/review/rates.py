"""How often a schedule runs, as ``omnisync diff`` says it (``24/day``, ``~1/month``). Pure."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from functools import lru_cache

from omnisync.config.cron import crontab_trigger
from omnisync.config.model import Schedule

#: Cron runs are counted from a Monday over whole weeks (weekdays count exactly) for four
#: years, a leap day included (days of the month and months count too).
_SPAN_START = datetime(2024, 1, 1)
_SPAN_DAYS = 208 * 7
_DAYS_A_MONTH = 365.25 / 12


def runs_per_day(schedule: Schedule | None) -> float | None:
    """Scheduled runs a day on average; ``None`` without a schedule (on demand only). A cron
    is counted over :data:`_SPAN_DAYS` days (``0 9 * * 1-5``: 5/7; ``@monthly``: 12/365.25):
    one look-up per day it runs, its first day's runs counted (hours and minutes do not
    depend on the day). In UTC: a time zone moves runs, not their number, and APScheduler 3
    misses a monthly run across a change to summer time."""
    if schedule is None:
        return None
    if schedule.every_seconds is not None:
        return 86400 / schedule.every_seconds
    assert schedule.cron is not None  # a schedule is a cron or an interval
    return _cron_runs_per_day(schedule.cron)


@lru_cache(maxsize=1024)
def _cron_runs_per_day(cron: str) -> float:
    """Counting takes tens of milliseconds and a large config writes few distinct crons for
    thousands of exports, each rated on both sides: once per cron (the time zone aside)."""
    trigger = crontab_trigger(cron)
    start = _SPAN_START.replace(tzinfo=UTC)
    end = start + timedelta(days=_SPAN_DAYS)
    days = runs_a_day = 0
    fire = trigger.get_next_fire_time(None, start)
    while fire is not None and fire < end:
        days += 1
        next_day = datetime.combine(fire.date() + timedelta(days=1), time(), start.tzinfo)
        while days == 1 and fire is not None and fire < next_day:
            runs_a_day += 1
            fire = trigger.get_next_fire_time(fire, fire)  # the first tick after this one
        fire = trigger.get_next_fire_time(None, next_day)
    return days * runs_a_day / _SPAN_DAYS


def describe_runs(per_day: float | None) -> str:
    """``24/day``, ``0.71/day``; below 0.1 a day ``~1/month`` or ``~1/year``; ``never`` for a
    cron no date matches; ``on demand`` without a schedule."""
    if per_day is None:
        return "on demand"
    if per_day == 0:
        return "never"
    if per_day >= 0.1:
        return f"{per_day:.2f}".rstrip("0").rstrip(".") + "/day"
    # An average over years: two figures are all it means.
    if per_day * _DAYS_A_MONTH >= 1:
        return f"~{per_day * _DAYS_A_MONTH:.2g}/month"
    return f"~{per_day * _DAYS_A_MONTH * 12:.2g}/year"
