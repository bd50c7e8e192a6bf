"""The client's HTTP connection to Omnisend: one pooled ``httpx.Client``, and reading its answers.

:func:`open_http` builds the ``httpx.Client`` an
:class:`~omnisync.omnisend.client.OmnisendClient` talks through: kept-alive
connections shared by its threads; the timeout Omnisend advises for connect,
read, write and pool; proxies and certificate authorities from the
environment (``trust_env``; an injected ``transport`` replaces the network);
no redirects followed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx
import orjson

from omnisync.omnisend.errors import UnexpectedResponse, scrub_secret

MAX_REASON_CHARS = 200


def open_http(
    base_url: str,
    *,
    headers: Mapping[str, str],
    transport: httpx.BaseTransport | None,
    timeout: float,
    request_gate: Callable[[], None] | None = None,
) -> httpx.Client:
    """The pooled client for the API root ``base_url``; ``timeout`` (seconds) bounds each
    of connect, read, write and the wait for a pooled connection. ``request_gate`` is
    called just before each request is sent; what it raises stops the request unsent
    (a replica whose lease on the brand has run out)."""
    hooks: dict[str, list[Callable[[httpx.Request], None]]] = {}
    if request_gate is not None:
        hooks["request"] = [_gated(request_gate)]
    return httpx.Client(
        event_hooks=hooks,
        base_url=base_url.rstrip("/") + "/",
        headers=dict(headers),
        timeout=httpx.Timeout(timeout),
        transport=transport,
        trust_env=True,
        follow_redirects=False,
    )


#: httpcore's trace events just before a request's first byte is written.
_ABOUT_TO_SEND = frozenset(
    {"http11.send_request_headers.started", "http2.send_request_headers.started"}
)


def _gated(gate: Callable[[], None]) -> Callable[[httpx.Request], None]:
    """A request hook that asks ``gate`` once more at the last moment: when httpcore is
    about to write the request (its ``trace`` extension), after any wait for a pooled
    connection, so a thread paused in between (SIGSTOP) finds out before it sends."""

    def trace(event: str, info: Mapping[str, object]) -> None:
        if event in _ABOUT_TO_SEND:
            gate()

    def hook(request: httpx.Request) -> None:
        gate()
        request.extensions["trace"] = trace

    return hook


def failure_reason(error: httpx.RequestError) -> str:
    """``"<type>: <message>"`` (e.g. ``"ConnectError: [Errno 111] Connection refused"``) for
    a request that got no complete answer; never a request header. Not cut to
    :data:`MAX_REASON_CHARS` here: scrub it first, or a key across the cut would leave a part."""
    return f"{type(error).__name__}: {error}".rstrip(": ")


def json_object(response: httpx.Response, operation: str) -> dict[str, Any]:
    """The answer's body as a JSON object, or :class:`UnexpectedResponse`."""
    try:
        data = orjson.loads(response.content)
    except ValueError:
        raise UnexpectedResponse(operation, "the body is not JSON") from None
    if not isinstance(data, dict):
        raise UnexpectedResponse(operation, "the body is not a JSON object")
    return data


def problem_document(response: httpx.Response, secret: str) -> dict[str, Any]:
    """The answer's problem document scrubbed of ``secret``; ``{}`` if not a JSON object."""
    try:
        return dict(scrub_secret(json_object(response, ""), secret))
    except UnexpectedResponse:
        return {}
