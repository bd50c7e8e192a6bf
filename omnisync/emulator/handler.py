"""The emulator's HTTP shell: HTTP/1.1 with keep-alive on the standard library's ``http.server``.

Every answer carries a ``Content-Length``. A body it will not read (chunked:
411; a ``Content-Length`` that is not a number: 400; over the limit: 413) is
answered and the connection closed.

Order of checks for ``/api/...`` (each step answers and stops when it fails):
read the body -> ``Authorization`` (401) -> ``Omnisend-Version`` (400 when
missing, 410 when not 2026-03-15) -> a forced 429 burst, then the rate
limits (429, not processed, not counted) -> injected faults (500, 503,
dropped connection) -> unknown path 404 / wrong method 405 -> body size (413
for a batch over ``max_batch_bytes``) -> a body's ``Content-Type`` and JSON
(400: :func:`parse_body`) -> the operation -> injected latency -> answer.
Every API request lands in the request log before its answer is written. A
dropped connection is closed without a word. ``/_emulator/...`` is the
inspection API (loopback clients only). A bug answers a 500 problem document
and is logged.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import socketserver
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from omnisync.emulator.api import TAGS_PATH, ApiRequest, ApiResponse, route
from omnisync.emulator.faults import Draw
from omnisync.emulator.state import API_VERSION, EmulatorState
from omnisync.emulator.validation import ApiProblem, FieldError, Headers

logger = logging.getLogger("omnisync.emulator")

#: Any body over this many bytes (or ``max_batch_bytes`` if larger) answers 413 unread.
MAX_BODY_BYTES = 4_000_000
#: Idle keep-alive connections (and stalled reads or writes) give up after this many seconds.
IDLE_SECONDS = 120
#: ``(method, path under /_emulator, query, body)`` -> ``(status, JSON body)``
Inspect = Callable[[str, str, dict[str, str], bytes], tuple[int, Any]]
#: What an injected error fault answers.
_INJECTED_ERRORS: dict[Draw, tuple[int, str]] = {
    "error_500": (500, "Internal server error (injected fault)"),
    "error_503": (503, "Service temporarily unavailable (injected fault)"),
}


class EmulatorHTTPServer(ThreadingHTTPServer):
    """The emulator's server over the shared :class:`EmulatorState`; tracks its connections."""

    request_queue_size = 64

    def __init__(self, address: tuple[str, int], state: EmulatorState, inspect: Inspect) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.state = state
        self.inspect = inspect
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, EmulatorRequestHandler)
        host = self.server_name  # the bound address, as server_bind set it
        shown = f"[{host}]" if ":" in host else host
        self.base_url = f"http://{shown}:{self.server_port}/api"

    def server_bind(self) -> None:
        """Bind without ``HTTPServer``'s reverse DNS look-up: ``server_name`` is the address."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def finish_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        try:
            super().finish_request(request, client_address)
        finally:
            with self._connections_lock:
                self._connections.discard(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A connection that failed outside a request (a reset): no traceback on stderr.
        logger.debug("emulator connection closed abruptly", exc_info=True)

    def close_connections(self) -> None:
        """Shut every open connection down (their threads then end)."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the peer
                connection.shutdown(socket.SHUT_RDWR)


class EmulatorRequestHandler(BaseHTTPRequestHandler):
    """One connection: the standard library reads each request, :meth:`_serve` answers it."""

    server: EmulatorHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "omnisend-emulator"
    sys_version = ""
    timeout = IDLE_SECONDS
    # A head and its body leave in two writes: without Nagle, the second does not
    # wait for the client to acknowledge the first.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Refuse a request (a bad head, a body not read, a bug): a problem document, with a
        status line even for a request line not understood (the standard library would answer
        as HTTP/0.9 did), and the connection closed."""
        self.close_connection = True
        self.request_version = self.protocol_version
        detail = message or HTTPStatus(code).phrase
        with contextlib.suppress(OSError):
            self._send(code, ApiProblem(code, detail).document())

    def _send(self, status: int, body: Any, headers: Headers = ()) -> None:
        """Write one answer (raises ``OSError`` if the client left)."""
        payload = b"" if body is None else orjson.dumps(body)
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        if payload:
            self.send_header("Content-Type", "application/json")
        for name, value in headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if payload and self.command != "HEAD":
            self.wfile.write(payload)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # requests are in the emulator's request log

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("emulator http: " + format, *args)

    def _serve(self) -> None:
        # When the request's head had arrived (its body may follow later).
        self._received = self.server.state.clock.now()
        try:
            raw = self._read_body()
            if raw is not None:
                self._route(raw)
        except OSError:
            # The client went away (a timeout, a reset): nothing to tell it.
            self.close_connection = True
        except Exception:
            # A bug answers 500 and is logged; the caller never sees a traceback.
            logger.exception("emulator request failed", extra={"event": "emulator_error"})
            self.send_error(500, "Internal server error")

    def _read_body(self) -> bytes | None:
        """The request's body, or ``None`` when it was refused or the client left mid-body."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.send_error(411, "Send the body with a Content-Length header")
            return None
        length_text = (self.headers.get("Content-Length") or "").strip()
        if length_text and not (length_text.isascii() and length_text.isdigit()):
            self.send_error(400, "Content-Length is not a number")
            return None
        length = int(length_text or 0)
        limit = max(MAX_BODY_BYTES, self.server.state.settings.max_batch_bytes)
        if length > limit:
            # Not read at all: answer and close rather than swallow megabytes.
            self.send_error(413, f"The body is larger than {limit} bytes")
            return None
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            self.close_connection = True
            return None
        return body

    def _route(self, raw: bytes) -> None:
        target = self.path
        if target.startswith("//"):
            target = "/" + target.lstrip("/")
        split = urlsplit(target)
        path, query = split.path, dict(parse_qsl(split.query, keep_blank_values=True))
        if path == "/_emulator" or path.startswith("/_emulator/"):
            # Even with --allow-remote, only this machine may inspect and steer the emulator.
            if not is_loopback_host(str(self.client_address[0])):
                self._send(403, {"error": "the inspection API answers loopback clients only"})
                return
            self._send(*self.server.inspect(self.command, path[len("/_emulator") :], query, raw))
        elif path == "/api" or path.startswith("/api/"):
            self._api(path, query, raw)
        else:
            self._answer(404, ApiProblem(404, "Unknown path; the API lives under /api").document())

    def _answer(self, status: int, body: Any, headers: Headers = ()) -> None:
        """Send an API answer after the injected latency (modelled seconds)."""
        delay = self.server.state.injector.faults.latency
        if delay > 0:
            self.server.state.clock.sleep(delay)
        self._send(status, body, headers)

    def _api(self, path: str, query: dict[str, str], raw: bytes) -> None:
        state = self.server.state
        method = self.command
        api_path = path[len("/api") :] or "/"
        found = route(api_path)
        endpoint = f"{method} {found[0]}" if found is not None else "unknown"
        # Which key asked is logged too (several keys may reach one brand).
        brand, key = state.authenticate(self.headers.get("Authorization")) or (None, None)
        dropped = False  # the faults read once: set_faults may land meanwhile
        try:
            if brand is None:
                raise ApiProblem(401, "The API key is missing or not valid")
            version = self.headers.get("Omnisend-Version")
            if version is None:
                required = FieldError("Omnisend-Version", f"Send {API_VERSION}", "required")
                raise ApiProblem(400, "The Omnisend-Version header is required", errors=(required,))
            if version != API_VERSION:
                raise ApiProblem(410, f"API version {version[:40]!r} is retired or unknown")
            retry_after = state.injector.take_forced_429(endpoint)
            if retry_after is None and state.settings.rate_limits:
                retry_after = brand.admit(is_tags=api_path == TAGS_PATH)
            if retry_after is not None:
                raise ApiProblem(429, "Rate limit exceeded", retry_after=retry_after)
            draw = state.injector.draw(endpoint)
            if draw in _INJECTED_ERRORS:
                raise ApiProblem(*_INJECTED_ERRORS[draw])
            dropped = draw == "drop" and not state.injector.faults.drop_after_processing
            if dropped:
                response = ApiResponse(0)  # dropped before it is processed: never answered
            else:
                if found is None:
                    raise ApiProblem(404, f"No such endpoint: {method} {api_path}")
                _, operations, parameter = found
                if method not in operations:
                    allowed = ", ".join(operations)
                    detail = f"{method} is not allowed here; use {allowed}"
                    raise ApiProblem(405, detail, headers=(("Allow", allowed),))
                limit = state.settings.max_batch_bytes
                if endpoint == "POST /batches" and len(raw) > limit:
                    raise ApiProblem(413, f"A batch body must be at most {limit} bytes")
                body = parse_body(raw, self.headers.get_content_type())
                request = ApiRequest(query, body, self.server.base_url, parameter)
                # Processed from here: a drop after processing loses only the answer (a 404,
                # 405, 413 or unreadable body was never processed: answered even then).
                dropped = draw == "drop"
                response = operations[method](state, brand, request)
        except ApiProblem as error:
            response = ApiResponse(error.status, error.document(), error.emails, error.headers)
        except Exception:
            logger.exception("emulator operation failed", extra={"event": "emulator_error"})
            response = ApiResponse(500, ApiProblem(500, "Internal server error").document())
        # Logged before answering, so a client that got its answer finds the record.
        state.record(
            method=method,
            path=path,
            endpoint=endpoint,
            status=None if dropped else response.status,
            brand=brand,
            emails=response.emails,
            key=key,
            received=self._received,
        )
        if dropped:
            self.close_connection = True  # and nothing written: the client hears nothing
        else:
            self._answer(response.status, response.body, response.headers)


def parse_body(raw: bytes, media_type: str) -> Any:
    """The JSON body (``None`` if empty), or a 400: for a body whose media type (parameters
    aside; ``text/plain`` when missing) is not ``application/json`` (the OpenAPI documents
    list no 415), that is not strictly RFC 8259 JSON (no NaN, valid UTF-8) or that is nested
    deeper than the emulator can write back."""
    if not raw:
        return None
    if media_type != "application/json":
        wrong = FieldError("Content-Type", "Send application/json")
        raise ApiProblem(400, "The Content-Type header must be application/json", errors=(wrong,))
    try:
        body = orjson.loads(raw)
        # orjson reads 1024 levels but writes 255, and a batch item is written back one
        # level deeper (GET /batches/{id}/items): taken, it would answer 500 there for ever.
        orjson.dumps([body])
    except orjson.JSONDecodeError:
        detail = "The body is not valid JSON"
    except orjson.JSONEncodeError:
        detail = "The body is nested too deeply"
    else:
        return body
    raise ApiProblem(400, detail, errors=(FieldError("", detail),))


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` names this machine only (``localhost`` or a loopback address)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%", maxsplit=1)[0]).is_loopback
    except ValueError:
        return False
