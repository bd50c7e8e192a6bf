"""Awkward source values through a whole export run against the emulator on loopback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from omnisync.clock import ScaledClock
from omnisync.config.loader import load_config
from omnisync.emulator import Emulator
from omnisync.engine.clients import ClientPool
from omnisync.engine.results import RunResult
from omnisync.engine.runner import ExportRunner
from omnisync.state import open_state_store
from tests.engine.helpers import (
    API_KEY_VARIABLE,
    execute,
    people,
    person,
    write_config,
    write_segment,
)

CONSENT_LOST = "consent status without a parsable time; no status sent"


@pytest.fixture
def run_over(
    tmp_path: Path, start_emulator: Callable[..., Emulator]
) -> Callable[..., tuple[RunResult, Emulator]]:
    """Run export ``members`` once over a SQLite segment prepared by the caller."""
    clock = ScaledClock(60.0)
    emulator = start_emulator(api_keys=("test-key",), clock=clock)
    database = tmp_path / "crm.sqlite"
    state_dir = tmp_path / "state"
    config_path = write_config(
        tmp_path, base_url=emulator.base_url, database=database, state_dir=state_dir
    )
    environ = {API_KEY_VARIABLE: "test-key", "HOME": str(tmp_path)}

    def run(prepare: Callable[[Path], None]) -> tuple[RunResult, Emulator]:
        prepare(database)
        config = load_config(config_path, environ=environ)
        with (
            open_state_store(state_dir) as store,
            ClientPool(clock=clock, environ=environ) as pool,
        ):
            runner = ExportRunner(config, store=store, clients=pool, clock=clock)
            return runner.run("members", trigger="test"), emulator

    return run


def test_an_email_stored_as_a_blob_that_is_not_utf8_is_invalid_and_never_sent(
    run_over: Callable[..., tuple[RunResult, Emulator]],
) -> None:
    def prepare(database: Path) -> None:
        write_segment(database, people(3))
        execute(
            database,
            "INSERT INTO people (id, email, first_name, tier) VALUES (?, ?, 'Ann', 'gold')",
            (100, b"Ann\xe9@example.com"),
        )

    result, emulator = run_over(prepare)
    assert result.status == "succeeded", result.error
    assert (result.counts.rows, result.counts.invalid, result.counts.upserted) == (4, 1, 3)
    [invalid] = result.invalid_reasons
    assert (invalid.reason, invalid.count) == ("e-mail is binary data, not UTF-8 text", 1)
    sent = {contact["email"] for contact in emulator.contacts()}
    assert sent == {f"person{number}@example.com" for number in range(3)}


def test_consent_times_at_the_calendars_edges_neither_fail_the_run_nor_are_refused(
    run_over: Callable[..., tuple[RunResult, Emulator]],
) -> None:
    def prepare(database: Path) -> None:
        write_segment(
            database,
            [
                person(0, status_at="0001-01-01T00:00:00Z"),  # .NET's and Go's "no date"
                person(1, status_at="0001-01-01T00:00:00+01:00"),  # before year 1 in UTC
                person(2, status_at="9999-12-31T23:59:59-01:00"),  # after year 9999 in UTC
                person(3),
            ],
        )

    result, emulator = run_over(prepare)
    assert result.status == "succeeded", result.error
    assert (result.counts.invalid, result.counts.upserted, result.counts.pending) == (0, 4, 0)
    assert sorted((warning.reason, warning.count) for warning in result.warnings) == [
        (CONSENT_LOST, 2),
        ("consent time is a 'no date' value (1970 or before); no status sent", 1),
    ]
    contacts = {contact["email"]: contact for contact in emulator.contacts()}
    channels = {
        email: contact["identifiers"][0]["channels"]["email"] for email, contact in contacts.items()
    }
    assert channels["person0@example.com"]["status"] == "nonSubscribed"  # a "no date" time
    assert channels["person1@example.com"]["status"] == "nonSubscribed"
    assert channels["person2@example.com"]["status"] == "nonSubscribed"
    assert channels["person3@example.com"] == {
        "status": "subscribed",
        "statusChangedAt": "2024-05-01T10:00:00Z",
    }
