"""Wiring a daemon to a shared PostgreSQL state store: one object the command line builds.

:class:`Replication` resolves the state DSN (a secret reference: never
shown), names the replica (``daemon.replica_id``, default ``hostname:pid``)
and builds the pieces: the :class:`~omnisync.daemon.replicas.ReplicaMember`
(leases), the :class:`~omnisync.daemon.sharing.SharedRuns` glue, and an
:class:`~omnisync.daemon.engine.EngineRuns` whose store opens on first need
and whose runs are fenced by their brand's lease, with a client pool that
checks the lease before every request. Nothing here connects at
construction: an unreachable database delays readiness, never the start.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping

from omnisync.clock import Clock
from omnisync.config.model import Config, Connection
from omnisync.daemon.engine import EngineRuns, EngineUnavailable
from omnisync.daemon.metrics import DaemonMetrics
from omnisync.daemon.replicas import ReplicaMember
from omnisync.daemon.sharing import SharedRuns
from omnisync.daemon.supervisor import Supervisor
from omnisync.engine.clients import ClientPool
from omnisync.engine.runner import RunnerSettings
from omnisync.state.leases import LeaseBoard
from omnisync.state.opening import resolve_state_dsn
from omnisync.state.postgres import PostgresLedgerStore
from omnisync.state.store import StateError, StateSchemaTooNew


def default_replica_id() -> str:
    """``hostname:pid``: unique among live processes, and says where to look."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Replication:
    """This daemon as one replica of several sharing a PostgreSQL state store."""

    def __init__(
        self,
        dsn: str,
        *,
        config: Config,
        metrics: DaemonMetrics,
        replica_id: str,
        board: LeaseBoard | None = None,
    ) -> None:
        """``board``: one opened already (at start), which the member uses first."""
        self._dsn = dsn
        self._metrics = metrics
        self.replica_id = replica_id
        self.runs = SharedRuns()
        self._opened_board = board
        self.member = ReplicaMember(
            self._open_board,
            self.runs.hooks(on_change=metrics.lease_changed),
            replica_id=replica_id,
            lease_seconds=config.daemon.state.lease_seconds,
        )

    @classmethod
    def prepare(
        cls, config: Config, *, metrics: DaemonMetrics, environ: Mapping[str, str]
    ) -> Replication:
        """Resolve the DSN and name the replica; :class:`EngineUnavailable` when the DSN's
        secret cannot be read (a config problem, reported at start)."""
        try:
            dsn = resolve_state_dsn(config.daemon, environ=environ)
        except StateError as error:
            raise EngineUnavailable(str(error)) from None
        board: LeaseBoard | None = None
        try:
            # A database migrated by a newer omnisync is refused at start, as a SQLite
            # one is; one that cannot be reached yet is waited for (not ready meanwhile).
            board = LeaseBoard(dsn, connect_timeout=5)
        except StateSchemaTooNew as error:
            raise EngineUnavailable(str(error)) from None
        except StateError:
            pass
        return cls(
            dsn,
            config=config,
            metrics=metrics,
            replica_id=config.daemon.replica_id or default_replica_id(),
            board=board,
        )

    def engine(self, *, clock: Clock, stop_grace: float) -> EngineRuns:
        """The run function: fenced store writes, lease-checked requests."""
        member = self.member

        def gate_for(connection: Connection) -> Callable[[], None]:
            brand = connection.brand
            return lambda: member.require(brand)

        pool = ClientPool(
            clock=clock, observer_for=self._metrics.client_observer, gate_for=gate_for
        )
        return EngineRuns(
            lambda: PostgresLedgerStore(self._dsn),
            pool,
            clock=clock,
            settings=RunnerSettings(stop_grace=stop_grace),
            leases=member,
        )

    def bind(self, supervisor: Supervisor) -> None:
        """Connect the daemon's supervisor; before :meth:`start`."""
        self.runs.bind(supervisor, self.member)

    def ready(self) -> bool:
        """Whether the shared store answered lately (``/healthz``)."""
        return self.member.ready

    def start(self) -> None:
        self.member.start()

    def stop(self) -> None:
        self.member.stop()

    def _open_board(self) -> LeaseBoard:
        board, self._opened_board = self._opened_board, None
        return board if board is not None else LeaseBoard(self._dsn)
