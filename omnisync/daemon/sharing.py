"""A replica's part in a shared store: which runs it may start, and telling the others.

:class:`SharedRuns` connects a :class:`~omnisync.daemon.replicas.ReplicaMember`
(leases, requests) to the daemon's supervisor and run coordinator:

- a scheduled tick of an export runs only on the replica holding the
  export's brand, and only once: the holder claims the fire (export, nominal
  fire time) in ``schedule_fires`` before it runs it;
- taking a brand resumes that brand's unfinished runs and runs a fire nobody
  claimed (the previous holder died before it could); losing one stops its runs;
- an on-demand request (``omnisync export run`` on a shared store) starts a
  run like the control endpoint would, never beside a running one, and is
  answered with the run's outcome when it ends.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from omnisync.config.model import Config
from omnisync.daemon.reconcile import Timing
from omnisync.daemon.replicas import ReplicaHooks
from omnisync.daemon.runs import RunCoordinator, RunRecord
from omnisync.daemon.scheduler import nominal_fire
from omnisync.state.store import StateError, format_timestamp

if TYPE_CHECKING:
    from omnisync.daemon.replicas import ReplicaMember
    from omnisync.daemon.supervisor import Supervisor
    from omnisync.state.leases import RunRequest

_log = logging.getLogger("omnisync.daemon.replicas")


def config_brands(config: Config) -> frozenset[str]:
    """The brands the config's enabled exports deliver to: what replicas share out."""
    brands = (config.brand_of(name) for name, e in config.exports.items() if e.enabled)
    return frozenset(brand for brand in brands if brand is not None)


class SharedRuns:
    """The supervisor's :class:`~omnisync.daemon.supervisor.SharedScheduling`, and the
    member's hooks (:meth:`hooks`). Bind the supervisor and member, then start."""

    def __init__(self) -> None:
        self._supervisor: Supervisor | None = None
        self._member: ReplicaMember | None = None
        self._lock = threading.Lock()
        #: coordinator run id -> request id, for answering when the run ends
        self._requests: dict[str, int] = {}

    def bind(self, supervisor: Supervisor, member: ReplicaMember) -> None:
        self._supervisor = supervisor
        self._member = member

    def hooks(self, *, on_change: Callable[[str, str], None]) -> ReplicaHooks:
        return ReplicaHooks(
            brands=lambda: config_brands(self._config()),
            busy=self._busy,
            running=lambda: sorted(self._coordinator().running()),
            config_revision=lambda: self._config().revision,
            on_acquired=self._acquired,
            on_lost=self._lost,
            on_requests=self._take,
            on_change=on_change,
        )

    # -- SharedScheduling ---------------------------------------------------------------

    @contextmanager
    def claimed(
        self, export: str, timing: Timing, *, now: datetime, retry: bool = False
    ) -> Iterator[bool]:
        member = self._bound_member()
        brand = self._config().brand_of(export)
        if brand is None:
            yield False
            return
        with member.reserved(brand) as fence:
            yield fence is not None and (retry or self._claim(export, timing, now=now))

    def _claim(self, export: str, timing: Timing, *, now: datetime) -> bool:
        """Claim ``export``'s latest fire in ``schedule_fires``: ``True`` for the one claimant."""
        board = self._bound_member().board()
        if board is None:
            return False
        fire = format_timestamp(nominal_fire(timing, now=now))
        try:
            claimed = board.claim_fire(export, fire, self._bound_member().replica_id)
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
        if request_id is None or record.outcome is None:
            return
        outcome = record.outcome
        self._answer(
            request_id,
            {
                "status": outcome.status,
                "error": outcome.error,
                "counts": dict(outcome.counts),
                "result": outcome.result,
                "replica": self._bound_member().replica_id,
            },
            run_id=outcome.history_id if isinstance(outcome.history_id, int) else None,
        )

    # -- hooks ----------------------------------------------------------------------------

    def _busy(self) -> frozenset[str]:
        """Brands with a run under way: never given up to another replica."""
        config = self._config()
        brands = (config.brand_of(name) for name in self._coordinator().running())
        return frozenset(brand for brand in brands if brand is not None)

    def _brand_exports(self, brand: str) -> list[str]:
        config = self._config()
        return sorted(name for name in config.exports if config.brand_of(name) == brand)

    def _acquired(self, brand: str) -> None:
        supervisor = self._bound_supervisor()
        supervisor.catch_up(self._brand_exports(brand))

    def _lost(self, brand: str, why: str) -> None:
        coordinator = self._coordinator()
        for export in self._brand_exports(brand):
            coordinator.stop(export, reason=f"this replica lost brand {brand}: {why}")

    def _take(self, requests: list[RunRequest]) -> None:
        supervisor = self._bound_supervisor()
        for request in requests:
            # Under the lock: the run may end before its request is noted, and
            # run_finished must find it. The command built the trigger
            # (``cli request, full resync, ...``); an API key that cannot be read
            # ends the run ``refused``, which is the answer.
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
        board = self._bound_member().board()
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
        return self._bound_supervisor().current_config()

    def _coordinator(self) -> RunCoordinator:
        return self._bound_supervisor().coordinator

    def _bound_supervisor(self) -> Supervisor:
        assert self._supervisor is not None, "bind() first"
        return self._supervisor

    def _bound_member(self) -> ReplicaMember:
        assert self._member is not None, "bind() first"
        return self._member
