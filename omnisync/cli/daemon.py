"""omnisync daemon: run every enabled export on its schedule, until stopped.

Reloads the config when it changes (or on SIGHUP) and serves /healthz,
/metrics, /status and on-demand runs on the control address; a bad edit never
stops it (docs/daemon.md). SIGTERM/SIGINT stop it cleanly (exit 0), also while it
is still starting; a SIGHUP while it starts is a reload once it serves.
Refuses to start (exit 1) on a config that validate rejects, with the same
file:line:col lines, or whose secrets cannot be resolved, or while another daemon
uses its state directory; exit 2 for a path that cannot be read.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from omnisync.cli.common import fail
from omnisync.cli.main import EXIT_FAILED, EXIT_USAGE
from omnisync.config.location import add_config_argument, config_path_from

if TYPE_CHECKING:
    from types import FrameType

    from omnisync.daemon.loading import DaemonConfigLoader, LoadedConfig
    from omnisync.daemon.service import Daemon
    from omnisync.logs import Redactor


def register(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    parser.add_argument(
        "--log-format",
        choices=("json", "text"),
        help="log line format (default: daemon.log_format from the config)",
    )
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="info",
        help="lowest level logged (default: info)",
    )
    parser.add_argument(
        "--control-listen",
        metavar="HOST:PORT",
        help="control endpoint address (default: daemon.control.listen; port 0 picks one)",
    )
    parser.add_argument(
        "--shutdown-timeout",
        metavar="SECONDS",
        type=float,
        default=30.0,
        help="how long to wait for runs to reach a batch boundary on SIGTERM (default: 30)",
    )


class Signals:
    """SIGTERM, SIGINT and SIGHUP from the very start: noted while the daemon starts (their
    default actions would kill it, a SIGHUP's with exit 129), passed to it once it exists."""

    def __init__(self) -> None:
        self.stop_requested = False
        self.reload_requested = False
        self._daemon: Daemon | None = None
        for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(number, self._received)

    def _received(self, number: int, frame: FrameType | None) -> None:
        daemon = self._daemon
        if number == signal.SIGHUP:
            self.reload_requested = True
            if daemon is not None:
                daemon.request_reload()
        else:
            self.stop_requested = True
            if daemon is not None:
                daemon.request_stop()

    def attach(self, daemon: Daemon) -> None:
        """From now on ``daemon`` is told at once; what came before, it is told now. A
        SIGHUP during start is a reload once it serves, even when the config was loaded
        after it: a reload of what is loaded changes nothing, and an edit the start's
        load may have missed is what the signal is about."""
        self._daemon = daemon
        if self.reload_requested:
            daemon.request_reload()
        if self.stop_requested:
            daemon.request_stop()


def handle(args: argparse.Namespace) -> int:
    # First of all (this module imports little, so it comes early): a signal sent while
    # the daemon starts must not kill it.
    signals = Signals()
    # Imported here: `omnisync --help` imports every command's module, and would pay
    # for the daemon's imports (APScheduler, prometheus-client, the engine).
    from omnisync.config.rules import listen_problem
    from omnisync.daemon.budget import raise_file_limit
    from omnisync.daemon.claim import LOCK_FILENAME, StateDirectoryInUse, claim_state_directory
    from omnisync.daemon.loading import DaemonConfigLoader, LoadFailed
    from omnisync.logs import configure_logging
    from omnisync.state.locks import make_private_directory

    # First: the connection budget of the control endpoint is a share of this limit.
    raise_file_limit()
    redactor = configure_logging(log_format=args.log_format or "text", level=args.log_level)
    config_path = Path(config_path_from(args, os.environ)).absolute()
    loader = DaemonConfigLoader(os.environ)
    try:
        initial = loader(config_path)
    except LoadFailed as failure:
        for problem in failure.problems:
            print(problem, file=sys.stderr)
        if failure.unreadable:
            return _refuse(f"the config at {config_path} cannot be read", EXIT_USAGE)
        return _refuse(f"the config at {config_path} is invalid")
    redactor.register(initial.secret_values)
    settings = initial.config.daemon
    if args.control_listen is not None:
        # The rule `validate` applies to daemon.control.listen, for the flag too.
        refusal = listen_problem(args.control_listen, has_token=settings.control_token is not None)
        if refusal is not None:
            return _refuse(f"--control-listen {args.control_listen}: {refusal}", EXIT_USAGE)
    state_dir = Path(settings.state_dir)
    try:
        make_private_directory(state_dir)
    except OSError as error:
        reason = error.strerror or error
        return _refuse(f"cannot make the state directory {state_dir} private: {reason}")
    # Before anything in the state directory is written (the token below, the ledger,
    # daemon.json): a second daemon there would overwrite the first one's files.
    try:
        claim = claim_state_directory(state_dir)
    except StateDirectoryInUse as error:
        return _refuse(str(error))
    except OSError as error:
        reason = error.strerror or error
        return _refuse(f"cannot lock {state_dir / LOCK_FILENAME}: {reason}")
    # Held until this function returns, after daemon.json is removed (or by the kernel
    # until the process ends, on the os._exit below).
    with claim:
        return _serve(
            args,
            initial,
            loader=loader,
            config_path=config_path,
            redactor=redactor,
            signals=signals,
        )


def _serve(
    args: argparse.Namespace,
    initial: LoadedConfig,
    *,
    loader: DaemonConfigLoader,
    config_path: Path,
    redactor: Redactor,
    signals: Signals,
) -> int:
    """Start the daemon on ``initial`` and serve until stopped; the exit code. The caller
    has made the state directory and holds its claim."""
    from omnisync.clock import SystemClock
    from omnisync.daemon.discovery import forget_token
    from omnisync.daemon.engine import EngineRuns, EngineUnavailable
    from omnisync.daemon.loading import StartupFailed
    from omnisync.daemon.metrics import DaemonMetrics
    from omnisync.daemon.notify import Notifier
    from omnisync.daemon.service import Daemon
    from omnisync.logs import configure_logging

    settings = initial.config.daemon
    state_dir = Path(settings.state_dir)
    if initial.control_token:
        # A configured token replaces the generated one: no stale file to mislead anyone.
        forget_token(state_dir)
    if args.log_format is None and settings.log_format != "text":
        configure_logging(log_format=settings.log_format, level=args.log_level, redactor=redactor)

    clock = SystemClock()
    metrics = DaemonMetrics()
    # Leave a third of the shutdown timeout for recording and exiting.
    stop_grace = max(1.0, args.shutdown_timeout * 2 / 3)
    shared = None
    try:
        if settings.state.shared:
            from omnisync.daemon.replicated import Replication

            shared = Replication(initial.config, metrics=metrics, environ=os.environ)
            engine = shared.engine(clock=clock, stop_grace=stop_grace)
        else:
            engine = EngineRuns.open(state_dir, clock=clock, metrics=metrics, stop_grace=stop_grace)
    except EngineUnavailable as error:
        return _refuse(str(error))
    daemon = Daemon(
        initial,
        config_path=config_path,
        state_dir=state_dir,
        control_listen=args.control_listen or settings.control_listen,
        shutdown_timeout=args.shutdown_timeout,
        loader=loader,
        engine=engine,
        clock=clock,
        notifier=Notifier.from_environment(os.environ),
        metrics=metrics,
        redactor=redactor,
        replication=shared,
    )
    signals.attach(daemon)
    if signals.stop_requested:
        # Stopped while starting: nothing scheduled, served or written yet.
        daemon.shutdown()
        engine.close()
        logging.getLogger("omnisync.daemon").info(
            "daemon stopped while starting", extra={"event": "daemon_stopped", "drained": True}
        )
        return 0
    try:
        daemon.start()
    except (StartupFailed, OSError) as error:
        # A control address in use, a state directory we may not write.
        status = _refuse(str(error))
        daemon.shutdown()
        engine.close()
        return status
    code = daemon.serve()
    engine.close()
    if not daemon.drained:
        # Runs that would not stop in time hold threads the interpreter would wait
        # for; their in-flight batches are in the ledger for the next run to settle.
        logging.shutdown()
        os._exit(code)
    return code


def _refuse(reason: str, status: int = EXIT_FAILED) -> int:
    return fail(f"omnisync daemon: not starting: {reason}", status)
