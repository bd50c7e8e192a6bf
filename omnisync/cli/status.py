"""``omnisync status``: what the running daemon is doing, as a table or JSON.

Finds the daemon through ``<state_dir>/daemon.json`` (the state directory
comes from the config, or ``--state-dir``) and renders its ``/status``.
Exit 0 when a daemon answered, 1 when none is running for that state
directory, 2 for a usage error or a config that cannot be read.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omnisync.config.build import default_state_dir
from omnisync.config.loader import try_load_config
from omnisync.config.location import add_config_argument, config_path_from
from omnisync.daemon.discovery import DaemonClient, DaemonUnavailable, read_info

if TYPE_CHECKING:
    from rich.console import Console

EXIT_OK = 0
EXIT_NO_DAEMON = 1
EXIT_USAGE = 2

_STATE_STYLES = {
    "running": "bold cyan",
    "retrying": "bold yellow",
    "disabled": "dim",
    "idle": "green",
    "on-demand": "blue",
}
_STATUS_STYLES = {
    "succeeded": "green",
    "partial": "yellow",
    "failed": "bold red",
    "interrupted": "yellow",
}


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "status",
        help="show the running daemon's exports, schedules and last reload",
        description="Show what the daemon running for this config's state directory is doing.",
    )
    add_config_argument(parser)
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        default=None,
        help="the daemon's state directory (default: daemon.state_dir from the config)",
    )
    parser.add_argument(
        "--format", choices=("text", "json"), default="text", help="text (default) or json"
    )
    parser.set_defaults(handler=handle)


#: Where a daemon's state usually is, when the config cannot say: systemd's StateDirectory.
_SYSTEM_STATE_DIR = "/var/lib/omnisync"


def state_dir_for(args: argparse.Namespace) -> Path | str:
    """The state directory to look in, or an error message.

    A config that does not load right now (the daemon keeps running its last
    good one) cannot name its state directory; then the default ones are
    searched for a daemon that was started with this config path.
    """
    if args.state_dir:
        return Path(args.state_dir)
    path = config_path_from(args, os.environ)
    result = try_load_config(path, environ=os.environ)
    if result.config is not None:
        return Path(result.config.daemon.state_dir)
    wanted = os.path.abspath(path)
    home = os.environ.get("HOME") or os.path.expanduser("~")
    for candidate in (default_state_dir(os.environ, home=home), _SYSTEM_STATE_DIR):
        info = read_info(Path(candidate))
        if info is not None and os.path.abspath(info.config_path) == wanted:
            return Path(candidate)
    first = result.diagnostics[0] if result.diagnostics else path
    return (
        f"the config at {path} does not load ({first}), so it cannot say where the"
        " daemon's state directory is; pass --state-dir"
    )


def handle(args: argparse.Namespace) -> int:
    state_dir = state_dir_for(args)
    if isinstance(state_dir, str):
        print(f"omnisync status: {state_dir}", file=sys.stderr)
        return EXIT_USAGE
    try:
        with DaemonClient.find(state_dir) as client:
            document = client.status()
    except DaemonUnavailable as error:
        print(f"omnisync status: no daemon is running: {error}", file=sys.stderr)
        return EXIT_NO_DAEMON
    if args.format == "json":
        sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    else:
        from rich.console import Console  # here: rich is only needed to draw the table

        render(document, Console(highlight=False))
    return EXIT_OK


def render(document: dict[str, Any], console: Console) -> None:
    """``/status`` as a header, a reload line and one table row per export."""
    from rich.table import Table
    from rich.text import Text

    daemon = document.get("daemon", {})
    config = document.get("config", {})
    reload = document.get("last_reload", {})
    console.print(
        f"omnisync daemon pid {daemon.get('pid')} on {daemon.get('control_address')},"
        f" up since {_when(daemon.get('started_at'))}"
    )
    console.print(
        f"config {config.get('config_path', daemon.get('config_path'))}"
        f" revision [bold]{config.get('revision')}[/bold], loaded {_when(config.get('loaded_at'))}"
    )
    if reload.get("ok", True):
        console.print(
            f"last reload: [green]ok[/green] ({reload.get('source')}, {_when(reload.get('at'))})"
        )
    else:
        console.print(
            f"last reload: [bold red]FAILED[/bold red] ({reload.get('source')},"
            f" {_when(reload.get('at'))}) — still running revision {config.get('revision')}"
        )
        for problem in reload.get("problems", []):
            # Never wrapped: a file:line:col line is for copying into an editor.
            console.print(Text(f"  {problem}", style="red"), soft_wrap=True)
    table = Table(show_lines=False)
    for column in ("export", "state", "schedule", "next run", "last run", "result", "counts"):
        table.add_column(column)
    for name, export in sorted(document.get("exports", {}).items()):
        last = export.get("last_run") or {}
        status = last.get("status") or ""
        counts = last.get("counts") or {}
        shown_counts = ", ".join(
            f"{key} {value}" for key, value in counts.items() if value and key != "requests"
        )
        state = export.get("state", "")
        if export.get("retry"):
            state = f"{state} (retry {export['retry']['attempt']})"
        table.add_row(
            name,
            Text(state, style=_STATE_STYLES.get(export.get("state", ""), "")),
            export.get("schedule") or "on demand",
            _when(export.get("next_run")),
            _when(last.get("ended_at") or last.get("started_at")),
            Text(status, style=_STATUS_STYLES.get(status, "")),
            shown_counts,
        )
    console.print(table)


def _when(value: object) -> str:
    """A timestamp shortened for people: ``2026-01-01 12:00:00Z``; ``-`` when absent."""
    if not isinstance(value, str) or not value:
        return "-"
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    offset = moment.strftime("%z")
    suffix = "Z" if offset in ("+0000", "") else f" {offset[:3]}:{offset[3:]}"
    return moment.strftime("%Y-%m-%d %H:%M:%S") + suffix
