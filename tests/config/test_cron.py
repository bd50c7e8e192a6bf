"""Crontab semantics on top of APScheduler 3, and time zones."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger

from omnisync.config.cron import (
    cron_problem,
    crontab_trigger,
    crontab_trigger_fields,
    timezone_problem,
)


@pytest.mark.parametrize(
    ("day_of_week", "names"),
    [
        ("*", "*"),
        ("0", "sun"),
        ("7", "sun"),
        ("1", "mon"),
        ("1-5", "mon,tue,wed,thu,fri"),
        ("5-7", "sun,fri,sat"),
        ("7-7", "sun"),
        ("6-7", "sun,sat"),
        ("0-7", "sun,mon,tue,wed,thu,fri,sat"),
        ("7/2", "sun"),
        ("*/2", "sun,tue,thu,sat"),
        ("1-5/2", "mon,wed,fri"),
        ("mon-fri", "mon,tue,wed,thu,fri"),
        ("SAT,sun", "sun,sat"),
        ("0,3", "sun,wed"),
        ("2/3", "tue,fri"),
    ],
)
def test_weekday_numbers_mean_what_crontab_means(day_of_week: str, names: str) -> None:
    assert crontab_trigger_fields(f"0 9 * * {day_of_week}")["day_of_week"] == names


def test_the_fields_make_apscheduler_fire_on_the_crontab_day() -> None:
    thursday = datetime(2026, 1, 1, tzinfo=UTC)
    fields = crontab_trigger_fields("0 9 * * 1")

    fire = CronTrigger(**fields, timezone=UTC).get_next_fire_time(None, thursday)

    assert fire == datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    assert fire.strftime("%A") == "Monday"
    # What from_crontab would have done: Tuesday.
    naive = CronTrigger.from_crontab("0 9 * * 1", timezone=UTC).get_next_fire_time(None, thursday)
    assert naive.strftime("%A") == "Tuesday"


def test_shorthands() -> None:
    assert crontab_trigger_fields("@daily") == crontab_trigger_fields("0 0 * * *")
    assert crontab_trigger_fields("@hourly")["minute"] == "0"
    assert crontab_trigger_fields("@weekly")["day_of_week"] == "sun"
    assert cron_problem("@reboot") == "unknown shorthand '@reboot'; use five fields instead"


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("*/15 * * * *", None),
        ("0 0 1 jan *", None),
        ("0 9 * * 8", "invalid day of week '8': use 0-7 (0 and 7 are Sunday) or sun-sat"),
        ("0 9 * * 5-1", "day-of-week range '5-1' runs backwards"),
        ("0 9 * * 7-1", "day-of-week range '7-1' runs backwards"),
        ("0 9 * * 7-sat", "day-of-week range '7-sat' runs backwards"),
        ("0 9 * * */0", "invalid step in day of week '*/0'"),
        ("0 9 * * 1#2", "invalid day of week '1#2': use 0-7 (0 and 7 are Sunday) or sun-sat"),
        ("0 9 * *", "a cron expression has five fields (minute hour day month weekday), not 4"),
        (
            "60 * * * *",
            "Error validating expression '60':"
            " the last value (60) is higher than the maximum value (59)",
        ),
        (
            "0 0 15 * fri",
            "restrict either the day of month or the day of week, not both"
            " (crontab runs when either matches, which omnisync does not reproduce)",
        ),
    ],
)
def test_cron_problems(expression: str, problem: str | None) -> None:
    assert cron_problem(expression) == problem


def test_timezones() -> None:
    assert timezone_problem("Europe/Kyiv") is None
    assert timezone_problem("UTC") is None
    assert timezone_problem("Europe/Kiev") is None  # the old name is still an alias
    assert (
        timezone_problem("europe/kyiv")
        == "unknown time zone 'europe/kyiv' (did you mean 'Europe/Kyiv'?)"
    )
    assert timezone_problem("../../etc/passwd") == "unknown time zone '../../etc/passwd'"


def _fire_times(expression: str, zone: str, start: datetime, count: int) -> list[str]:
    trigger = crontab_trigger(expression, zone)
    previous, now, times = None, start, []
    for _ in range(count):
        previous = now = trigger.get_next_fire_time(previous, now)
        times.append(now.isoformat())
    return times


@pytest.mark.parametrize(
    ("expression", "start", "expected"),
    [
        # APScheduler 3's own trigger went from March 1 to May 1.
        (
            "@monthly",
            datetime(2026, 2, 15),
            ["2026-03-01T00:00:00+01:00", "2026-04-01T00:00:00+02:00", "2026-05-01T00:00:00+02:00"],
        ),
        # 02:30 does not exist on March 29: it runs just after the change, once.
        (
            "30 2 * * *",
            datetime(2026, 3, 28),
            ["2026-03-28T02:30:00+01:00", "2026-03-29T03:30:00+02:00", "2026-03-30T02:30:00+02:00"],
        ),
        (
            "0 * * * *",
            datetime(2026, 3, 29, 0, 30),
            ["2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T04:00:00+02:00"],
        ),
        # A wildcard minute or hour runs by the clock as it goes, as cron(8) runs it: the
        # repeated hour too.
        (
            "0 * * * *",
            datetime(2026, 10, 25, 1, 30),
            ["2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00"],
        ),
        # 02:30 happens twice on October 25: it runs once.
        (
            "30 2 * * *",
            datetime(2026, 10, 24),
            ["2026-10-24T02:30:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"],
        ),
    ],
)
def test_fields_match_the_wall_clock_across_daylight_saving_changes(
    expression: str, start: datetime, expected: list[str]
) -> None:
    zone = "Europe/Berlin"
    assert _fire_times(expression, zone, start.replace(tzinfo=ZoneInfo(zone)), 3) == expected


def test_a_job_added_after_a_change_fires_as_if_it_had_been_there() -> None:
    """APScheduler asks for the first fire time, without a previous one, whenever a job is
    added (a start, a reload): in the repeated hour a time already passed once is not
    run again; just after the spring change, a skipped time still runs today."""
    zone = ZoneInfo("America/New_York")
    in_repeated_hour = datetime(2024, 11, 3, 6, 10, tzinfo=UTC)  # 01:10 the second time
    assert crontab_trigger("30 1 * * *", "America/New_York").get_next_fire_time(
        None, in_repeated_hour
    ) == datetime(2024, 11, 4, 1, 30, tzinfo=zone)
    after_spring_change = datetime(2024, 3, 10, 3, 10, tzinfo=zone)  # 02:30 did not exist
    assert crontab_trigger("30 2 * * *", "America/New_York").get_next_fire_time(
        None, after_spring_change
    ) == datetime(2024, 3, 10, 3, 30, tzinfo=zone)


def test_a_wildcard_schedule_in_a_skipped_hour_is_told_as_the_clocks_show_it() -> None:
    """APScheduler 3 gave 02:00-05:00, a time New York never shows (the same instant as
    03:00-04:00): /status and the logs would have shown it."""
    start = datetime(2026, 3, 8, 1, 59, tzinfo=ZoneInfo("America/New_York"))
    assert _fire_times("*/15 2 * * *", "America/New_York", start, 2) == [
        "2026-03-08T03:00:00-04:00",
        "2026-03-09T02:00:00-04:00",
    ]
