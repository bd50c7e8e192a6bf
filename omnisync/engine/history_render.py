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
    the console's width (a long error never stretches the table)."""
    from rich.table import Table
    from rich.text import Text

    table = Table(show_edge=False, header_style="bold")
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
    for column in columns:
        justify = "left" if column in LEFT_ALIGNED else "right"
        table.add_column(column, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    errors: list[Text] = []
    for run in runs:
        counts = dict(run.counts)
        if counts:
            counts["failed"] = counts.get("upsert_failed", 0) + counts.get("tag_failed", 0)
        style = STATUS_STYLES.get(run.status, "")
        replica_cell = (run.replica or "",) if include_replica else ()
        table.add_row(
            str(run.id),
            run.export,
            run.trigger,
            *replica_cell,
            run.started_at.replace("T", " ").removesuffix("Z")[:19],
            _duration(run),
            f"[{style}]{run.status}[/{style}]" if style else run.status,
            run.config_revision or "",
            *("" if counts.get(name) is None else f"{counts[name]:,}" for name in COUNT_COLUMNS),
        )
        if run.error:
            line = Text(f"  run {run.id}: ", style=style or "")
            line.append(next((part.strip() for part in run.error.splitlines() if part.strip()), ""))
            errors.append(line)
    console.print(table)
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
