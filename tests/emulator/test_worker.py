"""The worker: modelled-time order, and who runs work that is due (Worker.run_due)."""

from __future__ import annotations

import threading

from omnisync.clock import FakeClock, SystemClock
from omnisync.emulator.worker import Worker


def test_due_work_scheduled_without_waking_is_run_by_run_due_in_order() -> None:
    clock = FakeClock()
    worker = Worker(clock)
    worker.start()
    try:
        ran: list[str] = []
        worker.schedule(0.0, lambda: ran.append("first"), wake=False)
        worker.schedule(0.0, lambda: ran.append("second"), wake=False)
        worker.schedule(5.0, lambda: ran.append("later"), wake=False)
        worker.run_due()
        assert worker.wait_idle(5.0, due_only=True)
        assert ran[:2] == ["first", "second"]
        clock.advance(5.0)
        assert worker.wait_idle(5.0)
        assert ran == ["first", "second", "later"]
    finally:
        worker.stop()


def test_the_worker_is_woken_only_for_the_next_work_to_come() -> None:
    clock = FakeClock()
    worker = Worker(clock)  # not started: only its wake-ups are watched
    wake_ups: list[float] = []
    notify_all = worker._condition.notify_all

    def counted() -> None:
        wake_ups.append(clock.now())
        notify_all()

    worker._condition.notify_all = counted  # type: ignore[method-assign]
    worker.schedule(0.0, lambda: None, wake=False)  # due: left to run_due
    assert wake_ups == []
    worker.schedule(0.0, lambda: None)  # due, but the caller does not promise run_due
    assert len(wake_ups) == 0  # not the next: the first one is
    worker.clear()
    worker.schedule(0.0, lambda: None)
    worker.schedule(3.0, lambda: None, wake=False)  # after work already waited for
    assert len(wake_ups) == 1
    worker.clear()
    worker.schedule(3.0, lambda: None, wake=False)  # the next to come: wake
    worker.schedule(2.0, lambda: None, wake=False)  # sooner still: wake again
    assert len(wake_ups) == 3


def test_work_to_come_runs_on_time_without_run_due() -> None:
    worker = Worker(SystemClock())
    worker.start()
    try:
        done = threading.Event()
        worker.schedule(SystemClock().now() + 0.02, done.set, wake=False)
        assert done.wait(5.0)
    finally:
        worker.stop()
