"""An idle daemon exits promptly on SIGTERM, even with monitoring connections open."""

from __future__ import annotations

import signal
import socket
import time

import httpx

from tests.daemon.harness import DaemonProcess
from tests.daemon.yamlconfig import ExportYaml
from tests.operator.configs import write_config

#: The promise is "within a second"; the margin is for a loaded 2-core CI machine.
LIMIT_SECONDS = 1.5


def test_an_idle_daemon_exits_on_sigterm_within_a_second(tmp_path):
    directory = tmp_path / "conf"
    write_config(
        directory,
        ExportYaml("weekly", schedule="every: 15m"),
        ExportYaml("vip", schedule="cron: '0 */6 * * *', timezone: Europe/Kyiv"),
        ExportYaml("adhoc", schedule=None),
    )
    daemon = DaemonProcess(
        config_path=directory, state_dir=directory / "state", log_path=tmp_path / "daemon.log"
    ).start()
    assert daemon.process is not None
    address = daemon.status()["daemon"]["control_address"]
    host, _, port = address.rpartition(":")
    # What is usually connected: a keep-alive scraper, and a client that said nothing yet.
    scraper = httpx.Client(base_url=f"http://{address}", trust_env=False)
    silent = socket.create_connection((host, int(port)))
    try:
        assert scraper.get("/metrics").status_code == 200
        time.sleep(1.0)  # settled: nothing running, the watcher and scheduler idle
        started = time.monotonic()
        daemon.process.send_signal(signal.SIGTERM)
        daemon.process.wait(timeout=60)
        took = time.monotonic() - started
    finally:
        scraper.close()
        silent.close()
        daemon.kill()  # only if it is still running: a failure above
    code = daemon.stop()
    print(f"SIGTERM to exit: {took:.3f} s")
    assert code == 0, daemon.log_text()
    assert took < LIMIT_SECONDS, f"took {took:.2f} s to exit\n{daemon.log_text()}"
    assert "daemon_stopped" in daemon.log_text()
