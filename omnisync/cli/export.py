"""``omnisync export run EXPORT``: run one export now and say how it went.

Exit status: 0 succeeded, 3 partial (some operations left for the next run),
1 failed (or the config is invalid, or its API key cannot be read: then
nothing is run or recorded), 2 usage errors (unknown export, an unreadable
config path). On a terminal a progress bar shows the run, also one the
daemon runs for us; the summary follows, as text or JSON (``--format json``,
no progress bar).

SIGINT or SIGTERM stops the run at a batch boundary: batches already sent are
followed and recorded, and the run ends ``partial``; a second SIGINT aborts.

:func:`run_export_directly` is the direct path (no daemon); the daemon's
trigger may be tried first by callers that know one is running.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Any

from omnisync.cli.common import config_with_export, write
from omnisync.cli.main import EXIT_FAILED, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE
from omnisync.config.location import add_config_argument
from omnisync.config.model import Config

if TYPE_CHECKING:
    from rich.progress import Progress

    from omnisync.engine.results import Phase, RunCounts, RunProgress, RunResult

# The engine, the daemon client and rich are imported where a run needs them:
# every command module is imported to build ``--help``, and they are not light.

EXIT_HELD = 4

EXIT_CODES = {
    "succeeded": EXIT_OK,
    "partial": EXIT_PARTIAL,
    "held": EXIT_HELD,
    "failed": EXIT_FAILED,
}


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "export",
        help="run an export now",
        description="Operate on exports. `omnisync export run EXPORT` runs one now.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    run = actions.add_parser(
        "run",
        help="run one export now (exit 0 succeeded, 3 partial, 4 held, 1 failed, 2 usage)",
        description=(
            "Run one export now: read its segment, send Omnisend what changed since the"
            " last run, record what Omnisend acknowledged. Exit status: 0 succeeded,"
            " 3 partial (the rest is retried next run), 4 held by a change guard"
            " (nothing sent), 1 failed, 2 usage error."
        ),
    )
    run.add_argument("export", metavar="EXPORT", help="the export to run")
    add_config_argument(run)
    run.add_argument(
        "--format", choices=("text", "json"), default="text", help="summary format (text)"
    )
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
    run.set_defaults(handler=handle_run)
    parser.set_defaults(handler=lambda args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def handle_run(args: argparse.Namespace) -> int:
    from omnisync.daemon.remote import RemoteRunFailed, as_run_result, run_through_daemon
    from omnisync.daemon.triggers import manual_trigger
    from omnisync.engine.runner import ApiKeyUnavailable, ExportBusy
    from omnisync.logs import configure_logging
    from omnisync.state import StateError

    # Warnings (refused contacts, retries) go to stderr, masked; the summary to stdout.
    configure_logging(log_format="text", level="WARNING")
    loaded = config_with_export(args, command="export run")
    if isinstance(loaded, int):
        return loaded
    stop = threading.Event()
    interactive = args.format == "text" and sys.stdout.isatty()
    try:
        with _progress_display(interactive) as progress:
            # With a daemon up for this state directory, the daemon runs it: never two
            # runs at once. Ctrl-C then stops the waiting, not the daemon's run.
            releaser = _who() if args.allow_large_change else None
            if loaded.daemon.state.shared:
                # Replicas share the state: the brand's holder runs it, if one is up.
                from omnisync.daemon.requested import run_through_replicas

                remote = run_through_replicas(
                    loaded,
                    args.export,
                    notice=lambda line: print(line, file=sys.stderr),
                    release_by=releaser,
                    full=args.full,
                )
            else:
                remote = run_through_daemon(
                    loaded,
                    args.export,
                    notice=lambda line: print(line, file=sys.stderr),
                    progress=progress,
                    release_by=releaser,
                    full=args.full,
                )
            if remote is None:
                with _stop_on_signals(stop):
                    result = run_export_directly(
                        loaded,
                        args.export,
                        stop=stop,
                        progress=progress,
                        trigger=manual_trigger("cli", full=args.full, release_by=releaser),
                    )
    except ApiKeyUnavailable as error:
        # A config problem, not a failed run: nothing was run, recorded or logged.
        print(f"omnisync export run: not running export {args.export}: {error}", file=sys.stderr)
        return EXIT_FAILED
    except (RemoteRunFailed, ExportBusy, StateError) as error:
        print(f"omnisync export run: {error}", file=sys.stderr)
        return EXIT_FAILED
    if remote is not None:
        result = as_run_result(remote, args.export)
    return _summarise(result, args.format)


def _summarise(result: RunResult, output_format: str) -> int:
    from omnisync.engine.run_render import render_json, render_text

    output = render_json(result) if output_format == "json" else render_text(result)
    write(output)
    if result.status == "failed" and output_format == "json":
        print(f"omnisync export run: {result.error}", file=sys.stderr)
    return EXIT_CODES[result.status]


def run_export_directly(
    config: Config,
    name: str,
    *,
    trigger: str = "cli",
    stop: threading.Event | None = None,
    progress: RunProgress | None = None,
) -> RunResult:
    """Run export ``name`` in this process, against the config's state directory.

    Opens the state store and a client pool for the run and closes them after.
    On a shared store the run holds its brand's lease (fenced writes, checked
    requests), so no replica can run the brand meanwhile.
    Raises :class:`UnknownExport`, :class:`ExportBusy` (the export is running
    elsewhere) and :class:`StateError` (the state store is unusable).
    """
    from omnisync.clock import SystemClock
    from omnisync.daemon.triggers import is_full, is_release
    from omnisync.engine.clients import ClientPool
    from omnisync.engine.runner import ExportRunner, UnknownExport
    from omnisync.state.opening import open_configured_store

    if name not in config.exports:
        raise UnknownExport(f"no export named '{name}' in the config")
    clock = SystemClock()
    environ = os.environ
    with ExitStack() as stack:
        store = stack.enter_context(open_configured_store(config.daemon, environ=environ))
        gate = None
        if config.daemon.state.shared:
            # No replica holds the brand: hold it ourselves, fenced, for this one run.
            from omnisync.daemon.requested import HeldBrand
            from omnisync.state.postgres import PostgresLedgerStore

            brand = config.brand_of(name)
            if brand is not None and isinstance(store, PostgresLedgerStore):
                held = stack.enter_context(HeldBrand(config, brand, environ=environ))
                store = store.fenced(held.fence)
                gate = held.require
        clients = stack.enter_context(
            ClientPool(
                clock=clock,
                environ=environ,
                gate_for=(lambda connection: gate) if gate is not None else None,
            )
        )
        runner = ExportRunner(config, store=store, clients=clients, clock=clock)
        return runner.run(
            name,
            trigger=trigger,
            stop=stop,
            progress=progress,
            allow_large_change=is_release(trigger),
            full=is_full(trigger),
        )


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM set ``stop`` (finish the batch, record, end partial); a 2nd SIGINT aborts."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(number: int, frame: FrameType | None) -> None:
        if stop.is_set() and number == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()
        print(
            "stopping: finishing the batches already sent (Ctrl-C again to abort)",
            file=sys.stderr,
        )

    previous = {
        number: signal.signal(number, on_signal) for number in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


class BarProgress:
    """A :class:`RunProgress` drawn with rich: the phase, then upserts and tag changes.

    A run that starts after one finished (``export run`` waited for the daemon's
    run of the export, then follows its own) starts with fresh bars.
    """

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
        upserts_total = max(counts.to_create + counts.to_update, counts.upserts_planned)
        self._progress.update(
            self._upserts,
            total=max(upserts_total, 0),
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
    """Who runs this command, for history: the login name (``SUDO_USER`` first)."""
    import getpass

    name = os.environ.get("SUDO_USER")
    if name:
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"
