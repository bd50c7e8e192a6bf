"""One daemon per state directory: a second daemon on a state directory in use refuses to
start and leaves the first one's files alone; a killed daemon's lock never blocks a restart.

Real daemon processes, real files.
"""

from __future__ import annotations

import os
import stat

from tests.daemon.harness import DaemonProcess
from tests.daemon.yamlconfig import ExportYaml

#: How long a refused daemon may take to say so: it imports and loads the config first.
REFUSAL_TIMEOUT = 90.0


def write_config(setup):
    config_dir = setup.root / "conf"
    config_dir.mkdir(exist_ok=True)
    (config_dir / "omnisync.yaml").write_text(setup.render(ExportYaml("vip", schedule=None)))
    return config_dir


def second_daemon(setup, config_dir) -> DaemonProcess:
    """A daemon on the same config (so the same state directory), logging to its own file."""
    return DaemonProcess(
        config_path=config_dir, state_dir=setup.state_dir, log_path=setup.root / "second.log"
    )


def test_a_second_daemon_on_a_state_directory_in_use_refuses_and_changes_nothing(setup):
    config_dir = write_config(setup)
    first = setup.daemon(config_dir).start()
    second = second_daemon(setup, config_dir)
    try:
        info_before = (setup.state_dir / "daemon.json").read_bytes()
        token_before = (setup.state_dir / "control.token").read_bytes()
        second.start(wait=False)
        assert second.process is not None
        code = second.process.wait(timeout=REFUSAL_TIMEOUT)
        output = second.log_text()
        assert code == 1, output
        assert (
            f"another omnisync daemon (pid {first.process.pid}) already uses"
            f" the state directory {setup.state_dir}"
        ) in output
        assert "daemon.state_dir" in output
        assert "Traceback" not in output and "daemon started" not in output
        assert (setup.state_dir / "daemon.json").read_bytes() == info_before
        assert (setup.state_dir / "control.token").read_bytes() == token_before
        lock = setup.state_dir / "daemon.lock"
        assert stat.S_IMODE(os.stat(lock).st_mode) == 0o600
        # The first daemon never noticed: it answers, and its token still works.
        assert first.http.get("/healthz").status_code == 200
        answer = first.http.post(
            "/exports/vip/run", headers={"Authorization": f"Bearer {first.token()}"}
        )
        assert answer.status_code == 202, answer.text
    finally:
        second.kill()
        assert first.stop() == 0
    # The first daemon's clean exit removed its own record, as always.
    assert not (setup.state_dir / "daemon.json").exists()


def test_a_daemon_starts_on_the_state_directory_of_a_killed_one(setup):
    config_dir = write_config(setup)
    killed = setup.daemon(config_dir).start()
    assert killed.process is not None
    killed_pid = killed.process.pid
    killed.kill()  # SIGKILL: no clean exit, daemon.json and daemon.lock stay behind
    assert (setup.state_dir / "daemon.lock").exists()
    assert (setup.state_dir / "daemon.json").exists()

    restarted = second_daemon(setup, config_dir).start()  # waits for its own daemon.json
    try:
        assert restarted.process is not None and restarted.process.pid != killed_pid
        assert restarted.http.get("/healthz").status_code == 200
        assert restarted.status()["daemon"]["pid"] == restarted.process.pid
    finally:
        assert restarted.stop() == 0
