"""`omnisync history` as an operator reads it: typos refused, revisions shown, errors kept short.

The first run of each exit code and the terminal's are processes of their own; the other
formats and exports run through the entry point in this process (no interpreter to start).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from omnisync.state import SqliteLedgerStore, state_path
from tests.cli import run_cli, run_cli_here, run_cli_in_terminal
from tests.daemon.yamlconfig import ExportYaml
from tests.operator.configs import write_config

STARTED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LONG_ERROR = (
    "Omnisend answered 500 Internal Server Error on POST /api/contacts/batch " * 6
    + "\nsecond line of the error\nthird line"
)
#: A terminal's colour and cursor sequences, to read what the terminal shows.
ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A config with exports ``weekly`` and ``daily``; runs of weekly and of a removed export."""
    path = write_config(
        tmp_path / "conf", ExportYaml("weekly", schedule="every: 15m"), ExportYaml("daily")
    )
    state_dir = tmp_path / "conf" / "state"
    state_dir.mkdir()
    with SqliteLedgerStore(state_path(state_dir)) as store:
        first = store.start_run(
            "weekly", trigger="schedule", config_revision="git:1a2b3c4", now=STARTED
        )
        store.finish_run(
            first.id,
            status="succeeded",
            counts={"members": 40, "upserted": 40, "tagged": 40},
            error=None,
            now=STARTED + timedelta(seconds=9),
        )
        second = store.start_run(
            "weekly", trigger="manual", config_revision="sha256:0123456789ab", now=STARTED
        )
        store.finish_run(
            second.id,
            status="failed",
            counts={},
            error=LONG_ERROR,
            now=STARTED + timedelta(hours=1),
        )
        removed = store.start_run(
            "retired", trigger="schedule", config_revision="git:0000000", now=STARTED
        )
        store.finish_run(removed.id, status="succeeded", counts={}, error=None, now=STARTED)
    return path


def test_an_unknown_export_lists_the_valid_ones_and_exits_2(config):
    result = run_cli("history", "vpi", "--config", str(config))
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert "no export 'vpi' in the config (exports: daily, weekly)" in result.stderr


def test_a_known_export_without_runs_and_a_removed_one_with_runs_are_not_errors(config):
    never = run_cli("history", "daily", "--config", str(config))
    assert never.returncode == 0, never.stderr
    assert "no runs recorded for export 'daily'" in never.stdout
    removed = run_cli_here("history", "retired", "--config", str(config))
    assert removed.returncode == 0, removed.stderr
    assert "retired" in removed.stdout and "git:0000000" in removed.stdout


def test_the_text_history_has_a_revision_column_and_one_line_per_error(config):
    result = run_cli_here("history", "weekly", "--config", str(config))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = lines[0]
    assert "revision" in header.split()
    rows = {line.split()[0]: line for line in lines[2:] if line.split()[0:1] in (["1"], ["2"])}
    assert "git:1a2b3c4" in rows["1"]
    assert "sha256:0123456789ab" in rows["2"]
    # The error: its first line only, on one line of its own (piped: whole, for grep).
    error_lines = [line for line in lines if "Internal Server Error" in line]
    assert len(error_lines) == 1, result.stdout
    assert error_lines[0].strip() == "run 2: " + LONG_ERROR.splitlines()[0].strip()
    assert "second line" not in result.stdout
    assert len(lines) <= 8, result.stdout


def test_piped_history_keeps_every_cell_whole(tmp_path):
    """CI logs and grep read the whole values, however many columns a row needs."""
    name = "newsletter_subscribers_lapsed_ninety_days"
    config = write_config(tmp_path / "conf", ExportYaml(name, schedule="every: 15m"))
    (tmp_path / "conf" / "state").mkdir()
    with SqliteLedgerStore(state_path(tmp_path / "conf" / "state")) as store:
        run = store.start_run(
            name,
            trigger="daemon-trigger, release by root",
            config_revision="sha256:0123456789abcdef",
            now=STARTED,
        )
        counts = {"members": 1_234_567, "upserted": 1_234_567, "tagged": 1_234_567}
        store.finish_run(
            run.id,
            status="succeeded",
            counts={**counts, "untagged": 7_654_321, "pending": 1_000_000},
            error="Omnisend answered 500 on POST /api/contacts/batch " * 6,
            now=STARTED + timedelta(hours=2),
        )
    result = run_cli_here("history", "--config", str(config), extra_env={"COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    (row,) = [line for line in result.stdout.splitlines() if line.split()[:1] == ["1"]]
    for cell in (name, "daemon-trigger, release by root", "succeeded", "sha256:0123456789abcdef"):
        assert cell in row, result.stdout
    assert "7,654,321" in row and "1,000,000" in row, result.stdout
    assert "…" not in result.stdout
    assert "run 1: " + ("Omnisend answered 500 on POST /api/contacts/batch " * 6).strip() in (
        result.stdout
    )


def test_a_terminal_keeps_its_width_and_cuts_the_error_there(config):
    code, output = run_cli_in_terminal("history", "weekly", "--config", str(config))
    assert code == 0, output
    lines = [line.rstrip() for line in ESCAPE.sub("", output).splitlines()]
    assert all(len(line) <= 120 for line in lines), output
    (error,) = [line for line in lines if "Internal Server Error" in line]
    assert error.lstrip().startswith("run 2: Omnisend answered 500") and error.endswith("…")


def test_the_json_history_keeps_the_whole_error(config):
    result = run_cli_here("history", "weekly", "--config", str(config), "--format", "json")
    assert result.returncode == 0, result.stderr
    runs = json.loads(result.stdout)["runs"]
    failed = next(run for run in runs if run["status"] == "failed")
    assert failed["error"] == LONG_ERROR
    assert failed["config_revision"] == "sha256:0123456789ab"


@pytest.mark.parametrize("width", [65, 80, 100, 120])
def test_a_narrow_terminal_leaves_columns_out_and_never_cuts_ids_names_or_counts(tmp_path, width):
    from rich.console import Console

    from omnisync.engine.history_render import render_runs

    with SqliteLedgerStore(tmp_path / "state.sqlite") as store:
        for _ in range(1234):
            run = store.start_run(
                "newsletter-subscribers-eu", trigger="schedule", config_revision="g", now=STARTED
            )
        store.finish_run(
            run.id,
            status="partial",
            counts={"members": 1_234_567, "upserted": 1_234_567, "tagged": 339, "pending": 0},
            error=None,
            now=STARTED + timedelta(minutes=5),
        )
        runs = store.runs("newsletter-subscribers-eu", limit=1)
    console = Console(record=True, width=width, color_system=None)
    render_runs(runs, console)
    header, _, row = console.export_text().splitlines()[:3]
    # Too narrow for them all, the line is wider than the terminal (which wraps it):
    # a cut id, name or status ("1…", "p…") would mislead.
    cells = [cell.strip() for cell in row.split("│")]
    assert cells[:2] == ["1234", "newsletter-subscribers-eu"] and "partial" in cells, row
    assert cells.count("1,234,567") == 2 and "339" in cells and "…" not in row, row
    assert row.rstrip().endswith("│       0"), row  # pending, the last column
    assert {"run", "export", "status"} <= set(header.split()), header
    if width >= 120:  # room for the columns that say when and how the run went
        assert "took" in header.split() and "…" not in header, header
