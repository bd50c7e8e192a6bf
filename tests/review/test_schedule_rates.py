"""How often a schedule runs, as `schedule_changed` says it: rare schedules included."""

from __future__ import annotations

import pytest
from apscheduler.triggers.cron import CronTrigger

from omnisync.config.cron import crontab_trigger
from omnisync.config.model import Schedule
from omnisync.review import rates
from omnisync.review.rates import describe_runs, runs_per_day


@pytest.mark.parametrize(
    ("cron", "timezone", "shown"),
    [
        ("0 * * * *", "UTC", "24/day"),
        ("* * * * *", "UTC", "1440/day"),
        ("0 9 * * 1-5", "Europe/Berlin", "0.71/day"),
        ("@weekly", "UTC", "0.14/day"),
        ("*/10 * 1-7 * *", "UTC", "33.23/day"),  # 144 runs on 7 days of each month
        ("@monthly", "Europe/Berlin", "~1/month"),  # April too, across summer time
        ("0 3 20 * *", "America/New_York", "~1/month"),
        ("0 0 1,15 * *", "UTC", "~2/month"),
        ("0 3 * 6 *", "UTC", "~2.5/month"),  # every day of June
        ("0 0 1 */3 *", "UTC", "~4/year"),
        ("@yearly", "Australia/Sydney", "~1/year"),
        ("0 0 29 2 *", "UTC", "~0.25/year"),
        ("0 0 30 2 *", "UTC", "never"),
    ],
)
def test_a_cron_schedule_runs_as_often_as_its_dates_say(cron, timezone, shown):
    assert describe_runs(runs_per_day(Schedule(None, cron=cron, timezone=timezone))) == shown


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(900, "96/day"), (86400 * 7, "0.14/day"), (86400 * 30, "~1/month"), (86400 * 365, "~1/year")],
)
def test_an_interval_runs_as_often_as_it_says(seconds, shown):
    assert describe_runs(runs_per_day(Schedule(None, every_seconds=seconds))) == shown


def test_only_no_schedule_is_on_demand():
    assert describe_runs(runs_per_day(None)) == "on demand"


def test_a_cron_is_counted_once_however_many_schedules_write_it(monkeypatch):
    """Counting a cron's runs takes tens of milliseconds, and `diff` rates both sides of
    every export: 3,000 exports written with one cron must not count it 6,000 times."""
    built: list[str] = []

    def counted(cron: str) -> CronTrigger:
        built.append(cron)
        return crontab_trigger(cron)

    monkeypatch.setattr(rates, "crontab_trigger", counted)
    schedules = [
        Schedule(name, cron="17 4 * * 3", timezone=timezone)
        for name, timezone in ((None, "UTC"), ("weekly", "Europe/Berlin"), (None, "UTC"))
    ]
    assert [describe_runs(runs_per_day(schedule)) for schedule in schedules] == ["0.14/day"] * 3
    assert built == ["17 4 * * 3"]
