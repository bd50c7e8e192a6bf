from __future__ import annotations

import logging
import threading

from omnisync.clock import SystemClock
from omnisync.daemon.runs import RunCoordinator, RunOutcome
from omnisync.engine.results import RunCounts
from omnisync.state.store import LeaseLost
from tests.daemon.builders import config, every, export
from tests.daemon.runfunctions import GatedRuns, wait_until


def ignore(record) -> None:
    pass


def make(runs: GatedRuns, current=None, finished=None):
    holder = {"config": current or config(export("a", schedule=every(10)), export("b"))}
    coordinator = RunCoordinator(
        runs,
        config=lambda: holder["config"],
        clock=SystemClock(),
        on_started=ignore,
        on_finished=(finished.append if finished is not None else ignore),
    )
    return coordinator, holder


def test_a_second_start_of_a_running_export_is_refused_but_others_run():
    runs = GatedRuns()
    coordinator, _ = make(runs)
    first = coordinator.start("a", trigger="daemon-trigger")
    assert first is not None and first.to_json()["state"] == "running"
    assert coordinator.start("a", trigger="daemon-trigger") is None
    other = coordinator.start("b", trigger="daemon-trigger")
    assert other is not None
    runs.release.set()
    wait_until(lambda: not coordinator.running(), message="runs to end")
    assert runs.max_active == {"a": 1, "b": 1}
    finished = coordinator.get(first.id)
    assert finished.outcome is not None and finished.outcome.status == "succeeded"
    assert finished.to_json()["counts"] == {"upserted": 30, "invalid": 1}


def test_ticks_during_a_run_coalesce_into_one_follow_up():
    runs = GatedRuns()
    coordinator, _ = make(runs)
    assert coordinator.request("a", trigger="schedule") is not None
    for _ in range(5):
        assert coordinator.request("a", trigger="schedule") is None
    runs.release.set()
    wait_until(
        lambda: len(runs.finished) == 2 and not coordinator.running(), message="follow-up run"
    )
    assert [trigger for _, trigger, _ in runs.started] == ["schedule", "schedule"]
    assert runs.max_active == {"a": 1}


def test_stop_ends_the_run_at_a_batch_boundary_and_rerun_uses_the_new_config():
    runs = GatedRuns(batches=1000, batch_seconds=0.005)
    coordinator, holder = make(runs)
    runs.release.set()
    record = coordinator.start("a", trigger="schedule")
    wait_until(lambda: runs.started, message="run start")
    holder["config"] = config(export("a", schedule=every(10)), revision="r2")
    assert coordinator.stop("a", reason="changed", rerun=True)
    wait_until(lambda: len(runs.started) == 2, message="rerun")
    assert coordinator.shutdown(timeout=10)
    first = coordinator.get(record.id)
    assert first.stop_reason == "changed"
    assert runs.finished[0][2] < 1000  # stopped early
    assert runs.started[1][1:] == ("reload", "r2")


def test_stopping_a_removed_export_does_not_rerun_it():
    runs = GatedRuns(batches=1000, batch_seconds=0.005)
    coordinator, holder = make(runs)
    runs.release.set()
    coordinator.start("a", trigger="schedule")
    coordinator.request("a", trigger="schedule")  # a coalesced tick must not resurrect it either
    wait_until(lambda: runs.started, message="run start")
    holder["config"] = config(export("b"), revision="r2")
    coordinator.stop("a", reason="removed")
    wait_until(lambda: not coordinator.running(), message="stop")
    assert len(runs.started) == 1


def test_a_crashing_run_function_is_a_failed_run():
    def crash(config, export, *, trigger, stop, progress):
        raise RuntimeError("disk on fire")

    finished = []
    coordinator = RunCoordinator(
        crash,
        config=lambda: config(export("a")),
        clock=SystemClock(),
        on_started=ignore,
        on_finished=finished.append,
    )
    started = coordinator.start("a", trigger="schedule")
    wait_until(lambda: finished, message="the run to end")
    record = coordinator.get(started.id)
    assert record.outcome == RunOutcome(status="failed", error="RuntimeError: disk on fire")
    assert finished == [record]
    assert not coordinator.running()


def test_a_lost_lease_or_store_is_a_failed_run_said_in_one_line(caplog):
    def fenced(config, export, *, trigger, stop, progress):
        raise LeaseLost("brand b is now held by replica-2 (token 2)")

    finished = []
    coordinator = RunCoordinator(
        fenced,
        config=lambda: config(export("a")),
        clock=SystemClock(),
        on_started=ignore,
        on_finished=finished.append,
    )
    with caplog.at_level(logging.WARNING, logger="omnisync.daemon"):
        coordinator.start("a", trigger="schedule")
        wait_until(lambda: finished, message="the run to end")
    [record] = finished
    assert record.outcome.status == "failed" and "LeaseLost" in record.outcome.error
    [logged] = [r for r in caplog.records if getattr(r, "event", "").startswith("run_")]
    assert (logged.event, logged.levelno, logged.exc_info) == (
        "run_state_failed",
        logging.WARNING,
        None,
    )


def test_shutdown_stops_runs_and_refuses_new_ones():
    runs = GatedRuns(batches=10_000, batch_seconds=0.005)
    coordinator, _ = make(runs)
    runs.release.set()
    coordinator.start("a", trigger="schedule")
    wait_until(lambda: runs.started, message="run start")
    assert coordinator.shutdown(timeout=10)
    assert coordinator.start("b", trigger="daemon-trigger") is None
    assert runs.finished[0][2] < 10_000


def test_shutdown_gives_up_after_the_timeout():
    blocker = threading.Event()

    def stubborn(config, export, *, trigger, stop, progress):
        blocker.wait(30)
        return RunOutcome(status="succeeded")

    coordinator = RunCoordinator(
        stubborn,
        config=lambda: config(export("a")),
        clock=SystemClock(),
        on_started=ignore,
        on_finished=ignore,
    )
    coordinator.start("a", trigger="schedule")
    assert coordinator.shutdown(timeout=0.2) is False
    blocker.set()


def test_a_run_in_flight_shows_its_live_phase_counts_and_history_id():
    runs = GatedRuns(batches=2)
    coordinator, _ = make(runs)
    started = coordinator.start("a", trigger="daemon-trigger")
    live = wait_until(
        lambda: (doc := coordinator.get(started.id).to_json())["phase"] == "applying" and doc,
        message="the run to report its phase",
    )
    assert (live["state"], live["history_id"]) == ("running", "h1")
    assert live["counts"] == RunCounts().as_dict()
    assert coordinator.running()["a"].to_json()["phase"] == "applying"  # /status shows it too
    runs.release.set()
    wait_until(lambda: not coordinator.running(), message="the run to end")
    done = coordinator.get(started.id).to_json()
    assert (done["phase"], done["history_id"]) == ("finished", "h1")
    assert done["counts"] == {"upserted": 20, "invalid": 1}
