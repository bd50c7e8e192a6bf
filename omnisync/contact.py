"""What one export wants Omnisend to hold for one person. Pure.

Mapping makes a :class:`ContactWrite` of a source row; the one function that
turns it into a request body, :func:`omnisync.omnisend.payloads.contact_body`,
enforces the safety rules of docs/design.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

ChannelStatus = Literal["subscribed", "unsubscribed", "nonSubscribed"]


@dataclass(frozen=True)
class EmailConsent:
    """An e-mail channel status from the source, and ``changed_at``: when the source recorded
    it (RFC 3339), never the time of sending, so that a later unsubscribe in Omnisend wins."""

    status: ChannelStatus
    changed_at: str
    ip: str | None = None
    user_agent: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class ContactWrite:
    """One contact as an export wants it in Omnisend: ``email`` normalised and valid,
    ``fields`` by Omnisend field name (``firstName``, ``postalCode``, ...), non-empty text."""

    email: str
    fields: Mapping[str, str] = field(default_factory=dict)
    custom_properties: Mapping[str, str] = field(default_factory=dict)
    consent: EmailConsent | None = None
    send_welcome_message: bool = False
