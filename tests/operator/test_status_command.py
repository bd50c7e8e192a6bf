"""`omnisync status` against a real daemon: found from the config even while it is broken,
honest when nothing runs, and readable in 80 columns.

The daemon is always a process of its own. The first status of each exit code is one too
(:func:`status`); the lookups after them run through the entry point in this process
(:func:`status_here`), with no interpreter to start.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli import run_cli, run_cli_here
from tests.daemon.harness import DaemonProcess, replace_file
from tests.daemon.yamlconfig import ExportYaml
from tests.operator.configs import write_config

SHORT_NAMES = (
    ExportYaml("ukraine-newsletter", schedule="every: 15m"),
    ExportYaml("vip", schedule="cron: '0 */6 * * *', timezone: Europe/Kyiv"),
    ExportYaml("adhoc", schedule=None),
)
LONG_NAME = "newsletter_subscribers_lapsed_ninety_days"


def start_daemon(config: Path, state_dir: Path, **env: str) -> DaemonProcess:
    return DaemonProcess(
        config_path=config,
        state_dir=state_dir,
        log_path=config.parent / "daemon.log",
        extra_env=env,
    ).start()


def status(*arguments: str, **env: str):
    return run_cli("status", *arguments, extra_env={"COLUMNS": "80", **env}, timeout=60)


def status_here(*arguments: str, **env: str):
    """:func:`status` through the entry point in this process."""
    return run_cli_here("status", *arguments, extra_env={"COLUMNS": "80", **env})


def assert_fits_80_columns(text: str, names: list[str]) -> None:
    for line in text.splitlines():
        assert len(line) <= 80, f"{len(line)} columns: {line!r}\n{text}"
    words = {word for line in text.splitlines() for word in line.split()}
    for name in names:
        assert name in words, f"{name} is cut or missing:\n{text}"


def test_status_fits_80_columns_and_shows_schedules_as_written(tmp_path):
    config = write_config(tmp_path / "conf", *SHORT_NAMES)
    daemon = start_daemon(config, tmp_path / "conf" / "state")
    try:
        result = status("--config", str(config))
    finally:
        assert daemon.stop() == 0
    assert result.returncode == 0, result.stderr
    assert_fits_80_columns(result.stdout, [export.name for export in SHORT_NAMES])
    assert "every 15m" in result.stdout
    assert "900s" not in result.stdout
    assert "cron '0 */6 * * *'" in result.stdout and "(Europe/Kyiv)" in result.stdout
    header = next(line for line in result.stdout.splitlines() if "export" in line.split())
    assert header.split()[:3] == ["export", "state", "schedule"]


def test_status_finds_the_daemon_from_a_broken_config_and_keeps_long_names_whole(tmp_path):
    config = write_config(
        tmp_path / "conf", ExportYaml(LONG_NAME, schedule="every: 15m"), *SHORT_NAMES[:1]
    )
    good = config.read_text()
    state_dir = tmp_path / "conf" / "state"
    daemon = start_daemon(config, state_dir)
    try:
        long_names = status_here("--config", str(config))
        assert long_names.returncode == 0, long_names.stderr
        assert_fits_80_columns(long_names.stdout, [LONG_NAME, "ukraine-newsletter"])

        # Broken YAML (the daemon keeps its last good config): found all the same.
        replace_file(config, good.replace("exports:", "exports: [", 1))
        daemon.wait_status(lambda s: not s["last_reload"]["ok"], message="the failed reload")
        broken = status_here("--config", str(config), "--format", "json")
        assert broken.returncode == 0, broken.stderr
        assert json.loads(broken.stdout)["daemon"]["pid"] == daemon.process.pid
        assert "does not load" in broken.stderr and str(config) in broken.stderr
        # The same through $OMNISYNC_CONFIG, as text.
        from_environment = status_here(OMNISYNC_CONFIG=str(config))
        assert from_environment.returncode == 0, from_environment.stderr
        assert "FAILED" in from_environment.stdout and LONG_NAME in from_environment.stdout

        # Valid YAML the schema refuses: found through daemon.state_dir as well.
        replace_file(config, good.replace("owner: olena", "owner: olena\n    colour: red", 1))
        invalid = status_here("--config", str(config), "--format", "json")
        assert invalid.returncode == 0, invalid.stderr
        assert json.loads(invalid.stdout)["daemon"]["state_dir"] == str(state_dir)
    finally:
        assert daemon.stop() == 0

    gone = status("--config", str(config))
    assert gone.returncode == 1
    assert "no daemon is running for the config" in gone.stderr
    assert str(config) in gone.stderr and str(state_dir) in gone.stderr


def test_a_broken_config_without_state_dir_is_looked_for_in_the_default_one(tmp_path):
    xdg = tmp_path / "xdg"
    config = write_config(tmp_path / "conf", *SHORT_NAMES[:1])
    text = "".join(line for line in config.read_text().splitlines(True) if "state_dir:" not in line)
    config.write_text(text)
    daemon = start_daemon(config, xdg / "omnisync", XDG_STATE_HOME=str(xdg))
    try:
        replace_file(config, text.replace("version: 1", "version: 1\nbogus: [", 1))
        found = status_here("--config", str(config), XDG_STATE_HOME=str(xdg))
        assert found.returncode == 0, found.stderr
        assert "ukraine-newsletter" in found.stdout
    finally:
        assert daemon.stop() == 0
    gone = status_here("--config", str(config), XDG_STATE_HOME=str(xdg))
    assert gone.returncode == 1
    assert str(config) in gone.stderr
    assert str(xdg / "omnisync") in gone.stderr and "default state directory" in gone.stderr


def test_an_unreadable_config_path_is_a_usage_error(tmp_path):
    result = status("--config", str(tmp_path / "nowhere.yaml"))
    assert result.returncode == 2
    assert str(tmp_path / "nowhere.yaml") in result.stderr


@pytest.fixture(autouse=True)
def _no_inherited_config(monkeypatch):
    monkeypatch.delenv("OMNISYNC_CONFIG", raising=False)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
