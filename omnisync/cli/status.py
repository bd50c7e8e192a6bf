"""omnisync status: show what the daemon running for this config is doing.

The daemon is found through <state_dir>/daemon.json: --state-dir, else the
config's daemon.state_dir, read as written even while the config does not
load, else the default state directory. On a terminal the text fits its width
(export names are never cut, times are relative); piped, no line is wrapped
(unless $COLUMNS sets a width); --format json has them in full. Text from the
config (a problem, a path) is shown on one line, its control characters escaped.
With a shared (PostgreSQL) state store the replicas table follows, read from
the database (when it cannot be read, stderr says why after the daemon's status).

Exit status: 0 a daemon answered (one that is not healthy too: stderr warns),
1 none runs there, 2 usage error or an unreadable config path. With a shared
state store: 0 when the daemon here answered or the store has a live replica
(its heartbeat current), 1 when neither; the replicas table is shown either way.
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omnisync.cli.common import add_format, write_json
from omnisync.cli.main import EXIT_OK
from omnisync.clock import parse_time
from omnisync.config.location import add_config_argument
from omnisync.masking import one_line

# httpx, the config loader, the state store and rich are imported by the functions that
# use them: `omnisync --help` imports every command's module.
if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    from omnisync.config.model import Config

EXIT_NO_DAEMON = 1

#: The width of a console that is not a terminal: wider than any line.
_UNWRAPPED = 1_000_000

_STATE_STYLES = {
    "running": "bold cyan",
    "retrying": "bold yellow",
    "held": "bold red",
    "disabled": "dim",
    "idle": "green",
    "on-demand": "blue",
}


def register(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        help="the daemon's state directory (default: daemon.state_dir from the config)",
    )
    add_format(parser)


def handle(args: argparse.Namespace) -> int:
    from omnisync.cli.status_lookup import find_state_dir
    from omnisync.daemon.discovery import DaemonUnavailable
    from omnisync.state.store import StateError

    lookup = find_state_dir(args)
    document: dict[str, Any] | None = None
    try:
        document, unhealthy = ask_daemon(lookup.state_dir)
    except DaemonUnavailable as error:
        print(f"omnisync status: no daemon is running {lookup.looked}: {error}", file=sys.stderr)
        if lookup.config_problem:
            print(f"omnisync status: note: {lookup.config_problem}", file=sys.stderr)
    else:
        if unhealthy:
            print(
                f"omnisync status: warning: {unhealthy} (/healthz: its main loop is stalled,"
                " or its shared state store cannot be reached)",
                file=sys.stderr,
            )
        if lookup.config_problem:
            # The daemon keeps running its last good config; say why this one is not it.
            print(f"omnisync status: warning: {lookup.config_problem}", file=sys.stderr)
    shared: dict[str, Any] | None = None
    unreadable: str | None = None
    if lookup.config is not None and lookup.config.daemon.state.shared:
        try:
            shared = replicas_document(lookup.config)
        except StateError as error:
            unreadable = f"omnisync status: cannot read the replicas: {error}"
    if document is not None or shared is not None:
        show(document, shared, json_format=args.format == "json")
    if unreadable:
        # After the daemon's status: it answers whatever the database does.
        print(unreadable, file=sys.stderr)
    # With a shared store, a replica alive there runs the exports when none runs here.
    live = shared is not None and any(replica["live"] for replica in shared["replicas"])
    return EXIT_OK if document is not None or live else EXIT_NO_DAEMON


def ask_daemon(state_dir: Path) -> tuple[dict[str, Any], str | None]:
    """The ``/status`` of the daemon of ``state_dir``, and why it is not healthy (``None``
    while it is); :class:`DaemonUnavailable` when none answers. A daemon whose ``/healthz``
    fails (its main loop stalled, its shared store unreachable) is asked all the same: that
    is when its status is wanted most."""
    import httpx

    from omnisync.daemon.discovery import (
        DaemonClient,
        DaemonUnavailable,
        UntrustedStateFile,
        find_info,
    )

    try:
        with DaemonClient.find(state_dir) as client:
            try:
                return client.status(), None
            except (httpx.HTTPError, ValueError) as error:
                raise DaemonUnavailable(f"its /status did not answer: {error}") from None
    except UntrustedStateFile:
        raise  # nothing is sent to the address such a file names
    except DaemonUnavailable as unavailable:
        info = find_info(state_dir)
        if info is None:
            raise
        with DaemonClient(info, state_dir=state_dir) as client:
            try:
                document = client.status()
            except (httpx.HTTPError, ValueError):
                raise unavailable from None
        # The recorded daemon's answer only, never another process's that took its port.
        daemon = document.get("daemon") if isinstance(document, dict) else None
        if not isinstance(daemon, dict) or daemon.get("pid") != info.pid:
            raise unavailable from None
        return document, str(unavailable)


def show(
    document: dict[str, Any] | None, shared: dict[str, Any] | None, *, json_format: bool
) -> None:
    """The daemon's ``/status`` and the shared store's replicas, as JSON or text."""
    if json_format:
        write_json({**(document or {}), **(shared or {})})
        return
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        # Piped to grep or a file: whole lines, not rich's default of 80 columns.
        console.width = _UNWRAPPED
    if document is not None:
        render(document, console)
    if shared is not None:
        render_replicas(shared, console, now=datetime.now(UTC))


def replicas_document(config: Config) -> dict[str, Any]:
    """Read straight from a shared PostgreSQL store (no control endpoint needed): each
    replica's heartbeat, brands held and runs under way, and each export's holder.
    Raises :class:`~omnisync.state.store.StateError` (secret-free)."""
    from omnisync.daemon.remote import open_board

    with closing(open_board(config)) as board:
        snapshot = board.board()
    live = {lease.brand: lease for lease in snapshot.leases if lease.live}
    connection_of = {
        connection.brand: name for name, connection in sorted(config.connections.items())
    }
    return {
        "replicas": [
            {
                "id": replica.id,
                "live": replica.live,
                "last_seen": replica.seen_at.astimezone(UTC).isoformat(),
                "started_at": replica.started_at.astimezone(UTC).isoformat(),
                "version": replica.version,
                "config_revision": replica.config_revision,
                "leases": sorted(
                    connection_of.get(brand, brand)
                    for brand, lease in live.items()
                    if lease.holder == replica.id
                ),
                # A gone replica runs nothing (a live one resumes what it left).
                "running": list(replica.running) if replica.live else [],
            }
            for replica in snapshot.replicas
        ],
        "holders": {
            name: (live[brand].holder if (brand := config.brand_of(name)) in live else None)
            for name in sorted(config.exports)
        },
    }


def render(document: dict[str, Any], console: Console) -> None:
    """``/status`` as a header, a reload line and one table row per export, in the
    console's width: export names are never cut (too long for a table: one block each)."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from omnisync.engine.history_render import STATUS_STYLES  # a run's colour, as in history

    now = datetime.now(UTC)
    daemon = document.get("daemon", {})
    config = document.get("config", {})
    reload = document.get("last_reload", {})
    console.print(
        f"omnisync daemon pid {daemon.get('pid')} on {daemon.get('control_address')},"
        f" up since {short_time(daemon.get('started_at'))}"
    )
    console.print(Text(one_line(f"config {daemon.get('config_path')}")))
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
            console.print(Text(f"  {one_line(problem)}", style="red"), soft_wrap=True)
    rows: list[tuple[str, Text, str, str, Text]] = []
    counted: list[tuple[str, str]] = []
    held: list[tuple[str, str]] = []
    for name, export in sorted(document.get("exports", {}).items()):
        last = export.get("last_run") or {}
        status = last.get("status") or ""
        state = export.get("state", "")
        retry = f" (retry {export['retry']['attempt']})" if export.get("retry") else ""
        last_run = Text(status, style=STATUS_STYLES.get(status, ""))
        when = relative_time(last.get("ended_at") or last.get("started_at"), now)
        last_run.append(f" {when}" if status else when)
        rows.append(
            (
                name,
                Text(state + retry, style=_STATE_STYLES.get(state, "")),
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
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    table.add_column("export", no_wrap=True)
    for column in ("state", "schedule", "next run", "last run"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    # Fits when each cell's longest word is whole at the console's width.
    unbounded = console.options.update_width(10**6)
    if console.measure(table, options=unbounded).minimum <= console.width:
        console.print(table)
    else:
        for name, state, schedule, next_run, last_run in rows:
            console.print(Text(name, style="bold"), no_wrap=True, overflow="ignore", crop=False)
            line = Text("  ")
            line.append_text(state)
            line.append(f" · {schedule} · next {next_run} · last ")
            line.append_text(last_run)
            console.print(line)
    for name, reason in held:
        console.print(Text(one_line(f"{name} is HELD (nothing sent): {reason}"), style="bold red"))
    if counted:
        # Counts under the table, not in it: they would squeeze every column.
        console.print(Text("last run counts:", style="bold"))
        for name, counts in counted:
            console.print(Text(f"  {name}: {counts}"))


def render_replicas(document: dict[str, Any], console: Console, *, now: datetime) -> None:
    """The replicas table and the export -> holder list."""
    from rich import box
    from rich.table import Table

    table = Table(
        box=box.SIMPLE_HEAD, title="replicas sharing the state store", title_justify="left"
    )
    for column in ("replica", "last seen", "brands held", "runs under way"):
        table.add_column(column)
    for replica in document["replicas"]:
        # The database's clock stamped it: never "in 2s" on a host a little behind.
        seen = min(datetime.fromisoformat(replica["last_seen"]), now)
        table.add_row(
            replica["id"] + ("" if replica["live"] else " (gone)"),
            relative_time(seen.isoformat(), now),
            ", ".join(replica["leases"]) or "-",
            ", ".join(replica["running"]) or "-",
        )
    console.print(table)
    for export, holder in document["holders"].items():
        console.print(f"  export {export}: {'held by ' + holder if holder else 'no holder'}")


def relative_time(value: object, now: datetime) -> str:
    """A moment as people say it: ``in 14m``, ``3m ago``, ``now``; ``-`` when absent."""
    moment = parse_time(value)
    if moment is None:
        return "-" if not value else str(value)
    seconds = int((moment - now).total_seconds())
    if abs(seconds) < 1:
        return "now"
    length = _span(abs(seconds))
    return f"in {length}" if seconds > 0 else f"{length} ago"


def _span(seconds: int) -> str:
    """``42s``, ``14m``, ``3h 05m``, ``2d 4h``: two units at most."""
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def short_time(value: object) -> str:
    """A timestamp shortened for people: ``2026-01-01 12:00:00Z``; ``-`` when absent."""
    moment = parse_time(value)
    if moment is None:
        return "-" if not value else str(value)
    offset = moment.strftime("%z")
    suffix = "Z" if offset in ("+0000", "") else f" {offset[:3]}:{offset[3:]}"
    return moment.strftime("%Y-%m-%d %H:%M:%S") + suffix


def _counts(counts: dict[str, Any]) -> str:
    """The non-zero counts of a run, ``members 1,234, upserted 1,234``."""
    return ", ".join(
        f"{key} {value:,}" if isinstance(value, int) else f"{key} {value}"
        for key, value in counts.items()
        if value and key != "requests"
    )
