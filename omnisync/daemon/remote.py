"""Running an export through the daemon that is already running for its state directory.

``omnisync export run NAME`` calls :func:`run_through_daemon` first: when a
daemon is up for the config's state directory, the run is started by that
daemon (``POST /exports/NAME/run``), so it can never overlap a scheduled run,
and the command waits for it and reports it like a direct run — the summary
comes from the run's record in the shared history. When the export is
already running in the daemon, the command waits for that run to end and
then starts its own (the user asked for a run that starts now, not for one
that may have read the segment an hour ago). ``None`` means no daemon is up:
the caller runs the export directly — even when the configured control token
cannot be read, since no token is needed then.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from omnisync.config.model import Config
from omnisync.config.secrets import SecretUnavailable, resolve_secret
from omnisync.daemon.discovery import (
    DaemonClient,
    DaemonUnavailable,
    TriggerRefused,
    UntrustedStateFile,
)
from omnisync.engine.results import RunCounts, RunOutcome, RunResult
from omnisync.errors import OmnisyncError

#: How often a waiting command looks at the run it waits for.
POLL_SECONDS = 0.5


class RemoteRunFailed(OmnisyncError):
    """The daemon is up but would not run the export; the message says why."""


@dataclass(frozen=True)
class RemoteRun:
    """A run the daemon made for us: its ``/runs/<id>`` record (``status``, ``counts``,
    ``error``, ``history_id``, ``started_at``, ``ended_at``...)."""

    record: Mapping[str, Any]
    daemon_pid: int

    @property
    def status(self) -> str:
        return str(self.record.get("status") or "failed")

    @property
    def history_id(self) -> int | None:
        value = self.record.get("history_id")
        return value if isinstance(value, int) else None


def run_through_daemon(
    config: Config,
    export: str,
    *,
    environ: Mapping[str, str] | None = None,
    notice: Callable[[str], None] | None = None,
    poll_seconds: float = POLL_SECONDS,
) -> RemoteRun | None:
    """Have the daemon of ``config``'s state directory run ``export`` and wait for it.

    Returns ``None`` when no daemon is up (run directly instead). Raises
    :class:`RemoteRunFailed` when a daemon is up but refuses (a wrong token,
    a disabled or unknown export, the daemon stopping). ``notice`` receives
    one-line messages for the person waiting (e.g. printed to stderr).
    """
    tell = notice or (lambda message: None)
    state_dir = Path(config.daemon.state_dir)
    try:
        client = DaemonClient.find(state_dir)
    except UntrustedStateFile as error:
        raise RemoteRunFailed(str(error)) from None
    except DaemonUnavailable:
        return None  # no daemon: the caller runs directly, token or no token
    reference = config.daemon.control_token
    if reference is not None:
        try:
            client.use_token(resolve_secret(reference, environ=environ))
        except SecretUnavailable as error:
            client.close()
            raise RemoteRunFailed(
                f"the daemon (pid {client.info.pid}) runs this config's exports, but the"
                f" control token daemon.control.token cannot be read: {error}"
            ) from None
    with client:
        try:
            return _trigger_and_wait(client, export, tell=tell, poll_seconds=poll_seconds)
        except UntrustedStateFile as error:
            raise RemoteRunFailed(str(error)) from None
        except httpx.HTTPError as error:
            raise RemoteRunFailed(
                f"lost the daemon (pid {client.info.pid}) while waiting for the run: {error}"
            ) from None


def _trigger_and_wait(
    client: DaemonClient, export: str, *, tell: Callable[[str], None], poll_seconds: float
) -> RemoteRun:
    while True:
        try:
            started = client.trigger(export)
            break
        except TriggerRefused as refused:
            running = _running_run(refused)
            if refused.status != 409 or running is None:
                raise RemoteRunFailed(
                    f"the daemon (pid {client.info.pid}) refused to run {export}: {refused}"
                ) from None
            tell(
                f"export {export} is already running in the daemon (run {running['id']},"
                f" {running.get('trigger')}); waiting for it to end before starting yours"
            )
            client.wait(str(running["id"]), poll_interval=poll_seconds)
    tell(f"the daemon (pid {client.info.pid}) started run {started['id']} of {export}")
    record = client.wait(str(started["id"]), poll_interval=poll_seconds)
    return RemoteRun(record=record, daemon_pid=client.info.pid)


def _running_run(refused: TriggerRefused) -> Mapping[str, Any] | None:
    run = refused.body.get("run") if refused.body else None
    return run if isinstance(run, dict) and "id" in run else None


def as_run_result(run: RemoteRun, export: str) -> RunResult:
    """The daemon's run as the engine's :class:`RunResult`, for the same summary and exit code.

    A run the daemon could not start because another process held the
    export's lock (``skipped``) is a failed run with that reason.
    """
    record = run.record
    status: RunOutcome = "failed"
    if run.status == "succeeded":
        status = "succeeded"
    elif run.status == "partial":
        status = "partial"
    counts = record.get("counts") or {}
    return RunResult(
        export=export,
        status=status,
        counts=RunCounts.from_mapping({k: v for k, v in counts.items() if isinstance(v, int)}),
        run_id=run.history_id,
        trigger=str(record.get("trigger") or ""),
        config_revision=str(record.get("config_revision") or ""),
        started_at=str(record.get("started_at") or ""),
        ended_at=str(record.get("ended_at") or ""),
        error=record.get("error") if isinstance(record.get("error"), str) else None,
        stopped=record.get("stop_reason") is not None,
    )
