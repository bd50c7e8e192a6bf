"""What a daemon, or the replica that takes a brand, does with the last run it finds in
history: a failed scheduled run is retried by the retry policy, spaced from its end."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from omnisync.clock import SystemClock
from omnisync.daemon.metrics import DaemonMetrics
from omnisync.daemon.scheduler import RetryPolicy
from omnisync.daemon.supervisor import Supervisor
from tests.daemon.builders import config, every, export
from tests.daemon.runfunctions import GatedRuns

BASE = 600.0


@dataclass
class WithHistory(GatedRuns):
    """Runs as :class:`GatedRuns`; history's last run is ``last``."""

    last: dict[str, Any] = field(default_factory=dict)

    def last_run(self, export: str) -> dict[str, Any]:  # type: ignore[override]
        return self.last


class Holder:
    """Shared scheduling where this replica holds every brand; the latest fire was claimed
    (by the replica whose run failed), so only retries run."""

    @contextmanager
    def claimed(
        self, export: str, timing: object, *, now: datetime, retry: bool = False
    ) -> Iterator[bool]:
        yield retry

    def run_finished(self, record: object) -> None:
        pass


@contextmanager
def _supervisor(runs: WithHistory, *, shared: bool) -> Iterator[Supervisor]:
    # The longest interval: on a shared store its ticks sit on a grid from 1970 (an hourly
    # one's next tick, at the top of the hour, would come before the second retry).
    current = config(export("a", schedule=every(366 * 86_400)))
    supervisor = Supervisor(
        runs,
        config=lambda: current,
        clock=SystemClock(),
        metrics=DaemonMetrics(),
        retry_policy=RetryPolicy(base_seconds=BASE, cap_seconds=4 * BASE),
        shared=Holder() if shared else None,
    )
    supervisor.start()
    try:
        supervisor.apply(current)
        yield supervisor
    finally:
        supervisor.shutdown(timeout=5)


def _failed(trigger: str, *, ended: datetime) -> dict[str, Any]:
    moment = ended.isoformat()
    return {"status": "failed", "trigger": trigger, "started_at": moment, "ended_at": moment}


@pytest.mark.parametrize("shared", [False, True], ids=["one daemon", "a taker"])
def test_a_failed_scheduled_run_is_retried_spaced_from_its_end_never_in_a_loop(shared):
    ended = datetime.now(UTC).replace(microsecond=0)
    runs = WithHistory(last=_failed("schedule", ended=ended))
    with _supervisor(runs, shared=shared) as supervisor:
        supervisor.catch_up(["a"] if shared else None)
        assert supervisor.scheduler.retry_pending("a") == ended + timedelta(seconds=BASE)
        # Taken again (a brand bouncing between replicas, a daemon restarted): later still.
        supervisor.catch_up(["a"] if shared else None)
        assert supervisor.scheduler.retry_pending("a") == ended + timedelta(seconds=2 * BASE)
        assert runs.started == []


@pytest.mark.parametrize("shared", [False, True], ids=["one daemon", "a taker"])
def test_a_failed_run_a_person_asked_for_is_not_retried(shared):
    runs = WithHistory(last=_failed("cli request", ended=datetime.now(UTC)))
    with _supervisor(runs, shared=shared) as supervisor:
        supervisor.catch_up(["a"] if shared else None)
        assert supervisor.scheduler.retry_pending("a") is None
        assert runs.started == []


@pytest.mark.parametrize("ago", [12, 30], ids=["due later", "missed"])
def test_an_interval_counts_from_the_last_run_not_from_the_daemons_start(ago):
    # A daily export restarted daily waited up to two days: the ticks counted from start.
    started = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=ago)
    last = {"status": "succeeded", "trigger": "schedule", "started_at": started.isoformat()}
    runs = WithHistory(last=last)
    current = config(export("a", schedule=every(20)))
    supervisor = Supervisor(
        runs, config=lambda: current, clock=SystemClock(), metrics=DaemonMetrics()
    )
    supervisor.start()
    try:
        supervisor.apply(current)
        following = supervisor.scheduler.next_regular("a")
    finally:
        supervisor.shutdown(timeout=5)
    assert following is not None
    if ago == 12:  # 20 s after the last run's start, not 20 s after now
        assert following == started + timedelta(seconds=20)
    else:  # missed: the catch-up runs now, and the next tick is an interval after it
        assert following - datetime.now(UTC) > timedelta(seconds=15)
