"""The client's HTTP session: what sends a request and reads its whole answer.

:class:`HttpSession` is the interface :class:`~omnisync.omnisend.client.OmnisendClient`
talks to: ``send(method, path, *, params, content) -> HttpAnswer`` and
``close()``. Every transport failure (connection refused or reset, timeout,
a server closing the connection, malformed HTTP) is raised as one
:class:`SessionTransportError` whose ``reason`` is short and carries no
secret. No cookies are kept or sent: Omnisend's API sets none.

Two implementations, chosen by :func:`open_session`:

- :class:`~omnisync.omnisend.plainhttp.PlainHttpSession` (the default): our
  own lean HTTP/1.1 exchange (:mod:`omnisync.omnisend.http11`) over a small
  pool of kept-alive connections. An export run sends thousands of requests
  from threads that share the GIL: httpx costs several times the CPU per
  request, and the standard library's ``http.client`` more than twice it.
- :class:`HttpxSession`: one pooled ``httpx.Client``, used when a transport
  is injected (tests wrap httpx's to check the OpenAPI contract) or when a
  proxy applies to the base URL: httpx honours ``HTTP(S)_PROXY``,
  ``ALL_PROXY`` and ``NO_PROXY``; the plain session does not.

Both trust the same certificate authorities (httpx's defaults: its
``create_ssl_context``).
"""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import orjson

from omnisync.omnisend.errors import UnexpectedResponse, scrub_secret

#: Paths requested over and over, whose URLs are joined once per session.
FIXED_PATHS = ("batches", "contacts", "contacts/tags")

#: The longest ``SessionTransportError.reason`` kept (server text may be long).
MAX_REASON_CHARS = 200


class SessionTransportError(Exception):
    """The request got no (complete) HTTP answer: ``reason`` says why, briefly.

    The reason names the failure (``"ConnectionRefusedError: [Errno 111]
    Connection refused"``, ``"TimeoutError: timed out"``); it never contains
    a request header, so never the API key.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason[:MAX_REASON_CHARS]
        super().__init__(self.reason)


def failure_reason(error: BaseException) -> str:
    """``"<type>: <message>"`` for a transport failure (just the type when it has no message)."""
    return f"{type(error).__name__}: {error}".rstrip(": ")


class AnswerHeaders:
    """An answer's headers, read-only; :meth:`get` ignores the name's case.

    A header sent more than once reads as its values joined with ``", "``
    (as httpx does).
    """

    __slots__ = ("_values",)

    def __init__(self, items: Iterable[tuple[str, str]]) -> None:
        values: dict[str, str] = {}
        for name, value in items:
            key = name.lower()
            values[key] = f"{values[key]}, {value}" if key in values else value
        self._values = values

    def get(self, name: str) -> str | None:
        """The header's value, or ``None`` when the answer has no such header."""
        return self._values.get(name.lower())

    def __repr__(self) -> str:
        return f"AnswerHeaders({self._values!r})"


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """One complete HTTP answer: status, headers and the whole body."""

    status_code: int
    headers: AnswerHeaders
    content: bytes

    def json(self) -> Any:
        """The body parsed as JSON; ``ValueError`` when it is not JSON."""
        return orjson.loads(self.content)


class HttpSession(Protocol):
    """Sends requests to one API root. Implementations are thread-safe."""

    def send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> HttpAnswer:
        """Send one request (``path`` relative to the base URL) and read its whole answer.

        Raises :class:`SessionTransportError` when no complete answer came.
        """
        ...

    def close(self) -> None:
        """Close every connection; the session is unusable afterwards."""
        ...


class HttpxSession:
    """One pooled ``httpx.Client`` for ``base_url`` (the API root). Thread-safe.

    Sends what ``httpx.Client.request`` would send, but builds each request
    from what it worked out once (the headers, httpx's defaults included,
    the timeout, the URLs of the fixed paths) instead of merging them anew
    for each of the thousands of requests of a run.
    """

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str],
        transport: httpx.BaseTransport | None,
        timeout: float,
    ) -> None:
        self._client = httpx.Client(
            base_url=base_url.rstrip("/") + "/",
            transport=transport,
            timeout=timeout,
            headers=dict(headers),
        )
        self._urls = {path: self._client.base_url.join(path) for path in FIXED_PATHS}
        self._extensions = {"timeout": self._client.timeout.as_dict()}

    def send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> HttpAnswer:
        """See :meth:`HttpSession.send`; httpx's ``TransportError`` becomes
        :class:`SessionTransportError`."""
        url = self._urls.get(path)
        if url is None:
            url = self._client.base_url.join(path)
        request = httpx.Request(
            method,
            url,
            params=params,
            headers=self._client.headers,
            content=content,
            extensions=self._extensions,
        )
        try:
            response = self._client.send(request)
        except httpx.TransportError as error:
            raise SessionTransportError(failure_reason(error)) from None
        return HttpAnswer(
            status_code=response.status_code,
            headers=AnswerHeaders(response.headers.multi_items()),
            content=response.content,
        )

    def close(self) -> None:
        self._client.close()


def proxy_applies(
    base_url: str,
    *,
    proxies: Mapping[str, str],
    bypass: Callable[[str], bool],
) -> bool:
    """Whether a proxy in ``proxies`` (``urllib.request.getproxies()``'s shape:
    scheme or ``"all"`` -> proxy URL) applies to ``base_url``, ``bypass(host)``
    (``urllib.request.proxy_bypass``'s contract: ``NO_PROXY``) not excluding it."""
    parts = urlsplit(base_url)
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return False
    return not bypass(parts.hostname or "")


def open_session(
    base_url: str,
    *,
    headers: Mapping[str, str],
    transport: httpx.BaseTransport | None,
    timeout: float,
    proxies: Mapping[str, str] | None = None,
    bypass: Callable[[str], bool] | None = None,
) -> HttpSession:
    """The session for ``base_url``: httpx with an injected ``transport`` or when a
    proxy applies (see :func:`proxy_applies`), the plain session otherwise.

    ``proxies`` and ``bypass`` default to the environment's
    (``urllib.request.getproxies`` and ``proxy_bypass``, what httpx reads too).
    ``timeout`` is per request, in seconds.
    """
    if transport is None:
        proxied = proxy_applies(
            base_url,
            proxies=urllib.request.getproxies() if proxies is None else proxies,
            bypass=urllib.request.proxy_bypass if bypass is None else bypass,
        )
        if not proxied:
            # Imported here: the plain session's module imports this one.
            from omnisync.omnisend.plainhttp import PlainHttpSession

            # httpx's context: the same certificate authorities as the httpx session.
            secure = base_url.startswith("https://")
            ssl_context = httpx.create_ssl_context() if secure else None
            return PlainHttpSession(
                base_url, headers=headers, timeout=timeout, ssl_context=ssl_context
            )
    return HttpxSession(base_url, headers=headers, transport=transport, timeout=timeout)


def json_object(answer: HttpAnswer, operation: str) -> dict[str, Any]:
    """The answer's body as a JSON object, or :class:`UnexpectedResponse`."""
    try:
        data = answer.json()
    except ValueError:
        raise UnexpectedResponse(operation, "the body is not JSON") from None
    if not isinstance(data, dict):
        raise UnexpectedResponse(operation, "the body is not a JSON object")
    return data


def problem_document(answer: HttpAnswer, secret: str) -> dict[str, Any]:
    """The answer's problem document scrubbed of ``secret``; ``{}`` if not a JSON object."""
    try:
        data = answer.json()
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    scrubbed = scrub_secret(data, secret)
    return scrubbed if isinstance(scrubbed, dict) else {}
