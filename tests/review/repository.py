"""A git repository of configs for the review tests, and running ``omnisync diff`` in it."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.cli import run_cli

#: A config where each effect of `omnisync diff` is one line away. Every export
#: is written on the lines the tests edit; `retired` is one line, to be removed.
CONFIG = """\
version: 1
users:
  olena: {role: admin}
  marko: {role: contributor}
  ivan: {role: admin}
sources:
  crm: {kind: sqlite, path: ./data/crm.sqlite}
segments:
  vip:
    source: crm
    key: id
    query: SELECT id, email, first_name, last_name, status, status_at FROM people
  everyone:
    source: crm
    query: SELECT id, email FROM people
connections:
  main:
    display_name: Main store
    api_key: {env: OMNISYNC_REVIEW_MAIN_KEY}
    allowed_users: [marko]
    data_transfer_accepted: true
  second:
    display_name: Second store
    api_key: {env: OMNISYNC_REVIEW_SECOND_KEY}
    allowed_users: [marko]
    data_transfer_accepted: true
  spare:
    display_name: Spare store
    api_key: {file: ./secrets/spare-key}
    data_transfer_accepted: false
schedules:
  hourly:
    cron: "0 * * * *"
exports:
  vip:
    segment: vip
    connection: main
    owner: marko
    tag: vip
    on_leave: keep
    schedule:
      every: 15m
    send_welcome_message: false
    mapping:
      email: email
      first_name: first_name
      last_name: last_name
    consent:
      status_column: status
      changed_at_column: status_at
      source: signup-form
  paused:
    segment: everyone
    connection: second
    owner: olena
    schedule: hourly
    enabled: false
    mapping:
      email: email
  retired: {segment: everyone, connection: main, owner: olena, tag: old, mapping: {email: email}}
daemon:
  state_dir: ./state
"""

FILE = "omnisync.yaml"


def git(root: Path, *arguments: str) -> str:
    completed = subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *arguments],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    return completed.stdout.strip()


@dataclass
class ConfigRepository:
    root: Path

    @property
    def path(self) -> Path:
        return self.root / FILE

    def edit(self, old: str, new: str) -> int:
        """Replace the one line ``old`` (stripped) by ``new``; return its 1-based number.

        ``new`` of ``None``-like ``""`` removes the line.
        """
        lines = self.path.read_text().splitlines()
        matches = [index for index, line in enumerate(lines) if line.strip() == old]
        assert len(matches) == 1, f"{old!r} is on {len(matches)} lines"
        index = matches[0]
        if new:
            indent = lines[index][: len(lines[index]) - len(lines[index].lstrip())]
            lines[index] = indent + new
        else:
            del lines[index]
        self.path.write_text("\n".join(lines) + "\n")
        return index + 1

    def diff(self, *arguments: str, **environment: str) -> subprocess.CompletedProcess[str]:
        return run_cli(
            "diff",
            "--config",
            str(self.path),
            "--state-dir",
            str(self.root / "no-state"),
            *arguments,
            extra_env={"NO_COLOR": "1", **environment},
        )

    def diff_json(self, *arguments: str) -> dict[str, Any]:
        result = self.diff("--base", "HEAD", "--format", "json", *arguments)
        assert result.returncode == 0, result.stdout + result.stderr
        document: dict[str, Any] = json.loads(result.stdout)
        return document


def make_repository(root: Path, content: str = CONFIG) -> ConfigRepository:
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "--quiet")
    (root / FILE).write_text(content)
    git(root, "add", FILE)
    git(root, "commit", "--quiet", "-m", "config")
    return ConfigRepository(root)
