"""Crontab expressions, read the way crontab reads them, and time zones.

Pure (the time zone database is read as static data). APScheduler 3 parses
five-field expressions, but numbers its weekdays from Monday (``0`` is Monday;
crontab's ``0`` is Sunday), so ``0 9 * * 1`` would run on Tuesdays.
:func:`crontab_trigger_fields` rewrites the day-of-week field into weekday
names, which both agree on; the scheduler builds its
``CronTrigger(**fields, timezone=...)`` from it, and validation checks the
same fields, so what validates is what runs.

Crontab runs a job when *either* a restricted day of month *or* a restricted
day of week matches; APScheduler requires both. Rather than run on other days
than the author meant, an expression restricting both is refused.
"""

from __future__ import annotations

import functools
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from apscheduler.triggers.cron import CronTrigger

from omnisync.config.diagnostics import did_you_mean

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

    Accepts five fields (minute, hour, day of month, month, day of week) or
    a shorthand such as ``@daily``. Raises ``ValueError`` with a readable
    message for an expression crontab would not accept or that APScheduler
    would read differently.
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
    minute, hour, day, month, day_of_week = fields
    if day != "*" and day_of_week != "*":
        raise ValueError(
            "restrict either the day of month or the day of week, not both"
            " (crontab runs when either matches, which omnisync does not reproduce)"
        )
    return {
        "minute": minute,
        "hour": hour,
        "day": day,
        "month": month,
        "day_of_week": _weekday_names(day_of_week),
    }


def cron_problem(expression: str) -> str | None:
    """Why ``expression`` is not a valid schedule, or ``None`` when it is."""
    try:
        CronTrigger(**crontab_trigger_fields(expression), timezone="UTC")
    except ValueError as error:
        return str(error)
    return None


def _weekday_names(field: str) -> str:
    if field == "*":
        return field
    days: set[int] = set()
    for item in field.split(","):
        days.update(_weekday_item(item))
    return ",".join(_DAY_NAMES[day] for day in sorted(days))


def _weekday_item(item: str) -> range | list[int]:
    body, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not step_text.isdigit() or int(step_text) == 0:
            raise ValueError(f"invalid step in day of week {item!r}")
        step = int(step_text)
    if body == "*":
        first, last = 0, 6
    elif "-" in body:
        start_text, _, end_text = body.partition("-")
        first, last = _weekday(start_text), _weekday(end_text)
        # 7 closes a range as Sunday: "5-7" is Friday to Sunday.
        if end_text.strip() == "7":
            last = 7
        if first > last:
            raise ValueError(f"day-of-week range {body!r} runs backwards")
    else:
        first = _weekday(body)
        last = 6 if slash else first
    return [day % 7 for day in range(first, last + 1, step)]


def _weekday(text: str) -> int:
    name = text.strip().lower()
    if name in _DAY_NAMES:
        return _DAY_NAMES.index(name)
    if name.isdigit() and 0 <= int(name) <= 7:
        return int(name) % 7
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
