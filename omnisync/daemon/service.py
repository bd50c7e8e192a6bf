"""The daemon: a main loop that reloads, reconciles, and answers signals.

Only the main loop (:meth:`Daemon.serve`) reloads or reconciles: signal handlers
and the watcher leave a note and wake it. Each pass it stops when asked (runs
stop at a batch boundary, bounded), reloads (SIGHUP at once, file events after
``daemon.reload_debounce``), reconciles and pets the watchdog. A config that
fails to load is logged line by line, shown in ``/status``, the metrics and
``STATUS=``, and the last good config keeps running.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omnisync import __version__
from omnisync.clock import Clock
from omnisync.config.model import Config
from omnisync.daemon.control import ControlServer, TriggerAnswer
from omnisync.daemon.discovery import (
    TOKEN_FILENAME,
    DaemonInfo,
    ensure_token,
    follow_token,
    remove_info,
    write_info,
)
from omnisync.daemon.engine import warn_restart_needed
from omnisync.daemon.loading import DaemonConfigLoader, LoadedConfig, LoadFailed, StartupFailed
from omnisync.daemon.metrics import CONTENT_TYPE, DaemonMetrics
from omnisync.daemon.notify import Notifier
from omnisync.daemon.runs import Engine, manual_trigger
from omnisync.daemon.status import ReloadResult, status_line
from omnisync.daemon.supervisor import Supervisor
from omnisync.daemon.wakeup import WakeUp
from omnisync.daemon.watcher import ConfigWatcher
from omnisync.logs import Redactor

if TYPE_CHECKING:
    from omnisync.daemon.replicated import Replication

#: How many reloads /status lists.
RELOAD_HISTORY = 10

_log = logging.getLogger("omnisync.daemon")

#: /healthz turns unhealthy when the main loop has not come round for this long.
_STALL_SECONDS = 60.0
#: The main loop comes round at least this often (reconcile, STATUS=, watchdog).
_TICK_SECONDS = 1.0
#: A reload that failed only for want of a secret is tried again this often.
SECRET_RETRY_SECONDS = 15.0


class Daemon:
    """One daemon process: :meth:`start`, then :meth:`serve` returns the exit code.
    ``replication``: this daemon's part in a shared state store, if any."""

    def __init__(
        self,
        initial: LoadedConfig,
        *,
        config_path: Path,
        state_dir: Path,
        control_listen: str,
        shutdown_timeout: float = 30.0,
        loader: DaemonConfigLoader,
        engine: Engine,
        clock: Clock,
        notifier: Notifier,
        metrics: DaemonMetrics | None = None,
        redactor: Redactor | None = None,
        replication: Replication | None = None,
    ) -> None:
        self._config_path = config_path
        self._state_dir = state_dir
        self._control_listen = control_listen
        self._shutdown_timeout = shutdown_timeout
        self.metrics = metrics or DaemonMetrics()
        self._loader = loader
        self._clock = clock
        self._notifier = notifier
        self._engine = engine
        self._redactor = redactor
        self._replication = replication
        self._loaded = initial
        self._loaded_at = self._started_at = clock.wall()
        self._config_lock = threading.Lock()
        started = ReloadResult(
            ok=True, at=self._started_at, source="start", revision=initial.config.revision
        )
        #: The reload history /status shows, newest last.
        self._reloads = collections.deque([started], maxlen=RELOAD_HISTORY)
        self._secrets_missing_since: float | None = None  # monotonic, of the last try
        self.supervisor = Supervisor(
            engine, config=self.config, clock=clock, metrics=self.metrics, shared=replication
        )
        if replication is not None:
            replication.bind(self.supervisor)
        self._watcher = ConfigWatcher(config_path, self._files_changed)
        self._control: ControlServer | None = None
        self._notes = WakeUp()
        self._heartbeat = time.monotonic()
        #: After :meth:`shutdown`: whether every run stopped within the timeout.
        self.drained = True
        self._started = False

    def config(self) -> Config:
        """The last good config."""
        with self._config_lock:
            return self._loaded.config

    @property
    def control_address(self) -> str:
        return self._control.address if self._control is not None else ""

    # Notes for the main loop: signal-handler safe.
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

    def start(self) -> None:
        """Bind the control endpoint, schedule the exports, watch the config, tell systemd
        (``state_dir`` must exist)."""
        self._secrets_loaded(self._loaded)
        token = self._loaded.control_token or ensure_token(self._state_dir)
        try:
            self._control = ControlServer(self._control_listen, self, token=token)
        except (OSError, ValueError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else error
            raise StartupFailed(
                f"cannot serve the control endpoint on {self._control_listen}: {reason}"
            ) from None
        write_info(
            self._state_dir,
            DaemonInfo(
                pid=os.getpid(),
                address=self._control.address,
                config_path=str(self._config_path),
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
        if self._replication is not None:
            self._replication.member.start()
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
            elif self._secrets_missing_since is not None and (
                time.monotonic() - self._secrets_missing_since >= SECRET_RETRY_SECONDS
            ):
                # Only secrets were missing: a file that appears or is mounted late
                # (a Secret, a credential) makes no config event to wake a reload.
                self.reload(source="secret retry")
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
        """Stop scheduling and runs (bounded wait), release everything; the exit code."""
        if self._started:
            _log.info("daemon stopping", extra={"event": "daemon_stopping"})
            self._notifier.stopping()
        self._watcher.stop()
        in_flight = sorted(self.supervisor.coordinator.running())
        if in_flight:
            _log.info(
                "waiting up to %ss for runs to reach a batch boundary: %s",
                self._shutdown_timeout,
                ", ".join(in_flight),
                extra={"event": "daemon_draining", "exports": in_flight},
            )
        drained = self.drained = self.supervisor.shutdown(timeout=self._shutdown_timeout)
        if not drained:
            # The ledger is still consistent: whatever was in flight is recorded as
            # in-flight batches, which the next run settles.
            _log.error(
                "runs still going after %ss: %s; exiting anyway",
                self._shutdown_timeout,
                ", ".join(sorted(self.supervisor.coordinator.running())),
                extra={"event": "daemon_drain_timeout"},
            )
        if self._replication is not None:
            # After the runs stopped: hand the brands over at once rather than at expiry.
            self._replication.member.stop()
        if self._control is not None:
            self._control.stop()
        remove_info(self._state_dir, pid=os.getpid())
        if self._started:
            _log.info("daemon stopped", extra={"event": "daemon_stopped", "drained": drained})
        self._notifier.close()
        self._notes.close()
        return 0

    def reload(self, *, source: str) -> bool:
        """Load the config again; apply it when good, keep the old one when not; whether good."""
        self._notifier.reloading()
        at = self._clock.wall()
        try:
            loaded = self._loader(self._config_path)
        except LoadFailed as failure:
            self._secrets_missing_since = time.monotonic() if failure.secrets else None
            running = self.config().revision
            for problem in failure.problems:
                _log.error(
                    "config reload of revision %s failed, still running revision %s: %s",
                    failure.revision or "unreadable",
                    running,
                    problem,
                    extra={
                        "event": "config_reload_failed",
                        "source": source,
                        "revision": failure.revision or None,
                        "running_revision": running,
                    },
                )
            result = ReloadResult(
                ok=False,
                at=at,
                source=source,
                revision=failure.revision or None,
                problems=failure.problems,
            )
        else:
            self._secrets_missing_since = None
            self._secrets_loaded(loaded)
            if self._control is not None:
                follow_token(
                    self._state_dir,
                    configured=loaded.control_token,
                    had_configured=bool(self._loaded.control_token),
                    set_token=self._control.set_token,
                )
            warn_restart_needed(loaded.config, self._loaded.config)
            self._apply(loaded, previous=self._loaded)
            result = ReloadResult(ok=True, at=at, source=source, revision=loaded.config.revision)
        self._reloads.append(result)
        self.metrics.reloaded(ok=result.ok, at=result.at)
        self._notifier.ready(self._status_line())
        return result.ok

    def _secrets_loaded(self, loaded: LoadedConfig) -> None:
        if self._redactor is not None:
            self._redactor.register(loaded.secret_values)  # the control token among them

    def _apply(self, loaded: LoadedConfig, *, previous: LoadedConfig | None) -> None:
        # Current before applied: a run starting while apply() stops runs reads the new config.
        with self._config_lock:
            self._loaded = loaded
            self._loaded_at = self._clock.wall()
        changes = self.supervisor.apply(loaded.config)
        self.metrics.config_applied(loaded.config, last_run=self._engine.last_run)
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

    # ControlApi
    def healthy(self) -> bool:
        """The main loop comes round, and a shared state store (if any) answers."""
        ready = self._replication is None or self._replication.member.ready
        return ready and time.monotonic() - self._heartbeat < _STALL_SECONDS

    def metrics_text(self) -> tuple[bytes, str]:
        return self.metrics.render(), CONTENT_TYPE

    def trigger(
        self, export: str, *, release_by: str | None = None, full: bool = False
    ) -> TriggerAnswer:
        trigger = manual_trigger("daemon-trigger", full=full, release_by=release_by)
        answer = self.supervisor.start_asked(export, trigger=trigger)
        if answer.status == 202:
            _log.info(
                "run of export %s triggered through the control endpoint",
                export,
                extra={"event": "run_triggered", "export": export, "run_id": answer.body["id"]},
            )
        return answer

    def token_hint(self) -> str:
        reference = self.config().daemon.control_token
        if reference is not None:
            return f"the daemon uses daemon.control.token, {reference.describe()}"
        return f"see {self._state_dir / TOKEN_FILENAME}"

    def run(self, run_id: str) -> dict[str, Any] | None:
        record = self.supervisor.coordinator.get(run_id)
        return self._scrubbed(record.to_json()) if record is not None else None

    def status(self) -> dict[str, Any]:
        with self._config_lock:
            config, loaded_at = self._loaded.config, self._loaded_at
        # A copy first (one C call): the main loop may append a reload while to_json()
        # runs, and iterating a deque that changes raises.
        reloads = [reload.to_json() for reload in tuple(self._reloads)]
        document = {
            "daemon": {
                "pid": os.getpid(),
                "version": __version__,
                "started_at": self._started_at.isoformat(),
                "config_path": str(self._config_path),
                "control_address": self.control_address,
                "state_dir": str(self._state_dir),
            },
            "config": {
                "revision": config.revision,
                "files": list(config.files),
                "loaded_at": loaded_at.isoformat(),
            },
            "last_reload": reloads[-1],
            "reloads": reloads,
            "exports": {
                name: self.supervisor.export_status(name, config.exports[name])
                for name in sorted(config.exports)
            },
        }
        return self._scrubbed(document)

    def _scrubbed(self, document: dict[str, Any]) -> dict[str, Any]:
        """Belt and braces: errors from the engine are masked already; secrets never pass."""
        return self._redactor.scrub_value(document) if self._redactor else document

    def _status_line(self) -> str:
        config, coordinator = self.config(), self.supervisor.coordinator
        # This daemon's own last runs (in memory: read every tick), not the history.
        last = [(name, coordinator.last(name)) for name in config.exports]
        held = [name for name, run in last if run and run.outcome and run.outcome.status == "held"]
        return status_line(
            config, running=coordinator.running(), last_reload=self._reloads[-1], held=held
        )
