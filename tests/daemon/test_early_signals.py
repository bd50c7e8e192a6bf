"""A signal while the daemon is still starting (loading its config, asking git, claiming
its state directory) never kills it: SIGHUP is a reload once it serves, SIGTERM a clean
exit. The first git the daemon runs waits at a gate, so the signal lands mid-start."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

from tests.daemon.harness import DaemonProcess
from tests.daemon.runfunctions import wait_until
from tests.daemon.yamlconfig import ExportYaml

GATED_GIT = """#!/bin/sh
if [ ! -e "{gate}/open" ]; then
    : > "{gate}/waiting"
    tries=0
    while [ ! -e "{gate}/open" ] && [ "$tries" -lt 200 ]; do
        sleep 0.01
        tries=$((tries + 1))
    done
fi
exec "{git}" "$@"
"""


def starting_daemon(setup) -> tuple[DaemonProcess, Path]:
    """A daemon stopped at its first git call, and the gate to open to let it go on."""
    real_git = shutil.which("git")
    assert real_git is not None, "the daemon's tests need git"
    gate, directory = setup.root / "gate", setup.root / "bin"
    gate.mkdir()
    directory.mkdir()
    script = directory / "git"
    script.write_text(GATED_GIT.format(gate=gate, git=real_git))
    script.chmod(0o755)
    config_dir = setup.root / "conf"
    config_dir.mkdir()
    (config_dir / "omnisync.yaml").write_text(setup.render(ExportYaml("a")))
    path = f"{directory}{os.pathsep}{os.environ.get('PATH', '')}"
    daemon = setup.daemon(config_dir, PATH=path).start(wait=False)
    assert daemon.process is not None
    process = daemon.process
    wait_until(
        lambda: (gate / "waiting").exists() or process.poll() is not None,
        timeout=60,
        message="the daemon's first git call",
    )
    assert process.poll() is None, daemon.log_text()
    return daemon, gate


def test_a_sighup_while_starting_is_a_reload_once_it_serves(setup):
    daemon, gate = starting_daemon(setup)
    try:
        daemon.signal(signal.SIGHUP)
        (gate / "open").touch()
        daemon.wait_ready()
        reloaded = daemon.wait_status(
            lambda s: [r["source"] for r in s["reloads"]] == ["start", "sighup"],
            message="the reload the SIGHUP asked for",
        )
        assert reloaded["last_reload"]["ok"]
    finally:
        code = daemon.stop()
    assert code == 0, daemon.log_text()


def test_a_sigterm_while_starting_exits_cleanly_before_serving(setup):
    daemon, gate = starting_daemon(setup)
    daemon.signal(signal.SIGTERM)
    (gate / "open").touch()
    code = daemon.stop()
    assert code == 0, daemon.log_text()
    assert not (setup.state_dir / "daemon.json").exists()
    events = [event.get("event") for event in daemon.log_events()]
    assert "daemon_stopped" in events and "daemon_started" not in events, daemon.log_text()
