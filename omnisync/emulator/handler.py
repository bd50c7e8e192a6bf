"""The emulator's HTTP shell: requests to the API and the inspection API, on the lean server.

Order of checks for ``/api/...`` (each step answers and stops when it fails):
read the body -> ``Authorization`` (401) -> ``Omnisend-Version`` (400 when
missing, 410 when not 2026-03-15) -> a forced 429 burst, then the rate
limits (429, not processed, not counted) -> injected faults (500, 503,
dropped connection) ->
unknown path 404 / wrong method 405 -> body size (413 for a batch over
``max_batch_bytes``, or any body over 4 MB) -> JSON (400) -> the operation ->
injected latency -> answer. Every API request lands in the request log
before its answer is written.

``/_emulator/...`` is the inspection API (no key; loopback clients only).
Nothing here validates against OpenAPI at run time: that is the tests' job,
and the emulator must stay fast. After each answer, work that has come due
(a batch created with ``batch_delay`` 0) runs on the connection's thread,
which saves waking the worker thread for it (see :meth:`Worker.run_due`).
"""

from __future__ import annotations

import ipaddress
import json
import logging
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from omnisync.emulator.api import TAGS_PATH, ApiRequest, ApiResponse, route
from omnisync.emulator.httpserver import HttpConnection, HttpRequest, LeanHTTPServer
from omnisync.emulator.inspection import handle_inspection
from omnisync.emulator.problems import ApiProblem, FieldError, problem_document
from omnisync.emulator.state import API_VERSION, EmulatorState

logger = logging.getLogger("omnisync.emulator")

MAX_BODY_BYTES = 4_000_000
_BATCHES_PATH = "/batches"


class EmulatorHTTPServer(LeanHTTPServer):
    """The emulator's server: its own responder, over the shared :class:`EmulatorState`."""

    def __init__(
        self, address: tuple[str, int], state: EmulatorState, *, allow_remote: bool
    ) -> None:
        super().__init__(address, self)
        self.state = state
        self.allow_remote = allow_remote
        host, port = self.server_address[:2]
        host_text = host.decode() if isinstance(host, bytes) else str(host)
        shown = f"[{host_text}]" if ":" in host_text else host_text
        self.base_url = f"http://{shown}:{port}/api"

    # -- the Responder protocol ---------------------------------------------------

    def body_limit(self) -> int:
        return max(MAX_BODY_BYTES, self.state.settings.max_batch_bytes)

    def refuse(self, connection: HttpConnection, status: int, detail: str) -> None:
        _send(connection, status, problem_document(status, detail))

    def respond(self, connection: HttpConnection, request: HttpRequest) -> None:
        try:
            self._route(connection, request)
        except OSError:
            # The client went away mid-answer (a timeout, a reset): nothing to tell it.
            connection.closing = True
        except Exception:
            # A bug answers 500 and is logged; the caller never sees a traceback.
            logger.exception("emulator request failed", extra={"event": "emulator_error"})
            connection.closing = True
            _send(connection, 500, problem_document(500, "Internal server error"))
        finally:
            # Work due by now (typically the batch just created) runs here, rather
            # than waking the worker thread for it: scheduling counts on this
            # (EmulatorState.schedule_batch), whatever became of the answer.
            self.state.worker.run_due()

    # -- routing ------------------------------------------------------------------

    def _route(self, connection: HttpConnection, request: HttpRequest) -> None:
        target = request.target
        if target.startswith("//"):
            target = "/" + target.lstrip("/")
        if "?" in target or "#" in target:
            split = urlsplit(target)
            path = split.path
            query = dict(parse_qsl(split.query, keep_blank_values=True))
        else:
            path, query = target, {}
        if path == "/_emulator" or path.startswith("/_emulator/"):
            self._inspect(connection, request, path, query)
        elif path == "/api" or path.startswith("/api/"):
            self._api(connection, request, path, query)
        else:
            self._answer(
                connection, 404, problem_document(404, "Unknown path; the API lives under /api")
            )

    def _inspect(
        self, connection: HttpConnection, request: HttpRequest, path: str, query: dict[str, str]
    ) -> None:
        # Even with --allow-remote, only this machine may inspect and steer the emulator.
        if not _is_loopback(connection.client_host):
            _send(connection, 403, {"error": "the inspection API answers loopback clients only"})
            return
        status, body = handle_inspection(
            self.state, request.method, path[len("/_emulator") :] or "/", query, request.body
        )
        _send(connection, status, body)

    def _answer(
        self,
        connection: HttpConnection,
        status: int,
        body: Any,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """An API answer, after the injected latency (modelled seconds)."""
        delay = self.state.injector.faults.latency
        if delay > 0:
            self.state.clock.sleep(delay)
        _send(connection, status, body, headers)

    # -- the API ----------------------------------------------------------------

    def _api(
        self, connection: HttpConnection, request: HttpRequest, path: str, query: dict[str, str]
    ) -> None:
        state = self.state
        method = request.method
        headers = request.headers
        raw = request.body
        api_path = path[len("/api") :] or "/"
        found = route(method, api_path)
        endpoint = found.endpoint if found is not None else "unknown"
        brand = state.brand_for_authorization(headers.get("authorization"))

        def answer(response: ApiResponse, extra: tuple[tuple[str, str], ...] = ()) -> None:
            # Logged before answering, so a client that got its answer finds the record.
            state.record(
                method=method,
                path=path,
                endpoint=endpoint,
                status=response.status,
                brand=brand,
                emails=response.emails,
            )
            self._answer(connection, response.status, response.body, extra)

        def problem(error: ApiProblem, extra: tuple[tuple[str, str], ...] = ()) -> None:
            answer(ApiResponse(error.status, error.document()), extra)

        def drop(emails: tuple[str, ...] = ()) -> None:
            state.record(
                method=method, path=path, endpoint=endpoint, status=None, brand=brand, emails=emails
            )
            connection.drop()

        if brand is None:
            problem(ApiProblem(401, "The API key is missing or not valid"))
            return
        version = headers.get("omnisend-version")
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
            drop()
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
        api_request = ApiRequest(method, api_path, query, body, raw, self.base_url)
        try:
            response = found.operation(state, brand, api_request, found.parameter)
        except ApiProblem as error:
            response = ApiResponse(error.status, error.document(), error.emails)
        except Exception:
            logger.exception("emulator operation failed", extra={"event": "emulator_error"})
            response = ApiResponse(500, problem_document(500, "Internal server error"))
        if processed_drop:
            drop(response.emails)
            return
        answer(response)


def _send(
    connection: HttpConnection,
    status: int,
    body: Any,
    headers: tuple[tuple[str, str], ...] = (),
) -> None:
    connection.send(status, b"" if body is None else _encode(body), headers=headers)


def _encode(body: Any) -> bytes:
    """An answer's JSON (orjson; the standard encoder for what orjson refuses)."""
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError:
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", maxsplit=1)[0]).is_loopback
    except ValueError:
        return host == "localhost"
