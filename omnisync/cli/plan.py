"""``omnisync plan [EXPORT...]``: what the exports would send now, changing nothing.

Per export: counts per action (create, update, tag, untag, unchanged),
masked samples, invalid rows by reason, duplicates and the ``max_profiles``
check, as text, JSON or Markdown. The segment is read and diffed against the
ledger read-only; nothing is sent and the API key is never resolved.

The ledger is the config's state store (``daemon.state``): the SQLite file
under ``daemon.state_dir`` (never created here; without it every member
counts as to create), or a shared PostgreSQL database, opened once for every
export with its DSN resolved from the environment or ``$CREDENTIALS_DIRECTORY``.
A PostgreSQL store that cannot be opened fails every export with a one-line
message naming the store, never its DSN or password.

Exit status: 0 every export planned; 1 the config is invalid or a source
(or the ledger) could not be read; 2 usage errors, an unreadable config path
or an unknown export name.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from datetime import UTC, datetime
from typing import Any

from omnisync.cli.common import chosen_exports, cli_config, write
from omnisync.cli.main import EXIT_FAILED, EXIT_OK
from omnisync.config.location import add_config_argument
from omnisync.engine.plan_render import PlanFailure, render_json, render_markdown, render_text
from omnisync.engine.report import PlanReport, plan_export
from omnisync.engine.staging import LedgerUnreadable
from omnisync.sources.errors import SourceError
from omnisync.state import LedgerStore, StateError
from omnisync.state.opening import describe_store, open_configured_store

RENDERERS = {"text": render_text, "json": render_json, "markdown": render_markdown}


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "plan",
        help="show what exports would send now (changes nothing, sends nothing)",
        description=(
            "Read each export's segment, diff it against what was delivered and print"
            " what a run would do: contacts to create, update, tag and untag, invalid rows"
            " with reasons, masked samples. Changes nothing and sends nothing."
            " Without the state store (what was delivered before) every member counts"
            " as to create, an upper bound, and the output says so."
            " Exit status: 0 planned, 1 invalid config, unreadable source or state"
            " (or no state with --require-state), 2 usage error or unknown export."
        ),
    )
    parser.add_argument(
        "exports", nargs="*", metavar="EXPORT", help="exports to plan (default: all)"
    )
    add_config_argument(parser)
    parser.add_argument(
        "--format",
        choices=tuple(RENDERERS),
        default="text",
        help="text (default), json, or markdown",
    )
    parser.add_argument(
        "--require-state",
        action="store_true",
        help="fail (exit 1) when an export's state store is not found, instead of"
        " counting every member as to create",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    config = cli_config(args)
    if isinstance(config, int):
        return config
    names = chosen_exports(config, args.exports, command="plan")
    if isinstance(names, int):
        return names

    now = datetime.now(UTC)
    reports: list[PlanReport] = []
    failures: list[PlanFailure] = []
    store: LedgerStore | None = None
    if config.daemon.state.shared:
        try:
            store = open_configured_store(config.daemon, environ=os.environ)
        except StateError as error:
            failures.extend(PlanFailure(name, str(error)) for name in names)
            names = []
    try:
        for name in names:
            try:
                reports.append(plan_export(config, name, store=store, now=now))
            except (SourceError, LedgerUnreadable, StateError) as error:
                failures.append(PlanFailure(name, str(error)))
            except (sqlite3.Error, OSError) as error:
                # Scratch space for the staging tables (a full disk, say).
                failures.append(PlanFailure(name, f"staging failed: {error}"))
    finally:
        if store is not None:
            store.close()
    if args.require_state:
        state = describe_store(config.daemon)
        for report in [report for report in reports if not report.state_found]:
            reports.remove(report)
            failures.append(
                PlanFailure(
                    report.export,
                    f"no state store at {state} (--require-state): what was delivered "
                    "before is unknown; run plan where the state store is reachable",
                )
            )
    write(RENDERERS[args.format](reports, failures))
    for failure in failures:
        print(f"omnisync plan: export '{failure.export}': {failure.message}", file=sys.stderr)
    return EXIT_FAILED if failures else EXIT_OK
