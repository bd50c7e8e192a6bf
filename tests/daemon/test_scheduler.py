from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from omnisync.clock import SystemClock
from omnisync.daemon.metrics import DaemonMetrics
from omnisync.daemon.scheduler import ExportScheduler, RetryPolicy, build_trigger, missed_since
from omnisync.daemon.supervisor import Supervisor
from tests.daemon.builders import config, cron, every, export
from tests.daemon.runfunctions import GatedRuns, wait_until


def test_interval_job_fires_and_can_be_retimed_and_removed():
    fired: list[tuple[str, str]] = []
    lock = threading.Lock()

    def fire(export, trigger):
        with lock:
            fired.append((export, trigger))

    scheduler = ExportScheduler(fire)
    scheduler.start()
    try:
        scheduler.schedule("a", every(1))
        assert scheduler.scheduled() == {"a": every(1)}
        wait_until(lambda: len(fired) >= 2, message="two ticks")
        assert set(fired) == {("a", "schedule")}
        scheduler.schedule("a", cron("0 0 1 1 *", "Europe/Kyiv"))
        next_run = scheduler.next_regular("a")
        assert next_run is not None
        assert (next_run.month, next_run.day, next_run.hour, next_run.minute) == (1, 1, 0, 0)
        assert next_run.utcoffset() == timedelta(hours=2)
        scheduler.unschedule("a")
        assert scheduler.scheduled() == {}
        assert scheduler.next_run("a") is None
    finally:
        scheduler.shutdown()


def test_retry_job_fires_once():
    fired: list[tuple[str, str]] = []
    scheduler = ExportScheduler(
        lambda export, trigger: fired.append((export, trigger)),
        retry_policy=RetryPolicy(base_seconds=0.2, cap_seconds=0.2),
    )
    scheduler.start()
    try:
        now = datetime.now(UTC)
        attempt, at = scheduler.retry("a", now=now)
        assert (attempt, at) == (1, now + timedelta(seconds=0.2))
        assert scheduler.retry_pending("a") == at
        assert scheduler.next_run("a") == at
        wait_until(lambda: fired, message="retry")
        assert fired == [("a", "retry")]
        assert scheduler.retry_pending("a") is None
        assert scheduler.retry_attempt("a") == 1
    finally:
        scheduler.shutdown()


def test_missed_since():
    start = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert missed_since(every(60), last_started=start, now=start + timedelta(seconds=61))
    assert not missed_since(every(60), last_started=start, now=start + timedelta(seconds=59))
    hourly = cron("0 * * * *", "UTC")
    assert not missed_since(hourly, last_started=start, now=start + timedelta(minutes=59))
    assert missed_since(hourly, last_started=start, now=start + timedelta(minutes=61))


def test_failed_scheduled_run_is_retried_with_backoff_then_succeeds():
    runs = GatedRuns(batches=1, statuses=["failed", "failed", "succeeded"])
    runs.release.set()
    metrics = DaemonMetrics()
    current = config(export("a", schedule=cron("0 0 1 1 *")))
    supervisor = Supervisor(
        runs,
        config=lambda: current,
        clock=SystemClock(),
        metrics=metrics,
        retry_policy=RetryPolicy(base_seconds=0.1, cap_seconds=0.2, max_attempts=5),
    )
    supervisor.start()
    try:
        supervisor.apply(current)
        supervisor.coordinator.request("a", trigger="schedule")
        wait_until(lambda: len(runs.finished) == 3, message="two retries")
        wait_until(lambda: supervisor.scheduler.retry_attempt("a") == 0, message="retries reset")
        assert [trigger for _, trigger, _ in runs.started] == ["schedule", "retry", "retry"]
        text = metrics.render().decode()
        assert 'omnisync_runs_total{export="a",outcome="failed"} 2.0' in text
        assert 'omnisync_runs_total{export="a",outcome="succeeded"} 1.0' in text
        assert 'omnisync_contacts_sent_total{export="a"} 30.0' in text
        assert 'omnisync_invalid_rows_total{export="a"} 3.0' in text
        assert 'omnisync_last_success_timestamp_seconds{export="a"}' in text
        assert (
            supervisor.export_status("a", current.exports["a"])["last_run"]["status"] == "succeeded"
        )
    finally:
        supervisor.shutdown(timeout=5)


def test_triggered_failures_are_not_retried_and_trigger_answers():
    runs = GatedRuns(batches=1, statuses=["failed"])
    current = config(export("a", schedule=every(3600)), export("off", enabled=False))
    supervisor = Supervisor(
        runs,
        config=lambda: current,
        clock=SystemClock(),
        metrics=DaemonMetrics(),
        retry_policy=RetryPolicy(base_seconds=0.1, cap_seconds=0.1),
    )
    supervisor.start()
    try:
        supervisor.apply(current)
        assert supervisor.start_asked("nope", trigger="daemon-trigger").status == 404
        assert supervisor.start_asked("off", trigger="daemon-trigger").status == 409
        first = supervisor.start_asked("a", trigger="daemon-trigger")
        assert first.status == 202
        second = supervisor.start_asked("a", trigger="daemon-trigger")
        assert second.status == 409 and second.body["run"]["id"] == first.body["id"]
        runs.release.set()
        wait_until(lambda: runs.finished, message="run end")
        wait_until(lambda: not supervisor.coordinator.running(), message="idle")
        assert supervisor.scheduler.retry_pending("a") is None
        assert (
            supervisor.export_status("a", current.exports["a"])["last_run"]["trigger"]
            == "daemon-trigger"
        )
    finally:
        supervisor.shutdown(timeout=5)


def test_a_cron_weekday_means_what_crontab_means() -> None:
    """``0 9 * * 1`` is Monday 09:00 in crontab; APScheduler's own numbering would say Tuesday."""
    trigger = build_trigger(cron("0 9 * * 1", "Europe/Kyiv"))
    saturday = datetime(2026, 11, 28, 12, 0, tzinfo=ZoneInfo("Europe/Kyiv"))
    following = trigger.get_next_fire_time(None, saturday)
    assert following is not None
    assert following.weekday() == 0  # Monday
    assert (following.hour, following.minute) == (9, 0)


def test_aligned_interval_schedules_agree_on_fire_times_wherever_they_started() -> None:
    from omnisync.daemon.scheduler import EPOCH, nominal_fire

    timing = every(3)
    earlier = build_trigger(timing, aligned=True)
    later = build_trigger(timing, aligned=True)
    now = datetime(2026, 12, 7, 12, 0, 1, 500_000, tzinfo=UTC)
    first = earlier.get_next_fire_time(None, now)
    second = later.get_next_fire_time(None, now + timedelta(seconds=0.7))
    assert first == second == datetime(2026, 12, 7, 12, 0, 3, tzinfo=UTC)
    # The fire a replica claims is the grid point at or before its clock.
    assert nominal_fire(timing, now=first + timedelta(milliseconds=40)) == first
    assert nominal_fire(timing, now=first - timedelta(milliseconds=1)) == first - timedelta(
        seconds=3
    )
    assert (nominal_fire(timing, now=now) - EPOCH).total_seconds() % 3 == 0


def test_a_cron_fire_is_its_latest_fire_time() -> None:
    from omnisync.daemon.scheduler import nominal_fire

    timing = cron("*/5 * * * *", "Europe/Vilnius")
    fired = datetime(2026, 12, 7, 12, 5, 0, 350_000, tzinfo=UTC)
    assert nominal_fire(timing, now=fired) == datetime(2026, 12, 7, 12, 5, tzinfo=UTC)
    # Late, or asked for on taking a brand: still that fire, not the minute it is now.
    late = fired + timedelta(minutes=3)
    assert nominal_fire(timing, now=late) == datetime(2026, 12, 7, 12, 5, tzinfo=UTC)
    kyiv = cron("0 */6 * * *", "Europe/Kyiv")  # 18:00 in Kyiv is 16:00 UTC
    now = datetime(2026, 12, 7, 21, 59, tzinfo=UTC)
    assert nominal_fire(kyiv, now=now) == datetime(2026, 12, 7, 16, 0, tzinfo=UTC)
    leap = cron("0 0 29 2 *")
    assert nominal_fire(leap, now=now) == datetime(2024, 2, 29, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "now", "fire"),
    [
        # Kyiv's repeated hour on 2026-10-25: 03:00-04:00 local is 00:00-01:00 and again
        # 01:00-02:00 UTC. Wall-clock arithmetic forgot which one it was in: a search that
        # never ended, or a fire still to come.
        ("* * * * *", "2026-10-25T01:01:30", "2026-10-25T01:01:00"),
        ("*/5 * * * *", "2026-10-25T01:01:30", "2026-10-25T01:00:00"),
        ("30 * * * *", "2026-10-25T01:01:30", "2026-10-25T00:30:00"),
        ("30 * * * *", "2026-10-25T02:06:00", "2026-10-25T01:30:00"),
        ("0-59 0-23 * * *", "2026-10-25T01:07:08", "2026-10-25T00:59:00"),  # set times: once
        ("*/20 2-4 * * *", "2026-10-25T01:07:08", "2026-10-25T01:00:00"),
        # The hour skipped in spring (2026-03-29, 03:00 local is 01:00 UTC).
        ("*/5 * * * *", "2026-03-29T01:02:00", "2026-03-29T01:00:00"),
    ],
)
def test_a_cron_fire_across_a_clock_change_is_the_latest_at_or_before_now(
    expression: str, now: str, fire: str
) -> None:
    from omnisync.daemon.scheduler import nominal_fire

    moment = datetime.fromisoformat(now).replace(tzinfo=UTC)
    found = nominal_fire(cron(expression, "Europe/Kyiv"), now=moment)
    assert found == datetime.fromisoformat(fire).replace(tzinfo=UTC)
