"""Request validation as Omnisend does it: every failing field at once (pure).

Each function returns a list of :class:`FieldError` (empty when the request is
valid); the caller turns a non-empty list into one 400 ValidationProblem.
Codes are Omnisend's: ``required``, ``invalid_format``, ``too_long``. Field
paths are dotted with list indexes in brackets: ``identifiers[0].id``,
``customProperties.shoe_size``, ``items``.

Unknown top-level properties are ignored, as a lenient API does; the contract
tests (``tests/openapi_contract.py``) are where a misspelt property is caught.
A value of the wrong JSON type (an object where a string belongs) is an
``invalid_format`` error like any other, never an exception: malformed input
answers 400, not 500. The batch and tag call envelopes are checked in
:mod:`omnisync.emulator.envelopes`.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import date
from functools import lru_cache
from typing import Any

from omnisync.emulator.problems import FieldError
from omnisync.emulator.values import country_name, parse_timestamp

#: Maximum lengths of the plain string fields of a contact.
STRING_FIELDS: dict[str, int] = {
    "firstName": 128,
    "lastName": 128,
    "address": 256,
    "city": 128,
    "state": 128,
    "postalCode": 32,
    "country": 128,
}
#: Every plain contact field a seeded contact may carry.
CONTACT_FIELDS: tuple[str, ...] = (*STRING_FIELDS, "countryCode", "birthdate", "gender")
MAX_EMAIL_LENGTH = 254
MAX_TAGS_PER_CONTACT = 100
MAX_TAG_LENGTH = 100
MAX_CUSTOM_PROPERTIES = 200
MAX_CUSTOM_STRING_LENGTH = 2048

STATUSES = ("subscribed", "unsubscribed", "nonSubscribed")

EMAIL_PATTERN = re.compile(r"[^\s@]+@[^\s@.]+(?:\.[^\s@.]+)+")
PHONE_PATTERN = re.compile(r"\+[1-9][0-9]{6,14}")
PROPERTY_NAME_PATTERN = re.compile(r"[A-Za-z0-9_]{1,128}")


def is_one_of(value: object, choices: Collection[str]) -> bool:
    """Whether ``value`` is one of the strings ``choices`` (an object or a list is not)."""
    return isinstance(value, str) and value in choices


def is_valid_email(value: object) -> bool:
    return (
        isinstance(value, str)
        and len(value) <= MAX_EMAIL_LENGTH
        and EMAIL_PATTERN.fullmatch(value) is not None
    )


def validate_contact(body: Any, *, creating: bool) -> list[FieldError]:
    """Check a contact body (POST /contacts, a batch item, or a PATCH).

    ``creating`` requires an e-mail identifier (POST and batch items); a PATCH
    may leave identifiers out.
    """
    if not isinstance(body, dict):
        return [FieldError("", "invalid_format", "The body must be a JSON object")]
    errors: list[FieldError] = []
    identifiers = body.get("identifiers")
    if identifiers is None:
        if creating:
            errors.append(FieldError("identifiers", "required", "An email identifier is required"))
    elif not isinstance(identifiers, list):
        errors.append(FieldError("identifiers", "invalid_format", "Must be an array"))
    else:
        _check_identifiers(identifiers, errors, creating=creating)
    # One pass over what the body holds (usually a handful of keys), not over every rule.
    for name, value in body.items():
        limit = STRING_FIELDS.get(name)
        if limit is not None:
            if value.__class__ is not str or len(value) > limit:
                _check_string(name, value, limit, errors)
        elif name == "countryCode":
            if country_name(value) is None:
                errors.append(
                    FieldError(
                        "countryCode",
                        "invalid_format",
                        "Must be an existing ISO 3166-1 alpha-2 code (two uppercase letters)",
                    )
                )
        elif name == "customProperties":
            _check_custom_properties(value, errors)
        elif name == "tags":
            check_tags(value, errors)
        elif name == "birthdate":
            _check_birthdate(value, errors)
        elif name == "gender":
            if not is_one_of(value, ("m", "f")):
                errors.append(FieldError("gender", "invalid_format", "Must be 'm' or 'f'"))
        elif name == "createdAt" and parse_timestamp(value) is None:
            errors.append(
                FieldError("createdAt", "invalid_format", "Must be an RFC 3339 timestamp")
            )
    return errors


def _check_string(name: str, value: object, limit: int, errors: list[FieldError]) -> None:
    if not isinstance(value, str):
        errors.append(FieldError(name, "invalid_format", "Must be a string"))
    elif len(value) > limit:
        errors.append(FieldError(name, "too_long", f"Must be at most {limit} characters"))


def _check_birthdate(value: object, errors: list[FieldError]) -> None:
    try:
        valid = isinstance(value, str) and len(value) == 10 and bool(date.fromisoformat(value))
    except ValueError:
        valid = False
    if not valid:
        errors.append(FieldError("birthdate", "invalid_format", "Must be a date as YYYY-MM-DD"))


def _check_identifiers(identifiers: list[Any], errors: list[FieldError], *, creating: bool) -> None:
    emails: set[str] = set()
    for index, identifier in enumerate(identifiers):
        # Nearly every body has one identifier: its path is a constant, not a new string.
        path = "identifiers[0]" if index == 0 else f"identifiers[{index}]"
        if not isinstance(identifier, dict):
            errors.append(FieldError(path, "invalid_format", "Must be an object"))
            continue
        kind = identifier.get("type")
        value = identifier.get("id")
        if kind is None:
            errors.append(FieldError(f"{path}.type", "required", "Identifier type is required"))
        elif not is_one_of(kind, ("email", "phone")):
            errors.append(FieldError(f"{path}.type", "invalid_format", "Must be email or phone"))
        if value is None or value == "":
            errors.append(FieldError(f"{path}.id", "required", "Identifier value is required"))
        elif kind == "email":
            if isinstance(value, str) and len(value) > MAX_EMAIL_LENGTH:
                errors.append(
                    FieldError(
                        f"{path}.id", "too_long", f"Must be at most {MAX_EMAIL_LENGTH} characters"
                    )
                )
            elif not is_valid_email(value):
                errors.append(
                    FieldError(f"{path}.id", "invalid_format", "Must be a valid email address")
                )
            else:
                emails.add(value)
        elif kind == "phone" and (
            not isinstance(value, str) or PHONE_PATTERN.fullmatch(value) is None
        ):
            errors.append(
                FieldError(f"{path}.id", "invalid_format", "Must be a phone number in E.164 format")
            )
        channels = identifier.get("channels")
        if channels is not None:
            _check_channels(channels, f"{path}.channels", kind, errors)
        if "sendWelcomeMessage" in identifier and not isinstance(
            identifier["sendWelcomeMessage"], bool
        ):
            errors.append(
                FieldError(f"{path}.sendWelcomeMessage", "invalid_format", "Must be a boolean")
            )
        consent = identifier.get("consent")
        if consent is not None:
            _check_consent(consent, f"{path}.consent", errors)
    if len(emails) > 1:
        errors.append(
            FieldError("identifiers", "invalid_format", "At most one email identifier is allowed")
        )
    if creating and not emails and not any(e.field.startswith("identifiers") for e in errors):
        errors.append(FieldError("identifiers", "required", "An email identifier is required"))


def _check_channels(channels: object, path: str, kind: object, errors: list[FieldError]) -> None:
    if not isinstance(channels, dict):
        errors.append(FieldError(path, "invalid_format", "Must be an object keyed by channel"))
        return
    expected = "email" if kind == "email" else "sms"
    for channel, details in channels.items():
        channel_path = f"{path}.{channel}"
        if channel != expected:
            errors.append(
                FieldError(
                    channel_path,
                    "invalid_format",
                    f"A {kind} identifier has only the {expected} channel",
                )
            )
            continue
        if not isinstance(details, dict):
            errors.append(FieldError(channel_path, "invalid_format", "Must be an object"))
            continue
        status = details.get("status")
        if status is None:
            errors.append(FieldError(f"{channel_path}.status", "required", "Status is required"))
        elif not is_one_of(status, STATUSES):
            errors.append(
                FieldError(
                    f"{channel_path}.status",
                    "invalid_format",
                    f"Must be one of {', '.join(STATUSES)}",
                )
            )
        if "statusChangedAt" in details and parse_timestamp(details["statusChangedAt"]) is None:
            errors.append(
                FieldError(
                    f"{channel_path}.statusChangedAt",
                    "invalid_format",
                    "Must be an RFC 3339 timestamp with an offset",
                )
            )


def _check_consent(consent: object, path: str, errors: list[FieldError]) -> None:
    if not isinstance(consent, dict):
        errors.append(FieldError(path, "invalid_format", "Must be an object"))
        return
    for name in ("ip", "source", "userAgent"):
        if name in consent:
            _check_string(f"{path}.{name}", consent[name], 512, errors)
    if "createdAt" in consent and parse_timestamp(consent["createdAt"]) is None:
        errors.append(
            FieldError(f"{path}.createdAt", "invalid_format", "Must be an RFC 3339 timestamp")
        )


def check_tags(tags: object, errors: list[FieldError]) -> None:
    """Check the ``tags`` of a contact body or a tags call."""
    if not isinstance(tags, list):
        errors.append(FieldError("tags", "invalid_format", "Must be an array of strings"))
        return
    if len(tags) > MAX_TAGS_PER_CONTACT:
        errors.append(
            FieldError("tags", "too_long", f"At most {MAX_TAGS_PER_CONTACT} tags are allowed")
        )
    for index, tag in enumerate(tags):
        if not isinstance(tag, str) or not tag.strip():
            errors.append(FieldError(f"tags[{index}]", "invalid_format", "Must be a string"))
        elif len(tag) > MAX_TAG_LENGTH:
            errors.append(
                FieldError(
                    f"tags[{index}]", "too_long", f"Must be at most {MAX_TAG_LENGTH} characters"
                )
            )


def _check_custom_properties(properties: object, errors: list[FieldError]) -> None:
    if not isinstance(properties, dict):
        errors.append(FieldError("customProperties", "invalid_format", "Must be an object"))
        return
    if len(properties) > MAX_CUSTOM_PROPERTIES:
        errors.append(
            FieldError(
                "customProperties",
                "too_long",
                f"At most {MAX_CUSTOM_PROPERTIES} custom properties are allowed",
            )
        )
    for name, value in properties.items():
        if value.__class__ is str and len(value) <= MAX_CUSTOM_STRING_LENGTH and _name_ok(name):
            continue  # the common case, with no path string made for it
        path = f"customProperties.{name}"
        if not _name_ok(name):
            errors.append(
                FieldError(
                    path,
                    "invalid_format",
                    "Property names must be 1-128 characters of A-Z, a-z, 0-9 and _",
                )
            )
        if isinstance(value, str):
            if len(value) > MAX_CUSTOM_STRING_LENGTH:
                errors.append(
                    FieldError(
                        path, "too_long", f"Must be at most {MAX_CUSTOM_STRING_LENGTH} characters"
                    )
                )
        elif isinstance(value, list):
            if not all(isinstance(item, str | int | float) for item in value):
                errors.append(
                    FieldError(path, "invalid_format", "Lists may hold strings and numbers only")
                )
        elif value is not None and not isinstance(value, bool | int | float):
            errors.append(
                FieldError(path, "invalid_format", "Must be a string, number, boolean or list")
            )


@lru_cache(maxsize=4096)
def _name_ok(name: str) -> bool:
    # A few names, met once per contact: remembered rather than matched again.
    return PROPERTY_NAME_PATTERN.fullmatch(name) is not None
