"""The systemd unit: the settings the daemon relies on, verified and rated by systemd itself.

The unit runs the documented install's script, ``/opt/omnisync/bin/omnisync``
(README.md, "Running as a service"; tests/daemon/test_install.py follows
those steps in a scratch root).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "omnisync.service"
#: Where the README installs omnisync, and so where the unit runs it from.
DOCUMENTED_BINARY = Path("/opt/omnisync/bin/omnisync")

needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


def settings() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_unit_has_what_the_daemon_relies_on():
    unit = settings()
    assert unit["Type"] == ["notify"]
    assert unit["ExecStart"] == [f"{DOCUMENTED_BINARY} daemon --config /etc/omnisync"]
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert unit["Restart"] == ["on-failure"]
    assert unit["DynamicUser"] == ["yes"]
    assert unit["StateDirectory"] == ["omnisync"]
    assert unit["ConfigurationDirectory"] == ["omnisync"]
    assert unit["LoadCredential"] == ["omnisend-api-key:/etc/omnisync/credentials/omnisend-api-key"]
    assert unit["WatchdogSec"]
    # The stop timeout must leave room for the daemon's own 30 s drain.
    assert int(unit["TimeoutStopSec"][0].removesuffix("s")) > 30


def installable_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at an executable that exists here."""
    script = Path(sys.executable).parent / "omnisync"
    command = str(script) if script.exists() else f"{sys.executable} -m omnisync"
    copy = tmp_path / "omnisync.service"
    copy.write_text(UNIT.read_text().replace(str(DOCUMENTED_BINARY), command))
    return copy


@needs_systemd_analyze
def test_systemd_analyze_verify_passes(tmp_path):
    result = subprocess.run(
        ["systemd-analyze", "verify", str(installable_copy(tmp_path))],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "omnisync.service" not in result.stderr, result.stderr


@needs_systemd_analyze
def test_systemd_analyze_security_rates_it_at_most_1_2(tmp_path):
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(installable_copy(tmp_path))],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)
    assert match is not None, result.stdout + result.stderr
    exposure = float(match.group(1))
    print(f"systemd-analyze security exposure: {exposure}")
    assert exposure <= 1.2


@contextlib.contextmanager
def binary_at_documented_path():
    """``/opt/omnisync/bin/omnisync`` exists while inside: the real one when installed, else
    (as root only) a link to this environment's script, removed afterwards with every
    directory made for it."""
    if DOCUMENTED_BINARY.exists():
        yield
        return
    if os.geteuid() != 0:
        pytest.skip(f"{DOCUMENTED_BINARY} is not installed, and only root may put it there")
    script = Path(sys.executable).parent / "omnisync"
    if not script.exists():
        pytest.skip(f"no omnisync script beside {sys.executable} to stand in for it")
    made = [parent for parent in reversed(DOCUMENTED_BINARY.parents) if not parent.exists()]
    for directory in made:
        directory.mkdir()
    DOCUMENTED_BINARY.symlink_to(script)
    try:
        yield
    finally:
        DOCUMENTED_BINARY.unlink()
        for directory in reversed(made):
            directory.rmdir()


@needs_systemd_analyze
def test_the_unit_as_shipped_verifies_with_omnisync_installed_where_documented():
    with binary_at_documented_path():
        result = subprocess.run(
            ["systemd-analyze", "verify", str(UNIT)],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 0, result.stderr
    assert "omnisync.service" not in result.stderr, result.stderr


def test_the_daemon_guide_installs_omnisync_where_the_unit_runs_it():
    # docs/daemon.md once installed to /usr/bin and a venv the unit never ran: a unit
    # installed as shipped then failed with 203/EXEC.
    guide = (UNIT.parents[1] / "docs" / "daemon.md").read_text(encoding="utf-8")
    install = guide.split("## Install with systemd", 1)[1].split("\n## ", 1)[0]
    [exec_start] = settings()["ExecStart"]
    assert exec_start.split()[0] == str(DOCUMENTED_BINARY)
    assert f"python3 -m venv {DOCUMENTED_BINARY.parents[1]} " in install
    assert f"{DOCUMENTED_BINARY.parent}/pip install ." in install
    assert "/usr/bin/omnisync" not in install
