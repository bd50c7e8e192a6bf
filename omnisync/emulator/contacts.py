"""One brand's contacts and what Omnisend does to them, traps included (pure: no I/O).

The rules, as ``docs/omnisend.md`` states them:

- the e-mail identifier is case-sensitive: ``Ann@x.io`` and ``ann@x.io`` are two contacts;
- fields merge: a field absent from a body is left as it is;
- ``tags`` in a body *replace* every tag of the contact;
- ``sendWelcomeMessage`` defaults to true for a new identifier; every welcome
  message "sent" is recorded in :attr:`ContactBook.welcome_messages`;
- a channel status with a newer ``statusChangedAt`` than the stored one wins,
  and a status sent without ``statusChangedAt`` counts as "now" (so it nearly
  always wins); every change of value is recorded in
  :attr:`ContactBook.status_changes`. A new contact given a status records a
  change from ``None``; a new contact without one gets ``nonSubscribed``
  silently (that is a default, not a change).

A :class:`ContactBook` is not thread-safe; its owner holds the brand's lock.
Time is passed in: ``at`` is the modelled wall time as seconds since the
epoch. The records themselves are in :mod:`omnisync.emulator.records`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import Any

from omnisync.emulator.records import ContactRecord, StatusChange, WelcomeMessage
from omnisync.emulator.validation import CONTACT_FIELDS, STRING_FIELDS
from omnisync.emulator.values import country_code, country_name, format_time, parse_timestamp

#: Fields copied from a body to the record as they are (countryCode has its own rule).
_PLAIN_FIELDS = (*STRING_FIELDS, "birthdate", "gender")


#: Low-cardinality values worth sharing between a million records.
SHARED_FIELDS = frozenset({"city", "state", "country", "countryCode", "postalCode", "gender"})
_STATUSES = {status: status for status in ("subscribed", "unsubscribed", "nonSubscribed")}
#: Each plain field -> whether its value is interned.
_PLAIN_FIELD_SHARED = {name: name in SHARED_FIELDS for name in _PLAIN_FIELDS}


class ContactBook:
    """The contacts of one brand, indexed by e-mail, id and phone."""

    def __init__(self, *, id_prefix: str = "00") -> None:
        self.by_email: dict[str, ContactRecord] = {}
        #: By number - 1; ``None`` where a contact was deleted (numbers are never reused).
        self.records: list[ContactRecord | None] = []
        self.by_phone: dict[str, ContactRecord] = {}
        self.welcome_messages: list[WelcomeMessage] = []
        self.status_changes: list[StatusChange] = []
        self._id_prefix = id_prefix[:8].rjust(8, "0")

    def new_record(self, email: str, at: float) -> ContactRecord:
        """A new record for ``email`` (not yet known), indexed and numbered."""
        record = ContactRecord(len(self.records) + 1, email, at)
        self.by_email[email] = record
        self.records.append(record)
        return record

    def contact_id(self, record: ContactRecord) -> str:
        """The public id: 24 hex digits, the brand's prefix and the record number."""
        return f"{self._id_prefix}{record.number:016x}"

    def by_id(self, contact_id: str) -> ContactRecord | None:
        """The record with this public id, or ``None``."""
        if len(contact_id) != 24 or not contact_id.startswith(self._id_prefix):
            return None
        try:
            number = int(contact_id[8:], 16)
        except ValueError:
            return None
        if 1 <= number <= len(self.records):
            record = self.records[number - 1]
            if record is not None and self.contact_id(record) == contact_id:
                return record
        return None

    def live_records(self) -> list[ContactRecord]:
        """Every contact not deleted, oldest first."""
        return [record for record in self.records if record is not None]

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

    def upsert(self, body: Mapping[str, Any], *, at: float) -> tuple[int, ContactRecord]:
        """POST /contacts on a validated body: 201 and the new record, or 200 and the updated."""
        for identifier in body["identifiers"]:
            if identifier.get("type") == "email":
                email: str = identifier["id"]
                break
        else:
            raise ValueError("a validated contact body has an email identifier")
        record = self.by_email.get(email)
        created = record is None
        if record is None:
            record = self.new_record(email, at)
        self._apply(record, body, at=at, created=created)
        return (201 if created else 200), record

    def patch(self, record: ContactRecord, body: Mapping[str, Any], *, at: float) -> None:
        """PATCH a known contact with a validated body (merge semantics, like POST)."""
        self._apply(record, body, at=at, created=False)

    def _apply(
        self, record: ContactRecord, body: Mapping[str, Any], *, at: float, created: bool
    ) -> None:
        # Over what the body holds (a handful of keys), not over every field.
        for name, value in body.items():
            shared = _PLAIN_FIELD_SHARED.get(name)
            if shared is not None and value is not None:
                setattr(record, name, sys.intern(value) if shared else value)
        code = body.get("countryCode")
        if code is not None:
            # countryCode wins over country: the name follows the code.
            record.countryCode = sys.intern(code)
            official = country_name(code)
            if official is not None:
                record.country = official
        elif "country" in body:
            record.countryCode = country_code(body["country"]) or record.countryCode
        if "tags" in body:
            # The trap: tags in a contact body replace all the contact's tags.
            record.tags = tuple(dict.fromkeys(sys.intern(tag) for tag in body["tags"]))
        properties = body.get("customProperties")
        if properties or "createdAt" in body:
            merged = record.custom_properties or {}
            if properties:
                merged.update(properties)
            if "createdAt" in body:
                merged["externalCreated"] = body["createdAt"]
            record.custom_properties = merged
        for identifier in body.get("identifiers") or ():
            if identifier.get("type") == "email":
                self._apply_email_identifier(record, identifier, at=at, created=created)
            else:
                self._apply_phone_identifier(record, identifier, at=at)
        record.updated = at

    def _apply_email_identifier(
        self, record: ContactRecord, identifier: Mapping[str, Any], *, at: float, created: bool
    ) -> None:
        if created and identifier.get("sendWelcomeMessage", True):
            # The trap: absent means true, so a new contact is welcomed.
            self.welcome_messages.append(WelcomeMessage(record.email, format_time(at)))
        current = None if created else (record.status, record.status_changed)
        newer = self._newer_status(record.email, "email", identifier, current, at=at)
        if newer is not None:
            record.status, record.status_changed, record.status_changed_text = newer
        consent = identifier.get("consent")
        if consent:
            entry = {"channel": "email", "createdAt": consent.get("createdAt") or format_time(at)}
            entry.update({k: consent[k] for k in ("ip", "source", "userAgent") if k in consent})
            known = record.consents or []
            # The same consent sent again (a retried write) is one record, not two.
            if entry not in known:
                record.consents = sorted([*known, entry], key=lambda item: item["createdAt"])

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
        ``None`` when it sets none or one no newer than ``current`` (``None`` for a new
        identifier). A change of value is recorded; for a new identifier, from ``None``."""
        details = (identifier.get("channels") or {}).get(channel)
        if details is None:
            return None
        text = details.get("statusChangedAt")
        parsed = None if text is None else parse_timestamp(text)
        changed = at if parsed is None else parsed
        if current is not None and changed <= current[1]:
            return None  # an older (or equally old) status loses to the stored one
        previous = None if current is None else current[0]
        status = _STATUSES[details["status"]]
        if status != previous:
            self.status_changes.append(
                StatusChange(email, previous, status, text or format_time(changed), channel)
            )
        return status, changed, text

    def _apply_phone_identifier(
        self, record: ContactRecord, identifier: Mapping[str, Any], *, at: float
    ) -> None:
        phone = identifier["id"]
        phones = record.phones if record.phones is not None else {}
        current = phones.get(phone)
        newer = self._newer_status(record.email, "sms", identifier, current, at=at)
        if newer is not None:
            phones[phone] = newer[:2]
        elif current is None:
            phones[phone] = ("nonSubscribed", at)
        if current is None and identifier.get("sendWelcomeMessage", True):
            self.welcome_messages.append(
                WelcomeMessage(record.email, format_time(at), channel="sms", identifier=phone)
            )
        record.phones = phones
        self.by_phone[phone] = record

    def change_tags(
        self,
        tags: Iterable[str],
        *,
        emails: Iterable[str] = (),
        contact_ids: Iterable[str] = (),
        phones: Iterable[str] = (),
        remove: bool,
        at: float,
    ) -> int:
        """Add or remove ``tags`` on the named contacts; unknown ones are ignored.

        Returns how many contacts changed. Adding a tag a contact has is a no-op.
        """
        wanted = tuple(dict.fromkeys(sys.intern(tag) for tag in tags))
        # Records are hashed by identity: one entry per contact, in the order named.
        records = dict.fromkeys(filter(None, map(self.by_email.get, emails)))
        records.update(dict.fromkeys(filter(None, map(self.by_id, contact_ids))))
        records.update(dict.fromkeys(filter(None, map(self.by_phone.get, phones))))
        changed = 0
        if not remove and len(wanted) == 1:
            # One tag added (what a tags call nearly always does). Contacts that
            # had the same tags share the new tuple: less memory, fewer objects.
            only = wanted[0]
            joined: dict[tuple[str, ...], tuple[str, ...]] = {(): wanted}
            for record in records:
                tags = record.tags
                if only not in tags:
                    new_tags = joined.get(tags)
                    if new_tags is None:
                        new_tags = joined[tags] = tags + wanted
                    record.tags = new_tags
                    record.updated = at
                    changed += 1
            return changed
        for record in records:
            before = len(record.tags)
            if remove:
                record.tags = tuple(tag for tag in record.tags if tag not in wanted)
            else:
                record.tags += tuple(tag for tag in wanted if tag not in record.tags)
            if len(record.tags) != before:
                record.updated = at
                changed += 1
        return changed

    def seed(
        self,
        email: str,
        *,
        at: float,
        fields: Mapping[str, str] | None = None,
        custom_properties: Mapping[str, Any] | None = None,
        tags: Iterable[str] = (),
        status: str = "nonSubscribed",
        status_changed_at: str | None = None,
    ) -> ContactRecord:
        """Create or overwrite a pre-existing contact without welcome messages or change records."""
        record = self.by_email.get(email) or self.new_record(email, at)
        for name, value in (fields or {}).items():
            setattr(record, name, value)
        if custom_properties:
            record.custom_properties = {**(record.custom_properties or {}), **custom_properties}
        record.tags = tuple(dict.fromkeys(tags))
        record.status = _STATUSES[status]
        changed = parse_timestamp(status_changed_at) if status_changed_at else None
        record.status_changed = at if changed is None else changed
        record.status_changed_text = status_changed_at
        return record

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
                "channels": {channel: {"status": status, "statusChangedAt": changed_at}},
            }
            for kind, identifier, channel, status, changed_at in channels
        ]
        body["status"] = record.status
        body["statuses"] = [
            {"channel": channel, "status": status, "statusChangedAt": changed_at}
            for _, _, channel, status, changed_at in channels
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
