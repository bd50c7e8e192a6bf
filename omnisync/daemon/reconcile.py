"""Reconcile: what the scheduler and the running exports must do to match a config. Pure.

- an enabled export with a schedule has exactly one job on that schedule;
- a job for anything else goes;
- a removed or disabled export's run is stopped at its next batch boundary, and so
  is the run of an export whose definition changed (it runs again with the new one);
- an unchanged export's run is never interrupted.

The same function serves a reload and every tick (``applied == desired``: it then
only repairs a drifted scheduler).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from omnisync.config.model import Config, Connection, Export, Schedule, Segment, Source

StopReason = Literal["removed", "disabled", "changed"]


@dataclass(frozen=True)
class ExportSpec:
    """One export as the daemon treats it. ``timing``: its schedule without the name
    (renaming a schedule does not re-time it); ``definition``: everything that changes
    what a run sends (the export without its schedule, its segment, source, connection)."""

    enabled: bool
    timing: Schedule | None
    definition: tuple[Export, Segment | None, Source | None, Connection | None]

    @property
    def job_timing(self) -> Schedule | None:
        """The timing of its scheduler job; ``None`` when it has none (disabled, on demand)."""
        return self.timing if self.enabled else None


@dataclass(frozen=True)
class ScheduleJob:
    """Add the export's job, or re-time it (``existing``)."""

    export: str
    timing: Schedule
    existing: bool


@dataclass(frozen=True)
class UnscheduleJob:
    """Remove the export's job (and any pending retry)."""

    export: str


@dataclass(frozen=True)
class StopRun:
    """Stop the export's run, if any, at its next batch boundary; ``rerun`` it once stopped."""

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
        schedule = export.schedule
        specs[name] = ExportSpec(
            enabled=export.enabled,
            timing=replace(schedule, name=None) if schedule is not None else None,
            definition=(
                replace(export, schedule=None),
                segment,
                source,
                config.connections.get(export.connection),
            ),
        )
    return specs


def reconcile(
    desired: Mapping[str, ExportSpec],
    applied: Mapping[str, ExportSpec],
    scheduled: Mapping[str, Schedule],
) -> tuple[Action, ...]:
    """The actions that turn (``applied``: the specs last acted on, ``scheduled``: the
    scheduler's job timings) into ``desired``; by export, a stop before a job change."""
    actions: list[Action] = []
    for name in sorted(set(desired) | set(applied) | set(scheduled)):
        wanted = desired.get(name)
        stop = _stop_for(name, wanted, applied.get(name))
        if stop is not None:
            actions.append(stop)
        current = scheduled.get(name)
        timing = None if wanted is None else wanted.job_timing
        if timing is not None:
            if current != timing:
                actions.append(ScheduleJob(name, timing, existing=current is not None))
        elif current is not None:
            actions.append(UnscheduleJob(export=name))
    return tuple(actions)


def _stop_for(name: str, wanted: ExportSpec | None, before: ExportSpec | None) -> StopRun | None:
    if before is None or not before.enabled:
        return None  # a disabled export's runs were stopped when it was disabled
    if wanted is None:
        return StopRun(export=name, reason="removed", rerun=False)
    if not wanted.enabled:
        return StopRun(export=name, reason="disabled", rerun=False)
    if wanted.definition != before.definition:
        return StopRun(export=name, reason="changed", rerun=True)
    return None


def changed_exports(
    desired: Mapping[str, ExportSpec], applied: Mapping[str, ExportSpec]
) -> dict[str, tuple[str, ...]]:
    """Names of added, removed and changed exports, for the reload log line."""
    common = set(desired) & set(applied)
    return {
        "added": tuple(sorted(set(desired) - set(applied))),
        "removed": tuple(sorted(set(applied) - set(desired))),
        "changed": tuple(sorted(name for name in common if desired[name] != applied[name])),
    }
