"""The HTTP shell: stdlib ``ThreadingHTTPServer`` with HTTP/1.1 keep-alive.

Order of checks for ``/api/...`` (each step answers and stops when it fails):
read the body -> ``Authorization`` (401) -> ``Omnisend-Version`` (400 when
missing, 410 when not 2026-03-15) -> a forced 429 burst, then the rate
limits (429, not processed, not counted) -> injected faults (500, 503,
dropped connection) ->
unknown path 404 / wrong method 405 -> body size (413 for a batch over
``max_batch_bytes``, or any body over 4 MB) -> JSON (400) -> the operation ->
injected latency -> answer. Every API request lands in the request log.

``/_emulator/...`` is the inspection API (no key; loopback clients only).
Nothing here validates against OpenAPI at run time: that is the tests' job,
and the emulator must stay fast.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import json
import logging
import socket
import threading
import time
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from omnisync.emulator.api import TAGS_PATH, ApiRequest, ApiResponse, route
from omnisync.emulator.httpparse import read_headers
from omnisync.emulator.inspection import handle_inspection
from omnisync.emulator.problems import ApiProblem, FieldError, problem_document
from omnisync.emulator.state import API_VERSION, EmulatorState

logger = logging.getLogger("omnisync.emulator")

MAX_BODY_BYTES = 4_000_000
_REASONS = {status.value: status.phrase for status in HTTPStatus}
_BATCHES_PATH = "/batches"


class EmulatorHTTPServer(ThreadingHTTPServer):
    """Holds the state and tracks open connections so ``stop`` can close them."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], state: EmulatorState, *, allow_remote: bool
    ) -> None:
        super().__init__(address, EmulatorHandler)
        self.state = state
        self.allow_remote = allow_remote
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        host, port = self.server_address[:2]
        host_text = host.decode() if isinstance(host, bytes) else str(host)
        shown = f"[{host_text}]" if ":" in host_text else host_text
        self.base_url = f"http://{shown}:{port}/api"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that failed outside a request (reset, timeout): no traceback on stderr."""
        logger.debug("emulator connection closed abruptly", exc_info=True)

    def close_connections(self) -> None:
        with self.connections_lock:
            open_connections = list(self.connections)
        for connection in open_connections:
            with contextlib.suppress(OSError):  # already closed by the peer
                connection.shutdown(socket.SHUT_RDWR)


class EmulatorHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: EmulatorHTTPServer
    raw_requestline: bytes
    #: Idle keep-alive connections are closed after this many real seconds.
    timeout = 120

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):  # the peer went away; nothing to flush to
            super().finish()

    def parse_request(self) -> bool:
        """The standard library's, with the header block read by :func:`read_headers`.

        Only a plain ``METHOD TARGET HTTP/1.1`` request line takes this path;
        any other goes to ``BaseHTTPRequestHandler.parse_request`` as it is.
        """
        requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        words = requestline.split()
        if len(words) != 3 or words[2] != "HTTP/1.1":
            return super().parse_request()
        self.requestline = requestline
        self.request_version = "HTTP/1.1"
        self.close_connection = False  # HTTP/1.1 both ways: keep-alive unless asked
        self.command, self.path = words[0], words[1]
        if self.path.startswith("//"):
            self.path = "/" + self.path.lstrip("/")
        try:
            self.headers = read_headers(self.rfile)  # type: ignore[arg-type]
        except http.client.LineTooLong as error:
            self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Line too long", str(error))
            return False
        except http.client.HTTPException as error:
            self.send_error(
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Too many headers", str(error)
            )
            return False
        if self.headers.get("Connection", "").lower() == "close":
            self.close_connection = True
        if self.headers.get("Expect", "").lower() == "100-continue":
            return self.handle_expect_100()
        return True

    def log_message(self, format: str, *args: Any) -> None:
        # Request lines can carry e-mails in query strings: never log them.
        return

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PATCH = do_DELETE = do_PUT = do_HEAD = do_OPTIONS = do_GET

    # -- plumbing -------------------------------------------------------------

    def _read_body(self) -> bytes | None:
        """The request body, or ``None`` after answering 411/413 and closing."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self._answer_and_close(411, "Send the body with a Content-Length header")
            return None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self._answer_and_close(400, "Content-Length is not a number")
            return None
        limit = max(MAX_BODY_BYTES, self.server.state.settings.max_batch_bytes)
        if length > limit:
            # Not read at all: answer and close rather than swallow megabytes.
            self._answer_and_close(413, f"The body is larger than {limit} bytes")
            return None
        return self.rfile.read(length) if length else b""

    def _answer_and_close(self, status: int, detail: str) -> None:
        self.close_connection = True
        self._send(status, problem_document(status, detail), latency=False)

    def _send(
        self,
        status: int,
        body: Any,
        *,
        headers: tuple[tuple[str, str], ...] = (),
        latency: bool = True,
    ) -> None:
        if latency:
            delay = self.server.state.injector.faults.latency
            if delay > 0:
                self.server.state.clock.sleep(delay)
        payload = b"" if body is None else _encode(body)
        reason = _REASONS.get(status, "Unknown")
        lines = [
            f"HTTP/1.1 {status} {reason}",
            f"Date: {_http_date()}",
            f"Content-Length: {len(payload)}",
        ]
        if payload:
            lines.append("Content-Type: application/json")
        lines.extend(f"{name}: {value}" for name, value in headers)
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        # Status, headers and body in one write: one TCP segment for a small answer.
        self.wfile.write(head + payload if self.command != "HEAD" else head)

    def _drop(self) -> None:
        """Close the connection without a word, as a network fault would."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _dispatch(self) -> None:
        try:
            self._route()
        except OSError:
            # The client went away mid-answer (a timeout, a reset): nothing to tell it.
            self.close_connection = True
        except Exception:
            # A bug answers 500 and is logged; the caller never sees a traceback.
            logger.exception("emulator request failed", extra={"event": "emulator_error"})
            self.close_connection = True
            with contextlib.suppress(OSError):
                self._send(500, problem_document(500, "Internal server error"), latency=False)

    def _route(self) -> None:
        raw = self._read_body()
        if raw is None:
            return
        split = urlsplit(self.path)
        path = split.path
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        if path == "/_emulator" or path.startswith("/_emulator/"):
            self._inspect(path, query, raw)
        elif path == "/api" or path.startswith("/api/"):
            self._api(path, query, raw)
        else:
            self._send(404, problem_document(404, "Unknown path; the API lives under /api"))

    def _inspect(self, path: str, query: dict[str, str], raw: bytes) -> None:
        # Even with --allow-remote, only this machine may inspect and steer the emulator.
        if not _is_loopback(self.client_address[0]):
            self._send(403, {"error": "the inspection API answers loopback clients only"})
            return
        status, body = handle_inspection(
            self.server.state, self.command, path[len("/_emulator") :] or "/", query, raw
        )
        self._send(status, body, latency=False)

    # -- the API ----------------------------------------------------------------

    def _api(self, path: str, query: dict[str, str], raw: bytes) -> None:
        state = self.server.state
        method = self.command
        api_path = path[len("/api") :] or "/"
        found = route(method, api_path)
        endpoint = found.endpoint if found is not None else "unknown"
        brand = state.brand_for_authorization(self.headers.get("Authorization"))

        def answer(response: ApiResponse, headers: tuple[tuple[str, str], ...] = ()) -> None:
            # Logged before answering, so a client that got its answer finds the record.
            state.record(
                method=method,
                path=path,
                endpoint=endpoint,
                status=response.status,
                brand=brand,
                emails=response.emails,
            )
            self._send(response.status, response.body, headers=headers)

        def problem(error: ApiProblem, headers: tuple[tuple[str, str], ...] = ()) -> None:
            answer(ApiResponse(error.status, error.document()), headers)

        if brand is None:
            problem(ApiProblem(401, "The API key is missing or not valid"))
            return
        version = self.headers.get("Omnisend-Version")
        if version is None:
            problem(
                ApiProblem(
                    400,
                    "The Omnisend-Version header is required",
                    errors=(FieldError("Omnisend-Version", "required", "Send 2026-03-15"),),
                )
            )
            return
        if version != API_VERSION:
            problem(ApiProblem(410, f"API version {version[:40]!r} is retired or unknown"))
            return
        retry_after = state.injector.take_forced_429(endpoint)
        if retry_after is None:
            retry_after = state.admit(brand, is_tags=api_path == TAGS_PATH)
        if retry_after is not None:
            problem(ApiProblem(429, "Rate limit exceeded", retry_after=retry_after))
            return
        draw = state.injector.draw(endpoint)
        if draw == "error_500":
            problem(ApiProblem(500, "Internal server error (injected fault)"))
            return
        if draw == "error_503":
            problem(ApiProblem(503, "Service temporarily unavailable (injected fault)"))
            return
        processed_drop = draw == "drop" and state.injector.faults.drop_after_processing
        if draw == "drop" and not processed_drop:
            state.record(method=method, path=path, endpoint=endpoint, status=None, brand=brand)
            self._drop()
            return
        if found is None:
            problem(ApiProblem(404, f"No such endpoint: {method} {api_path}"))
            return
        if found.operation is None:
            allowed = ", ".join(found.allowed)
            problem(
                ApiProblem(405, f"{method} is not allowed here; use {allowed}"),
                (("Allow", allowed),),
            )
            return
        limit = state.settings.max_batch_bytes
        if api_path == _BATCHES_PATH and method == "POST" and len(raw) > limit:
            problem(ApiProblem(413, f"A batch body must be at most {limit} bytes"))
            return
        try:
            body = orjson.loads(raw) if raw else None
        except ValueError:  # orjson.JSONDecodeError (RFC 8259: no NaN, valid UTF-8) is one
            problem(
                ApiProblem(
                    400,
                    "The body is not valid JSON",
                    errors=(FieldError("", "invalid_format", "The body is not valid JSON"),),
                )
            )
            return
        request = ApiRequest(method, api_path, query, body, raw, self.server.base_url)
        try:
            response = found.operation(state, brand, request, found.parameter)
        except ApiProblem as error:
            response = ApiResponse(error.status, error.document(), error.emails)
        except Exception:
            logger.exception("emulator operation failed", extra={"event": "emulator_error"})
            response = ApiResponse(500, problem_document(500, "Internal server error"))
        if processed_drop:
            state.record(
                method=method,
                path=path,
                endpoint=endpoint,
                status=None,
                brand=brand,
                emails=response.emails,
            )
            self._drop()
            return
        answer(response)


def _encode(body: Any) -> bytes:
    """An answer's JSON (orjson; the standard encoder for what orjson refuses)."""
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError:
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


_date_lock = threading.Lock()
_date_cache: tuple[int, str] = (0, "")


def _http_date() -> str:
    """The ``Date`` header's value for now (RFC 9110 IMF-fixdate), made once a second."""
    global _date_cache  # noqa: PLW0603 - a per-second memo shared by handler threads
    second = int(time.time())
    with _date_lock:
        if _date_cache[0] != second:
            _date_cache = (second, formatdate(second, usegmt=True))
        return _date_cache[1]


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", maxsplit=1)[0]).is_loopback
    except ValueError:
        return host == "localhost"
