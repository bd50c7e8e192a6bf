"""A full resync stopped part way (a stop, a crash): what it did not send is the next run's,
whatever that run's trigger, as the run's "left for the next run" says."""

from __future__ import annotations

import threading

from omnisync.engine.results import Phase, RunCounts
from omnisync.engine.runner import ExportRunner
from tests.engine.conftest import Setup
from tests.engine.helpers import (
    TAG_ADDS,
    UPSERTS,
    emails_of,
    last_sequence,
    log_since,
    people,
    write_segment,
)


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


def test_the_rest_of_a_stopped_full_resync_is_sent_by_the_next_run(setup: Setup) -> None:
    write_segment(setup.database, people(120))
    assert run(setup).status == "succeeded"
    assert setup.emulator.drain()
    # Omnisend lost a tag behind omnisync's back: a full resync is how one puts it back.
    assert setup.emulator.remove_tags(["person7@example.com"], ["members"]) == 1
    consents = len(setup.emulator.status_changes())

    stop = threading.Event()
    stopped = run(setup, full=True, stop=stop, progress=StopWhenApplying(stop))
    assert stopped.status == "partial", stopped.error
    assert stopped.counts.pending == 120  # every member: left for the next run

    before = last_sequence(setup.emulator)
    following = run(setup)  # not asked for a resync: it finishes the stopped one
    assert following.status == "succeeded", following.error
    assert (following.counts.upserted, following.counts.tagged) == (120, 120)
    log = log_since(setup.emulator, before)
    members = {f"person{number}@example.com" for number in range(120)}
    assert set(emails_of(log, UPSERTS)) == set(emails_of(log, TAG_ADDS)) == members
    assert setup.emulator.drain()
    assert setup.emulator.contact("person7@example.com")["tags"] == ["members"]
    assert len(setup.emulator.status_changes()) == consents  # never a consent again
    assert run(setup).counts.upserted == 0  # and then nothing is left
