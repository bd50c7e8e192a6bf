"""``omnisync drift``: Omnisend read back and compared with the ledger, as a real process.

The exports that deliver before and after it run with the real engine in this process
(``Setup.run_here``): drift is the command under test, and each of its runs is real.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from omnisync.inflight import InflightItem
from omnisync.masking import mask_email
from omnisync.state import open_state_store
from tests.engine.conftest import Setup
from tests.engine.helpers import (
    TAG_ADDS,
    TAG_REMOVALS,
    UPSERTS,
    emails_of,
    execute,
    last_sequence,
    log_since,
    omnisync,
    people,
    write_segment,
)

MEMBERS = 40


def run_export(setup: Setup) -> None:
    done = setup.run_here()
    assert done.status == "succeeded", done.error
    assert setup.emulator.drain()  # tags calls are applied asynchronously


def drift(setup: Setup, *options: str) -> tuple[int, dict[str, Any], str]:
    done = omnisync(
        "drift", "members", "--config", str(setup.config_path), "--format", "json", *options
    )
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode in (0, 3), done.stdout + done.stderr
    return done.returncode, json.loads(done.stdout), done.stdout


def api(setup: Setup, method: str, path: str, body: dict[str, Any]) -> None:
    """A change made in Omnisend by someone else (another tool, a person)."""
    answer = httpx.request(
        method,
        f"{setup.emulator.base_url}/{path}",
        json=body,
        headers={"Authorization": "Omnisend-API-Key test-key", "Omnisend-Version": "2026-03-15"},
    )
    assert answer.status_code < 300, answer.text


def test_removed_tags_and_contacts_are_found_repaired_by_one_run_and_gone(
    setup: Setup,
) -> None:
    write_segment(setup.database, people(MEMBERS))
    run_export(setup)
    code, report, _ = drift(setup, "--all")
    assert (code, report["drift"], report["checked"]) == (0, False, MEMBERS)

    emails = [f"person{number}@example.com" for number in range(MEMBERS)]
    untagged, deleted = emails[3:8], emails[20:22]
    assert setup.emulator.remove_tags(untagged, ["members"]) == 5
    assert all(setup.emulator.delete_contact(email) for email in deleted)

    code, report, output = drift(setup, "--all")
    assert code == 3
    assert report["counts"] == {
        "missing": 2,
        "tag_missing": 5,
        "tag_on_non_member": 0,
        "fields": 0,
    }
    found = {finding["email"]: finding["problems"] for finding in report["findings"]}
    assert found == {
        **{mask_email(email): ["tag_missing"] for email in untagged},
        **{mask_email(email): ["missing"] for email in deleted},
    }
    assert "@example.com" not in output  # masked, every one
    assert report["repair"] == {"done": False, "marked_for_resend": 0, "marked_for_untag": 0}

    code, report, _ = drift(setup, "--all", "--repair")
    assert code == 3
    assert report["repair"] == {"done": True, "marked_for_resend": 7, "marked_for_untag": 0}

    before = last_sequence(setup.emulator)
    run_export(setup)
    log = log_since(setup.emulator, before)
    # Exactly those: re-sent and re-tagged, nobody else, nothing removed.
    assert set(emails_of(log, UPSERTS)) == {*untagged, *deleted}
    assert set(emails_of(log, TAG_ADDS)) == {*untagged, *deleted}
    assert not emails_of(log, TAG_REMOVALS)
    for email in deleted:
        # Re-created without a consent status: omnisync never sends a status twice.
        contact = setup.emulator.contact(email)
        assert contact is not None and contact["status"] == "nonSubscribed"
        assert contact["firstName"] and "members" in contact["tags"]

    code, report, _ = drift(setup, "--all")
    assert (code, report["drift"], report["checked"]) == (0, False, MEMBERS)


@pytest.mark.long(10)
def test_fields_non_members_and_unsubscribes(setup: Setup) -> None:
    write_segment(setup.database, people(MEMBERS))
    run_export(setup)
    # person1 leaves the segment and is untagged by the next run; someone tags them again.
    execute(setup.database, "UPDATE people SET tier = 'silver' WHERE id = 1")
    run_export(setup)
    api(setup, "POST", "contacts/tags", {"emails": ["person1@example.com"], "tags": ["members"]})
    # person2's name is edited in Omnisend; person4 unsubscribes there.
    identifier = {"type": "email", "id": "person2@example.com", "sendWelcomeMessage": False}
    api(setup, "POST", "contacts", {"identifiers": [identifier], "lastName": "Edited"})
    api(
        setup,
        "POST",
        "contacts",
        {
            "identifiers": [
                {
                    "type": "email",
                    "id": "person4@example.com",
                    "channels": {
                        "email": {
                            "status": "unsubscribed",
                            "statusChangedAt": "2030-01-01T00:00:00Z",
                        }
                    },
                }
            ]
        },
    )
    # person3's row changes in the source: not delivered yet, so its fields are
    # not compared (the next run sends them), and that is not drift.
    execute(setup.database, "UPDATE people SET city = 'Odesa' WHERE id = 3")
    assert setup.emulator.drain()

    code, report, _ = drift(setup, "--all")
    assert code == 3
    found = {f["email"]: (f["problems"], f["fields"]) for f in report["findings"]}
    assert found == {
        mask_email("person1@example.com"): (["tag_on_non_member"], []),
        mask_email("person2@example.com"): (["fields"], ["lastName"]),
    }
    assert report["unsubscribed"] == [mask_email("person4@example.com")]

    text = omnisync("drift", "members", "--config", str(setup.config_path), "--all")
    assert text.returncode == 3
    assert "tag on a non-member ('members')" in text.stdout
    assert "fields differ: lastName" in text.stdout
    assert "unsubscribed in Omnisend (information, never changed): 1" in text.stdout
    markdown = omnisync(
        "drift", "members", "--config", str(setup.config_path), "--all", "--format", "markdown"
    )
    assert markdown.returncode == 3 and "| contact | problem |" in markdown.stdout
    assert "@example.com" not in text.stdout + markdown.stdout

    code, report, _ = drift(setup, "--all", "--repair")
    assert report["repair"] == {"done": True, "marked_for_resend": 1, "marked_for_untag": 1}
    before = last_sequence(setup.emulator)
    run_export(setup)
    log = log_since(setup.emulator, before)
    assert set(emails_of(log, UPSERTS)) == {"person2@example.com", "person3@example.com"}
    assert set(emails_of(log, TAG_REMOVALS)) == {"person1@example.com"}
    # The unsubscribe stands: information only, never "fixed".
    contact = setup.emulator.contact("person4@example.com")
    assert contact is not None and contact["status"] == "unsubscribed"
    code, report, _ = drift(setup, "--all")
    assert code == 0 and report["unsubscribed"] == [mask_email("person4@example.com")]


def test_a_seeded_sample_is_the_same_sample_and_in_flight_contacts_are_skipped(
    setup: Setup,
) -> None:
    write_segment(setup.database, people(MEMBERS))
    run_export(setup)
    setup.emulator.remove_tags([f"person{n}@example.com" for n in range(MEMBERS)], ["members"])
    first = drift(setup, "--sample", "10", "--seed", "7")[1]
    again = drift(setup, "--sample", "10", "--seed", "7")[1]
    other = drift(setup, "--sample", "10", "--seed", "8")[1]
    assert first["checked"] == 10 and first["counts"]["tag_missing"] == 10
    assert first["findings"] == again["findings"] != other["findings"]
    # A contact in a batch still in flight is left to the next run's settling.
    with open_state_store(setup.state_dir) as store:
        items = [InflightItem("person0@example.com", 1, True)]
        store.record_intent("members", "intent-1", items, now=datetime.now(UTC))
        store.record_created("members", "intent-1", "batch-1", now=datetime.now(UTC))
    code, report, _ = drift(setup, "--all")
    assert code == 3
    assert (report["checked"], report["skipped_in_flight"]) == (MEMBERS - 1, 1)
    assert report["counts"]["tag_missing"] == MEMBERS - 1


def test_an_unknown_export_is_a_usage_error_and_no_state_store_a_failure(setup: Setup) -> None:
    done = omnisync("drift", "nope", "--config", str(setup.config_path))
    assert done.returncode == 2 and "no export 'nope'" in done.stderr
    done = omnisync("drift", "members", "--config", str(setup.config_path))
    assert done.returncode == 1 and "no state store at" in done.stderr
    assert not setup.state_dir.exists()  # a read never creates one


def test_a_country_omnisend_keeps_under_its_own_name_is_not_drift(setup: Setup) -> None:
    """With a countryCode, Omnisend keeps that country's name ("Spain"), not the text sent
    ("España"): comparing the text found drift that no repair could clear."""
    write_segment(setup.database, people(3))
    execute(setup.database, "UPDATE people SET country = 'España' WHERE id = 1")
    run_export(setup)
    assert setup.emulator.contact("person1@example.com")["country"] == "Spain"
    code, report, _ = drift(setup, "--all")
    assert code == 0, report


def test_a_fields_repair_during_a_tag_rename_keeps_the_old_tag_to_remove(setup: Setup) -> None:
    write_segment(setup.database, people(5))
    run_export(setup)
    setup.rewrite(tag="members-2")  # renamed, not run yet: the contacts hold 'members'
    identifier = {"type": "email", "id": "person2@example.com", "sendWelcomeMessage": False}
    api(setup, "POST", "contacts", {"identifiers": [identifier], "lastName": "Edited"})
    code, report, _ = drift(setup, "--repair")
    assert code == 3
    assert [finding["problems"] for finding in report["findings"]] == [["fields"]]
    run_export(setup)
    # The old tag is removed from person2 as from everyone: never both tags.
    assert {tuple(contact["tags"]) for contact in setup.emulator.contacts()} == {("members-2",)}
    assert setup.emulator.contact("person2@example.com")["lastName"] != "Edited"
