"""RFC 9457 problem documents as Omnisend sends them (pure).

Every error the emulator answers is ``{type, title, status, detail, instance}``
with ``instance`` a fresh trace id (``urn:omnisend:request:<uuid>``); a 400
adds ``errors[]`` with every failing field at once, a 429 adds ``retryAfter``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

PROBLEM_BASE = "https://problems.omnisend.com/"
Headers = tuple[tuple[str, str], ...]

_TITLES = {
    400: ("validation-failed", "Validation failed"),
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    409: ("conflict", "Conflict"),
    410: ("version-retired", "API version retired"),
    411: ("length-required", "Length required"),
    413: ("payload-too-large", "Payload too large"),
    429: ("rate-limited", "Too many requests"),
    500: ("internal-error", "Internal server error"),
    503: ("service-unavailable", "Service unavailable"),
}


@dataclass(frozen=True)
class FieldError:
    """One failing field of a request: ``field`` is a dotted path (``identifiers[0].id``)."""

    field: str
    code: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"field": self.field, "code": self.code, "message": self.message}


class ApiProblem(Exception):
    """An error answer; raised inside request handling, rendered by :meth:`document`.

    ``detail`` must never carry an API key; it may name a field or an id.
    """

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: tuple[FieldError, ...] = (),
        retry_after: int | None = None,
        headers: Headers = (),
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors
        self.retry_after = retry_after
        #: Headers the answer carries besides the document (a 405's ``Allow``).
        self.headers = headers
        #: E-mails the refused request named, for the request log.
        self.emails: tuple[str, ...] = ()

    def document(self) -> dict[str, Any]:
        """The JSON body, with a fresh trace id."""
        return problem_document(
            self.status, self.detail, errors=self.errors, retry_after=self.retry_after
        )


def problem_document(
    status: int,
    detail: str,
    *,
    errors: tuple[FieldError, ...] | list[FieldError] = (),
    retry_after: int | None = None,
) -> dict[str, Any]:
    """Build one problem document; ``errors`` is included for 400s (even if empty)."""
    slug, title = _TITLES.get(status, ("problem", "Problem"))
    document: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": f"urn:omnisend:request:{uuid.uuid4()}",  # a fresh trace id
    }
    if status == 400:
        document["errors"] = [error.to_json() for error in errors]
    if retry_after is not None:
        document["retryAfter"] = retry_after
    return document


def validation_problem(errors: list[FieldError] | tuple[FieldError, ...]) -> ApiProblem:
    """A 400 naming every failing field."""
    fields = ", ".join(error.field or "(body)" for error in errors)
    return ApiProblem(400, f"Request validation failed: {fields}", errors=tuple(errors))
