"""Running exports: one at a time per export, stoppable, followed by id.

:class:`RunCoordinator` is the only way the daemon starts a run. A second
start of a running export is refused (a scheduler tick coalesces into one
follow-up; the trigger endpoint answers 409), as is one of an export the
current config no longer has enabled. Each run has a stop event, set
when its export is removed, disabled or changed, or the daemon stops; the
:class:`Engine` honours it at batch boundaries and reports into the run's
:class:`LiveProgress`, which ``/runs/<id>`` shows.
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
from typing import Any, Protocol

from omnisync.clock import Clock
from omnisync.config.model import Config
from omnisync.engine.results import Phase, RunCounts
from omnisync.state import StateError

_log = logging.getLogger("omnisync.daemon.runs")

#: How many finished runs ``/runs/<id>`` can still show.
KEPT_RUNS = 500


#: A run's trigger as history records it: ``schedule``, ``retry``, ``catch-up``, ``reload``
#: from the daemon; a person's run is ``cli``, ``cli request`` (through a shared store) or
#: ``daemon-trigger``, then what the person asked for: ``cli, full resync, release by olena``.
FULL = "full resync"
RELEASE = "release by"


def manual_trigger(base: str, *, full: bool = False, release_by: str | None = None) -> str:
    """The trigger recorded for a run a person asked for: ``base``, then what it asked."""
    parts = [base]
    if full:
        parts.append(FULL)
    if release_by is not None:
        who = "".join(character for character in release_by if character.isprintable())
        parts.append(f"{RELEASE} {who[:64] or 'unknown'}")
    return ", ".join(parts)


def is_release(trigger: str) -> bool:
    """Whether ``trigger`` releases the run past the change guards (once)."""
    return any(part.startswith(RELEASE) for part in trigger.split(", "))


def is_full(trigger: str) -> bool:
    """Whether ``trigger`` asks for a full resync (every member re-sent and re-tagged)."""
    return FULL in trigger.split(", ")


@dataclass(frozen=True)
class RunOutcome:
    """What a run reports: the engine's status (or ``skipped``, ``refused``), counts, error,
    history id and summary document (``result``)."""

    status: str
    counts: Mapping[str, int] = field(default_factory=dict)
    error: str | None = None
    history_id: int | None = None
    result: Mapping[str, Any] | None = None


class LiveProgress:
    """What a run in flight has reported so far (a thread-safe
    :class:`~omnisync.engine.results.RunProgress`), plus its history id once recorded."""

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


class Engine(Protocol):
    """Runs one export of ``config`` now (honouring ``stop`` at batch boundaries, reporting
    into ``progress``), and what the daemon reads through it."""

    def __call__(
        self,
        config: Config,
        export: str,
        *,
        trigger: str,
        stop: threading.Event,
        progress: LiveProgress,
    ) -> RunOutcome: ...

    def last_run(self, export: str) -> Mapping[str, Any] | None:
        """The export's latest run in history, as JSON-ready data."""

    def refusal(self, config: Config, export: str) -> str | None:
        """Why ``export`` cannot run now (its API key cannot be read), or ``None``."""


@dataclass(frozen=True)
class RunRecord:
    """One run as the daemon saw it, finished once it has an ``outcome``; ``id`` is the
    daemon's own (people are shown ``history_id``, the id ``omnisync history`` knows)."""

    id: str
    export: str
    trigger: str
    config_revision: str
    started_at: datetime
    ended_at: datetime | None = None
    outcome: RunOutcome | None = None
    stop_reason: str | None = None
    duration_seconds: float | None = None
    progress: LiveProgress = field(default_factory=LiveProgress, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        """The run for ``/runs/<id>``: live ``phase`` and ``counts`` while in flight, the
        summary document (``result``) once finished."""
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
            "state": "finished" if outcome else "running",
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
    """A run in flight, with its config snapshot: a reload never changes what it sends."""

    record: RunRecord
    config: Config
    stop: threading.Event
    rerun: bool = False
    follow_up: str | None = None
    stop_reason: str | None = None


class RunCoordinator:
    """Starts runs, keeps them exclusive per export, stops them, remembers them.
    ``config`` returns the config a run starting now uses; ``on_started`` and
    ``on_finished`` are called from the run's thread with its record."""

    def __init__(
        self,
        run_function: Engine,
        *,
        config: Callable[[], Config],
        clock: Clock,
        on_started: Callable[[RunRecord], None],
        on_finished: Callable[[RunRecord], None],
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
        return self._accepting

    def start(self, export: str, *, trigger: str) -> RunRecord | None:
        """Start ``export`` in a new thread; its record, ``None`` when it is running already,
        the daemon is stopping, or the current config no longer has it enabled."""
        return self.start_or_running(export, trigger=trigger)[0]

    def start_or_running(
        self, export: str, *, trigger: str
    ) -> tuple[RunRecord | None, RunRecord | None]:
        """Start ``export`` (its record first), or else the record of its run in flight
        (second), in one look; neither when none may start (stopping, not enabled)."""
        with self._lock:
            running = self._active.get(export)
            active = self._register(export, trigger) if running is None else None
        return self._launch(active), running.record if running is not None else None

    def request(self, export: str, *, trigger: str) -> RunRecord | None:
        """Start ``export`` now, or once more right after its run in flight (ticks during a
        run coalesce into one follow-up); the started run's record, ``None`` when coalesced."""
        with self._lock:
            running = self._active.get(export)
            if running is not None and self._accepting:
                if running.follow_up is None:
                    _log.info(
                        "export %s is still running; this %s run will follow it",
                        export,
                        trigger,
                        extra={"event": "run_coalesced", "export": export, "trigger": trigger},
                    )
                    running.follow_up = trigger
                return None
            active = self._register(export, trigger)
        return self._launch(active)

    def _register(self, export: str, trigger: str) -> _Active | None:
        """A new run of ``export`` in ``_active`` (the lock held), or ``None`` when none may start.
        The config is read under the lock :meth:`stop` takes, and a reload makes its config
        current before it stops runs: a start that read the old config is a run in flight
        which the reload stops; one that reads the new config finds its export gone or disabled.
        """
        if not self._accepting or export in self._active:
            return None
        config = self._config()
        definition = config.exports.get(export)
        if definition is None or not definition.enabled:
            _log.info(
                "export %s is %s; its %s run does not start",
                export,
                "disabled" if definition is not None else "no longer in the config",
                trigger,
                extra={"event": "run_dropped", "export": export, "trigger": trigger},
            )
            return None
        record = RunRecord(
            id=f"{self._prefix}-{next(self._ids)}",
            export=export,
            trigger=trigger,
            config_revision=config.revision,
            started_at=self._clock.wall(),
        )
        active = _Active(record=record, config=config, stop=threading.Event())
        self._active[export] = active
        self._remember(record)
        return active

    def _launch(self, active: _Active | None) -> RunRecord | None:
        if active is None:
            return None
        thread = threading.Thread(
            target=self._execute, args=(active,), name=f"run-{active.record.export}", daemon=True
        )
        thread.start()
        return active.record

    def _execute(self, active: _Active) -> None:
        record = active.record
        began = self._clock.now()
        self._on_started(record)
        try:
            outcome = self._run_function(
                active.config,
                record.export,
                trigger=record.trigger,
                stop=active.stop,
                progress=record.progress,
            )
        except StateError as error:
            # The store went away or this replica's lease did (a fenced write): an
            # operating condition, said in one line, not a crash with a traceback.
            _log.warning(
                "run of export %s failed: %s",
                record.export,
                error,
                extra={"event": "run_state_failed", "export": record.export, "run_id": record.id},
            )
            outcome = RunOutcome(status="failed", error=f"{type(error).__name__}: {error}")
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
        try:
            self._on_finished(finished)
        except Exception:
            _log.exception(
                "recording the end of a run failed", extra={"event": "run_record_failed"}
            )
        restarted = rerun and self.start(record.export, trigger=follow_trigger) is not None
        if restarted and active.rerun:
            _log.info(
                "export %s changed during its run; running it again with the new definition",
                record.export,
                extra={"event": "run_restarted", "export": record.export},
            )

    def _remember(self, record: RunRecord) -> None:
        self._records[record.id] = record
        self._records.move_to_end(record.id)
        while len(self._records) > KEPT_RUNS:
            self._records.popitem(last=False)

    def stop(self, export: str, *, reason: str, rerun: bool = False) -> bool:
        """Ask ``export``'s run to stop at its next batch boundary; whether one was in flight.
        ``rerun``: start it again with the then current config once it has stopped."""
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
        with self._lock:
            return self._idle.wait_for(lambda: not self._active, timeout)

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
            records = reversed(self._records.values())
            return next((r for r in records if r.export == export and r.outcome is not None), None)
