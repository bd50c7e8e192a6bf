"""Request bodies for Omnisend, and splitting contacts into batches.

Pure: no I/O. :func:`contact_body` is the single place the safety rules of
docs/design.md become a request body:

- never a ``tags`` key (tags in a contact body *replace* the contact's tags);
- ``sendWelcomeMessage`` always sent explicitly, ``false`` unless the write
  asks (Omnisend defaults it to true);
- an e-mail channel status only when the write carries consent, stamped with
  the consent's recorded ``changed_at`` — never "now", so a later unsubscribe
  in Omnisend stays newer and wins.

Bodies are serialised by :func:`encode_json` (compact, UTF-8) once: the
:class:`BatchPacker` keeps each contact's encoded item beside its e-mail
(:class:`EncodedBatch`) and the client sends a batch body assembled from
those very bytes, so the byte count the packer measures is exactly the byte
count the client sends, and no contact is encoded twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from omnisync.contact import ContactWrite
from omnisync.masking import mask_email
from omnisync.omnisend.errors import BatchTooLarge, InvalidContactWrite, ItemTooLarge

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


def encode_json(value: Any) -> bytes:
    """Serialise ``value`` the way every request body is sent: compact UTF-8 JSON.

    orjson, once per contact. Bodies hold only text, booleans, integers and
    objects (:func:`contact_body`); anything else is the caller's bug and
    raises ``TypeError``.
    """
    return orjson.dumps(value)


def contact_body(write: ContactWrite) -> dict[str, Any]:
    """The ``POST /contacts`` body (also one batch item) for ``write``.

    Raises :class:`InvalidContactWrite` when ``write.fields`` names anything
    but a plain contact field (``tags`` in particular): that is the caller's
    bug, and sending it could wipe a contact's tags.
    """
    fields = write.fields
    if not CONTACT_FIELDS.issuperset(fields):
        unknown = sorted(set(fields) - CONTACT_FIELDS)
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
            record = {"createdAt": consent.changed_at}
            for key, value in (
                ("source", consent.source),
                ("ip", consent.ip),
                ("userAgent", consent.user_agent),
            ):
                if value is not None:
                    record[key] = value
            identifier["consent"] = record
    body: dict[str, Any] = {"identifiers": [identifier]}
    body.update(sorted(fields.items()))
    if write.custom_properties:
        body["customProperties"] = dict(write.custom_properties)
    return body


def encode_batch(items: Sequence[bytes]) -> bytes:
    """A ``POST /batches`` body (endpoint ``contacts``, method ``POST``) from encoded items."""
    return _ENVELOPE_HEAD + b",".join(items) + _ENVELOPE_TAIL


class EncodedBatch:
    """One packed batch: its contacts' e-mails and their encoded items, in order.

    ``items[i]`` is the ``POST /batches`` item for ``emails[i]``,
    ``encode_json(contact_body(write))`` as :meth:`BatchPacker.pack` made it;
    :meth:`~omnisync.omnisend.client.OmnisendClient.create_batch` sends them
    as they are.
    """

    __slots__ = ("emails", "items")

    def __init__(self, emails: Sequence[str], items: Sequence[bytes]) -> None:
        if len(emails) != len(items):
            raise ValueError("an encoded batch needs one item per e-mail")
        self.emails = tuple(emails)
        self.items = tuple(items)

    def __len__(self) -> int:
        return len(self.emails)

    def __repr__(self) -> str:
        # The body's length without building it: the envelope, the items, their commas.
        size = ENVELOPE_BYTES + sum(map(len, self.items)) + max(len(self.items) - 1, 0)
        return f"EncodedBatch({len(self.emails)} contacts, {size} bytes)"


class BatchPacker:
    """Packs contacts one at a time into batches within the item and byte limits.

    Streaming, for callers that receive contacts one by one (the delivery
    pipeline): :meth:`pack` (a write, encoded here through :func:`contact_body`)
    returns the previous batch when the new item does not fit in it;
    :meth:`flush_packed` returns the last, partial one. Each contact is encoded
    once; an :class:`EncodedBatch` carries the bytes on to the client. Holds
    one batch at a time.
    """

    def __init__(
        self, *, max_items: int = MAX_BATCH_ITEMS, max_bytes: int = MAX_BATCH_BYTES
    ) -> None:
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        if max_bytes <= ENVELOPE_BYTES:
            raise ValueError(f"max_bytes must be more than the {ENVELOPE_BYTES}-byte envelope")
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._emails: list[str] = []
        self._items: list[bytes] = []
        self._bytes = ENVELOPE_BYTES

    def __len__(self) -> int:
        return len(self._emails)

    def pack(self, write: ContactWrite) -> EncodedBatch | None:
        """Add ``write``; return the full batch it did not fit in, if any.

        Raises :class:`ItemTooLarge` (naming the masked e-mail) when the
        write alone cannot fit in a batch, and :class:`InvalidContactWrite`
        from :func:`contact_body`.
        """
        email = write.email
        item = encode_json(contact_body(write))
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
        return full

    def flush_packed(self) -> EncodedBatch | None:
        """Return the batch being packed (``None`` when empty) and start a new one."""
        if not self._emails:
            return None
        batch = EncodedBatch(self._emails, self._items)
        self._emails, self._items, self._bytes = [], [], ENVELOPE_BYTES
        return batch


def check_batch(items: Sequence[bytes], *, operation: str) -> bytes:
    """Assemble a batch body, refusing one over Omnisend's limits with :class:`BatchTooLarge`."""
    if not items:
        raise BatchTooLarge(f"{operation}: a batch needs at least one contact")
    if len(items) > MAX_BATCH_ITEMS:
        raise BatchTooLarge(
            f"{operation}: {len(items)} contacts in one batch, over Omnisend's limit of "
            f"{MAX_BATCH_ITEMS}; pack them with BatchPacker"
        )
    body = encode_batch(items)
    if len(body) > MAX_BATCH_BYTES:
        raise BatchTooLarge(
            f"{operation}: the batch body is {len(body):,} bytes, over Omnisend's limit of "
            f"{MAX_BATCH_BYTES:,}; pack it with BatchPacker"
        )
    return body


def tags_body(tag: str, emails: Sequence[str]) -> dict[str, Any]:
    """The body of ``POST``/``DELETE /contacts/tags`` for one tag and up to 250 e-mails."""
    return {"emails": list(emails), "tags": [tag]}
