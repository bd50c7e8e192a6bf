"""Running one export end to end: check, settle, stage, apply, record.

:class:`ExportRunner` is what ``omnisync export run``, the daemon and the
demo call. One run, in order (docs/ARCHITECTURE.md, "Export engine"):

1. resolve the connection's API key (every run: a rotated key is picked up);
   an unreadable or malformed key is refused (:class:`ApiKeyUnavailable`);
2. take the export's run lock (one run of an export at a time) and record
   the run as ``running`` in history;
3. permissions (``export_permission_problems``) and ``enabled``;
4. settle the in-flight batches a killed earlier run left behind;
5. stage the segment and diff it against the ledger (nothing sent yet);
6. refuse a segment over ``max_profiles``;
7. apply through a :class:`~omnisync.omnisend.pipeline.DeliveryPipeline`:
   upserts, tags after acknowledgement, untags — the ledger records only what
   Omnisend acknowledged, batch by batch (:class:`LedgerRecorder`);
8. record the result in history.

A failure at any step before 7 sends nothing; every run that got its lock
is in history, failures included, with the reason (masked).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager

from omnisync.clock import Clock
from omnisync.config.model import Config, Export
from omnisync.config.rules import export_permission_problems
from omnisync.config.secrets import SecretUnavailable
from omnisync.engine.apply import apply_work
from omnisync.engine.attempt import RunAttempt
from omnisync.engine.clients import ClientPool
from omnisync.engine.guards import hold_reasons
from omnisync.engine.report import PlanReport, build_plan_report
from omnisync.engine.results import NullProgress, RunOutcome, RunProgress, RunResult
from omnisync.engine.runsettings import RunnerSettings, pipeline_pacing
from omnisync.engine.settle import settle_inflight
from omnisync.engine.staged import StagedExport
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


class UnknownExport(OmnisyncError, KeyError):
    """The config has no export of that name."""

    def __str__(self) -> str:
        return f"{self.args[0]}"


class ApiKeyUnavailable(OmnisyncError):
    """The export's API key cannot be read or is malformed: a config problem, not a run.

    Raised before anything is recorded or logged; the message names the reference
    (``connections.main.api_key: environment variable OMNISEND_API_KEY is not set``).
    """


class RunHeld(OmnisyncError):
    """A change guard held the run: its plan looks like an accident; nothing was sent."""


class RunFailed(OmnisyncError):
    """A run cannot proceed; the message says why (and never holds a secret or an e-mail)."""


class ExportRunner:
    """Runs the exports of one config against one state store (see the module docstring).

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
    ) -> None:
        self.config = config
        self._store = store
        self._clients = clients
        self._clock = clock
        self._settings = settings or RunnerSettings()

    # -- plan -------------------------------------------------------------------------

    def plan(self, name: str) -> PlanReport:
        """What a run of ``name`` would do now; sends nothing, writes nothing.

        Batches a killed run left in flight are not asked about (that needs the
        API key and the network): their contacts count as still to send.
        Raises ``SourceError`` / ``LedgerUnreadable`` like a run would fail.
        """
        self._export(name)
        with self._stage(name) as staged:
            return build_plan_report(staged, now=self._clock.wall())

    # -- run --------------------------------------------------------------------------

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

        ``trigger`` says who asked (``cli``, ``schedule``, ``daemon-trigger``,
        ``demo``...). ``stop`` is honoured at batch boundaries: no new batch is
        created, batches already created are followed (up to ``stop_grace``)
        and recorded, and the run ends ``partial``. ``on_recorded`` gets the
        run's history id as soon as it is recorded. A run whose plan trips a
        change guard (:mod:`omnisync.engine.guards`) sends nothing and ends
        ``held``, unless ``allow_large_change`` releases it (once). ``full``
        resyncs: every member is re-sent and re-tagged as if first (without a
        consent status for contacts delivered before), leavers as usual. Raises
        :class:`UnknownExport`, :class:`ApiKeyUnavailable` (nothing recorded),
        :class:`ExportBusy` (another run of the export holds its lock) and
        :class:`StateError` (history itself cannot be written); every other
        failure is a ``failed`` result.
        """
        export = self._export(name)
        client = self.client_for(name)
        attempt = RunAttempt(
            export,
            progress=progress or NullProgress(),
            stop=stop or threading.Event(),
            allow_large_change=allow_large_change,
            full=full,
        )
        lock_dir = self._settings.lock_dir or self.config.daemon.state_dir
        lock = ExportLock(lock_dir, name)
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

        Raises :class:`ApiKeyUnavailable` naming the reference when the key
        cannot be read or is malformed (the message never holds the value).
        """
        connection = self._export(name).connection
        try:
            return self._clients.client_for(self.config.connections[connection])
        except SecretUnavailable as error:
            reason = error.reason
        except ValueError as error:  # a malformed key, from the client (never echoed)
            reason = str(error)
        raise ApiKeyUnavailable(f"connections.{connection}.api_key: {reason}")

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
        held = False
        try:
            if on_recorded is not None:
                on_recorded(record.id)
            try:
                self._execute(attempt, client)
            except RunHeld as hold:
                error, held = str(hold), True
            except (
                RunFailed,
                SecretUnavailable,
                SourceError,
                LedgerUnreadable,
                OmnisendError,
                StateError,
            ) as failure:
                error = str(failure)
            counts = attempt.counts()
            status: RunOutcome
            if held:
                status = "held"
            elif error is not None:
                status = "failed"
            elif counts.pending:
                status = "partial"
                error = attempt.partial_reason(counts)
            else:
                status = "succeeded"
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
        forgotten = self._store.retarget(export.name, connection.brand, now=self._clock.wall())
        if forgotten:
            # The export now reaches another brand, whose contacts it never delivered.
            logger.warning(
                "export %s moved to another brand (connection %s): its %d delivered contacts"
                " are the old brand's; every member is delivered to the new one",
                export.name,
                connection.name,
                forgotten,
                extra={"event": "engine.export_moved_brand", "export": export.name},
            )
        with self._clients.counting(connection) as counter:
            attempt.counter = counter
            pacing = pipeline_pacing(self._settings, connection)
            if self._store.inflight_batches(export.name) or self._store.intents(export.name):
                attempt.phase("settling")
                settled = settle_inflight(
                    self._store,
                    client,
                    export.name,
                    clock=self._clock,
                    poll_interval=pacing.poll_interval,
                    timeout=self._settings.settle_timeout,
                    stop=attempt.stop,
                )
                attempt.settled = settled.acknowledged
                attempt.maybe_sent = settled.maybe_sent
            attempt.phase("staging")
            with self._stage(export.name, full=attempt.full) as staged:
                attempt.stage_counts = staged.counts
                attempt.duplicates_sample = staged.duplicates_sample
                members = staged.counts.members
                if export.max_profiles is not None and members > export.max_profiles:
                    raise RunFailed(
                        f"segment '{export.segment}' selects {members:,} contacts, more than "
                        f"the export's max_profiles ({export.max_profiles:,}); nothing was sent. "
                        "Check the segment's query, or raise max_profiles."
                    )
                reasons = (
                    () if attempt.allow_large_change else hold_reasons(export.guards, staged.counts)
                )
                if reasons:
                    raise RunHeld(
                        "; ".join(reasons) + "; nothing was sent. If the change is wanted, "
                        f"release it once: omnisync export run {export.name} --allow-large-change"
                    )
                attempt.phase("applying")
                apply_work(
                    attempt,
                    staged,
                    store=self._store,
                    client=client,
                    clock=self._clock,
                    settings=pacing,
                )

    def _stage(self, name: str, *, full: bool = False) -> AbstractContextManager[StagedExport]:
        """:func:`stage_export` of ``name`` against this runner's ledger (``full``: a resync).

        A source's secrets (a PostgreSQL DSN) are resolved where the run's API
        keys are: the client pool's environment and credentials directory.
        """
        return stage_export(
            self.config,
            name,
            store=self._store,
            environ=self._clients.environ,
            credentials_directory=self._clients.credentials_directory,
            full=full,
        )

    def _export(self, name: str) -> Export:
        export = self.config.exports.get(name)
        if export is None:
            known = ", ".join(sorted(self.config.exports)) or "none"
            raise UnknownExport(f"no export named '{name}' in the config (exports: {known})")
        return export

    def _close_after_crash(self, run_id: int, attempt: RunAttempt, error: BaseException) -> None:
        description = "interrupted" if isinstance(error, KeyboardInterrupt) else "internal error"
        try:
            self._store.finish_run(
                run_id,
                status="interrupted" if isinstance(error, KeyboardInterrupt) else "failed",
                counts=attempt.counts().as_dict(),
                error=f"{description}: {type(error).__name__}: {error}",
                now=self._clock.wall(),
            )
        except StateError:
            logger.exception("could not record the end of run %d", run_id)
