"""Request validation and problem documents as Omnisend does them (pure).

Every error the emulator answers is an RFC 9457 problem document ``{type, title,
status, detail, instance}`` with ``instance`` a fresh trace id
(``urn:omnisend:request:<uuid>``); a 400 adds ``errors[]`` with every failing
field at once, a 429 adds ``retryAfter``.

Each ``validate_*`` returns a list of :class:`FieldError` (empty when the
request is valid). Field paths are dotted with list indexes in brackets
(``identifiers[0].id``, ``customProperties.shoe_size``). A value of the wrong
JSON type is an ``invalid_format`` error like any other, never an exception:
malformed input answers 400, not 500. Unknown top-level properties are
ignored, as a lenient API does; the contract tests
(``tests/openapi_contract.py``) catch a misspelt one. A batch's items must be
objects; what is inside each is checked when the item is processed.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass
from datetime import date
from typing import Any

from omnisync.emulator.contacts import STRING_FIELDS, country_name, parse_timestamp

Headers = tuple[tuple[str, str], ...]

STATUSES = ("subscribed", "unsubscribed", "nonSubscribed")
MAX_EMAIL_LENGTH = 254
MAX_TAGS_PER_CONTACT = 100
MAX_TAG_LENGTH = 100
MAX_CUSTOM_PROPERTIES = 200
MAX_CUSTOM_STRING_LENGTH = 2048
MAX_BATCH_ITEMS = 100
MAX_TAG_SELECTORS = 250

EMAIL_PATTERN = re.compile(r"[^\s@]+@[^\s@.]+(?:\.[^\s@.]+)+")
PHONE_PATTERN = re.compile(r"\+[1-9][0-9]{6,14}")
PROPERTY_NAME_PATTERN = re.compile(r"[A-Za-z0-9_]{1,128}")
DATE_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_SELECTORS = ("emails", "contactIDs", "phones", "segmentID")
_TITLES = {
    400: ("validation-failed", "Validation failed"),
    401: ("unauthorized", "Unauthorized"),
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


_NOT_AN_OBJECT = FieldError("", "The body must be a JSON object")
_TOO_MANY_PROPERTIES = FieldError(
    "customProperties",
    f"At most {MAX_CUSTOM_PROPERTIES} custom properties are allowed",
    "too_long",
)


@dataclass(eq=False, repr=False)
class ApiProblem(Exception):
    """An error answer, raised inside request handling; ``detail`` never carries an API key.
    ``headers`` go with the answer (a 405's ``Allow``); ``emails``, the contacts the refused
    request named, go to the request log."""

    status: int
    detail: str
    _: KW_ONLY
    errors: tuple[FieldError, ...] = ()
    retry_after: int | None = None
    headers: Headers = ()
    emails: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        super().__init__(self.detail)  # its text and repr: the detail, never the e-mails

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


def check_choice(
    value: object,
    path: str,
    choices: tuple[str, ...],
    errors: list[FieldError],
    *,
    required: str | None = None,
    message: str | None = None,
) -> None:
    """Add an error (``message``, else "Must be one of ...") unless ``value`` is one of the
    strings ``choices``; when ``required`` is given, a missing value (``None``) is a
    ``required`` error with that message."""
    if value is None and required is not None:
        errors.append(FieldError(path, required, "required"))
    elif not (isinstance(value, str) and value in choices):
        errors.append(FieldError(path, message or f"Must be one of {', '.join(choices)}"))


def validate_contact(body: Any, *, creating: bool) -> list[FieldError]:
    """Check a contact body: POST /contacts and batch items (``creating``: an e-mail
    identifier is required) or a PATCH (identifiers may be left out)."""
    if not isinstance(body, dict):
        return [_NOT_AN_OBJECT]
    errors: list[FieldError] = []
    identifiers = body.get("identifiers")
    if identifiers is not None and not isinstance(identifiers, list):
        errors.append(FieldError("identifiers", "Must be an array"))
    else:
        _check_identifiers(identifiers or [], errors, creating=creating)
    for name, value in body.items():
        if name in STRING_FIELDS:
            _check_string(name, value, STRING_FIELDS[name], errors)
        elif name == "countryCode" and country_name(value) is None:
            message = "Must be an existing ISO 3166-1 alpha-2 code (two uppercase letters)"
            errors.append(FieldError(name, message))
        elif name == "customProperties":
            _check_custom_properties(value, errors)
        elif name == "tags":
            _check_tags(value, errors)
        elif name == "birthdate" and not _is_date(value):
            errors.append(FieldError(name, "Must be a date as YYYY-MM-DD"))
        elif name == "gender":
            check_choice(value, name, ("m", "f"), errors, message="Must be 'm' or 'f'")
        elif name == "createdAt" and parse_timestamp(value) is None:
            errors.append(FieldError(name, "Must be an RFC 3339 timestamp"))
    return errors


def _check_string(path: str, value: object, limit: int, errors: list[FieldError]) -> None:
    if not isinstance(value, str):
        errors.append(FieldError(path, "Must be a string"))
    elif len(value) > limit:
        errors.append(FieldError(path, f"Must be at most {limit} characters", "too_long"))


def _is_date(value: object) -> bool:
    # The form first: fromisoformat reads ISO week dates and "20240101" too.
    if not isinstance(value, str) or DATE_PATTERN.fullmatch(value) is None:
        return False
    try:
        return bool(date.fromisoformat(value))
    except ValueError:  # a month or day out of range
        return False


def _check_identifiers(identifiers: list[Any], errors: list[FieldError], *, creating: bool) -> None:
    emails: set[str] = set()
    for index, identifier in enumerate(identifiers):
        path = f"identifiers[{index}]"
        if not isinstance(identifier, dict):
            errors.append(FieldError(path, "Must be an object"))
            continue
        kind, value = identifier.get("type"), identifier.get("id")
        check_choice(
            kind,
            f"{path}.type",
            ("email", "phone"),
            errors,
            required="Identifier type is required",
            message="Must be email or phone",
        )
        if value is None or value == "":
            errors.append(FieldError(f"{path}.id", "Identifier value is required", "required"))
        elif kind == "email":
            if isinstance(value, str) and len(value) > MAX_EMAIL_LENGTH:
                message = f"Must be at most {MAX_EMAIL_LENGTH} characters"
                errors.append(FieldError(f"{path}.id", message, "too_long"))
            elif not isinstance(value, str) or EMAIL_PATTERN.fullmatch(value) is None:
                errors.append(FieldError(f"{path}.id", "Must be a valid email address"))
            else:
                emails.add(value)
        elif kind == "phone" and not (isinstance(value, str) and PHONE_PATTERN.fullmatch(value)):
            errors.append(FieldError(f"{path}.id", "Must be a phone number in E.164 format"))
        if identifier.get("channels") is not None:
            _check_channels(identifier["channels"], f"{path}.channels", kind, errors)
        if not isinstance(identifier.get("sendWelcomeMessage", False), bool):
            errors.append(FieldError(f"{path}.sendWelcomeMessage", "Must be a boolean"))
        if identifier.get("consent") is not None:
            _check_consent(identifier["consent"], f"{path}.consent", errors)
    if len(emails) > 1:
        errors.append(FieldError("identifiers", "At most one email identifier is allowed"))
    if creating and not emails and not any(e.field.startswith("identifiers") for e in errors):
        errors.append(FieldError("identifiers", "An email identifier is required", "required"))


def _check_channels(channels: object, path: str, kind: object, errors: list[FieldError]) -> None:
    if not isinstance(channels, dict):
        errors.append(FieldError(path, "Must be an object keyed by channel"))
        return
    expected = "email" if kind == "email" else "sms"
    for channel, details in channels.items():
        channel_path = f"{path}.{channel}"
        if channel != expected:
            message = f"A {kind} identifier has only the {expected} channel"
            errors.append(FieldError(channel_path, message))
        elif not isinstance(details, dict):
            errors.append(FieldError(channel_path, "Must be an object"))
        else:
            status_path = f"{channel_path}.status"
            status = details.get("status")
            check_choice(status, status_path, STATUSES, errors, required="Status is required")
            if "statusChangedAt" in details and parse_timestamp(details["statusChangedAt"]) is None:
                message = "Must be an RFC 3339 timestamp with an offset"
                errors.append(FieldError(f"{channel_path}.statusChangedAt", message))


def _check_consent(consent: object, path: str, errors: list[FieldError]) -> None:
    if not isinstance(consent, dict):
        errors.append(FieldError(path, "Must be an object"))
        return
    for name in ("ip", "source", "userAgent"):
        if name in consent:
            _check_string(f"{path}.{name}", consent[name], 512, errors)
    if "createdAt" in consent and parse_timestamp(consent["createdAt"]) is None:
        errors.append(FieldError(f"{path}.createdAt", "Must be an RFC 3339 timestamp"))


def _check_tags(tags: object, errors: list[FieldError]) -> None:
    if not isinstance(tags, list):
        errors.append(FieldError("tags", "Must be an array of strings"))
        return
    if len(tags) > MAX_TAGS_PER_CONTACT:
        message = f"At most {MAX_TAGS_PER_CONTACT} tags are allowed"
        errors.append(FieldError("tags", message, "too_long"))
    for index, tag in enumerate(tags):
        if not isinstance(tag, str) or not tag.strip():
            errors.append(FieldError(f"tags[{index}]", "Must be a string"))
        else:
            _check_string(f"tags[{index}]", tag, MAX_TAG_LENGTH, errors)


def _check_custom_properties(properties: object, errors: list[FieldError]) -> None:
    if not isinstance(properties, dict):
        errors.append(FieldError("customProperties", "Must be an object"))
        return
    if len(properties) > MAX_CUSTOM_PROPERTIES:
        errors.append(_TOO_MANY_PROPERTIES)
    for name, value in properties.items():
        path = f"customProperties.{name}"
        if PROPERTY_NAME_PATTERN.fullmatch(name) is None:
            message = "Property names must be 1-128 characters of A-Z, a-z, 0-9 and _"
            errors.append(FieldError(path, message))
        if isinstance(value, str):
            _check_string(path, value, MAX_CUSTOM_STRING_LENGTH, errors)
        elif isinstance(value, list):
            if not all(isinstance(item, str | int | float) for item in value):
                errors.append(FieldError(path, "Lists may hold strings and numbers only"))
        elif value is not None and not isinstance(value, bool | int | float):
            errors.append(FieldError(path, "Must be a string, number, boolean or list"))


def check_merged_properties(stored: Mapping[str, Any], body: Any, errors: list[FieldError]) -> None:
    """Add the limit's error when ``body``'s custom properties, merged into the ``stored``
    ones of its contact, would leave it more than :data:`MAX_CUSTOM_PROPERTIES`."""
    properties = body.get("customProperties") if isinstance(body, dict) else None
    if (
        isinstance(properties, dict)
        and len(properties) <= MAX_CUSTOM_PROPERTIES  # else refused already, on its own
        and len(stored.keys() | properties.keys()) > MAX_CUSTOM_PROPERTIES
    ):
        errors.append(_TOO_MANY_PROPERTIES)


def validate_batch(body: Any) -> list[FieldError]:
    """Check a POST /batches envelope: a contacts batch, ``method`` ``POST`` or ``PUT``
    (CreateBatchRequest allows both; an item is applied as POST /contacts either way)."""
    if not isinstance(body, dict):
        return [_NOT_AN_OBJECT]
    errors: list[FieldError] = []
    endpoint, method, items = body.get("endpoint"), body.get("method"), body.get("items")
    endpoints = ("products", "contacts", "events", "categories")
    check_choice(endpoint, "endpoint", endpoints, errors, required="Endpoint is required")
    if endpoint in endpoints and endpoint != "contacts":
        errors.append(FieldError("endpoint", "The emulator supports contacts batches only"))
    check_choice(
        method,
        "method",
        ("POST", "PUT"),
        errors,
        required="Method is required",
        message="Must be POST or PUT",
    )
    if items is None or items == []:
        errors.append(FieldError("items", "At least one item is required", "required"))
    elif not isinstance(items, list):
        errors.append(FieldError("items", "Must be an array"))
    elif len(items) > MAX_BATCH_ITEMS:
        message = f"At most {MAX_BATCH_ITEMS} items are allowed"
        errors.append(FieldError("items", message, "too_long"))
    else:
        errors.extend(
            FieldError(f"items[{index}]", "Must be an object")
            for index, item in enumerate(items)
            if not isinstance(item, dict)
        )
    if not isinstance(body.get("origin", ""), str):
        errors.append(FieldError("origin", "Must be a string"))
    return errors


def validate_tags(body: Any) -> list[FieldError]:
    """Check a POST or DELETE /contacts/tags body: tags, and contacts named by ``emails``,
    ``contactIDs``, ``phones`` or ``segmentID``."""
    if not isinstance(body, dict):
        return [_NOT_AN_OBJECT]
    errors: list[FieldError] = []
    if body.get("tags") in (None, []):
        errors.append(FieldError("tags", "At least one tag is required", "required"))
    else:
        _check_tags(body["tags"], errors)
    selectors = 0
    for name in _SELECTORS[:3]:
        values = body.get(name, [])
        if not isinstance(values, list) or not all(isinstance(value, str) for value in values):
            errors.append(FieldError(name, "Must be an array of strings"))
        elif len(values) > MAX_TAG_SELECTORS:
            message = f"At most {MAX_TAG_SELECTORS} values are allowed"
            errors.append(FieldError(name, message, "too_long"))
        else:
            selectors += len(values)
    if "segmentID" in body:
        if isinstance(body["segmentID"], str):
            selectors += 1
        else:
            errors.append(FieldError("segmentID", "Must be a string"))
    if selectors == 0 and not any(error.field in _SELECTORS for error in errors):
        message = "Name contacts by emails, contactIDs, phones or segmentID"
        errors.append(FieldError("emails", message, "required"))
    return errors
