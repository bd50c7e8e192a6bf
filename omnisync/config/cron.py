"""Crontab expressions, read the way crontab reads them, and time zones.

APScheduler 3 numbers weekdays from Monday (crontab's ``0`` is Sunday), so
:func:`crontab_trigger_fields` rewrites the day-of-week field into weekday
names, which both agree on; the scheduler, the review and validation build the
same trigger (:func:`crontab_trigger`), so what validates is what runs.

Crontab runs a job when *either* a restricted day of month *or* a restricted
day of week matches; APScheduler requires both. Rather than run on other days
than the author meant, an expression restricting both is refused.

Like crontab, a job at set times (no wildcard minute or hour) follows the zone's wall clock
(:class:`~omnisync.config.crontriggers.WallClockTrigger`): APScheduler 3 steps across a
daylight-saving change by fixed lengths of time and can miss a run (``@monthly`` in
Europe/Berlin went from March 1 to May 1).
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from omnisync.config.diagnostics import did_you_mean

# APScheduler (about 40 ms of imports) is imported by the functions that build a trigger:
# every command loads a config, and one without a cron schedule needs none of it.
if TYPE_CHECKING:
    from apscheduler.triggers.cron import CronTrigger

_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_SHORTHANDS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def crontab_trigger_fields(expression: str) -> dict[str, str]:
    """Keyword arguments for APScheduler's ``CronTrigger`` meaning what crontab means.

    Accepts five fields (minute, hour, day of month, month, day of week) or a shorthand
    such as ``@daily``. Raises ``ValueError`` saying why for an expression crontab would
    not accept or that APScheduler would read differently.
    """
    text = expression.strip()
    text = _SHORTHANDS.get(text.lower(), text)
    if text.startswith("@"):
        raise ValueError(f"unknown shorthand {text.split()[0]!r}; use five fields instead")
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(
            f"a cron expression has five fields (minute hour day month weekday), not {len(fields)}"
        )
    named = dict(zip(("minute", "hour", "day", "month", "day_of_week"), fields, strict=True))
    if named["day"] != "*" and named["day_of_week"] != "*":
        raise ValueError(
            "restrict either the day of month or the day of week, not both"
            " (crontab runs when either matches, which omnisync does not reproduce)"
        )
    named["day_of_week"] = _weekday_names(named["day_of_week"])
    return named


def crontab_trigger(expression: str, timezone: str = "UTC") -> CronTrigger:
    """APScheduler's trigger for ``expression`` in ``timezone`` (an IANA name), meaning what
    crontab means. Raises ``ValueError`` saying why, as :func:`crontab_trigger_fields` does."""
    from apscheduler.triggers.cron import CronTrigger

    from omnisync.config.crontriggers import InstantTrigger, WallClockTrigger

    # Not CronTrigger.from_crontab: APScheduler 3 counts weekdays from Monday=0, so "1"
    # would mean Tuesday.
    fields = crontab_trigger_fields(expression)
    zone = ZoneInfo(timezone)
    # Like cron(8): a job with a wildcard minute or hour runs by the clock as it goes,
    # a repeated hour included; only jobs at set times follow the wall clock.
    if timezone == "UTC":
        return CronTrigger(**fields, timezone=zone)
    if fields["minute"].startswith("*") or fields["hour"].startswith("*"):
        return InstantTrigger(**fields, timezone=zone)
    return WallClockTrigger(fields, zone=zone)


#: An expression that fires at all fires between these two instants: the dates it matches
#: in a year depend only on the year's length and the weekday it starts on, and the 28
#: years from 2000 (a leap year, as every fourth one until 2100) hold all 14 kinds of year.
#: Fixed, not now: whether an expression is valid must not depend on when it is read.
_SEARCH_FROM = datetime(2000, 1, 1, tzinfo=UTC)
_SEARCH_UNTIL = datetime(2028, 1, 1, tzinfo=UTC)


def cron_problem(expression: str) -> str | None:
    """Why ``expression`` is not a valid schedule, or ``None`` when it is. An expression
    that matches no date (``0 0 30 2 *``) is not: its next run would be "never"."""
    # In UTC: a zone's clock changes move a run, never remove a date's. Ending the search
    # keeps APScheduler from looking through every year to 9999.
    from apscheduler.triggers.cron import CronTrigger

    try:
        probe = CronTrigger(
            **crontab_trigger_fields(expression), timezone=UTC, end_date=_SEARCH_UNTIL
        )
    except ValueError as error:
        return str(error)
    if probe.get_next_fire_time(None, _SEARCH_FROM) is None:
        # Both days restricted is refused above, so only the day of month can miss.
        return "it never fires (none of its days of the month occurs in any of its months)"
    return None


def _weekday_names(field: str) -> str:
    if field == "*":
        return field
    days: set[int] = set()
    for item in field.split(","):
        body, slash, step = item.partition("/")
        if slash and (not step.isdigit() or int(step) == 0):
            raise ValueError(f"invalid step in day of week {item!r}")
        if body == "*":
            first, last = 0, 6
        else:
            start, dash, end = body.partition("-")
            # The range is built on 0-7 and each day taken modulo 7 only then, so 7 is
            # Sunday wherever it stands: "5-7" is Friday to Sunday, "7-7" Sunday alone,
            # "7/2" Sunday alone and "7-1" runs backwards.
            first = _weekday(start)
            last = _weekday(end) if dash else (max(first, 6) if slash else first)
            if first > last:
                raise ValueError(f"day-of-week range {body!r} runs backwards")
        days.update(day % 7 for day in range(first, last + 1, int(step) if slash else 1))
    return ",".join(_DAY_NAMES[day] for day in sorted(days))


def _weekday(text: str) -> int:
    name = text.strip().lower()
    if name in _DAY_NAMES:
        return _DAY_NAMES.index(name)
    if name.isdigit() and 0 <= int(name) <= 7:
        return int(name)
    raise ValueError(f"invalid day of week {text!r}: use 0-7 (0 and 7 are Sunday) or sun-sat")


def timezone_problem(name: str) -> str | None:
    """Why ``name`` is not an IANA time zone, or ``None`` when it is one."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone '{name}'{did_you_mean(name, _timezone_names())}"
    return None


@functools.cache
def _timezone_names() -> frozenset[str]:
    return frozenset(available_timezones())
