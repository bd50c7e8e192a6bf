"""The client's HTTP session: one pooled ``httpx.Client`` and the requests it sends.

:class:`HttpSession` sends what ``httpx.Client.request`` would send, but
builds each request from what it worked out once — the client's headers
(httpx's defaults included), its timeout, the URLs of the paths requested
over and over — instead of merging them anew for each of the thousands of
requests of a run. No cookies are kept or sent: Omnisend's API sets none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from omnisync.omnisend.errors import UnexpectedResponse, scrub_secret

#: Paths requested over and over, whose URLs are joined once per session.
FIXED_PATHS = ("batches", "contacts", "contacts/tags")


class HttpSession:
    """One pooled ``httpx.Client`` for ``base_url`` (the API root). Thread-safe."""

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
    ) -> httpx.Response:
        """Send one request (``path`` relative to the base URL) and read its answer.

        Raises ``httpx.TransportError`` as ``httpx.Client.request`` does.
        """
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
        return self._client.send(request)

    def close(self) -> None:
        self._client.close()


def json_object(response: httpx.Response, operation: str) -> dict[str, Any]:
    """The response body as a JSON object, or :class:`UnexpectedResponse`."""
    try:
        data = response.json()
    except ValueError:
        raise UnexpectedResponse(operation, "the body is not JSON") from None
    if not isinstance(data, dict):
        raise UnexpectedResponse(operation, "the body is not a JSON object")
    return data


def problem_document(response: httpx.Response, secret: str) -> dict[str, Any]:
    """The response's problem document scrubbed of ``secret``; ``{}`` if not a JSON object."""
    try:
        data = response.json()
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    scrubbed = scrub_secret(data, secret)
    return scrubbed if isinstance(scrubbed, dict) else {}
