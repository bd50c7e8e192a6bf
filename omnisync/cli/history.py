"""``omnisync history [EXPORT]``: the recorded runs, newest first, as a table or JSON.

Reads the config's state store (``daemon.state``: SQLite under
``daemon.state_dir`` by default, or a shared PostgreSQL database whose DSN is
resolved from the environment or ``$CREDENTIALS_DIRECTORY`` and never shown),
or the SQLite store under ``--state-dir``, which needs no config at all:
useful when the config is broken and you want to know what ran last. A
SQLite store that does not exist yet is not created: it has no runs. A
PostgreSQL store that cannot be reached is an error (exit 1) naming the
store, never its password. Runs that name the replica that ran them get a
``replica`` column (and JSON field).

An export that is neither in the config nor in the history is a typo: the
command names the config's exports and exits 2, as ``plan`` and ``export run``
do. (An export removed from the config still shows the runs it left.)
"""

from __future__ import annotations

import argparse
import os
import sys

from omnisync.cli.common import (
    cli_config,
    positive,
    refuse_unknown_exports,
    write,
    write_json,
)
from omnisync.cli.main import EXIT_FAILED, EXIT_OK
from omnisync.config.location import add_config_argument
from omnisync.config.model import Config, DaemonSettings
from omnisync.engine.history_render import render_runs, runs_as_dicts
from omnisync.state import RunRecord, StateError, state_path
from omnisync.state.opening import open_existing_store


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
        help="read the SQLite state store in this directory instead of the config's daemon.state",
    )
    parser.add_argument(
        "--limit", type=positive, default=20, metavar="N", help="at most N runs (default 20)"
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.set_defaults(handler=handler)


def handler(args: argparse.Namespace) -> int:
    config: Config | None = None
    if args.state_dir is not None:
        settings = DaemonSettings(state_dir=args.state_dir)
    else:
        loaded = cli_config(args)
        if isinstance(loaded, int):
            return loaded
        config = loaded
        settings = loaded.daemon
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
        refused = refuse_unknown_exports(config, [args.export], command="history")
        if refused is not None:
            return refused
    if args.format == "json":
        write_json({"runs": runs_as_dicts(runs)})
        return EXIT_OK
    if not runs:
        scope = f" for export {args.export!r}" if args.export else ""
        write(f"no runs recorded{scope} (state: {location})\n")
        return EXIT_OK
    from rich.console import Console

    render_runs(runs, Console(soft_wrap=False, width=None if sys.stdout.isatty() else 160))
    return EXIT_OK
