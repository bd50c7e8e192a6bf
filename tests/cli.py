"""Running the real ``omnisync`` command, as a user would, for tests of every area."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping


def run_cli(
    *arguments: str,
    env: Mapping[str, str] | None = None,
    extra_env: Mapping[str, str] | None = None,
    timeout: float = 180,
) -> subprocess.CompletedProcess[str]:
    """``python -m omnisync ARGUMENTS`` to completion, its output captured as text.

    ``env`` replaces the environment (default: this process's); ``extra_env``
    is laid over it. Never raises for a non-zero exit: tests read ``returncode``.
    """
    environment = dict(os.environ if env is None else env)
    environment.update(extra_env or {})
    return subprocess.run(
        [sys.executable, "-m", "omnisync", *arguments],
        capture_output=True,
        text=True,
        env=environment,
        timeout=timeout,
        check=False,
    )
