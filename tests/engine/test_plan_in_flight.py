"""`plan` after a stopped or killed run: the contacts of its unsettled batches are counted
as the plan finds them (to create, to update), while the run first asks Omnisend about them
and counts those accepted as unchanged; the plan says how many there are."""

from __future__ import annotations

import json

from omnisync.engine.plan_render import render_markdown
from omnisync.engine.report import in_flight, plan_export
from omnisync.state import InflightItem
from tests.engine.conftest import Setup
from tests.engine.helpers import omnisync, people, write_segment
from tests.state.backends import PostgresBackend


def test_plan_says_how_many_contacts_a_killed_run_left_in_batches(setup: Setup) -> None:
    write_segment(setup.database, people(30))
    with setup.store() as store:
        sent = [InflightItem(f"person{number}@example.com", 1, True) for number in range(12)]
        store.record_intent("members", "token-a", sent[:5], now=setup.clock.wall())
        store.record_intent("members", "token-b", sent[5:], now=setup.clock.wall())
        store.record_created("members", "token-b", "batch-b", now=setup.clock.wall())
    config = str(setup.config_path)
    planned = omnisync("plan", "members", "--config", config, "--format", "json")
    assert planned.returncode == 0, planned.stderr
    (plan,) = json.loads(planned.stdout)["plans"]
    assert (plan["in_flight"], plan["to_create"]) == (12, 30)
    text = omnisync("plan", "members", "--config", config, "--format", "text").stdout
    assert "NOTE: 12 contact(s) are in batches a stopped or killed run sent" in text
    markdown = render_markdown([plan_export(setup.config(), "members")])
    assert "> [!NOTE]\n> 12 contact(s) are in batches" in markdown


def test_a_plan_without_a_state_file_or_in_flight_batches_says_nothing(setup: Setup) -> None:
    write_segment(setup.database, people(3))
    assert in_flight(setup.config(), "members", store=None) == 0  # no state file yet
    text = omnisync("plan", "members", "--config", str(setup.config_path)).stdout
    assert "NOTE" not in text


def test_in_flight_contacts_are_counted_from_a_postgresql_store(tmp_path, setup: Setup) -> None:
    backend = PostgresBackend(tmp_path)
    store = backend.open()
    try:
        sent = [InflightItem(f"person{number}@example.com", 1, True) for number in range(7)]
        store.record_intent("members", "token-a", sent[:3], now=setup.clock.wall())
        store.record_intent("members", "token-b", sent[3:], now=setup.clock.wall())
        store.record_created("members", "token-b", "batch-b", now=setup.clock.wall())
        assert in_flight(setup.config(), "members", store=store) == 7
        assert in_flight(setup.config(), "other", store=store) == 0
    finally:
        store.close()
