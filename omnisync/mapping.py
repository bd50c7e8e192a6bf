"""Mapping one source row to one Omnisend contact write.

Pure: no I/O, no clock (the caller passes ``now`` when it wants consent times
in the future refused). :func:`map_row` turns a row (column → raw value) into
a :class:`~omnisync.omnisend.model.ContactWrite`, or into an
:class:`InvalidRow` that lists every reason at once; invalid rows are counted
and reported, never sent. :func:`map_row_with_warnings` also returns the
warnings (a consent status that is not sent, for instance), which never make
a row invalid.

Reasons and warnings are fixed phrases without personal data, so that a
report can group rows by them; the row is identified by its masked e-mail.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from omnisync.config.model import Export
from omnisync.countries import country_code, is_alpha_2
from omnisync.masking import mask_email
from omnisync.omnisend.model import ChannelStatus, ContactWrite, EmailConsent

#: Longest value, in characters, of a standard contact field. Omnisend does not
#: publish one; this is a conservative common database column size, and a
#: longer value is almost always a mis-mapped column.
MAX_FIELD_LENGTH = 255
#: Omnisend's documented limits for custom properties.
MAX_CUSTOM_PROPERTY_LENGTH = 2048
MAX_CUSTOM_PROPERTIES = 200
CUSTOM_PROPERTY_NAME = re.compile(r"[A-Za-z0-9_]{1,128}")
#: RFC 5321 limits, in octets of the UTF-8 form (RFC 6531 for non-ASCII).
MAX_EMAIL_LOCAL_OCTETS = 64
MAX_EMAIL_OCTETS = 254

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

# Characters RFC 5322 allows unquoted in a local part ("atext" and the dot).
_LOCAL_ASCII = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+/=?^_`{|}~-."
)
_DOMAIN_ASCII = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zs", "Zl", "Zp"})
_ATOM = r"[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_PLAIN_EMAIL = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})+")

_STATUS_SPELLINGS: dict[str, ChannelStatus] = {
    "subscribed": "subscribed",
    "yes": "subscribed",
    "y": "subscribed",
    "true": "subscribed",
    "1": "subscribed",
    # "No" is read as an opt-out, the conservative choice: nobody is ever
    # made mailable by a mapping guess.
    "unsubscribed": "unsubscribed",
    "no": "unsubscribed",
    "n": "unsubscribed",
    "false": "unsubscribed",
    "0": "unsubscribed",
    "nonsubscribed": "nonSubscribed",
    "notsubscribed": "nonSubscribed",
}


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


def normalise_email(value: object) -> str | None:
    """The e-mail key of a raw value: trimmed and lower-cased; ``None`` when empty.

    The staging SQL registers this very function, so the key a row is staged,
    diffed and recorded under is always the e-mail that is sent.
    """
    if value is None:
        return None
    if isinstance(value, bytes):
        text = value.decode("utf-8", errors="replace")
    elif isinstance(value, str):
        text = value
    else:
        text = str(value)
    normalised = text.strip().lower()
    return normalised or None


def email_problem(email: str) -> str | None:
    """Why ``email`` (already normalised) is not a usable address, or ``None``.

    A practical RFC 5321/5322 check: exactly one ``@``; an unquoted local part
    of permitted characters without misplaced dots; a domain of at least two
    labels of letters, digits and hyphens (any non-ASCII letter is allowed, for
    internationalised domains and local parts); no spaces or control
    characters; at most 64 octets before the ``@`` and 254 in all.
    """
    # Nearly every address is plain ASCII and valid: one regular expression
    # accepts those (a strict subset of what the detailed check accepts);
    # everything else gets the detailed check, which also says why.
    if (
        len(email) <= MAX_EMAIL_OCTETS
        and email.isascii()
        and _PLAIN_EMAIL.fullmatch(email) is not None
        and email.index("@") <= MAX_EMAIL_LOCAL_OCTETS
        and not email.rpartition(".")[2].isdigit()
    ):
        return None
    return _email_problem_in_detail(email)


def _email_problem_in_detail(email: str) -> str | None:
    if any(unicodedata.category(char) in _FORBIDDEN_CATEGORIES for char in email):
        return "e-mail contains spaces or control characters"
    if email.count("@") != 1:
        return "e-mail must contain exactly one @"
    local, _, domain = email.partition("@")
    if not local:
        return "e-mail has nothing before the @"
    if not domain:
        return "e-mail has nothing after the @"
    if len(local.encode("utf-8")) > MAX_EMAIL_LOCAL_OCTETS:
        return "e-mail part before the @ is longer than 64 octets"
    if len(email.encode("utf-8")) > MAX_EMAIL_OCTETS:
        return "e-mail is longer than 254 octets"
    if any(char.isascii() and char not in _LOCAL_ASCII for char in local):
        return "e-mail has characters not allowed before the @"
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return "e-mail has a misplaced dot before the @"
    if "." not in domain:
        return "e-mail domain has no dot"
    labels = domain.split(".")
    for label in labels:
        if not label or label.startswith("-") or label.endswith("-"):
            return "e-mail domain is malformed"
        if any(char.isascii() and char not in _DOMAIN_ASCII for char in label):
            return "e-mail domain has characters that are not allowed"
        if len(label.encode("utf-8")) > 63:
            return "e-mail domain is malformed"
    if labels[-1].isdigit():
        return "e-mail domain is malformed"
    return None


def map_row(
    row: Mapping[str, object],
    export: Export,
    *,
    in_ledger: bool,
    now: datetime | None = None,
) -> ContactWrite | InvalidRow:
    """Map ``row`` for ``export``; see :func:`map_row_with_warnings`."""
    return map_row_with_warnings(row, export, in_ledger=in_ledger, now=now).result


def map_row_with_warnings(
    row: Mapping[str, object],
    export: Export,
    *,
    in_ledger: bool,
    now: datetime | None = None,
) -> MappingOutcome:
    """Map one source row to a contact write, or say why it cannot be sent.

    - ``email``: normalised (:func:`normalise_email`) and validated
      (:func:`email_problem`).
    - Standard fields: values stringified, stripped; empty means absent; longer
      than :data:`MAX_FIELD_LENGTH` characters is invalid.
    - ``country``: sent as given; its alpha-2 code is added as ``countryCode``
      when the name (or code) is known to :mod:`omnisync.countries`.
      A mapped ``country_code`` wins and must be an assigned alpha-2 code.
    - Custom properties: names must match Omnisend's rule, values are
      stringified (numbers, ``true``/``false``) and at most 2,048 characters.
    - Consent, when the export maps it, only for rows not ``in_ledger`` (a
      status is never sent for a contact this export delivered before): the
      status in a common spelling and the time the source recorded, as RFC 3339
      UTC. A status without a parsable time (or with a time after ``now``,
      when ``now`` is given) sends no status at all and adds a warning.
    - ``send_welcome_message`` comes from the export (false unless it opts in).

    Unicode text is passed through untouched.
    """
    mapping = export.mapping
    raw_email = row.get(mapping.email)
    email = normalise_email(raw_email)
    if email is None:
        return MappingOutcome(InvalidRow("", (MISSING_EMAIL,)))
    reasons: list[str] = []
    warnings: list[str] = []
    problem = email_problem(email)
    if problem is not None:
        reasons.append(problem)

    fields: dict[str, str] = {}
    for name, omnisend_name in OMNISEND_FIELDS.items():
        column = getattr(mapping, name)
        if column is not None:
            _put_field(fields, omnisend_name, name, row.get(column), reasons)
    _map_country(row, export, fields, reasons)
    custom_properties = _map_custom_properties(row, export, reasons)
    consent = None
    if export.consent is not None and not in_ledger:
        consent = _map_consent(row, export, now=now, warnings=warnings)

    if reasons:
        return MappingOutcome(InvalidRow(mask_email(email), tuple(reasons)), tuple(warnings))
    write = ContactWrite(
        email=email,
        fields=fields,
        custom_properties=custom_properties,
        consent=consent,
        send_welcome_message=export.send_welcome_message,
    )
    return MappingOutcome(write, tuple(warnings))


def text_value(value: object) -> str | None:
    """A raw source value as contact text: stripped, ``None`` when empty.

    Numbers are written plainly (``120.0`` becomes ``"120"``), booleans as
    ``true``/``false``. Raises :class:`ValueError` for bytes that are not
    UTF-8.
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        text = str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)
    elif isinstance(value, bytes):
        text = value.decode("utf-8")
    else:
        text = str(value)
    stripped = text.strip()
    return stripped or None


def _put_field(
    fields: dict[str, str],
    omnisend_name: str,
    label: str,
    value: object,
    reasons: list[str],
) -> None:
    try:
        text = text_value(value)
    except ValueError:
        reasons.append(f"{label} is binary data, not UTF-8 text")
        return
    if text is None:
        return
    if len(text) > MAX_FIELD_LENGTH:
        reasons.append(f"{label} is longer than {MAX_FIELD_LENGTH} characters")
        return
    fields[omnisend_name] = text


def _map_country(
    row: Mapping[str, object], export: Export, fields: dict[str, str], reasons: list[str]
) -> None:
    mapping = export.mapping
    if mapping.country_code is not None:
        try:
            code = text_value(row.get(mapping.country_code))
        except ValueError:
            code = None
            reasons.append("country_code is binary data, not UTF-8 text")
        if code is not None:
            if is_alpha_2(code):
                fields["countryCode"] = code.upper()
            else:
                reasons.append("country_code is not an ISO 3166-1 alpha-2 code")
    if mapping.country is not None:
        _put_field(fields, "country", "country", row.get(mapping.country), reasons)
        name = fields.get("country")
        if name is not None and "countryCode" not in fields:
            found = country_code(name)
            if found is not None:
                fields["countryCode"] = found


def _map_custom_properties(
    row: Mapping[str, object], export: Export, reasons: list[str]
) -> dict[str, str]:
    properties = export.mapping.custom_properties
    if len(properties) > MAX_CUSTOM_PROPERTIES:
        reasons.append(f"more than {MAX_CUSTOM_PROPERTIES} custom properties")
    mapped: dict[str, str] = {}
    for name in sorted(properties):
        if CUSTOM_PROPERTY_NAME.fullmatch(name) is None:
            reasons.append(
                f"custom property name '{name}' is not accepted by Omnisend "
                "(1-128 letters, digits or _)"
            )
            continue
        try:
            text = text_value(row.get(properties[name]))
        except ValueError:
            reasons.append(f"custom property '{name}' is binary data, not UTF-8 text")
            continue
        if text is None:
            continue
        if len(text) > MAX_CUSTOM_PROPERTY_LENGTH:
            reasons.append(
                f"custom property '{name}' is longer than {MAX_CUSTOM_PROPERTY_LENGTH} characters"
            )
            continue
        mapped[name] = text
    return mapped


def consent_status(value: object) -> ChannelStatus | None:
    """A channel status from a common spelling, or ``None`` when not recognised.

    subscribed / yes / true / 1 → ``subscribed``; unsubscribed / no / false /
    0 → ``unsubscribed``; nonSubscribed (also non_subscribed, not subscribed)
    → ``nonSubscribed``. Case, spaces, ``_`` and ``-`` are ignored.
    """
    try:
        text = text_value(value)
    except ValueError:
        return None
    if text is None:
        return None
    key = "".join(char for char in text.casefold() if char not in " _-")
    return _STATUS_SPELLINGS.get(key)


def consent_time(value: object) -> datetime | None:
    """The time a source recorded, as an aware UTC datetime, or ``None``.

    ISO 8601 / RFC 3339 text (``Z`` or an offset; a naive time is taken as
    UTC, as SQLite's ``CURRENT_TIMESTAMP`` writes it; a date alone is its
    midnight) or Unix epoch seconds as a number.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    try:
        text = text_value(value)
    except ValueError:
        return None
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def rfc3339(moment: datetime) -> str:
    """``moment`` (aware) as RFC 3339 UTC with whole seconds: ``2024-05-01T09:30:00Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _map_consent(
    row: Mapping[str, object],
    export: Export,
    *,
    now: datetime | None,
    warnings: list[str],
) -> EmailConsent | None:
    consent = export.consent
    assert consent is not None
    raw_status = row.get(consent.status_column)
    status = consent_status(raw_status)
    if status is None:
        try:
            blank = text_value(raw_status) is None
        except ValueError:
            blank = False
        if not blank:
            warnings.append("consent status not recognised; no status sent")
        return None
    changed_at = consent_time(row.get(consent.changed_at_column))
    if changed_at is None:
        warnings.append("consent status without a parsable time; no status sent")
        return None
    if now is not None and changed_at > now:
        warnings.append("consent time is in the future; no status sent")
        return None
    return EmailConsent(
        status=status,
        changed_at=rfc3339(changed_at),
        ip=_optional_text(row, consent.ip_column),
        user_agent=_optional_text(row, consent.user_agent_column),
        source=consent.source,
    )


def _optional_text(row: Mapping[str, object], column: str | None) -> str | None:
    if column is None:
        return None
    try:
        text = text_value(row.get(column))
    except ValueError:
        return None
    if text is None or len(text) > MAX_FIELD_LENGTH:
        return None
    return text
