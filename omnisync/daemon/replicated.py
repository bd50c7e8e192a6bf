"""This daemon as one replica of several sharing a PostgreSQL state store.

:class:`Replication` ties the :class:`~omnisync.daemon.replicas.ReplicaMember` to the
daemon's supervisor:

- a scheduled tick runs only on the replica holding the export's brand, and only
  once: the holder claims the fire (export, nominal fire time) in ``schedule_fires``;
- taking a brand resumes its unfinished runs and runs a fire nobody claimed;
  losing one stops its runs;
- an on-demand request (``omnisync export run`` on a shared store) starts a run
  like the control endpoint would, and is answered with its outcome when it ends.

An unreachable database delays readiness, never the start.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from functools import partial
from typing import Any

from omnisync.clock import Clock
from omnisync.config.model import Config, Schedule
from omnisync.daemon.engine import EngineRuns, EngineUnavailable
from omnisync.daemon.metrics import DaemonMetrics
from omnisync.daemon.replicas import ReplicaMember
from omnisync.daemon.runs import RunRecord
from omnisync.daemon.scheduler import nominal_fire
from omnisync.daemon.supervisor import Supervisor
from omnisync.state.leases import LeaseBoard, RunRequest
from omnisync.state.opening import resolve_state_dsn
from omnisync.state.postgres import PostgresLedgerStore
from omnisync.state.store import StateError, StateSchemaTooNew, format_timestamp

_log = logging.getLogger("omnisync.daemon.replicas")


class Replication:
    """The :class:`~omnisync.daemon.replicas.ReplicaMember` (``member``), the supervisor's
    :class:`~omnisync.daemon.supervisor.SharedScheduling` and the member's
    :class:`~omnisync.daemon.replicas.ReplicaHooks`; :meth:`bind` the supervisor first."""

    def __init__(
        self, config: Config, *, metrics: DaemonMetrics, environ: Mapping[str, str]
    ) -> None:
        """Resolve the DSN (never shown) and name the replica (``daemon.replica_id``, default
        ``hostname:pid``); :class:`EngineUnavailable` when the DSN's secret cannot be read or
        the database was migrated by a newer omnisync."""
        try:
            self._dsn = resolve_state_dsn(config.daemon, environ=environ)
        except StateError as error:
            raise EngineUnavailable(str(error)) from None
        opened: LeaseBoard | None = None
        try:
            opened = LeaseBoard(self._dsn, connect_timeout=5)
        except StateSchemaTooNew as error:
            raise EngineUnavailable(str(error)) from None
        except StateError:
            pass  # not reachable yet: waited for (not ready meanwhile)
        self._metrics = metrics
        self.replica_id = config.daemon.replica_id or f"{socket.gethostname()}:{os.getpid()}"
        self._supervisor: Supervisor | None = None
        self._lock = threading.Lock()
        #: coordinator run id -> request id, for answering when the run ends
        self._requests: dict[str, int] = {}
        self.member = ReplicaMember(
            partial(LeaseBoard, self._dsn),
            self,
            replica_id=self.replica_id,
            lease_seconds=config.daemon.state.lease_seconds,
            board=opened,
        )

    def engine(self, *, clock: Clock, stop_grace: float) -> EngineRuns:
        """The run function: fenced store writes, lease-checked requests."""
        return EngineRuns(
            lambda: PostgresLedgerStore(self._dsn),
            clock=clock,
            metrics=self._metrics,
            stop_grace=stop_grace,
            leases=self.member,
        )

    def bind(self, supervisor: Supervisor) -> None:
        self._supervisor = supervisor

    # SharedScheduling
    @contextmanager
    def claimed(
        self, export: str, timing: Schedule, *, now: datetime, retry: bool = False
    ) -> Iterator[bool]:
        brand = self._config().brand_of(export)
        if brand is None:
            yield False
            return
        with self.member.reserved(brand) as fence:
            yield fence is not None and (retry or self._claim(export, timing, now=now))

    def _claim(self, export: str, timing: Schedule, *, now: datetime) -> bool:
        """Claim ``export``'s latest fire in ``schedule_fires``: ``True`` for the one claimant."""
        board = self.member.board
        latest = nominal_fire(timing, now=now)
        if board is None or latest is None:
            return False
        fire = format_timestamp(latest)
        try:
            claimed = board.claim_fire(export, fire, self.replica_id)
        except StateError as error:
            _log.warning(
                "cannot claim the scheduled run of export %s at %s: %s",
                export,
                fire,
                error,
                extra={"event": "fire_claim_failed", "export": export},
            )
            return False
        if claimed:
            _log.info(
                "claimed the scheduled run of export %s at %s",
                export,
                fire,
                extra={"event": "fire_claimed", "export": export, "fire": fire},
            )
        return claimed

    def run_finished(self, record: RunRecord) -> None:
        with self._lock:
            request_id = self._requests.pop(record.id, None)
        outcome = record.outcome
        if request_id is None or outcome is None:
            return
        answer = {
            "status": outcome.status,
            "error": outcome.error,
            "counts": dict(outcome.counts),
            "result": outcome.result,
            "replica": self.replica_id,
        }
        self._answer(request_id, answer, run_id=outcome.history_id)

    # ReplicaHooks
    def brands(self) -> frozenset[str]:
        config = self._config()  # one snapshot: a reload may land meanwhile
        enabled = (name for name, export in config.exports.items() if export.enabled)
        return _brands_of(config, enabled)

    def busy(self) -> frozenset[str]:
        return _brands_of(self._config(), self._bound().coordinator.running())

    def running(self) -> list[str]:
        return sorted(self._bound().coordinator.running())

    def config_revision(self) -> str:
        return self._config().revision

    def on_change(self, brand: str, change: str, why: str = "") -> None:
        self._metrics.lease_changed(brand, change)
        config = self._config()
        exports = sorted(name for name in config.exports if config.brand_of(name) == brand)
        if change == "acquired":
            self._bound().catch_up(exports)
        elif change == "lost":
            for export in exports:
                self._bound().coordinator.stop(
                    export, reason=f"this replica lost brand {brand}: {why}"
                )

    def on_requests(self, requests: list[RunRequest]) -> None:
        supervisor = self._bound()
        for request in requests:
            # Under the lock: the run may end before its request is noted. The command
            # built the trigger; an API key that cannot be read ends the run ``refused``.
            with self._lock:
                answer = supervisor.start_asked(
                    request.export, trigger=request.trigger, check_key=False
                )
                if answer.status == 202:
                    self._requests[answer.body["id"]] = request.id
            if answer.status != 202:
                self._answer(request.id, {"status": "refused", "error": answer.body["error"]})
                continue
            _log.info(
                "run of export %s asked for through the shared store",
                request.export,
                extra={
                    "event": "run_requested",
                    "export": request.export,
                    "run_id": answer.body["id"],
                },
            )

    def _answer(
        self, request_id: int, answer: dict[str, Any], *, run_id: int | None = None
    ) -> None:
        board = self.member.board
        if board is None:
            return
        try:
            board.answer_request(request_id, answer=answer, run_id=run_id)
        except StateError as error:
            _log.warning(
                "cannot answer on-demand run request %d: %s",
                request_id,
                error,
                extra={"event": "request_answer_failed"},
            )

    def _config(self) -> Config:
        return self._bound().config()

    def _bound(self) -> Supervisor:
        assert self._supervisor is not None, "bind() first"
        return self._supervisor


def _brands_of(config: Config, exports: Iterable[str]) -> frozenset[str]:
    """The brands ``exports`` of ``config`` deliver to."""
    return frozenset(brand for name in exports if (brand := config.brand_of(name)) is not None)
