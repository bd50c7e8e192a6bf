"""A reload that removes or disables an export, racing that export's runs and retries.

The real Supervisor, RunCoordinator and ExportScheduler (APScheduler), with a
:class:`Gate` where a thread is pre-empted: at the config it read, or inside the
planning of a retry. The reload then runs in a thread of its own; the fixed daemon
makes it wait for the pre-empted thread, so the test gives it :data:`RELOAD_GRACE`
to finish first (the unfixed daemon does, at once) and then lets the other go.
Whatever the order, the outcome asserted is the same.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from omnisync.clock import SystemClock
from omnisync.config.model import Config
from omnisync.daemon.metrics import DaemonMetrics
from omnisync.daemon.runs import RunCoordinator
from omnisync.daemon.scheduler import RetryPolicy
from omnisync.daemon.supervisor import Supervisor
from tests.daemon.builders import config, every, export
from tests.daemon.runfunctions import GatedRuns, wait_until

#: How long a reload may take to finish while another thread is pre-empted.
RELOAD_GRACE = 0.5

BEFORE = config(export("a", schedule=every(3600)), export("b", schedule=every(3600)), revision="r1")
REMOVED = config(export("b", schedule=every(3600)), revision="r2")
DISABLED = config(
    export("a", schedule=every(3600), enabled=False),
    export("b", schedule=every(3600)),
    revision="r2",
)
#: The reloads, each with the reason it stops a run of ``a`` in flight.
RELOADS = [
    pytest.param(REMOVED, "removed", id="removed"),
    pytest.param(DISABLED, "disabled", id="disabled"),
]


class Gate:
    """Once armed, parks the next thread that passes until :meth:`open`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed = False
        self.parked = threading.Event()
        self.opened = threading.Event()
        self.thread: threading.Thread | None = None

    def arm(self) -> None:
        with self._lock:
            self._armed = True

    def open(self) -> None:
        self.opened.set()

    def __call__(self) -> None:
        with self._lock:
            armed, self._armed = self._armed, False
        if armed:
            self.thread = threading.current_thread()
            self.parked.set()
            assert self.opened.wait(30), "the gate was never opened"


@dataclass(frozen=True)
class ParkingPolicy(RetryPolicy):
    """The default backoff, passing through ``gate`` while a retry is planned."""

    gate: Gate = field(default_factory=Gate)

    def retry_at(
        self, *, attempt: int, now: datetime, next_regular: datetime | None
    ) -> datetime | None:
        self.gate()
        return super().retry_at(attempt=attempt, now=now, next_regular=next_regular)


def reload_racing(supervisor: Supervisor, holder: dict[str, Config], new: Config, gate: Gate):
    """What the daemon does on a reload (the config made current, then applied) while
    ``gate`` holds a thread; that thread goes on once the reload is done or waits for it."""
    assert gate.parked.wait(10), "no thread reached the gate"
    holder["config"] = new
    reload = threading.Thread(target=supervisor.apply, args=(new,), name="reload")
    reload.start()
    reload.join(RELOAD_GRACE)
    gate.open()
    reload.join(10)
    assert not reload.is_alive()


def make_supervisor(runs: GatedRuns, current: Callable[[], Config], **options) -> Supervisor:
    return Supervisor(runs, config=current, clock=SystemClock(), metrics=DaemonMetrics(), **options)


@pytest.mark.parametrize("new", [REMOVED, DISABLED], ids=["removed", "disabled"])
def test_no_run_starts_for_an_export_the_config_no_longer_has_enabled(new):
    runs = GatedRuns()
    runs.release.set()
    finished = []
    coordinator = RunCoordinator(
        runs,
        config=lambda: new,
        clock=SystemClock(),
        on_started=lambda record: None,
        on_finished=finished.append,
    )
    assert coordinator.start("a", trigger="retry") is None
    assert coordinator.request("a", trigger="schedule") is None
    assert coordinator.request("b", trigger="schedule") is not None
    assert coordinator.shutdown(timeout=10)
    assert [started[0] for started in runs.started] == ["b"]
    assert [record.export for record in finished] == ["b"]
    assert coordinator.last("a") is None


@pytest.mark.parametrize(
    ("new", "answer"), [(REMOVED, 404), (DISABLED, 409)], ids=["removed", "disabled"]
)
def test_a_trigger_racing_a_reload_of_its_export_answers_for_the_new_config(new, answer):
    runs = GatedRuns()
    runs.release.set()
    looks = iter([BEFORE])  # the trigger's own look still sees the export; the run's does not
    supervisor = make_supervisor(runs, lambda: next(looks, new))
    try:
        trigger = supervisor.start_asked("a", trigger="daemon-trigger")
        assert trigger.status == answer, trigger.body
        assert "'a'" in trigger.body["error"]  # not "the daemon is stopping"
        assert runs.started == []
    finally:
        supervisor.shutdown(timeout=10)


@pytest.mark.parametrize(("new", "reason"), RELOADS)
def test_a_retry_that_read_the_config_before_the_reload_is_stopped_by_it(new, reason):
    runs = GatedRuns()  # held until released: the reload lands before its first batch
    holder = {"config": BEFORE}
    gate = Gate()

    def current() -> Config:
        read = holder["config"]
        gate()  # the retry's thread is pre-empted here, holding the config it read
        return read

    supervisor = make_supervisor(
        runs, current, retry_policy=RetryPolicy(base_seconds=0.01, cap_seconds=0.01)
    )
    supervisor.start()
    try:
        supervisor.apply(BEFORE)
        gate.arm()
        supervisor.scheduler.retry("a", now=datetime.now(UTC))  # due at once
        reload_racing(supervisor, holder, new, gate)
        runs.release.set()
        wait_until(
            lambda: runs.finished and not supervisor.coordinator.running(),
            message="the retry's run to end",
        )
        run = supervisor.coordinator.last("a")
        assert run is not None and run.config_revision == "r1"
        assert run.stop_reason == reason  # the reload stopped it before its first batch
        assert runs.finished == [("a", "retry", 0)]
        assert supervisor.scheduler.next_run("a") is None
    finally:
        gate.open()
        supervisor.shutdown(timeout=10)


@pytest.mark.parametrize("new", [REMOVED, DISABLED], ids=["removed", "disabled"])
def test_a_retry_planned_as_the_reload_lands_is_unscheduled_by_it(new):
    runs = GatedRuns(batches=1, statuses=["failed"])
    runs.release.set()
    holder = {"config": BEFORE}
    policy = ParkingPolicy()
    supervisor = make_supervisor(runs, lambda: holder["config"], retry_policy=policy)
    supervisor.start()
    try:
        supervisor.apply(BEFORE)
        policy.gate.arm()
        supervisor.coordinator.request("a", trigger="schedule")  # a tick; the run fails
        reload_racing(supervisor, holder, new, policy.gate)
        assert policy.gate.thread is not None
        policy.gate.thread.join(10)  # the run's thread, done planning its retry
        assert supervisor.scheduler.retry_pending("a") is None
        assert supervisor.scheduler.retry_attempt("a") == 0
        assert supervisor.scheduler.next_run("a") is None
    finally:
        policy.gate.open()
        supervisor.shutdown(timeout=10)
