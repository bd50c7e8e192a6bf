"""What the emulator keeps of one contact, and the traces Omnisend's rules leave (no I/O).

:class:`ContactRecord` is a mutable ``__slots__`` class rather than a frozen
dataclass because a brand holds a million of them and updates them in place;
:class:`WelcomeMessage` and :class:`StatusChange` are what a test reads back
(:attr:`omnisync.emulator.contacts.ContactBook.welcome_messages`,
``status_changes``).
"""

from __future__ import annotations

from dataclasses import dataclass
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


class ContactRecord:
    """One stored contact; field values are slots, strings shared with the request that set them.

    ``number`` is the record's place in its book (from 1); the public id is
    derived from it, so a million records need no id strings or id index.
    """

    __slots__ = (
        "address",
        "birthdate",
        "city",
        "consents",
        "country",
        "countryCode",
        "created",
        "custom_properties",
        "email",
        "firstName",
        "gender",
        "lastName",
        "number",
        "phones",
        "postalCode",
        "state",
        "status",
        "status_changed",
        "status_changed_text",
        "tags",
        "updated",
    )

    def __init__(self, number: int, email: str, at: float) -> None:
        self.number = number
        self.email = email
        self.firstName: str | None = None
        self.lastName: str | None = None
        self.address: str | None = None
        self.city: str | None = None
        self.state: str | None = None
        self.postalCode: str | None = None
        self.country: str | None = None
        self.countryCode: str | None = None
        self.birthdate: str | None = None
        self.gender: str | None = None
        self.custom_properties: dict[str, Any] | None = None
        self.tags: tuple[str, ...] = ()
        self.status = "nonSubscribed"
        self.status_changed = at
        self.status_changed_text: str | None = None
        self.created = at
        self.updated = at
        self.phones: dict[str, tuple[str, float]] | None = None
        self.consents: list[dict[str, str]] | None = None
