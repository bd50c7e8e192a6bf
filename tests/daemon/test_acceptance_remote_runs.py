"""Acceptance: ``omnisync export run`` through a real daemon reads like a direct run, and a
run whose API key cannot be read is refused as the config problem it is, never recorded."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from tests import cli
from tests.daemon.harness import API_KEY, make_source
from tests.daemon.harness import run_keyed_cli as run_cli
from tests.daemon.runfunctions import wait_until
from tests.daemon.yamlconfig import API_KEY_VARIABLE, ExportYaml


def recorded_runs(state_dir: Path) -> list[tuple[int, str, str]]:
    with sqlite3.connect(state_dir / "omnisync.sqlite3") as database:
        rows = database.execute("SELECT id, trigger, status FROM runs ORDER BY id").fetchall()
    database.close()
    return rows


def test_export_run_through_the_daemon_shows_progress_one_run_id_and_a_direct_runs_summary(
    setup,
):
    make_source(setup.base.source_path, 300)
    with sqlite3.connect(setup.base.source_path) as database:
        database.execute("INSERT INTO customers VALUES (999999, 'not-an-address', 'Lviv')")
    database.close()
    # Batches that take a while: the run is still sending for several polls.
    setup.emulator.configure(batch_delay=1.5)
    config_dir = setup.root / "conf"
    config_dir.mkdir()
    (config_dir / "omnisync.yaml").write_text(setup.render(ExportYaml("vip", schedule=None)))
    daemon = setup.daemon(config_dir).start()
    try:
        code, screen = cli.run_cli_in_terminal(
            "export", "run", "vip", "--config", str(config_dir),
            extra_env={API_KEY_VARIABLE: API_KEY},
        )  # fmt: skip
        assert code == 0, screen
        [(history_id, trigger, status)] = recorded_runs(setup.state_dir)
        assert (trigger, status) == ("daemon-trigger", "succeeded")  # the daemon's run
        # The progress a direct run draws: the phase, then contacts against their total.
        assert "sending to Omnisend" in screen, screen
        assert "contacts upserted" in screen and re.search(r"\b\d+/300\b", screen), screen
        # One run id, the one `omnisync history` knows; never the daemon's internal one.
        [triggered] = [e for e in daemon.log_events() if e.get("event") == "run_triggered"]
        assert triggered["fields"]["run_id"] not in screen
        assert f"is running export vip: run {history_id}\r\n" in screen, screen
        assert f"export vip: succeeded (run {history_id}, " in screen, screen
        assert "started run" not in screen

        through_daemon = run_cli(
            "export", "run", "vip", "--config", str(config_dir), "--format", "json"
        )
        assert through_daemon.returncode == 0, through_daemon.stderr
        via_daemon = json.loads(through_daemon.stdout)
        assert (via_daemon["trigger"], via_daemon["run_id"]) == ("daemon-trigger", history_id + 1)
        assert f"run {history_id + 1}" in through_daemon.stderr
    finally:
        assert daemon.stop() == 0
    direct = run_cli("export", "run", "vip", "--config", str(config_dir), "--format", "json")
    assert direct.returncode == 0, direct.stderr
    by_itself = json.loads(direct.stdout)
    assert by_itself["trigger"] == "cli"
    # The same summary document: the invalid row's reason and masked example included.
    assert by_itself.keys() == via_daemon.keys()
    assert via_daemon["invalid_reasons"], via_daemon
    assert via_daemon["invalid_reasons"] == by_itself["invalid_reasons"]
    assert via_daemon["counts"].keys() == by_itself["counts"].keys()
    assert via_daemon["counts"]["rows"] == by_itself["counts"]["rows"] == 301


def test_a_run_whose_api_key_cannot_be_read_is_refused_by_the_daemon_and_never_recorded(setup):
    key_file = setup.root / "keys" / "omnisend-api-key"
    key_file.parent.mkdir()
    key_file.write_text(API_KEY + "\n")
    config_dir = setup.root / "conf"
    config_dir.mkdir()
    (config_dir / "omnisync.yaml").write_text(
        setup.render(
            ExportYaml("vip", schedule="every: 6s"),
            api_key=f"{{file: {json.dumps(str(key_file))}}}",
        )
    )
    daemon = setup.daemon(config_dir).start()  # the key resolved when the config loaded
    try:
        headers = {"Authorization": f"Bearer {daemon.token()}"}
        first = daemon.http.post("/exports/vip/run", headers=headers)
        assert first.status_code == 202, first.text
        wait_until(
            lambda: daemon.http.get(f"/runs/{first.json()['id']}").json()["state"] == "finished",
            message="the first run",
        )
        key_file.unlink()  # ... and is gone before the first tick
        reason = f"connections.main.api_key: cannot read {key_file}: No such file or directory"
        answer = daemon.http.post("/exports/vip/run", headers=headers)
        assert (answer.status_code, answer.json()) == (422, {"error": reason})
        refused = run_cli("export", "run", "vip", "--config", str(config_dir))
        assert refused.returncode == 1
        assert refused.stdout == ""
        assert reason in refused.stderr and "Traceback" not in refused.stderr
        # The schedule's tick is refused the same way, and said so once in the log.
        tick = wait_until(
            lambda: [
                event
                for event in daemon.log_events()
                if event.get("event") == "run_refused"
                and event.get("fields", {}).get("trigger") == "schedule"
            ],
            timeout=30,
            message="the scheduled run to be refused",
        )[0]
        assert reason in tick["message"]
        # /status says so, though history's last run succeeded.
        last_run = daemon.status()["exports"]["vip"]["last_run"]
        assert (last_run["status"], last_run["error"]) == ("refused", reason)
        # Refused, not failed: no retry with backoff.
        assert daemon.status()["exports"]["vip"]["state"] != "retrying"
    finally:
        assert daemon.stop() == 0
    # Only the run before the key went is in history; the refusals logged no run.
    assert recorded_runs(setup.state_dir) == [(1, "daemon-trigger", "succeeded")]
    events = daemon.log_events()
    runs_logged = [e for e in events if e.get("event") in {"engine.run_started", "run_finished"}]
    assert len(runs_logged) == 2, runs_logged
    assert len([e for e in events if e.get("event") == "engine.run_finished"]) == 1


@pytest.mark.parametrize("full", [False, True], ids=["", "full"])
def test_export_run_whose_daemon_stops_mid_run_ends_with_the_runs_own_outcome(setup, full):
    """SIGTERM to the daemon while `export run` waits on its run: the daemon stops the run at
    a batch boundary and records it partial; the command says so (exit 3, the summary from
    history), not "failed"; what a full resync did not send is not "left for the next run"."""
    import os
    import signal
    import subprocess
    import sys

    make_source(setup.base.source_path, 500)
    setup.emulator.configure(batch_delay=2.0)
    config_dir = setup.root / "conf"
    config_dir.mkdir()
    (config_dir / "omnisync.yaml").write_text(setup.render(ExportYaml("vip", schedule=None)))
    daemon = setup.daemon(config_dir).start()
    command = subprocess.Popen(
        [sys.executable, "-m", "omnisync", "export", "run", "vip", "--config", str(config_dir)]
        + (["--full"] if full else []),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, API_KEY_VARIABLE: API_KEY},
    )
    try:
        wait_until(
            lambda: any(status == "running" for _, _, status in recorded_runs(setup.state_dir)),
            timeout=60,
            message="the daemon's run to be recorded",
        )
        wait_until(setup.emulator.batches, timeout=60, message="a first batch to be created")
        daemon.signal(signal.SIGTERM)
        out, err = command.communicate(timeout=120)
    finally:
        command.kill()
        daemon.stop()
    [(history_id, _, status)] = recorded_runs(setup.state_dir)
    assert status == "partial"
    assert command.returncode == 3, out + err
    assert f"export vip: partial (run {history_id}" in out, out
    assert f"run {history_id} ended partial, as history says" in err, err
    assert ("left for the next run:" in out) is not full, out
    assert ("not sent (run the full resync again to finish):" in out) is full, out
