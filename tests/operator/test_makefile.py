"""`make demo` installs what the demo needs and no more; `make test` adds the test tools."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def planned(target: str, venv: Path) -> list[str]:
    """The commands ``make TARGET`` would run for a fresh virtual environment (``make -n``)."""
    # Not a sub-make of the `make test` that may be running this suite: its
    # MAKEFLAGS and MAKELEVEL would add "Entering directory" lines.
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in {"MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES"}
    }
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", target, f"VENV={venv}"],
        cwd=CHECKOUT,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout.splitlines()


def test_make_demo_installs_omnisync_without_the_test_extras(tmp_path):
    commands = planned("demo", tmp_path / "venv")
    installs = [line for line in commands if " install " in line and "/pip " in line]
    assert installs == [f"{tmp_path / 'venv'}/bin/pip install --quiet -e ."], commands
    assert commands[-1] == f"{tmp_path / 'venv'}/bin/omnisync demo"


def test_make_test_installs_the_test_extras_then_runs_the_check(tmp_path):
    commands = planned("test", tmp_path / "venv")
    assert any(
        line.endswith("pip install --quiet --no-compile -e '.[test]'") for line in commands
    ), commands
    assert commands[-2:] == [
        "scripts/services",
        f'PATH="{tmp_path / "venv"}/bin:$PATH" scripts/check',
    ]


def test_ci_runs_make_test():
    run = (CHECKOUT / ".ci" / "run").read_text()
    assert run.rstrip().splitlines()[-1] == "make test"
