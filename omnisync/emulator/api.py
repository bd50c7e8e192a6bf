"""The Omnisend API operations, independent of HTTP parsing.

Each operation takes the state, the authenticated brand and an
:class:`ApiRequest`, and returns an :class:`ApiResponse` or raises
:class:`~omnisync.emulator.validation.ApiProblem`. :func:`route` finds a
request's endpoint and its operations.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import partial
from itertools import islice
from operator import attrgetter
from typing import Any
from urllib.parse import urlencode

from omnisync.emulator.brand import Brand, render_batch
from omnisync.emulator.contacts import ContactRecord, email_of
from omnisync.emulator.state import EmulatorState
from omnisync.emulator.validation import (
    STATUSES,
    ApiProblem,
    FieldError,
    Headers,
    check_choice,
    validate_batch,
    validate_tags,
    validation_problem,
)

BATCH_STATUSES = ("pending", "inProgress", "finished", "stopped")
TAGS_PATH = "/contacts/tags"


@dataclass(frozen=True)
class ApiRequest:
    """One parsed API request; ``body`` is the decoded JSON (``None`` when empty);
    ``parameter`` the id in the path, if any."""

    query: dict[str, str]
    body: Any
    base_url: str
    parameter: str


@dataclass(frozen=True)
class ApiResponse:
    """``body`` ``None`` means an empty body; ``emails`` go to the request log."""

    status: int
    body: Any = None
    emails: tuple[str, ...] = ()
    headers: Headers = ()


Operation = Callable[[EmulatorState, Brand, ApiRequest], ApiResponse]


def _invalid(name: str, message: str, code: str = "invalid_format") -> ApiProblem:
    """A 400 for the one query parameter ``name``."""
    return validation_problem([FieldError(name, message, code)])


def _check_choice(
    query: dict[str, str], name: str, allowed: tuple[str, ...], errors: list[FieldError]
) -> None:
    if name in query:
        check_choice(query[name], name, allowed, errors)


def _int_parameter(query: dict[str, str], name: str, *, default: int, low: int, high: int) -> int:
    try:
        value = int(query.get(name, default))
    except ValueError:
        raise _invalid(name, "Must be an integer") from None
    if not low <= value <= high:
        raise _invalid(name, f"Must be between {low} and {high}")
    return value


def _date_parameter(query: dict[str, str], name: str) -> date | None:
    try:
        return date.fromisoformat(query[name]) if name in query else None
    except ValueError:
        raise _invalid(name, "Must be a date as yyyy-mm-dd") from None


def _contact(brand: Brand, request: ApiRequest) -> ContactRecord:
    """The contact the path names, or a 404."""
    record = brand.find(contact_id=request.parameter)
    if record is None:
        raise ApiProblem(404, f"Contact {request.parameter} not found")
    return record


def post_contact(state: EmulatorState, brand: Brand, request: ApiRequest) -> ApiResponse:
    emails = brand.stored_emails([email_of(request.body)])
    try:
        return ApiResponse(*brand.write_contact(request.body), emails)
    except ApiProblem as problem:
        problem.emails = emails
        raise


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _decode_cursor(query: dict[str, str], name: str) -> int:
    try:
        prefix, offset = base64.urlsafe_b64decode(query[name]).decode().split(":")
        if prefix == "offset" and offset.isdigit():
            return int(offset)
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        pass
    raise _invalid(name, "Unknown cursor")


def list_contacts(state: EmulatorState, brand: Brand, request: ApiRequest) -> ApiResponse:
    query = request.query
    limit = _int_parameter(query, "limit", default=100, low=1, high=250)
    errors: list[FieldError] = []
    _check_choice(query, "status", STATUSES, errors)
    if "status" in query and "tag" in query:
        errors.append(FieldError("tag", "Cannot be combined with status"))
    _check_choice(query, "sort", ("createdAt", "updatedAt"), errors)
    _check_choice(query, "direction", ("asc", "desc"), errors)
    if errors:
        raise validation_problem(errors)
    if "email" in query:
        records = [r for r in [brand.find(email=query["email"])] if r is not None]
    else:
        records = brand.contacts()
    if "phone" in query:
        records = [r for r in records if r.phones and query["phone"] in r.phones]
    if "tag" in query:
        records = [r for r in records if query["tag"] in r.tags]
    if "status" in query:
        records = [r for r in records if r.status == query["status"]]
    # The record number breaks ties, so equal times still give one stable order.
    time_field = "updated" if query.get("sort") == "updatedAt" else "created"
    records.sort(
        key=attrgetter(time_field, "number"), reverse=query.get("direction", "desc") == "desc"
    )
    if "after" in query:
        start = _decode_cursor(query, "after")
    elif "before" in query:
        start = max(0, _decode_cursor(query, "before") - limit)
    else:
        start = 0
    has_more = start + limit < len(records)
    paging = {
        "cursors": {
            "after": _encode_cursor(start + limit) if has_more else None,
            "before": _encode_cursor(start) if start > 0 else None,
        },
        "hasMore": has_more,
        "limit": limit,
    }
    contacts = brand.render(records[start : start + limit])
    return ApiResponse(200, {"contacts": contacts, "paging": paging})


def get_contact(state: EmulatorState, brand: Brand, request: ApiRequest) -> ApiResponse:
    return ApiResponse(200, brand.render([_contact(brand, request)])[0])


def patch_contact(state: EmulatorState, brand: Brand, request: ApiRequest) -> ApiResponse:
    """PATCH /contacts/{id}, or PATCH /contacts?email=."""
    if request.parameter:
        record = _contact(brand, request)
    elif not request.query.get("email"):
        raise _invalid("email", "The email query parameter is required", "required")
    elif (found := brand.find(email=request.query["email"])) is not None:
        record = found
    else:
        raise ApiProblem(404, "A contact with this email not found")
    return ApiResponse(*brand.write_contact(request.body, record), (record.email,))


def change_tags(
    state: EmulatorState, brand: Brand, request: ApiRequest, *, remove: bool
) -> ApiResponse:
    """POST (add) or DELETE (``remove``) /contacts/tags: 202, applied after ``tag_delay``."""
    errors = validate_tags(request.body)
    if errors:
        raise validation_problem(errors)
    body = request.body
    emails = brand.stored_emails(body.get("emails") or ())
    if "emails" in body:
        body = {**body, "emails": emails}
    due = state.clock.now() + state.settings.tag_delay
    state.worker.schedule(due, lambda: brand.change_tags(body, remove=remove))
    return ApiResponse(202, None, emails)


def post_batch(state: EmulatorState, brand: Brand, request: ApiRequest) -> ApiResponse:
    errors = validate_batch(request.body)
    if errors:
        raise validation_problem(errors)
    emails = brand.stored_emails(map(email_of, request.body["items"]))
    batch = brand.new_batch(request.body)
    # inProgress (its items applied) after half of batch_delay, finished after all of it.
    created, delay = state.clock.now(), state.settings.batch_delay
    state.worker.schedule(created + delay / 2, lambda: brand.start_batch(batch))
    state.worker.schedule(created + delay, lambda: brand.finish_batch(batch))
    return ApiResponse(201, {"batchID": batch.id, "totalCount": len(batch.results)}, emails)


def list_batches(state: EmulatorState, brand: Brand, request: ApiRequest) -> ApiResponse:
    query = request.query
    errors: list[FieldError] = []
    check_choice(
        query.get("endpoint"),
        "endpoint",
        ("products", "contacts", "events"),
        errors,
        required="The endpoint query parameter is required",
    )
    _check_choice(query, "status", BATCH_STATUSES, errors)
    if errors:
        raise validation_problem(errors)
    status = query.get("status")
    # Bounded: a larger offset than any list holds would overflow islice (a 500).
    offset = _int_parameter(query, "offset", default=0, low=0, high=2**62)
    limit = _int_parameter(query, "limit", default=100, low=1, high=250)
    date_from = _date_parameter(query, "dateFrom") or date.min
    date_to = _date_parameter(query, "dateTo") or date.max
    brand.forget_batches(state.settings.batch_retention)
    with brand.lock:
        matching = (
            batch
            for batch in reversed(brand.batches.values())
            if batch.endpoint == query["endpoint"]
            and status in (None, batch.status)
            and date_from <= datetime.fromtimestamp(batch.created, UTC).date() <= date_to
        )
        # Newest first, and no further than the page and one more (to know of a next page).
        selected = list(islice(matching, offset + limit + 1))
        page = [render_batch(batch) for batch in selected[offset : offset + limit]]
    kept = {k: v for k, v in query.items() if k not in ("offset", "limit")}

    def link(new_offset: int) -> str:
        parameters = urlencode({**kept, "limit": limit, "offset": new_offset})
        return f"{request.base_url}/batches?{parameters}"

    paging: dict[str, Any] = {"offset": offset, "limit": limit}
    if offset + limit < len(selected):
        paging["next"] = link(offset + limit)
    if offset > 0:
        paging["previous"] = link(max(0, offset - limit))
    return ApiResponse(200, {"batches": page, "paging": paging})


def get_batch(
    state: EmulatorState, brand: Brand, request: ApiRequest, *, items: bool
) -> ApiResponse:
    """GET /batches/{id}, or with ``items`` GET /batches/{id}/items."""
    brand.forget_batches(state.settings.batch_retention)
    return ApiResponse(200, brand.batch_json(request.parameter, items=items))


#: Endpoint template -> method -> operation; the first template matching a path wins.
_ROUTES: dict[str, dict[str, Operation]] = {
    "/contacts": {"POST": post_contact, "GET": list_contacts, "PATCH": patch_contact},
    TAGS_PATH: {
        "POST": partial(change_tags, remove=False),
        "DELETE": partial(change_tags, remove=True),
    },
    "/contacts/{id}": {"GET": get_contact, "PATCH": patch_contact},
    "/batches": {"POST": post_batch, "GET": list_batches},
    "/batches/{batchID}": {"GET": partial(get_batch, items=False)},
    "/batches/{batchID}/items": {"GET": partial(get_batch, items=True)},
}
_PATTERNS = {template: re.compile(re.sub(r"\{\w+\}", "([^/]+)", template)) for template in _ROUTES}


def route(path: str) -> tuple[str, dict[str, Operation], str] | None:
    """For ``path`` (relative to ``/api``): its endpoint template, its operations by method
    and its path parameter (``""`` if none); ``None`` for a path the API does not have."""
    for template, operations in _ROUTES.items():
        match = _PATTERNS[template].fullmatch(path)
        if match is not None:
            return template, operations, match.group(1) if match.groups() else ""
    return None
