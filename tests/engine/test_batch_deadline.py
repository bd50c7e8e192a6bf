"""A batch Omnisend never finishes ends the run partial instead of holding it for ever."""

from __future__ import annotations

import pytest

from omnisync.clock import FakeClock
from omnisync.engine.results import RunResult
from omnisync.engine.runner import ExportRunner
from omnisync.omnisend.follower import BATCH_TIMEOUT
from tests.engine.conftest import Setup
from tests.engine.helpers import UPSERTS, emails_of, last_sequence, log_since, people, write_segment


class BoundedClock(FakeClock):
    """A FakeClock that fails a thread sleeping past ``limit``: a run that would poll for
    ever fails the test instead of hanging it."""

    limit = 3_600.0

    def sleep(self, seconds: float) -> None:
        assert self.now() < self.limit, "still waiting after an hour of clock time"
        super().sleep(seconds)


def run(setup: Setup) -> RunResult:
    with setup.store() as store, setup.pool() as pool:
        runner = ExportRunner(setup.config(), store=store, clients=pool, clock=setup.clock)
        return runner.run("members", trigger="test")


@pytest.mark.parametrize("clock", [BoundedClock()])
def test_a_batch_never_finished_is_left_in_flight_and_never_sent_again_blindly(
    setup: Setup, clock: BoundedClock
) -> None:
    write_segment(setup.database, people(10))
    setup.emulator.configure(batch_delay=1e9)  # as `omnisync emulator --batch-delay 1e9`
    before = last_sequence(setup.emulator)
    stuck = run(setup)
    assert (stuck.status, stuck.counts.upserted, stuck.counts.pending) == ("partial", 0, 10)
    with setup.store() as store:
        [batch] = store.inflight_batches("members")  # "maybe sent": for the next run to settle
    assert stuck.error is not None
    assert f"batch {batch.batch_id}: still not done 300 s after its creation" in stuck.error
    assert BATCH_TIMEOUT <= clock.now() < BATCH_TIMEOUT + 10
    sent = emails_of(log_since(setup.emulator, before), UPSERTS)
    assert sorted(batch.emails) == sorted(sent) and len(sent) == 10
    # The next run asks about it first, and sends none of its contacts (nor their
    # consent) again beside a batch that may yet be applied.
    after = last_sequence(setup.emulator)
    waiting = run(setup)
    assert emails_of(log_since(setup.emulator, after), UPSERTS) == {}
    assert (waiting.status, waiting.counts.pending) == ("partial", 10)
    assert waiting.error is not None and "10 contact(s) wait for a batch" in waiting.error
