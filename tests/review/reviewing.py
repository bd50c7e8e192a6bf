"""``omnisync diff`` through the command's entry point in this process.

Starting an interpreter costs a quarter of a second of imports per run; the command's
own ``main`` is the same code without it. The first run of each exit status, the
colour on a terminal and the secrets (read from the real environment) stay real
processes (``ConfigRepository.diff``); the formats and combinations after them run
here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
from typing import Any

from omnisync.cli.main import main


@dataclasses.dataclass(frozen=True)
class Ran:
    """The command's exit status and what it wrote."""

    returncode: int
    stdout: str
    stderr: str


def diff_here(*arguments: str) -> Ran:
    """``omnisync diff ARGUMENTS`` through the command's entry point in this process: its
    exit status (a usage error's too, which argparse raises as ``SystemExit``), stdout
    and stderr. Stdout is not a terminal, as in a pipe."""
    output, errors = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(errors):
        try:
            code = main(["diff", *arguments])
        except SystemExit as ended:
            code = ended.code if isinstance(ended.code, int) else 1
    return Ran(code, output.getvalue(), errors.getvalue())


@dataclasses.dataclass(frozen=True)
class Diff:
    """``omnisync diff ARGUMENTS``, read in each format (a run each, which must pass)."""

    arguments: tuple[str, ...]

    def output(self, form: str) -> str:
        ran = diff_here(*self.arguments, "--format", form)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        return ran.stdout

    def passes(self, *options: str) -> bool:
        """Whether the command exits 0 with these options too (``--fail-on``, ``--exit-code``)."""
        return diff_here(*self.arguments, *options).returncode == 0


def as_text(diff: Diff) -> str:
    return diff.output("text")


def as_json(diff: Diff) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(diff.output("json"))
    return document


def as_markdown(diff: Diff) -> str:
    return diff.output("markdown")


def as_github(diff: Diff) -> str:
    return diff.output("github")
