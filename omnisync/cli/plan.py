"""omnisync plan [EXPORT...]: what the exports would send now, changing nothing.

Reads each export's segment, diffs it against what was delivered and prints
what a run would do: contacts to create, update, tag and untag, invalid rows
with reasons, masked samples. Sends nothing and never resolves an API key.
Without the state store every member counts as to create, an upper bound, and
the output says so. A shared PostgreSQL store is opened once for every export;
one that cannot be opened fails each of them.

Exit status: 0 planned; 1 invalid config, unreadable source or state (or no
state with --require-state); 2 usage error, unreadable path or unknown export.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from contextlib import nullcontext
from datetime import UTC, datetime

from omnisync.cli.common import add_format, chosen_exports, cli_config, write
from omnisync.cli.main import EXIT_FAILED, EXIT_OK
from omnisync.config.location import add_config_argument
from omnisync.engine.plan_render import render_json, render_markdown, render_text
from omnisync.engine.report import PlanReport, plan_export
from omnisync.engine.results import ExportFailure
from omnisync.engine.staging import LedgerUnreadable
from omnisync.sources.errors import SourceError
from omnisync.state import LedgerStore, StateError
from omnisync.state.opening import describe_store, open_configured_store

RENDERERS = {"text": render_text, "json": render_json, "markdown": render_markdown}


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "exports", nargs="*", metavar="EXPORT", help="exports to plan (default: all)"
    )
    add_config_argument(parser)
    add_format(parser, "markdown")
    parser.add_argument(
        "--require-state",
        action="store_true",
        help="fail (exit 1) when an export's state store is not found, instead of"
        " counting every member as to create",
    )


def handle(args: argparse.Namespace) -> int:
    config = cli_config(args)
    names = chosen_exports(config, args.exports, command="plan")

    now = datetime.now(UTC)
    reports: list[PlanReport] = []
    failures: list[ExportFailure] = []
    store: LedgerStore | None = None
    if config.daemon.state.shared:
        try:
            store = open_configured_store(config.daemon, environ=os.environ)
        except StateError as error:
            failures.extend(ExportFailure(name, str(error)) for name in names)
            names = []
    with store or nullcontext():
        for name in names:
            try:
                report = plan_export(config, name, store=store, now=now)
            except (SourceError, LedgerUnreadable, StateError) as error:
                failures.append(ExportFailure(name, str(error)))
                continue
            except (sqlite3.Error, OSError) as error:
                # Scratch space for the staging tables (a full disk, say).
                failures.append(ExportFailure(name, f"staging failed: {error}"))
                continue
            if args.require_state and not report.state_found:
                message = (
                    f"no state store at {describe_store(config.daemon)} (--require-state): what"
                    " was delivered before is unknown; run plan where the state store is reachable"
                )
                failures.append(ExportFailure(name, message))
            else:
                reports.append(report)
    write(RENDERERS[args.format](reports, failures))
    for failure in failures:
        print(f"omnisync plan: export '{failure.export}': {failure.message}", file=sys.stderr)
    return EXIT_FAILED if failures else EXIT_OK
