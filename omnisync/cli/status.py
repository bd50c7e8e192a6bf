"""``omnisync status``: what the running daemon is doing, as a table or JSON.

Finds the daemon through ``<state_dir>/daemon.json``. The state directory is
``--state-dir`` when given, else the config's ``daemon.state_dir`` (from
``--config``, else ``$OMNISYNC_CONFIG``, else ``/etc/omnisync``). A config
that does not load right now (the daemon keeps running its last good one) is
still read for just that value, as YAML; when even that is impossible, the
default state directory is used, as the daemon would. When no daemon answers,
the message names the config and the state directory that were looked at.

Exit 0 when a daemon answered, 1 when none is running for that state
directory, 2 for a usage error or a config path that cannot be read.

The text form fits an 80-column terminal: export names are never cut (the
other columns wrap), times are relative (``in 14m``, ``3m ago``; the JSON
has them in full) and schedules read as the config writes them.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from omnisync.cli.common import write_json
from omnisync.cli.main import EXIT_OK, EXIT_USAGE
from omnisync.cli.moments import relative_time, short_time
from omnisync.config.build import default_state_dir, resolve_path
from omnisync.config.loader import config_file_names, try_load_config
from omnisync.config.location import add_config_argument, config_path_from
from omnisync.config.model import Config
from omnisync.config.yamlload import parse_document
from omnisync.daemon.discovery import DaemonClient, DaemonUnavailable, read_info

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

EXIT_NO_DAEMON = 1

_STATE_STYLES = {
    "running": "bold cyan",
    "retrying": "bold yellow",
    "held": "bold red",
    "disabled": "dim",
    "idle": "green",
    "on-demand": "blue",
}


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "status",
        help="show the running daemon's exports, schedules and last reload",
        description=(
            "Show what the daemon running for this config is doing. The daemon is found"
            " through daemon.state_dir of the config, even while the config does not load."
        ),
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


@dataclass(frozen=True)
class Lookup:
    """Where to look for the daemon, and how that place was found (for messages)."""

    state_dir: Path
    #: e.g. "daemon.state_dir of /etc/omnisync"; "--state-dir"
    reason: str
    #: Why the config does not load, when it does not (the daemon may run an older one).
    config_problem: str | None = None
    #: The config, when it was read and loads.
    config: Config | None = None


def find_state_dir(args: argparse.Namespace) -> Lookup | str:
    """Where the daemon of ``--config`` keeps its state, or why that cannot be known."""
    if args.state_dir:
        return Lookup(Path(args.state_dir), "given with --state-dir")
    path = config_path_from(args, os.environ)
    result = try_load_config(path, environ=os.environ)
    home = os.environ.get("HOME") or os.path.expanduser("~")
    if result.config is not None:
        return Lookup(
            Path(result.config.daemon.state_dir),
            "the config's state directory",
            config=result.config,
        )
    first = str(result.diagnostics[0]) if result.diagnostics else "it does not load"
    if result.unreadable:
        return f"cannot read the config at {path}: {first}"
    problem = f"the config at {path} does not load right now ({first})"
    written = written_state_dir(path, home=home)
    if written is not None:
        directory, file = written
        return Lookup(Path(directory), f"daemon.state_dir as written in {file}", problem)
    # No state_dir written anywhere: the daemon used the default, or, as a service,
    # systemd's StateDirectory= (which a shell's missing $STATE_DIRECTORY cannot tell).
    default = default_state_dir(os.environ, home=home)
    system = read_info(Path(_SYSTEM_STATE_DIR))
    if system is not None and os.path.abspath(system.config_path) == os.path.abspath(path):
        return Lookup(Path(_SYSTEM_STATE_DIR), "systemd's StateDirectory=", problem)
    return Lookup(
        Path(default), "the default state directory: the config sets no daemon.state_dir", problem
    )


def written_state_dir(path: str, *, home: str) -> tuple[str, str] | None:
    """``daemon.state_dir`` as a config that does not load still writes it, and its file.

    Each file is read as YAML on its own; a file that is not YAML at all is
    searched line by line for the key in a block ``daemon:`` mapping. Relative
    paths are resolved against the file's directory, as the loader does.
    """
    try:
        files = config_file_names(path) if os.path.isdir(path) else [path]
    except OSError:
        return None
    for file in files:
        try:
            with open(file, "rb") as handle:
                content = handle.read()
        except OSError:
            continue
        document = parse_document(content, file=file)
        if document.data is not None:
            daemon = document.data.get("daemon")
            value = daemon.get("state_dir") if isinstance(daemon, dict) else None
        else:
            value = _state_dir_line(content.decode("utf-8", "replace"))
        if isinstance(value, str) and value.strip():
            base = os.path.dirname(os.path.abspath(file))
            return resolve_path(value, base_dir=base, home=home), file
    return None


_TOP_LEVEL = re.compile(r"^(?P<key>[A-Za-z_][\w-]*)\s*:")
_STATE_DIR = re.compile(r"^\s+state_dir\s*:\s*(?P<value>.+?)\s*$")


def _state_dir_line(text: str) -> object:
    """``state_dir`` under a top-level ``daemon:`` block, from a file YAML cannot parse."""
    in_daemon = False
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        top = _TOP_LEVEL.match(line)
        if top is not None:
            in_daemon = top.group("key") == "daemon"
            continue
        found = _STATE_DIR.match(line) if in_daemon else None
        if found is not None:
            try:
                # The value alone is YAML: quotes, escapes and a trailing comment.
                value: object = yaml.safe_load(found.group("value"))
            except yaml.YAMLError:
                return None
            return value
    return None


def handle(args: argparse.Namespace) -> int:
    lookup = find_state_dir(args)
    if isinstance(lookup, str):
        print(f"omnisync status: {lookup}", file=sys.stderr)
        return EXIT_USAGE
    from omnisync.cli.replicas import render_replicas, shared_status

    shared = shared_status(lookup.config)
    if isinstance(shared, str):
        print(f"omnisync status: cannot read the replicas: {shared}", file=sys.stderr)
        return EXIT_NO_DAEMON
    document: dict[str, Any] = {}
    try:
        with DaemonClient.find(lookup.state_dir) as client:
            document = client.status()
    except DaemonUnavailable as error:
        if shared is None:
            _no_daemon(args, lookup, error)
            return EXIT_NO_DAEMON
        # Replicas elsewhere: the shared store alone says what they do.
    else:
        if lookup.config_problem:
            # The daemon keeps running its last good config; say why this one is not it.
            print(f"omnisync status: warning: {lookup.config_problem}", file=sys.stderr)
    if args.format == "json":
        write_json({**document, **(shared or {})})
        return EXIT_OK
    from rich.console import Console  # here: rich is only needed to draw the tables

    console = Console(highlight=False)
    if document:
        render(document, console)
    if shared is not None:
        render_replicas(shared, console, now=datetime.now(UTC))
    return EXIT_OK


def _no_daemon(args: argparse.Namespace, lookup: Lookup, error: DaemonUnavailable) -> None:
    """Say that no daemon answered, and where it was looked for."""
    if args.state_dir:
        looked = f"in the state directory {lookup.state_dir} (--state-dir)"
    else:
        looked = (
            f"for the config {config_path_from(args, os.environ)}; looked in"
            f" {lookup.state_dir}, {lookup.reason}"
        )
    print(f"omnisync status: no daemon is running {looked}: {error}", file=sys.stderr)
    if lookup.config_problem:
        print(f"omnisync status: note: {lookup.config_problem}", file=sys.stderr)


def render(document: dict[str, Any], console: Console, *, now: datetime | None = None) -> None:
    """``/status`` as a header, a reload line and one table row per export.

    Fits the console's width (80 columns is the aim): the export column is as
    wide as the longest name and never cut; the other columns wrap.
    """
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from omnisync.engine.history_render import STATUS_STYLES  # a run's colour, as in history

    now = now or datetime.now(UTC)
    daemon = document.get("daemon", {})
    config = document.get("config", {})
    reload = document.get("last_reload", {})
    console.print(
        f"omnisync daemon pid {daemon.get('pid')} on {daemon.get('control_address')},"
        f" up since {short_time(daemon.get('started_at'))}"
    )
    console.print(Text(f"config {config.get('config_path', daemon.get('config_path'))}"))
    loaded_at = short_time(config.get("loaded_at"))
    console.print(f"revision [bold]{config.get('revision')}[/bold], loaded {loaded_at}")
    reloaded_at = short_time(reload.get("at"))
    if reload.get("ok", True):
        console.print(f"last reload: [green]ok[/green] ({reload.get('source')}, {reloaded_at})")
    else:
        rejected = f" of revision {reload['revision']}" if reload.get("revision") else ""
        console.print(
            f"last reload{rejected}: [bold red]FAILED[/bold red] ({reload.get('source')},"
            f" {reloaded_at}) — still running revision {config.get('revision')}"
        )
        for problem in reload.get("problems", []):
            # Never wrapped: a file:line:col line is for copying into an editor.
            console.print(Text(f"  {problem}", style="red"), soft_wrap=True)
    rows: list[tuple[str, Text, str, str, Text]] = []
    counted: list[tuple[str, str]] = []
    held: list[tuple[str, str]] = []
    for name, export in sorted(document.get("exports", {}).items()):
        last = export.get("last_run") or {}
        status = last.get("status") or ""
        state = export.get("state", "")
        if export.get("retry"):
            state = f"{state} (retry {export['retry']['attempt']})"
        last_run = Text(status, style=STATUS_STYLES.get(status, ""))
        when = relative_time(last.get("ended_at") or last.get("started_at"), now)
        last_run.append(f" {when}" if status else when)
        rows.append(
            (
                name,
                Text(state, style=_STATE_STYLES.get(export.get("state", ""), "")),
                export.get("schedule") or "on demand",
                relative_time(export.get("next_run"), now),
                last_run,
            )
        )
        counts = _counts(last.get("counts") or {})
        if counts:
            counted.append((name, counts))
        if export.get("held"):
            held.append((name, str(export["held"])))
    if _table_fits(rows, console.width):
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
        table.add_column("export", no_wrap=True)
        for column in ("state", "schedule", "next run", "last run"):
            table.add_column(column)
        for row in rows:
            table.add_row(*row)
        console.print(table)
    else:
        # Names too long for a table in this width: one block per export, names whole.
        for name, state, schedule, next_run, last_run in rows:
            console.print(Text(name, style="bold"), no_wrap=True, overflow="ignore", crop=False)
            line = Text("  ")
            line.append_text(state)
            line.append(f" · {schedule} · next {next_run} · last ")
            line.append_text(last_run)
            console.print(line)
    for name, reason in held:
        console.print(Text(f"{name} is HELD (nothing sent): {reason}", style="bold red"))
    if counted:
        # Counts under the table, not in it: they would squeeze every column.
        console.print(Text("last run counts:", style="bold"))
        for name, counts in counted:
            console.print(Text(f"  {name}: {counts}"))


#: The space between two columns of the table.
_GAP = 3


def _table_fits(rows: list[tuple[str, Text, str, str, Text]], width: int) -> bool:
    """Whether a table of ``rows`` fits ``width`` with each cell's longest word whole."""
    headers = ("export", "state", "schedule", "next run", "last run")
    needed = 0
    for index, header in enumerate(headers):
        cells = [str(row[index]) for row in rows]
        if index == 0:
            needed += max([len(header), *(len(cell) for cell in cells)])
        else:
            words = [word for cell in [*cells, header] for word in cell.split()]
            needed += _GAP + max(len(word) for word in words)
    return needed <= width


def _counts(counts: dict[str, Any]) -> str:
    """The non-zero counts of a run, ``members 1,234, upserted 1,234``."""
    return ", ".join(
        f"{key} {value:,}" if isinstance(value, int) else f"{key} {value}"
        for key, value in counts.items()
        if value and key != "requests"
    )
