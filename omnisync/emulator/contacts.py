"""One brand's contacts and Omnisend's rules for them, traps included (pure: no I/O).

As ``docs/omnisend.md`` states them: the e-mail identifier is case-sensitive;
fields merge (an absent field is left as it is); ``tags`` in a body *replace*
every tag; ``sendWelcomeMessage`` absent is true for a new identifier (each
welcome recorded in :attr:`ContactBook.welcome_messages`); a status with a
newer ``statusChangedAt`` wins, none counting as "now"; every change of value
is recorded in :attr:`ContactBook.status_changes` (a new contact's default
``nonSubscribed`` is not a change); ``countryCode`` must be an existing ISO
3166-1 alpha-2 code (``ZZ`` is refused) and the stored ``country`` follows it.

Not thread-safe: the brand's lock guards a book. ``at`` is the modelled wall
time in seconds since the epoch; times are written as Omnisend writes them
(RFC 3339 in UTC with milliseconds and ``Z``) and read with any offset.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import pycountry

#: The plain string fields of a contact and their maximum lengths.
STRING_FIELDS: dict[str, int] = {
    "firstName": 128,
    "lastName": 128,
    "address": 256,
    "city": 128,
    "state": 128,
    "postalCode": 32,
    "country": 128,
}
#: Every plain contact field a seeded contact may carry.
CONTACT_FIELDS: tuple[str, ...] = (*STRING_FIELDS, "countryCode", "birthdate", "gender")
#: Fields copied from a body as they are (countryCode has its own rule).
_PLAIN_FIELDS = frozenset(CONTACT_FIELDS) - {"countryCode"}
#: The record number in a contact id, after the brand's prefix (as :meth:`ContactBook.contact_id`).
_NUMBER = re.compile(r"[0-9a-f]{16}")
#: An RFC 3339 date-time (section 5.6), offset required; ``T`` and ``Z`` in either case.
_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)
#: Low-cardinality values, interned: a million records share them.
_SHARED_FIELDS = frozenset({"city", "state", "country", "postalCode", "gender"})


def format_time(seconds: float) -> str:
    """RFC 3339 in UTC with milliseconds and ``Z``."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def parse_timestamp(text: object) -> float | None:
    """Seconds since the epoch for an RFC 3339 timestamp (with an offset), else ``None``."""
    # The form first: fromisoformat reads more than RFC 3339 (a space, ISO week dates,
    # "+00") and no lower-case "t" or "z".
    if not isinstance(text, str) or _TIMESTAMP.fullmatch(text) is None:
        return None
    try:
        return datetime.fromisoformat(text.upper()).timestamp()
    except ValueError:  # a day or time out of range
        return None


def country_name(code: object) -> str | None:
    """The English short name of an existing ISO 3166-1 alpha-2 code (upper case), else ``None``."""
    if not isinstance(code, str) or len(code) != 2 or not code.isascii() or not code.isupper():
        return None
    return _country_name(code)


# Cached: called for every contact written, and pycountry's lookup is a fifth of the
# emulator's CPU for a first export without it (bench/emulator_bench.py).
@lru_cache(maxsize=512)
def _country_name(code: str) -> str | None:
    country = pycountry.countries.get(alpha_2=code)
    return None if country is None else str(country.name)


@lru_cache(maxsize=512)
def _country_code(name: str) -> str | None:
    try:
        return str(pycountry.countries.lookup(name).alpha_2)
    except LookupError:
        return None


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
    """One stored contact, mutable and slotted (a brand holds a million, updated in place).

    ``number`` is its place in the book (from 1), the public id derives from
    it; no generated repr, so a stray log line cannot spell out an e-mail.
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


def email_of(body: Any) -> str | None:
    """The e-mail identifier of a contact body, if it has one (the body may be malformed)."""
    identifiers = body.get("identifiers") if isinstance(body, dict) else None
    for identifier in identifiers if isinstance(identifiers, list) else ():
        if isinstance(identifier, dict) and identifier.get("type") == "email":
            value = identifier.get("id")
            return value if isinstance(value, str) else None
    return None


class ContactBook:
    """The contacts of one brand, indexed by e-mail, number and phone."""

    def __init__(self, *, id_prefix: str = "00000000") -> None:
        self.by_email: dict[str, ContactRecord] = {}
        #: By number - 1; ``None`` where a contact was deleted (numbers are never reused).
        self.records: list[ContactRecord | None] = []
        self.by_phone: dict[str, ContactRecord] = {}
        self.welcome_messages: list[WelcomeMessage] = []
        self.status_changes: list[StatusChange] = []
        self._id_prefix = id_prefix

    def contact_id(self, record: ContactRecord) -> str:
        """The public id: 24 hex digits, the brand's prefix and the record number."""
        return f"{self._id_prefix}{record.number:016x}"

    def by_id(self, contact_id: str) -> ContactRecord | None:
        if not contact_id.startswith(self._id_prefix) or not _NUMBER.fullmatch(contact_id, 8):
            return None
        number = int(contact_id[8:], 16)
        return self.records[number - 1] if 1 <= number <= len(self.records) else None

    def delete(self, email: str) -> bool:
        """Forget the contact ``email`` (as a person deleting it in Omnisend would)."""
        record = self.by_email.pop(email, None)
        if record is None:
            return False
        self.records[record.number - 1] = None
        for phone in record.phones or ():
            if self.by_phone.get(phone) is record:
                del self.by_phone[phone]
        return True

    def _record(self, email: str, at: float) -> tuple[bool, ContactRecord]:
        """Whether ``email`` is new, and its record (made and indexed if new)."""
        record = self.by_email.get(email)
        if record is not None:
            return False, record
        record = ContactRecord(len(self.records) + 1, email, at)
        self.by_email[email] = record
        self.records.append(record)
        return True, record

    def upsert(self, body: Mapping[str, Any], *, at: float) -> tuple[int, ContactRecord]:
        """POST /contacts on a validated body: 201 and the new record, or 200 and the updated."""
        email = email_of(body)
        assert email is not None, "a validated contact body has an email identifier"
        created, record = self._record(email, at)
        self.apply(record, body, at=at, created=created)
        return (201 if created else 200), record

    def seed(self, body: Mapping[str, Any], *, at: float) -> ContactRecord:
        """Create or overwrite a contact from a validated body with one e-mail identifier
        whose status it takes as given: no welcome message, no status change recorded."""
        [identifier] = body["identifiers"]
        _, record = self._record(identifier["id"], at)
        self.apply(record, {**body, "identifiers": []}, at=at, created=False)
        channel = identifier["channels"]["email"]
        text = channel.get("statusChangedAt")
        record.status = sys.intern(channel["status"])
        parsed = parse_timestamp(text)
        record.status_changed = at if parsed is None else parsed
        record.status_changed_text = text
        return record

    def apply(
        self, record: ContactRecord, body: Mapping[str, Any], *, at: float, created: bool
    ) -> None:
        """Merge a validated contact body into ``record`` (PATCH, or POST once ``created`` is
        known): absent fields are left as they are."""
        for name, value in body.items():
            if name in _PLAIN_FIELDS and value is not None:
                setattr(record, name, sys.intern(value) if name in _SHARED_FIELDS else value)
        code = body.get("countryCode")
        if code is not None:
            # countryCode wins over country: the name follows the code.
            record.countryCode = sys.intern(code)
            record.country = country_name(code) or record.country
        elif "country" in body:
            record.countryCode = _country_code(body["country"]) or record.countryCode
        if "tags" in body:
            # The trap: tags in a contact body replace all the contact's tags.
            record.tags = tuple(dict.fromkeys(sys.intern(tag) for tag in body["tags"]))
        properties = body.get("customProperties")
        if properties or "createdAt" in body:
            merged = record.custom_properties or {}
            merged.update(properties or {})
            if "createdAt" in body:
                merged["externalCreated"] = body["createdAt"]
            record.custom_properties = merged
        for identifier in body.get("identifiers") or ():
            self._apply_identifier(record, identifier, at=at, created=created)
        record.updated = at

    def _apply_identifier(
        self, record: ContactRecord, identifier: Mapping[str, Any], *, at: float, created: bool
    ) -> None:
        """Welcome a new identifier, take the status it sets on its channel when newer and
        keep an e-mail identifier's consent."""
        is_email = identifier.get("type") == "email"
        channel, phone = ("email", "") if is_email else ("sms", identifier["id"])
        if is_email:
            current = None if created else (record.status, record.status_changed)
        else:
            current = (record.phones or {}).get(phone)
        if current is None and identifier.get("sendWelcomeMessage", True):
            # The trap: absent means true, so a new identifier is welcomed.
            self.welcome_messages.append(
                WelcomeMessage(record.email, format_time(at), channel, identifier=phone)
            )
        newer = self._newer_status(record.email, channel, identifier, current, at=at)
        if not is_email:
            phones = record.phones if record.phones is not None else {}
            phones[phone] = (current or ("nonSubscribed", at)) if newer is None else newer[:2]
            record.phones = phones
            self.by_phone[phone] = record
            return
        if newer is not None:
            record.status, record.status_changed, record.status_changed_text = newer
        consent = identifier.get("consent")
        if consent:
            entry = {"channel": "email", "createdAt": consent.get("createdAt") or format_time(at)}
            entry.update({k: consent[k] for k in ("ip", "source", "userAgent") if k in consent})
            # Every consent sent is kept, the same one sent again too (a retried write
            # duplicates it: docs/omnisend.md, Traps).
            known = [*(record.consents or []), entry]
            record.consents = sorted(known, key=lambda item: item["createdAt"])

    def _newer_status(
        self,
        email: str,
        channel: str,
        identifier: Mapping[str, Any],
        current: tuple[str, float] | None,
        *,
        at: float,
    ) -> tuple[str, float, str | None] | None:
        """``(status, changed, statusChangedAt text)`` the identifier sets on ``channel``, or
        ``None`` when it sets none or one no newer than ``current`` (``None``: a new
        identifier). A change of value is recorded."""
        details = (identifier.get("channels") or {}).get(channel)
        if details is None:
            return None
        text = details.get("statusChangedAt")
        parsed = parse_timestamp(text)
        changed = at if parsed is None else parsed
        if current is not None and changed <= current[1]:
            return None  # an older (or equally old) status loses to the stored one
        previous = None if current is None else current[0]
        status = sys.intern(details["status"])
        if status != previous:
            self.status_changes.append(
                StatusChange(email, previous, status, text or format_time(changed), channel)
            )
        return status, changed, text

    def change_tags(self, body: Mapping[str, Any], *, remove: bool, at: float) -> int:
        """Add or remove the ``tags`` of a validated tags call body on the contacts it names
        (unknown ones ignored); returns how many contacts changed."""
        wanted = tuple(dict.fromkeys(sys.intern(tag) for tag in body["tags"]))
        # Records are hashed by identity: one entry per contact, in the order named.
        records = dict.fromkeys(filter(None, map(self.by_email.get, body.get("emails") or ())))
        for find, selector in ((self.by_id, "contactIDs"), (self.by_phone.get, "phones")):
            records.update(dict.fromkeys(filter(None, map(find, body.get(selector) or ()))))
        # Contacts that had the same tags share the new tuple (a million contacts tagged).
        results: dict[tuple[str, ...], tuple[str, ...]] = {}
        changed = 0
        for record in records:
            before = record.tags
            after = results.get(before)
            if after is None:
                if remove:
                    after = tuple(tag for tag in before if tag not in wanted)
                else:
                    after = before + tuple(tag for tag in wanted if tag not in before)
                results[before] = after
            if after != before:
                record.tags, record.updated = after, at
                changed += 1
        return changed

    def render(self, record: ContactRecord) -> dict[str, Any]:
        """The ContactResponse body for one record."""
        changed = record.status_changed_text or format_time(record.status_changed)
        # (identifier type, identifier, channel, status, statusChangedAt): the e-mail, then phones.
        channels = [("email", record.email, "email", record.status, changed)]
        for phone, (status, at) in (record.phones or {}).items():
            channels.append(("phone", phone, "sms", status, format_time(at)))
        body: dict[str, Any] = {"id": self.contact_id(record), "email": record.email}
        if record.phones:
            body["phone"] = list(record.phones)
        body["identifiers"] = [
            {
                "type": kind,
                "id": identifier,
                "channels": {channel: {"status": status, "statusChangedAt": at}},
            }
            for kind, identifier, channel, status, at in channels
        ]
        body["status"] = record.status
        body["statuses"] = [
            {"channel": channel, "status": status, "statusChangedAt": at}
            for _, _, channel, status, at in channels
        ]
        for name in CONTACT_FIELDS:
            value = getattr(record, name)
            if value is not None:
                body[name] = value
        body["tags"] = list(record.tags)
        body["customProperties"] = dict(record.custom_properties or {})
        if record.consents:
            body["consents"] = list(record.consents)
        if record.status == "subscribed":
            # Opt-in history is not kept (memory); the current opt-in is the status change.
            body["optIns"] = [{"channel": "email", "optInAt": changed}]
        body["createdAt"] = format_time(record.created)
        body["updatedAt"] = format_time(record.updated)
        return body
