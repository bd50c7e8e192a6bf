"""The ``/status`` document, built from snapshots.

Pure: takes what the daemon knows at one moment and returns JSON-ready data.
An export's ``state`` is ``running`` (a run in flight), ``retrying`` (its
last scheduled run failed and a retry is pending), ``held`` (its last run
was held by a change guard: nothing sent; the next tick plans it again),
``disabled`` (``enabled: false``), ``on-demand`` (no schedule: runs only when
triggered) or ``idle`` (waiting for its next tick). ``held`` carries the
reason with its figures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from omnisync.config.model import Config
from omnisync.daemon.runs import RunRecord


@dataclass(frozen=True)
class ReloadResult:
    """The outcome of a (re)load: ``problems`` are ``file:line:col: path: message`` lines.

    ``revision`` is the revision loaded, or for a failed reload the one rejected
    (``None`` when its files could not be read at all).
    """

    ok: bool
    at: datetime
    source: str
    revision: str | None = None
    problems: tuple[str, ...] = ()

    @property
    def error(self) -> str | None:
        if self.ok:
            return None
        shown = "; ".join(self.problems[:5])
        more = len(self.problems) - 5
        return f"{shown}; and {more} more" if more > 0 else shown

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "at": self.at.isoformat(),
            "source": self.source,
            "revision": self.revision,
            "error": self.error,
            "problems": list(self.problems),
        }


@dataclass(frozen=True)
class ExportView:
    """What the daemon knows about one export right now."""

    running: RunRecord | None
    next_run: datetime | None
    retry_at: datetime | None
    retry_attempt: int
    last_run: Mapping[str, Any] | None


@dataclass(frozen=True)
class DaemonView:
    """The daemon's own facts, as ``/status`` shows them under ``daemon``."""

    pid: int
    version: str
    started_at: datetime
    config_path: str
    control_address: str
    state_dir: str


def export_state(
    *, enabled: bool, scheduled: bool, running: bool, retrying: bool, held: bool = False
) -> str:
    if running:
        return "running"
    if not enabled:
        return "disabled"
    if retrying:
        return "retrying"
    if held:
        return "held"
    return "idle" if scheduled else "on-demand"


def held_reason(last_run: Mapping[str, Any] | None) -> str | None:
    """Why the export's last run was held, or ``None`` when it was not."""
    if not last_run or last_run.get("status") != "held":
        return None
    return str(last_run.get("error") or "held by a change guard")


def build_status(
    *,
    daemon: DaemonView,
    config: Config,
    loaded_at: datetime,
    last_reload: ReloadResult,
    view: Callable[[str], ExportView],
    reloads: Sequence[ReloadResult] = (),
) -> dict[str, Any]:
    """The ``/status`` JSON document; ``reloads`` the latest reloads, oldest first."""
    exports: dict[str, Any] = {}
    for name in sorted(config.exports):
        export = config.exports[name]
        seen = view(name)
        scheduled = export.enabled and export.schedule is not None
        exports[name] = {
            "state": export_state(
                enabled=export.enabled,
                scheduled=scheduled,
                running=seen.running is not None,
                retrying=seen.retry_at is not None,
                held=held_reason(seen.last_run) is not None,
            ),
            "held": held_reason(seen.last_run),
            "enabled": export.enabled,
            "segment": export.segment,
            "connection": export.connection,
            "schedule": export.schedule.describe() if export.schedule is not None else None,
            "next_run": seen.next_run.isoformat() if seen.next_run else None,
            "retry": (
                {"attempt": seen.retry_attempt, "at": seen.retry_at.isoformat()}
                if seen.retry_at is not None
                else None
            ),
            "running": seen.running.to_json() if seen.running is not None else None,
            "last_run": dict(seen.last_run) if seen.last_run is not None else None,
        }
    return {
        "daemon": {**asdict(daemon), "started_at": daemon.started_at.isoformat()},
        "config": {
            "revision": config.revision,
            "files": list(config.files),
            "loaded_at": loaded_at.isoformat(),
        },
        "last_reload": last_reload.to_json(),
        "reloads": [reload.to_json() for reload in reloads],
        "exports": exports,
    }


def status_line(
    config: Config,
    *,
    running: Iterable[str],
    last_reload: ReloadResult,
    held: Iterable[str] = (),
) -> str:
    """systemd's one-line ``STATUS=``: exports, revision, runs in flight, a failed reload."""
    line = f"{len(config.exports)} exports, revision {config.revision}"
    names = sorted(running)
    if names:
        line += f"; running: {', '.join(names)}"
    if held:
        line += f"; HELD: {', '.join(sorted(held))}"
    if not last_reload.ok:
        rejected = f" OF {last_reload.revision}" if last_reload.revision else ""
        line += f"; LAST RELOAD{rejected} FAILED: {last_reload.error}"
    return line


def last_success(last_run: Mapping[str, Any] | None) -> datetime | None:
    """When ``last_run`` (history's latest run of an export, as JSON) ended, if it succeeded."""
    if not last_run or last_run.get("status") != "succeeded":
        return None
    return parse_time(last_run.get("ended_at"))


def parse_time(value: object) -> datetime | None:
    """An ISO 8601 / RFC 3339 timestamp (``Z`` accepted, naive read as UTC), or ``None``."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
