"""RFC 9457 problem documents as Omnisend sends them (pure).

Every error the emulator answers is ``{type, title, status, detail, instance}``
with ``instance`` a fresh trace id (``urn:omnisend:request:<uuid>``); a 400
adds ``errors[]`` with every failing field at once, a 429 adds ``retryAfter``.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from typing import Any

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
    """One failing field: ``field`` is a dotted path (``identifiers[0].id``), ``code`` one of
    ``required``, ``invalid_format``, ``too_long``."""

    field: str
    message: str
    code: str = "invalid_format"


class ApiProblem(Exception):
    """An error answer, raised inside request handling; ``detail`` never carries an API key.

    ``headers`` go with the answer (a 405's ``Allow``); ``emails``, the contacts
    the refused request named, go to the request log.
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
        self.headers = headers
        self.emails: tuple[str, ...] = ()

    def document(self) -> dict[str, Any]:
        """The JSON body, with a fresh trace id; ``errors`` is present on every 400."""
        slug, title = _TITLES.get(self.status, ("problem", "Problem"))
        document: dict[str, Any] = {
            "type": "https://problems.omnisend.com/" + slug,
            "title": title,
            "status": self.status,
            "detail": self.detail,
            "instance": f"urn:omnisend:request:{uuid.uuid4()}",
        }
        if self.status == 400:
            document["errors"] = [dataclasses.asdict(error) for error in self.errors]
        if self.retry_after is not None:
            document["retryAfter"] = self.retry_after
        return document


def validation_problem(errors: list[FieldError]) -> ApiProblem:
    """A 400 naming every failing field."""
    fields = ", ".join(error.field or "(body)" for error in errors)
    return ApiProblem(400, f"Request validation failed: {fields}", errors=tuple(errors))
