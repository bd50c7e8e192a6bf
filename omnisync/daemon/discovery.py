"""Finding a running daemon, and talking to its control endpoint.

At start the daemon writes ``<state_dir>/daemon.json`` (pid, bound control
address, config path, start time) and, unless ``daemon.control.token`` is
configured, a fresh random token to ``<state_dir>/control.token`` (mode
0600): whoever can read the state directory may trigger runs, nobody else.
It removes ``daemon.json`` on a clean exit; a file left by a killed daemon is
recognised by its dead pid and by an endpoint that does not answer.

:class:`DaemonClient` is what ``omnisync export run`` and ``omnisync
status`` use to reach it.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

INFO_FILENAME = "daemon.json"
TOKEN_FILENAME = "control.token"  # noqa: S105 - a file name, not a secret


class DaemonUnavailable(Exception):
    """No daemon answers for this state directory; the message says why."""


class TriggerRefused(Exception):
    """The daemon refused to start the run; ``status`` is the HTTP status (404, 409, 401).

    ``body`` is the answer's JSON (a 409 for a running export carries the ``run``).
    """

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

    @property
    def base_url(self) -> str:
        return f"http://{self.address}"


def write_info(state_dir: Path, info: DaemonInfo) -> Path:
    """Write ``daemon.json`` atomically (a reader never sees half a file)."""
    path = state_dir / INFO_FILENAME
    temporary = path.with_name(f".{INFO_FILENAME}.{os.getpid()}.tmp")
    temporary.write_text(
        json.dumps(
            {
                "pid": info.pid,
                "address": info.address,
                "config_path": info.config_path,
                "started_at": info.started_at,
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    os.replace(temporary, path)
    return path


def remove_info(state_dir: Path, *, pid: int) -> None:
    """Remove ``daemon.json`` if it is still this process's."""
    info = read_info(state_dir)
    if info is not None and info.pid == pid:
        (state_dir / INFO_FILENAME).unlink(missing_ok=True)


def read_info(state_dir: Path) -> DaemonInfo | None:
    """The recorded daemon of ``state_dir``, or ``None`` when there is no readable record."""
    try:
        data = json.loads((state_dir / INFO_FILENAME).read_text(encoding="utf-8"))
        return DaemonInfo(
            pid=int(data["pid"]),
            address=str(data["address"]),
            config_path=str(data.get("config_path", "")),
            started_at=str(data.get("started_at", "")),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def ensure_token(state_dir: Path) -> str:
    """A fresh random control token, written to ``control.token`` with mode 0600."""
    token = secrets.token_urlsafe(32)
    path = state_dir / TOKEN_FILENAME
    temporary = path.with_name(f".{TOKEN_FILENAME}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(descriptor, token.encode("ascii") + b"\n")
    finally:
        os.close(descriptor)
    os.replace(temporary, path)
    return token


def read_token(state_dir: Path) -> str | None:
    try:
        return (state_dir / TOKEN_FILENAME).read_text(encoding="ascii").strip() or None
    except OSError:
        return None


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

    def __init__(self, info: DaemonInfo, *, token: str | None, timeout: float = 10.0) -> None:
        self.info = info
        self._token = token
        self._http = httpx.Client(base_url=info.base_url, timeout=timeout, trust_env=False)

    def __repr__(self) -> str:
        return f"DaemonClient({self.info.address}, pid={self.info.pid})"

    def __enter__(self) -> DaemonClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @classmethod
    def find(cls, state_dir: Path, *, token: str | None = None) -> DaemonClient:
        """The daemon of ``state_dir`` if one is up and answering, else :class:`DaemonUnavailable`.

        ``token``: the configured control token, if any; else ``control.token`` is read.
        """
        info = read_info(state_dir)
        if info is None:
            raise DaemonUnavailable(f"no daemon recorded in {state_dir / INFO_FILENAME}")
        if not _alive(info.pid):
            raise DaemonUnavailable(f"the daemon recorded in {state_dir} (pid {info.pid}) is gone")
        client = cls(info, token=token or read_token(state_dir))
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
        response = self._http.get("/status")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def trigger(self, export: str) -> dict[str, Any]:
        """Start a run of ``export``; the run's JSON, or :class:`TriggerRefused`."""
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        response = self._http.post(f"/exports/{export}/run", headers=headers)
        if response.status_code != 202:
            try:
                body = response.json()
            except ValueError:
                body = {"error": response.text.strip()}
            if not isinstance(body, dict):
                body = {"error": str(body)}
            raise TriggerRefused(response.status_code, str(body.get("error", "")), body)
        result: dict[str, Any] = response.json()
        return result

    def run(self, run_id: str) -> dict[str, Any]:
        response = self._http.get(f"/runs/{run_id}")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def wait(
        self,
        run_id: str,
        *,
        poll_interval: float = 0.5,
        on_poll: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll ``/runs/<id>`` until the run has finished; its final JSON."""
        while True:
            run = self.run(run_id)
            if on_poll is not None:
                on_poll(run)
            if run.get("state") == "finished":
                return run
            time.sleep(poll_interval)

    def close(self) -> None:
        self._http.close()
