"""A full resync stopped part way (a stop, a crash) says what it did not send and how to
finish: no later run is a resync unless asked (a resync kept for the next run would be
re-guarded as a change of every member, and hold every run after it)."""

from __future__ import annotations

import threading

from omnisync.engine.results import Phase, RunCounts
from omnisync.engine.run_render import render_text
from omnisync.engine.runner import ExportRunner
from tests.engine.conftest import Setup
from tests.engine.helpers import people, write_segment


class StopWhenApplying:
    """Sets ``stop`` as the run starts to send: nothing new is sent from then on."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop

    def phase_started(self, phase: Phase, counts: RunCounts) -> None:
        if phase == "applying":
            self.stop.set()

    def counts_updated(self, counts: RunCounts) -> None:
        pass


def run(setup: Setup, **options: object):  # type: ignore[no-untyped-def]
    with setup.store() as store, setup.pool() as pool:
        runner = ExportRunner(setup.config(), store=store, clients=pool, clock=setup.clock)
        return runner.run("members", trigger="test", **options)  # type: ignore[arg-type]


def test_a_stopped_full_resync_says_to_run_it_again_and_a_second_one_finishes(
    setup: Setup,
) -> None:
    write_segment(setup.database, people(120))
    assert run(setup).status == "succeeded"
    assert setup.emulator.drain()
    # Omnisend lost a tag behind omnisync's back: a full resync is how one puts it back.
    assert setup.emulator.remove_tags(["person7@example.com"], ["members"]) == 1

    stop = threading.Event()
    stopped = run(setup, full=True, stop=stop, progress=StopWhenApplying(stop))
    assert (stopped.status, stopped.full, stopped.counts.pending) == ("partial", True, 120)
    assert stopped.error is not None
    assert "120 operation(s) of the full resync not sent" in stopped.error
    assert "run it again with --full to finish" in stopped.error
    summary = render_text(stopped)
    assert "not sent (run the full resync again to finish): 120 operation(s)" in summary
    assert "left for the next run" not in summary

    # An ordinary run is no resync: nothing changed, nothing is sent (and nothing held).
    ordinary = run(setup)
    assert (ordinary.status, ordinary.counts.upserted, ordinary.counts.tagged) == (
        "succeeded",
        0,
        0,
    )
    finished = run(setup, full=True)
    assert (finished.status, finished.counts.upserted) == ("succeeded", 120), finished.error
    assert setup.emulator.drain()
    assert setup.emulator.contact("person7@example.com")["tags"] == ["members"]
