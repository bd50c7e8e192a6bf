"""Acceptance: what a restarted daemon, or a replica taking a brand, catches up on (real
daemons): a run the previous daemon left unfinished is resumed, schedules or not, and a
scheduled fire runs once, only when it was missed."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import pytest

from tests.cli import run_cli
from tests.conftest import fresh_database
from tests.daemon.cluster import ClusterExport, cluster
from tests.daemon.harness import make_source
from tests.daemon.runfunctions import wait_until
from tests.daemon.yamlconfig import ExportYaml

MEMBERS = 2_000


def _runs(state_dir) -> list[tuple[str, str]]:
    with sqlite3.connect(state_dir / "omnisync.sqlite3") as database:
        rows = database.execute("SELECT trigger, status FROM runs ORDER BY id")
        runs = rows.fetchall()
    database.close()
    return runs


@pytest.mark.long(20)
def test_an_on_demand_run_killed_with_its_daemon_is_resumed_by_the_next_one(setup):
    make_source(setup.base.source_path, MEMBERS)
    setup.emulator.configure(batch_delay=0.3)
    config_dir = setup.root / "conf"
    config_dir.mkdir()
    (config_dir / "omnisync.yaml").write_text(setup.render(ExportYaml("vip", schedule=None)))
    daemon = setup.daemon(config_dir).start()
    try:
        asked = daemon.http.post(
            "/exports/vip/run", headers={"Authorization": f"Bearer {daemon.token()}"}
        )
        assert asked.status_code == 202, asked.text
        wait_until(
            lambda: len(setup.emulator.contacts()) >= 300,
            timeout=60,
            message="the on-demand run to be under way",
        )
    finally:
        daemon.kill()
    assert _runs(setup.state_dir) == [("daemon-trigger", "running")]
    setup.emulator.configure(batch_delay=0.02)
    restarted = setup.daemon(config_dir).start()
    try:
        restarted.wait_status(
            lambda s: (s["exports"]["vip"]["last_run"] or {}).get("status") == "succeeded",
            timeout=60,
            message="the restarted daemon to resume the on-demand run",
        )
    finally:
        assert restarted.stop() == 0
    # The dead run's record says so (no longer "running"); the resumed run finished it.
    assert _runs(setup.state_dir) == [
        ("daemon-trigger", "interrupted"),
        ("catch-up", "succeeded"),
    ]
    contacts = setup.emulator.contacts()
    assert len(contacts) == MEMBERS
    assert all("vip" in contact["tags"] for contact in contacts)


#: Yearly, at midnight in Kyiv: 22:00 UTC on December 31 (a zone's wall clock).
NEW_YEAR = "cron: '0 0 1 1 *', timezone: Europe/Kyiv"


@pytest.mark.long(40)
def test_a_cron_export_runs_on_taking_its_brand_only_for_a_fire_missed_since_its_last_run(
    tmp_path, postgres_admin_dsn
):
    now = datetime.now(UTC)
    year = now.year - (now < datetime(now.year, 12, 31, 22, tzinfo=UTC))
    fire = f"{year}-12-31T22:00:00.000Z"  # the latest fire
    with (
        fresh_database(postgres_admin_dsn) as dsn,
        cluster(
            tmp_path, dsn, brands=1, replicas=1, exports=(ClusterExport("vip", 0, NEW_YEAR),)
        ) as group,
    ):
        config = tmp_path / "omnisync-0.yaml"
        config.write_text(group.config_text(0))
        # Run by hand while no replica runs: the command runs it itself.
        by_hand = run_cli(
            "export", "run", "vip", "--config", str(config), extra_env=group.environment(0)
        )
        assert by_hand.returncode == 0, by_hand.stderr

        def restart_and_ask() -> list[tuple[str, str]]:
            """Start the replica, ask it for a run once it holds the brand (it has caught up
            by then), stop it; the triggers and statuses of the runs since the last call."""
            before = len(group.runs())
            process = group.start(0)
            wait_until(lambda: group.holders() == {"brand-0": "r0"}, timeout=30, interval=0.2)
            asked = run_cli(
                "export", "run", "vip", "--config", str(config), extra_env=group.environment(0)
            )
            assert process.stop() == 0
            assert asked.returncode == 0, asked.stderr
            return [(run["trigger"], run["status"]) for run in group.runs()[before:]]

        # Started, and restarted, with no fire since its last run: it runs only what is
        # asked for.
        assert restart_and_ask() == [("cli request", "succeeded")]
        assert restart_and_ask() == [("cli request", "succeeded")]
        assert group.query("SELECT fire_time FROM schedule_fires") == []
        # Its last run started before the latest fire (no replica ran then): that fire is
        # run once, on taking the brand, and claimed as that fire.
        group.query(
            "UPDATE runs SET started_at = %s, ended_at = %s RETURNING id",
            (f"{year}-12-31T21:00:00.000Z", f"{year}-12-31T21:00:01.000Z"),
        )
        assert restart_and_ask() == [("schedule", "succeeded"), ("cli request", "succeeded")]
        assert group.query("SELECT fire_time FROM schedule_fires") == [(fire,)]
        assert restart_and_ask() == [("cli request", "succeeded")]
