"""Recorded runs for people (a table) and tools (JSON); errors are masked in the store.

The replica that ran a run is shown only when a listed run names one.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING, Any

from omnisync.state import RunRecord

if TYPE_CHECKING:
    from rich.console import Console

STATUS_STYLES = {
    "succeeded": "green",
    "partial": "yellow",
    "failed": "red",
    "held": "bold red",
    "interrupted": "magenta",
    "running": "cyan",
}

#: The table's count columns, after the run's own; right-aligned like ``run`` and ``took``.
COUNT_COLUMNS = ("members", "upserted", "tagged", "untagged", "failed", "pending")
LEFT_ALIGNED = frozenset({"export", "trigger", "replica", "started (UTC)", "status", "revision"})
#: Left out, in this order, of a table wider than the console.
DROPPED_FIRST = ("revision", "trigger", "replica", "started (UTC)", "took")


def runs_as_dicts(runs: list[RunRecord]) -> list[dict[str, Any]]:
    """The ``--format json`` shape: a ``replica`` key in every run when any names one."""
    include_replica = any(run.replica for run in runs)
    return [run_as_dict(run, include_replica=include_replica) for run in runs]


def run_as_dict(run: RunRecord, *, include_replica: bool = False) -> dict[str, Any]:
    """A run as plain JSON-able data; ``replica`` only when ``include_replica``."""
    data = asdict(run)
    if not include_replica:
        del data["replica"]
    return data


def render_runs(runs: list[RunRecord], console: Console) -> None:
    """The runs as a table, one line each; then each error's first line, cut to
    the console's width (a long error never stretches the table). Too wide for the
    console, it leaves out :data:`DROPPED_FIRST` in that order: the run, its export,
    status and counts are never cut (still too wide, the lines are wider: the terminal
    wraps them)."""
    from rich.table import Table
    from rich.text import Text

    include_replica = any(run.replica for run in runs)
    columns = (
        "run",
        "export",
        "trigger",
        *(("replica",) if include_replica else ()),
        "started (UTC)",
        "took",
        "status",
        "revision",
        *COUNT_COLUMNS,
    )
    rows: list[dict[str, str]] = []
    errors: list[Text] = []
    for run in runs:
        counts = dict(run.counts)
        if counts:
            counts["failed"] = counts.get("upsert_failed", 0) + counts.get("tag_failed", 0)
        style = STATUS_STYLES.get(run.status, "")
        cells = (
            str(run.id),
            run.export,
            run.trigger,
            *((run.replica or "",) if include_replica else ()),
            run.started_at.replace("T", " ").removesuffix("Z")[:19],
            _duration(run),
            run.status,
            run.config_revision or "",
            *("" if counts.get(name) is None else f"{counts[name]:,}" for name in COUNT_COLUMNS),
        )
        rows.append(dict(zip(columns, cells, strict=True)))
        if run.error:
            line = Text(f"  run {run.id}: ", style=style or "")
            line.append(next((part.strip() for part in run.error.splitlines() if part.strip()), ""))
            errors.append(line)
    shown = list(columns)

    def needed() -> int:
        # Each column: its widest cell, a space either side, a rule between columns.
        widths = (max(len(column), *(len(row[column]) for row in rows)) for column in shown)
        return sum(width + 3 for width in widths) - 1

    for dropped in DROPPED_FIRST:
        if needed() <= console.width:
            break
        if dropped in shown:
            shown.remove(dropped)
    # Still too wide, the table keeps its width and the terminal wraps the lines: a cut
    # cell ("3…" for 339, "p…") would mislead.
    width = needed()
    table = Table(
        show_edge=False, header_style="bold", width=width if width > console.width else None
    )
    for column in shown:
        left = column in LEFT_ALIGNED
        table.add_column(column, justify="left" if left else "right", no_wrap=True)
    for row in rows:
        style = STATUS_STYLES.get(row["status"], "")
        table.add_row(
            *(Text(row[column], style=style if column == "status" else "") for column in shown)
        )
    console.print(table, crop=False)
    if errors:
        console.print(Text("errors (first line; --format json has the full text):", style="bold"))
        for line in errors:
            console.print(line, no_wrap=True, overflow="ellipsis", crop=True)


def _duration(run: RunRecord) -> str:
    if run.ended_at is None:
        return ""
    took = datetime.fromisoformat(run.ended_at) - datetime.fromisoformat(run.started_at)
    seconds = took.total_seconds()
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"
