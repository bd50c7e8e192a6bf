"""``omnisync export run`` on a shared state store: the brand's holder runs it, or we do.

A run must be made by whoever holds its brand's lease, or it could overlap a
run there unfenced. :func:`run_through_replicas` asks the holder through
``run_requests`` and waits for its answer; with no live holder the command
runs the export itself under the brand's lease (:class:`HeldBrand`).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Self

from omnisync.config.model import Config
from omnisync.daemon.remote import RemoteRun, RemoteRunFailed
from omnisync.daemon.replicas import VALID_SHARE
from omnisync.daemon.triggers import manual_trigger
from omnisync.state.leases import LeaseBoard
from omnisync.state.opening import resolve_state_dsn
from omnisync.state.store import Fence, LeaseLost, StateError

#: How often the waiting command looks at its request.
POLL_SECONDS = 0.25


def run_through_replicas(
    config: Config,
    export: str,
    *,
    environ: Mapping[str, str] | None = None,
    notice: Callable[[str], None] | None = None,
    release_by: str | None = None,
    full: bool = False,
) -> RemoteRun | None:
    """Have the replica holding ``export``'s brand run it; its answer (status, error,
    counts, the summary document as ``result``, ``history_id``).

    ``None``: no live replica holds the brand (run it here, under a
    :class:`HeldBrand`). :class:`RemoteRunFailed` when the replica refuses (the
    export is running, or disabled there) or nobody picks the request up within
    twice the lease.
    """
    tell = notice or (lambda message: None)
    brand = config.brand_of(export)
    if brand is None:
        return None  # the direct run names what is wrong with the export
    board = open_board(config, environ=environ)
    try:
        holder = next(
            (lease.holder for lease in board.board().leases if lease.brand == brand and lease.live),
            None,
        )
        if holder is None:
            return None
        trigger = manual_trigger("cli request", full=full, release_by=release_by)
        request_id = board.request_run(export, brand, trigger=trigger)
        tell(f"replica {holder} holds this export's brand; asked it to run {export}")
        timeout = 2 * config.daemon.state.lease_seconds
        deadline = time.monotonic() + timeout
        while True:
            request = board.request(request_id)
            if request is not None and request.answer is not None:
                break
            if (request is None or request.claimed_by is None) and time.monotonic() > deadline:
                board.withdraw_request(request_id)
                raise RemoteRunFailed(
                    f"no replica picked up the run of {export} within {timeout:.0f}s "
                    f"(replica {holder} held its brand); is it stuck?"
                )
            time.sleep(POLL_SECONDS)
    except StateError as error:
        raise RemoteRunFailed(f"cannot ask a replica to run {export}: {error}") from None
    finally:
        board.close()
    answer = dict(request.answer)
    if answer.get("status") == "refused":
        raise RemoteRunFailed(
            f"replica {request.claimed_by} would not run {export}: {answer.get('error')}"
        )
    return {**answer, "history_id": request.run_id}


def open_board(config: Config, *, environ: Mapping[str, str] | None = None) -> LeaseBoard:
    """The lease board of ``config``'s shared state store (:class:`StateError` if unreachable)."""
    return LeaseBoard(resolve_state_dsn(config.daemon, environ=environ))


class HeldBrand:
    """This command holds a brand's lease for one direct run: acquired on entering
    (:class:`LeaseLost` naming the holder when taken), renewed every third of its
    length, released on exit. :meth:`require` is the run's request gate."""

    def __init__(self, config: Config, brand: str, *, environ: Mapping[str, str] | None) -> None:
        self.brand = brand
        self.holder = f"cli:{socket.gethostname()}:{os.getpid()}"
        self._lease = config.daemon.state.lease_seconds
        self._board = open_board(config, environ=environ)
        self._token: int | None = None
        self._valid_until = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name="lease", daemon=True)

    @property
    def fence(self) -> Fence:
        assert self._token is not None
        return Fence(brand=self.brand, holder=self.holder, token=self._token)

    def require(self) -> None:
        if time.monotonic() >= self._valid_until:
            raise LeaseLost(f"{self.holder} lost brand {self.brand}'s lease: request not sent")

    def __enter__(self) -> Self:
        started = time.monotonic()
        token = self._board.acquire(self.brand, self.holder, lease_seconds=self._lease)
        if token is None:
            holders = [
                lease.holder for lease in self._board.board().leases if lease.brand == self.brand
            ]
            self._board.close()
            raise LeaseLost(
                f"brand {self.brand} is held by {', '.join(holders) or 'another process'}; "
                "try again when its run ends"
            )
        self._token = token
        self._valid_until = started + self._lease * VALID_SHARE
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=self._lease)
        try:
            if self._token is not None:
                self._board.release(self.brand, self.holder, self._token)
        except StateError:
            pass  # it expires by itself
        finally:
            self._board.close()

    def _renew(self) -> None:
        while not self._stop.wait(self._lease / 3):
            started = time.monotonic()
            try:
                kept = self._board.renew(
                    self.holder, {self.brand: self.fence.token}, lease_seconds=self._lease
                )
            except StateError:
                continue  # the lease runs out locally; the run's requests then stop
            if self.brand in kept:
                self._valid_until = started + self._lease * VALID_SHARE
            else:
                self._valid_until = 0.0
                return
