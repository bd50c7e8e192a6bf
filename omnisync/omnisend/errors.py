"""The exception tree of the Omnisend client: every way talking to Omnisend can fail.

Pure: no I/O. Each message says what went wrong *and what to fix*, carries
Omnisend's ``instance`` trace id when there is one (support asks for it), and
never contains an API key (the client scrubs server-supplied text before it
gets here) nor a full e-mail address::

    OmnisendError                       anything from omnisync.omnisend
    ├── TransportError                  the network failed (after retries)
    ├── RequestCancelled                not sent: the caller cancelled it while it waited
    ├── UnexpectedResponse              a 2xx whose body is not what the contract says
    ├── InvalidContactWrite             a ContactWrite that breaks a safety rule (caller's bug)
    ├── BatchTooLarge                   more than 100 items or 1 MB in one batch
    │   └── ItemTooLarge                one contact alone is over the byte limit
    └── ApiError                        Omnisend answered with a problem document
        ├── InvalidRequest      400     with every failing field in ``problems``
        ├── Unauthorized        401     the API key is wrong or revoked          (aborts_run)
        ├── Forbidden           403     the API key lacks a scope                (aborts_run)
        ├── NotFound            404
        ├── Conflict            409
        ├── VersionRetired      410     API version retired: upgrade omnisync    (aborts_run)
        ├── Unprocessable       422
        ├── RateLimited         429     still limited after the retry budget
        ├── ServerError         5xx     still failing after retries
        └── UnexpectedStatus    any other status

``ApiError.aborts_run`` is true for the errors that no other request of the
same connection can succeed after (401, 403, 410): an export run stops at
once on them instead of failing item after item.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from omnisync.errors import OmnisyncError
from omnisync.omnisend.model import API_VERSION, FieldProblem


class OmnisendError(OmnisyncError):
    """Base of every error raised by ``omnisync.omnisend``."""


class TransportError(OmnisendError):
    """The request never got an HTTP answer (connection refused or dropped, timeout).

    Raised after the retry policy gave up; ``operation`` names the call.
    """

    def __init__(self, operation: str, reason: str, *, attempts: int) -> None:
        self.operation = operation
        self.reason = reason
        self.attempts = attempts
        super().__init__(
            f"{operation}: could not reach Omnisend ({reason}) after {attempts} attempt(s); "
            "check the connection's base_url and the network, then run again"
        )


class RequestCancelled(OmnisendError):
    """The request was never sent: the caller's ``cancelled`` check said so once the
    request had its rate-limit slot (a run stopped while it waited)."""

    def __init__(self, operation: str) -> None:
        self.operation = operation
        super().__init__(f"{operation}: cancelled before it was sent")


class UnexpectedResponse(OmnisendError):
    """Omnisend answered 2xx with a body the published contract does not allow."""

    def __init__(self, operation: str, what: str) -> None:
        self.operation = operation
        super().__init__(f"{operation}: unexpected response from Omnisend: {what}")


class InvalidContactWrite(OmnisendError, ValueError):
    """A :class:`~omnisync.omnisend.model.ContactWrite` that cannot be sent safely.

    A programming error in the caller (e.g. a ``tags`` field), never a data
    problem of one profile: those are Omnisend's per-item 400s.
    """


class BatchTooLarge(OmnisendError, ValueError):
    """A batch over Omnisend's limits (100 items, about 1 MB); pack it with BatchPacker first."""


class ItemTooLarge(BatchTooLarge):
    """One contact whose body alone is over the batch byte limit.

    ``masked_email`` names it (masked, as everywhere in messages).
    """

    def __init__(self, masked_email: str, *, size: int, limit: int) -> None:
        self.masked_email = masked_email
        self.size = size
        self.limit = limit
        super().__init__(
            f"the contact {masked_email} alone is {size:,} bytes, over the {limit:,}-byte "
            "batch limit; shorten its custom properties"
        )


class ApiError(OmnisendError):
    """Omnisend answered with an RFC 9457 problem document.

    ``status``, ``title``, ``detail`` and ``instance`` come from the problem
    (``instance`` is Omnisend's trace id); ``problems`` lists the failing
    fields of a 400. ``advice`` is the class's fixed "what to fix" sentence.
    """

    advice: ClassVar[str] = ""
    aborts_run: ClassVar[bool] = False

    def __init__(
        self,
        operation: str,
        *,
        status: int,
        title: str = "",
        detail: str = "",
        instance: str = "",
        problems: tuple[FieldProblem, ...] = (),
    ) -> None:
        self.operation = operation
        self.status = status
        self.title = title
        self.detail = detail
        self.instance = instance
        self.problems = problems
        super().__init__(self._message())

    def _message(self) -> str:
        said = self.title or "error"
        if self.detail and self.detail != self.title:
            said = f"{said}: {self.detail}"
        parts = [f"{self.operation}: Omnisend answered {self.status} ({said})"]
        if self.problems:
            parts.append(
                "; ".join(
                    f"{problem.field}: {problem.message} [{problem.code}]"
                    for problem in self.problems
                )
            )
        if self.advice:
            parts.append(self.advice)
        message = " — ".join(parts)
        if self.instance:
            message += f" (trace {self.instance})"
        return message


class InvalidRequest(ApiError):
    advice = "Omnisend refused the request's fields listed above; fix the data or mapping"


class Unauthorized(ApiError):
    advice = (
        "the API key is wrong or revoked: check the connection's api_key reference "
        "and create a new key in Omnisend if needed"
    )
    aborts_run = True


class Forbidden(ApiError):
    advice = (
        "the API key lacks a scope, e.g. contacts.write: give the key the contacts.read "
        "and contacts.write scopes in Omnisend"
    )
    aborts_run = True


class NotFound(ApiError):
    advice = "Omnisend does not know it (a batch is kept for about 7 days)"


class Conflict(ApiError):
    advice = "the contact changed in Omnisend at the same time; run again"


class VersionRetired(ApiError):
    advice = f"API version {API_VERSION} is retired; upgrade omnisync"
    aborts_run = True


class Unprocessable(ApiError):
    advice = "Omnisend could not process the request as sent; check the data"


class RateLimited(ApiError):
    advice = (
        "Omnisend kept answering 'too many requests' past the retry budget; another "
        "client may share this brand's limit — lower rate_limit or run later"
    )


class ServerError(ApiError):
    advice = "Omnisend kept failing after retries; run again later"


class UnexpectedStatus(ApiError):
    advice = "an answer omnisync does not expect from this API version"


_BY_STATUS: Mapping[int, type[ApiError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: VersionRetired,
    422: Unprocessable,
    429: RateLimited,
}


def error_class_for(status: int) -> type[ApiError]:
    """The :class:`ApiError` subclass for an HTTP status."""
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, UnexpectedStatus)


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


def api_error(operation: str, status: int, problem: Mapping[str, Any]) -> ApiError:
    """Build the typed error for ``status`` from a parsed problem document.

    ``problem`` may be empty (a body that was not JSON); missing members
    become empty strings. The caller has already scrubbed secrets from it.
    """
    return error_class_for(status)(
        operation,
        status=status,
        title=_text(problem.get("title")),
        detail=_text(problem.get("detail")),
        instance=_text(problem.get("instance")),
        problems=field_problems(problem),
    )


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


#: What stands in for the API key in text a server sent back.
REDACTED = "[redacted]"


def scrub_secret(value: Any, secret: str) -> Any:
    """``value`` (text, or JSON-like data) with every occurrence of ``secret`` redacted.

    For server-supplied text (problem documents, transport errors) before it
    is logged or raised: a server may echo a malformed key back.
    """
    if isinstance(value, str):
        return value.replace(secret, REDACTED) if secret in value else value
    if isinstance(value, dict):
        return {key: scrub_secret(item, secret) for key, item in value.items()}
    if isinstance(value, list):
        return [scrub_secret(item, secret) for item in value]
    return value
