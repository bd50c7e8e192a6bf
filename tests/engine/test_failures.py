"""A run that cannot proceed fails before sending anything, says why, and is in history."""

from __future__ import annotations

import dataclasses
import json
import sqlite3

import pytest

from omnisync.config.model import Config
from omnisync.engine.report import plan_export
from omnisync.engine.results import RunResult, Tallied
from omnisync.engine.runner import ApiKeyUnavailable, ExportBusy, ExportRunner, UnknownExport
from omnisync.state.locks import ExportLock
from tests.engine.conftest import Setup
from tests.engine.helpers import WRITES, omnisync, people, person, write_segment


def run(setup: Setup, *, config: Config | None = None, api_key: str = "test-key") -> RunResult:
    with setup.store() as store, setup.pool(api_key) as pool:
        runner = ExportRunner(
            config or setup.config(), store=store, clients=pool, clock=setup.clock
        )
        return runner.run("members", trigger="test")


def assert_failed_and_recorded(setup: Setup, result: RunResult, *fragments: str) -> None:
    assert result.status == "failed"
    assert result.error is not None
    for fragment in fragments:
        assert fragment in result.error, result.error
    assert result.counts.upserted == result.counts.tagged == 0
    writes = [r for r in setup.emulator.request_log() if r.endpoint in WRITES and r.status == 202]
    assert writes == []
    assert setup.emulator.contact_count() == 0
    with setup.store() as store:
        [record] = store.runs("members")
        assert store.count_entries("members") == 0
    assert record.status == "failed"
    assert record.error == result.error
    assert record.id == result.run_id


def test_a_source_error_fails_the_run_naming_segment_source_and_cause(setup: Setup) -> None:
    setup.rewrite(query="SELECT * FROM customers_typo WHERE tier = 'gold'")
    result = run(setup)
    assert_failed_and_recorded(setup, result, "members", "crm", "customers_typo")
    assert setup.emulator.request_log() == []


def test_a_missing_source_file_fails_the_run(setup: Setup) -> None:
    setup.database.unlink()
    result = run(setup)
    assert_failed_and_recorded(setup, result, "crm")
    assert setup.emulator.request_log() == []


def test_a_wrong_api_key_fails_the_run_with_a_401(setup: Setup) -> None:
    result = run(setup, api_key="revoked-key")
    assert_failed_and_recorded(setup, result, "401", "API key")
    assert "revoked-key" not in result.error  # type: ignore[operator]
    # Omnisend refused the first request; nothing else was tried.
    assert {record.status for record in setup.emulator.request_log()} == {401}
    assert len(setup.emulator.request_log()) <= 2
    # The key is nowhere in the state directory (database, WAL, locks).
    for path in setup.state_dir.rglob("*"):
        if path.is_file():
            assert b"revoked-key" not in path.read_bytes(), path


@pytest.mark.parametrize(
    ("environ", "reason"),
    [
        ({}, "environment variable OMNISYNC_TEST_API_KEY is not set"),
        ({"OMNISYNC_TEST_API_KEY": "two words"}, "the value contains spaces or characters"),
    ],
    ids=["unset", "malformed"],
)
def test_an_unreadable_api_key_is_refused_before_anything_is_recorded(
    setup: Setup, environ: dict[str, str], reason: str
) -> None:
    with setup.store() as store, setup.pool() as pool:
        pool_without_key = type(pool)(clock=setup.clock, environ=environ)
        runner = ExportRunner(
            setup.config(), store=store, clients=pool_without_key, clock=setup.clock
        )
        with pytest.raises(ApiKeyUnavailable) as refused:
            runner.run("members", trigger="test")
        assert str(refused.value).startswith(f"connections.shop.api_key: {reason}")
        assert "two words" not in str(refused.value)
        assert store.runs("members") == []
    assert setup.emulator.request_log() == []
    # The key is resolved on every run: once it is there, the export runs.
    assert run(setup).status == "succeeded"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("owner", "not in allowed_users"),
        ("acceptance", "data-transfer terms"),
    ],
)
def test_a_lost_permission_fails_before_any_request(
    setup: Setup, change: str, expected: str
) -> None:
    config = setup.config()
    if change == "owner":
        # marko is a contributor; the connection no longer lists him.
        shop = dataclasses.replace(config.connections["shop"], allowed_users=())
    else:
        shop = dataclasses.replace(config.connections["shop"], data_transfer_accepted=False)
    changed = dataclasses.replace(config, connections={"shop": shop})
    result = run(setup, config=changed)
    assert_failed_and_recorded(setup, result, "may not run", expected)
    assert setup.emulator.request_log() == []


def test_max_profiles_stops_the_run_before_anything_is_sent(setup: Setup) -> None:
    write_segment(setup.database, people(50))
    setup.rewrite(max_profiles=49)
    result = run(setup)
    assert_failed_and_recorded(
        setup, result, "50 contacts", "max_profiles (49)", "nothing was sent"
    )
    assert setup.emulator.request_log() == []
    assert result.counts.members == 50
    setup.rewrite(max_profiles=50)
    assert run(setup).status == "succeeded"


def test_max_profiles_counts_valid_members_as_plan_and_run_alike(setup: Setup) -> None:
    # Invalid rows are never sent, so they are no profiles; a refused run records the
    # counts its plan shows (invalid rows not counted as members to create or tag).
    rows = [*people(3), person(90, email="no-at-sign"), person(91, email=None)]
    write_segment(setup.database, rows)
    setup.rewrite(max_profiles=2)
    with setup.store() as store:
        plan = plan_export(setup.config(), "members", store=store)
    assert plan.exceeds_max_profiles and (plan.members, plan.invalid) == (3, 2)
    result = run(setup)
    assert_failed_and_recorded(setup, result, "3 contacts", "max_profiles (2)")
    tallied = [field.name for field in dataclasses.fields(Tallied)]
    with setup.store() as store:
        [record] = store.runs("members")
    for name in tallied:
        assert getattr(result.counts, name) == getattr(plan, name) == record.counts[name], name
    setup.rewrite(max_profiles=3)
    with setup.store() as store:
        assert not plan_export(setup.config(), "members", store=store).exceeds_max_profiles
    assert run(setup).status == "succeeded"


def test_a_disabled_export_does_not_run(setup: Setup) -> None:
    config = setup.config()
    export = dataclasses.replace(config.exports["members"], enabled=False)
    result = run(setup, config=dataclasses.replace(config, exports={"members": export}))
    assert_failed_and_recorded(setup, result, "disabled")


def test_an_export_already_running_elsewhere_is_refused_without_a_record(setup: Setup) -> None:
    with ExportLock(setup.state_dir, "members"), pytest.raises(ExportBusy, match="already running"):
        run(setup)
    with setup.store() as store:
        assert store.runs() == []


def test_an_unknown_export_is_refused(setup: Setup) -> None:
    with setup.store() as store, setup.pool() as pool:
        runner = ExportRunner(setup.config(), store=store, clients=pool, clock=setup.clock)
        with pytest.raises(UnknownExport, match=r"no export named 'vip'.*members"):
            runner.run("vip", trigger="test")


def test_a_killed_runs_record_is_marked_interrupted_by_the_next_run(setup: Setup) -> None:
    with setup.store() as store:
        dead = store.start_run(
            "members", trigger="schedule", config_revision="", now=setup.clock.wall()
        )
    assert run(setup).status == "succeeded"
    with setup.store() as store:
        record = store.run(dead.id)
    assert record is not None and record.status == "interrupted"


def test_a_contact_too_large_for_any_batch_is_invalid_and_the_others_are_sent(
    setup: Setup,
) -> None:
    """Every field within its limit, the whole over a batch's bytes: it can never be sent,
    so plan and run count it invalid (it failed every run, for ever, before)."""
    write_segment(setup.database, people(3))
    with sqlite3.connect(setup.database) as database:
        database.execute("ALTER TABLE people ADD COLUMN bio TEXT")
        # 130 properties of 2,048 four-byte characters: over a batch's 1,000,000 bytes.
        database.execute("UPDATE people SET bio = ? WHERE id = 1", ("🦉" * 2048,))
    database.close()
    config = setup.config_path.read_text()
    properties = "".join(f"        bio_{number}: bio\n" for number in range(130))
    mapping = "      country: country\n"
    config = config.replace(mapping, f"{mapping}      custom_properties:\n{properties}")
    setup.config_path.write_text(config)
    planned = omnisync("plan", "members", "--config", str(setup.config_path), "--format", "json")
    assert planned.returncode == 0, planned.stderr
    result = run(setup)
    assert result.status == "succeeded", result.error
    assert (result.counts.upserted, result.counts.invalid) == (2, 1)
    [reason] = result.invalid_reasons
    assert reason.reason.endswith("bytes as JSON, over the 1,000,000-byte batch limit")
    [plan] = json.loads(planned.stdout)["plans"]
    assert (plan["invalid"], plan["to_create"]) == (1, 2)
    assert setup.emulator.drain()
    assert setup.emulator.contact("person1@example.com") is None
    assert setup.emulator.contact("person2@example.com") is not None
