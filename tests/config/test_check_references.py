"""`validate --check-references`: files the config names exist and are readable, as file:line."""

from __future__ import annotations

import json
import os
import sqlite3

from tests.cli import run_cli
from tests.review.repository import CONFIG


def _lines(text: str, fragment: str) -> int:
    return next(number for number, line in enumerate(text.splitlines(), 1) if fragment in line)


def test_missing_and_unreadable_files_are_reported_where_they_are_named(tmp_path):
    config = tmp_path / "omnisync.yaml"
    config.write_text(CONFIG)
    (tmp_path / "secrets" / "spare-key").mkdir(parents=True)  # a directory, not a file

    unchecked = run_cli("validate", str(config))
    assert unchecked.returncode == 0, unchecked.stderr  # off by default

    checked = run_cli("validate", "--check-references", str(config))
    assert checked.returncode == 1
    source_line = _lines(CONFIG, "crm: {kind: sqlite")
    secret_line = _lines(CONFIG, "api_key: {file: ./secrets/spare-key}")
    assert checked.stdout.splitlines() == [
        f"{config}:{source_line}:{CONFIG.splitlines()[source_line - 1].index('path') + 1}:"
        f" sources.crm.path: sqlite source {tmp_path}/data/crm.sqlite: does not exist",
        f"{config}:{secret_line}:{CONFIG.splitlines()[secret_line - 1].index('api_key') + 1}:"
        f" connections.spare.api_key: secret file {tmp_path}/secrets/spare-key:"
        " is a directory, not a file",
    ]
    github = run_cli("validate", "--check-references", "--format", "github", str(config))
    assert f"::error file={config},line={source_line}," in github.stdout
    document = json.loads(
        run_cli("validate", "--check-references", "--format", "json", str(config)).stdout
    )
    assert not document["valid"]
    assert [d["path"] for d in document["diagnostics"]] == [
        "sources.crm.path",
        "connections.spare.api_key",
    ]


def test_a_pipe_is_reported_without_blocking(tmp_path):
    config = tmp_path / "omnisync.yaml"
    config.write_text(CONFIG)
    (tmp_path / "data").mkdir()
    os.mkfifo(tmp_path / "data" / "crm.sqlite")
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "spare-key").write_text("not read\n")
    result = run_cli("validate", "--check-references", str(config))
    assert result.returncode == 1
    assert "crm.sqlite: is not a regular file (a pipe or a device" in result.stdout


def test_files_that_are_there_pass(tmp_path):
    config = tmp_path / "omnisync.yaml"
    config.write_text(CONFIG)
    (tmp_path / "data").mkdir()
    sqlite3.connect(tmp_path / "data" / "crm.sqlite").close()
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "spare-key").write_text("not read\n")
    result = run_cli("validate", "--check-references", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "referenced files readable" in result.stdout
