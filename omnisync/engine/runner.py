"""Running one export end to end: check, settle, stage, apply, record.

The steps are in docs/ARCHITECTURE.md, "Export engine". A failure before the
apply step sends nothing; every run that got its lock is in history, failures
included, with the reason (masked).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

from omnisync.clock import Clock
from omnisync.config.model import Config, Connection, Export
from omnisync.config.rules import export_permission_problems
from omnisync.config.secrets import SecretUnavailable
from omnisync.engine.attempt import RunAttempt
from omnisync.engine.clients import ClientPool
from omnisync.engine.guards import hold_reasons
from omnisync.engine.report import PlanTally, valid_members
from omnisync.engine.results import RunOutcome, RunProgress, RunResult
from omnisync.engine.settle import settle_inflight
from omnisync.engine.staging import LedgerUnreadable, stage_export
from omnisync.errors import OmnisyncError
from omnisync.omnisend.client import OmnisendClient
from omnisync.omnisend.errors import OmnisendError
from omnisync.sources.errors import SourceError
from omnisync.state import LedgerStore, StateError
from omnisync.state.locks import ExportBusy, ExportLock

__all__ = [
    "ApiKeyUnavailable",
    "ExportBusy",
    "ExportRunner",
    "RunnerSettings",
    "UnknownExport",
]

logger = logging.getLogger("omnisync.engine")

#: How long a run waits, in clock seconds, for the batches a killed run left in flight.
SETTLE_TIMEOUT = 300.0

#: Asked with a run's config revision before its export moves to another brand: why it may
#: not move now (another process runs a config that would move it back), or ``None``.
BrandMoveCheck = Callable[[str], str | None]


@dataclass(frozen=True)
class RunnerSettings:
    """Knobs of a run; the defaults suit Omnisend.

    ``poll_interval`` (clock seconds between batch-status rounds) and
    ``max_batches_in_flight`` default to values derived from the connection's
    ``requests_per_minute``; ``stop_grace`` is how long a stopped run follows
    batches already created.
    """

    poll_interval: float | None = None
    max_batches_in_flight: int | None = None
    stop_grace: float = 120.0

    def pacing(self, connection: Connection) -> tuple[float, int]:
        """``(poll_interval, max_batches_in_flight)`` of a run on ``connection``."""
        per_second = connection.rate_limit.requests_per_minute / 60.0
        # Polling spends about a tenth of the request budget...
        poll = self.poll_interval
        if poll is None:
            poll = min(2.0, max(0.25, 10.0 / per_second))
        # ... and enough batches are in flight to create at full rate meanwhile.
        in_flight = self.max_batches_in_flight
        if in_flight is None:
            in_flight = min(500, max(20, math.ceil(per_second * (poll + 2.0))))
        return poll, in_flight


class UnknownExport(OmnisyncError, KeyError):
    """The config has no export of that name."""

    def __str__(self) -> str:
        return f"{self.args[0]}"


class ApiKeyUnavailable(OmnisyncError):
    """The export's API key cannot be read or is malformed: a config problem, not a run,
    raised before anything is recorded or logged; the message names the reference."""


class RunHeld(OmnisyncError):
    """A change guard held the run: its plan looks like an accident; nothing was sent."""


class RunFailed(OmnisyncError):
    """A run cannot proceed; the message says why (and never holds a secret or an e-mail)."""


class ExportRunner:
    """Runs the exports of one config against one state store.

    Thread-safe: different exports may run at the same time from different
    threads; the same export twice at once raises :class:`ExportBusy`.
    """

    def __init__(
        self,
        config: Config,
        *,
        store: LedgerStore,
        clients: ClientPool,
        clock: Clock,
        settings: RunnerSettings | None = None,
        brand_moves: BrandMoveCheck | None = None,
    ) -> None:
        """``brand_moves``: where other processes share the store, consulted before a run
        moves its export's ledger to another brand (``None``: it always may)."""
        self.config = config
        self._store = store
        self._clients = clients
        self._clock = clock
        self._settings = settings or RunnerSettings()
        self._brand_moves = brand_moves

    def run(
        self,
        name: str,
        *,
        trigger: str,
        stop: threading.Event | None = None,
        progress: RunProgress | None = None,
        on_recorded: Callable[[int], None] | None = None,
        allow_large_change: bool = False,
        full: bool = False,
    ) -> RunResult:
        """Run export ``name`` once and return how it ended (also recorded in history).

        ``trigger`` says who asked (``cli``, ``schedule``, ``demo``...). ``stop``
        is honoured at batch boundaries: no new batch is created, batches
        already created are followed (up to ``stop_grace``) and recorded, and
        the run ends ``partial``. ``on_recorded`` gets the run's history id as
        soon as it is recorded. A run whose plan trips a change guard sends
        nothing and ends ``held``, unless ``allow_large_change`` releases it
        (once). ``full`` resyncs: every member is re-sent and re-tagged as if
        first (without a consent status for contacts delivered before).
        Raises :class:`UnknownExport`, :class:`ApiKeyUnavailable` (nothing
        recorded), :class:`ExportBusy` and :class:`StateError` (history itself
        cannot be written); every other failure is a ``failed`` result.
        """
        export = self._export(name)
        client = self.client_for(name)
        attempt = RunAttempt(
            export=export,
            progress=progress,
            stop=stop or threading.Event(),
            allow_large_change=allow_large_change,
            full=full,
        )
        lock = ExportLock(self.config.daemon.state_dir, name)
        try:
            lock.acquire()
        except OSError as error:
            raise StateError(
                f"cannot create the run lock {lock.path}: {error.strerror or error}"
            ) from None
        try:
            return self._run_locked(attempt, client, trigger=trigger, on_recorded=on_recorded)
        finally:
            lock.release()

    def client_for(self, name: str) -> OmnisendClient:
        """The client of export ``name``'s connection, its API key resolved now.

        Raises :class:`ApiKeyUnavailable` naming the reference (never the value).
        """
        connection = self._export(name).connection
        try:
            return self._clients.client_for(self.config.connections[connection])
        except SecretUnavailable as error:  # unset, unreadable or malformed (never echoed)
            raise ApiKeyUnavailable(f"connections.{connection}.api_key: {error.reason}") from None

    def _run_locked(
        self,
        attempt: RunAttempt,
        client: OmnisendClient,
        *,
        trigger: str,
        on_recorded: Callable[[int], None] | None,
    ) -> RunResult:
        export = attempt.export
        record = self._store.start_run(
            export.name,
            trigger=trigger,
            config_revision=self.config.revision,
            now=self._clock.wall(),
        )
        logger.info(
            "run %d of export %s started (%s)",
            record.id,
            export.name,
            trigger,
            extra={"event": "engine.run_started", "export": export.name, "run_id": record.id},
        )
        error: str | None = None
        status: RunOutcome = "succeeded"
        try:
            if on_recorded is not None:
                on_recorded(record.id)
            try:
                self._execute(attempt, client)
            except RunHeld as hold:
                error, status = str(hold), "held"
            except (
                RunFailed,
                SecretUnavailable,
                SourceError,
                LedgerUnreadable,
                OmnisendError,
                StateError,
            ) as failure:
                error, status = str(failure), "failed"
            counts = attempt.counts()
            if error is None and counts.pending:
                status = "partial"
                error = attempt.partial_reason(counts)
            finished = self._store.finish_run(
                record.id,
                status=status,
                counts=counts.as_dict(),
                error=error,
                now=self._clock.wall(),
            )
        except BaseException as unexpected:
            # A bug or an interrupt: still close the record, then let it surface.
            self._close_after_crash(record.id, attempt, unexpected)
            raise
        attempt.phase("finished")
        log = logger.warning if status != "succeeded" else logger.info
        log(
            "run %d of export %s %s: %d upserted, %d tagged, %d untagged, %d pending%s",
            record.id,
            export.name,
            status,
            counts.upserted,
            counts.tagged,
            counts.untagged,
            counts.pending,
            f" — {finished.error}" if finished.error else "",
            extra={
                "event": "engine.run_finished",
                "export": export.name,
                "run_id": record.id,
                "status": status,
                **{f"count_{key}": value for key, value in counts.as_dict().items()},
            },
        )
        return attempt.result(
            RunResult(
                export=export.name,
                status=status,
                counts=counts,
                run_id=record.id,
                trigger=trigger,
                config_revision=self.config.revision,
                started_at=record.started_at,
                ended_at=finished.ended_at or "",
                error=finished.error,
            )
        )

    def _execute(self, attempt: RunAttempt, client: OmnisendClient) -> None:
        export = attempt.export
        attempt.phase("checking")
        if not export.enabled:
            raise RunFailed(
                f"export '{export.name}' is disabled (enabled: false); enable it to run it"
            )
        problems = export_permission_problems(self.config, export.name)
        if problems:
            raise RunFailed(f"export '{export.name}' may not run: " + "; ".join(problems))
        connection = self.config.connections[export.connection]
        self._check_brand_move(export, connection)
        forgotten = self._store.retarget(export.name, connection.brand, now=self._clock.wall())
        if forgotten:
            logger.warning(
                "export %s moved to another brand (connection %s): its %d delivered contacts"
                " are the old brand's; every member is delivered to the new one",
                export.name,
                connection.name,
                forgotten,
                extra={"event": "engine.export_moved_brand", "export": export.name},
            )
        poll_interval, max_batches_in_flight = self._settings.pacing(connection)
        with self._clients.counting(client) as counter:
            attempt.counter = counter
            if self._store.inflight_batches(export.name) or self._store.intents(export.name):
                attempt.phase("settling")
                attempt.settlement = settle_inflight(
                    self._store,
                    client,
                    export.name,
                    clock=self._clock,
                    poll_interval=poll_interval,
                    timeout=SETTLE_TIMEOUT,
                    stop=attempt.stop,
                )
            attempt.phase("staging")
            with stage_export(
                self.config,
                export.name,
                store=self._store,
                # A source's secrets are resolved where the run's API keys are.
                environ=self._clients.environ,
                full=attempt.full,
            ) as staged:
                attempt.tally = PlanTally(staged)
                now = self._clock.wall()
                members = valid_members(staged, now=now)
                too_many = export.max_profiles is not None and members > export.max_profiles
                held = (
                    ()
                    if attempt.allow_large_change
                    else hold_reasons(export.guards, staged.counts, valid_members=members)
                )
                if too_many or held:
                    # A run that stops here records the counts its plan shows.
                    attempt.tally.add_all(now=now)
                if too_many:
                    raise RunFailed(
                        f"segment '{export.segment}' selects "
                        f"{attempt.tally.tallied().members:,} contacts, more than "
                        f"the export's max_profiles ({export.max_profiles:,}); nothing was sent. "
                        "Check the segment's query, or raise max_profiles."
                    )
                if held:
                    raise RunHeld(
                        "; ".join(held) + "; nothing was sent. If the change is wanted, "
                        f"release it once: omnisync export run {export.name} --allow-large-change"
                    )
                attempt.phase("applying")
                attempt.apply(
                    store=self._store,
                    client=client,
                    clock=self._clock,
                    poll_interval=poll_interval,
                    max_batches_in_flight=max_batches_in_flight,
                    stop_grace=self._settings.stop_grace,
                )

    def _check_brand_move(self, export: Export, connection: Connection) -> None:
        """Hold a run that would move its export to another brand while ``brand_moves``
        objects: a process still running the old config would move it back, and each move
        forgets the ledger, so every member (consent record included) would be sent again."""
        if self._brand_moves is None:
            return
        recorded = self._store.recorded_brand(export.name)
        if recorded is None or recorded == connection.brand:
            return
        objection = self._brand_moves(self.config.revision)
        if objection is not None:
            raise RunHeld(
                f"export '{export.name}' moves to another brand (connection "
                f"'{connection.name}') in this config, but {objection}; held so that no run "
                "moves it back and forth, sending every member again each time; nothing was "
                "sent. It moves once every live replica runs the same config revision."
            )

    def _export(self, name: str) -> Export:
        export = self.config.exports.get(name)
        if export is None:
            known = ", ".join(sorted(self.config.exports)) or "none"
            raise UnknownExport(f"no export named '{name}' in the config (exports: {known})")
        return export

    def _close_after_crash(self, run_id: int, attempt: RunAttempt, error: BaseException) -> None:
        interrupted = isinstance(error, KeyboardInterrupt)
        description = "interrupted" if interrupted else "internal error"
        try:
            self._store.finish_run(
                run_id,
                status="interrupted" if interrupted else "failed",
                counts=attempt.counts().as_dict(),
                error=f"{description}: {type(error).__name__}: {error}",
                now=self._clock.wall(),
            )
        except StateError:
            logger.exception("could not record the end of run %d", run_id)
