"""``omnisync diff`` through the command's entry point in this process.

Starting an interpreter costs a quarter of a second of imports per run; the command's
own ``main`` is the same code without it. The first run of each exit status, the
colour on a terminal and the secrets (read from the real environment) stay real
processes (``ConfigRepository.diff``); the formats and combinations after them run
here.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from typing import Any

from tests.cli import run_cli_here


def diff_here(*arguments: str) -> subprocess.CompletedProcess[str]:
    """``omnisync diff ARGUMENTS`` in this process (:func:`tests.cli.run_cli_here`)."""
    return run_cli_here("diff", *arguments)


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
