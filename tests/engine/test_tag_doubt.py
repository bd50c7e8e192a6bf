"""A tags call Omnisend applied whose answer was lost: the ledger keeps the tag *in doubt*.

The emulator processes each tags call and drops its answer (``drop_after_processing``):
every attempt is applied, none is answered, the run reports the call failed. The ledger
must not be left wrong: after a membership change the next run puts Omnisend right, a
leaver untagged, a returning member tagged, as a run whose calls were answered would.
"""

from __future__ import annotations

from datetime import UTC, datetime

from omnisync.emulator.faults import Faults
from omnisync.engine.drift import check_drift
from omnisync.engine.explain import explain_email
from omnisync.engine.results import RunResult
from tests.engine.conftest import Setup
from tests.engine.helpers import (
    TAG_ADDS,
    TAG_REMOVALS,
    emails_of,
    last_sequence,
    log_since,
    people,
    write_segment,
)

LEAVER = "person0@example.com"
NOW = datetime(2026, 3, 1, tzinfo=UTC)


def run(setup: Setup) -> RunResult:
    with setup.store() as store, setup.pool() as pool:
        return setup.runner(store, pool).run("members", trigger="test")


def answers_lost(setup: Setup, endpoint: str) -> None:
    setup.emulator.set_faults(
        Faults(drop_rate=1.0, drop_after_processing=True, only_endpoints=frozenset({endpoint}))
    )


def tags(setup: Setup, email: str) -> list[str]:
    assert setup.emulator.drain()
    contact = setup.emulator.contact(email)
    assert contact is not None
    return sorted(contact.get("tags") or [])


def test_a_tag_added_whose_answer_was_lost_is_removed_when_the_contact_leaves(
    setup: Setup,
) -> None:
    write_segment(setup.database, people(10))
    answers_lost(setup, TAG_ADDS)
    lossy = run(setup)
    assert lossy.status == "partial" and lossy.counts.tag_failed == 10, lossy.error
    # Omnisend applied the calls: the contacts carry the tag, unknown to the run.
    assert tags(setup, LEAVER) == ["members"]
    setup.emulator.set_faults(Faults())
    write_segment(setup.database, people(9, start=1))  # person0 leaves
    before = last_sequence(setup.emulator)
    mended = run(setup)
    assert tags(setup, LEAVER) == []
    assert mended.status == "succeeded", mended.error
    assert (mended.counts.leaving, mended.counts.untagged) == (1, 1)
    log = log_since(setup.emulator, before)
    assert emails_of(log, TAG_REMOVALS) == {LEAVER: 1}
    # The members in doubt were tagged again (idempotent), and now are in no doubt.
    assert sum(emails_of(log, TAG_ADDS).values()) == 9
    assert tags(setup, "person1@example.com") == ["members"]
    with setup.store() as store:
        assert not any(entry.tag_in_doubt for entry in store.entries("members"))
    assert run(setup).counts.unchanged == 9


def test_a_tag_removed_whose_answer_was_lost_is_added_when_the_contact_returns(
    setup: Setup,
) -> None:
    write_segment(setup.database, people(10))
    assert run(setup).status == "succeeded"
    write_segment(setup.database, people(9, start=1))  # person0 leaves
    answers_lost(setup, TAG_REMOVALS)
    lossy = run(setup)
    assert lossy.status == "partial" and lossy.counts.tag_failed == 1, lossy.error
    assert tags(setup, LEAVER) == []  # removed, though the run never heard so
    setup.emulator.set_faults(Faults())
    write_segment(setup.database, people(10))  # and back
    before = last_sequence(setup.emulator)
    mended = run(setup)
    assert tags(setup, LEAVER) == ["members"]
    assert mended.status == "succeeded", mended.error
    assert (mended.counts.to_tag, mended.counts.to_update, mended.counts.tagged) == (1, 0, 1)
    log = log_since(setup.emulator, before)
    # Tagged again, never "untagged" as if the export's own tag were an old one.
    assert emails_of(log, TAG_ADDS) == {LEAVER: 1}
    assert emails_of(log, TAG_REMOVALS) == {}
    assert run(setup).counts.unchanged == 10


def test_a_renamed_tag_whose_removal_answer_was_lost_is_never_held_beside_the_new(
    setup: Setup,
) -> None:
    write_segment(setup.database, people(10))
    assert run(setup).status == "succeeded"
    setup.rewrite(tag="members-2")
    answers_lost(setup, TAG_REMOVALS)
    lossy = run(setup)
    assert lossy.status == "partial", lossy.error
    # The old tag is gone, and the new one waits for a removal acknowledged.
    assert tags(setup, LEAVER) == []
    assert emails_of(log_since(setup.emulator, 0), TAG_ADDS) == {
        f"person{number}@example.com": 1 for number in range(10)
    }
    setup.emulator.set_faults(Faults())
    mended = run(setup)
    assert mended.status == "succeeded", mended.error
    assert mended.counts.retag == 10
    for number in range(10):
        assert tags(setup, f"person{number}@example.com") == ["members-2"]
    assert run(setup).counts.unchanged == 10


def test_explain_shows_a_tag_in_doubt_and_its_next_call(setup: Setup) -> None:
    write_segment(setup.database, people(2))
    answers_lost(setup, TAG_ADDS)
    assert run(setup).status == "partial"
    with setup.store() as store:
        found = explain_email(setup.config(), LEAVER, "members", store=store, now=NOW)
    assert found.delivered is not None
    assert (found.delivered.tag, found.delivered.tag_in_doubt) == ("members", True)
    assert found.next_run == ("tag",)
    assert "may or may not be on" in found.note


def test_drift_leaves_a_tag_in_doubt_to_the_next_run(setup: Setup) -> None:
    write_segment(setup.database, people(10))
    assert run(setup).status == "succeeded"
    write_segment(setup.database, people(9, start=1))
    answers_lost(setup, TAG_REMOVALS)
    assert run(setup).status == "partial"
    setup.emulator.set_faults(Faults())
    assert tags(setup, LEAVER) == []
    # The ledger's tag is in doubt, not missing: the next run sends its call again.
    with setup.store() as store, setup.pool() as pool:
        report = check_drift(setup.config(), "members", store=store, clients=pool, sample=None)
    assert (report.checked, report.findings) == (10, ())
