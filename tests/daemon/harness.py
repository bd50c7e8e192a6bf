"""Driving a real ``omnisync daemon`` process: start it, watch it, edit its config, signal it."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.cli import run_cli
from tests.daemon.runfunctions import wait_until
from tests.daemon.yamlconfig import API_KEY_VARIABLE

API_KEY = "daemon-test-key-0123456789"

#: Generous: the first import of everything takes a while on a loaded 2-core CI machine.
START_TIMEOUT = 60.0


def make_source(path: Path, count: int, *, city: str = "Kyiv") -> None:
    """A SQLite customer database with ``count`` profiles."""
    with sqlite3.connect(path) as database:
        database.execute("DROP TABLE IF EXISTS customers")
        database.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT, city TEXT)")
        database.executemany(
            "INSERT INTO customers (id, email, city) VALUES (?, ?, ?)",
            ((number, f"customer{number:06d}@example.com", city) for number in range(count)),
        )
    database.close()


def replace_file(path: Path, text: str) -> None:
    """Save like an editor that writes a temporary file and renames it over the old one."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


@dataclass
class DaemonProcess:
    """One ``python -m omnisync daemon`` child process and the files it leaves."""

    config_path: Path
    state_dir: Path
    log_path: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    _client: httpx.Client | None = None

    def start(self, *, wait: bool = True) -> DaemonProcess:
        environment = {**os.environ, API_KEY_VARIABLE: API_KEY, "PYTHONUNBUFFERED": "1"}
        # The test runner itself may run under systemd: never talk to the real manager.
        for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
            environment.pop(name, None)
        environment.update(self.extra_env)
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command(),
            stdout=self._log,
            stderr=self._log,
            env=environment,
        )
        if wait:
            self.wait_ready()
        return self

    def command(self) -> list[str]:
        """The command line that starts the daemon."""
        return [sys.executable, *self.daemon_arguments()]

    def daemon_arguments(self) -> list[str]:
        """``-m omnisync daemon ...`` as every test daemon runs."""
        return [
            "-m",
            "omnisync",
            "daemon",
            "--config",
            str(self.config_path),
            "--log-format",
            "json",
            "--shutdown-timeout",
            "20",
        ]

    def wait_ready(self) -> None:
        assert self.process is not None

        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"daemon exited with {self.process.returncode}:\n{self.log_text()}"
                )
            info_path = self.state_dir / "daemon.json"
            try:
                info = json.loads(info_path.read_text())
            except (OSError, ValueError):
                return False
            if info.get("pid") != self.process.pid:
                return False
            self._client = httpx.Client(
                base_url=f"http://{info['address']}", timeout=10, trust_env=False
            )
            return True

        wait_until(ready, timeout=START_TIMEOUT, interval=0.1, message="the daemon to start")

    @property
    def http(self) -> httpx.Client:
        assert self._client is not None, "daemon not started"
        return self._client

    def status(self) -> dict[str, Any]:
        response = self.http.get("/status")
        response.raise_for_status()
        return response.json()

    def metrics(self) -> str:
        return self.http.get("/metrics").text

    def metric(self, name: str) -> float | None:
        """The value of one unlabelled metric, or a labelled one given as ``name{...}``."""
        for line in self.metrics().splitlines():
            if line.startswith(name + " ") or (("{" in name) and line.startswith(name)):
                return float(line.rsplit(" ", 1)[1])
        return None

    def token(self) -> str:
        return (self.state_dir / "control.token").read_text().strip()

    def signal(self, number: int) -> None:
        assert self.process is not None
        self.process.send_signal(number)

    def stop(self, *, timeout: float = 60.0) -> int:
        """SIGTERM and wait; the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout)
        if self._client is not None:
            self._client.close()
            self._client = None
        self._log.close()
        return code

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        if self._client is not None:
            self._client.close()
            self._client = None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_events(self) -> list[dict[str, Any]]:
        events = []
        for line in self.log_text().splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
        return events

    def wait_status(self, predicate, *, message: str, timeout: float = 30.0) -> dict[str, Any]:
        """Poll ``/status`` until ``predicate(status)`` holds; that status."""

        def check():
            document = self.status()
            return document if predicate(document) else None

        return wait_until(check, timeout=timeout, interval=0.1, message=message)


def run_keyed_cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    """``omnisync ARGUMENTS`` with the daemon configs' API key in its environment."""
    return run_cli(*arguments, extra_env={API_KEY_VARIABLE: API_KEY})
