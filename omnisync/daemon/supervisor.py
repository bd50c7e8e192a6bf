"""The supervisor: keeps the scheduler and the running exports in step with the config.

It applies what :func:`~omnisync.daemon.reconcile.reconcile` decides on each reload
and tick, and follows each run up: metrics, a log line, and for a failed scheduled
run a retry before the next regular tick.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Mapping
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any, Protocol

from omnisync.clock import Clock, parse_time
from omnisync.config.model import Config, Export, Schedule
from omnisync.daemon.control import TriggerAnswer
from omnisync.daemon.metrics import DaemonMetrics
from omnisync.daemon.reconcile import (
    Action,
    ExportSpec,
    ScheduleJob,
    StopRun,
    changed_exports,
    desired_exports,
    reconcile,
)
from omnisync.daemon.runs import Engine, RunCoordinator, RunRecord
from omnisync.daemon.scheduler import ExportScheduler, RetryPolicy, missed_since, nominal_fire
from omnisync.daemon.status import export_state

_log = logging.getLogger("omnisync.daemon")

#: Triggers whose failure is retried with backoff (a person who triggered a run sees its result).
RETRIED_TRIGGERS = frozenset({"schedule", "retry", "catch-up", "reload"})
#: A run that ended so in history died with its process, or (``partial``) was cut short:
#: the next daemon, or the brand's next holder, resumes it (an on-demand run only if it died).
DIED = frozenset({"running", "interrupted"})
UNFINISHED = DIED | {"partial"}


class SharedScheduling(Protocol):
    """What the supervisor asks of a shared store's replica membership."""

    def claimed(
        self, export: str, timing: Schedule, *, now: datetime, retry: bool = False
    ) -> AbstractContextManager[bool]:
        """Whether this replica holds the export's brand and claimed its latest fire
        (``retry``: a retry of a failed run, for the holder only, nothing to claim).
        The brand stays this replica's until the block ends: start the run inside it."""

    def run_finished(self, record: RunRecord) -> None:
        """A run ended (answer whoever asked for it)."""


class Supervisor:
    """Schedules, starts, stops and retries export runs of ``engine`` for the current
    config (``config`` returns the last good one)."""

    def __init__(
        self,
        engine: Engine,
        *,
        config: Callable[[], Config],
        clock: Clock,
        metrics: DaemonMetrics,
        retry_policy: RetryPolicy | None = None,
        shared: SharedScheduling | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._shared = shared
        self._metrics = metrics
        #: The config runs starting now use (the last good one).
        self.config = config
        self._applied: dict[str, ExportSpec] = {}
        #: apply() and a retry's planning, one at a time: a retry is planned either for the
        #: config a reload then unschedules, or for the one the reload made current.
        self._lock = threading.Lock()
        self.coordinator = RunCoordinator(
            engine,
            config=config,
            clock=clock,
            on_started=lambda record: metrics.run_started(record.export),
            on_finished=self._run_finished,
        )
        self.scheduler = ExportScheduler(
            self._fire, aligned=shared is not None, retry_policy=retry_policy
        )

    def start(self) -> None:
        self.scheduler.start()

    def shutdown(self, *, timeout: float) -> bool:
        """Stop scheduling, stop runs at a batch boundary; ``True`` when all stopped in time."""
        self.scheduler.shutdown()
        return self.coordinator.shutdown(timeout=timeout)

    def apply(self, config: Config) -> dict[str, tuple[str, ...]]:
        """Make jobs and runs match ``config``, which ``self.config()`` returns already (runs
        starting meanwhile read it); returns added/removed/changed export names."""
        desired = desired_exports(config)
        with self._lock:
            changes = changed_exports(desired, self._applied)
            self._execute(reconcile(desired, self._applied, self.scheduler.scheduled()))
            for name in desired.keys() | self._applied.keys():
                if name not in desired or desired[name].job_timing is None:
                    self.scheduler.cancel_retry(name)
            self._applied = desired
        return changes

    def tick(self) -> None:
        """Repair any drift between the scheduler and the applied config."""
        actions = reconcile(self._applied, self._applied, self.scheduler.scheduled())
        if actions:
            _log.warning(
                "scheduler drifted from the config; repairing %d jobs",
                len(actions),
                extra={"event": "reconcile_repair"},
            )
            self._execute(actions)

    def _execute(self, actions: tuple[Action, ...]) -> None:
        for action in actions:
            if isinstance(action, StopRun):
                self.coordinator.stop(action.export, reason=action.reason, rerun=action.rerun)
            elif isinstance(action, ScheduleJob):
                after = self._last_started(action.export, action.timing)
                self.scheduler.schedule(action.export, action.timing, after=after)
                next_run = self.scheduler.next_regular(action.export)
                _log.info(
                    "%s export %s: %s, next run %s",
                    "re-timed" if action.existing else "scheduled",
                    action.export,
                    action.timing.describe(),
                    next_run.isoformat() if next_run else "never",
                    extra={
                        "event": "export_retimed" if action.existing else "export_scheduled",
                        "export": action.export,
                        "next_run": next_run.isoformat() if next_run else None,
                    },
                )
            else:
                self.scheduler.unschedule(action.export)
                _log.info(
                    "unscheduled export %s",
                    action.export,
                    extra={"event": "export_unscheduled", "export": action.export},
                )

    def _last_started(self, export: str, timing: Schedule) -> datetime | None:
        # An interval counts from the last run, not from a start or reload: a daily export
        # restarted daily would otherwise wait up to two days. A tick missed meanwhile is
        # the catch-up's, now; the next is an interval after it.
        if self._shared is not None or timing.every_seconds is None:
            return None
        started = parse_time((self._engine.last_run(export) or {}).get("started_at"))
        interval = timedelta(seconds=timing.every_seconds)
        return started if started and started + interval > self._clock.wall() else None

    def catch_up(self, exports: Collection[str] | None = None) -> None:
        """Run once now what missed its schedule while the daemon was down, and resume runs
        the previous daemon left unfinished (``running``, ``interrupted``, ``partial``; an
        on-demand export's only if it died: ``running``, ``interrupted``); a scheduled run
        that ``failed`` is retried by the retry policy, spaced from its end (its own retry
        went with the process, or the brand, that planned it). On a shared store: per brand
        as its lease is taken (``exports``: that brand's), a missed tick being the latest
        fire, when it came after the export's last run started (or it never ran) and this
        replica claims it."""
        if exports is None and self._shared is not None:
            return
        now = self._clock.wall()
        for name, spec in sorted(self._applied.items()):
            timing = spec.job_timing
            if (exports is not None and name not in exports) or not spec.enabled:
                continue
            last = self._engine.last_run(name) or {}
            unfinished = last.get("status") in (DIED if timing is None else UNFINISHED)
            failed = last.get("status") == "failed" and last.get("trigger") in RETRIED_TRIGGERS
            started = parse_time(last.get("started_at"))
            if self._shared is not None:
                if unfinished:
                    self.coordinator.request(name, trigger="catch-up")
                elif timing is not None:
                    if failed:
                        self._retry_failed(name, last, now=now)
                    fire = nominal_fire(timing, now=now)
                    if fire is not None and (started is None or fire > started):
                        self._fire(name, "schedule")  # missed: run it, if nobody claimed it
                continue
            missed = (
                timing is not None
                and started is not None
                and missed_since(timing, last_started=started, now=now)
            )
            if unfinished or missed:
                _log.info(
                    "export %s %s",
                    name,
                    "left unfinished by the previous daemon; resuming it"
                    if unfinished
                    else "missed its schedule while the daemon was down; running it now",
                    extra={"event": "run_catch_up", "export": name},
                )
                self.coordinator.request(name, trigger="catch-up")
            elif failed:
                self._retry_failed(name, last, now=now)

    def _fire(self, export: str, trigger: str) -> None:
        if self._shared is not None:
            if not self.coordinator.accepting:
                return  # stopping: leave the fire unclaimed for a replica that runs it
            spec = self._applied.get(export)
            if spec is None or spec.timing is None:
                return
            # On a shared store only the brand's holder runs a tick, once: it claims it.
            with self._shared.claimed(
                export, spec.timing, now=self._clock.wall(), retry=trigger != "schedule"
            ) as claimed:
                if claimed:
                    self.coordinator.request(export, trigger=trigger)
            if not claimed and trigger == "retry":
                self.scheduler.cancel_retry(export)
                _log.info(
                    "retry of export %s dropped: this replica does not hold its brand now; "
                    "the replica that takes the brand retries the failed run",
                    export,
                    extra={"event": "run_retry_dropped", "export": export},
                )
            return
        self.coordinator.request(export, trigger=trigger)

    def start_asked(self, export: str, *, trigger: str, check_key: bool = True) -> TriggerAnswer:
        """Start a run someone asked for: 202 with the run, or 404/409/422 with the reason.
        Never queued behind a run in flight (409 names it). 422 (``check_key``): its API key
        cannot be read, nothing started or recorded; without ``check_key`` it ends ``refused``.
        """
        config = self.config()
        if (unavailable := _unavailable(config, export)) is not None:
            return unavailable
        if check_key and (refusal := self._engine.refusal(config, export)) is not None:
            _log_refused(export, trigger, refusal)
            return TriggerAnswer(422, {"error": refusal})
        record, running = self.coordinator.start_or_running(export, trigger=trigger)
        if record is not None:
            return TriggerAnswer(202, record.to_json())
        if running is None:  # a reload removed or disabled it meanwhile, or we are stopping
            stopping = TriggerAnswer(409, {"error": "the daemon is stopping"})
            return _unavailable(self.config(), export) or stopping
        return TriggerAnswer(
            409, {"error": f"export {export!r} is already running", "run": running.to_json()}
        )

    def export_status(self, name: str, export: Export) -> dict[str, Any]:
        """``export``'s entry in ``/status``."""
        own = self.coordinator.last(name)
        last = self._engine.last_run(name)
        if own is not None and (last is None or (own.outcome and own.outcome.status == "refused")):
            # A refused run (its API key unreadable) is in no history, but is the latest news.
            last = own.to_json()
        running = self.coordinator.running().get(name)
        retry_at = self.scheduler.retry_pending(name)
        next_run = self.scheduler.next_run(name)
        held = None
        if last and last.get("status") == "held":
            held = str(last.get("error") or "held by a change guard")
        return {
            "state": export_state(
                enabled=export.enabled,
                scheduled=export.scheduled,
                running=running is not None,
                retrying=retry_at is not None,
                held=held is not None,
            ),
            "held": held,
            "enabled": export.enabled,
            "segment": export.segment,
            "connection": export.connection,
            "schedule": export.schedule.describe() if export.schedule is not None else None,
            "next_run": next_run.isoformat() if next_run else None,
            "retry": (
                {"attempt": self.scheduler.retry_attempt(name), "at": retry_at.isoformat()}
                if retry_at is not None
                else None
            ),
            "running": running.to_json() if running is not None else None,
            "last_run": dict(last) if last is not None else None,
        }

    def _run_finished(self, record: RunRecord) -> None:
        outcome = record.outcome
        assert outcome is not None and record.ended_at is not None
        refused = outcome.status == "refused"
        self._metrics.run_finished(
            record.export,
            outcome=outcome.status,
            # A refusal is a config problem (its API key), not a run: no history, no counts.
            counts={} if refused else outcome.counts,
            duration_seconds=record.duration_seconds or 0.0,
            ended_at=record.ended_at,
        )
        if refused:
            _log_refused(record.export, record.trigger, outcome.error or "")
        else:
            _log.log(
                logging.INFO if outcome.status == "succeeded" else logging.WARNING,
                "run of export %s %s%s",
                record.export,
                outcome.status,
                f": {outcome.error}" if outcome.error else "",
                extra={
                    "event": "run_finished",
                    "export": record.export,
                    "run_id": record.id,
                    "trigger": record.trigger,
                    "status": outcome.status,
                    "counts": dict(outcome.counts),
                    "stop_reason": record.stop_reason,
                },
            )
        if outcome.status != "failed":
            self.scheduler.cancel_retry(record.export)
        elif record.stop_reason is None and record.trigger in RETRIED_TRIGGERS:
            self._schedule_retry(record.export, since=self._clock.wall())
        if self._shared is not None:
            self._shared.run_finished(record)

    def _retry_failed(self, export: str, last: Mapping[str, Any], *, now: datetime) -> None:
        """Retry ``export``'s failed run ``last``, read from history: spaced from its end as
        its own daemon would have (a run that fails for good is never run in a loop)."""
        ended = parse_time(last.get("ended_at")) or now
        base = timedelta(seconds=self.scheduler.retry_policy.base_seconds)
        self._schedule_retry(export, since=max(ended, now - base))

    def _schedule_retry(self, export: str, *, since: datetime) -> None:
        """Schedule ``export``'s next retry by the policy, counted from ``since``; log it."""
        with self._lock:  # so that a reload applied meanwhile unschedules this retry
            definition = self.config().exports.get(export)
            if definition is None or not definition.enabled or definition.schedule is None:
                return
            attempt, at = self.scheduler.retry(export, now=since)
        if at is None:
            _log.warning(
                "export %s failed; next try at its regular time",
                export,
                extra={"event": "run_retry_skipped", "export": export, "attempt": attempt},
            )
            return
        _log.warning(
            "export %s failed; retry %d at %s",
            export,
            attempt,
            at.isoformat(),
            extra={
                "event": "run_retry_scheduled",
                "export": export,
                "attempt": attempt,
                "retry_at": at.isoformat(),
            },
        )


def _unavailable(config: Config, export: str) -> TriggerAnswer | None:
    """The answer to a trigger of ``export`` that ``config`` lacks (404) or disables (409)."""
    definition = config.exports.get(export)
    if definition is None:
        return TriggerAnswer(404, {"error": f"no export named {export!r} in the config"})
    if not definition.enabled:
        return TriggerAnswer(409, {"error": f"export {export!r} is disabled"})
    return None


def _log_refused(export: str, trigger: str, reason: str) -> None:
    _log.warning(
        "export %s not run (%s): %s",
        export,
        trigger,
        reason,
        extra={"event": "run_refused", "export": export, "trigger": trigger},
    )
