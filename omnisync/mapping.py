"""Mapping one source row to one Omnisend contact write: the one place a field rule lives.

Pure: no I/O, no clock (the caller passes ``now``). A :class:`MappingPlan` is
an export's mapping prepared once, so that mapping a million rows does only
the per-row work. Reasons and warnings are fixed phrases without personal
data, so that a report can group rows by them; a row is identified by its
masked e-mail.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from omnisync.config.model import Export
from omnisync.contact import ContactWrite, EmailConsent
from omnisync.countries import country_code, is_alpha_2
from omnisync.emails import email_problem, normalise_email
from omnisync.fingerprint import fingerprint_columns
from omnisync.masking import mask_email
from omnisync.planning import SourceRow, WorkItem
from omnisync.sourcevalues import (
    cleaned_text,
    consent_status,
    consent_time,
    rfc3339,
)

#: Longest value, in characters, of each standard contact field. Omnisend does not
#: publish them; these are conservative (the emulator holds Omnisend to the same), and
#: a longer value is almost always a mis-mapped column: the row is invalid, never sent
#: to be refused (a batch more than half refused stops, and holds up the rest of it).
MAX_FIELD_LENGTHS = {
    "firstName": 128,
    "lastName": 128,
    "address": 256,
    "city": 128,
    "state": 128,
    "postalCode": 32,
    "country": 128,
}
#: Longest consent IP address or user agent kept; a longer one is not sent.
MAX_FIELD_LENGTH = 255
#: Omnisend's documented limits for custom properties.
MAX_CUSTOM_PROPERTY_LENGTH = 2048
MAX_CUSTOM_PROPERTIES = 200
#: A consent time before this is a "no date" placeholder, never a real consent: 1970-01-01
#: in any time zone (epoch 0 written as local time), and year 1.
NO_DATE = datetime(1970, 1, 2, tzinfo=UTC)
CUSTOM_PROPERTY_NAME = re.compile(r"[A-Za-z0-9_]{1,128}")

#: Mapping field name → Omnisend contact field name.
OMNISEND_FIELDS: dict[str, str] = {
    "first_name": "firstName",
    "last_name": "lastName",
    "address": "address",
    "city": "city",
    "state": "state",
    "postal_code": "postalCode",
}

MISSING_EMAIL = "missing e-mail"


@dataclass(frozen=True)
class InvalidRow:
    """A row that cannot be sent: its masked e-mail ("" when none) and every reason."""

    email_masked: str
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class MappingOutcome:
    """A mapped row and the warnings met on the way (never reasons to refuse it)."""

    result: ContactWrite | InvalidRow
    warnings: tuple[str, ...] = ()


_MISSING = MappingOutcome(InvalidRow("", (MISSING_EMAIL,)))


class MappingPlan:
    """One export's mapping, prepared once to map many rows (see :meth:`map_row`).

    A row's values are read in the order of :attr:`columns`,
    ``fingerprint_columns(export)``, the order a staging keeps. Immutable and thread-safe.
    """

    def __init__(self, export: Export) -> None:
        self.columns = fingerprint_columns(export)
        position: dict[str | None, int] = {column: i for i, column in enumerate(self.columns)}
        mapping = export.mapping
        self._email = position[mapping.email]
        self._fields = tuple(
            (omnisend_name, label, position[column], MAX_FIELD_LENGTHS[omnisend_name])
            for label, omnisend_name in OMNISEND_FIELDS.items()
            if (column := getattr(mapping, label)) is not None
        )
        self._country_code = position.get(mapping.country_code)
        self._country = position.get(mapping.country)
        properties = mapping.custom_properties
        # A position of None: the name breaks Omnisend's rule.
        self._properties = tuple(
            (name, position[properties[name]] if CUSTOM_PROPERTY_NAME.fullmatch(name) else None)
            for name in sorted(properties)
        )
        consent = export.consent
        self._consent = (
            None
            if consent is None
            else (
                position[consent.status_column],
                position[consent.changed_at_column],
                position.get(consent.ip_column),
                position.get(consent.user_agent_column),
                consent.source,
            )
        )
        self._welcome = export.send_welcome_message

    def map_row(
        self, row: Mapping[str, object], *, in_ledger: bool, now: datetime | None = None
    ) -> MappingOutcome:
        """Map one source row (column -> raw value; an absent column is ``None``) to a
        contact write, or say why it cannot be sent.

        - ``email``: normalised (:func:`normalise_email`) and validated
          (:func:`email_problem`).
        - Standard fields: values stringified, stripped; empty means absent; longer
          than :data:`MAX_FIELD_LENGTHS` says is invalid.
        - ``country``: sent as given; its alpha-2 code is added as ``countryCode``
          when the name (or code) is known to :mod:`omnisync.countries`.
          A mapped ``country_code`` wins and must be an assigned alpha-2 code.
        - Custom properties: names must match Omnisend's rule, values are
          stringified (numbers, ``true``/``false``) and at most 2,048 characters.
        - Consent, when the export maps it, only for rows not ``in_ledger`` (a
          status is never sent for a contact this export delivered before): the
          status in a common spelling and the time the source recorded, as RFC 3339
          UTC. A status without a parsable time (or with a time after ``now``,
          when ``now`` is given, or a "no date" time before :data:`NO_DATE`)
          sends no status at all and adds a warning.
        - ``send_welcome_message`` comes from the export (false unless it opts in).

        Unicode text is passed through untouched.
        """
        if isinstance(row, SourceRow) and row.columns == self.columns:
            values: Sequence[object] = row.raw  # a staged row: its values, as they are
        else:
            values = tuple(row.get(column) for column in self.columns)
        email = normalise_email(values[self._email])
        if email is None:
            return _MISSING
        reasons: list[str] = []
        problem = email_problem(email)
        if problem is not None:
            reasons.append(problem)
        warnings: list[str] = []
        fields: dict[str, str] = {}
        for omnisend_name, label, index, longest in self._fields:
            text = _text(
                values[index], label, reasons=reasons, warnings=warnings, max_length=longest
            )
            if text is not None:
                fields[omnisend_name] = text
        if self._country_code is not None or self._country is not None:
            self._map_country(values, fields, reasons, warnings)
        properties: dict[str, str] = {}
        if self._properties:
            self._map_custom_properties(values, properties, reasons, warnings)
        consent = None
        if self._consent is not None and not in_ledger:
            consent = self._map_consent(values, now=now, warnings=warnings)
        if reasons:
            return MappingOutcome(InvalidRow(mask_email(email), tuple(reasons)), tuple(warnings))
        # Positional: ContactWrite(email, fields, custom_properties, consent,
        # send_welcome_message), measurably cheaper a million times over.
        write = ContactWrite(email, fields, properties, consent, self._welcome)
        return MappingOutcome(write, tuple(warnings)) if warnings else MappingOutcome(write)

    def map_work(self, item: WorkItem, *, now: datetime | None) -> MappingOutcome | None:
        """The mapping of ``item``'s row; ``None`` for an item that needs no upsert."""
        if not item.needs_upsert:
            return None
        return self.map_row(item.row, in_ledger=item.in_ledger, now=now)

    def _map_country(
        self,
        values: Sequence[object],
        fields: dict[str, str],
        reasons: list[str],
        warnings: list[str],
    ) -> None:
        if self._country_code is not None:
            code = _text(
                values[self._country_code], "country_code", reasons=reasons, warnings=warnings
            )
            if code is not None:
                if is_alpha_2(code):
                    fields["countryCode"] = code.upper()
                else:
                    reasons.append("country_code is not an ISO 3166-1 alpha-2 code")
        if self._country is not None:
            name = _text(
                values[self._country],
                "country",
                reasons=reasons,
                warnings=warnings,
                max_length=MAX_FIELD_LENGTHS["country"],
            )
            if name is not None:
                fields["country"] = name
                if "countryCode" not in fields and (found := country_code(name)) is not None:
                    fields["countryCode"] = found

    def _map_custom_properties(
        self,
        values: Sequence[object],
        mapped: dict[str, str],
        reasons: list[str],
        warnings: list[str],
    ) -> None:
        if len(self._properties) > MAX_CUSTOM_PROPERTIES:
            reasons.append(f"more than {MAX_CUSTOM_PROPERTIES} custom properties")
        for name, index in self._properties:
            if index is None:
                reasons.append(
                    f"custom property name '{name}' is not accepted by Omnisend"
                    " (1-128 letters, digits or _)"
                )
                continue
            text = _text(
                values[index],
                f"custom property '{name}'",
                reasons=reasons,
                warnings=warnings,
                max_length=MAX_CUSTOM_PROPERTY_LENGTH,
            )
            if text is not None:
                mapped[name] = text

    def _map_consent(
        self, values: Sequence[object], *, now: datetime | None, warnings: list[str]
    ) -> EmailConsent | None:
        assert self._consent is not None
        status_at, changed_at_at, ip_at, user_agent_at, source = self._consent
        raw_status = values[status_at]
        status = consent_status(raw_status)
        if status is None:
            try:
                blank = cleaned_text(raw_status)[0] is None
            except ValueError:
                blank = False
            if not blank:
                warnings.append("consent status not recognised; no status sent")
            return None
        changed_at = consent_time(values[changed_at_at])
        if changed_at is None:
            warnings.append("consent status without a parsable time; no status sent")
            return None
        if now is not None and changed_at > now:
            warnings.append("consent time is in the future; no status sent")
            return None
        if changed_at < NO_DATE:
            # Year 1, epoch 0 (in any zone): what many systems write for "no date". Omnisend
            # might read it as "now", and a stale subscribe must never beat an unsubscribe.
            warnings.append("consent time is a 'no date' value (1970 or before); no status sent")
            return None
        return EmailConsent(
            status=status,
            changed_at=rfc3339(changed_at),
            ip=None if ip_at is None else _optional_text(values[ip_at], "consent ip", warnings),
            user_agent=None
            if user_agent_at is None
            else _optional_text(values[user_agent_at], "consent user agent", warnings),
            source=source,
        )


def _text(
    value: object,
    label: str,
    *,
    reasons: list[str],
    warnings: list[str],
    max_length: int = MAX_FIELD_LENGTH,
) -> str | None:
    """``value`` as text (:func:`cleaned_text`), or ``None``: absent, or a reason appended."""
    try:
        text, cleaned = cleaned_text(value)
    except ValueError:
        reasons.append(f"{label} is binary data, not UTF-8 text")
        return None
    if cleaned:
        warnings.append(f"{label}: control characters removed")
    if text is not None and len(text) > max_length:
        reasons.append(f"{label} is longer than {max_length} characters")
        return None
    return text


def _optional_text(value: object, label: str, warnings: list[str]) -> str | None:
    """``value`` as text, or ``None`` with a warning: a consent detail that cannot be sent
    as it is leaves the consent record without it, not the row unsent."""
    problems: list[str] = []
    text = _text(value, label, reasons=problems, warnings=warnings)
    warnings.extend(f"{problem}; not sent" for problem in problems)
    return text
