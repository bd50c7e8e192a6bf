"""What one export wants Omnisend to hold for one person. Pure: no I/O.

A :class:`ContactWrite` is what mapping makes of a source row and what the
Omnisend client sends; :func:`omnisync.omnisend.payloads.contact_body` turns
it into the request body and is the single place the safety rules of
docs/design.md are enforced (no tags, no welcome message unless asked, a
channel status only when the caller supplies one, with the caller's
timestamp).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

ChannelStatus = Literal["subscribed", "unsubscribed", "nonSubscribed"]


@dataclass(frozen=True)
class EmailConsent:
    """An e-mail channel status and when the person gave it, from the source.

    ``changed_at`` is an RFC 3339 timestamp recorded by the source, never the
    time of sending: Omnisend lets the newer status win, so a later
    unsubscribe in Omnisend must always be newer than what we send.
    """

    status: ChannelStatus
    changed_at: str
    ip: str | None = None
    user_agent: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class ContactWrite:
    """One contact as an export wants it in Omnisend.

    ``fields`` holds Omnisend field names (``firstName``, ``lastName``,
    ``address``, ``city``, ``state``, ``postalCode``, ``country``,
    ``countryCode``) with non-empty string values. ``email`` is already
    normalised (trimmed, lower-cased, validated).
    """

    email: str
    fields: Mapping[str, str] = field(default_factory=dict)
    custom_properties: Mapping[str, str] = field(default_factory=dict)
    consent: EmailConsent | None = None
    send_welcome_message: bool = False
