"""The inspection API for tests: ``/_emulator/...`` over HTTP, and the shared helpers.

No API key; loopback clients only. Paths (relative to ``/_emulator``), all
JSON; ``brand`` may be left out when there is one brand:

=======  =====================  =============================================
GET      /brands                ``{"brands": [name, ...]}``
GET      /contacts              ``?brand=&email=`` -> ``{"contacts": [ContactResponse]}``
POST     /contacts              seed one pre-existing contact: ``{brand?, email,
                                fields?, customProperties?, tags?, status?,
                                statusChangedAt?}`` -> 201 ContactResponse
GET      /welcome-messages      ``{"welcomeMessages": [{email, at, channel, identifier}]}``
GET      /status-changes        ``{"statusChanges": [{email, from, to, at, channel}]}``
GET      /requests              ``?brand=&since=N`` -> ``{"requests": [RequestRecord]}``
GET      /counts                ``{total, rate_limited, by_endpoint: {endpoint: {status: n}}}``
GET      /batches               ``?brand=`` -> ``{"batches": [Batch summary]}``, newest first
GET/PUT  /faults                read / change (PUT merges the given settings)
GET/PUT  /settings              ``rate_limits``, ``batch_delay``, ``tag_delay``, ``max_batch_bytes``
POST     /drain                 ``{timeout?, dueOnly?}`` -> ``{"idle": bool}`` once queued
                                work (or only the work due by now) is applied
POST     /reset                 forget contacts, batches, windows, logs and counts
=======  =====================  =============================================

Bad input (a ``ValueError``) answers 400 ``{"error": "..."}``; an unknown path 404.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from typing import Any

from omnisync.emulator.state import EmulatorState
from omnisync.emulator.validation import CONTACT_FIELDS, validate_contact
from omnisync.emulator.values import check_flag, check_number


def seed_contact(
    state: EmulatorState,
    email: str,
    *,
    brand: str | None = None,
    fields: Mapping[str, str] | None = None,
    custom_properties: dict[str, Any] | None = None,
    tags: Iterable[str] = (),
    status: str = "nonSubscribed",
    status_changed_at: str | None = None,
) -> dict[str, Any]:
    """Create (or overwrite) a contact as if it existed before the test: no welcome, no change.

    Returns its ContactResponse body. What the API would refuse in a contact
    body is refused here too: bad input raises ``ValueError`` naming each
    field that is wrong.
    """
    fields = dict(fields or {})
    unknown = sorted(set(fields) - set(CONTACT_FIELDS))
    if unknown:
        raise ValueError(f"unknown contact field(s) {unknown}; known: {sorted(CONTACT_FIELDS)}")
    channel = {"status": status}
    if status_changed_at is not None:
        channel["statusChangedAt"] = status_changed_at
    identifier = {"type": "email", "id": email, "channels": {"email": channel}}
    # A string is not a list of tags: left whole for the validator to refuse.
    tag_list = tags if isinstance(tags, str) else list(tags)
    body: dict[str, Any] = {**fields, "identifiers": [identifier], "tags": tag_list}
    if custom_properties is not None:
        body["customProperties"] = custom_properties
    errors = validate_contact(body, creating=True)
    if errors:
        raise ValueError("; ".join(f"{error.field}: {error.message}" for error in errors))
    contact: dict[str, Any] = state.brand(brand).seed(
        email,
        at=state.wall_seconds(),
        fields=fields,
        custom_properties=custom_properties,
        tags=tag_list,
        status=status,
        status_changed_at=status_changed_at,
    )
    return contact


def contacts_json(
    state: EmulatorState, *, brand: str | None, email: str | None
) -> list[dict[str, Any]]:
    """The brand's contacts as ContactResponse bodies, oldest first (only ``email``'s if given)."""
    target = state.brand(brand)
    if email is not None:
        record = target.find(email=email)
        return [] if record is None else [target.render(record)]
    with target.lock:
        return [target.book.render(record) for record in target.book.live_records()]


def _json_body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        raise ValueError("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body


def handle_inspection(
    state: EmulatorState, method: str, path: str, query: dict[str, str], raw: bytes
) -> tuple[int, Any]:
    """Answer one inspection request: ``(status, JSON body)``; bad input (a ``ValueError``)
    answers 400 ``{"error": ...}``."""
    try:
        return _handle(state, method, path.rstrip("/") or "/", query, raw)
    except ValueError as error:
        return 400, {"error": str(error)}


def _handle(
    state: EmulatorState, method: str, path: str, query: dict[str, str], raw: bytes
) -> tuple[int, Any]:
    brand = query.get("brand")
    key = (method, path)
    if key == ("GET", "/brands"):
        return 200, {"brands": sorted(state.brands)}
    if key == ("GET", "/contacts"):
        return 200, {"contacts": contacts_json(state, brand=brand, email=query.get("email"))}
    if key == ("POST", "/contacts"):
        body = _json_body(raw)
        if not isinstance(body.get("email"), str):
            raise ValueError("email is required")
        contact = seed_contact(
            state,
            body["email"],
            brand=body.get("brand", brand),
            fields=body.get("fields"),
            custom_properties=body.get("customProperties"),
            tags=body.get("tags") or (),
            status=body.get("status", "nonSubscribed"),
            status_changed_at=body.get("statusChangedAt"),
        )
        return 201, contact
    if key == ("GET", "/welcome-messages"):
        messages = state.brand(brand).welcome_messages()
        return 200, {"welcomeMessages": [dataclasses.asdict(m) for m in messages]}
    if key == ("GET", "/status-changes"):
        return 200, {
            "statusChanges": [
                {
                    "email": c.email,
                    "from": c.from_status,
                    "to": c.to_status,
                    "at": c.at,
                    "channel": c.channel,
                }
                for c in state.brand(brand).status_changes()
            ]
        }
    if key == ("GET", "/requests"):
        try:
            since = int(query.get("since", "0"))
        except ValueError:
            raise ValueError("since must be an integer sequence number") from None
        records = state.request_log(brand)
        return 200, {"requests": [r.to_json() for r in records if r.sequence > since]}
    if key == ("GET", "/counts"):
        return 200, state.counts()
    if key == ("GET", "/batches"):
        return 200, {"batches": state.brand(brand).batch_summaries()}
    if path == "/faults" and method in ("GET", "PUT", "PATCH"):
        if method != "GET":
            state.injector.set(state.injector.faults.changed(_json_body(raw)))
        return 200, state.injector.faults.to_json()
    if path == "/settings" and method in ("GET", "PUT", "PATCH"):
        if method != "GET":
            state.settings = state.settings.changed(_json_body(raw))
        return 200, dataclasses.asdict(state.settings)
    if key == ("POST", "/drain"):
        body = _json_body(raw)
        timeout = body.get("timeout", 10.0)
        check_number("timeout", timeout, low=0)
        due_only = body.get("dueOnly", False)
        check_flag("dueOnly", due_only)
        return 200, {"idle": state.worker.wait_idle(float(timeout), due_only=due_only)}
    if key == ("POST", "/reset"):
        state.reset()
        return 200, {"reset": True}
    return 404, {"error": f"no inspection endpoint {method} /_emulator{path}"}
