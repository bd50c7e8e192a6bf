"""The exception tree of the Omnisend client: every way talking to Omnisend can fail.

Pure. Each message says what went wrong *and what to fix*, carries Omnisend's
``instance`` trace id when there is one, and never contains an API key (the client
scrubs server-supplied text first) nor a full e-mail address::

    OmnisendError             anything from omnisync.omnisend
    ├── TransportError        the network failed (after retries)
    ├── RequestCancelled      not sent: the caller cancelled it while it waited
    ├── UnexpectedResponse    a 2xx whose body is not what the contract says
    ├── InvalidContactWrite   a ContactWrite that breaks a safety rule (caller's bug)
    ├── ItemTooLarge          one contact alone is over a batch's byte limit
    └── ApiError              a problem document: ``status`` says which, the message what
                              to fix; ``aborts_run`` (401, 403, 410): no other request of
                              the connection can succeed, a run stops at once
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from omnisync.errors import OmnisyncError

API_VERSION = "2026-03-15"


class OmnisendError(OmnisyncError):
    """Base of every error raised by ``omnisync.omnisend``. ``maybe_processed``: Omnisend
    may have carried the request out although it failed (a batch it may have created)."""

    maybe_processed = False


class TransportError(OmnisendError):
    """No HTTP answer (refused, dropped, timed out) after the retry policy gave up;
    ``maybe_processed`` unless no attempt ever made a connection."""

    def __init__(
        self, operation: str, reason: str, *, attempts: int, maybe_processed: bool = True
    ) -> None:
        self.reason = reason
        self.maybe_processed = maybe_processed
        super().__init__(
            f"{operation}: could not reach Omnisend ({reason}) after {attempts} attempt(s); "
            "check the connection's base_url and the network, then run again"
        )


class RequestCancelled(OmnisendError):
    """Never sent: the caller's ``cancelled`` check said so once the request had its slot."""

    def __init__(self, operation: str) -> None:
        super().__init__(f"{operation}: cancelled before it was sent")


class UnexpectedResponse(OmnisendError):
    """Omnisend answered 2xx with a body the published contract does not allow."""

    maybe_processed = True  # a 2xx: it was carried out

    def __init__(self, operation: str, what: str) -> None:
        super().__init__(f"{operation}: unexpected response from Omnisend: {what}")


class InvalidContactWrite(OmnisendError, ValueError):
    """A ContactWrite that cannot be sent safely (e.g. a ``tags`` field): the caller's bug."""


class ItemTooLarge(OmnisendError, ValueError):
    """One contact (named by its masked e-mail) whose body alone is over the byte limit."""

    def __init__(self, masked_email: str, *, size: int, limit: int) -> None:
        super().__init__(
            f"the contact {masked_email} alone is {size:,} bytes, over the {limit:,}-byte "
            "batch limit; shorten its custom properties"
        )


#: What to fix, by status (every 5xx under 500); another status gets ``_UNEXPECTED``.
_ADVICE: Mapping[int, str] = {
    400: "Omnisend refused the request's fields listed above; fix the data or mapping",
    401: (
        "the API key is wrong or revoked: check the connection's api_key reference "
        "and create a new key in Omnisend if needed"
    ),
    403: (
        "the API key lacks a scope, e.g. contacts.write: give the key the contacts.read "
        "and contacts.write scopes in Omnisend"
    ),
    404: (
        "Omnisend has no such endpoint or object: check that the connection's base_url ends in /api"
    ),
    409: "the contact changed in Omnisend at the same time; run again",
    410: f"API version {API_VERSION} is retired; upgrade omnisync",
    422: "Omnisend could not process the request as sent; check the data",
    429: (
        "Omnisend kept answering 'too many requests' past the retry budget; another "
        "client may share this brand's limit — lower rate_limit or run later"
    ),
    500: "Omnisend kept failing after retries; run again later",
}
_UNEXPECTED = "an answer omnisync does not expect from this API version"
#: The endpoints whose 404 means a batch Omnisend no longer keeps, not a wrong path.
_BATCH_ENDPOINTS = frozenset({"GET /batches/{batchID}", "GET /batches/{batchID}/items"})
_BATCH_GONE = "Omnisend does not know this batch (a batch is kept for about 7 days)"
#: Statuses after which no request of the connection can succeed (key or API version).
_ABORTING = frozenset({401, 403, 410})


class ApiError(OmnisendError):
    """Omnisend answered ``status`` with an RFC 9457 ``problem`` document (scrubbed; ``{}``
    for a body that was not JSON). ``problems`` lists the failing fields of a 400; the
    message holds the title, detail, ``instance`` (trace id) and the advice by status (a
    404 by ``endpoint`` too, a template such as ``"GET /batches/{batchID}"``).
    ``after_unanswered``: an earlier attempt of the same request got no answer, so
    Omnisend may have processed the request although this answer refused it;
    ``maybe_processed``: that, or this answer itself (408, 5xx) leaves it open.
    ``advice`` replaces the advice by status."""

    def __init__(
        self,
        operation: str,
        *,
        status: int,
        problem: Mapping[str, Any] | None = None,
        after_unanswered: bool = False,
        endpoint: str = "",
        advice: str | None = None,
    ) -> None:
        problem = problem or {}
        title, detail, instance = (
            value if isinstance(value := problem.get(key), str) else ""
            for key in ("title", "detail", "instance")
        )
        self.status = status
        self.after_unanswered = after_unanswered
        self.maybe_processed = after_unanswered or status == 408 or status >= 500
        #: The trace id Omnisend's support asks for ("" when the answer had none).
        self.instance = instance
        self.aborts_run = status in _ABORTING
        self.problems = field_problems(problem)
        said = title or "error"
        if detail and detail != title:
            said = f"{said}: {detail}"
        parts = [f"{operation}: Omnisend answered {status} ({said})"]
        if self.problems:
            parts.append(
                "; ".join(
                    f"{field.field}: {field.message} [{field.code}]" for field in self.problems
                )
            )
        if advice is not None:
            parts.append(advice)
        elif status == 404 and endpoint in _BATCH_ENDPOINTS:
            parts.append(_BATCH_GONE)
        else:
            parts.append(_ADVICE.get(500 if status >= 500 else status, _UNEXPECTED))
        message = " — ".join(parts)
        super().__init__(f"{message} (trace {instance})" if instance else message)


@dataclass(frozen=True)
class FieldProblem:
    """One failing field as Omnisend reported it (``errors[]`` of a problem document)."""

    field: str
    code: str
    message: str


def field_problems(problem: Mapping[str, Any]) -> tuple[FieldProblem, ...]:
    """The ``errors[]`` of a problem document as :class:`FieldProblem`s; tolerant of junk."""
    raw = problem.get("errors")
    if not isinstance(raw, list):
        return ()
    return tuple(
        FieldProblem(
            field=str(entry.get("field", "")),
            code=str(entry.get("code", "")),
            message=str(entry.get("message", "")),
        )
        for entry in raw
        if isinstance(entry, Mapping)
    )


def scrub_secret(value: Any, secret: str) -> Any:
    """``value`` (text or JSON-like data) with ``secret`` redacted: a server may echo a key."""
    if isinstance(value, str):
        return value.replace(secret, "[redacted]")
    if isinstance(value, dict):
        return {key: scrub_secret(item, secret) for key, item in value.items()}
    if isinstance(value, list):
        return [scrub_secret(item, secret) for item in value]
    return value
