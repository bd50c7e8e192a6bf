"""``omnisync explain EMAIL``: one person, per export.

The first explain of each exit code is a real process (:func:`omnisync`); the people and
formats after them run through the command's entry point in this process
(:func:`explain_here`): no interpreter to start. ``export run`` is always a process.
"""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC, datetime
from typing import Any

from omnisync.inflight import InflightItem
from omnisync.state import open_state_store
from tests.cli import run_cli_here
from tests.engine.conftest import Setup
from tests.engine.helpers import (
    API_KEY_VARIABLE,
    execute,
    omnisync,
    people,
    person,
    write_segment,
)

EMAILS = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")


def explain_here(*arguments: str) -> subprocess.CompletedProcess[str]:
    """``omnisync explain ARGUMENTS`` in this process, with the key :func:`omnisync` gives."""
    return run_cli_here("explain", *arguments, extra_env={API_KEY_VARIABLE: "test-key"})


def explain(setup: Setup, email: str, *options: str) -> dict[str, Any]:
    done = explain_here(email, "--config", str(setup.config_path), "--format", "json", *options)
    assert done.returncode == 0, done.stdout + done.stderr
    # The e-mail asked about is the only one shown.
    assert set(EMAILS.findall(done.stdout)) <= {email.strip().lower()}
    document: dict[str, Any] = json.loads(done.stdout)
    [found] = document["exports"]
    assert found["export"] == "members"
    return found  # type: ignore[no-any-return]


def test_members_pending_invalid_leavers_and_strangers(setup: Setup) -> None:
    write_segment(setup.database, [*people(8), person(8, city="x" * 300)])
    run = omnisync("export", "run", "members", "--config", str(setup.config_path))
    assert run.returncode == 0, run.stdout + run.stderr
    # After the run: person2 leaves, person9 joins, person3 is in a batch in flight.
    execute(setup.database, "UPDATE people SET tier = 'silver' WHERE id = 2")
    joining = person(9)
    execute(
        setup.database,
        "INSERT INTO people VALUES (?, ?, ?, ?, ?, ?, 'gold', 'subscribed', ?)",
        (
            9,
            joining.email,
            joining.first_name,
            "Shevchenko",
            joining.city,
            "Ukraine",
            "2024-05-01T10:00:00Z",
        ),
    )
    with open_state_store(setup.state_dir) as store:
        items = [InflightItem("person3@example.com", 1, True)]
        store.record_intent("members", "intent-77", items, now=datetime(2026, 3, 1, tzinfo=UTC))
        store.record_created(
            "members", "intent-77", "batch-77", now=datetime(2026, 3, 1, tzinfo=UTC)
        )
        [last_run] = store.runs("members", limit=1)

    # A member delivered and tagged: nothing to do. Typed as a person types it.
    delivered = explain(setup, "  Person1@Example.com ")
    assert delivered["in_segment"] is True and delivered["position"] == 2
    assert delivered["mapped"]["valid"] is True
    assert delivered["mapped"]["fields"]["city"] == "Kraków"
    assert delivered["mapped"]["consent"] is None  # known contact: no status, ever again
    assert delivered["delivered"]["current"] is True
    assert delivered["delivered"]["tag"] == "members"
    assert delivered["delivered"]["run_id"] == last_run.id
    assert delivered["pending"] == []
    assert delivered["next_run"] == ["nothing"]

    # A member whose batch is still in flight.
    pending = explain(setup, "person3@example.com")
    assert pending["pending"] == [
        {
            "kind": "batch",
            "batch_id": "batch-77",
            "created_at": "2026-03-01T00:00:00.000Z",
            "then_tag": True,
        }
    ]

    # An invalid row: its reason, never sent.
    invalid = explain(setup, "person8@example.com")
    assert invalid["in_segment"] is True and invalid["delivered"] is None
    assert invalid["mapped"]["valid"] is False
    assert any("city" in reason for reason in invalid["mapped"]["reasons"])
    assert invalid["next_run"] == ["nothing"] and "invalid" in invalid["note"]

    # A leaver: the next run removes the tag.
    leaver = explain(setup, "person2@example.com")
    assert leaver["in_segment"] is False and leaver["mapped"] is None
    assert leaver["delivered"]["tag"] == "members"
    assert leaver["next_run"] == ["untag members"]

    # A new member: created with its consent status, then tagged.
    joiner = explain(setup, "person9@example.com")
    assert joiner["next_run"] == ["create", "tag"] and joiner["delivered"] is None
    assert joiner["mapped"]["consent"] == {
        "status": "subscribed",
        "changed_at": "2024-05-01T10:00:00Z",
    }

    # Someone the segment never had.
    stranger = explain(setup, "nobody@example.com")
    assert stranger["in_segment"] is False and stranger["delivered"] is None
    assert stranger["next_run"] == ["nothing"] and "never delivered" in stranger["note"]

    text = omnisync("explain", "person2@example.com", "--config", str(setup.config_path))
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("person2@example.com\n")
    assert "segment: not a member" in text.stdout
    assert "next run: untag members (left the segment: the tag is removed)" in text.stdout
    text = explain_here("person8@example.com", "--config", str(setup.config_path))
    assert "mapping: invalid: " in text.stdout and "delivered: never" in text.stdout


def test_usage_errors(setup: Setup) -> None:
    unknown = omnisync(
        "explain", "a@example.com", "--export", "nope", "--config", str(setup.config_path)
    )
    assert unknown.returncode == 2 and "no export 'nope'" in unknown.stderr
    empty = explain_here("  ", "--config", str(setup.config_path))
    assert empty.returncode == 2


def test_before_any_run_nothing_was_delivered_and_no_state_is_created(setup: Setup) -> None:
    found = explain(setup, "person0@example.com", "--export", "members")
    assert found["next_run"] == ["create", "tag"] and found["delivered"] is None
    assert not setup.state_dir.exists()


def test_after_the_connection_moves_to_another_brand_nothing_is_delivered_there(
    setup: Setup,
) -> None:
    """Another key reference is another brand: the next run forgets the old brand's ledger
    and sends every member as new, consent included, which explain must show."""
    write_segment(setup.database, people(3))
    run = omnisync("export", "run", "members", "--config", str(setup.config_path))
    assert run.returncode == 0, run.stdout + run.stderr
    assert explain(setup, "person1@example.com")["delivered"] is not None
    write_segment(setup.database, people(2))  # person2 leaves
    text = setup.config_path.read_text()
    setup.config_path.write_text(text.replace(f"{{env: {API_KEY_VARIABLE}}}", "{file: key}"))
    (setup.config_path.parent / "key").write_text("another-brand-key\n")
    found = explain(setup, "person1@example.com")
    assert found["delivered"] is None
    assert found["next_run"] == ["create", "tag"]
    assert found["mapped"]["consent"] is not None
    gone = explain(setup, "person2@example.com")
    assert (gone["delivered"], gone["next_run"]) == (None, ["nothing"])
    assert gone["note"] == "not in the segment, never delivered by this export"


def test_a_contact_too_large_for_any_batch_is_explained_as_plan_counts_it(setup: Setup) -> None:
    write_segment(setup.database, people(3))
    execute(setup.database, "ALTER TABLE people ADD COLUMN bio TEXT")
    execute(setup.database, "UPDATE people SET bio = ? WHERE id = 1", ("🦉" * 2048,))
    properties = "".join(f"        bio_{number}: bio\n" for number in range(130))
    mapping = "      country: country\n"
    text = setup.config_path.read_text()
    setup.config_path.write_text(
        text.replace(mapping, f"{mapping}      custom_properties:\n{properties}")
    )
    found = explain(setup, "person1@example.com")
    assert (found["mapped"]["valid"], found["next_run"]) == (False, ["nothing"])
    [reason] = found["mapped"]["reasons"]
    assert reason.endswith("over the 1,000,000-byte batch limit")
