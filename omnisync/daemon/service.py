"""The daemon: a main loop that reloads, reconciles, and answers signals.

:class:`Daemon` composes the shells — scheduler, run coordinator, watcher,
control server, notifier — around the last good config. Everything that
touches the outside (loading and validating a config, running an export,
reading run history) is injected, so the command line wires the real engine
and tests can wire anything.

The main loop (the thread that called :meth:`Daemon.serve`) is the only one
that reloads or reconciles: signal handlers and the watcher only leave a
note and wake it through a pipe. Each pass it

1. stops when asked (SIGTERM/SIGINT): stop scheduling, ask runs to stop at a
   batch boundary, wait for them (bounded), exit;
2. reloads on SIGHUP at once, and after file events once the config has
   been quiet for ``daemon.reload_debounce``;
3. reconciles the scheduler with the current config (every tick);
4. pets the systemd watchdog.

A reload validates first; a config that fails to load, validate or resolve
its secrets is logged line by line (``file:line:col: path: message``), shown
in ``/status`` and in ``omnisync_config_reload_success 0`` — and the last
good config keeps running.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from omnisync import __version__
from omnisync.clock import Clock
from omnisync.config.model import Config
from omnisync.daemon.control import ControlServer, TriggerAnswer
from omnisync.daemon.discovery import (
    TOKEN_FILENAME,
    DaemonInfo,
    ensure_token,
    remove_info,
    write_info,
)
from omnisync.daemon.loading import (
    ConfigLoader,
    LoadedConfig,
    LoadFailed,
    StartupFailed,
    log_rejected,
)
from omnisync.daemon.metrics import CONTENT_TYPE, DaemonMetrics
from omnisync.daemon.notify import Notifier
from omnisync.daemon.runs import RunFunction
from omnisync.daemon.status import (
    DaemonView,
    ReloadResult,
    build_status,
    last_success,
    status_line,
)
from omnisync.daemon.supervisor import Preflight, SharedScheduling, Supervisor
from omnisync.daemon.wakeup import WakeUp
from omnisync.daemon.watcher import ConfigWatcher
from omnisync.logs import Redactor

#: How many reloads /status lists.
RELOAD_HISTORY = 10

_log = logging.getLogger("omnisync.daemon")

#: /healthz turns unhealthy when the main loop has not come round for this long.
_STALL_SECONDS = 60.0
#: The main loop comes round at least this often (reconcile, STATUS=, watchdog).
_TICK_SECONDS = 1.0


@dataclass(frozen=True)
class DaemonOptions:
    """How this daemon runs, beyond what the config says."""

    config_path: Path
    state_dir: Path
    control_listen: str
    shutdown_timeout: float = 30.0


class Daemon:
    """One daemon process's worth of state. Build, :meth:`serve`, and it returns an exit code."""

    def __init__(
        self,
        initial: LoadedConfig,
        *,
        options: DaemonOptions,
        loader: ConfigLoader,
        run_function: RunFunction,
        clock: Clock,
        notifier: Notifier,
        metrics: DaemonMetrics | None = None,
        last_run: Callable[[str], Mapping[str, Any] | None] | None = None,
        on_applied: Callable[[LoadedConfig, LoadedConfig | None], None] | None = None,
        redactor: Redactor | None = None,
        preflight: Preflight | None = None,
        shared: SharedScheduling | None = None,
        ready: Callable[[], bool] | None = None,
    ) -> None:
        self.options = options
        self._ready = ready
        self.metrics = metrics or DaemonMetrics()
        self._loader = loader
        self._clock = clock
        self._notifier = notifier
        self._last_run = last_run
        self._on_applied = on_applied
        self._redactor = redactor
        self._loaded = initial
        self._loaded_at = clock.wall()
        self._config_lock = threading.Lock()
        self._started_at = clock.wall()
        started = ReloadResult(
            ok=True, at=self._started_at, source="start", revision=initial.config.revision
        )
        #: The latest reloads, newest last: the reload history /status shows.
        self._reloads = collections.deque([started], maxlen=RELOAD_HISTORY)
        self.supervisor = Supervisor(
            run_function,
            config=self.config,
            clock=clock,
            metrics=self.metrics,
            last_run=last_run,
            preflight=preflight,
            shared=shared,
        )
        self._watcher = ConfigWatcher(options.config_path, self._files_changed)
        self._control: ControlServer | None = None
        self._token = ""
        # Notes left for the main loop by signal handlers and the watcher.
        self._notes = WakeUp()
        self._heartbeat = time.monotonic()
        #: After :meth:`shutdown`: whether every run stopped within the timeout.
        self.drained = True
        self._started = False

    # -- what others read ---------------------------------------------------------

    def config(self) -> Config:
        """The last good config."""
        with self._config_lock:
            return self._loaded.config

    @property
    def control_address(self) -> str:
        return self._control.address if self._control is not None else ""

    # -- notes for the main loop (signal-handler safe) ------------------------------

    def request_stop(self) -> None:
        self._notes.request_stop()

    def request_reload(self) -> None:
        self._notes.request_reload()

    def _files_changed(self, paths: tuple[str, ...]) -> None:
        _log.debug(
            "config files changed: %s",
            ", ".join(paths),
            extra={"event": "config_files_changed", "paths": list(paths)},
        )
        self._notes.files_changed()

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        """Bind the control endpoint, schedule the exports, watch the config, tell systemd."""
        state_dir = self.options.state_dir
        try:
            state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as error:
            raise StartupFailed(
                f"cannot create the state directory {state_dir}: {error.strerror or error}"
            ) from None
        self._secrets_loaded(self._loaded)
        self._token = self._loaded.control_token or ensure_token(state_dir)
        try:
            self._control = ControlServer(self.options.control_listen, self, token=self._token)
        except (OSError, ValueError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else error
            raise StartupFailed(
                f"cannot serve the control endpoint on {self.options.control_listen}: {reason}"
            ) from None
        self._control.start()
        write_info(
            state_dir,
            DaemonInfo(
                pid=os.getpid(),
                address=self._control.address,
                config_path=str(self.options.config_path),
                started_at=self._started_at.isoformat(),
            ),
        )
        self.supervisor.start()
        self._apply(self._loaded, previous=None)
        self.metrics.reloaded(ok=True, at=self._started_at)
        self.supervisor.catch_up()
        self._watcher.start()
        config = self.config()
        _log.info(
            "daemon started: %d exports, revision %s, control on %s",
            len(config.exports),
            config.revision,
            self._control.address,
            extra={
                "event": "daemon_started",
                "revision": config.revision,
                "control_address": self._control.address,
                "pid": os.getpid(),
            },
        )
        self._started = True
        self._notifier.ready(self._status_line())

    def serve(self) -> int:
        """Run the main loop until asked to stop; then shut down and return the exit code."""
        next_watchdog = time.monotonic()
        shown_status = self._status_line()
        while not self._notes.stop_requested:
            self._heartbeat = time.monotonic()
            if self._notes.take_reload_request():
                self.reload(source="sighup")
            due = self._notes.reload_due(self.config().daemon.reload_debounce_seconds)
            if due is not None and due <= 0:
                self.reload(source="watch")
            self.supervisor.tick()
            status_line = self._status_line()
            if status_line != shown_status:
                # `systemctl status` shows the latest STATUS= line.
                self._notifier.status(status_line)
                shown_status = status_line
            now = time.monotonic()
            interval = self._notifier.watchdog_interval
            if interval is not None and now >= next_watchdog:
                self._notifier.watchdog()
                next_watchdog = now + interval
            timeout = _TICK_SECONDS
            if due is not None:
                timeout = min(timeout, max(due, 0.0))
            if interval is not None:
                timeout = min(timeout, max(next_watchdog - now, 0.0))
            self._notes.sleep(timeout)
        return self.shutdown()

    def shutdown(self) -> int:
        """Stop scheduling, stop runs at a batch boundary (bounded wait), release everything."""
        if self._started:
            _log.info("daemon stopping", extra={"event": "daemon_stopping"})
            self._notifier.stopping()
        self._watcher.stop()
        in_flight = sorted(self.supervisor.coordinator.running())
        if in_flight:
            _log.info(
                "waiting up to %ss for runs to reach a batch boundary: %s",
                self.options.shutdown_timeout,
                ", ".join(in_flight),
                extra={"event": "daemon_draining", "exports": in_flight},
            )
        drained = self.drained = self.supervisor.shutdown(timeout=self.options.shutdown_timeout)
        if not drained:
            # The ledger is still consistent: whatever was in flight is recorded as
            # in-flight batches, which the next run settles.
            _log.error(
                "runs still going after %ss: %s; exiting anyway",
                self.options.shutdown_timeout,
                ", ".join(sorted(self.supervisor.coordinator.running())),
                extra={"event": "daemon_drain_timeout"},
            )
        if self._control is not None:
            self._control.stop()
        remove_info(self.options.state_dir, pid=os.getpid())
        if self._started:
            _log.info("daemon stopped", extra={"event": "daemon_stopped", "drained": drained})
        self._notifier.close()
        self._notes.close()
        return 0

    # -- reload and reconcile -----------------------------------------------------

    def reload(self, *, source: str) -> bool:
        """Load the config again; apply it when good, keep the old one when not."""
        self._notifier.reloading()
        at = self._clock.wall()
        try:
            loaded = self._loader(self.options.config_path)
        except LoadFailed as failure:
            log_rejected(failure, source=source, running_revision=self.config().revision)
            return self._reloaded(
                ReloadResult(
                    ok=False,
                    at=at,
                    source=source,
                    revision=failure.revision or None,
                    problems=failure.problems,
                )
            )
        previous = self._loaded
        self._secrets_loaded(loaded)
        if loaded.control_token and loaded.control_token != self._token:
            self._token = loaded.control_token
            if self._control is not None:
                self._control.set_token(loaded.control_token)
        self._apply(loaded, previous=previous)
        return self._reloaded(
            ReloadResult(ok=True, at=at, source=source, revision=loaded.config.revision)
        )

    def _reloaded(self, result: ReloadResult) -> bool:
        """Show ``result`` (/status, metrics, systemd) and return whether it succeeded."""
        self._reloads.append(result)
        self.metrics.reloaded(ok=result.ok, at=result.at)
        self._notifier.ready(self._status_line())
        return result.ok

    def _secrets_loaded(self, loaded: LoadedConfig) -> None:
        if self._redactor is not None:
            self._redactor.register(loaded.secret_values)
            if loaded.control_token:
                self._redactor.register((loaded.control_token,))

    def _apply(self, loaded: LoadedConfig, *, previous: LoadedConfig | None) -> None:
        with self._config_lock:
            self._loaded = loaded
            self._loaded_at = self._clock.wall()
        if self._on_applied is not None:
            self._on_applied(loaded, previous)
        changes = self.supervisor.apply(loaded.config)
        self.metrics.config_applied(
            loaded.config.revision,
            loaded.config.exports,
            connections=loaded.config.connections,
            last_success=self._last_success,
        )
        if previous is not None:
            _log.info(
                "config reloaded: revision %s (was %s)",
                loaded.config.revision,
                previous.config.revision,
                extra={
                    "event": "config_reloaded",
                    "revision": loaded.config.revision,
                    "previous_revision": previous.config.revision,
                    **{name: list(names) for name, names in changes.items()},
                },
            )

    def _last_success(self, export: str) -> datetime | None:
        """When the history's latest run of ``export`` ended, if it succeeded."""
        return last_success(self._last_run(export) if self._last_run is not None else None)

    # -- ControlApi ---------------------------------------------------------------

    def healthy(self) -> bool:
        """The main loop comes round, and a shared state store (if any) answers."""
        ready = self._ready is None or self._ready()
        return ready and time.monotonic() - self._heartbeat < _STALL_SECONDS

    def metrics_text(self) -> tuple[bytes, str]:
        return self.metrics.render(), CONTENT_TYPE

    def trigger(
        self, export: str, *, release_by: str | None = None, full: bool = False
    ) -> TriggerAnswer:
        return self.supervisor.trigger(export, release_by=release_by, full=full)

    def token_hint(self) -> str:
        reference = self.config().daemon.control_token
        if reference is not None:
            return f"the daemon uses daemon.control.token, {reference.describe()}"
        return f"see {self.options.state_dir / TOKEN_FILENAME}"

    def run(self, run_id: str) -> dict[str, Any] | None:
        record = self.supervisor.coordinator.get(run_id)
        return self._scrubbed(record.to_json()) if record is not None else None

    def status(self) -> dict[str, Any]:
        with self._config_lock:
            config, loaded_at = self._loaded.config, self._loaded_at
        document = build_status(
            daemon=DaemonView(
                pid=os.getpid(),
                version=__version__,
                started_at=self._started_at,
                config_path=str(self.options.config_path),
                control_address=self.control_address,
                state_dir=str(self.options.state_dir),
            ),
            config=config,
            loaded_at=loaded_at,
            last_reload=self._reloads[-1],
            view=self.supervisor.view,
            reloads=tuple(self._reloads),
        )
        return self._scrubbed(document)

    def _scrubbed(self, document: dict[str, Any]) -> dict[str, Any]:
        """Belt and braces: errors from the engine are masked already; secrets never pass."""
        if self._redactor is not None:
            document = self._redactor.scrub_value(document)
        return document

    def _held(self, export: str) -> bool:
        """Whether this daemon's last run of ``export`` was held (in memory: read every tick)."""
        last = self.supervisor.coordinator.last(export)
        return last is not None and last.outcome is not None and last.outcome.status == "held"

    def _status_line(self) -> str:
        config = self.config()
        return status_line(
            config,
            running=self.supervisor.coordinator.running(),
            last_reload=self._reloads[-1],
            held=[name for name in config.exports if self._held(name)],
        )
