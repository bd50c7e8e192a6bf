"""This replica's membership of a shared state store: heartbeat, leases, requests.

:class:`ReplicaMember` owns one thread. Every third of the lease it says the
replica is alive, renews its leases and follows :func:`omnisync.leasing.plan_leases`;
every second it claims the on-demand runs asked for its brands, and tells its
:class:`ReplicaHooks` what it learns.

A lease is *valid* here until a bit less than its length after the start of the
round that renewed it, by this process's monotonic clock: a replica that was paused
(SIGSTOP, a stalled VM) finds its leases invalid the moment it resumes, before any
thread can send or write; its writes are fenced in the database besides. With
PostgreSQL unreachable the thread retries with backoff, :attr:`ReplicaMember.ready`
is false (``/healthz`` 503) and leases run out locally, stopping their runs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol

from omnisync import __version__
from omnisync.leasing import plan_leases
from omnisync.state.store import Fence, LeaseLost, StateError

if TYPE_CHECKING:  # psycopg is needed only where a shared store is configured
    from omnisync.state.leases import LeaseBoard, RunRequest

_log = logging.getLogger("omnisync.daemon.replicas")

#: A lease counts as held for this share of its length after the renewal began.
VALID_SHARE = 0.85
#: How often on-demand requests are looked for.
REQUEST_POLL_SECONDS = 1.0


class ReplicaHooks(Protocol):
    """What the member asks and tells the rest of the daemon, from its thread."""

    def brands(self) -> frozenset[str]: ...
    def busy(self) -> frozenset[str]: ...
    def running(self) -> Collection[str]: ...
    def config_revision(self) -> str: ...
    def on_requests(self, requests: list[RunRequest]) -> None: ...
    def on_change(self, brand: str, change: str, why: str = "") -> None:
        """A lease was ``acquired``, ``released`` or ``lost`` (``why``)."""


class ReplicaMember:
    """Heartbeats, leases and requests of replica ``replica_id`` on a shared store."""

    def __init__(
        self,
        open_board: Callable[[], LeaseBoard],
        hooks: ReplicaHooks,
        *,
        replica_id: str,
        lease_seconds: float,
        board: LeaseBoard | None = None,
    ) -> None:
        """``board``: one already open, if any; else ``open_board`` opens it when first due."""
        self.replica_id = replica_id
        self.lease_seconds = lease_seconds
        self._open_board = open_board
        self._hooks = hooks
        self._lock = threading.Lock()
        #: brand -> (token, valid until, by the monotonic clock)
        self._held: dict[str, tuple[int, float]] = {}
        #: brand -> how many callers are about to start a run of it (never released meanwhile)
        self._reserved: Counter[str] = Counter()
        #: The board, once the store was first reached.
        self.board = board
        self._last_success: float | None = None
        self._outage: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="replica", daemon=True)

    def fence(self, brand: str) -> Fence | None:
        """The fence a run on ``brand`` writes under, or ``None`` when not validly held."""
        with self._lock:
            return self._fence(brand)

    def _fence(self, brand: str) -> Fence | None:
        held = self._held.get(brand)
        if held is None or time.monotonic() >= held[1]:
            return None
        return Fence(brand=brand, holder=self.replica_id, token=held[0])

    @contextmanager
    def reserved(self, brand: str) -> Iterator[Fence | None]:
        """The fence of ``brand`` (``None`` when not validly held), the brand kept from
        rebalancing until the block ends: for a caller about to start a run of it."""
        with self._lock:
            fence = self._fence(brand)
            if fence is not None:
                self._reserved[brand] += 1
        try:
            yield fence
        finally:
            if fence is not None:
                with self._lock:
                    self._reserved -= Counter([brand])  # drops the brand at 0

    def require(self, brand: str) -> None:
        """Raise :class:`LeaseLost` unless ``brand`` is validly held (before each request)."""
        if self.fence(brand) is None:
            raise LeaseLost(
                f"replica {self.replica_id} does not hold brand {brand}'s lease: request not sent"
            )

    def held(self) -> dict[str, int]:
        """Brand -> token of the leases validly held now."""
        now = time.monotonic()
        with self._lock:
            return {brand: token for brand, (token, until) in self._held.items() if now < until}

    def brand_move_objection(self, revision: str) -> str | None:
        """:func:`move_objection` for this replica's runs."""
        board = self.board
        if board is None:
            return "the shared state store has not answered yet"
        return move_objection(board, revision, own_id=self.replica_id)

    @property
    def ready(self) -> bool:
        """Whether the shared store answered within the last lease length."""
        last = self._last_success
        return last is not None and time.monotonic() - last < self.lease_seconds

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (runs must have stopped), then release every lease at once."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.lease_seconds)
        with self._lock:
            brands = sorted(self._held)
            self._held.clear()
        board = self.board
        if board is None:
            return
        try:
            released = board.retire(self.replica_id)
        except StateError as error:
            _log.warning(
                "could not release this replica's leases (they expire in %.0fs): %s",
                self.lease_seconds,
                error,
                extra={"event": "lease_release_failed"},
            )
        else:
            if released:
                _log.info(
                    "released %d brand lease(s): %s",
                    released,
                    ", ".join(brands),
                    extra={"event": "leases_released", "brands": brands},
                )
        board.close()

    def _loop(self) -> None:
        backoff = 0.5
        next_round = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            self._expire(now)
            if now >= next_round:
                if self._round():
                    backoff = 0.5
                    next_round = now + self.lease_seconds / 3
                else:
                    next_round = now + backoff
                    backoff = min(backoff * 2, self.lease_seconds / 3)
            self._take_requests()
            wait = min(REQUEST_POLL_SECONDS, max(0.05, next_round - time.monotonic()))
            self._stop.wait(wait)

    def _round(self) -> bool:
        """One heartbeat, renewal and rebalancing; ``False`` when the store could not be reached."""
        started = time.monotonic()
        try:
            if self.board is None:
                self.board = self._open_board()
            board = self.board
            board.heartbeat(
                self.replica_id,
                lease_seconds=self.lease_seconds,
                version=__version__,
                config_revision=self._hooks.config_revision(),
                running=self._hooks.running(),
            )
            with self._lock:
                tokens = {brand: token for brand, (token, _) in self._held.items()}
            kept = board.renew(self.replica_id, tokens, lease_seconds=self.lease_seconds)
            valid_until = started + self.lease_seconds * VALID_SHARE
            with self._lock:
                for brand, token in kept.items():
                    self._held[brand] = (token, valid_until)
            for brand in tokens.keys() - kept.keys():
                self._lose(brand, "another replica took it over")
            self._rebalance(board)
        except StateError as error:
            self._unreachable(str(error))
            return False
        self._last_success = started
        if self._outage is not None:
            _log.warning(
                "the shared state store answers again", extra={"event": "state_store_back"}
            )
            self._outage = None
        return True

    def _rebalance(self, board: LeaseBoard) -> None:
        snapshot = board.board()
        with self._lock:
            reserved = set(self._reserved)
        plan = plan_leases(
            self.replica_id,
            self._hooks.brands(),
            live_replicas=[replica.id for replica in snapshot.replicas if replica.live],
            holders={lease.brand: lease.holder for lease in snapshot.leases if lease.live},
            busy=self._hooks.busy() | reserved,
        )
        for brand in plan.release:
            busy = self._hooks.busy()
            with self._lock:
                if brand in busy or brand in self._reserved:
                    continue  # a run started, or is about to, since the plan: keep it
                held = self._held.pop(brand, None)
            if held is not None and board.release(brand, self.replica_id, held[0]):
                self._hooks.on_change(brand, "released")
                _log.info(
                    "released brand %s so another replica can take it",
                    brand,
                    extra={"event": "lease_released", "brand": brand},
                )
        for brand in plan.acquire:
            before = time.monotonic()
            try:
                token = board.acquire(brand, self.replica_id, lease_seconds=self.lease_seconds)
            except StateError as error:
                _log.info(
                    "could not take brand %s this round: %s",
                    brand,
                    error,
                    extra={"event": "lease_acquire_failed", "brand": brand},
                )
                continue
            if token is None:
                continue  # another replica was quicker
            with self._lock:
                self._held[brand] = (token, before + self.lease_seconds * VALID_SHARE)
            _log.info(
                "took brand %s (lease token %d)",
                brand,
                token,
                extra={"event": "lease_acquired", "brand": brand, "token": token},
            )
            self._hooks.on_change(brand, "acquired")

    def _take_requests(self) -> None:
        board = self.board
        brands = self.held()
        if board is None or not brands:
            return
        try:
            requests = board.claim_requests(sorted(brands), self.replica_id)
        except StateError as error:
            self._unreachable(str(error))
            return
        if requests:
            self._hooks.on_requests(requests)

    def _expire(self, now: float) -> None:
        with self._lock:
            expired = [brand for brand, (_, until) in self._held.items() if now >= until]
        for brand in expired:
            self._lose(brand, "its lease ran out before it could be renewed")

    def _lose(self, brand: str, why: str) -> None:
        with self._lock:
            if self._held.pop(brand, None) is None:
                return
        _log.warning(
            "lost brand %s: %s; its runs stop at the next batch boundary",
            brand,
            why,
            extra={"event": "lease_lost", "brand": brand},
        )
        self._hooks.on_change(brand, "lost", why)

    def _unreachable(self, reason: str) -> None:
        if self._outage is None:
            _log.warning(
                "cannot reach the shared state store; retrying: %s",
                reason,
                extra={"event": "state_store_unreachable"},
            )
        self._outage = reason


def move_objection(board: LeaseBoard, revision: str, *, own_id: str) -> str | None:
    """Why a run of config ``revision`` by ``own_id`` (a replica, or a command's direct run)
    may not move an export to another brand now: the live replicas running another revision,
    whose runs would move it back; ``None`` when all agree (:class:`StateError` when the
    store cannot be read)."""
    others = [
        f"{replica.id} ({replica.config_revision})"
        for replica in board.board().replicas
        if replica.live and replica.id != own_id and replica.config_revision != revision
    ]
    if not others:
        return None
    return (
        f"replica{'s' if len(others) > 1 else ''} {', '.join(others)} "
        f"run{'' if len(others) > 1 else 's'} another config revision than this one "
        f"({own_id}: {revision})"
    )
