"""The common contact body, recognised and applied in one quick pass (pure: no I/O).

Nearly every batch item the engine sends has one shape: a single e-mail
identifier (``type``, ``id``, maybe ``sendWelcomeMessage``), plain string
fields, a ``countryCode`` and flat ``customProperties``. The benchmark pushes
a million of them through the emulator, and the general rules
(:func:`~omnisync.emulator.validation.validate_contact`, then
:meth:`~omnisync.emulator.contacts.ContactBook.upsert`) spend most of their
time on branches such a body never takes.

Contract of :func:`upsert_plain` (``tests/emulator/test_plain.py`` holds it):

- it returns ``None`` and changes nothing unless the body is of the plain
  shape *and* ``validate_contact(body, creating=True)`` would find no error;
  ``tags``, ``birthdate``, ``gender``, ``createdAt``, channels, consent,
  phones, lists in custom properties and every invalid value are left to the
  general path, which stays the definition of the rules;
- otherwise it leaves the book exactly as ``ContactBook.upsert`` would
  (fields, interning, the country rule, merged custom properties, the
  welcome message, ``updated``) and returns whether it created the contact.
"""

from __future__ import annotations

import sys
from string import ascii_uppercase
from typing import Any

from omnisync.emulator.contacts import (
    SHARED_FIELDS,
    ContactBook,
    ContactRecord,
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

#: Each plain string field -> (its maximum length, whether its value is interned).
_STRING_RULES = {name: (limit, name in SHARED_FIELDS) for name, limit in STRING_FIELDS.items()}
#: Every string ``[A-Z]{2}``: a set lookup instead of a regular expression per contact.
_COUNTRY_CODES = frozenset(
    first + second for first in ascii_uppercase for second in ascii_uppercase
)
#: Body properties with rules the plain pass does not repeat: such a body takes the general path.
_GENERAL_ONLY = frozenset({"tags", "birthdate", "gender", "createdAt"})
#: Scalar custom property values that are always valid (strings are checked for length).
_SCALARS = frozenset({int, float, bool, type(None)})
#: Custom property names seen to be valid; bounded, as a client could send endless names.
_GOOD_NAMES: set[str] = set()
_GOOD_NAMES_LIMIT = 4096

_match_email = EMAIL_PATTERN.fullmatch
_match_name = PROPERTY_NAME_PATTERN.fullmatch
_intern = sys.intern


def upsert_plain(book: ContactBook, body: Any, *, at: float) -> bool | None:
    """POST /contacts for a plain body: ``True`` created, ``False`` updated, ``None`` not plain.

    The caller holds the brand's lock, as for ``ContactBook.upsert``.
    """
    if body.__class__ is not dict:
        return None
    identifiers = body.get("identifiers")
    if identifiers.__class__ is not list or len(identifiers) != 1:
        return None
    identifier = identifiers[0]
    if identifier.__class__ is not dict or identifier.get("type") != "email":
        return None
    email = identifier.get("id")
    welcome = identifier.get("sendWelcomeMessage", True)  # absent means true
    if (
        email.__class__ is not str
        or len(email) > MAX_EMAIL_LENGTH
        or welcome.__class__ is not bool
        or "channels" in identifier
        or "consent" in identifier
        or _match_email(email) is None
    ):
        return None
    record = book.by_email.get(email)
    created = record is None
    if record is None:
        # A new record takes the string fields while they are checked; it is
        # indexed only once the whole body passed, so a refusal leaves no trace.
        record = ContactRecord(len(book.records) + 1, email, at)
        extras = _checked(body, record)
        if extras is None:
            return None
        book.add(record)
    else:
        extras = _checked(body, None)
        if extras is None:
            return None
        for name, value in body.items():
            rule = _STRING_RULES.get(name)
            if rule is not None:
                setattr(record, name, _intern(value) if rule[1] else value)
    code, properties = extras
    if code is not None:
        # countryCode wins over country: the name follows the code.
        record.countryCode = _intern(code)
        official = country_name(code)
        if official is not None:
            record.country = official
    elif "country" in body:
        record.countryCode = country_code(body["country"]) or record.countryCode
    if properties:
        merged = record.custom_properties
        if merged is None:
            record.custom_properties = dict(properties)  # a copy: the request keeps its own
        else:
            merged.update(properties)
    if created and welcome:
        book.welcome_messages.append(WelcomeMessage(record.email, format_time(at)))
    record.updated = at
    return created


def _checked(body: dict[str, Any], record: ContactRecord | None) -> tuple[Any, Any] | None:
    """``(countryCode, customProperties)`` of a body whose properties are all plain, else ``None``.

    With ``record``, each string field is set on it as it passes.
    """
    code = properties = None
    for name, value in body.items():
        rule = _STRING_RULES.get(name)
        if rule is not None:
            if value.__class__ is not str or len(value) > rule[0]:
                return None
            if record is not None:
                setattr(record, name, _intern(value) if rule[1] else value)
        elif name == "countryCode":
            if value.__class__ is not str or value not in _COUNTRY_CODES:
                return None
            code = value
        elif name == "customProperties":
            if not _plain_properties(value):
                return None
            properties = value
        elif name in _GENERAL_ONLY:
            return None
        # "identifiers" was checked by the caller; unknown properties are ignored, as the rules do.
    return code, properties


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
