"""The worker: work runs once the (fake) clock reaches its time, in modelled-time order."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from omnisync.clock import FakeClock
from omnisync.emulator.state import Worker


@pytest.fixture
def worker(fake_clock: FakeClock) -> Iterator[Worker]:
    running = Worker(fake_clock)
    running.start()
    yield running
    running.stop()


def test_work_runs_when_the_clock_reaches_it_in_modelled_time_order(
    worker: Worker, fake_clock: FakeClock
) -> None:
    ran: list[str] = []
    worker.schedule(10.0, lambda: ran.append("last"))
    worker.schedule(0.0, lambda: ran.append("first"))
    worker.schedule(5.0, lambda: ran.append("third"))
    worker.schedule(0.0, lambda: ran.append("second"))  # same time: in the order scheduled
    assert worker.wait_idle(5.0, due_only=True)
    assert ran == ["first", "second"]
    assert worker.wait_idle(0.0) is False  # two pieces still queued
    fake_clock.advance(4.9)
    assert worker.wait_idle(5.0, due_only=True)
    assert ran == ["first", "second"]
    fake_clock.advance(0.1)
    assert worker.wait_idle(5.0, due_only=True)
    assert ran == ["first", "second", "third"]
    fake_clock.advance(5.0)
    assert worker.wait_idle(5.0)
    assert ran == ["first", "second", "third", "last"]


def test_a_failing_piece_of_work_does_not_stop_the_others(worker: Worker) -> None:
    ran: list[str] = []

    def broken() -> None:
        raise RuntimeError("a bug in one piece of work")

    worker.schedule(0.0, broken)
    worker.schedule(0.0, lambda: ran.append("after"))
    assert worker.wait_idle(5.0)
    assert ran == ["after"]


def test_work_waits_for_a_started_worker_and_clear_drops_it(fake_clock: FakeClock) -> None:
    idle = Worker(fake_clock)  # never started
    ran: list[str] = []
    idle.schedule(0.0, lambda: ran.append("never"))
    assert idle.wait_idle(0.0) is False
    idle.clear()
    assert idle.wait_idle(0.0)
    assert ran == []


def test_stop_drops_the_work_not_yet_due(worker: Worker, fake_clock: FakeClock) -> None:
    ran: list[str] = []
    worker.schedule(1.0, lambda: ran.append("later"))
    worker.stop()
    fake_clock.advance(1.0)
    assert worker.wait_idle(0.0, due_only=True) is False  # due, but nobody runs it
    assert ran == []
