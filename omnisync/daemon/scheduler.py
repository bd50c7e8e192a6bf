"""The scheduler shell: APScheduler 3.x jobs, one per scheduled export.

Each enabled export with a schedule has one job whose id is the export's
name (a cron trigger in the schedule's time zone, or an interval trigger);
a failed run may add a one-off retry job ``retry:<export>``. A job does not
run the export itself: it asks the :class:`~omnisync.daemon.runs.RunCoordinator`,
which keeps runs exclusive per export and coalesces ticks that fall during a
run into one follow-up run. So the scheduler's threads are never held by a
run, and its ``max_instances=1``/``coalesce=True`` only deal with the
scheduler's own lateness (a suspended machine), within ``misfire_grace_time``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from omnisync.config.cron import crontab_trigger_fields
from omnisync.daemon.reconcile import Timing

_log = logging.getLogger("omnisync.daemon.scheduler")

RETRY_PREFIX = "retry:"

#: A tick late by up to this much (a suspended laptop, a stalled VM) still runs, once.
MISFIRE_GRACE_SECONDS = 3600

Fire = Callable[[str, str], object]


#: Aligned interval schedules tick at whole multiples of their interval since this moment,
#: so replicas that started at different times compute the same fire times.
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def nominal_fire(timing: Timing, *, now: datetime) -> datetime:
    """The latest fire time of ``timing`` at or before ``now``, as every replica computes it.

    Interval schedules are aligned to :data:`EPOCH`; cron schedules tick on
    whole minutes (crontab has no seconds), so their fire is ``now``'s minute.
    """
    if timing.every_seconds is not None:
        elapsed = (now - EPOCH).total_seconds()
        ticks = int(elapsed // timing.every_seconds)
        return EPOCH + timedelta(seconds=ticks * timing.every_seconds)
    return now.astimezone(UTC).replace(second=0, microsecond=0)


def build_trigger(timing: Timing, *, aligned: bool = False) -> BaseTrigger:
    """The APScheduler trigger for ``timing``.

    ``aligned``: interval schedules tick on :data:`EPOCH`'s grid.
    """
    if timing.cron is not None:
        # Not CronTrigger.from_crontab: APScheduler 3 counts weekdays from Monday=0,
        # so "1" would mean Tuesday. The config's translation keeps crontab's meaning.
        return CronTrigger(
            **crontab_trigger_fields(timing.cron), timezone=ZoneInfo(timing.timezone)
        )
    assert timing.every_seconds is not None
    return IntervalTrigger(
        seconds=timing.every_seconds, timezone=UTC, start_date=EPOCH if aligned else None
    )


def missed_since(timing: Timing, *, last_started: datetime, now: datetime) -> bool:
    """Whether ``timing`` had a tick after ``last_started`` and before ``now``.

    Used at start-up: ticks missed while the daemon was down coalesce into one run.
    """
    if timing.every_seconds is not None:
        return last_started + timedelta(seconds=timing.every_seconds) <= now
    trigger = build_trigger(timing)
    # Cron triggers have no memory; ask for the first tick strictly after the last start.
    following = trigger.get_next_fire_time(None, last_started + timedelta(seconds=1))
    return following is not None and following <= now


class ExportScheduler:
    """Owns one APScheduler ``BackgroundScheduler``; ``fire(export, trigger)`` runs on each tick."""

    def __init__(self, fire: Fire, *, aligned: bool = False) -> None:
        self._fire = fire
        self._aligned = aligned
        self._lock = threading.Lock()
        self._timings: dict[str, Timing] = {}
        self._retry_attempts: dict[str, int] = {}
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=2)},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": MISFIRE_GRACE_SECONDS,
            },
            timezone=UTC,
        )

    def start(self) -> None:
        self._scheduler.start()

    def shutdown(self) -> None:
        """Stop scheduling at once; runs already started are the coordinator's to stop."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    # -- regular jobs -------------------------------------------------------------

    def scheduled(self) -> dict[str, Timing]:
        """Each export with a regular job, and that job's timing, as the scheduler holds them."""
        with self._lock:
            return {
                job.id: self._timings[job.id]
                for job in self._scheduler.get_jobs()
                if job.id in self._timings
            }

    def schedule(self, export: str, timing: Timing) -> None:
        """Add ``export``'s job, or replace it with one on the new timing."""
        with self._lock:
            self._scheduler.add_job(
                self._fire,
                build_trigger(timing, aligned=self._aligned),
                args=(export, "schedule"),
                id=export,
                name=f"export {export}",
                replace_existing=True,
            )
            self._timings[export] = timing

    def unschedule(self, export: str) -> None:
        """Remove ``export``'s job and any retry of it."""
        with self._lock:
            self._timings.pop(export, None)
            self._remove(export)
        self.cancel_retry(export)

    def next_regular(self, export: str) -> datetime | None:
        job = self._scheduler.get_job(export)
        return job.next_run_time if job is not None else None

    # -- retries ------------------------------------------------------------------

    def schedule_retry(self, export: str, *, at: datetime, attempt: int) -> None:
        """Run ``export`` once at ``at`` (retry number ``attempt``)."""
        with self._lock:
            self._scheduler.add_job(
                self._fire,
                DateTrigger(run_date=at),
                args=(export, "retry"),
                id=RETRY_PREFIX + export,
                name=f"retry {attempt} of export {export}",
                replace_existing=True,
            )
            self._retry_attempts[export] = attempt

    def cancel_retry(self, export: str) -> None:
        """Drop ``export``'s pending retry, if any, and forget its attempt count."""
        with self._lock:
            self._retry_attempts.pop(export, None)
            self._remove(RETRY_PREFIX + export)

    def retry_pending(self, export: str) -> datetime | None:
        job = self._scheduler.get_job(RETRY_PREFIX + export)
        return job.next_run_time if job is not None else None

    def retry_attempt(self, export: str) -> int:
        """The number of the last retry scheduled since the export last succeeded (0: none)."""
        with self._lock:
            return self._retry_attempts.get(export, 0)

    def next_run(self, export: str) -> datetime | None:
        """The earlier of the next regular tick and a pending retry."""
        moments = [m for m in (self.next_regular(export), self.retry_pending(export)) if m]
        return min(moments) if moments else None

    def _remove(self, job_id: str) -> None:
        with contextlib.suppress(JobLookupError):
            self._scheduler.remove_job(job_id)
