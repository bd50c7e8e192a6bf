"""Finding a running daemon, and talking to its control endpoint.

Once it holds its state directory (:mod:`omnisync.daemon.claim`), the daemon writes
``<state_dir>/daemon.json`` (pid, control address, config path, start time) and, unless
``daemon.control.token`` is configured, a fresh random token to ``control.token``, both
0600 whatever the umask; it removes ``daemon.json`` on a clean exit. The CLI sends its
bearer token to the address ``daemon.json`` names, so it trusts these files only when
they are regular files owned by the current user (or, for root, by the owner of the
private directory they are in: systemd's ``DynamicUser=``) and not writable by group or
others: else :class:`UntrustedStateFile`.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import secrets
import stat
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import httpx

from omnisync.errors import OmnisyncError
from omnisync.state.locks import PRIVATE_FILE_MODE

_log = logging.getLogger("omnisync.daemon")

INFO_FILENAME = "daemon.json"
TOKEN_FILENAME = "control.token"  # noqa: S105 - a file name, not a secret
#: How often a command waiting for a run (the daemon's, or a replica's) looks at it.
POLL_SECONDS = 0.25


class DaemonUnavailable(OmnisyncError):
    """No daemon answers for this state directory; the message says why."""


class UntrustedStateFile(DaemonUnavailable):
    """``daemon.json`` or ``control.token`` could have been written by someone else."""


class TriggerRefused(OmnisyncError):
    """The daemon refused to start the run: ``status`` is the HTTP status, ``body`` the
    answer's JSON (a 409 for a running export carries the ``run``)."""

    def __init__(self, status: int, message: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body or {}


@dataclass(frozen=True)
class DaemonInfo:
    """What a running daemon recorded about itself."""

    pid: int
    address: str
    config_path: str
    started_at: str


def _write_private(path: Path, data: bytes) -> None:
    """Write ``path`` atomically with mode 0600 (a reader never sees half a file)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        with os.fdopen(os.open(temporary, flags, PRIVATE_FILE_MODE), "wb") as file:
            os.fchmod(file.fileno(), PRIVATE_FILE_MODE)  # the umask may have taken bits away
            file.write(data)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    os.replace(temporary, path)


def write_info(state_dir: Path, info: DaemonInfo) -> None:
    """Write ``daemon.json`` atomically, mode 0600."""
    text = json.dumps(asdict(info), indent=2)
    _write_private(state_dir / INFO_FILENAME, (text + "\n").encode("utf-8"))


def remove_info(state_dir: Path, *, pid: int) -> None:
    """Remove ``daemon.json`` if it is still this process's."""
    info = read_info(state_dir)
    if info is not None and info.pid == pid:
        (state_dir / INFO_FILENAME).unlink(missing_ok=True)


def _trust_problem(path: Path, status: os.stat_result) -> str | None:
    """Why ``path`` (whose ``fstat`` is ``status``) may not be trusted, or ``None``."""
    if not stat.S_ISREG(status.st_mode):
        return f"{path} is not a regular file"
    writable = [who for who, bit in (("group", 0o020), ("others", 0o002)) if status.st_mode & bit]
    if writable:
        return (
            f"{path} is writable by {' and '.join(writable)}"
            f" (mode {stat.S_IMODE(status.st_mode):04o}), so anyone could have written it;"
            " not trusting it (the daemon writes it 0600: remove it and restart the daemon)"
        )
    me = os.geteuid()
    if status.st_uid == me:
        return None
    if me == 0:
        # root reads a service's files: trusted when they belong to the owner of the
        # private directory they are in (systemd's DynamicUser owns its StateDirectory).
        directory = os.stat(path.parent)
        if directory.st_uid == status.st_uid and not directory.st_mode & 0o022:
            return None
    return (
        f"{path} belongs to user id {status.st_uid}, not to you (user id {me});"
        " not trusting it (run the command as the daemon's user)"
    )


def _read_trusted(path: Path) -> str | None:
    """The text of ``path`` when it exists and may be trusted; ``None`` when it cannot be
    read, :class:`UntrustedStateFile` when someone else could have written it."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise UntrustedStateFile(
                f"{path} is a symbolic link; not trusting it (remove it and restart the daemon)"
            ) from None
        return None
    with os.fdopen(descriptor, "rb") as file:
        problem = _trust_problem(path, os.fstat(file.fileno()))
        if problem is not None:
            raise UntrustedStateFile(problem)
        try:
            return file.read(64 * 1024).decode("utf-8")
        except (OSError, UnicodeDecodeError):
            return None


def read_info(state_dir: Path) -> DaemonInfo | None:
    """:func:`find_info`, ``None`` for an untrusted record."""
    try:
        return find_info(state_dir)
    except UntrustedStateFile:
        return None


def find_info(state_dir: Path) -> DaemonInfo | None:
    """The recorded daemon of ``state_dir``; ``None`` without a readable record,
    :class:`UntrustedStateFile` when someone else could have written it."""
    text = _read_trusted(state_dir / INFO_FILENAME)
    if text is None:
        return None
    try:
        data = json.loads(text)
        return DaemonInfo(
            pid=int(data["pid"]),
            address=str(data["address"]),
            config_path=str(data.get("config_path", "")),
            started_at=str(data.get("started_at", "")),
        )
    except (ValueError, KeyError, TypeError):
        return None


def ensure_token(state_dir: Path) -> str:
    """A fresh random control token, written to ``control.token`` with mode 0600."""
    token = secrets.token_urlsafe(32)
    _write_private(state_dir / TOKEN_FILENAME, token.encode("ascii") + b"\n")
    return token


def forget_token(state_dir: Path) -> None:
    """Remove a generated ``control.token`` (a token is configured now)."""
    (state_dir / TOKEN_FILENAME).unlink(missing_ok=True)


def follow_token(
    state_dir: Path,
    *,
    configured: str | None,
    had_configured: bool,
    set_token: Callable[[str], None],
) -> None:
    """After a reload, give the control endpoint (``set_token``) the ``configured`` token;
    when the config no longer sets one (``had_configured``), a generated ``control.token``
    replaces it, as at a start without one.

    Never raises: a state directory where ``control.token`` cannot be written or
    removed is logged as an error (the file and the reason, never a token), and the
    reload goes on, because a daemon never dies, nor keeps a stale config, for it.
    """
    token_file = state_dir / TOKEN_FILENAME
    if configured:
        set_token(configured)
        try:
            forget_token(state_dir)  # no stale generated file to mislead anyone
        except OSError as error:
            _log.error(
                "cannot remove %s: %s; the control endpoint takes the configured"
                " daemon.control.token, and the old generated token in that file no"
                " longer works: callers need the configured one",
                token_file,
                error.strerror or error,
                extra={"event": "control_token_remove_failed", "path": str(token_file)},
            )
    elif had_configured:
        try:
            generated = ensure_token(state_dir)
        except OSError as error:
            # Taking a token nobody can read would lock every caller out: the
            # endpoint keeps the one it had until a reload or restart can write one.
            _log.error(
                "cannot write %s: %s; the control endpoint keeps the control token it"
                " had (the daemon.control.token this config no longer sets): callers"
                " that read %s cannot authenticate, callers with the old token still"
                " can; make the file writable, then reload or restart",
                token_file,
                error.strerror or error,
                TOKEN_FILENAME,
                extra={"event": "control_token_write_failed", "path": str(token_file)},
            )
        else:
            set_token(generated)


def read_token(state_dir: Path) -> str | None:
    """The generated token of ``state_dir``'s daemon, ``None`` without one;
    :class:`UntrustedStateFile` when someone else could have written it."""
    text = _read_trusted(state_dir / TOKEN_FILENAME)
    return text.strip() or None if text is not None else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's (systemd's DynamicUser)
    return True


class DaemonClient:
    """HTTP client for one daemon's control endpoint."""

    def __init__(self, info: DaemonInfo, *, state_dir: Path) -> None:
        self.info = info
        self._token: str | None = None
        self._state_dir = state_dir
        self._http = httpx.Client(base_url=f"http://{info.address}", timeout=10.0, trust_env=False)

    def __enter__(self) -> DaemonClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @classmethod
    def find(cls, state_dir: Path) -> DaemonClient:
        """The daemon of ``state_dir`` if one is up and answering, else
        :class:`DaemonUnavailable` (:class:`UntrustedStateFile` for a ``daemon.json``
        someone else could have written: nothing is sent to the address it names)."""
        info = find_info(state_dir)
        if info is None:
            raise DaemonUnavailable(f"no daemon recorded in {state_dir / INFO_FILENAME}")
        if not _alive(info.pid):
            raise DaemonUnavailable(f"the daemon recorded in {state_dir} (pid {info.pid}) is gone")
        client = cls(info, state_dir=state_dir)
        try:
            response = client._http.get("/healthz", timeout=3.0)
        except httpx.HTTPError as error:
            client.close()
            raise DaemonUnavailable(
                f"the daemon (pid {info.pid}) does not answer on {info.address}: {error}"
            ) from None
        if response.status_code != 200:
            client.close()
            raise DaemonUnavailable(f"the daemon (pid {info.pid}) is not healthy")
        return client

    def status(self) -> dict[str, Any]:
        return self._get("/status")

    def use_token(self, token: str) -> None:
        """Authenticate with ``token`` (the configured one) rather than ``control.token``."""
        self._token = token

    def trigger(
        self, export: str, *, release_by: str | None = None, full: bool = False
    ) -> dict[str, Any]:
        """Start a run of ``export`` (``release_by``: past the change guards, once; ``full``:
        a full resync); the run's JSON, or :class:`TriggerRefused`. Without a configured
        token ``control.token`` is read now (maybe :class:`UntrustedStateFile`)."""
        if self._token is None:
            self._token = read_token(self._state_dir)
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        params = {"release_by": release_by} if release_by is not None else {}
        if full:
            params["full"] = "1"
        response = self._http.post(f"/exports/{export}/run", headers=headers, params=params)
        if response.status_code != 202:
            try:
                body = response.json()
            except ValueError:
                body = {"error": response.text.strip()}
            if not isinstance(body, dict):
                body = {"error": str(body)}
            raise TriggerRefused(response.status_code, str(body.get("error", "")), body)
        return cast(dict[str, Any], response.json())

    def wait(
        self, run_id: str, *, on_poll: Callable[[dict[str, Any]], None] | None = None
    ) -> dict[str, Any]:
        """Poll ``/runs/<id>`` (and redraw its progress) until the run has finished; its
        final JSON."""
        while True:
            run = self._get(f"/runs/{run_id}")
            if on_poll is not None:
                on_poll(run)
            if run.get("state") == "finished":
                return run
            time.sleep(POLL_SECONDS)

    def _get(self, path: str) -> dict[str, Any]:
        response = self._http.get(path)
        response.raise_for_status()
        return cast(dict[str, Any], response.json())

    def close(self) -> None:
        self._http.close()
