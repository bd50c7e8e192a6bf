"""``omnisync export run`` and ``omnisync history`` as real processes, and plan == run.

A delivery that only sets up the run or listing under test runs with the real engine in
this process (``Setup.run_here``); a read-only command repeated after a test's first real
process runs through the entry point in this process (:func:`here`).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest

from tests.cli import run_cli_here
from tests.engine.conftest import Setup
from tests.engine.helpers import (
    API_KEY_VARIABLE,
    TAG_ADDS,
    TAG_REMOVALS,
    UPSERTS,
    emails_of,
    execute,
    last_sequence,
    log_since,
    omnisync,
    people,
    person,
    write_segment,
)


def export_run(
    setup: Setup, *extra: str, api_key: str | None = "test-key"
) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    done = omnisync(
        "export",
        "run",
        "members",
        "--config",
        str(setup.config_path),
        "--format",
        "json",
        *extra,
        api_key=api_key,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout), done.stderr


def here(*arguments: str) -> subprocess.CompletedProcess[str]:
    """A read-only command (plan, history) through its entry point in this process."""
    return run_cli_here(*arguments, extra_env={API_KEY_VARIABLE: "test-key"})


def deliver(setup: Setup) -> None:
    """A delivery before the run under test: the real engine, in this process."""
    result = setup.run_here()
    assert result.status == "succeeded", result.error


@pytest.mark.parametrize("consent", [True, False], ids=["consent mapped", "no consent"])
def test_plan_matches_what_the_following_run_does_count_for_count(
    setup: Setup, consent: bool
) -> None:
    # With consent mapped, rows new to the ledger carry a status and known
    # ones do not: plan and run map every row through the same MappingPlan.
    setup.rewrite(consent=consent)
    rows = [*people(400), person(990, email="no-at-sign"), person(991, email=None)]
    write_segment(setup.database, rows)
    deliver(setup)
    # A day of changes: some edited, some new, some gone, one now invalid.
    picker = random.Random(11)
    chosen = picker.sample(range(400), 16)
    for number in chosen[:6]:
        execute(setup.database, "UPDATE people SET last_name = 'Шевченко' WHERE id = ?", (number,))
    for number in chosen[6:12]:
        execute(setup.database, "UPDATE people SET tier = 'silver' WHERE id = ?", (number,))
    execute(setup.database, "UPDATE people SET city = ? WHERE id = ?", ("x" * 300, chosen[12]))
    for number in range(2000, 2005):
        p = person(number)
        execute(
            setup.database,
            "INSERT INTO people VALUES (?, ?, ?, ?, ?, ?, 'gold', NULL, NULL)",
            (p.id, p.email, p.first_name, p.last_name, p.city, p.country),
        )

    planned = here("plan", "members", "--config", str(setup.config_path), "--format", "json")
    assert planned.returncode == 0, planned.stderr
    [plan] = json.loads(planned.stdout)["plans"]
    before = last_sequence(setup.emulator)
    code, run, _ = export_run(setup)
    assert code == 0, run
    log = log_since(setup.emulator, before)

    counts = run["counts"]
    # The one vocabulary: plan and run give the same numbers under the same names.
    for name in (
        "rows",
        "members",
        "invalid",
        "duplicates",
        "to_create",
        "to_update",
        "unchanged",
        "to_tag",
        "leaving",
        "to_untag",
    ):
        assert plan[name] == counts[name], name
    assert plan["to_create"] + plan["to_update"] == counts["upserted"] == 11
    assert plan["to_create"] + plan["to_update"] + plan["unchanged"] == plan["members"]
    assert sum(emails_of(log, UPSERTS).values()) == counts["upserted"]
    assert plan["to_tag"] == counts["tagged"] == sum(emails_of(log, TAG_ADDS).values()) == 5
    assert plan["to_untag"] == counts["untagged"] == sum(emails_of(log, TAG_REMOVALS).values())
    assert counts["untagged"] == 6
    assert plan["invalid"] == counts["invalid"] == 3
    assert {r["warning"]: r["count"] for r in run["warnings"]} == {
        r["reason"]: r["count"] for r in plan["warnings"]
    }
    assert {r["reason"]: r["count"] for r in plan["invalid_reasons"]} == {
        r["reason"]: r["count"] for r in run["invalid_reasons"]
    }


def test_exit_status_tells_success_partial_and_failure(setup: Setup) -> None:
    write_segment(setup.database, people(30))
    setup.emulator.set_faults(failing_emails=frozenset({"person5@example.com"}))
    code, partial, _ = export_run(setup)
    assert (code, partial["status"], partial["counts"]["upsert_failed"]) == (3, "partial", 1)
    setup.emulator.set_faults(failing_emails=frozenset())
    code, succeeded, _ = export_run(setup)
    assert (code, succeeded["status"], succeeded["counts"]["upserted"]) == (0, "succeeded", 1)
    setup.rewrite(max_profiles=10)
    code, failed, stderr = export_run(setup)
    assert (code, failed["status"]) == (1, "failed")
    assert "max_profiles" in failed["error"] and "max_profiles" in stderr


def test_a_missing_api_key_is_refused_as_a_config_problem_and_nothing_is_recorded(
    setup: Setup,
) -> None:
    write_segment(setup.database, people(5))
    for output_format in ("json", "text"):
        refused = omnisync(
            "export",
            "run",
            "members",
            "--config",
            str(setup.config_path),
            "--format",
            output_format,
            api_key=None,
        )
        assert refused.returncode == 1
        assert refused.stdout == ""  # no run summary: there was no run
        # The reference, the reason, and nothing else: no run logged, no counts.
        assert refused.stderr == (
            "omnisync export run: not running export members: connections.shop.api_key:"
            " environment variable OMNISYNC_TEST_API_KEY is not set\n"
        )
    listed = here("history", "--config", str(setup.config_path), "--format", "json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["runs"] == []
    assert setup.emulator.request_log() == []


def test_usage_errors_exit_2(setup: Setup) -> None:
    unknown = omnisync("export", "run", "vip", "--config", str(setup.config_path))
    assert unknown.returncode == 2
    assert "no export 'vip'" in unknown.stderr and "members" in unknown.stderr
    missing = omnisync("export", "run", "members", "--config", str(setup.directory / "nope.yaml"))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    bare = omnisync("export")
    assert bare.returncode == 2


def test_an_invalid_config_exits_1_with_its_diagnostics(setup: Setup) -> None:
    setup.config_path.write_text("version: 1\nexports: [\n", encoding="utf-8")
    broken = omnisync("export", "run", "members", "--config", str(setup.config_path))
    assert broken.returncode == 1
    assert f"{setup.config_path}:" in broken.stderr and "Traceback" not in broken.stderr


def test_the_text_summary(setup: Setup) -> None:
    write_segment(setup.database, [*people(20), person(99, email="bad@")])
    done = omnisync("export", "run", "members", "--config", str(setup.config_path))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("export members: succeeded (run 1, ")
    assert "  segment: 21 rows = 20 members + 1 invalid (never sent) + 0 duplicates" in done.stdout
    assert (
        "  members: 20 to create, 0 to update, 0 unchanged; 20 to tag, 0 leaving (0 to untag)"
        in done.stdout
    )
    assert "  upserts: 20 of 20 acknowledged, 0 refused" in done.stdout
    assert "tags: 20 added, 0 removed, 0 failed" in done.stdout
    assert "1: e-mail has nothing after the @ (e.g. b***@*)" in done.stdout
    assert "bad@" not in done.stdout.replace("b***@*", "")


def test_history_lists_runs_newest_first(setup: Setup) -> None:
    write_segment(setup.database, people(10))
    deliver(setup)
    setup.rewrite(max_profiles=5)
    assert export_run(setup)[0] == 1
    listed = omnisync("history", "--config", str(setup.config_path), "--format", "json")
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)["runs"]
    assert [(run["id"], run["status"], run["trigger"]) for run in runs] == [
        (2, "failed", "cli"),
        (1, "succeeded", "cli"),
    ]
    assert runs[1]["counts"]["upserted"] == 10 and "max_profiles" in runs[0]["error"]
    table = here("history", "members", "--config", str(setup.config_path), "--limit", "1")
    assert table.returncode == 0
    assert "failed" in table.stdout and "succeeded" not in table.stdout
    assert "max_profiles" in table.stdout
    # Without a config at all, straight from the state directory.
    direct = here("history", "--state-dir", str(setup.state_dir), "--format", "json")
    assert json.loads(direct.stdout) == json.loads(listed.stdout)


def test_history_before_any_run_and_for_bad_input(setup: Setup) -> None:
    empty = omnisync("history", "--config", str(setup.config_path))
    assert empty.returncode == 0 and "no runs recorded" in empty.stdout
    bad_limit = here("history", "--config", str(setup.config_path), "--limit", "0")
    assert bad_limit.returncode == 2 and "Traceback" not in bad_limit.stderr
    setup.state_dir.mkdir(parents=True, exist_ok=True)
    (setup.state_dir / "omnisync.sqlite3").write_bytes(b"garbage" * 100)
    garbage = here("history", "--config", str(setup.config_path))
    assert garbage.returncode == 1
    assert "not a database" in garbage.stderr and "Traceback" not in garbage.stderr


def test_control_characters_in_source_text_are_removed_and_counted(setup: Setup) -> None:
    write_segment(
        setup.database,
        [
            person(1, first_name="Ma\x00ria", city="Kyiv\x1b[31m"),
            person(2, last_name="Line\nbreak\tand tab"),
            person(3),
        ],
    )
    code, summary, _ = export_run(setup)
    assert code == 0
    assert setup.emulator.contact("person1@example.com")["firstName"] == "Maria"
    assert setup.emulator.contact("person1@example.com")["city"] == "Kyiv[31m"
    assert setup.emulator.contact("person2@example.com")["lastName"] == "Line break and tab"
    assert {item["warning"]: item["count"] for item in summary["warnings"]} == {
        "first_name: control characters removed": 1,
        "city: control characters removed": 1,
        "last_name: control characters removed": 1,
    }


def test_a_sqlite_install_without_psycopg_runs_an_export(setup: Setup) -> None:
    # psycopg is the optional `postgres` extra: a plain install must run a SQLite-state
    # export (a None entry in sys.modules makes `import psycopg` fail, as without it).
    write_segment(setup.database, people(5))
    script = (
        "import sys\n"
        "sys.modules['psycopg'] = None\n"
        "from omnisync.cli.main import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    environment = dict(os.environ, OMNISYNC_TEST_API_KEY="test-key")
    done = subprocess.run(
        [
            *(sys.executable, "-c", script, "export", "run", "members"),
            *("--config", str(setup.config_path), "--format", "json"),
        ],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "succeeded"
