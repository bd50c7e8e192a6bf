"""The first run's hot path: a plain row straight to its encoded batch item.

Pure: no I/O. A first run maps and encodes every member of the segment,
a million times over, and the general path (:class:`~omnisync.mapping.MappingPlan`
building a :class:`~omnisync.mapping.MappingOutcome` and a
:class:`~omnisync.omnisend.model.ContactWrite`, then
:func:`~omnisync.omnisend.payloads.contact_body` building the body, then
:func:`~omnisync.omnisend.payloads.encode_json`) spends most of its time on
objects the row does not need. :class:`PlainEncoder` does the same work in
one pass for the rows that are *plain*: every mapped value is text, a number
or absent, nothing is too long, the address is valid and no consent is to be
sent. For any other row it answers ``None`` and the caller takes the general
path, which then gives the reasons, warnings and consent.

The contract, held by ``tests/mapping/test_plainwrite.py`` over generated
rows: whenever :meth:`PlainEncoder.encode` returns bytes, the general path
maps the same row to a contact write without warnings, and those bytes are
exactly ``encode_json(contact_body(write))`` — so the safety rules of
:func:`~omnisync.omnisend.payloads.contact_body` (no ``tags``,
``sendWelcomeMessage`` always explicit) hold for every item sent.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from omnisync.config.model import Export
from omnisync.countries import country_code
from omnisync.emails import email_problem
from omnisync.mapping import (
    CUSTOM_PROPERTY_NAME,
    MAX_CUSTOM_PROPERTIES,
    MAX_CUSTOM_PROPERTY_LENGTH,
    MAX_FIELD_LENGTH,
    OMNISEND_FIELDS,
    column_positions,
)
from omnisync.sourcevalues import text_value

#: A number as a custom property is written as :func:`text_value` writes it.
_NUMBERS = (int, float)


class PlainEncoder:
    """One export's mapping as a single pass from plain row values to an encoded item.

    ``columns`` is the order of the values :meth:`encode` is given (the
    staging's). Immutable and thread-safe. :attr:`enabled` is false when the
    export's mapping itself needs the general path for every row (a mapped
    ``country_code``, custom property names Omnisend refuses, too many of
    them); :meth:`encode` then always answers ``None``.
    """

    def __init__(self, export: Export, columns: Sequence[str]) -> None:
        position = column_positions(export, columns)
        mapping = export.mapping
        # The body's fields in the order contact_body writes them (sorted by
        # Omnisend name); "countryCode" sorts right after "country".
        fields = {
            omnisend_name: position[column]
            for label, omnisend_name in OMNISEND_FIELDS.items()
            if (column := getattr(mapping, label)) is not None
        }
        if mapping.country is not None:
            fields["country"] = position[mapping.country]
        self._fields = tuple(sorted(fields.items()))
        properties = mapping.custom_properties
        self._properties = tuple((name, position[properties[name]]) for name in sorted(properties))
        self._welcome = bool(export.send_welcome_message)
        self._consent = export.consent is not None
        self.enabled = (
            mapping.country_code is None
            and len(properties) <= MAX_CUSTOM_PROPERTIES
            and all(CUSTOM_PROPERTY_NAME.fullmatch(name) for name in properties)
        )

    def encode(self, values: Sequence[object], email: str, *, in_ledger: bool) -> bytes | None:
        """The encoded batch item for a plain row, or ``None`` (take the general path).

        ``email`` is the row's normalised e-mail (the staging's key, which is
        ``normalise_email`` of the mapped column); ``in_ledger`` as for
        ``MappingPlan.map_values`` (consent is only sent to contacts the
        export never delivered, and such rows are not plain).
        """
        if not self.enabled or (self._consent and not in_ledger):
            return None
        if email_problem(email) is not None:
            return None
        body: dict[str, object] = {
            "identifiers": [{"type": "email", "id": email, "sendWelcomeMessage": self._welcome}]
        }
        for name, index in self._fields:
            value = values[index]
            if value is None:
                continue
            if value.__class__ is not str:
                return None  # numbers, bytes, ...: the general path words them
            text = value.strip()
            if not text:
                continue
            if len(text) > MAX_FIELD_LENGTH:
                return None
            body[name] = text
            if name == "country":
                code = country_code(text)
                if code is not None:
                    body["countryCode"] = code
        if self._properties:
            properties: dict[str, str] = {}
            for name, index in self._properties:
                value = values[index]
                if value is None:
                    continue
                if value.__class__ is str:
                    text = value.strip()
                elif value.__class__ in _NUMBERS:
                    text = text_value(value) or ""
                else:
                    return None  # booleans, bytes, ...: the general path decides
                if not text:
                    continue
                if len(text) > MAX_CUSTOM_PROPERTY_LENGTH:
                    return None
                properties[name] = text
            if properties:
                body["customProperties"] = properties
        # Only strings and a boolean: orjson writes exactly what the strict
        # encoder would, and can write no ``null``.
        return orjson.dumps(body)
