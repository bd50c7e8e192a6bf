"""omnisync drift EXPORT: does Omnisend still hold what the export delivered?

Reads back a sample of the export's delivered contacts and compares them with
what omnisync recorded: contacts missing, tags missing, the tag on non-members,
mapped fields that differ; unsubscribed contacts are listed as information.
--repair marks the drifted contacts so that the next run re-sends and re-tags
exactly those. A missing state store is a failure (nothing to compare with).
Reads are paced by this process's own limiter; Omnisend's 429s cover the
overlap with a daemon running at the same time.

Exit status: 0 no drift, 3 drift found, 1 failed, 2 usage error.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from omnisync.cli.common import add_format, bounded, chosen_exports, cli_config, fail, write
from omnisync.cli.main import EXIT_OK
from omnisync.config.location import add_config_argument
from omnisync.errors import OmnisyncError
from omnisync.state.opening import open_existing_store

if TYPE_CHECKING:
    from omnisync.config.model import Config

EXIT_DRIFT = 3


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("export", metavar="EXPORT", help="the export to check")
    add_config_argument(parser)
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--sample",
        type=bounded(int, 1),
        default=100,
        metavar="N",
        help="check N delivered contacts drawn at random (default 100)",
    )
    size.add_argument("--all", action="store_true", help="check every delivered contact")
    parser.add_argument(
        "--seed", type=int, metavar="N", help="draw the sample with this seed (repeatable)"
    )
    parser.add_argument(
        "--repair",
        action="store_true",
        help="mark the drifted contacts so that the next run re-sends and re-tags them",
    )
    add_format(parser, "markdown")


def handle(args: argparse.Namespace) -> int:
    from omnisync.clock import SystemClock
    from omnisync.engine.clients import ClientPool
    from omnisync.engine.drift import (
        check_drift,
        render_json,
        render_markdown,
        render_text,
        repair_drift,
    )
    from omnisync.logs import configure_logging
    from omnisync.state import state_path

    configure_logging(log_format="text", level="WARNING")
    loaded = cli_config(args)
    chosen_exports(loaded, [args.export], command="drift")
    renderers = {"text": render_text, "json": render_json, "markdown": render_markdown}
    try:
        store = open_existing_store(loaded.daemon, environ=os.environ)
        if store is None:
            # Never created here: a missing store means the wrong machine or no run yet.
            raise OmnisyncError(
                f"no state store at {state_path(loaded.daemon.state_dir)}: nothing delivered"
                " to compare with (run drift where daemon.state_dir is, after a run)"
            )
        with store, ClientPool(clock=SystemClock(), environ=os.environ) as clients:
            report = check_drift(
                loaded,
                args.export,
                store=store,
                clients=clients,
                sample=None if args.all else args.sample,
                seed=args.seed,
            )
            if args.repair and report.drifted:
                if loaded.daemon.state.shared:
                    _refuse_while_running(loaded, args.export)
                report = repair_drift(
                    report, store=store, state_dir=loaded.daemon.state_dir, now=datetime.now(UTC)
                )
    except (OmnisyncError, ValueError, OSError, sqlite3.Error) as error:
        # ValueError: a malformed API key (the message never holds it); OSError and
        # sqlite3.Error: the staging tables' scratch space (a full disk, say).
        return fail(f"omnisync drift: export '{args.export}': {error}")
    write(renderers[args.format](report))
    return EXIT_DRIFT if report.drifted else EXIT_OK


def _refuse_while_running(config: Config, export: str) -> None:
    """On a shared store the run lock is per machine: refuse to mark the ledger while a
    replica runs the export (its run would read the ledger before the marks)."""
    from omnisync.daemon.remote import open_board

    with closing(open_board(config)) as board:
        replicas = board.board().replicas
    running = [replica.id for replica in replicas if replica.live and export in replica.running]
    if running:
        raise OmnisyncError(
            f"replica {running[0]} is running it now; repair once that run has ended "
            "(omnisync status shows the runs under way)"
        )
