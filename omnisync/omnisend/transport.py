"""The pooled ``httpx.Client`` of one Omnisend connection: the only place the client's
HTTP settings (timeouts, proxies and CAs from the environment, no redirects) and its
last-moment request gate are written; and its answers read as JSON objects."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import httpx
import orjson

from omnisync.omnisend.errors import UnexpectedResponse


def open_http(
    base_url: str,
    *,
    headers: Mapping[str, str],
    transport: httpx.BaseTransport | None,
    timeout: float,
    request_gate: Callable[[], None] | None = None,
) -> httpx.Client:
    """The pooled client for the API root ``base_url``: kept-alive connections shared by
    the client's threads; ``timeout`` (seconds) bounds each of connect, read, write and
    the wait for a pooled connection; proxies and CAs from the environment (an injected
    ``transport`` replaces the network); no redirects. ``request_gate`` is called just
    before each request is sent; what it raises stops the request unsent (a replica
    whose lease on the brand has run out)."""
    hooks: dict[str, list[Callable[[httpx.Request], None]]] = {}
    if request_gate is not None:
        hooks["request"] = [_gated(request_gate)]
    return httpx.Client(
        event_hooks=hooks,
        base_url=base_url.rstrip("/") + "/",
        headers=dict(headers),
        timeout=httpx.Timeout(timeout),
        transport=transport,
        # An injected transport makes its own connections: no context to load for it.
        verify=(
            True
            if transport is not None
            else _tls_context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
        ),
        trust_env=True,
        follow_redirects=False,
    )


_Made = TypeVar("_Made")


def _once_per_ca_setting(make: Callable[[], _Made]) -> Callable[[str | None, str | None], _Made]:
    """``make()`` called once for each value of ``$SSL_CERT_FILE`` and ``$SSL_CERT_DIR``
    (the two arguments), its result given again after."""

    @functools.lru_cache(maxsize=4)
    def made(ca_file: str | None, ca_directory: str | None) -> _Made:
        return make()

    return made


#: The TLS context httpx makes for ``trust_env=True`` (the CAs of ``$SSL_CERT_FILE`` or
#: ``$SSL_CERT_DIR``, else certifi's), shared by the process's clients: loading the CA
#: bundle costs some 30 ms of CPU, the same bundle for every client.
_tls_context = _once_per_ca_setting(httpx.create_ssl_context)


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


def json_object(response: httpx.Response, operation: str) -> dict[str, Any]:
    """The answer's body as a JSON object, or :class:`UnexpectedResponse`."""
    try:
        data = orjson.loads(response.content)
    except ValueError:
        raise UnexpectedResponse(operation, "the body is not JSON") from None
    if not isinstance(data, dict):
        raise UnexpectedResponse(operation, "the body is not a JSON object")
    return data
