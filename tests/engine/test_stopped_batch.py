"""A batch Omnisend stops (more than half of it refused) does not hold back the valid
contacts behind the refusals: its unprocessed leftovers are sent again, on their own."""

from __future__ import annotations

import threading

from omnisync.emulator import Faults
from omnisync.engine.results import Phase, RunCounts, RunResult
from omnisync.engine.runner import ExportRunner
from tests.engine.conftest import Setup
from tests.engine.helpers import (
    UPSERTS,
    emails_of,
    last_sequence,
    log_since,
    people,
    person,
    write_segment,
)

#: Refused by Omnisend itself (the emulator's fault), not by local validation: six of
#: the batch's ten items, the first ones, so that it stops before the last four.
REFUSED = frozenset(f"person{number}@example.com" for number in range(6))
BEHIND = frozenset(f"person{number}@example.com" for number in range(6, 10))


def run(setup: Setup, **options: object) -> RunResult:
    with setup.store() as store, setup.pool() as pool:
        runner = ExportRunner(setup.config(), store=store, clients=pool, clock=setup.clock)
        return runner.run("members", trigger="test", **options)  # type: ignore[arg-type]


def created_batches(setup: Setup, since: int) -> list[list[str]]:
    """The e-mails of each batch Omnisend created since ``since``, sorted."""
    log = log_since(setup.emulator, since)
    return [sorted(r.emails) for r in log if r.endpoint == UPSERTS and r.status == 201]


class OnRefusals:
    """Calls ``then`` once Omnisend refused ``count`` contacts: in the poll round that
    found them, before their batch's leftovers are sent again."""

    def __init__(self, count: int, then: object) -> None:
        self.count, self.then, self.done = count, then, False

    def phase_started(self, phase: Phase, counts: RunCounts) -> None:
        pass

    def counts_updated(self, counts: RunCounts) -> None:
        if counts.upsert_failed >= self.count and not self.done:
            self.done = True
            self.then()  # type: ignore[operator]


def test_the_valid_contacts_behind_a_stopped_batch_are_delivered_in_the_same_run(
    setup: Setup,
) -> None:
    write_segment(setup.database, people(10))
    setup.emulator.set_faults(failing_emails=REFUSED)
    for _ in range(2):  # a second run changes nothing: the refused are refused again
        before = last_sequence(setup.emulator)
        result = run(setup)
        assert result.status == "partial", result.error
        assert setup.emulator.drain()
        assert {c["email"] for c in setup.emulator.contacts()} == BEHIND
        with setup.store() as store:
            assert {entry.email for entry in store.entries("members")} == BEHIND
            assert store.inflight_batches("members") == store.intents("members") == []
    # The second run sent only the refused ones again (four of them stop their batch
    # too, and the two behind are sent again alone), each counted refused once.
    assert set(emails_of(log_since(setup.emulator, before), UPSERTS)) == REFUSED
    counts = result.counts
    assert (counts.upserted, counts.upsert_failed, counts.pending, counts.batches) == (0, 6, 6, 2)


def test_leftovers_are_sent_again_once_with_their_consent_and_counted_once(
    setup: Setup,
) -> None:
    write_segment(setup.database, people(10))
    setup.emulator.set_faults(failing_emails=REFUSED)
    before = last_sequence(setup.emulator)
    result = run(setup)
    # Two batches: the stopped one (all ten), and its four leftovers alone.
    assert created_batches(setup, before) == [sorted(REFUSED | BEHIND), sorted(BEHIND)]
    counts = result.counts
    assert (counts.to_create, counts.upserted, counts.upsert_failed) == (10, 4, 6)
    assert (counts.batches, counts.pending, counts.tagged) == (2, 6, 4)
    assert setup.emulator.drain()
    for email in BEHIND:
        contact = setup.emulator.contact(email)
        assert contact is not None and contact["tags"] == ["members"]
        assert len(contact["consents"]) == 1  # processed once: one consent record
    setup.emulator.set_faults(failing_emails=frozenset())
    assert run(setup).status == "succeeded"
    assert setup.emulator.contact_count() == 10


def test_leftovers_whose_own_batch_stops_are_sent_again_while_each_batch_shrinks(
    setup: Setup,
) -> None:
    # Twelve: seven refused stop the batch (more than half); of the five leftovers three
    # are refused and stop that batch too; the last two are sent alone, and delivered.
    rows = [person(number, email=f"p{number:02d}@example.com") for number in range(12)]
    write_segment(setup.database, rows)
    refused = frozenset(f"p{number:02d}@example.com" for number in range(10))
    setup.emulator.set_faults(failing_emails=refused)
    before = last_sequence(setup.emulator)
    result = run(setup)
    assert [len(emails) for emails in created_batches(setup, before)] == [12, 5, 2]
    counts = result.counts
    assert (counts.upserted, counts.upsert_failed, counts.batches) == (2, 10, 3)
    assert setup.emulator.drain()
    assert {c["email"] for c in setup.emulator.contacts()} == {"p10@example.com", "p11@example.com"}


def test_leftovers_whose_batch_may_have_been_created_keep_their_intent(setup: Setup) -> None:
    """Sent again through the path of any batch: an intent before the request, kept when
    its answer is lost (they carry consent: not retried), and looked up by the next run."""
    write_segment(setup.database, people(10))
    setup.emulator.set_faults(failing_emails=REFUSED)

    def lose_the_next_batch_answers() -> None:
        setup.emulator.set_faults(
            drop_rate=1.0, drop_after_processing=True, only_endpoints=frozenset({UPSERTS})
        )

    before = last_sequence(setup.emulator)
    result = run(setup, progress=OnRefusals(6, lose_the_next_batch_answers))
    assert result.status == "partial"
    assert result.counts.upserted == 0 and result.counts.pending == 10
    assert len(created_batches(setup, before)) == 1  # the second one's answer was lost
    with setup.store() as store:
        [intent] = store.intents("members")
        assert set(intent.emails) == BEHIND
        assert store.inflight_batches("members") == []  # out of the stopped batch
    setup.emulator.set_faults(Faults())
    assert setup.emulator.drain()
    after = last_sequence(setup.emulator)
    assert run(setup).status == "succeeded"
    log = log_since(setup.emulator, after)
    assert sum(r.endpoint == "GET /contacts" for r in log) == len(BEHIND)
    assert setup.emulator.drain()
    assert [len(c["consents"]) for c in setup.emulator.contacts()] == [1] * 10
    with setup.store() as store:
        assert store.intents("members") == [] and store.count_entries("members") == 10


def test_a_stop_sends_no_leftovers_and_the_next_run_delivers_them(setup: Setup) -> None:
    write_segment(setup.database, people(10))
    setup.emulator.set_faults(failing_emails=REFUSED)
    stop = threading.Event()
    before = last_sequence(setup.emulator)
    stopped = run(setup, stop=stop, progress=OnRefusals(1, stop.set))
    assert stopped.status == "partial" and stopped.stopped
    assert len(created_batches(setup, before)) == 1
    assert stopped.counts.pending == 10
    setup.emulator.set_faults(Faults())
    assert run(setup).status == "succeeded"
    assert setup.emulator.drain()
    assert [len(c["consents"]) for c in setup.emulator.contacts()] == [1] * 10
    with setup.store() as store:
        assert store.inflight_batches("members") == store.intents("members") == []
