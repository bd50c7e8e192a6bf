"""The Omnisend API operations, independent of HTTP parsing.

Each operation takes the state, the authenticated brand and an
:class:`ApiRequest`, and returns an :class:`ApiResponse` or raises
:class:`~omnisync.emulator.problems.ApiProblem`. :func:`route` maps a method
and path (relative to ``/api``) to an operation, or says 404/405.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache, partial
from itertools import islice
from operator import attrgetter
from typing import Any, TypeVar
from urllib.parse import urlencode

from omnisync.emulator.batches import render_batch, render_batch_items
from omnisync.emulator.brand import Brand, email_of
from omnisync.emulator.envelopes import validate_batch, validate_tags
from omnisync.emulator.problems import ApiProblem, FieldError, Headers, validation_problem
from omnisync.emulator.records import ContactRecord
from omnisync.emulator.state import EmulatorState
from omnisync.emulator.validation import STATUSES

BATCH_STATUSES = ("pending", "inProgress", "finished", "stopped")
TAGS_PATH = "/contacts/tags"


@dataclass(frozen=True)
class ApiRequest:
    """One parsed API request; ``body`` is the decoded JSON (``None`` when empty)."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    raw: bytes
    base_url: str


@dataclass(frozen=True)
class ApiResponse:
    """``body`` ``None`` means an empty body; ``emails`` go to the request log."""

    status: int
    body: Any = None
    emails: tuple[str, ...] = ()
    headers: Headers = ()


Operation = Callable[[EmulatorState, Brand, ApiRequest, str], ApiResponse]
Found = TypeVar("Found")


def _invalid(name: str, message: str) -> ApiProblem:
    """A 400 for the one query parameter ``name``, in the wrong format."""
    return validation_problem([FieldError(name, "invalid_format", message)])


def _check_choice(
    query: dict[str, str], name: str, allowed: tuple[str, ...], errors: list[FieldError]
) -> None:
    """Add an error when the query parameter ``name`` is given and not one of ``allowed``."""
    if name in query and query[name] not in allowed:
        errors.append(FieldError(name, "invalid_format", f"Must be one of {', '.join(allowed)}"))


def _found(value: Found | None, what: str) -> Found:
    """``value``, or a 404 saying ``what`` was not found."""
    if value is None:
        raise ApiProblem(404, f"{what} not found")
    return value


def _int_parameter(
    query: dict[str, str], name: str, *, default: int, low: int, high: int | None
) -> int:
    text = query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise _invalid(name, "Must be an integer") from None
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise _invalid(name, f"Must be {bounds}")
    return value


# -- contacts -----------------------------------------------------------------


def post_contact(state: EmulatorState, brand: Brand, request: ApiRequest, _: str) -> ApiResponse:
    emails = brand.stored_emails([email_of(request.body)])
    try:
        status, body = brand.upsert_contact(
            request.body,
            at=state.wall_seconds(),
            failing_emails=state.injector.faults.failing_emails,
        )
    except ApiProblem as problem:
        problem.emails = emails
        raise
    return ApiResponse(status, body, emails)


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, name: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        offset = json.loads(base64.urlsafe_b64decode(padded))["offset"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise _invalid(name, "Unknown cursor") from None
    if not isinstance(offset, int) or offset < 0:
        raise _invalid(name, "Unknown cursor")
    return offset


def list_contacts(state: EmulatorState, brand: Brand, request: ApiRequest, _: str) -> ApiResponse:
    query = request.query
    limit = _int_parameter(query, "limit", default=100, low=1, high=250)
    errors: list[FieldError] = []
    _check_choice(query, "status", STATUSES, errors)
    if "status" in query and "tag" in query:
        errors.append(FieldError("tag", "invalid_format", "Cannot be combined with status"))
    _check_choice(query, "sort", ("createdAt", "updatedAt"), errors)
    _check_choice(query, "direction", ("asc", "desc"), errors)
    if errors:
        raise validation_problem(errors)
    if "email" in query:
        found = brand.find(email=query["email"])
        records = [found] if found is not None else []
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
        start = _decode_cursor(query["after"], "after")
    elif "before" in query:
        start = max(0, _decode_cursor(query["before"], "before") - limit)
    else:
        start = 0
    page = records[start : start + limit]
    has_more = start + limit < len(records)
    paging = {
        "cursors": {
            "after": _encode_cursor(start + limit) if has_more else None,
            "before": _encode_cursor(start) if start > 0 else None,
        },
        "hasMore": has_more,
        "limit": limit,
    }
    return ApiResponse(200, {"contacts": [brand.render(r) for r in page], "paging": paging})


def get_contact(
    state: EmulatorState, brand: Brand, request: ApiRequest, contact_id: str
) -> ApiResponse:
    record = _found(brand.find(contact_id=contact_id), f"Contact {contact_id}")
    return ApiResponse(200, brand.render(record))


def _patch(
    state: EmulatorState, brand: Brand, request: ApiRequest, record: ContactRecord
) -> ApiResponse:
    try:
        body = brand.patch_contact(
            record,
            request.body,
            at=state.wall_seconds(),
            failing_emails=state.injector.faults.failing_emails,
        )
    except ValueError as error:
        raise ApiProblem(409, str(error)) from None
    return ApiResponse(200, body, (record.email,))


def patch_contact_by_email(
    state: EmulatorState, brand: Brand, request: ApiRequest, _: str
) -> ApiResponse:
    email = request.query.get("email")
    if not email:
        raise validation_problem(
            [FieldError("email", "required", "The email query parameter is required")]
        )
    record = _found(brand.find(email=email), "A contact with this email")
    return _patch(state, brand, request, record)


def patch_contact_by_id(
    state: EmulatorState, brand: Brand, request: ApiRequest, contact_id: str
) -> ApiResponse:
    record = _found(brand.find(contact_id=contact_id), f"Contact {contact_id}")
    return _patch(state, brand, request, record)


def change_tags(
    state: EmulatorState, brand: Brand, request: ApiRequest, _: str, *, remove: bool
) -> ApiResponse:
    """POST (add) or DELETE (``remove``) /contacts/tags: 202, applied after ``tag_delay``."""
    errors = validate_tags(request.body)
    if errors:
        raise validation_problem(errors)
    body = request.body
    emails = brand.stored_emails(body.get("emails") or ())
    if "emails" in body:
        body = {**body, "emails": emails}
    state.schedule_tags(brand, body, remove=remove)
    return ApiResponse(202, None, emails)


# -- batches ------------------------------------------------------------------


def post_batch(state: EmulatorState, brand: Brand, request: ApiRequest, _: str) -> ApiResponse:
    errors = validate_batch(request.body)
    if errors:
        raise validation_problem(errors)
    emails = brand.stored_emails(map(email_of, request.body["items"]))
    batch = brand.new_batch(request.body, raw=request.raw, at=state.wall_seconds())
    state.schedule_batch(brand, batch)
    return ApiResponse(201, {"batchID": batch.id, "totalCount": batch.total}, emails)


def _date_parameter(query: dict[str, str], name: str) -> date | None:
    text = query.get(name)
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise _invalid(name, "Must be a date as yyyy-mm-dd") from None


def list_batches(state: EmulatorState, brand: Brand, request: ApiRequest, _: str) -> ApiResponse:
    query = request.query
    errors: list[FieldError] = []
    endpoint = query.get("endpoint")
    if endpoint is None:
        errors.append(
            FieldError("endpoint", "required", "The endpoint query parameter is required")
        )
    _check_choice(query, "endpoint", ("products", "contacts", "events"), errors)
    _check_choice(query, "status", BATCH_STATUSES, errors)
    if errors:
        raise validation_problem(errors)
    status = query.get("status")
    offset = _int_parameter(query, "offset", default=0, low=0, high=None)
    limit = _int_parameter(query, "limit", default=100, low=1, high=250)
    date_from, date_to = _date_parameter(query, "dateFrom"), _date_parameter(query, "dateTo")
    with brand.lock:
        matching = (
            batch
            for batch in reversed(brand.batches.values())
            if batch.endpoint == endpoint
            and (status is None or batch.status == status)
            and (
                date_from is None or datetime.fromtimestamp(batch.created, UTC).date() >= date_from
            )
            and (date_to is None or datetime.fromtimestamp(batch.created, UTC).date() <= date_to)
        )
        # Newest first, and no further than the page and one more (to know of a
        # next page): a client polling the first page of ten thousand batches
        # costs a page, not ten thousand.
        selected = list(islice(matching, offset + limit + 1))
        page = [render_batch(batch) for batch in selected[offset : offset + limit]]
    kept = {k: v for k, v in query.items() if k not in ("offset", "limit")}

    def link(new_offset: int) -> str:
        return f"{request.base_url}/batches?" + urlencode(
            {**kept, "limit": limit, "offset": new_offset}
        )

    paging: dict[str, Any] = {"offset": offset, "limit": limit}
    if offset + limit < len(selected):
        paging["next"] = link(offset + limit)
    if offset > 0:
        paging["previous"] = link(max(0, offset - limit))
    return ApiResponse(200, {"batches": page, "paging": paging})


def get_batch(
    state: EmulatorState, brand: Brand, request: ApiRequest, batch_id: str
) -> ApiResponse:
    batch = _found(brand.get_batch(batch_id), f"Batch {batch_id}")
    with brand.lock:
        return ApiResponse(200, render_batch(batch))


def get_batch_items(
    state: EmulatorState, brand: Brand, request: ApiRequest, batch_id: str
) -> ApiResponse:
    batch = _found(brand.get_batch(batch_id), f"Batch {batch_id}")
    with brand.lock:
        book = brand.book

        def contact_now(item: Any) -> dict[str, Any]:
            email = email_of(item)
            record = None if email is None else book.by_email.get(email)
            return {} if record is None else book.render(record)

        return ApiResponse(200, render_batch_items(batch, contact_now))


# -- routing --------------------------------------------------------------------

_ROUTES: tuple[tuple[re.Pattern[str], str, dict[str, Operation]], ...] = (
    (
        re.compile(r"/contacts"),
        "/contacts",
        {"POST": post_contact, "GET": list_contacts, "PATCH": patch_contact_by_email},
    ),
    (
        re.compile(r"/contacts/tags"),
        TAGS_PATH,
        {"POST": partial(change_tags, remove=False), "DELETE": partial(change_tags, remove=True)},
    ),
    (
        re.compile(r"/contacts/([^/]+)"),
        "/contacts/{id}",
        {"GET": get_contact, "PATCH": patch_contact_by_id},
    ),
    (re.compile(r"/batches"), "/batches", {"POST": post_batch, "GET": list_batches}),
    (re.compile(r"/batches/([^/]+)"), "/batches/{batchID}", {"GET": get_batch}),
    (re.compile(r"/batches/([^/]+)/items"), "/batches/{batchID}/items", {"GET": get_batch_items}),
)


@dataclass(frozen=True)
class Route:
    """What a request is: its endpoint name, operation (``None``: 405) and path parameter."""

    endpoint: str
    operation: Operation | None
    parameter: str
    allowed: tuple[str, ...]


@lru_cache(maxsize=1024)
def route(method: str, path: str) -> Route | None:
    """The route for ``method`` on ``path`` (relative to ``/api``); ``None`` for an unknown path.

    Remembered: a Route is immutable, and a client sends the same few paths
    (POST /batches, POST /contacts/tags) thousands of times.
    """
    for pattern, template, operations in _ROUTES:
        match = pattern.fullmatch(path)
        if match is None:
            continue
        operation = operations.get(method)
        parameter = match.group(1) if match.groups() else ""
        return Route(f"{method} {template}", operation, parameter, tuple(operations))
    return None
