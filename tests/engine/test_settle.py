"""What a killed run leaves in flight is settled before the next run plans anything."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest

from omnisync.clock import FakeClock
from omnisync.contact import ContactWrite
from omnisync.emulator import Faults
from omnisync.engine.results import RunResult
from omnisync.engine.runner import ExportRunner
from omnisync.mapping import MappingPlan
from omnisync.state import InflightItem
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
from tests.omnisend.conftest import encoded


def run(setup: Setup) -> RunResult:
    with setup.store() as store, setup.pool() as pool:
        runner = ExportRunner(setup.config(), store=store, clients=pool, clock=setup.clock)
        return runner.run("members", trigger="test")


def writes_for(setup: Setup, numbers: range) -> list[ContactWrite]:
    export = setup.config().exports["members"]
    found = []
    for number in numbers:
        p = person(number)
        row = {
            "email": p.email, "first_name": p.first_name, "last_name": p.last_name,
            "city": p.city, "country": p.country, "status": p.status, "status_at": p.status_at,
        }  # fmt: skip
        write = MappingPlan(export).map_row(row, in_ledger=False).result
        assert isinstance(write, ContactWrite)
        found.append(write)
    return found


def fingerprints(setup: Setup) -> dict[str, int]:
    """What the diff computes for each member, read from a plan-free staging."""
    from omnisync.engine.staging import stage_export

    config = setup.config()
    # An empty ledger (a state directory of its own): every member is work.
    empty = replace(config, daemon=replace(config.daemon, state_dir=str(setup.state_dir / "x")))
    with stage_export(empty, "members") as staged:
        return {item.email: item.fingerprint for item in staged.work()}


def died_while_creating(setup: Setup, prints: dict[str, int]) -> None:
    """A batch of persons 0-9 sent, consent and all, by a process that died before it
    recorded the batch's id: only its intent (token-a) is left."""
    with setup.pool() as pool, setup.store() as store:
        client = pool.client_for(setup.config().connections["shop"])
        client.create_batch(encoded(writes_for(setup, range(10))))
        sent = [
            InflightItem(f"person{number}@example.com", prints[f"person{number}@example.com"], True)
            for number in range(10)
        ]
        store.record_intent("members", "token-a", sent, now=setup.clock.wall())
    assert setup.emulator.drain()


def died_after_creating(setup: Setup, writes: list[ContactWrite], items: list[InflightItem]) -> str:
    """A batch of ``writes`` Omnisend created for a process that died before it learnt
    the outcome: in flight under its id (``items``, what the ledger will record); the id."""
    with setup.pool() as pool, setup.store() as store:
        batch_id = pool.client_for(setup.config().connections["shop"]).create_batch(encoded(writes))
        store.record_intent("members", "intent-1", items, now=setup.clock.wall())
        store.record_created("members", "intent-1", batch_id, now=setup.clock.wall())
    return batch_id


def test_batches_a_killed_run_created_are_recorded_not_sent_again(setup: Setup) -> None:
    write_segment(setup.database, people(30))
    prints = fingerprints(setup)
    items = [InflightItem(f"person{n}@example.com", prints[f"person{n}@example.com"], True)
             for n in range(10)]  # fmt: skip
    died_after_creating(setup, writes_for(setup, range(10)), items)
    before = last_sequence(setup.emulator)
    result = run(setup)
    assert result.status == "succeeded", result.error
    assert result.counts.settled == 10
    sent = emails_of(log_since(setup.emulator, before), UPSERTS)
    assert set(sent) == {f"person{n}@example.com" for n in range(10, 30)}
    assert result.counts.tagged == 30  # the settled ones still needed their tag
    with setup.store() as store:
        assert store.inflight_batches("members") == []
        assert store.count_entries("members", tagged=True) == 30


# The fixtures' clock made a FakeClock: a week passes at once, for the emulator and omnisync.
@pytest.mark.parametrize("clock", [FakeClock()])
def test_a_batch_omnisend_forgot_before_it_was_settled_is_sent_again_without_repeating_consent(
    setup: Setup, clock: FakeClock
) -> None:
    """Omnisend may have applied the batch before it forgot it: its contacts are looked
    up like a killed run's intent, and none gets a second consent record."""
    write_segment(setup.database, people(10))
    prints = fingerprints(setup)
    items = [InflightItem(email, fingerprint, True) for email, fingerprint in prints.items()]
    batch_id = died_after_creating(setup, writes_for(setup, range(10)), items)
    clock.advance(setup.emulator.settings.batch_retention)  # the next run comes a week later
    before = last_sequence(setup.emulator)
    result = run(setup)
    assert (result.status, result.counts.settled) == ("succeeded", 0), result.error
    log = log_since(setup.emulator, before)
    assert [(r.endpoint, r.status) for r in log if batch_id in r.path] == [
        ("GET /batches/{batchID}", 404)
    ]
    # Nothing known: all of its contacts sent again, each looked up first.
    assert emails_of(log, UPSERTS) == dict.fromkeys(prints, 1)
    assert sum(r.endpoint == "GET /contacts" for r in log) == 10
    # What is due is applied (drain() would wait out its timeout: this clock stands still).
    assert setup.emulator.settle()
    assert [len(contact["consents"]) for contact in setup.emulator.contacts()] == [1] * 10
    with setup.store() as store:
        assert store.inflight_batches("members") == [] and store.count_entries("members") == 10
        assert store.intents("members") == []


def test_refused_items_of_a_killed_runs_batch_are_sent_again(setup: Setup) -> None:
    write_segment(setup.database, people(5))
    prints = fingerprints(setup)
    setup.emulator.set_faults(failing_emails=frozenset({"person1@example.com"}))
    items = [InflightItem(e, prints[e], True) for e in sorted(prints)]
    died_after_creating(setup, writes_for(setup, range(5)), items)
    assert setup.emulator.drain()  # processed while the fault was on
    setup.emulator.set_faults(failing_emails=frozenset())
    before = last_sequence(setup.emulator)
    result = run(setup)
    assert (result.status, result.counts.settled) == ("succeeded", 4)
    assert emails_of(log_since(setup.emulator, before), UPSERTS) == {"person1@example.com": 1}


def test_a_batch_being_created_when_the_run_died_does_not_repeat_consent(setup: Setup) -> None:
    write_segment(setup.database, people(20))
    prints = fingerprints(setup)
    with setup.pool() as pool, setup.store() as store:
        client = pool.client_for(setup.config().connections["shop"])
        # Sent, but the process died before it could record the batch's id ...
        client.create_batch(encoded(writes_for(setup, range(10))))
        sent = [InflightItem(f"person{n}@example.com", prints[f"person{n}@example.com"], True)
                for n in range(10)]  # fmt: skip
        store.record_intent("members", "token-a", sent, now=setup.clock.wall())
        # ... and another batch it never got to send.
        unsent = [InflightItem(f"person{n}@example.com", prints[f"person{n}@example.com"], True)
                  for n in range(10, 20)]  # fmt: skip
        store.record_intent("members", "token-b", unsent, now=setup.clock.wall())
    assert setup.emulator.drain()
    before = last_sequence(setup.emulator)
    result = run(setup)
    assert result.status == "succeeded", result.error
    log = log_since(setup.emulator, before)
    # Nobody knows what became of them: all are sent (again), after a look.
    assert set(emails_of(log, UPSERTS)) == {f"person{n}@example.com" for n in range(20)}
    assert sum(1 for record in log if record.endpoint == "GET /contacts") == 20
    setup.emulator.drain()
    for number in range(20):
        contact = setup.emulator.contact(f"person{number}@example.com")
        assert contact is not None
        assert len(contact["consents"]) == 1, contact
        assert contact["status"] == "subscribed" and contact["tags"] == ["members"]
    with setup.store() as store:
        assert store.inflight_batches("members") == [] and store.intents("members") == []


def test_maybe_sent_contacts_are_still_looked_up_after_a_run_that_sent_nothing(
    setup: Setup,
) -> None:
    write_segment(setup.database, people(10))
    prints = fingerprints(setup)
    died_while_creating(setup, prints)
    setup.rewrite(guards="{min_members: 100}")
    held = run(setup)
    assert held.status == "held", held.error
    with setup.store() as store:
        assert [intent.batch_id for intent in store.intents("members")] == ["token-a"]
    setup.rewrite()
    before = last_sequence(setup.emulator)
    result = run(setup)
    assert result.status == "succeeded", result.error
    log = log_since(setup.emulator, before)
    assert sum(1 for record in log if record.endpoint == "GET /contacts") == 10
    setup.emulator.drain()
    for email in prints:
        contact = setup.emulator.contact(email)
        assert contact is not None and len(contact["consents"]) == 1, contact
    with setup.store() as store:
        assert store.intents("members") == []


def test_contacts_of_a_batch_omnisend_has_not_finished_wait_for_it(setup: Setup) -> None:
    write_segment(setup.database, people(10))
    prints = fingerprints(setup)
    # Longer than the runner waits while settling (300 s): the batch outlives it.
    setup.emulator.configure(batch_delay=420.0)
    with setup.pool() as pool, setup.store() as store:
        client = pool.client_for(setup.config().connections["shop"])
        batch_id = client.create_batch(encoded(writes_for(setup, range(10))))
        sent = [InflightItem(email, fingerprint, True) for email, fingerprint in prints.items()]
        store.record_intent("members", "token-a", sent, now=setup.clock.wall())
        store.record_created("members", "token-a", batch_id, now=setup.clock.wall())
    setup.emulator.configure(batch_delay=0.2)
    before = last_sequence(setup.emulator)
    waiting = run(setup)
    # Not sent again beside a batch that may still be applied, consent and all.
    assert emails_of(log_since(setup.emulator, before), UPSERTS) == {}
    assert (waiting.status, waiting.counts.to_create, waiting.counts.pending) == ("partial", 10, 10)
    assert waiting.error is not None and "10 contact(s) wait for a batch" in waiting.error
    assert setup.emulator.drain()
    finished = run(setup)
    assert (finished.status, finished.counts.settled) == ("succeeded", 10), finished.error
    assert emails_of(log_since(setup.emulator, before), UPSERTS) == {}
    for email in prints:
        contact = setup.emulator.contact(email)
        assert contact is not None and len(contact["consents"]) == 1, contact


def test_a_batch_whose_answer_was_lost_is_not_sent_again_with_its_consent(
    setup: Setup,
) -> None:
    write_segment(setup.database, people(300))
    setup.emulator.set_faults(
        Faults(
            drop_rate=0.5,
            drop_after_processing=True,
            only_endpoints=frozenset({UPSERTS}),
            seed=3,
        )
    )
    before = last_sequence(setup.emulator)
    lossy = run(setup)
    log = log_since(setup.emulator, before)
    sent: Counter[str] = Counter()
    for record in log:
        if record.endpoint == UPSERTS:
            sent.update(record.emails)
    assert any(record.status is None for record in log if record.endpoint == UPSERTS)
    # Each consent record went out once: a batch that may exist is not sent again ...
    assert sent and max(sent.values()) == 1
    assert lossy.status == "partial" and lossy.counts.pending > 0, lossy.error
    setup.emulator.set_faults(Faults())
    assert setup.emulator.drain()
    # ... its contacts are looked up by the next run, which sends them without it.
    before = last_sequence(setup.emulator)
    finished = run(setup)
    assert finished.status == "succeeded", finished.error
    log = log_since(setup.emulator, before)
    looked_up = sum(1 for record in log if record.endpoint == "GET /contacts")
    assert looked_up == len(sent) - lossy.counts.upserted
    with setup.store() as store:
        assert store.intents("members") == [] and store.count_entries("members") == 300


def test_a_run_whose_consent_batches_keep_losing_their_answers_gives_up(setup: Setup) -> None:
    write_segment(setup.database, people(1000))
    setup.emulator.set_faults(
        Faults(drop_rate=1.0, drop_after_processing=True, only_endpoints=frozenset({UPSERTS}))
    )
    before = last_sequence(setup.emulator)
    result = run(setup)
    assert result.status == "failed" and "could not reach Omnisend" in (result.error or "")
    sent: Counter[str] = Counter()
    for record in log_since(setup.emulator, before):
        if record.endpoint == UPSERTS:
            sent.update(record.emails)
    # Gave up after MAX_UNCERTAIN_BATCHES (8) in a row, each sent once.
    assert len(sent) <= 8 * 100 + 2 * 100 and max(sent.values()) == 1


def test_a_maybe_sent_contact_out_of_the_segment_for_a_while_is_still_looked_up(
    setup: Setup,
) -> None:
    write_segment(setup.database, people(10))
    prints = fingerprints(setup)
    died_while_creating(setup, prints)
    write_segment(setup.database, people(9, start=1))  # person0 is out for now
    assert run(setup).status == "succeeded"
    with setup.store() as store:
        [intent] = store.intents("members")
        assert intent.emails == ("person0@example.com",)  # the nine it recorded are out
    write_segment(setup.database, people(10))  # and back
    before = last_sequence(setup.emulator)
    assert run(setup).status == "succeeded"
    log = log_since(setup.emulator, before)
    # One look, for person0: the nine others were recorded the run before.
    assert sum(1 for record in log if record.endpoint == "GET /contacts") == 1
    with setup.store() as store:
        assert store.intents("members") == []


def test_an_intent_goes_once_its_contacts_are_recorded_whatever_else_is_pending(
    setup: Setup,
) -> None:
    write_segment(setup.database, people(12))
    prints = fingerprints(setup)
    died_while_creating(setup, prints)
    # An unrelated contact Omnisend refuses on every run keeps the run partial.
    setup.emulator.set_faults(failing_emails=frozenset({"person11@example.com"}))
    result = run(setup)
    assert result.status == "partial" and result.counts.pending == 1, result.error
    with setup.store() as store:
        assert store.intents("members") == []


@pytest.mark.parametrize("clock", [FakeClock()])
def test_contacts_delivered_before_a_forgotten_batch_are_sent_again(
    setup: Setup, clock: FakeClock
) -> None:
    """Which version a forgotten update left in Omnisend nobody knows: the next run sends
    its contacts again (never a consent: they were delivered before), which also clears
    them from the intent, so drift sees them again."""
    write_segment(setup.database, people(3))
    assert run(setup).status == "succeeded"
    prints = fingerprints(setup)
    # An update a killed run sent: another fingerprint than the source's today.
    items = [InflightItem(email, print_ + 1, False) for email, print_ in prints.items()]
    died_after_creating(setup, writes_for(setup, range(3)), items)
    assert setup.emulator.settle()  # drain() would wait out its timeout: the clock stands still
    clock.advance(setup.emulator.settings.batch_retention)
    before = last_sequence(setup.emulator)
    assert run(setup).counts.upserted == 3
    assert emails_of(log_since(setup.emulator, before), UPSERTS) == dict.fromkeys(prints, 1)
    with setup.store() as store:
        assert store.intents("members") == [] and store.inflight_batches("members") == []
    assert run(setup).counts.unchanged == 3


def test_a_maybe_sent_update_is_sent_again_when_the_source_goes_back(setup: Setup) -> None:
    """A killed run's update may be in Omnisend; if the source then returns to what the
    ledger holds, the diff sees nothing to send, and Omnisend kept the other version."""
    write_segment(setup.database, people(3))
    assert run(setup).status == "succeeded"
    prints = fingerprints(setup)
    changed = [
        replace(write, fields={**write.fields, "city": "Elsewhere"})
        for write in writes_for(setup, range(3))
    ]
    with setup.pool() as pool, setup.store() as store:
        items = [InflightItem(email, print_ + 1, True) for email, print_ in prints.items()]
        store.record_intent("members", "intent-1", items, now=setup.clock.wall())
        # Killed after the request left, before Omnisend's answer was recorded.
        pool.client_for(setup.config().connections["shop"]).create_batch(encoded(changed))
    assert setup.emulator.drain()
    assert {contact["city"] for contact in setup.emulator.contacts()} == {"Elsewhere"}
    result = run(setup)
    assert (result.status, result.counts.upserted) == ("succeeded", 3), result.error
    assert setup.emulator.drain()
    assert "Elsewhere" not in {contact["city"] for contact in setup.emulator.contacts()}
    assert all(len(contact["tags"]) == 1 for contact in setup.emulator.contacts())
    with setup.store() as store:
        assert store.intents("members") == []
        assert store.count_entries("members", tagged=True) == 3
    assert run(setup).counts.unchanged == 3


def test_contacts_of_a_lost_answer_wait_while_omnisend_still_queues_batches_of_their_time(
    setup: Setup,
) -> None:
    """The batch whose answer was lost is still queued when the next run starts: a look-up
    finds none of its contacts, which proves nothing (it may yet be applied, consent and
    all). They wait while a batch of their time is unfinished, then are looked up."""
    write_segment(setup.database, people(50))
    setup.emulator.configure(batch_delay=240.0)  # four seconds of test time
    setup.emulator.set_faults(
        Faults(drop_rate=1.0, drop_after_processing=True, only_endpoints=frozenset({UPSERTS}))
    )
    assert run(setup).status == "partial"
    setup.emulator.set_faults(Faults())
    before = last_sequence(setup.emulator)
    waiting = run(setup)  # at once: the lost batch is still pending in Omnisend
    assert emails_of(log_since(setup.emulator, before), UPSERTS) == {}
    assert (waiting.status, waiting.counts.pending) == ("partial", 50), waiting.error
    assert setup.emulator.drain()
    finished = run(setup)
    assert finished.status == "succeeded", finished.error
    assert setup.emulator.drain()
    consents = Counter(len(contact["consents"]) for contact in setup.emulator.contacts())
    assert consents == {1: 50}


def test_a_maybe_sent_contact_whose_consent_time_changed_since_gets_no_second_record(
    setup: Setup,
) -> None:
    write_segment(setup.database, people(20))
    setup.emulator.set_faults(
        Faults(drop_rate=1.0, drop_after_processing=True, only_endpoints=frozenset({UPSERTS}))
    )
    assert run(setup).status == "partial"
    setup.emulator.set_faults(Faults())
    assert setup.emulator.drain()
    # The source's consent time moves on before the next run looks the contacts up.
    moved_on = [replace(one, status_at="2026-02-02T10:00:00Z") for one in people(20)]
    write_segment(setup.database, moved_on)
    assert run(setup).status == "succeeded"
    assert setup.emulator.drain()
    consents = Counter(len(contact["consents"]) for contact in setup.emulator.contacts())
    assert consents == {1: 20}


def test_an_intent_older_than_a_day_does_not_wait_for_the_brands_queued_batches(
    setup: Setup,
) -> None:
    """Any batch of an intent that old was applied long ago, or never will be: it does not
    wait because the brand's listing is too long to see back to its time (a busy brand
    would hold it for good)."""
    from datetime import timedelta

    from omnisync.omnisend.batches import LIST_PAGE_SIZE, MAX_LIST_PAGES

    write_segment(setup.database, people(10))
    prints = fingerprints(setup)
    with setup.pool() as pool, setup.store() as store:
        client = pool.client_for(setup.config().connections["shop"])
        sent = [InflightItem(email, fingerprint, True) for email, fingerprint in prints.items()]
        store.record_intent("members", "token-a", sent, now=setup.clock.wall() - timedelta(days=2))
        # Other exports' batches, one contact each (mapped at once: a config load each
        # would cost more than the batches).
        others = writes_for(setup, range(100, 101 + LIST_PAGE_SIZE * MAX_LIST_PAGES))
        for write in others:
            client.create_batch(encoded([write]))
    finished = run(setup)
    assert (finished.status, finished.counts.upserted) == ("succeeded", 10), finished.error
