"""Reconcile: what the scheduler and the running exports must do to match a config.

Pure. :func:`desired_exports` reads a :class:`~omnisync.config.model.Config`
into one :class:`ExportSpec` per export; :func:`reconcile` compares the
desired specs with those applied before and with the jobs the scheduler
really holds, and returns the actions that make them agree:

- an enabled export with a schedule has exactly one job, whose trigger is
  the export's schedule (:class:`ScheduleJob` adds or re-times it);
- a job for anything else goes (:class:`UnscheduleJob`);
- a removed or disabled export's in-flight run is told to stop at its next
  batch boundary (:class:`StopRun`), and so is the run of an export whose
  definition changed in a way that affects what a run sends — that one is
  started again with the new definition as soon as it has stopped;
- an export whose definition did not change is left alone: its in-flight
  run is never interrupted, even when other exports change around it.

The same function serves a reload (``applied`` is the previous config) and
every tick of the main loop (``applied == desired``; it then only repairs a
scheduler whose jobs drifted from the config).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from omnisync.config.model import Config, Connection, Export, Schedule, Segment, Source

StopReason = Literal["removed", "disabled", "changed"]


@dataclass(frozen=True)
class Timing:
    """A schedule's trigger without its name: renaming a schedule does not re-time it."""

    cron: str | None
    timezone: str
    every_seconds: int | None

    @classmethod
    def of(cls, schedule: Schedule) -> Timing:
        return cls(
            cron=schedule.cron, timezone=schedule.timezone, every_seconds=schedule.every_seconds
        )

    def describe(self) -> str:
        if self.cron is not None:
            return f"cron '{self.cron}' ({self.timezone})"
        return f"every {self.every_seconds}s"


@dataclass(frozen=True)
class RunDefinition:
    """Everything that changes what a run of one export sends, and nothing else.

    The export itself without its schedule (re-timing never interrupts a
    run), its segment, the segment's source and its connection.
    """

    export: Export
    segment: Segment | None
    source: Source | None
    connection: Connection | None


@dataclass(frozen=True)
class ExportSpec:
    """One export as the daemon must treat it."""

    name: str
    enabled: bool
    timing: Timing | None
    definition: RunDefinition

    @property
    def wants_job(self) -> bool:
        return self.enabled and self.timing is not None


@dataclass(frozen=True)
class ScheduleJob:
    """Add the export's job, or re-time it when it exists with another trigger."""

    export: str
    timing: Timing
    existing: bool


@dataclass(frozen=True)
class UnscheduleJob:
    """Remove the export's job (and any pending retry)."""

    export: str


@dataclass(frozen=True)
class StopRun:
    """Ask the export's in-flight run, if any, to stop at its next batch boundary.

    ``rerun``: start a run with the new definition once it has stopped.
    """

    export: str
    reason: StopReason
    rerun: bool


Action = ScheduleJob | UnscheduleJob | StopRun


def desired_exports(config: Config) -> dict[str, ExportSpec]:
    """One :class:`ExportSpec` per export of ``config``, keyed by name."""
    specs: dict[str, ExportSpec] = {}
    for name, export in config.exports.items():
        segment = config.segments.get(export.segment)
        source = config.sources.get(segment.source) if segment is not None else None
        specs[name] = ExportSpec(
            name=name,
            enabled=export.enabled,
            timing=Timing.of(export.schedule) if export.schedule is not None else None,
            definition=RunDefinition(
                export=replace(export, schedule=None),
                segment=segment,
                source=source,
                connection=config.connections.get(export.connection),
            ),
        )
    return specs


def reconcile(
    desired: Mapping[str, ExportSpec],
    applied: Mapping[str, ExportSpec],
    scheduled: Mapping[str, Timing],
) -> tuple[Action, ...]:
    """The actions that turn (``applied``, ``scheduled``) into ``desired``.

    ``applied`` are the specs the daemon last acted on (empty at start);
    ``scheduled`` maps each export that has a job in the scheduler to that
    job's timing. Actions come sorted by export name, stops before
    scheduling changes for the same export; applying them all leaves
    ``scheduled`` equal to the timings of ``desired``'s exports that want a job.
    """
    actions: list[Action] = []
    for name in sorted(set(desired) | set(applied) | set(scheduled)):
        wanted = desired.get(name)
        before = applied.get(name)
        stop = _stop_for(wanted, before)
        if stop is not None:
            actions.append(stop)
        current = scheduled.get(name)
        if wanted is not None and wanted.wants_job:
            assert wanted.timing is not None
            if current != wanted.timing:
                actions.append(
                    ScheduleJob(export=name, timing=wanted.timing, existing=current is not None)
                )
        elif current is not None:
            actions.append(UnscheduleJob(export=name))
    return tuple(actions)


def _stop_for(wanted: ExportSpec | None, before: ExportSpec | None) -> StopRun | None:
    if before is None or not before.enabled:
        # Nothing of ours could be running under an old definition that is now wrong:
        # a disabled export's runs were already stopped when it was disabled.
        return None
    if wanted is None:
        return StopRun(export=before.name, reason="removed", rerun=False)
    if not wanted.enabled:
        return StopRun(export=wanted.name, reason="disabled", rerun=False)
    if wanted.definition != before.definition:
        return StopRun(export=wanted.name, reason="changed", rerun=True)
    return None


def changed_exports(
    desired: Mapping[str, ExportSpec], applied: Mapping[str, ExportSpec]
) -> dict[str, tuple[str, ...]]:
    """Names of added, removed and changed exports, for the reload log line."""
    added = tuple(sorted(set(desired) - set(applied)))
    removed = tuple(sorted(set(applied) - set(desired)))
    changed = tuple(
        sorted(name for name in set(desired) & set(applied) if desired[name] != applied[name])
    )
    return {"added": added, "removed": removed, "changed": changed}
