"""Running exports: one at a time per export, stoppable, followed by id.

The :class:`RunCoordinator` is the only way the daemon starts a run, whether
the scheduler fires or someone calls the trigger endpoint. It holds one lock
per export, so a scheduled run and a triggered run never overlap: whichever
comes second is refused (the scheduler's tick coalesces into the run in
progress; the trigger endpoint answers 409). Each run gets a stop event,
set when the export is removed, disabled or changed by a reload, or when the
daemon shuts down; the run function checks it at batch boundaries.

The run function itself is injected (:class:`RunFunction`): the daemon wires
the export engine's runner, and tests wire whatever they need to observe. It
reports into the run's :class:`LiveProgress` (phase, counts so far, history
id), which ``/runs/<id>`` shows while the run is in flight.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal, Protocol

from omnisync.clock import Clock
from omnisync.config.model import Config
from omnisync.engine.results import Phase, RunCounts

_log = logging.getLogger("omnisync.daemon.runs")

RunState = Literal["running", "finished"]

#: How many finished runs ``/runs/<id>`` can still show.
KEPT_RUNS = 500


@dataclass(frozen=True)
class RunOutcome:
    """What a run function reports: the engine's status, counts and error, if any.

    ``status`` is ``succeeded``, ``partial`` or ``failed``; ``history_id`` is
    the run's id in the state store's history when it recorded one.
    """

    status: str
    counts: Mapping[str, int] = field(default_factory=dict)
    error: str | None = None
    history_id: int | str | None = None
    result: Mapping[str, Any] | None = None


class LiveProgress:
    """What a run in flight has reported so far: the engine's
    :class:`~omnisync.engine.results.RunProgress`, plus the run's history id.
    Thread-safe; written by the run's threads.

    ``phase`` (``checking``, ``settling``, ``staging``, ``applying``,
    ``finished``), ``counts`` (the run's counts so far) and ``history_id``
    (once the run is recorded in history).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._phase: str | None = None
        self._counts: dict[str, int] = {}
        self._history_id: int | str | None = None

    def phase_started(self, phase: Phase, counts: RunCounts) -> None:
        with self._lock:
            self._phase = phase
            self._counts = counts.as_dict()

    def counts_updated(self, counts: RunCounts) -> None:
        with self._lock:
            self._counts = counts.as_dict()

    def recorded(self, history_id: int | str) -> None:
        with self._lock:
            self._history_id = history_id

    def snapshot(self) -> tuple[str | None, dict[str, int], int | str | None]:
        """``(phase, counts, history_id)`` as they are now."""
        with self._lock:
            return self._phase, dict(self._counts), self._history_id


class RunFunction(Protocol):
    """Runs one export of ``config`` now, honouring ``stop`` at batch boundaries,
    reporting into ``progress``."""

    def __call__(
        self,
        config: Config,
        export: str,
        *,
        trigger: str,
        stop: threading.Event,
        progress: LiveProgress,
    ) -> RunOutcome: ...


@dataclass(frozen=True)
class RunRecord:
    """One run as the daemon saw it; ``id`` is the daemon's own run id (internal: people
    are shown ``history_id``, the id ``omnisync history`` knows). ``progress`` is what
    the run has reported so far."""

    id: str
    export: str
    trigger: str
    config_revision: str
    state: RunState
    started_at: datetime
    ended_at: datetime | None = None
    outcome: RunOutcome | None = None
    stop_reason: str | None = None
    duration_seconds: float | None = None
    progress: LiveProgress = field(default_factory=LiveProgress, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        """The run for ``/runs/<id>``; while in flight, ``phase`` and ``counts`` are live.

        ``result``: the run's summary document (``export run --format json``'s),
        once finished, when the run function gave one.
        """
        outcome = self.outcome
        phase, counts, history_id = self.progress.snapshot()
        if outcome is not None:
            phase = "finished"
            counts = dict(outcome.counts)
            history_id = outcome.history_id if outcome.history_id is not None else history_id
        return {
            "id": self.id,
            "export": self.export,
            "trigger": self.trigger,
            "config_revision": self.config_revision,
            "state": self.state,
            "phase": phase,
            "status": outcome.status if outcome else None,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "counts": counts,
            "error": outcome.error if outcome else None,
            "history_id": history_id,
            "stop_reason": self.stop_reason,
            "result": dict(outcome.result) if outcome and outcome.result else None,
        }


@dataclass
class _Active:
    """A run in flight. The config snapshot travels with it: a reload mid-run never
    changes what it sends."""

    record: RunRecord
    config: Config
    stop: threading.Event
    rerun: bool = False
    follow_up: str | None = None
    stop_reason: str | None = None


class RunCoordinator:
    """Starts runs, keeps them exclusive per export, stops them, remembers them.

    ``config`` returns the config a run starting now must use (the last good
    one); each run keeps the snapshot it started with. ``on_finished`` is
    called (from the run's thread) after every run with its final record,
    ``on_started`` before it begins.
    """

    def __init__(
        self,
        run_function: RunFunction,
        *,
        config: Callable[[], Config],
        clock: Clock,
        on_started: Callable[[RunRecord], None] | None = None,
        on_finished: Callable[[RunRecord], None] | None = None,
    ) -> None:
        self._run_function = run_function
        self._config = config
        self._clock = clock
        self._on_started = on_started
        self._on_finished = on_finished
        self._lock = threading.Lock()
        self._active: dict[str, _Active] = {}
        self._records: OrderedDict[str, RunRecord] = OrderedDict()
        self._ids = itertools.count(1)
        self._prefix = f"{int(time.time()):x}"
        self._accepting = True
        self._idle = threading.Condition(self._lock)

    @property
    def accepting(self) -> bool:
        """Whether runs may still start (not once shutdown began)."""
        return self._accepting

    # -- starting -----------------------------------------------------------------

    def start(self, export: str, *, trigger: str) -> RunRecord | None:
        """Start ``export`` in a new thread and return its record at once.

        ``None`` when that export is already running (or the daemon is stopping).
        """
        active = self._claim(export, trigger=trigger)
        if active is None:
            return None
        thread = threading.Thread(
            target=self._execute, args=(active,), name=f"run-{export}", daemon=True
        )
        thread.start()
        return active.record

    def request(self, export: str, *, trigger: str) -> RunRecord | None:
        """Start ``export`` now, or, when it is running, once more right after.

        The scheduler's way in: however many ticks fall while a run is in
        flight, they coalesce into one follow-up run. Returns the started
        run's record, or ``None`` when the tick was coalesced.
        """
        record = self.start(export, trigger=trigger)
        if record is None:
            with self._lock:
                active = self._active.get(export)
                if active is not None and self._accepting:
                    if active.follow_up is None:
                        _log.info(
                            "export %s is still running; this %s run will follow it",
                            export,
                            trigger,
                            extra={"event": "run_coalesced", "export": export, "trigger": trigger},
                        )
                    active.follow_up = active.follow_up or trigger
                    return None
            # It finished between our two looks: try once more.
            record = self.start(export, trigger=trigger)
        return record

    def _claim(self, export: str, *, trigger: str) -> _Active | None:
        config = self._config()
        with self._lock:
            if not self._accepting or export in self._active:
                return None
            record = RunRecord(
                id=f"{self._prefix}-{next(self._ids)}",
                export=export,
                trigger=trigger,
                config_revision=config.revision,
                state="running",
                started_at=self._clock.wall(),
            )
            active = _Active(record=record, config=config, stop=threading.Event())
            self._active[export] = active
            self._remember(record)
        return active

    def _execute(self, active: _Active) -> RunRecord:
        record = active.record
        began = self._clock.now()
        if self._on_started is not None:
            self._on_started(record)
        try:
            outcome = self._run_function(
                active.config,
                record.export,
                trigger=record.trigger,
                stop=active.stop,
                progress=record.progress,
            )
        except Exception as error:
            # A run function that raises is a failed run, never a dead scheduler thread.
            _log.exception(
                "run of export %s crashed",
                record.export,
                extra={"event": "run_crashed", "export": record.export, "run_id": record.id},
            )
            outcome = RunOutcome(status="failed", error=f"{type(error).__name__}: {error}")
        finished = replace(
            record,
            state="finished",
            ended_at=self._clock.wall(),
            outcome=outcome,
            duration_seconds=max(0.0, self._clock.now() - began),
            stop_reason=active.stop_reason,
        )
        with self._lock:
            self._active.pop(record.export, None)
            self._remember(finished)
            rerun = self._accepting and (active.rerun or active.follow_up is not None)
            follow_trigger = "reload" if active.rerun else (active.follow_up or "schedule")
            self._idle.notify_all()
        if self._on_finished is not None:
            try:
                self._on_finished(finished)
            except Exception:
                _log.exception(
                    "recording the end of a run failed", extra={"event": "run_record_failed"}
                )
        if rerun and self._runnable(record.export):
            if active.rerun:
                _log.info(
                    "export %s changed during its run; running it again with the new definition",
                    record.export,
                    extra={"event": "run_restarted", "export": record.export},
                )
            self.start(record.export, trigger=follow_trigger)
        return finished

    def _runnable(self, export: str) -> bool:
        definition = self._config().exports.get(export)
        return definition is not None and definition.enabled

    def _remember(self, record: RunRecord) -> None:
        self._records[record.id] = record
        self._records.move_to_end(record.id)
        while len(self._records) > KEPT_RUNS:
            self._records.popitem(last=False)

    # -- stopping -----------------------------------------------------------------

    def stop(self, export: str, *, reason: str, rerun: bool = False) -> bool:
        """Ask ``export``'s in-flight run to stop at its next batch boundary.

        Returns whether a run was in flight. ``rerun``: start it again (with
        the config then current) once it has stopped.
        """
        with self._lock:
            active = self._active.get(export)
            if active is None:
                return False
            active.rerun = active.rerun or rerun
            active.stop_reason = active.stop_reason or reason
            active.stop.set()
        _log.info(
            "asked the run of export %s to stop at its next batch boundary (%s)",
            export,
            reason,
            extra={"event": "run_stop_requested", "export": export, "reason": reason},
        )
        return True

    def shutdown(self, *, timeout: float) -> bool:
        """Refuse new runs, stop all in flight, wait up to ``timeout`` s; ``True`` when idle."""
        with self._lock:
            self._accepting = False
            exports = list(self._active)
        for export in exports:
            self.stop(export, reason="shutdown")
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._active:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    # -- looking ------------------------------------------------------------------

    def running(self) -> dict[str, RunRecord]:
        """The runs in flight, by export."""
        with self._lock:
            return {export: active.record for export, active in self._active.items()}

    def get(self, run_id: str) -> RunRecord | None:
        with self._lock:
            return self._records.get(run_id)

    def last(self, export: str) -> RunRecord | None:
        """The most recent finished run of ``export`` this daemon made."""
        with self._lock:
            for record in reversed(self._records.values()):
                if record.export == export and record.state == "finished":
                    return record
        return None
