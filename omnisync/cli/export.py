"""omnisync export run EXPORT: run one export now and say how it went.

Reads its segment, sends Omnisend what changed since the last run and records
what Omnisend acknowledged: through the daemon (or, on a shared store, the
replica holding the brand) when one is up, else in this process. SIGINT or
SIGTERM stops a local run at a batch boundary (it ends partial); a second
SIGINT aborts.

Exit status: 0 succeeded, 3 partial (the rest is retried next run), 4 held by
a change guard (nothing sent), 1 failed (also an invalid config or an
unreadable API key: nothing run or recorded), 2 usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from typing import TYPE_CHECKING, Any

from omnisync.cli.common import add_format, chosen_exports, cli_config, fail, stop_on_signals, write
from omnisync.cli.main import EXIT_FAILED, EXIT_OK, EXIT_PARTIAL
from omnisync.config.location import add_config_argument

if TYPE_CHECKING:
    from rich.progress import Progress

    from omnisync.config.model import Config
    from omnisync.engine.results import Phase, RunCounts, RunProgress, RunResult

EXIT_CODES = {"succeeded": EXIT_OK, "partial": EXIT_PARTIAL, "held": 4, "failed": EXIT_FAILED}


def register(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    run = actions.add_parser(
        "run",
        help="run one export now (exit 0 succeeded, 3 partial, 4 held, 1 failed, 2 usage)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("export", metavar="EXPORT", help="the export to run")
    add_config_argument(run)
    add_format(run)
    run.add_argument(
        "--full",
        action="store_true",
        help="resync the whole segment as if first: re-send and re-tag every member"
        " (no consent status for contacts delivered before); guarded like any run",
    )
    run.add_argument(
        "--allow-large-change",
        action="store_true",
        help="release this one run past the export's change guards (an empty segment, most"
        " members leaving or re-sent); history records who released it",
    )


def handle(args: argparse.Namespace) -> int:
    from omnisync.daemon.remote import (
        RemoteRunFailed,
        as_run_result,
        run_through_daemon,
        run_through_replicas,
    )
    from omnisync.engine.run_render import render_json, render_text
    from omnisync.engine.runner import ApiKeyUnavailable, ExportBusy
    from omnisync.logs import configure_logging
    from omnisync.state import StateError

    # Warnings (refused contacts, retries) go to stderr, masked; the summary to stdout.
    configure_logging(log_format="text", level="WARNING")
    loaded = cli_config(args)
    chosen_exports(loaded, [args.export], command="export run")
    releaser = _who() if args.allow_large_change else None
    try:
        with _progress_display(args.format == "text" and sys.stdout.isatty()) as progress:
            # A daemon (or the replica holding the brand) runs it, never two runs at once;
            # Ctrl-C then stops the waiting, not that run.
            if loaded.daemon.state.shared:
                through = run_through_replicas
            else:
                through = partial(run_through_daemon, progress=progress)
            remote = through(
                loaded,
                args.export,
                notice=lambda line: print(line, file=sys.stderr),
                release_by=releaser,
                full=args.full,
            )
            if remote is None:
                result = _run_here(loaded, args, release_by=releaser, progress=progress)
            else:
                result = as_run_result(remote, args.export)
    except ApiKeyUnavailable as error:
        # A config problem, not a failed run: nothing was run, recorded or logged.
        return fail(f"omnisync export run: not running export {args.export}: {error}")
    except (RemoteRunFailed, ExportBusy, StateError) as error:
        return fail(f"omnisync export run: {error}")
    write(render_json(result) if args.format == "json" else render_text(result))
    if result.status == "failed" and args.format == "json":
        print(f"omnisync export run: {result.error}", file=sys.stderr)
    return EXIT_CODES[result.status]


def _run_here(
    config: Config,
    args: argparse.Namespace,
    *,
    release_by: str | None,
    progress: RunProgress | None,
) -> RunResult:
    """Run ``args.export`` in this process, stopped at a batch boundary by SIGINT/SIGTERM;
    on a shared store under its brand's lease (fenced writes, checked requests), so no
    replica runs the brand meanwhile. Raises :class:`ExportBusy` (running elsewhere) and
    :class:`StateError` (the store is unusable)."""
    from omnisync.clock import SystemClock
    from omnisync.daemon.runs import manual_trigger
    from omnisync.engine.clients import ClientPool
    from omnisync.engine.runner import ExportRunner
    from omnisync.state.opening import open_configured_store

    clock = SystemClock()
    stop = threading.Event()
    with ExitStack() as stack:
        stack.enter_context(
            stop_on_signals(
                stop, notice="stopping: finishing the batches already sent (Ctrl-C again to abort)"
            )
        )
        store = stack.enter_context(open_configured_store(config.daemon, environ=os.environ))
        gate = brand_moves = None
        if config.daemon.state.shared:
            from omnisync.daemon.remote import HeldBrand
            from omnisync.state.postgres import PostgresLedgerStore

            brand = config.brand_of(args.export)
            if brand is not None and isinstance(store, PostgresLedgerStore):
                held = stack.enter_context(HeldBrand(config, brand, environ=os.environ))
                store = store.fenced(held.fence)
                gate, brand_moves = held.require, held.brand_move_objection
        clients = stack.enter_context(
            ClientPool(
                clock=clock,
                environ=os.environ,
                gate_for=(lambda connection: gate) if gate is not None else None,
            )
        )
        runner = ExportRunner(
            config, store=store, clients=clients, clock=clock, brand_moves=brand_moves
        )
        return runner.run(
            args.export,
            trigger=manual_trigger("cli", full=args.full, release_by=release_by),
            stop=stop,
            progress=progress,
            allow_large_change=args.allow_large_change,
            full=args.full,
        )


class BarProgress:
    """A :class:`RunProgress` drawn with rich: the phase, then upserts and tag changes. A
    run that starts after one finished (the daemon's, waited for) gets fresh bars."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._phase = progress.add_task("starting", total=None)
        self._upserts: Any = None
        self._tags: Any = None
        self._finished = False

    def phase_started(self, phase: Phase, counts: RunCounts) -> None:
        if self._finished and phase != "finished":
            for task in (self._phase, self._upserts, self._tags):
                if task is not None:
                    self._progress.remove_task(task)
            self._phase = self._progress.add_task("starting", total=None)
            self._upserts = self._tags = None
        self._finished = phase == "finished"
        self._progress.update(self._phase, description=_PHASES[phase])
        if phase == "applying" and self._upserts is None:
            self._upserts = self._progress.add_task("contacts upserted", total=None)
            self._tags = self._progress.add_task("tag changes", total=None)
        if phase == "finished":
            self._progress.update(self._phase, total=1, completed=1)
        self.counts_updated(counts)

    def counts_updated(self, counts: RunCounts) -> None:
        if self._upserts is None:
            return
        self._progress.update(
            self._upserts,
            total=max(counts.to_create + counts.to_update, counts.upserts_planned),
            completed=counts.upserted + counts.upsert_failed,
        )
        self._progress.update(
            self._tags,
            total=counts.tag_changes_planned,
            completed=counts.tagged + counts.untagged + counts.tag_failed,
        )


_PHASES: dict[Phase, str] = {
    "checking": "checking permissions and the API key",
    "settling": "settling batches an interrupted run left",
    "staging": "reading the segment and diffing it",
    "applying": "sending to Omnisend",
    "finished": "done",
}


@contextmanager
def _progress_display(enabled: bool) -> Iterator[RunProgress | None]:
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    with progress:
        yield BarProgress(progress)


def _who() -> str:
    """Who runs this command, for history: ``SUDO_USER``, else the login name."""
    import getpass

    try:
        return os.environ.get("SUDO_USER") or getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"
