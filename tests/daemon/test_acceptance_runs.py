"""Acceptance: reloads around runs in flight, and on-demand runs through the daemon."""

from __future__ import annotations

import itertools
import sqlite3

import pytest

from omnisync.emulator.faults import Faults
from tests.daemon.harness import make_source, replace_file
from tests.daemon.harness import run_keyed_cli as run_cli
from tests.daemon.runfunctions import wait_until
from tests.daemon.yamlconfig import ExportYaml


def trigger(daemon, export: str) -> str:
    answer = daemon.http.post(
        f"/exports/{export}/run", headers={"Authorization": f"Bearer {daemon.token()}"}
    )
    assert answer.status_code == 202, answer.text
    return answer.json()["id"]


def finished(daemon, run_id: str) -> dict:
    return wait_until(
        lambda: (run := daemon.http.get(f"/runs/{run_id}").json())["state"] == "finished" and run,
        timeout=90,
        message=f"run {run_id} to finish",
    )


def test_a_reload_never_interrupts_an_unchanged_export_and_stops_a_removed_one(setup):
    make_source(setup.base.source_path, 1200)
    # Batches that take two seconds each keep both runs in flight well past the reload.
    setup.emulator.set_faults(Faults(latency=0.01))
    setup.emulator.configure(batch_delay=2.0)
    config_dir = setup.root / "conf"
    config_dir.mkdir()
    config_file = config_dir / "omnisync.yaml"
    steady = ExportYaml("steady", schedule=None)
    doomed = ExportYaml("doomed", schedule=None, segment="some", tag="doomed-tag")
    other = ExportYaml("other", schedule="every: 1h", segment="some", tag="other-tag")
    config_file.write_text(setup.render(steady, doomed, other))
    daemon = setup.daemon(config_dir).start()
    try:
        steady_run = trigger(daemon, "steady")
        doomed_run = trigger(daemon, "doomed")
        daemon.wait_status(
            lambda s: (
                s["exports"]["steady"]["state"] == "running"
                and s["exports"]["doomed"]["state"] == "running"
            ),
            message="both runs under way",
        )
        wait_until(
            lambda: sum(r.endpoint == "POST /batches" for r in setup.emulator.request_log()) >= 2,
            message="batches flowing",
        )
        # Edit another export and remove `doomed`; `steady` is untouched.
        changed_other = ExportYaml("other", schedule="every: 2h", segment="some", tag="renamed")
        replace_file(config_file, setup.render(steady, changed_other))
        reloaded = daemon.wait_status(lambda s: "doomed" not in s["exports"], message="the reload")
        assert reloaded["exports"]["other"]["schedule"] == "every 2h"

        stopped = finished(daemon, doomed_run)
        assert stopped["stop_reason"] == "removed"
        assert stopped["status"] == "partial"
        assert stopped["counts"]["pending"] > 0

        kept = finished(daemon, steady_run)
        assert kept["stop_reason"] is None
        assert kept["status"] == "succeeded"
        assert kept["counts"]["upserted"] == 1200
        assert setup.emulator.contact_count() == 1200
    finally:
        assert daemon.stop() == 0


def history(state_dir) -> list[tuple[str, str, str, str]]:
    with sqlite3.connect(state_dir / "omnisync.sqlite3") as database:
        rows = database.execute(
            "SELECT trigger, status, started_at, ended_at FROM runs ORDER BY started_at"
        ).fetchall()
    database.close()
    return rows


@pytest.mark.long(11)
def test_export_run_goes_through_the_daemon_and_never_overlaps_a_scheduled_run(setup):
    make_source(setup.base.source_path, 300)
    setup.emulator.set_faults(Faults(force_429_count=2, force_429_retry_after=1))
    config_dir = setup.root / "conf"
    config_dir.mkdir()
    (config_dir / "omnisync.yaml").write_text(setup.render(ExportYaml("vip", schedule="every: 2s")))
    daemon = setup.daemon(config_dir).start()
    try:
        for _ in range(2):
            done = run_cli("export", "run", "vip", "--config", str(config_dir))
            assert done.returncode == 0, done.stdout + done.stderr
            assert "is running export vip: run " in done.stderr  # the daemon's, not direct
        # A contact Omnisend refuses: every run from now on is partial (exit 3).
        setup.emulator.set_faults(Faults(failing_emails=frozenset({"refused@example.com"})))
        with sqlite3.connect(setup.base.source_path) as database:
            database.execute(
                "INSERT INTO customers (id, email, city)"
                " VALUES (999999, 'refused@example.com', 'Lviv')"
            )
        database.close()
        partial = run_cli("export", "run", "vip", "--config", str(config_dir))
        assert partial.returncode == 3, partial.stdout + partial.stderr
        wait_until(
            lambda: any(trigger == "schedule" for trigger, *_ in history(setup.state_dir)),
            message="a scheduled run",
        )
        assert (daemon.metric('omnisync_rate_limited_total{connection="main"}') or 0) >= 1
    finally:
        assert daemon.stop() == 0
    runs = history(setup.state_dir)
    triggers = [trigger for trigger, *_ in runs]
    assert triggers.count("daemon-trigger") == 3
    assert "cli" not in triggers
    for (_, _, _, ended), (_, _, started, _) in itertools.pairwise(runs):
        assert ended is not None and ended <= started, runs  # one at a time, never overlapping

    # Without a daemon the same command runs the export itself.
    direct = run_cli("export", "run", "vip", "--config", str(config_dir))
    assert direct.returncode == 3, direct.stdout + direct.stderr
    assert history(setup.state_dir)[-1][0] == "cli"
