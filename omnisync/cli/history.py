"""``omnisync history [EXPORT]``: the recorded runs, newest first, as a table or JSON.

Reads the state store under the config's ``daemon.state_dir`` (or
``--state-dir``, which needs no config at all: useful when the config is
broken and you want to know what ran last).

An export that is neither in the config nor in the history is a typo: the
command names the config's exports and exits 2, as ``plan`` and ``export run``
do. (An export removed from the config still shows the runs it left.)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from omnisync.cli.export import EXIT_FAILED, EXIT_OK, EXIT_USAGE, cli_config
from omnisync.config.location import add_config_argument
from omnisync.engine.history_render import render_runs, run_as_dict
from omnisync.state import RunRecord, SqliteLedgerStore, StateError, state_path


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
    known: list[str] | None = None  # the config's exports, when a config was read
    if args.state_dir is not None:
        state_dir = Path(args.state_dir)
    else:
        loaded = cli_config(args.config)
        if isinstance(loaded, int):
            return loaded
        state_dir = Path(loaded.daemon.state_dir)
        known = sorted(loaded.exports)
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
    if known is not None and args.export is not None and args.export not in known and not runs:
        print(
            f"omnisync history: no export '{args.export}' in the config"
            f" (exports: {', '.join(known) or 'none'})",
            file=sys.stderr,
        )
        return EXIT_USAGE
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


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value
