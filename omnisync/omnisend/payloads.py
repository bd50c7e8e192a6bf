"""Request bodies for Omnisend, and splitting contacts into batches. Pure: no I/O.

:func:`contact_body` is the single place the safety rules of docs/design.md become a
request body:

- never a ``tags`` key (tags in a contact body *replace* the contact's tags);
- ``sendWelcomeMessage`` always sent explicitly, ``false`` unless the write asks
  (Omnisend defaults it to true);
- an e-mail channel status only when the write carries consent, stamped with the
  consent's recorded ``changed_at`` — never "now", so a later unsubscribe in Omnisend
  stays newer and wins.

Each contact is encoded once: the :class:`BatchPacker` measures the very bytes the
client sends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from omnisync.contact import ContactWrite
from omnisync.masking import mask_email
from omnisync.omnisend.errors import InvalidContactWrite, ItemTooLarge

#: Omnisend's limits for one ``POST /batches`` (docs/omnisend.md, "Batches").
MAX_BATCH_ITEMS = 100
MAX_BATCH_BYTES = 1_000_000
#: Omnisend's limit of e-mails per tags call (docs/omnisend.md, "Tags").
MAX_TAG_EMAILS = 250

#: Top-level contact fields a :class:`ContactWrite` may set. Anything else —
#: above all ``tags`` and ``identifiers`` — is refused.
CONTACT_FIELDS: frozenset[str] = frozenset(
    {
        "firstName",
        "lastName",
        "address",
        "city",
        "state",
        "postalCode",
        "country",
        "countryCode",
        "birthdate",
        "gender",
    }
)

_ENVELOPE_HEAD = b'{"endpoint":"contacts","method":"POST","items":['
_ENVELOPE_TAIL = b"]}"
#: Bytes of a batch body around its items (the items are joined by one comma each).
ENVELOPE_BYTES = len(_ENVELOPE_HEAD) + len(_ENVELOPE_TAIL)


def contact_body(write: ContactWrite) -> dict[str, Any]:
    """The ``POST /contacts`` body (also one batch item) for ``write``. Raises
    :class:`InvalidContactWrite` when ``write.fields`` names anything but a plain contact
    field (``tags`` in particular): the caller's bug, which could wipe a contact's tags."""
    fields = write.fields
    if not CONTACT_FIELDS.issuperset(fields):  # per contact: the cheap test first
        unknown = sorted(fields.keys() - CONTACT_FIELDS)
        raise InvalidContactWrite(
            f"the write for {mask_email(write.email)} sets {', '.join(unknown)}, which a "
            f"contact write may not carry; allowed fields: {', '.join(sorted(CONTACT_FIELDS))}"
        )
    identifier: dict[str, Any] = {
        "type": "email",
        "id": write.email,
        "sendWelcomeMessage": bool(write.send_welcome_message),
    }
    consent = write.consent
    if consent is not None:
        identifier["channels"] = {
            "email": {"status": consent.status, "statusChangedAt": consent.changed_at}
        }
        # A consent record documents an opt-in; an unsubscribe or a
        # "nonSubscribed" status is not one, so it gets the status alone.
        if consent.status == "subscribed":
            record = {"source": consent.source, "ip": consent.ip, "userAgent": consent.user_agent}
            identifier["consent"] = {"createdAt": consent.changed_at} | {
                key: value for key, value in record.items() if value is not None
            }
    body: dict[str, Any] = {"identifiers": [identifier]}
    body.update(sorted(fields.items()))
    if write.custom_properties:
        body["customProperties"] = dict(write.custom_properties)
    return body


@dataclass(frozen=True, repr=False)
class EncodedBatch:
    """One packed batch: ``items[i]`` is the encoded ``POST /batches`` item for ``emails[i]``;
    ``carries_consent`` when an item holds a consent record.

    The items are held as one ``packed`` bytes, joined by newlines (compact JSON holds
    none): a batch is kept until Omnisend is done with it, and a hundred small objects per
    batch kept that long fragment the heap (30 MB of peak RSS at 300,000 contacts)."""

    emails: tuple[str, ...]
    packed: bytes
    carries_consent: bool = False

    @property
    def items(self) -> tuple[bytes, ...]:
        return tuple(self.packed.split(b"\n"))

    def __len__(self) -> int:
        return len(self.emails)

    def __repr__(self) -> str:  # never the e-mails
        return f"EncodedBatch({len(self.emails)} contacts)"

    def body(self) -> bytes:
        """The ``POST /batches`` body: endpoint ``contacts``, method ``POST``, these items."""
        return _ENVELOPE_HEAD + self.packed.replace(b"\n", b",") + _ENVELOPE_TAIL


#: Bytes a contact's JSON item holds beyond its texts (keys, quotes, consent), at most.
_STRUCTURE_BYTES = 16 * 1024


def oversize_reason(write: ContactWrite) -> str | None:
    """Why ``write`` can never be sent, its item alone over a batch's byte limit (plan and
    run count it invalid); ``None`` when it fits. Encodes only the rare write whose texts
    could be that large: no character takes more than 6 bytes of JSON (``\\u001f``)."""
    properties = write.custom_properties
    texts = (write.email, *write.fields.values(), *properties.keys(), *properties.values())
    length = sum(map(len, texts))
    if ENVELOPE_BYTES + _STRUCTURE_BYTES + 6 * length <= MAX_BATCH_BYTES:
        return None
    size = ENVELOPE_BYTES + len(orjson.dumps(contact_body(write)))
    if size <= MAX_BATCH_BYTES:
        return None
    return f"the contact is {size:,} bytes as JSON, over the {MAX_BATCH_BYTES:,}-byte batch limit"


class BatchPacker:
    """Packs contacts, as they come, into batches within the item and byte limits."""

    def __init__(
        self, *, max_items: int = MAX_BATCH_ITEMS, max_bytes: int = MAX_BATCH_BYTES
    ) -> None:
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._emails: list[str] = []
        self._items: list[bytes] = []
        self._bytes = ENVELOPE_BYTES
        self._consent = False

    def pack(self, write: ContactWrite) -> EncodedBatch | None:
        """Add ``write``; return the full batch it did not fit in, if any. Raises
        :class:`ItemTooLarge` when the write alone cannot fit in a batch, and
        :class:`InvalidContactWrite` from :func:`contact_body`."""
        email = write.email
        item = orjson.dumps(contact_body(write))
        size = len(item)
        if ENVELOPE_BYTES + size > self.max_bytes:
            raise ItemTooLarge(mask_email(email), size=ENVELOPE_BYTES + size, limit=self.max_bytes)
        added_bytes = size + (1 if self._emails else 0)
        full: EncodedBatch | None = None
        if len(self._emails) >= self.max_items or self._bytes + added_bytes > self.max_bytes:
            full = self.flush_packed()
            added_bytes = size
        self._emails.append(email)
        self._items.append(item)
        self._bytes += added_bytes
        self._consent = self._consent or write.consent is not None
        return full

    def flush_packed(self) -> EncodedBatch | None:
        """Return the batch being packed (``None`` when empty) and start a new one."""
        if not self._emails:
            return None
        batch = EncodedBatch(tuple(self._emails), b"\n".join(self._items), self._consent)
        self._emails, self._items, self._bytes = [], [], ENVELOPE_BYTES
        self._consent = False
        return batch
