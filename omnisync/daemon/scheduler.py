"""The scheduler shell: APScheduler 3.x jobs, one per scheduled export, and retries.

Each enabled export with a schedule has one job whose id is the export's name; a
failed scheduled run may add a one-off job ``retry:<export>``. A job only calls
``fire(export, trigger)``: the run coordinator keeps runs exclusive and coalesces
ticks, so ``max_instances``/``coalesce`` only cover the scheduler's own lateness.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from omnisync.config.cron import crontab_trigger
from omnisync.config.model import Schedule

RETRY_PREFIX = "retry:"

#: A tick late by up to this much (a suspended laptop, a stalled VM) still runs, once.
MISFIRE_GRACE_SECONDS = 3600

#: Aligned interval schedules tick at whole multiples of their interval since this moment,
#: so replicas that started at different times compute the same fire times.
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff of failed scheduled runs: ``base``, ``2·base``, … ≤ ``cap``
    seconds, at most ``max_attempts`` retries, and only before the next regular run."""

    base_seconds: float = 30.0
    cap_seconds: float = 900.0
    max_attempts: int = 5

    def retry_at(
        self, *, attempt: int, now: datetime, next_regular: datetime | None
    ) -> datetime | None:
        """When retry number ``attempt`` (1-based) should run, or ``None`` when it should not."""
        # min() before the power: absurd attempt numbers would overflow.
        delay = min(self.cap_seconds, self.base_seconds * 2 ** min(attempt - 1, 62))
        moment = now + timedelta(seconds=delay)
        too_late = next_regular is not None and moment >= next_regular
        return None if attempt > self.max_attempts or too_late else moment


def nominal_fire(timing: Schedule, *, now: datetime) -> datetime | None:
    """The latest fire time of ``timing`` at or before ``now``, as every replica computes it:
    interval schedules on :data:`EPOCH`'s grid, cron ones as their trigger fires (``None``:
    no fire in the last :data:`CRON_LOOKBACK`)."""
    if timing.every_seconds is not None:
        ticks = (now - EPOCH).total_seconds() // timing.every_seconds
        return EPOCH + timedelta(seconds=ticks * timing.every_seconds)
    return latest_fire(build_trigger(timing), now=now)


#: How far back :func:`latest_fire` looks: a valid cron expression fires within 8 years.
CRON_LOOKBACK = timedelta(days=366 * 9)
_TICK = timedelta(microseconds=1)
#: Each halving at least halves [low, high]: far more than a lookback in microseconds needs.
_MAX_HALVINGS = 200


def latest_fire(trigger: BaseTrigger, *, now: datetime) -> datetime | None:
    """The latest fire time of ``trigger`` at or before ``now``, in UTC; ``None``: none in
    the last :data:`CRON_LOOKBACK`."""
    # APScheduler's triggers only look forward: find a fire in spans back from now that
    # double, then halve the span the latest one lies in, [low, high]. In UTC throughout:
    # arithmetic on a zone's wall clock forgets which of a repeated hour it was in.
    now = now.astimezone(UTC)

    def next_fire(moment: datetime) -> datetime | None:
        fire = trigger.get_next_fire_time(None, moment)
        return None if fire is None else fire.astimezone(UTC)

    span = timedelta(minutes=1)
    while (low := next_fire(now - span)) is None or low > now:
        if span > CRON_LOOKBACK:
            return None
        span *= 2
    high = now
    for _ in range(_MAX_HALVINGS):
        after = next_fire(low + _TICK)
        if after is None or after > high:
            return low
        middle = after + (high - after) / 2
        probe = next_fire(middle)
        if probe is not None and probe <= high:
            low = probe
        else:
            low, high = after, middle
    return low  # a fire at or before now, if not the latest: never one still to come


def build_trigger(
    timing: Schedule, *, aligned: bool = False, after: datetime | None = None
) -> BaseTrigger:
    """The APScheduler trigger for ``timing``; ``aligned``: on :data:`EPOCH`'s grid, else an
    interval's ticks are whole intervals after ``after`` (the last run's start), or after now."""
    if timing.cron is not None:
        return crontab_trigger(timing.cron, timing.timezone)
    return IntervalTrigger(
        seconds=timing.every_seconds, timezone=UTC, start_date=EPOCH if aligned else after
    )


def missed_since(timing: Schedule, *, last_started: datetime, now: datetime) -> bool:
    """Whether ``timing`` had a tick after ``last_started`` and before ``now``."""
    if timing.every_seconds is not None:
        return last_started + timedelta(seconds=timing.every_seconds) <= now
    following = build_trigger(timing).get_next_fire_time(None, last_started + timedelta(seconds=1))
    return following is not None and following <= now


class ExportScheduler:
    """Owns one APScheduler ``BackgroundScheduler``; ``fire(export, trigger)`` runs on each tick
    (``schedule`` or ``retry``)."""

    def __init__(
        self,
        fire: Callable[[str, str], object],
        *,
        aligned: bool = False,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        self._fire = fire
        self._aligned = aligned
        self.retry_policy = retry_policy or RetryPolicy()
        self._lock = threading.Lock()
        self._timings: dict[str, Schedule] = {}
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

    def scheduled(self) -> dict[str, Schedule]:
        """Each export with a regular job, and that job's timing, as the scheduler holds them."""
        with self._lock:
            jobs = self._scheduler.get_jobs()
            return {job.id: self._timings[job.id] for job in jobs if job.id in self._timings}

    def schedule(self, export: str, timing: Schedule, *, after: datetime | None = None) -> None:
        """Add ``export``'s job, or replace it with one on the new timing (an interval's
        ticks whole intervals after ``after``, see :func:`build_trigger`)."""
        with self._lock:
            trigger = build_trigger(timing, aligned=self._aligned, after=after)
            self._add(export, trigger, "schedule")
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

    def retry(self, export: str, *, now: datetime) -> tuple[int, datetime | None]:
        """Schedule the next retry of ``export`` by the policy: its number and time, the time
        ``None`` (and any pending retry dropped) when it should not be tried again before its
        next regular run."""
        attempt = self.retry_attempt(export) + 1
        at = self.retry_policy.retry_at(
            attempt=attempt, now=now, next_regular=self.next_regular(export)
        )
        if at is None:
            self.cancel_retry(export)
            return attempt, None
        with self._lock:
            self._add(RETRY_PREFIX + export, DateTrigger(run_date=at), "retry")
            self._retry_attempts[export] = attempt
        return attempt, at

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

    def _add(self, job_id: str, trigger: BaseTrigger, kind: str) -> None:
        export = job_id.removeprefix(RETRY_PREFIX)
        self._scheduler.add_job(
            self._fire,
            trigger,
            args=(export, kind),
            id=job_id,
            name=f"{kind} of export {export}",
            replace_existing=True,
        )

    def _remove(self, job_id: str) -> None:
        with contextlib.suppress(JobLookupError):
            self._scheduler.remove_job(job_id)
