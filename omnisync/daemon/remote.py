"""``omnisync export run`` made by another process, so it never overlaps a run there.

With a local state store the daemon of its state directory runs it (``POST
/exports/NAME/run``), followed through ``/runs/<id>`` like a direct run: the
same progress display, history id and summary document; when the export is
running there, the command waits for that run to end, then starts its own. On
a shared store the holder of the brand's lease runs it, asked through
``run_requests``; with no live holder the command runs it itself under the
brand's lease (:class:`HeldBrand`).
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, cast, get_args

import httpx

from omnisync.config.model import Config
from omnisync.config.secrets import SecretUnavailable, resolve_secret
from omnisync.daemon.discovery import (
    POLL_SECONDS,
    DaemonClient,
    DaemonUnavailable,
    TriggerRefused,
    UntrustedStateFile,
)
from omnisync.daemon.replicas import VALID_SHARE, move_objection
from omnisync.daemon.runs import manual_trigger
from omnisync.engine.results import Phase, RunProgress, RunResult
from omnisync.engine.run_render import result_from_document, run_counts
from omnisync.errors import OmnisyncError
from omnisync.state.opening import resolve_state_dsn
from omnisync.state.store import Fence, LeaseLost, StateError

if TYPE_CHECKING:  # psycopg: only where a shared store is configured
    from omnisync.state.leases import LeaseBoard, RunRequest


class RemoteRunFailed(OmnisyncError):
    """The daemon is up but would not run the export; the message says why."""


#: A run another process made for us: its ``/runs/<id>`` record (``status``,
#: ``counts``, ``error``, ``history_id``, the summary document as ``result``...).
RemoteRun = Mapping[str, Any]


def run_through_daemon(
    config: Config,
    export: str,
    *,
    notice: Callable[[str], None] | None = None,
    progress: RunProgress | None = None,
    release_by: str | None = None,
    full: bool = False,
) -> RemoteRun | None:
    """Have the daemon of ``config``'s state directory run ``export`` and wait for it.

    ``None`` when no daemon is up (run directly: no control token is needed then).
    :class:`RemoteRunFailed` when a daemon is up but refuses (a wrong token, a disabled
    or unknown export, an unreadable API key, the daemon stopping). ``notice`` gets
    one-line messages for the person waiting, ``progress`` the run's phases and counts.
    """
    tell = notice or (lambda message: None)
    state_dir = Path(config.daemon.state_dir)
    try:
        client = DaemonClient.find(state_dir)
    except UntrustedStateFile as error:
        raise RemoteRunFailed(str(error)) from None
    except DaemonUnavailable:
        return None  # no daemon: the caller runs directly, token or no token
    daemon = f"the daemon (pid {client.info.pid})"
    reference = config.daemon.control_token
    if reference is not None:
        try:
            client.use_token(resolve_secret(reference, header=True))
        except SecretUnavailable as error:
            client.close()
            raise RemoteRunFailed(
                f"{daemon} runs this config's exports, but the"
                f" control token daemon.control.token cannot be read: {error}"
            ) from None

    known: list[int] = []  # the run's history id, once the daemon said it

    def recorded(history_id: object) -> None:
        if isinstance(history_id, int):
            known.append(history_id)
        tell(f"{daemon} is running export {export}: run {history_id}")

    with client:
        try:
            while True:
                try:
                    started = client.trigger(export, release_by=release_by, full=full)
                    break
                except TriggerRefused as refused:
                    running = refused.body.get("run")
                    if (
                        refused.status != 409
                        or not isinstance(running, dict)
                        or "id" not in running
                    ):
                        raise RemoteRunFailed(
                            f"{daemon} refused to run {export}: {refused}"
                        ) from None
                    number = running.get("history_id")
                    tell(
                        f"export {export} is already running in the daemon"
                        f" ({f'run {number}, ' if number is not None else ''}"
                        f"{running.get('trigger')}); waiting for it to end before starting yours"
                    )
                    client.wait(str(running["id"]), on_poll=_follower(progress))
            record = client.wait(
                str(started["id"]),
                on_poll=_follower(progress, on_recorded=recorded),
            )
        except UntrustedStateFile as error:
            raise RemoteRunFailed(str(error)) from None
        except httpx.HTTPError as error:
            lost = f"lost {daemon} while waiting for the run: {error}"
            ended = _ended_in_history(config, known[0], pid=client.info.pid) if known else None
            if ended is None:
                raise RemoteRunFailed(lost) from None
            tell(f"{lost}; run {known[0]} ended {ended['status']}, as history says")
            return {**ended, "full": full}  # history does not keep it; the summary needs it
    if record.get("status") == "refused":
        raise RemoteRunFailed(f"{daemon} did not run {export}: {record.get('error')}")
    return record


def _ended_in_history(config: Config, run_id: int, *, pid: int) -> RemoteRun | None:
    """Run ``run_id`` as history records it once it ended (a daemon that stops records it
    before it exits); ``None`` when it cannot be read, or its daemon exited without ending
    it (killed: the next run resumes it)."""
    from omnisync.engine.history_render import run_as_dict
    from omnisync.state.opening import open_configured_store

    try:
        with open_configured_store(config.daemon) as store:
            while (run := store.run(run_id)) is not None and run.status == "running":
                try:
                    os.kill(pid, 0)  # still draining
                except ProcessLookupError:
                    return None  # gone without ending it: killed
                time.sleep(POLL_SECONDS)
    except (StateError, PermissionError):
        return None
    return None if run is None else {**run_as_dict(run), "history_id": run.id}


def run_through_replicas(
    config: Config,
    export: str,
    *,
    notice: Callable[[str], None] | None = None,
    release_by: str | None = None,
    full: bool = False,
) -> RemoteRun | None:
    """Have the replica holding ``export``'s brand run it; its answer, with ``history_id``.

    ``None``: no live replica holds the brand (run it here, under a :class:`HeldBrand`, which
    names a command holding it).
    :class:`RemoteRunFailed` when the replica refuses (the export is running, or disabled
    there), nobody picks the request up within twice the lease, or the replica that took it
    stops without answering (its heartbeat expired).
    """
    tell = notice or (lambda message: None)
    brand = config.brand_of(export)
    if brand is None:
        return None  # the direct run names what is wrong with the export
    board = open_board(config)
    try:
        snapshot = board.board()
        holder = next(
            (lease.holder for lease in snapshot.leases if lease.brand == brand and lease.live),
            None,
        )
        if holder not in {replica.id for replica in snapshot.replicas if replica.live}:
            # Free, or held by a command's own direct run, which no request reaches: the
            # direct run here says so at once (HeldBrand), rather than after 2 leases.
            return None
        trigger = manual_trigger("cli request", full=full, release_by=release_by)
        request_id = board.request_run(export, brand, trigger=trigger)
        tell(f"replica {holder} holds this export's brand; asked it to run {export}")
        request = _answered(board, request_id, export, holder=holder, config=config)
    except StateError as error:
        raise RemoteRunFailed(f"cannot ask a replica to run {export}: {error}") from None
    finally:
        board.close()
    answer = dict(request.answer or {})  # answered: _answered returns no other
    if answer.get("status") == "refused":
        raise RemoteRunFailed(
            f"replica {request.claimed_by} would not run {export}: {answer.get('error')}"
        )
    return {**answer, "history_id": request.run_id}


def _answered(
    board: LeaseBoard, request_id: int, export: str, *, holder: str, config: Config
) -> RunRequest:
    """Request ``request_id`` once answered. :class:`RemoteRunFailed` when nobody picks it up
    within twice the lease (it is withdrawn), or its claimer stops without answering."""
    timeout = 2 * config.daemon.state.lease_seconds
    deadline = time.monotonic() + timeout
    while True:
        request = board.request(request_id)
        if request is not None and request.answer is not None:
            return request
        claimer = request.claimed_by if request is not None else None
        if claimer is None and time.monotonic() > deadline:
            board.withdraw_request(request_id)
            raise RemoteRunFailed(
                f"no replica picked up the run of {export} within {timeout:.0f}s "
                f"(replica {holder} held its brand); is it stuck?"
            )
        # A claimer that died (its heartbeat expired) never answers; one that stopped
        # cleanly answers first, so look at the request once more before giving up.
        if claimer is not None and not board.replica_live(claimer):
            request = board.request(request_id)
            if request is not None and request.answer is not None:
                return request
            raise RemoteRunFailed(
                f"replica {claimer} is gone (its heartbeat expired) while running {export}, "
                "without answering: the run may have partly happened. The replica that next "
                "holds its brand resumes it from the ledger (see omnisync status, history)"
            )
        time.sleep(POLL_SECONDS)


def open_board(config: Config, *, environ: Mapping[str, str] | None = None) -> LeaseBoard:
    """The lease board of ``config``'s shared state store (:class:`StateError` if unreachable)."""
    # Imported here: it needs psycopg, an optional extra a SQLite install lacks.
    from omnisync.state.leases import LeaseBoard

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

    def brand_move_objection(self, revision: str) -> str | None:
        """:func:`~omnisync.daemon.replicas.move_objection` for this command's run."""
        return move_objection(self._board, revision, own_id=self.holder)

    def require(self) -> None:
        if time.monotonic() >= self._valid_until:
            raise LeaseLost(f"{self.holder} lost brand {self.brand}'s lease: request not sent")

    def __enter__(self) -> Self:
        started = time.monotonic()
        token = self._board.acquire(self.brand, self.holder, lease_seconds=self._lease)
        if token is None:
            holders = [
                f"{lease.holder} (its lease runs out in {math.ceil(lease.seconds_left)} s "
                "unless renewed)"
                for lease in self._board.board().leases
                if lease.brand == self.brand
            ]
            self._board.close()
            raise LeaseLost(
                f"brand {self.brand} is held by {', '.join(holders) or 'another process'}; "
                "try again when its run ends, or its lease runs out (a holder that died)"
            )
        self._token = token
        self._valid_until = started + self._lease * VALID_SHARE
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self._lease)
        with contextlib.closing(self._board), contextlib.suppress(StateError):
            self._board.release(self.brand, self.holder, self.fence.token)  # else it expires

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


def _follower(
    progress: RunProgress | None, *, on_recorded: Callable[[object], None] | None = None
) -> Callable[[dict[str, Any]], None]:
    """Successive ``/runs/<id>`` records as :class:`RunProgress` calls; says the history id
    once it is known."""
    seen: dict[str, object] = {"phase": None, "counts": None, "told": False}

    def follow(record: dict[str, Any]) -> None:
        history_id = record.get("history_id")
        if history_id is not None and not seen["told"] and on_recorded is not None:
            seen["told"] = True
            on_recorded(history_id)
        phase, counts = record.get("phase"), record.get("counts")
        if progress is None or phase not in get_args(Phase):
            return
        if phase != seen["phase"]:
            progress.phase_started(cast(Phase, phase), run_counts(counts))
        elif counts != seen["counts"]:
            progress.counts_updated(run_counts(counts))
        seen.update(phase=phase, counts=counts)

    return follow


def as_run_result(run: RemoteRun, export: str) -> RunResult:
    """The daemon's run as the engine's :class:`RunResult`, for the same summary and exit
    code: from its summary document (``result``), else (``skipped``: another process
    held the export's lock) from its record, as a failed run with that reason."""
    document = run.get("result")
    if not isinstance(document, dict):
        # The record's own fields, under the names the summary document gives them.
        document = {
            **run,
            "run_id": run.get("history_id"),
            "stopped": run.get("stop_reason") is not None,
        }
    return result_from_document(document, export)
