"""The progress a run reports, as the CLI's progress bar draws it."""

from __future__ import annotations

import io

from rich.console import Console
from rich.progress import Progress

from omnisync.cli.export import BarProgress
from omnisync.engine.results import RunCounts
from omnisync.engine.runner import ExportRunner
from tests.engine.conftest import Setup
from tests.engine.helpers import execute, people, write_segment


class Recording:
    """A RunProgress that keeps every call, to check the protocol's order."""

    def __init__(self) -> None:
        self.phases: list[str] = []
        self.updates: list[RunCounts] = []

    def phase_started(self, phase: str, counts: RunCounts) -> None:
        self.phases.append(phase)

    def counts_updated(self, counts: RunCounts) -> None:
        self.updates.append(counts)


def test_a_run_reports_its_phases_and_growing_counts(setup: Setup) -> None:
    write_segment(setup.database, people(600))
    recording = Recording()
    with setup.store() as store, setup.pool() as pool:
        runner = ExportRunner(setup.config(), store=store, clients=pool, clock=setup.clock)
        result = runner.run("members", trigger="test", progress=recording)
        assert recording.phases == ["checking", "staging", "applying", "finished"]
        upserted = [counts.upserted for counts in recording.updates]
        assert upserted == sorted(upserted) and upserted[-1] == 600
        assert recording.updates[-1].tagged == result.counts.tagged == 600
        # A killed run's leftovers add the settling phase.
        store.record_intent("members", "token", [], now=setup.clock.wall())
        execute(setup.database, "UPDATE people SET city = 'Odesa' WHERE id < 10")
        again = Recording()
        runner.run("members", trigger="test", progress=again)
        assert again.phases == ["checking", "settling", "staging", "applying", "finished"]


def test_the_bar_follows_a_real_run(setup: Setup) -> None:
    write_segment(setup.database, people(300))
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100)
    with Progress(console=console) as progress:
        bar = BarProgress(progress)
        with setup.store() as store, setup.pool() as pool:
            runner = ExportRunner(setup.config(), store=store, clients=pool, clock=setup.clock)
            runner.run("members", trigger="test", progress=bar)
        tasks = {task.description: task for task in progress.tasks}
    assert set(tasks) == {"done", "contacts upserted", "tag changes"}
    assert (tasks["contacts upserted"].completed, tasks["contacts upserted"].total) == (300, 300)
    assert (tasks["tag changes"].completed, tasks["tag changes"].total) == (300, 300)
    assert "contacts upserted" in screen.getvalue()
