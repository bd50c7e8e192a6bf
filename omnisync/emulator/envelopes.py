"""Validation of the call envelopes: POST /batches and the tags endpoint (pure).

As in :mod:`omnisync.emulator.validation`: each function returns every
failing field at once as :class:`FieldError` values, and a value of the wrong
JSON type is an ``invalid_format`` error, never an exception. A batch's items
must be objects; what is inside each one is checked when the item is
processed, as POST /contacts checks a body (``docs/omnisend.md``).
"""

from __future__ import annotations

from itertools import repeat
from typing import Any

from omnisync.emulator.problems import FieldError
from omnisync.emulator.validation import check_tags, is_one_of

MAX_BATCH_ITEMS = 100
MAX_TAG_SELECTORS = 250
BATCH_ENDPOINTS = frozenset({"products", "contacts", "events", "categories"})
BATCH_METHODS = frozenset({"POST", "PUT"})
_SELECTORS = ("emails", "contactIDs", "phones", "segmentID")


def validate_batch(body: Any) -> list[FieldError]:
    """Check a POST /batches envelope; the emulator processes contacts batches only.

    ``method`` may be ``POST`` or ``PUT`` (CreateBatchRequest allows both); a
    contacts item is applied as POST /contacts applies a body either way.
    """
    if not isinstance(body, dict):
        return [FieldError("", "invalid_format", "The body must be a JSON object")]
    errors: list[FieldError] = []
    endpoint = body.get("endpoint")
    if endpoint is None:
        errors.append(FieldError("endpoint", "required", "Endpoint is required"))
    elif not is_one_of(endpoint, BATCH_ENDPOINTS):
        errors.append(
            FieldError(
                "endpoint",
                "invalid_format",
                "Must be one of products, contacts, events, categories",
            )
        )
    elif endpoint != "contacts":
        errors.append(
            FieldError("endpoint", "invalid_format", "The emulator supports contacts batches only")
        )
    method = body.get("method")
    if method is None:
        errors.append(FieldError("method", "required", "Method is required"))
    elif not is_one_of(method, BATCH_METHODS):
        errors.append(FieldError("method", "invalid_format", "Must be POST or PUT"))
    items = body.get("items")
    if items is None or items == []:
        errors.append(FieldError("items", "required", "At least one item is required"))
    elif not isinstance(items, list):
        errors.append(FieldError("items", "invalid_format", "Must be an array"))
    elif len(items) > MAX_BATCH_ITEMS:
        errors.append(
            FieldError("items", "too_long", f"At most {MAX_BATCH_ITEMS} items are allowed")
        )
    else:
        errors.extend(
            FieldError(f"items[{index}]", "invalid_format", "Must be an object")
            for index, item in enumerate(items)
            if not isinstance(item, dict)
        )
    if "origin" in body and not isinstance(body["origin"], str):
        errors.append(FieldError("origin", "invalid_format", "Must be a string"))
    return errors


def validate_tags(body: Any) -> list[FieldError]:
    """Check a POST or DELETE /contacts/tags body."""
    if not isinstance(body, dict):
        return [FieldError("", "invalid_format", "The body must be a JSON object")]
    errors: list[FieldError] = []
    tags = body.get("tags")
    if tags is None or tags == []:
        errors.append(FieldError("tags", "required", "At least one tag is required"))
    else:
        check_tags(tags, errors)
    selectors = 0
    for name in _SELECTORS[:3]:
        if name not in body:
            continue
        values = body[name]
        # map() runs isinstance without a Python frame per value (250 e-mails a call).
        if not isinstance(values, list) or not all(map(isinstance, values, repeat(str))):
            errors.append(FieldError(name, "invalid_format", "Must be an array of strings"))
            continue
        if len(values) > MAX_TAG_SELECTORS:
            errors.append(
                FieldError(name, "too_long", f"At most {MAX_TAG_SELECTORS} values are allowed")
            )
        selectors += len(values)
    if "segmentID" in body:
        if isinstance(body["segmentID"], str):
            selectors += 1
        else:
            errors.append(FieldError("segmentID", "invalid_format", "Must be a string"))
    if selectors == 0 and not any(error.field in _SELECTORS for error in errors):
        errors.append(
            FieldError(
                "emails", "required", "Name contacts by emails, contactIDs, phones or segmentID"
            )
        )
    return errors
