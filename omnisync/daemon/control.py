"""The control endpoint: a small HTTP server, on loopback by default.

- ``GET /healthz``: ``200 ok`` while the main loop is alive (and a shared
  store answers), else 503;
- ``GET /metrics``: Prometheus text; ``GET /status``: JSON;
- ``POST /exports/<name>/run[?release_by=WHO][&full=1]``, with
  ``Authorization: Bearer <token>``: ``202`` with the run, ``404`` for an
  unknown export, ``409`` when it is running or disabled (never queued: the
  caller decides whether to wait), ``422`` when it cannot run as configured
  (its API key cannot be read: nothing started or recorded);
- ``GET /runs/<id>``: one run, live while it runs, its summary once finished.

Read-only endpoints need no token: they carry no secret and no personal data.
Every endpoint refuses a ``Host`` that is not one of the listen address's own
names (``421``): no DNS rebinding from a browser on this machine. What each
endpoint answers comes from the injected :class:`ControlApi`.

HTTP is waitress's, with a connection budget (:mod:`omnisync.daemon.budget`).
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import parse_qsl

from waitress import wasyncore  # type: ignore[import-untyped]
from waitress.adjustments import Adjustments  # type: ignore[import-untyped]

from omnisync.config.rules import split_listen
from omnisync.daemon.budget import WORKER_THREADS, BudgetServer, bind, ip_or_none

_log = logging.getLogger("omnisync.daemon.control")

#: Request bodies are never needed; anything larger is answered 413 unread.
_MAX_BODY = 64 * 1024
#: Request line and headers; a larger head is answered 431.
_MAX_HEAD = 16 * 1024


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

    def trigger(
        self, export: str, *, release_by: str | None = None, full: bool = False
    ) -> TriggerAnswer: ...

    def run(self, run_id: str) -> dict[str, Any] | None: ...

    def token_hint(self) -> str:
        """Where a caller refused for its token finds the right one (never the token)."""


def _normal_host(host: str) -> str:
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host


def _host_of(header: str) -> str:
    """The host part of a ``Host`` header (``name``, ``name:port``, ``[v6]:port``)."""
    header = header.strip()
    if header.startswith("["):
        return _normal_host(header[: header.find("]") + 1] if "]" in header else header)
    name, colon, port = header.rpartition(":")
    if colon and name and ":" not in name and (port.isdigit() or not port):
        return _normal_host(name)
    return _normal_host(header)


class HostNames:
    """The names a request's ``Host`` header may carry for a listen host: the loopback ones
    and the listen host; beyond loopback also this machine's host name, and on a
    wildcard address any IP literal (a literal cannot be rebound by DNS, a name can).
    The port is not compared (an SSH tunnel forwards another one)."""

    def __init__(self, listen_host: str) -> None:
        own = _normal_host(listen_host)
        address = ip_or_none(own)
        self._names = {"localhost", own}
        self._any_address = address is not None and address.is_unspecified
        if address is None or not address.is_loopback:
            self._names.add(_normal_host(socket.gethostname()))

    def allows(self, header: str | None) -> bool:
        if header is None:
            return True  # HTTP/1.0 without Host: never a browser
        host = _host_of(header)
        if host in self._names:
            return True
        address = ip_or_none(host)
        if address is None:
            return False
        return address.is_loopback or self._any_address or str(address) in self._names


#: An answer: the status, a JSON body or bytes, and headers (bytes name their Content-Type).
Answer = tuple[int, dict[str, Any] | bytes, list[tuple[str, str]]]
_TEXT = ("Content-Type", "text/plain; charset=utf-8")


class ControlServer:
    """The WSGI application serving :class:`ControlApi` on ``listen`` (``host:port``; port 0
    picks a free one), from construction until :meth:`stop`."""

    def __init__(self, listen: str, api: ControlApi, *, token: str) -> None:
        host, port = split_listen(listen)
        self._api = api
        self._token = token
        self._hosts = HostNames(host)
        sock = bind(host, port)
        adjustments = Adjustments(
            sockets=[sock],
            threads=WORKER_THREADS,
            ident="omnisync-control",
            backlog=1024,
            max_request_header_size=_MAX_HEAD,
            max_request_body_size=_MAX_BODY,
            expose_tracebacks=False,
            log_socket_errors=False,
        )
        self._map: dict[int, Any] = {}
        try:
            self._server = BudgetServer(
                self,
                map=self._map,
                _sock=sock,
                adj=adjustments,
                bind_socket=False,
                sockinfo=(sock.family, sock.type, sock.proto, sock.getsockname()),
            )
        except BaseException:
            sock.close()
            raise
        bound, port = str(sock.getsockname()[0]), int(sock.getsockname()[1])
        #: The bound address as ``host:port`` (the real port when 0 was asked for).
        self.address = f"[{bound}]:{port}" if ":" in bound else f"{bound}:{port}"
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="control-server", daemon=True)
        self._thread.start()

    def set_token(self, token: str) -> None:
        """Use ``token`` from now on (a reload changed the configured one)."""
        self._token = token

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        status, body, headers = self._answer(environ)
        if isinstance(body, dict):
            body = json.dumps(body, ensure_ascii=False, indent=2, default=str).encode() + b"\n"
            headers = [("Content-Type", "application/json"), *headers]
        start_response(
            f"{status} {HTTPStatus(status).phrase}",
            [*headers, ("Content-Length", str(len(body))), ("Cache-Control", "no-store")],
        )
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]

    def _answer(self, environ: dict[str, Any]) -> Answer:
        if not self._hosts.allows(environ.get("HTTP_HOST")):
            _log.warning(
                "control request refused: foreign Host header %r",
                environ.get("HTTP_HOST"),
                extra={"event": "control_host_refused"},
            )
            return 421, {"error": "this Host is not one of the control endpoint's names"}, []
        # WSGI carries the path as latin-1 text of the decoded bytes.
        path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace")
        method = environ.get("REQUEST_METHOD", "GET")
        _log.debug("%s %s", method, path, extra={"event": "control_request"})
        if method in {"GET", "HEAD"}:
            return self._get(path)
        if method == "POST":
            return self._post(path, environ)
        return 405, {"error": f"method {method} not allowed"}, [("Allow", "GET, HEAD, POST")]

    def _get(self, path: str) -> Answer:
        if path == "/healthz":
            if self._api.healthy():
                return 200, b"ok\n", [_TEXT]
            unhealthy = b"unhealthy: main loop stalled, or shared state store unreachable\n"
            return 503, unhealthy, [_TEXT]
        if path == "/metrics":
            body, content_type = self._api.metrics_text()
            return 200, body, [("Content-Type", content_type)]
        if path == "/status":
            return 200, self._api.status(), []
        if path.startswith("/runs/") and path.count("/") == 2:
            run = self._api.run(path.removeprefix("/runs/"))
            return (200, run, []) if run is not None else (404, {"error": "no such run"}, [])
        return 404, {"error": f"no endpoint {path}"}, []

    def _post(self, path: str, environ: dict[str, Any]) -> Answer:
        parts = path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "exports" or parts[2] != "run":
            return 404, {"error": f"no endpoint {path}"}, []
        if not self._authorised(environ.get("HTTP_AUTHORIZATION") or ""):
            error = f"missing or wrong bearer token ({self._api.token_hint()})"
            return 401, {"error": error}, [("WWW-Authenticate", "Bearer")]
        query = dict(parse_qsl(environ.get("QUERY_STRING") or ""))
        answer = self._api.trigger(
            parts[1],
            release_by=query.get("release_by") or None,
            full=query.get("full") in {"1", "true"},
        )
        return answer.status, answer.body, []

    def _authorised(self, header: str) -> bool:
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer":
            return False
        # Constant-time comparison: the token is the only thing guarding on-demand runs.
        return hmac.compare_digest(presented.strip().encode(), self._token.encode())

    def _serve(self) -> None:
        try:
            while not self._stopping.is_set():
                wasyncore.poll2(1.0, self._map)
        finally:
            self._server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
            wasyncore.close_all(self._map)

    def stop(self) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._server.pull_trigger()
        self._thread.join(timeout=10)
