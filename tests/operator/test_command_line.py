"""The ``omnisync`` command line: every command listed, only the named one imported.

The first run of each exit code is a process of its own, and so is whatever is about the
process (its imports, a closed pipe); a command's own help and --version run through the
entry point in this process.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from omnisync.cli.main import COMMANDS
from tests.cli import run_cli, run_cli_here
from tests.daemon.yamlconfig import ExportYaml
from tests.operator.configs import write_config


def test_help_lists_every_command_and_a_mistyped_one_is_refused_with_them_all():
    listed = run_cli("--help")
    assert listed.returncode == 0, listed.stderr
    for name in COMMANDS:
        assert name in listed.stdout, name

    mistyped = run_cli("valdate", "config.yaml")
    assert mistyped.returncode == 2
    assert "invalid choice: 'valdate'" in mistyped.stderr
    assert all(name in mistyped.stderr for name in COMMANDS)


def test_a_command_imports_its_own_module_and_no_other_command():
    probe = (
        "import sys\n"
        "from omnisync.cli.main import COMMANDS, main\n"
        "assert main(['schema']) == 0\n"
        "print(sorted(name for name, module in COMMANDS.items() if module in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "['schema']"


def _libraries_imported(arguments: list[str]) -> list[str]:
    """The heavy libraries in ``sys.modules`` after ``omnisync ARGUMENTS`` ran in a fresh
    interpreter (its output discarded)."""
    probe = (
        "import contextlib, io, sys\n"
        "from omnisync.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        f"    status = main({arguments!r})\n"
        "libraries = ('httpx', 'jsonschema', 'yaml', 'apscheduler', 'rich', 'prometheus_client')\n"
        "print('imported:', *sorted(name for name in libraries if name in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()[-1].removeprefix("imported:").split()


def test_a_command_imports_only_the_libraries_it_uses(tmp_path):
    # Every test and every user pays each command's start-up: the help lists commands
    # (no HTTP client, config loader or terminal library), history --state-dir reads the
    # store without the config machinery, and a config without a cron schedule
    # validates without APScheduler.
    assert _libraries_imported(["--help"]) == []
    assert _libraries_imported(["history", "--state-dir", str(tmp_path / "state")]) == []
    config = write_config(tmp_path / "conf", ExportYaml("weekly"))
    assert _libraries_imported(["validate", str(config)]) == ["jsonschema", "yaml"]


def test_a_command_s_own_help_and_options_before_it_still_work():
    own = run_cli_here("validate", "--help")
    assert own.returncode == 0
    assert "usage: omnisync validate" in own.stdout
    version = run_cli_here("--version", "validate")
    assert version.returncode == 0
    assert version.stdout.startswith("omnisync ")


@pytest.mark.parametrize(
    "command",
    [
        ("plan", "--format", "json"),
        ("plan",),
        ("history", "--format", "json"),
        ("history",),
        ("validate",),
    ],
)
def test_a_reader_that_goes_away_gets_no_traceback(tmp_path, command):
    # `omnisync plan | head`: the pipe is closed before the command writes.
    config = write_config(tmp_path / "conf", ExportYaml("weekly"))
    reader, writer = os.pipe()
    os.close(reader)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "omnisync", *command, "--config", str(config)],
            stdout=writer,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(writer)
    assert "Traceback" not in result.stderr, result.stderr
    assert "BrokenPipeError" not in result.stderr, result.stderr
