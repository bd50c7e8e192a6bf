"""omnisync history [EXPORT]: recorded export runs, newest first.

Reads the config's state store, or the SQLite store under --state-dir, which
needs no config (for when the config is broken). A missing SQLite store has no
runs; an unreachable PostgreSQL store is exit 1. An export neither in the
config nor in the history is a typo: exit 2, naming the config's exports.

On a terminal the table fits its width; piped, nothing is cut (every cell and
each error's first line whole), for CI logs and grep.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from omnisync.cli.common import add_format, bounded, chosen_exports, cli_config, write, write_json
from omnisync.cli.main import EXIT_FAILED, EXIT_OK
from omnisync.config.location import add_config_argument

if TYPE_CHECKING:
    from omnisync.config.model import Config
    from omnisync.state import RunRecord

#: Wider than any row, so a table that is not on a terminal is never cut.
_UNBOUNDED_WIDTH = 1_000_000


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("export", nargs="?", metavar="EXPORT", help="only this export's runs")
    add_config_argument(parser)
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        help="read the SQLite state store in this directory instead of the config's daemon.state",
    )
    parser.add_argument(
        "--limit", type=bounded(int, 1), default=20, metavar="N", help="at most N runs (default 20)"
    )
    add_format(parser)


def handle(args: argparse.Namespace) -> int:
    # Imported here, not with the module: `omnisync --help` imports every command's module.
    from omnisync.config.model import DaemonSettings
    from omnisync.engine.history_render import render_runs, runs_as_dicts
    from omnisync.state import StateError, state_path
    from omnisync.state.opening import open_existing_store

    config: Config | None = None
    if args.state_dir is not None:
        settings = DaemonSettings(state_dir=args.state_dir)
    else:
        config = cli_config(args)
        settings = config.daemon
    runs: list[RunRecord] = []
    location = str(state_path(settings.state_dir))
    try:
        store = open_existing_store(settings, environ=os.environ)
        if store is not None:
            with store:
                runs = store.runs(args.export, limit=args.limit)
                location = store.location
    except StateError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    if config is not None and args.export is not None and not runs:
        chosen_exports(config, [args.export], command="history")
    if args.format == "json":
        write_json({"runs": runs_as_dicts(runs)})
    elif not runs:
        scope = f" for export {args.export!r}" if args.export else ""
        write(f"no runs recorded{scope} (state: {location})\n")
    else:
        from rich.console import Console

        # A terminal's width fits the table to the screen; a pipe (CI logs, grep) gets
        # every cell and error line whole: no width short enough to cut one.
        width = None if sys.stdout.isatty() else _UNBOUNDED_WIDTH
        render_runs(runs, Console(soft_wrap=False, width=width))
    return EXIT_OK
