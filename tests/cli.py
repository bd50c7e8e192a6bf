"""Running the real ``omnisync`` command, as a user would, for tests of every area."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Mapping
from unittest import mock


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


def run_cli_here(
    *arguments: str, extra_env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``omnisync ARGUMENTS`` through the command's entry point in this process, as
    :func:`run_cli` reports it: no interpreter to start (a quarter of a second of
    imports each). For a command's formats and combinations after a real process's
    first run; ``extra_env`` is laid over this process's environment for the call.
    Stdout is not a terminal, as in a pipe.
    """
    from omnisync.cli.main import main

    output, errors = io.StringIO(), io.StringIO()
    with (
        mock.patch.dict(os.environ, extra_env or {}),
        contextlib.redirect_stdout(output),
        contextlib.redirect_stderr(errors),
    ):
        try:
            code = main(list(arguments))
        except SystemExit as ended:  # argparse's usage errors
            code = ended.code if isinstance(ended.code, int) else 1
    return subprocess.CompletedProcess(
        ["omnisync", *arguments], code, output.getvalue(), errors.getvalue()
    )


def run_cli_in_terminal(
    *arguments: str,
    extra_env: Mapping[str, str] | None = None,
    timeout: float = 180,
) -> tuple[int, str]:
    """``python -m omnisync ARGUMENTS`` on a pseudo-terminal, as a person at a terminal runs it.

    stdout and stderr both go to the terminal (so progress bars are drawn);
    returns the exit code and everything written, escape sequences included.
    """
    import pty  # POSIX only, like the daemon
    import select
    import time

    environment = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
    for name in ("NO_COLOR", "TTY_INTERACTIVE", "TTY_COMPATIBLE", "FORCE_COLOR"):
        environment.pop(name, None)
    environment.update(extra_env or {})
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "omnisync", *arguments],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=environment,
        close_fds=True,
    )
    os.close(follower)
    output = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's last writer has gone
                break
            if not chunk:
                break
            output += chunk
        else:
            process.kill()
            raise AssertionError(f"omnisync {' '.join(arguments)} did not end in {timeout} s")
        code = process.wait(timeout=30)
    finally:
        os.close(leader)
    return code, output.decode("utf-8", "replace")
