"""An export run end to end against the emulator on loopback, in this process."""

from __future__ import annotations

import random
import threading

from omnisync.emulator import Faults
from omnisync.engine.results import Phase, RunCounts, RunResult
from omnisync.engine.runner import ExportRunner, RunnerSettings
from tests.engine.conftest import Setup
from tests.engine.helpers import (
    TAG_ADDS,
    TAG_REMOVALS,
    UPSERTS,
    WRITES,
    emails_of,
    execute,
    last_sequence,
    log_since,
    people,
    person,
    write_segment,
)


def run(setup: Setup, settings: RunnerSettings | None = None, **options: object) -> RunResult:
    with setup.store() as store, setup.pool() as pool:
        runner = ExportRunner(
            setup.config(), store=store, clients=pool, clock=setup.clock, settings=settings
        )
        return runner.run("members", trigger="test", **options)  # type: ignore[arg-type]


def test_the_first_run_creates_and_tags_every_valid_member(setup: Setup) -> None:
    rows = [
        *people(150),
        person(900, email=None),
        person(901, email="broken@"),
        person(902, email="  PERSON7@Example.COM "),  # a duplicate of person7
        person(903, tier="silver"),  # not in the segment
    ]
    write_segment(setup.database, rows)
    result = run(setup)
    assert result.status == "succeeded", result.error
    assert setup.emulator.drain()  # tags calls are applied asynchronously
    members = {f"person{number}@example.com" for number in range(150)}
    contacts = {contact["email"]: contact for contact in setup.emulator.contacts()}
    assert set(contacts) == members
    assert all(contact["tags"] == ["members"] for contact in contacts.values())
    assert setup.emulator.welcome_messages() == []
    counts = result.counts
    # rows = members + invalid + duplicates; every member sent.
    assert (counts.rows, counts.members, counts.invalid, counts.duplicates) == (153, 150, 2, 1)
    assert (counts.to_create, counts.to_update, counts.unchanged, counts.to_tag) == (150, 0, 0, 150)
    assert (counts.upserted, counts.tagged, counts.pending) == (150, 150, 0)
    assert counts.requests > 0 and counts.batches == 2
    assert {reason.reason for reason in result.invalid_reasons} == {
        "missing e-mail",
        "e-mail has nothing after the @",
    }
    # Unicode arrives intact.
    assert contacts["person0@example.com"]["firstName"] == "Олена"
    assert contacts["person4@example.com"]["city"] == "A Coruña"
    assert contacts["person6@example.com"]["firstName"] == "Sunny ☀️"
    assert contacts["person1@example.com"]["countryCode"] == "PL"
    with setup.store() as store:
        assert store.count_entries("members", tagged=True) == 150
        [record] = store.runs("members")
    assert record.status == "succeeded" and record.trigger == "test"
    assert record.counts["upserted"] == 150
    assert record.config_revision == setup.config().revision


def test_a_second_run_without_changes_sends_nothing(setup: Setup) -> None:
    assert run(setup).status == "succeeded"
    before = last_sequence(setup.emulator)
    second = run(setup)
    assert second.status == "succeeded"
    assert log_since(setup.emulator, before) == []  # not even a poll
    assert (second.counts.unchanged, second.counts.upserted, second.counts.requests) == (200, 0, 0)


def test_a_third_run_sends_exactly_the_changes(setup: Setup) -> None:
    write_segment(setup.database, people(1000))
    assert run(setup).status == "succeeded"
    assert run(setup).counts.unchanged == 1000
    picker = random.Random(4)
    chosen = picker.sample(range(1000), 20)
    changed, removed = chosen[:10], chosen[10:]
    for number in changed:
        execute(setup.database, "UPDATE people SET city = 'Odesa' WHERE id = ?", (number,))
    for number in removed:
        execute(setup.database, "DELETE FROM people WHERE id = ?", (number,))
    new = list(range(5000, 5010))
    for number in new:
        p = person(number)
        execute(
            setup.database,
            "INSERT INTO people VALUES (?, ?, ?, ?, ?, ?, 'gold', 'subscribed', ?)",
            (p.id, p.email, p.first_name, p.last_name, p.city, p.country, p.status_at),
        )
    before = last_sequence(setup.emulator)
    third = run(setup)
    assert third.status == "succeeded", third.error
    log = log_since(setup.emulator, before)
    address = "person{}@example.com".format
    assert emails_of(log, UPSERTS) == {address(n): 1 for n in changed + new}
    assert emails_of(log, TAG_ADDS) == {address(n): 1 for n in new}
    assert emails_of(log, TAG_REMOVALS) == {address(n): 1 for n in removed}
    assert {record.endpoint for record in log} & WRITES == {UPSERTS, TAG_ADDS, TAG_REMOVALS}
    counts = third.counts
    assert (counts.to_create, counts.to_update, counts.unchanged) == (10, 10, 980)
    assert counts.to_create + counts.to_update + counts.unchanged == counts.members
    assert (counts.to_tag, counts.leaving, counts.to_untag) == (10, 10, 10)
    assert (counts.upserted, counts.tagged, counts.untagged) == (20, 10, 10)
    setup.emulator.drain()
    for number in changed:
        contact = setup.emulator.contact(address(number))
        assert contact is not None and contact["city"] == "Odesa"
    for number in removed:
        contact = setup.emulator.contact(address(number))
        assert contact is not None and "members" not in contact["tags"]
    assert setup.emulator.welcome_messages() == []


def test_omnisend_tags_and_unsubscribes_survive(setup: Setup) -> None:
    emulator = setup.emulator
    # A customer tagged by someone else, and one who unsubscribed in Omnisend
    # after the CDP recorded their consent.
    emulator.seed_contact("person1@example.com", tags=["wholesale", "Spring-2025"])
    emulator.seed_contact(
        "person2@example.com",
        tags=["complained"],
        status="unsubscribed",
        status_changed_at="2025-09-01T08:00:00Z",
    )
    write_segment(setup.database, people(10))
    assert run(setup).status == "succeeded"
    emulator.drain()
    tagged = emulator.contact("person1@example.com")
    unsubscribed = emulator.contact("person2@example.com")
    assert tagged is not None and unsubscribed is not None
    assert sorted(tagged["tags"]) == ["Spring-2025", "members", "wholesale"]
    assert unsubscribed["status"] == "unsubscribed"
    assert sorted(unsubscribed["tags"]) == ["complained", "members"]
    assert unsubscribed["firstName"] == "Rūta"  # the fields did arrive
    # Leaving the segment removes only the export's tag.
    execute(setup.database, "UPDATE people SET tier = 'silver' WHERE id IN (1, 2)")
    assert run(setup).counts.untagged == 2
    emulator.drain()
    tagged = emulator.contact("person1@example.com")
    unsubscribed = emulator.contact("person2@example.com")
    assert tagged is not None and unsubscribed is not None
    assert sorted(tagged["tags"]) == ["Spring-2025", "wholesale"]
    assert unsubscribed["tags"] == ["complained"] and unsubscribed["status"] == "unsubscribed"
    assert [change.email for change in emulator.status_changes()].count("person2@example.com") == 0
    assert emulator.welcome_messages() == []


def test_consent_is_sent_only_to_new_contacts_with_the_recorded_time(setup: Setup) -> None:
    write_segment(setup.database, people(3))
    assert run(setup).status == "succeeded"
    before = last_sequence(setup.emulator)
    execute(setup.database, "UPDATE people SET status = 'unsubscribed', city = 'Kyiv'")
    assert run(setup).counts.upserted == 3
    setup.emulator.drain()
    # The change went out, but no status for contacts this export delivered before.
    contact = setup.emulator.contact("person0@example.com")
    assert contact is not None
    assert contact["city"] == "Kyiv" and contact["status"] == "subscribed"
    assert contact["statuses"][0]["statusChangedAt"].startswith("2024-05-01T10:00:00")
    assert log_since(setup.emulator, before)


def test_a_renamed_tag_moves_from_the_old_tag_to_the_new(setup: Setup) -> None:
    write_segment(setup.database, people(30))
    assert run(setup).status == "succeeded"
    setup.rewrite(tag="loyal")
    before = last_sequence(setup.emulator)
    result = run(setup)
    assert result.status == "succeeded", result.error
    assert (result.counts.retag, result.counts.upserted) == (30, 0)
    log = log_since(setup.emulator, before)
    assert len(emails_of(log, TAG_ADDS)) == 30 and len(emails_of(log, TAG_REMOVALS)) == 30
    setup.emulator.drain()
    assert {tuple(c["tags"]) for c in setup.emulator.contacts()} == {("loyal",)}
    with setup.store() as store:
        assert {entry.tag for entry in store.entries("members")} == {"loyal"}
    assert run(setup).counts.unchanged == 30


def test_an_old_tag_whose_removal_failed_is_removed_by_the_next_run(setup: Setup) -> None:
    write_segment(setup.database, people(5))
    assert run(setup).status == "succeeded"
    setup.rewrite(tag="loyal")
    setup.emulator.set_faults(error_rate_500=1.0, only_endpoints=frozenset({TAG_REMOVALS}))
    failed = run(setup)
    assert (failed.status, failed.counts.tagged, failed.counts.tag_failed) == ("partial", 0, 5)
    setup.emulator.set_faults(Faults())
    setup.emulator.drain()
    # The ledger still knows the old tag is on them: the new one waits for its removal.
    with setup.store() as store:
        assert {entry.tag for entry in store.entries("members")} == {"members"}
    before = last_sequence(setup.emulator)
    retried = run(setup)
    assert retried.status == "succeeded", retried.error
    assert len(emails_of(log_since(setup.emulator, before), TAG_REMOVALS)) == 5
    setup.emulator.drain()
    assert {tuple(c["tags"]) for c in setup.emulator.contacts()} == {("loyal",)}
    with setup.store() as store:
        assert {entry.tag for entry in store.entries("members")} == {"loyal"}


def test_a_renamed_tag_is_added_only_once_the_old_one_is_gone(setup: Setup) -> None:
    """The ledger holds one tag per contact: with both on a contact, a kill, a failed
    removal, a leaver or a second rename left one of them on it for good."""
    write_segment(setup.database, people(600))
    assert run(setup).status == "succeeded"
    setup.rewrite(tag="loyal")
    setup.emulator.set_faults(error_rate_500=1.0, only_endpoints=frozenset({TAG_REMOVALS}))
    failed = run(setup)
    assert (failed.status, failed.counts.tagged, failed.counts.tag_failed) == ("partial", 0, 600)
    assert failed.counts.pending == 1200  # each still to lose one tag and gain the other
    setup.emulator.set_faults(Faults())
    setup.emulator.drain()
    assert {tuple(c["tags"]) for c in setup.emulator.contacts()} == {("members",)}
    # Some leave, and the tag is renamed again: each loses the one tag it holds.
    write_segment(setup.database, people(500))
    setup.rewrite(tag="vip")
    assert run(setup, allow_large_change=True).status == "succeeded"
    setup.emulator.drain()
    tags = {c["email"]: tuple(c["tags"]) for c in setup.emulator.contacts()}
    assert set(tags.values()) == {("vip",), ()}
    assert sum(held == () for held in tags.values()) == 100
    with setup.store() as store:
        assert {entry.tag for entry in store.entries("members")} == {"vip", None}


def test_old_tags_a_stopped_rename_never_removed_are_removed_by_the_next_run(
    setup: Setup,
) -> None:
    write_segment(setup.database, people(2500))
    assert run(setup).status == "succeeded"
    setup.emulator.drain()
    setup.rewrite(tag="loyal")
    # Removals are slow (their answers often lost and retried); adds are not. Not so often
    # that a removal runs out of its 8 attempts (0.85**8 = 27% a call, which a loaded
    # machine's thread timing turned into 3 of 10 once: 750 never tagged, no stop at 2,000).
    setup.emulator.set_faults(
        Faults(drop_rate=0.6, seed=2, only_endpoints=frozenset({TAG_REMOVALS}))
    )
    stop = threading.Event()

    class StopOnceTagged:
        def phase_started(self, phase: Phase, counts: RunCounts) -> None:
            pass

        def counts_updated(self, counts: RunCounts) -> None:
            if counts.tagged >= 2000:
                stop.set()

    stopped = run(setup, stop=stop, progress=StopOnceTagged())
    assert stopped.status == "partial" and stopped.stopped, stopped.error
    setup.emulator.set_faults(Faults())
    setup.emulator.drain()
    assert run(setup).status == "succeeded"
    setup.emulator.drain()
    assert {tuple(c["tags"]) for c in setup.emulator.contacts()} == {("loyal",)}
    with setup.store() as store:
        assert {entry.tag for entry in store.entries("members")} == {"loyal"}


def test_refused_contacts_stay_pending_and_are_retried(setup: Setup) -> None:
    write_segment(setup.database, people(50))
    refused = frozenset({"person3@example.com", "person40@example.com"})
    setup.emulator.set_faults(failing_emails=refused)
    first = run(setup)
    assert first.status == "partial"
    assert (first.counts.upserted, first.counts.upsert_failed, first.counts.pending) == (48, 2, 2)
    assert first.error is not None and "refused 2 contact" in first.error
    assert "person3@example.com" not in first.error  # masked
    assert [sample.subject for sample in first.failure_samples] == [
        "p***3@e***e.com",
        "p***0@e***e.com",
    ]
    with setup.store() as store:
        assert store.count_entries("members") == 48
        assert store.entry("members", "person3@example.com") is None
        assert store.inflight_batches("members") == []
    setup.emulator.set_faults(failing_emails=frozenset())
    before = last_sequence(setup.emulator)
    second = run(setup)
    assert second.status == "succeeded"
    assert emails_of(log_since(setup.emulator, before), UPSERTS) == dict.fromkeys(refused, 1)


def test_a_stop_finishes_the_batches_already_sent(setup: Setup) -> None:
    import threading

    write_segment(setup.database, people(1000))
    stop = threading.Event()
    # Two batches in flight at most, so a stop after the first leaves most unsent.
    settings = RunnerSettings(max_batches_in_flight=2)

    class StopAfterFirstBatch:
        def phase_started(self, phase: str, counts: object) -> None:
            pass

        def counts_updated(self, counts: object) -> None:
            if getattr(counts, "upserted", 0) >= 100:
                stop.set()

    first = run(setup, settings, stop=stop, progress=StopAfterFirstBatch())
    assert first.status == "partial" and first.stopped
    assert 100 <= first.counts.upserted <= 400
    # Each contact has its upsert or its tag left: one operation each.
    assert first.counts.pending == 1000 - first.counts.tagged
    with setup.store() as store:
        recorded = {entry.email for entry in store.entries("members")}
        assert len(recorded) == first.counts.upserted
    before = last_sequence(setup.emulator)
    second = run(setup)
    assert second.status == "succeeded"
    sent_again = set(emails_of(log_since(setup.emulator, before), UPSERTS))
    assert sent_again == {f"person{number}@example.com" for number in range(1000)} - recorded
    assert setup.emulator.contact_count() == 1000


def test_an_export_moved_to_another_brand_delivers_every_member_there(
    setup: Setup, start_emulator
) -> None:
    from omnisync.clock import ScaledClock
    from omnisync.config.loader import load_config
    from omnisync.engine.clients import ClientPool

    write_segment(setup.database, people(120))
    assert run(setup).status == "succeeded"
    assert setup.emulator.contact_count() == 120
    # The same export, now through a connection to another brand (another key).
    other = start_emulator(api_keys=("other-brand-key",), clock=ScaledClock(60.0))
    text = setup.config_path.read_text()
    setup.config_path.write_text(
        text.replace("{env: OMNISYNC_TEST_API_KEY}", "{env: OTHER_BRAND_KEY}").replace(
            setup.emulator.base_url, other.base_url
        )
    )
    config = load_config(setup.config_path, environ={})
    from omnisync.engine.report import plan_export

    planned = plan_export(config, "members")  # plan says what the run will do
    assert (planned.to_create, planned.unchanged, planned.to_tag) == (120, 0, 120)
    with (
        setup.store() as store,
        ClientPool(clock=setup.clock, environ={"OTHER_BRAND_KEY": "other-brand-key"}) as pool,
    ):
        moved = ExportRunner(config, store=store, clients=pool, clock=setup.clock).run(
            "members", trigger="test"
        )
        assert moved.status == "succeeded", moved.error
        assert (moved.counts.to_create, moved.counts.upserted) == (120, 120)
        assert store.count_entries("members", tagged=True) == 120
    other.drain()
    assert other.contact_count() == 120
    assert all(contact["tags"] == ["members"] for contact in other.contacts())
    assert setup.emulator.contact_count() == 120  # the old brand keeps its contacts
