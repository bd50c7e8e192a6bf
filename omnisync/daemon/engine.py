"""The daemon's run function: the export engine over one state store and one client pool.

The store is opened once (``daemon.state_dir`` and ``daemon.state`` take effect at
the next restart); every export of a connection shares one client and rate limiter.
A run whose API key cannot be read is *refused*: nothing is recorded in history, and
the trigger endpoint refuses it up front (:meth:`EngineRuns.refusal`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from omnisync.clock import Clock
from omnisync.config.model import Config, Connection, DaemonSettings
from omnisync.daemon.metrics import ConnectionObserver, DaemonMetrics
from omnisync.daemon.runs import LiveProgress, RunOutcome, is_full, is_release
from omnisync.engine.clients import ClientPool
from omnisync.engine.history_render import run_as_dict
from omnisync.engine.run_render import result_as_dict
from omnisync.engine.runner import ApiKeyUnavailable, ExportBusy, ExportRunner, RunnerSettings
from omnisync.errors import OmnisyncError
from omnisync.state import LedgerStore, StateError, open_state_store

if TYPE_CHECKING:
    from omnisync.daemon.replicas import ReplicaMember
    from omnisync.state.postgres import PostgresLedgerStore

_log = logging.getLogger("omnisync.daemon")


class EngineUnavailable(OmnisyncError):
    """The state store cannot be opened; the message says which and why."""


#: How long after an opening of the state store that failed slowly (at least
#: SLOW_OPEN_SECONDS: a connect timeout) it is not tried again.
REOPEN_AFTER_SECONDS = 10.0
SLOW_OPEN_SECONDS = 1.0


class EngineRuns:
    """The :class:`~omnisync.daemon.runs.Engine` that runs exports for real.

    ``open_store`` is called on first need (a daemon whose shared store is unreachable
    still starts); a stopped run follows its batches for at most ``stop_grace`` seconds
    (keep it under the shutdown timeout).
    ``leases``: on a shared store, runs are fenced, and requests gated, by their brand's, and
    an export's move to another brand waits until every live replica runs the same config.
    """

    def __init__(
        self,
        open_store: Callable[[], LedgerStore],
        *,
        clock: Clock,
        metrics: DaemonMetrics,
        stop_grace: float,
        leases: ReplicaMember | None = None,
    ) -> None:
        self._open = open_store
        self._opened: LedgerStore | None = None
        self._opening = threading.Lock()
        self._open_failed: tuple[float, str] | None = None  # (monotonic time, why)
        gate_for = None
        if leases is not None:

            def gate_for(connection: Connection) -> Callable[[], None]:
                brand = connection.brand  # formatted once, not before every request
                return lambda: leases.require(brand)

        self._pool = ClientPool(
            clock=clock, observer_for=partial(ConnectionObserver, metrics), gate_for=gate_for
        )
        self._clock = clock
        self._settings = RunnerSettings(stop_grace=stop_grace)
        self._leases = leases

    @property
    def _store(self) -> LedgerStore:
        with self._opening:
            if self._opened is None:
                # A server that accepts and never answers costs a whole connect timeout a
                # try: after such a failure, the calls of the next few seconds (a start's or
                # a status's one per export) fail at once with its reason. A quick failure
                # (a server restarting refuses at once) is tried again at the next call.
                failed = self._open_failed
                if failed is not None and time.monotonic() - failed[0] < REOPEN_AFTER_SECONDS:
                    raise StateError(failed[1])
                started = time.monotonic()
                try:
                    self._opened = self._open()
                except StateError as error:
                    if time.monotonic() - started >= SLOW_OPEN_SECONDS:
                        self._open_failed = (time.monotonic(), str(error))
                    raise
            return self._opened

    @classmethod
    def open(
        cls, state_dir: Path, *, clock: Clock, metrics: DaemonMetrics, stop_grace: float
    ) -> EngineRuns:
        """Open the state store in ``state_dir`` now (:class:`EngineUnavailable` if it fails)."""
        try:
            store = open_state_store(state_dir)
        except StateError as error:
            raise EngineUnavailable(str(error)) from None
        return cls(lambda: store, clock=clock, metrics=metrics, stop_grace=stop_grace)

    def __call__(
        self,
        config: Config,
        export: str,
        *,
        trigger: str,
        stop: threading.Event,
        progress: LiveProgress,
    ) -> RunOutcome:
        store = self._store_for(config, export)
        if isinstance(store, str):
            return RunOutcome(status="skipped", error=store)
        try:
            result = self._runner(config, store=store).run(
                export,
                trigger=trigger,
                stop=stop,
                progress=progress,
                on_recorded=progress.recorded,
                allow_large_change=is_release(trigger),
                full=is_full(trigger),
            )
        except ExportBusy as busy:
            # Another process (a direct `omnisync export run`) holds the export's lock.
            return RunOutcome(status="skipped", error=str(busy))
        except ApiKeyUnavailable as refused:
            # A config problem, not a failed run: nothing is in history.
            return RunOutcome(status="refused", error=str(refused))
        return RunOutcome(
            status=result.status,
            counts=result.counts.as_dict(),
            error=result.error,
            history_id=result.run_id,
            result=result_as_dict(result),
        )

    def refusal(self, config: Config, export: str) -> str | None:
        try:
            self._runner(config).client_for(export)
        except (ApiKeyUnavailable, StateError) as refused:
            return str(refused)
        return None

    def _store_for(self, config: Config, export: str) -> LedgerStore | str:
        """The store a run of ``export`` writes to, fenced by its brand's lease on a shared
        store; a string saying why when this replica may not run it."""
        try:
            store = self._store
        except StateError as error:
            return str(error)
        brand = config.brand_of(export)
        if self._leases is None or brand is None:
            return store  # for an unknown brand, the runner says what is wrong
        fence = self._leases.fence(brand)
        if fence is None:
            return f"this replica does not hold brand {brand}'s lease"
        return cast("PostgresLedgerStore", store).fenced(fence)  # leases come with PostgreSQL

    def _runner(self, config: Config, *, store: LedgerStore | None = None) -> ExportRunner:
        return ExportRunner(
            config,
            store=store if store is not None else self._store,
            clients=self._pool,
            clock=self._clock,
            settings=self._settings,
            # Replicas whose configs disagree must not move an export between brands.
            brand_moves=None if self._leases is None else self._leases.brand_move_objection,
        )

    def last_run(self, export: str) -> Mapping[str, Any] | None:
        try:
            runs = self._store.runs(export, limit=1)
        except StateError as error:
            _log.warning(
                "cannot read run history: %s", error, extra={"event": "history_unreadable"}
            )
            return None
        return run_as_dict(runs[0]) if runs else None

    def close(self) -> None:
        self._pool.close()
        if self._opened is not None:
            self._opened.close()


def warn_restart_needed(config: Config, previous: Config) -> None:
    """Say so when a reload changes what only a restart can change."""
    before = _restart_settings(previous.daemon)
    for setting, now in _restart_settings(config.daemon).items():
        if now != before[setting]:
            _log.warning(
                "%s changed to %s; it takes effect when the daemon restarts",
                setting,
                now,
                extra={"event": "restart_needed", "setting": setting},
            )


def _restart_settings(settings: DaemonSettings) -> dict[str, object]:
    state = settings.state
    dsn = f", dsn {state.dsn.describe()}" if state.dsn is not None else ""
    return {
        "daemon.state_dir": settings.state_dir,
        "daemon.control.listen": settings.control_listen,
        "daemon.log_format": settings.log_format,
        "daemon.state": f"{state.kind}{dsn}, lease {state.lease_seconds:g}s",
        "daemon.replica_id": settings.replica_id or "hostname:pid",
    }
