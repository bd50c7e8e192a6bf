"""Running an export through the daemon that is already running for its state directory.

``omnisync export run NAME`` calls :func:`run_through_daemon` first: when a
daemon is up for the config's state directory, the run is started by that
daemon (``POST /exports/NAME/run``), so it can never overlap a scheduled run,
and the command follows it like a direct run: ``/runs/<id>`` is polled and
its live phase and counts feed the same progress display, the run is named
by its history id (the one ``omnisync history`` shows; the daemon's own run
id is internal) once it is recorded, and the summary is the run's own
summary document, so text and JSON read as a direct run's. When the export is
already running in the daemon, the command waits for that run to end and
then starts its own (the user asked for a run that starts now, not for one
that may have read the segment an hour ago). ``None`` means no daemon is up:
the caller runs the export directly — even when the configured control token
cannot be read, since no token is needed then.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast, get_args

import httpx

from omnisync.config.model import Config
from omnisync.config.secrets import SecretUnavailable, resolve_secret
from omnisync.daemon.discovery import (
    DaemonClient,
    DaemonUnavailable,
    TriggerRefused,
    UntrustedStateFile,
)
from omnisync.engine.results import (
    FailureSample,
    Phase,
    RunCounts,
    RunOutcome,
    RunProgress,
    RunResult,
)
from omnisync.errors import OmnisyncError

#: How often a waiting command looks at the run it waits for (and redraws its progress).
POLL_SECONDS = 0.25


class RemoteRunFailed(OmnisyncError):
    """The daemon is up but would not run the export; the message says why."""


#: A run another process made for us: its ``/runs/<id>`` record (``status``,
#: ``counts``, ``error``, ``history_id``, the summary document as ``result``...).
RemoteRun = Mapping[str, Any]


def run_through_daemon(
    config: Config,
    export: str,
    *,
    environ: Mapping[str, str] | None = None,
    notice: Callable[[str], None] | None = None,
    progress: RunProgress | None = None,
    poll_seconds: float = POLL_SECONDS,
    release_by: str | None = None,
    full: bool = False,
) -> RemoteRun | None:
    """Have the daemon of ``config``'s state directory run ``export`` and wait for it.

    Returns ``None`` when no daemon is up (run directly instead). Raises
    :class:`RemoteRunFailed` when a daemon is up but refuses (a wrong token,
    a disabled or unknown export, an API key it cannot read, the daemon
    stopping). ``notice`` receives one-line messages for the person waiting
    (e.g. printed to stderr); ``progress`` the run's phases and counts.
    ``release_by`` (who) releases the run past the change guards, once;
    ``full`` re-sends and re-tags every member.
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
            client.use_token(resolve_secret(reference, environ=environ))
        except SecretUnavailable as error:
            client.close()
            raise RemoteRunFailed(
                f"{daemon} runs this config's exports, but the"
                f" control token daemon.control.token cannot be read: {error}"
            ) from None

    def recorded(history_id: object) -> None:
        tell(f"{daemon} is running export {export}: run {history_id}")

    with client:
        try:
            while True:
                try:
                    started = client.trigger(export, release_by=release_by, full=full)
                    break
                except TriggerRefused as refused:
                    running = _running_run(refused)
                    if refused.status != 409 or running is None:
                        raise RemoteRunFailed(
                            f"{daemon} refused to run {export}: {refused}"
                        ) from None
                    number = running.get("history_id")
                    tell(
                        f"export {export} is already running in the daemon"
                        f" ({f'run {number}, ' if number is not None else ''}"
                        f"{running.get('trigger')}); waiting for it to end before starting yours"
                    )
                    client.wait(
                        str(running["id"]),
                        poll_interval=poll_seconds,
                        on_poll=_Follower(progress, on_recorded=None),
                    )
            record = client.wait(
                str(started["id"]),
                poll_interval=poll_seconds,
                on_poll=_Follower(progress, on_recorded=recorded),
            )
        except UntrustedStateFile as error:
            raise RemoteRunFailed(str(error)) from None
        except httpx.HTTPError as error:
            raise RemoteRunFailed(f"lost {daemon} while waiting for the run: {error}") from None
    if record.get("status") == "refused":
        raise RemoteRunFailed(f"{daemon} did not run {export}: {record.get('error')}")
    return record


class _Follower:
    """Turns successive ``/runs/<id>`` records into :class:`RunProgress` calls, and says
    the run's history id once it is known."""

    def __init__(
        self, progress: RunProgress | None, *, on_recorded: Callable[[object], None] | None
    ) -> None:
        self._progress = progress
        self._on_recorded = on_recorded
        self._phase: object = None
        self._counts: object = None
        self._told = False

    def __call__(self, record: dict[str, Any]) -> None:
        history_id = record.get("history_id")
        if history_id is not None and not self._told and self._on_recorded is not None:
            self._told = True
            self._on_recorded(history_id)
        if self._progress is None:
            return
        phase, counts = record.get("phase"), record.get("counts")
        if phase not in get_args(Phase) or (phase, counts) == (self._phase, self._counts):
            return
        as_counts = _counts(counts)
        if phase != self._phase:
            self._progress.phase_started(cast(Phase, phase), as_counts)
        else:
            self._progress.counts_updated(as_counts)
        self._phase, self._counts = phase, counts


def _running_run(refused: TriggerRefused) -> Mapping[str, Any] | None:
    run = refused.body.get("run") if refused.body else None
    return run if isinstance(run, dict) and "id" in run else None


def as_run_result(run: RemoteRun, export: str) -> RunResult:
    """The daemon's run as the engine's :class:`RunResult`, for the same summary and exit code.

    Read from the run's summary document (``result``) when the daemon sent
    one, so the summary is a direct run's; otherwise (a run the daemon could
    not start because another process held the export's lock: ``skipped``)
    from its record, as a failed run with that reason.
    """
    document = run.get("result")
    if not isinstance(document, dict):
        # The record's own fields, under the names the summary document gives them.
        document = {
            **run,
            "run_id": _number(run.get("history_id")),
            "stopped": run.get("stop_reason") is not None,
        }
    return result_from_document(document, export)


def result_from_document(document: Mapping[str, Any], export: str) -> RunResult:
    """The :class:`RunResult` whose ``--format json`` document (``result_as_dict``) this is.

    Tolerant: a missing or malformed part reads as empty.
    """
    reasons = [item for item in _list(document.get("invalid_reasons")) if "reason" in item]
    return RunResult(
        export=str(document.get("export") or export),
        status=_outcome(document.get("status")),
        counts=_counts(document.get("counts")),
        run_id=_number(document.get("run_id")),
        trigger=str(document.get("trigger") or ""),
        config_revision=str(document.get("config_revision") or ""),
        started_at=str(document.get("started_at") or ""),
        ended_at=str(document.get("ended_at") or ""),
        error=_text(document.get("error")),
        stopped=document.get("stopped") is True,
        invalid_reasons={str(item["reason"]): _count(item.get("count")) for item in reasons},
        invalid_samples={
            str(item["reason"]): tuple(str(example) for example in item.get("examples") or ())
            for item in reasons
        },
        warnings={
            str(item["warning"]): _count(item.get("count"))
            for item in _list(document.get("warnings"))
            if "warning" in item
        },
        duplicates_sample=tuple(str(email) for email in document.get("duplicates_sample") or ()),
        failure_samples=tuple(
            FailureSample(subject=str(item.get("subject", "")), reason=str(item.get("reason", "")))
            for item in _list(document.get("failure_samples"))
        ),
    )


def _outcome(status: object) -> RunOutcome:
    """The run's own outcome; anything else (``skipped``, ``interrupted``) reads as failed."""
    return cast(RunOutcome, status) if status in get_args(RunOutcome) else "failed"


def _counts(values: object) -> RunCounts:
    if not isinstance(values, dict):
        return RunCounts()
    return RunCounts.from_mapping(
        {name: value for name, value in values.items() if _number(value) is not None}
    )


def _list(value: object) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _number(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _count(value: object) -> int:
    return _number(value) or 0


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
