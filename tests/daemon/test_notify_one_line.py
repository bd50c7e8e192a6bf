"""Text from a config never leaves its line: not in systemd's notify datagrams (where a
line of its own would be an assignment, ``WATCHDOG=trigger`` a watchdog failure), not
in ``omnisync status``."""

from __future__ import annotations

import socket
import uuid
from datetime import UTC, datetime

from omnisync.daemon.notify import Notifier
from omnisync.daemon.status import ReloadResult, status_line
from tests.cli import run_cli
from tests.daemon.builders import config, export
from tests.daemon.harness import replace_file
from tests.daemon.yamlconfig import ExportYaml

#: The assignments the daemon sends, and nothing else.
KEYS = {"READY", "STATUS", "RELOADING", "MONOTONIC_USEC", "STOPPING", "WATCHDOG"}
#: An export name that, unescaped, is three lines: its own, WATCHDOG=trigger and "".
INJECTED = '"vip\\nWATCHDOG=trigger\\r\\nMAINPID=1\\n"'


def test_every_value_the_notifier_sends_is_one_line(tmp_path):
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(path)
        listener.settimeout(5)
        notifier = Notifier(path)
        notifier.ready("1 exports; FAILED: vip\nWATCHDOG=trigger\r\nMAINPID=1\x1b[2J\u2028")
        lines = listener.recv(4096).decode().split("\n")
        notifier.close()
    assert lines == [
        "READY=1",
        "STATUS=1 exports; FAILED: vip\\nWATCHDOG=trigger\\r\\nMAINPID=1\\u001b[2J\\u2028",
    ]


def test_the_status_line_is_one_line_whatever_the_error_quotes():
    failed = ReloadResult(
        ok=False,
        at=datetime(2026, 1, 1, tzinfo=UTC),
        source="watch",
        revision="sha256:000000000000",
        problems=("x.yaml:3:3: exports.vip\nWATCHDOG=trigger\n: not a valid name",),
    )
    line = status_line(config(export("a")), running=(), last_reload=failed)
    assert line.splitlines() == [line]
    assert "FAILED: x.yaml:3:3: exports.vip\\nWATCHDOG=trigger\\n: not a valid name" in line


def received(listener: socket.socket) -> list[str]:
    """Every datagram waiting on ``listener``."""
    listener.settimeout(0.5)
    datagrams = []
    while True:
        try:
            datagrams.append(listener.recv(65536).decode())
        except TimeoutError:
            return datagrams


def test_a_reload_error_from_the_config_stays_on_its_line(setup):
    config_dir = setup.root / "conf"
    config_dir.mkdir()
    config = config_dir / "omnisync.yaml"
    config.write_text(setup.render(ExportYaml("vip")))
    name = f"omnisync-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind("\0" + name)
        daemon = setup.daemon(config_dir, NOTIFY_SOCKET="@" + name).start()
        try:
            replace_file(config, setup.render(ExportYaml(INJECTED, tag="vip")))
            daemon.wait_status(lambda s: not s["last_reload"]["ok"], message="the failed reload")
            shown = run_cli("status", "--config", str(config_dir), extra_env={"COLUMNS": "500"})
        finally:
            assert daemon.stop() == 0
        datagrams = received(listener)

    lines = [line for datagram in datagrams for line in datagram.split("\n")]
    for line in lines:
        key, _, value = line.partition("=")
        assert key in KEYS, f"{line!r} in {datagrams}"
        assert key != "WATCHDOG" or value == "1", f"{line!r} in {datagrams}"
    assert any("FAILED" in line and "WATCHDOG=trigger" in line for line in lines), datagrams

    assert shown.returncode == 0, shown.stderr
    problems = [line for line in shown.stdout.splitlines() if "is not a valid name here" in line]
    assert len(problems) == 1, shown.stdout
    assert problems[0].startswith(f"  {config}:"), shown.stdout
    assert "vip\\nWATCHDOG=trigger\\r\\nMAINPID=1\\n" in problems[0], shown.stdout
    assert not any(line.startswith(("WATCHDOG", "MAINPID")) for line in shown.stdout.splitlines())
