"""``omnisync history [EXPORT]``: the recorded runs, newest first, as a table or JSON.

Reads the state store under the config's ``daemon.state_dir`` (or
``--state-dir``, which needs no config at all: useful when the config is
broken and you want to know what ran last).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omnisync.cli.export import EXIT_FAILED, EXIT_OK, cli_config
from omnisync.config.location import add_config_argument
from omnisync.state import RunRecord, SqliteLedgerStore, StateError, state_path

if TYPE_CHECKING:
    from rich.console import Console

STATUS_STYLES = {
    "succeeded": "green",
    "partial": "yellow",
    "failed": "red",
    "interrupted": "magenta",
    "running": "cyan",
}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "history",
        help="show recorded export runs",
        description="Show recorded export runs, newest first.",
    )
    parser.add_argument("export", nargs="?", metavar="EXPORT", help="only this export's runs")
    add_config_argument(parser)
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        help="read this state directory instead of the config's daemon.state_dir",
    )
    parser.add_argument(
        "--limit", type=_positive, default=20, metavar="N", help="at most N runs (default 20)"
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.set_defaults(handler=handler)


def handler(args: argparse.Namespace) -> int:
    if args.state_dir is not None:
        state_dir = Path(args.state_dir)
    else:
        loaded = cli_config(args.config)
        if isinstance(loaded, int):
            return loaded
        state_dir = Path(loaded.daemon.state_dir)
    path = state_path(state_dir)
    if not path.exists():
        runs: list[RunRecord] = []
    else:
        try:
            with SqliteLedgerStore(path) as store:
                runs = store.runs(args.export, limit=args.limit)
        except StateError as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_FAILED
    if args.format == "json":
        print(
            json.dumps({"runs": [run_as_dict(run) for run in runs]}, ensure_ascii=False, indent=2)
        )
        return EXIT_OK
    if not runs:
        scope = f" for export {args.export!r}" if args.export else ""
        print(f"no runs recorded{scope} (state: {path})")
        return EXIT_OK
    from rich.console import Console

    render_runs(runs, Console(soft_wrap=False, width=None if sys.stdout.isatty() else 160))
    return EXIT_OK


def run_as_dict(run: RunRecord) -> dict[str, Any]:
    """A run as plain JSON-able data (the ``--format json`` shape)."""
    return {
        "id": run.id,
        "export": run.export,
        "trigger": run.trigger,
        "config_revision": run.config_revision,
        "started_at": run.started_at,
        "ended_at": run.ended_at,
        "status": run.status,
        "counts": dict(run.counts),
        "error": run.error,
    }


def render_runs(runs: list[RunRecord], console: Console) -> None:
    """The runs as a table: one line each, the error (masked in the store) last.

    The config revision of each run is in the JSON form (``--format json``).
    """
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold")
    for column, justify in (
        ("run", "right"),
        ("export", "left"),
        ("trigger", "left"),
        ("started (UTC)", "left"),
        ("took", "right"),
        ("status", "left"),
        ("members", "right"),
        ("upserted", "right"),
        ("tagged", "right"),
        ("untagged", "right"),
        ("failed", "right"),
        ("pending", "right"),
        ("error", "left"),
    ):
        # Everything but the error stays on one line; the error takes what is left.
        table.add_column(column, justify=justify, no_wrap=column != "error")  # type: ignore[arg-type]
    for run in runs:
        counts = run.counts
        failed = counts.get("upsert_failed", 0) + counts.get("tag_failed", 0)
        style = STATUS_STYLES.get(run.status, "")
        table.add_row(
            str(run.id),
            run.export,
            run.trigger,
            run.started_at.replace("T", " ").removesuffix("Z")[:19],
            _duration(run),
            f"[{style}]{run.status}[/{style}]" if style else run.status,
            _count(counts, "members"),
            _count(counts, "upserted"),
            _count(counts, "tagged"),
            _count(counts, "untagged"),
            str(failed) if counts else "",
            _count(counts, "pending"),
            (run.error or "").splitlines()[0][:120] if run.error else "",
        )
    console.print(table)


def _count(counts: dict[str, int] | Any, name: str) -> str:
    value = counts.get(name)
    return "" if value is None else f"{value:,}"


def _duration(run: RunRecord) -> str:
    if run.ended_at is None:
        return ""
    seconds = (_parse(run.ended_at) - _parse(run.started_at)).total_seconds()
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value
