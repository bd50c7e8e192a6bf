"""What the emulator keeps of one contact, and the traces Omnisend's rules leave (no I/O).

:class:`ContactRecord` is a mutable slotted dataclass rather than a frozen one
because a brand holds a million of them and updates them in place;
:class:`WelcomeMessage` and :class:`StatusChange` are what a test reads back
(:attr:`omnisync.emulator.contacts.ContactBook.welcome_messages`,
``status_changes``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class WelcomeMessage:
    """A welcome message Omnisend would have sent (``identifier`` is the e-mail or phone)."""

    email: str
    at: str
    channel: str = "email"
    identifier: str = ""


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A channel status that changed value: ``from_status`` is ``None`` for a new contact."""

    email: str
    from_status: str | None
    to_status: str
    at: str
    channel: str = "email"


@dataclass(slots=True, eq=False, repr=False)
class ContactRecord:
    """One stored contact; field values are slots, strings shared with the request that set them.

    ``number`` is the record's place in its book (from 1); the public id is
    derived from it, so a million records need no id strings or id index.
    Compared and hashed by identity (``eq=False``): one record, one contact; no
    generated repr, so a stray log line cannot spell out an e-mail.
    """

    number: int
    email: str
    #: Modelled wall time (seconds since the epoch); ``updated`` and ``status_changed`` start there.
    created: float
    firstName: str | None = None
    lastName: str | None = None
    address: str | None = None
    city: str | None = None
    state: str | None = None
    postalCode: str | None = None
    country: str | None = None
    countryCode: str | None = None
    birthdate: str | None = None
    gender: str | None = None
    custom_properties: dict[str, Any] | None = None
    tags: tuple[str, ...] = ()
    status: str = "nonSubscribed"
    status_changed: float = field(init=False)
    status_changed_text: str | None = None
    updated: float = field(init=False)
    #: phone -> (sms status, when it changed)
    phones: dict[str, tuple[str, float]] | None = None
    consents: list[dict[str, str]] | None = None

    def __post_init__(self) -> None:
        self.status_changed = self.updated = self.created
