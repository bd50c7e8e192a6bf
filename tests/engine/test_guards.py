"""Change guards through the real CLI: a run that looks like an accident is held, sends nothing.

The runs under test are real ``omnisync export run`` processes; the deliveries before them
run with the real engine in this process (``Setup.run_here``), and ``plan`` and ``history``
through the command's entry point in this process (:func:`here`).
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.cli import run_cli_here
from tests.engine.conftest import Setup
from tests.engine.helpers import (
    API_KEY_VARIABLE,
    WRITES,
    execute,
    last_sequence,
    log_since,
    omnisync,
    people,
)


def export_run(setup: Setup, *extra: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    done = omnisync(
        "export", "run", "members", "--config", str(setup.config_path), "--format", "json", *extra
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout)


def here(*arguments: str) -> subprocess.CompletedProcess[str]:
    """A read-only command (plan, history) through its entry point in this process."""
    return run_cli_here(*arguments, extra_env={API_KEY_VARIABLE: "test-key"})


def deliver(setup: Setup) -> None:
    """A first delivery, before the run under test: the real engine, in this process."""
    result = setup.run_here()
    assert result.status == "succeeded", result.error


def history(setup: Setup) -> list[dict]:  # type: ignore[type-arg]
    listed = here("history", "--config", str(setup.config_path), "--format", "json")
    assert listed.returncode == 0, listed.stderr
    runs: list[dict] = json.loads(listed.stdout)["runs"]  # type: ignore[type-arg]
    return runs


@pytest.mark.long(5)
def test_an_emptied_source_is_held_then_released_once(setup: Setup) -> None:
    from tests.engine.helpers import write_segment

    write_segment(setup.database, people(1_000))
    first = setup.run_here()
    assert (first.status, first.counts.upserted, first.counts.tagged) == ("succeeded", 1_000, 1_000)

    execute(setup.database, "DELETE FROM people")  # a failed ETL load
    planned = here("plan", "members", "--config", str(setup.config_path), "--format", "json")
    (plan,) = json.loads(planned.stdout)["plans"]
    assert plan["held"] == [
        "the segment is empty, but 1,000 contacts carry the export's tag (allow_empty is false)",
        "would untag 1,000 of 1,000 members (100%), above max_removed 20%",
    ]
    before = last_sequence(setup.emulator)
    code, held = export_run(setup)
    assert code == 4
    assert held["status"] == "held"
    assert "would untag 1,000 of 1,000 members (100%), above max_removed 20%" in held["error"]
    assert log_since(setup.emulator, before) == []  # not one request
    latest = history(setup)[0]
    assert (latest["status"], latest["trigger"]) == ("held", "cli")
    assert "would untag 1,000 of 1,000" in latest["error"]

    released = omnisync(
        "export", "run", "members", "--allow-large-change", "--config", str(setup.config_path)
    )
    assert released.returncode == 0, released.stdout + released.stderr
    log = log_since(setup.emulator, before)
    assert sum(len(record.emails) for record in log if record.endpoint in WRITES) == 1_000
    latest = history(setup)[0]
    assert latest["status"] == "succeeded"
    assert latest["trigger"].startswith("cli, release by ")
    # Released once: the next run is guarded again (and has nothing to do).
    assert setup.run_here().status == "succeeded"


def test_a_held_run_records_the_counts_its_plan_shows(setup: Setup) -> None:
    from tests.engine.helpers import write_segment

    write_segment(setup.database, people(3))
    deliver(setup)
    # A bad ETL load: every domain cut, so no row is valid (none may count as to create).
    execute(setup.database, "UPDATE people SET email = replace(email, '.com', '')")
    planned = here("plan", "members", "--config", str(setup.config_path), "--format", "json")
    (plan,) = json.loads(planned.stdout)["plans"]
    assert (plan["members"], plan["invalid"], plan["to_create"], plan["to_tag"]) == (0, 3, 0, 0)
    code, held = export_run(setup)
    assert (code, held["status"]) == (4, "held")
    assert "no valid member (3 invalid)" in held["error"]
    recorded = history(setup)[0]["counts"]
    for name in ("rows", "members", "invalid", "to_create", "to_update", "to_tag", "leaving"):
        assert plan[name] == held["counts"][name] == recorded[name], name


def test_a_recovered_source_clears_the_hold_and_sends_only_real_changes(setup: Setup) -> None:
    from tests.engine.helpers import write_segment

    write_segment(setup.database, people(1_000))
    deliver(setup)
    execute(setup.database, "UPDATE people SET tier = 'tmp'")
    assert setup.run_here().status == "held"
    # The source recovers, with one real change.
    execute(setup.database, "UPDATE people SET tier = 'gold'")
    execute(setup.database, "UPDATE people SET city = 'Odesa' WHERE id = 7")
    before = last_sequence(setup.emulator)
    code, run = export_run(setup)
    assert (code, run["status"]) == (0, "succeeded")
    writes = [record for record in log_since(setup.emulator, before) if record.endpoint in WRITES]
    assert [email for record in writes for email in record.emails] == ["person7@example.com"]


def test_a_query_that_drops_thirty_percent_is_held_at_the_default_and_runs_at_fifty(
    setup: Setup,
) -> None:
    from tests.engine.helpers import write_segment

    write_segment(setup.database, people(1_000))
    deliver(setup)
    setup.rewrite(query="SELECT * FROM people WHERE tier = 'gold' AND id % 10 >= 3")
    code, held = export_run(setup)
    assert (code, held["status"]) == (4, "held")
    assert "would untag 300 of 1,000 members (30%), above max_removed 20%" in held["error"]
    setup.rewrite(
        query="SELECT * FROM people WHERE tier = 'gold' AND id % 10 >= 3",
        guards="{max_removed: 50%}",
    )
    code, run = export_run(setup)
    assert (code, run["status"], run["counts"]["untagged"]) == (0, "succeeded", 300)


def test_a_full_resync_re_sends_and_re_tags_every_member_as_a_first_run_would(
    setup: Setup,
) -> None:
    from tests.engine.helpers import TAG_ADDS, UPSERTS, emails_of, write_segment

    write_segment(setup.database, people(300))
    deliver(setup)
    with setup.store() as store:
        first = [(e.email, e.fingerprint, e.tag) for e in store.entries("members")]
    consents = len(setup.emulator.status_changes())
    assert setup.run_here().counts.upserted == 0  # nothing changed

    before = last_sequence(setup.emulator)
    code, full = export_run(setup, "--full")
    assert (code, full["status"]) == (0, "succeeded")
    counts = full["counts"]
    assert (counts["to_create"], counts["to_update"], counts["unchanged"]) == (0, 300, 0)
    assert (counts["upserted"], counts["tagged"], counts["untagged"]) == (300, 300, 0)
    log = log_since(setup.emulator, before)
    members = {f"person{number}@example.com" for number in range(300)}
    assert set(emails_of(log, UPSERTS)) == set(emails_of(log, TAG_ADDS)) == members
    # Contacts delivered before get no consent status again.
    assert len(setup.emulator.status_changes()) == consents
    with setup.store() as store:
        after = [(e.email, e.fingerprint, e.tag) for e in store.entries("members")]
    assert after == first
    assert history(setup)[0]["trigger"] == "cli, full resync"


def test_a_segment_of_invalid_e_mails_counts_as_empty_for_the_guards(setup: Setup) -> None:
    # A broken ETL load that fills the e-mail column with junk must not untag everyone.
    from tests.engine.helpers import write_segment

    write_segment(setup.database, people(5))
    deliver(setup)
    execute(setup.database, "UPDATE people SET email = 'n/a-' || id")
    setup.rewrite(guards="{max_removed: 100%, min_members: 3}")
    planned = here("plan", "members", "--config", str(setup.config_path), "--format", "json")
    (plan,) = json.loads(planned.stdout)["plans"]
    assert plan["held"] == [
        "the segment has no valid member (5 invalid), but 5 contacts carry the export's tag "
        "(allow_empty is false)"
    ]
    before = last_sequence(setup.emulator)
    code, held = export_run(setup)
    assert (code, held["status"]) == (4, "held")
    assert "the segment has no valid member (5 invalid)" in held["error"]
    assert log_since(setup.emulator, before) == []

    # Two valid rows of five: under min_members, counted after mapping.
    execute(setup.database, "UPDATE people SET email = 'p' || id || '@example.com' WHERE id < 2")
    code, held = export_run(setup)
    assert (code, held["status"]) == (4, "held")
    assert "the segment has 2 valid members (3 invalid), fewer than min_members 3" in held["error"]
    assert log_since(setup.emulator, before) == []
