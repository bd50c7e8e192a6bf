"""The daemon's run function: the export engine over one state store and one client pool.

The state store is opened once, at start, in ``daemon.state_dir`` (changing
that setting takes effect at the next restart); the
:class:`~omnisync.engine.clients.ClientPool` gives every export of a
connection the same client and rate limiter, and builds a new client when a
reload changes a connection's settings or its key resolves to a new value.
Each run gets an :class:`~omnisync.engine.runner.ExportRunner` for the config
snapshot it started with.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omnisync.clock import Clock
from omnisync.config.model import Config
from omnisync.daemon.loading import LoadedConfig
from omnisync.daemon.metrics import DaemonMetrics
from omnisync.daemon.runs import RunOutcome
from omnisync.engine.clients import ClientPool
from omnisync.engine.runner import ExportBusy, ExportRunner, RunnerSettings
from omnisync.errors import OmnisyncError
from omnisync.state import LedgerStore, StateError, open_state_store

_log = logging.getLogger("omnisync.daemon")


class EngineUnavailable(OmnisyncError):
    """The state store cannot be opened; the message says which and why."""


class EngineRuns:
    """A :class:`~omnisync.daemon.runs.RunFunction` that runs exports for real."""

    def __init__(
        self,
        store: LedgerStore,
        pool: ClientPool,
        *,
        clock: Clock,
        settings: RunnerSettings | None = None,
    ) -> None:
        self._store = store
        self._pool = pool
        self._clock = clock
        self._settings = settings or RunnerSettings()

    @classmethod
    def open(
        cls, state_dir: Path, *, clock: Clock, metrics: DaemonMetrics, stop_grace: float
    ) -> EngineRuns:
        """Open the state store in ``state_dir``; a stopped run follows its batches
        for at most ``stop_grace`` seconds (keep it under the shutdown timeout)."""
        try:
            store = open_state_store(state_dir)
        except StateError as error:
            raise EngineUnavailable(str(error)) from None
        pool = ClientPool(clock=clock, observer_for=metrics.client_observer)
        return cls(store, pool, clock=clock, settings=RunnerSettings(stop_grace=stop_grace))

    def __call__(
        self, config: Config, export: str, *, trigger: str, stop: threading.Event
    ) -> RunOutcome:
        runner = ExportRunner(
            config,
            store=self._store,
            clients=self._pool,
            clock=self._clock,
            settings=self._settings,
        )
        try:
            result = runner.run(export, trigger=trigger, stop=stop, progress=None)
        except ExportBusy as busy:
            # Another process (a direct `omnisync export run`) holds the export's lock.
            return RunOutcome(status="skipped", error=str(busy))
        counts = result.counts
        plain = dataclasses.asdict(counts) if dataclasses.is_dataclass(counts) else dict(counts)
        return RunOutcome(
            status=result.status,
            counts={key: int(value) for key, value in plain.items() if isinstance(value, int)},
            error=result.error,
            history_id=result.run_id,
        )

    def last_run(self, export: str) -> Mapping[str, Any] | None:
        """The export's most recent run in the state store's history, as JSON-ready data."""
        try:
            runs = self._store.runs(export, limit=1)
        except StateError as error:
            _log.warning(
                "cannot read run history: %s", error, extra={"event": "history_unreadable"}
            )
            return None
        if not runs:
            return None
        record = runs[0]
        return {
            "id": record.id,
            "trigger": record.trigger,
            "config_revision": record.config_revision,
            "started_at": record.started_at,
            "ended_at": record.ended_at,
            "status": record.status,
            "counts": dict(record.counts),
            "error": record.error,
        }

    def config_applied(self, loaded: LoadedConfig, previous: LoadedConfig | None) -> None:
        """Say so when a reload changes what only a restart can change."""
        if previous is None:
            return
        new, old = loaded.config.daemon, previous.config.daemon
        for setting, now, before in (
            ("daemon.state_dir", new.state_dir, old.state_dir),
            ("daemon.control.listen", new.control_listen, old.control_listen),
        ):
            if now != before:
                _log.warning(
                    "%s changed to %s; it takes effect when the daemon restarts",
                    setting,
                    now,
                    extra={"event": "restart_needed", "setting": setting},
                )

    def close(self) -> None:
        self._pool.close()
        self._store.close()
