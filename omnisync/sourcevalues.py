"""Raw source values as contact data: text, consent statuses, consent times.

Pure. What a source yields (``None``, numbers, booleans, text, bytes) becomes
what a contact write carries (:mod:`omnisync.mapping`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from numbers import Real

from omnisync.contact import ChannelStatus

# "No" is read as an opt-out, the conservative choice: nobody is made mailable by a guess.
_STATUS_SPELLINGS: dict[str, ChannelStatus] = {
    **dict.fromkeys(("subscribed", "yes", "y", "true", "1"), "subscribed"),
    **dict.fromkeys(("unsubscribed", "no", "n", "false", "0"), "unsubscribed"),
    **dict.fromkeys(("nonsubscribed", "notsubscribed"), "nonSubscribed"),
}

#: C0 control characters and DEL: meaningless in the e-mails and app where Omnisend shows
#: contact text (a NUL from a CSV export, a stray escape).
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def _without_control(match: re.Match[str]) -> str:
    return " " if match.group() in "\t\n\r" else ""


def cleaned_text(value: object) -> tuple[str | None, bool]:
    """A raw source value as contact text (stripped, ``None`` when empty), and whether
    control characters were taken out of it.

    Numbers are written plainly (``120.0`` becomes ``"120"``), booleans as
    ``true``/``false``. C0 control characters and DEL are removed (tab, line
    feed and carriage return become a space). Raises :class:`ValueError` for
    bytes that are not UTF-8.
    """
    if value.__class__ is str:
        text = value  # the common case first: a run maps millions of fields
    elif value is None:
        return None, False
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
    if _CONTROL_CHARACTERS.search(text) is None:
        return text.strip() or None, False
    return _CONTROL_CHARACTERS.sub(_without_control, text).strip() or None, True


def readable_text(value: object) -> str | None:
    """:func:`cleaned_text`'s text, with bytes that are not UTF-8 read as no text (``None``)."""
    try:
        return cleaned_text(value)[0]
    except ValueError:
        return None


def consent_status(value: object) -> ChannelStatus | None:
    """A channel status from a common spelling, or ``None`` when not recognised.

    subscribed / yes / true / 1 → ``subscribed``; unsubscribed / no / false /
    0 → ``unsubscribed``; nonSubscribed (also non_subscribed, not subscribed)
    → ``nonSubscribed``. Case, spaces, ``_`` and ``-`` are ignored.
    """
    text = readable_text(value)
    if text is None:
        return None
    key = "".join(char for char in text.casefold() if char not in " _-")
    return _STATUS_SPELLINGS.get(key)


_EPOCH_TEXT = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


def consent_time(value: object) -> datetime | None:
    """The time a source recorded, as an aware UTC datetime, or ``None``.

    ISO 8601 / RFC 3339 text (``Z`` or an offset; a naive time is taken as
    UTC, as SQLite's ``CURRENT_TIMESTAMP`` writes it; a date alone is its
    midnight) or Unix epoch seconds as a real number (``int``, ``float``,
    ``Decimal``...; never a ``bool``) or as its decimal text (``1714555800.000000``:
    PostgreSQL's numeric reaches the mapping as exact text). ``None`` too for an
    instant outside years 1 to 9999 in UTC.
    """
    if value is None or isinstance(value, bool):
        return None
    # Decimal is no numbers.Real, but it is how psycopg returns PostgreSQL's numeric
    # (extract(epoch from ...) is one). float() holds every whole second datetime can.
    if isinstance(value, Real | Decimal):
        try:
            return datetime.fromtimestamp(float(value), tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    text = readable_text(value)
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        # Not ISO 8601, which reads 20240501 as a date first: epoch seconds as text.
        return consent_time(Decimal(text)) if _EPOCH_TEXT.fullmatch(text) else None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        # Year 1 or 9999 with an offset that takes it past datetime's range in UTC.
        return None


def rfc3339(moment: datetime) -> str:
    """``moment`` (aware) as RFC 3339 UTC with whole seconds: ``2024-05-01T09:30:00Z``.

    The year always has four digits (``0001-01-01T00:00:00Z``), as RFC 3339 requires.
    """
    utc = moment.astimezone(UTC)
    # Not strftime("%Y"): glibc writes year 1 as "1", which is not RFC 3339.
    return f"{utc.year:04d}-{utc:%m-%dT%H:%M:%S}Z"
