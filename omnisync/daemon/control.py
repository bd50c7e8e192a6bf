"""The control endpoint: a small HTTP server on loopback.

- ``GET /healthz`` — ``200 ok`` while the daemon's main loop is alive;
- ``GET /metrics`` — Prometheus text;
- ``GET /status`` — JSON: exports (state, last run, next run), config
  revision and files, last reload result;
- ``POST /exports/<name>/run`` — start a run now. Needs
  ``Authorization: Bearer <token>``. ``202`` with the run (``id``,
  ``export``, ...), ``404`` for an unknown export, ``409`` when the export is
  already running or disabled — the caller decides whether to wait and retry
  (the CLI does), so that no run is ever queued behind one nobody watches;
- ``GET /runs/<id>`` — one run as the daemon saw it.

Read-only endpoints need no token: they carry no secret and no personal
data, and Prometheus must scrape ``/metrics``. The server owns only HTTP; what
each endpoint answers comes from the injected :class:`ControlApi`.
"""

from __future__ import annotations

import hmac
import json
import logging
import socket
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

_log = logging.getLogger("omnisync.daemon.control")

#: Request bodies are never needed; anything larger than this is refused unread.
_MAX_BODY = 64 * 1024


@dataclass(frozen=True)
class TriggerAnswer:
    """The result of asking for a run: an HTTP status and a JSON body."""

    status: int
    body: dict[str, Any]


class ControlApi(Protocol):
    """What the endpoints answer. Every method is called from server threads."""

    def healthy(self) -> bool: ...

    def metrics_text(self) -> tuple[bytes, str]: ...

    def status(self) -> dict[str, Any]: ...

    def trigger(self, export: str) -> TriggerAnswer: ...

    def run(self, run_id: str) -> dict[str, Any] | None: ...


def parse_listen(address: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` for IPv6) to a (host, port) pair; raises ValueError."""
    host, colon, port_text = address.rpartition(":")
    if not colon or not host:
        raise ValueError(f"control address {address!r} is not host:port")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"control address {address!r} has no valid port")
    return host, int(port_text)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    api: ControlApi
    token: str


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "omnisync-control"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug(format, *args, extra={"event": "control_request"})

    def do_GET(self) -> None:
        path = self._path()
        api = self.server.api
        if path == "/healthz":
            healthy = api.healthy()
            self._send_text(
                HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE,
                "ok\n" if healthy else "main loop stalled\n",
            )
        elif path == "/metrics":
            body, content_type = api.metrics_text()
            self._send(HTTPStatus.OK, body, content_type)
        elif path == "/status":
            self._send_json(HTTPStatus.OK, api.status())
        elif path.startswith("/runs/") and path.count("/") == 2:
            run = api.run(path.removeprefix("/runs/"))
            if run is None:
                self._send_json(HTTPStatus.NOT_FOUND, {"error": "no such run"})
            else:
                self._send_json(HTTPStatus.OK, run)
        else:
            self._send_json(HTTPStatus.NOT_FOUND, {"error": f"no endpoint {path}"})

    def do_POST(self) -> None:
        path = self._path()
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            self._send_json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "body too large"})
            return
        if length:
            self.rfile.read(length)
        parts = path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "exports" or parts[2] != "run":
            self._send_json(HTTPStatus.NOT_FOUND, {"error": f"no endpoint {path}"})
            return
        if not self._authorised():
            self._send_json(
                HTTPStatus.UNAUTHORIZED,
                {"error": "missing or wrong bearer token (see <state_dir>/control.token)"},
                extra_headers={"WWW-Authenticate": "Bearer"},
            )
            return
        answer = self.server.api.trigger(parts[1])
        self._send_json(answer.status, answer.body)

    def _authorised(self) -> bool:
        header = self.headers.get("Authorization") or ""
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer":
            return False
        # Constant-time comparison: the token is the only thing guarding on-demand runs.
        return hmac.compare_digest(presented.strip().encode(), self.server.token.encode())

    def _path(self) -> str:
        return unquote(urlsplit(self.path).path)

    def _send_json(
        self, status: int, body: dict[str, Any], *, extra_headers: dict[str, str] | None = None
    ) -> None:
        payload = json.dumps(body, ensure_ascii=False, indent=2, default=str).encode() + b"\n"
        self._send(status, payload, "application/json", extra_headers=extra_headers)

    def _send_text(self, status: int, text: str) -> None:
        self._send(status, text.encode(), "text/plain; charset=utf-8")

    def _send(
        self,
        status: int,
        payload: bytes,
        content_type: str,
        *,
        extra_headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (extra_headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)


class ControlServer:
    """Serves :class:`ControlApi` on ``listen`` (``host:port``; port 0 picks a free one)."""

    def __init__(self, listen: str, api: ControlApi, *, token: str) -> None:
        host, port = parse_listen(listen)
        server_class = _Server6 if ":" in host else _Server
        self._server = server_class((host, port), _Handler)
        self._server.api = api
        self._server.token = token
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"ControlServer({self.address})"

    @property
    def address(self) -> str:
        """The bound address as ``host:port`` (the real port when 0 was asked for)."""
        host, port = self._server.server_address[:2]
        host_text = str(host)
        return f"[{host_text}]:{port}" if ":" in host_text else f"{host_text}:{port}"

    def set_token(self, token: str) -> None:
        """Use ``token`` from now on (a reload changed the configured one)."""
        self._server.token = token

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="control-server",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
