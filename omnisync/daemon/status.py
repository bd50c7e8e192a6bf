"""What ``/status`` shows of reloads and of an export's ``state``, and systemd's
``STATUS=`` line. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from omnisync.config.model import Config
from omnisync.masking import one_line


@dataclass(frozen=True)
class ReloadResult:
    """The outcome of a (re)load: ``problems`` are ``file:line:col: path: message`` lines;
    ``revision`` the one loaded or rejected (``None``: its files could not be read)."""

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


def export_state(
    *, enabled: bool, scheduled: bool, running: bool, retrying: bool, held: bool = False
) -> str:
    """``running``, ``disabled``, ``retrying`` (a retry of a failed scheduled run is pending),
    ``held`` (its last run was held by a change guard: nothing sent; ``held`` says why),
    ``idle`` (waiting for its next tick) or ``on-demand`` (no schedule)."""
    if running:
        return "running"
    if not enabled:
        return "disabled"
    if retrying:
        return "retrying"
    if held:
        return "held"
    return "idle" if scheduled else "on-demand"


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
    return one_line(line)  # the error quotes the config: an export name may hold a newline
