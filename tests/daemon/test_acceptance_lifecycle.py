"""Acceptance: signals, systemd notify, refusing bad configs, stopping mid-run and resuming."""

from __future__ import annotations

import signal
import socket
import sqlite3
import uuid

import pytest

from omnisync.emulator.faults import Faults
from tests.cli import run_cli
from tests.daemon.harness import API_KEY, make_source
from tests.daemon.runfunctions import wait_until
from tests.daemon.yamlconfig import API_KEY_VARIABLE, ExportYaml


def test_sighup_reloads_and_notify_messages_come_in_order(setup):
    config_dir = setup.root / "conf"
    config_dir.mkdir()
    (config_dir / "omnisync.yaml").write_text(setup.render(ExportYaml("a", schedule="every: 1h")))
    name = f"omnisync-notify-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind("\0" + name)
        listener.settimeout(60)
        # A 1 s watchdog: the main loop must pet it every half second.
        daemon = setup.daemon(config_dir, NOTIFY_SOCKET="@" + name, WATCHDOG_USEC="1000000")
        daemon.start()
        watchdog: list[list[str]] = []
        try:
            messages: list[list[str]] = []

            def receive() -> list[str]:
                while True:
                    message = listener.recv(4096).decode().split("\n")
                    if message == ["WATCHDOG=1"]:
                        watchdog.append(message)
                        continue
                    if message[0].startswith("STATUS="):
                        continue  # a status update on its own (runs starting, ending)
                    messages.append(message)
                    return message

            ready = receive()
            assert ready[0] == "READY=1"
            assert any(line.startswith("STATUS=1 exports, revision ") for line in ready)
            started = daemon.status()["last_reload"]
            assert started["source"] == "start"

            daemon.signal(signal.SIGHUP)
            reloading = receive()
            assert reloading[0] == "RELOADING=1"
            assert reloading[1].startswith("MONOTONIC_USEC=") and int(reloading[1][15:]) > 0
            assert receive()[0] == "READY=1"
            reloaded = daemon.wait_status(
                lambda s: s["last_reload"]["source"] == "sighup", message="the SIGHUP reload"
            )
            assert reloaded["last_reload"]["ok"]
            assert reloaded["last_reload"]["at"] > started["at"]
            assert daemon.metric('omnisync_config_reloads_total{result="success"}') == 2.0
        finally:
            code = daemon.stop()
        assert code == 0
        stopping = receive()
        assert stopping[0] == "STOPPING=1"
        assert [message[0] for message in messages] == [
            "READY=1",
            "RELOADING=1",
            "READY=1",
            "STOPPING=1",
        ]


def test_refuses_to_start_on_an_invalid_config_or_a_missing_secret(setup, tmp_path):
    import os

    config_file = tmp_path / "omnisync.yaml"
    good = setup.render(ExportYaml("a"))
    config_file.write_text(good.replace("owner: olena", "owner: nobody"))
    environment = {**os.environ, API_KEY_VARIABLE: API_KEY}
    invalid = run_cli("daemon", "--config", str(config_file), env=environment)
    validate = run_cli("validate", str(config_file), env=environment)
    assert invalid.returncode == 1
    first_line = (
        validate.stdout.splitlines()[0] if validate.stdout else validate.stderr.splitlines()[0]
    )
    assert first_line in invalid.stderr.splitlines()
    assert "exports.a.owner" in invalid.stderr
    assert "Traceback" not in invalid.stderr

    config_file.write_text(good)
    environment.pop(API_KEY_VARIABLE)
    missing = run_cli("daemon", "--config", str(config_file), env=environment)
    assert missing.returncode == 1
    assert f"{config_file}:" in missing.stderr and "connections.main.api_key" in missing.stderr
    assert API_KEY_VARIABLE in missing.stderr
    assert "Traceback" not in missing.stderr
    assert not (setup.state_dir / "daemon.json").exists()

    environment[API_KEY_VARIABLE] = API_KEY
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = "{}:{}".format(*taken.getsockname())
        busy = run_cli(
            "daemon", "--config", str(config_file), "--control-listen", address, env=environment
        )
    assert busy.returncode == 1
    assert f"cannot serve the control endpoint on {address}" in busy.stderr
    assert "Traceback" not in busy.stderr and "daemon stopped" not in busy.stderr


def ledger(state_dir):
    with sqlite3.connect(state_dir / "omnisync.sqlite3") as database:
        delivered = {row[0] for row in database.execute("SELECT email FROM ledger_entries")}
        inflight = {row[0] for row in database.execute("SELECT email FROM inflight_batches")}
        runs = database.execute("SELECT trigger, status FROM runs ORDER BY id").fetchall()
    database.close()
    return delivered, inflight, runs


@pytest.mark.long(8)
def test_sigterm_during_a_run_exits_0_with_the_ledger_consistent_and_restart_resumes(setup):
    members = 2500
    make_source(setup.base.source_path, members)
    # Slow enough that a run is surely in progress when SIGTERM arrives.
    setup.emulator.set_faults(Faults(latency=0.05))
    setup.emulator.configure(batch_delay=0.3)
    config_dir = setup.root / "conf"
    config_dir.mkdir()
    (config_dir / "omnisync.yaml").write_text(
        setup.render(ExportYaml("bulk", schedule="every: 2s"))
    )
    daemon = setup.daemon(config_dir).start()

    def batches_posted():
        return [r for r in setup.emulator.request_log() if r.endpoint == "POST /batches"]

    try:
        wait_until(lambda: len(batches_posted()) >= 3, timeout=60, message="a run under way")
        assert daemon.status()["exports"]["bulk"]["state"] == "running"
    finally:
        code = daemon.stop()
    assert code == 0
    assert "daemon_drain_timeout" not in daemon.log_text()
    delivered, inflight, runs = ledger(setup.state_dir)
    assert 0 < len(delivered) < members
    assert runs[-1][1] in {"partial", "interrupted"}
    contacts = {contact["email"] for contact in setup.emulator.contacts()}
    # Everything recorded as delivered really is in Omnisend; nothing else is claimed.
    assert delivered <= contacts
    sent_before = {email for record in batches_posted() for email in record.emails}
    assert contacts <= sent_before
    # No in-flight batch lost: whatever Omnisend may have taken but the ledger does not
    # record as delivered is recorded as in flight, for the next run to settle.
    assert contacts - delivered <= inflight
    assert inflight <= sent_before
    log_before = len(setup.emulator.request_log())

    setup.emulator.set_faults(Faults())
    restarted = setup.daemon(config_dir).start()
    try:
        wait_until(
            lambda: len(ledger(setup.state_dir)[0]) == members,
            timeout=90,
            message="the resumed run",
        )
        final = restarted.wait_status(
            lambda s: (s["exports"]["bulk"]["last_run"] or {}).get("status") == "succeeded",
            message="a succeeded run",
        )
        assert final["exports"]["bulk"]["last_run"]["counts"]["upserted"] >= 0
    finally:
        assert restarted.stop() == 0
    delivered_after, inflight_after, runs_after = ledger(setup.state_dir)
    assert len(delivered_after) == members and not inflight_after
    assert runs_after[len(runs)][0] == "catch-up"
    assert setup.emulator.contact_count() == members
    assert setup.emulator.welcome_messages() == []
    # Nothing confirmed before the stop was sent again after the restart.
    resent = {
        email
        for record in setup.emulator.request_log()[log_before:]
        if record.endpoint == "POST /batches"
        for email in record.emails
    }
    assert not (resent & delivered)
