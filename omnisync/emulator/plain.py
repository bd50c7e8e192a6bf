"""The common contact body, recognised and applied in one quick pass (pure: no I/O).

Nearly every batch item the engine sends has one shape: a single e-mail
identifier (``type``, ``id``, maybe ``sendWelcomeMessage``), plain string
fields, a ``countryCode`` and flat ``customProperties``. The benchmark pushes
a million of them through the emulator, and the general rules
(:func:`~omnisync.emulator.validation.validate_contact`, then
:meth:`~omnisync.emulator.contacts.ContactBook.upsert`) spend most of their
time on branches such a body never takes.

Contract (``tests/emulator/test_plain.py`` holds both sides to it):

- :func:`plain_email` returns the body's e-mail only when
  ``validate_contact(body, creating=True)`` returns no errors *and* the body
  is of the plain shape; for anything else (``tags``, ``birthdate``,
  ``gender``, ``createdAt``, channels, consent, phones, lists in custom
  properties, any invalid value) it returns ``None`` and the caller takes the
  general path, which stays the definition of the rules;
- :func:`upsert_plain` leaves the book exactly as ``ContactBook.upsert``
  leaves it for that body (fields, interning, the country rule, merged custom
  properties, the welcome message, ``updated``).
"""

from __future__ import annotations

import sys
from string import ascii_uppercase
from typing import Any

from omnisync.emulator.contacts import (
    SHARED_FIELDS,
    ContactBook,
    WelcomeMessage,
    country_code,
    country_name,
    format_time,
)
from omnisync.emulator.validation import (
    EMAIL_PATTERN,
    MAX_CUSTOM_PROPERTIES,
    MAX_CUSTOM_STRING_LENGTH,
    MAX_EMAIL_LENGTH,
    PROPERTY_NAME_PATTERN,
    STRING_FIELDS,
)

#: Every string ``[A-Z]{2}``: a set lookup instead of a regular expression per contact.
_COUNTRY_CODES = frozenset(
    first + second for first in ascii_uppercase for second in ascii_uppercase
)
#: Body properties with rules the plain pass does not repeat: such a body takes the general path.
_GENERAL_ONLY = frozenset({"tags", "birthdate", "gender", "createdAt"})
#: Identifier properties that need the general rules (their own validation and effects).
_GENERAL_IDENTIFIER = ("channels", "consent")
#: Scalar custom property values that are always valid (strings are checked for length).
_SCALARS = frozenset({int, float, bool, type(None)})
#: Each plain string field -> whether its value is interned (as ContactBook._apply does).
_STRING_SHARED = {name: name in SHARED_FIELDS for name in STRING_FIELDS}
#: Custom property names seen to be valid; bounded, as a client could send endless names.
_GOOD_NAMES: set[str] = set()
_GOOD_NAMES_LIMIT = 4096

_match_email = EMAIL_PATTERN.fullmatch
_match_name = PROPERTY_NAME_PATTERN.fullmatch
_intern = sys.intern


def plain_email(body: Any) -> str | None:
    """The e-mail of a valid body of the plain shape, else ``None`` (use the general path)."""
    if body.__class__ is not dict:
        return None
    identifiers = body.get("identifiers")
    if identifiers.__class__ is not list or len(identifiers) != 1:
        return None
    identifier = identifiers[0]
    if identifier.__class__ is not dict or identifier.get("type") != "email":
        return None
    email = identifier.get("id")
    if (
        email.__class__ is not str
        or len(email) > MAX_EMAIL_LENGTH
        or _match_email(email) is None
        or identifier.get("sendWelcomeMessage", False).__class__ is not bool
    ):
        return None
    for name in _GENERAL_IDENTIFIER:
        if name in identifier:
            return None
    for name, value in body.items():
        limit = STRING_FIELDS.get(name)
        if limit is not None:
            if value.__class__ is not str or len(value) > limit:
                return None
        elif name == "countryCode":
            if value.__class__ is not str or value not in _COUNTRY_CODES:
                return None
        elif name == "customProperties":
            if not _plain_properties(value):
                return None
        elif name in _GENERAL_ONLY:
            return None
        # "identifiers" was checked above; unknown properties are ignored, as the rules do.
    return email


def _plain_properties(properties: Any) -> bool:
    if properties.__class__ is not dict or len(properties) > MAX_CUSTOM_PROPERTIES:
        return False
    for name, value in properties.items():
        if name not in _GOOD_NAMES:
            if _match_name(name) is None:
                return False
            if len(_GOOD_NAMES) < _GOOD_NAMES_LIMIT:
                _GOOD_NAMES.add(name)
        if value.__class__ is str:
            if len(value) > MAX_CUSTOM_STRING_LENGTH:
                return False
        elif value.__class__ not in _SCALARS:
            return False  # lists (and anything invalid) go through the general rules
    return True


def upsert_plain(book: ContactBook, email: str, body: dict[str, Any], *, at: float) -> bool:
    """POST /contacts for a body :func:`plain_email` accepted; ``True`` when it created the contact.

    The caller holds the brand's lock, as for ``ContactBook.upsert``.
    """
    record = book.by_email.get(email)
    created = record is None
    if record is None:
        record = book.new_record(email, at)
    for name, value in body.items():
        shared = _STRING_SHARED.get(name)
        if shared is not None:
            setattr(record, name, _intern(value) if shared else value)
    code = body.get("countryCode")
    if code is not None:
        # countryCode wins over country: the name follows the code.
        record.countryCode = _intern(code)
        official = country_name(code)
        if official is not None:
            record.country = official
    elif "country" in body:
        record.countryCode = country_code(body["country"]) or record.countryCode
    properties = body.get("customProperties")
    if properties:
        merged = record.custom_properties or {}
        merged.update(properties)
        record.custom_properties = merged
    if created and body["identifiers"][0].get("sendWelcomeMessage", True):
        # Absent means true, so a new contact is welcomed.
        book.welcome_messages.append(WelcomeMessage(record.email, format_time(at)))
    record.updated = at
    return created
