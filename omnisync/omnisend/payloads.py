"""Request bodies for Omnisend, and splitting contacts into batches.

Pure: no I/O. :func:`contact_body` is the single place the safety rules of
DESIGN.md become a request body:

- never a ``tags`` key (tags in a contact body *replace* the contact's tags);
- ``sendWelcomeMessage`` always sent explicitly, ``false`` unless the write
  asks (Omnisend defaults it to true);
- an e-mail channel status only when the write carries consent, stamped with
  the consent's recorded ``changed_at`` — never "now", so a later unsubscribe
  in Omnisend stays newer and wins.

Bodies are serialised by :func:`encode_json` (compact, UTF-8) once: the
:class:`BatchPacker` keeps each write's encoded item beside it
(:class:`EncodedBatch`) and the client sends a batch body assembled from
those very bytes, so the byte count the packer measures is exactly the byte
count the client sends, and no contact is encoded twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, overload

import orjson

from omnisync.masking import mask_email
from omnisync.omnisend.errors import BatchTooLarge, InvalidContactWrite, ItemTooLarge
from omnisync.omnisend.model import ContactWrite

#: Omnisend's limits for one ``POST /batches`` (API.md, "Batches").
MAX_BATCH_ITEMS = 100
MAX_BATCH_BYTES = 1_000_000
#: Omnisend's limit of e-mails per tags call (API.md, "Tags").
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


#: orjson hands these to ``default`` (none given: an error) instead of rendering
#: them its own way, so they meet the standard encoder's refusal below.
_ORJSON_OPTIONS = (
    orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def encode_json(value: Any) -> bytes:
    """Serialise ``value`` the way every request body is sent: compact UTF-8 JSON.

    The output is that of ``json.dumps(value, ensure_ascii=False,
    separators=(",", ":"), allow_nan=False)`` in UTF-8, errors included.
    orjson does the work (once per contact: the hot path of a run, about 20
    times faster); whatever it refuses, and any output holding ``null`` (orjson
    writes NaN and infinities as ``null`` where the strict encoder refuses
    them), is encoded again by the standard library, which then answers.
    """
    try:
        encoded = orjson.dumps(value, option=_ORJSON_OPTIONS)
    except orjson.JSONEncodeError:
        return _encode_strictly(value)
    return _encode_strictly(value) if b"null" in encoded else encoded


def _encode_strictly(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


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


def batch_bytes(item_sizes: Iterable[int]) -> int:
    """The size of the batch body :func:`encode_batch` builds from items of these sizes."""
    sizes = list(item_sizes)
    return ENVELOPE_BYTES + sum(sizes) + max(len(sizes) - 1, 0)


class EncodedBatch(Sequence[ContactWrite]):
    """One packed batch: its writes, in order, each with its encoded item.

    A sequence of the writes (so it goes wherever a batch of writes does);
    ``items[i]`` is ``encode_json(contact_body(self[i]))``, made by
    :class:`BatchPacker` while it measured the batch, and
    :meth:`~omnisync.omnisend.client.OmnisendClient.create_batch` sends those
    bytes as they are. Only :class:`BatchPacker` builds one, so every item
    went through :func:`contact_body` and its safety rules.
    """

    __slots__ = ("_writes", "items")

    def __init__(self, writes: Sequence[ContactWrite], items: Sequence[bytes]) -> None:
        if len(writes) != len(items):
            raise ValueError("an encoded batch needs one item per write")
        self._writes = tuple(writes)
        self.items = tuple(items)

    @overload
    def __getitem__(self, index: int) -> ContactWrite: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[ContactWrite]: ...

    def __getitem__(self, index: int | slice) -> ContactWrite | Sequence[ContactWrite]:
        return self._writes[index]

    def __len__(self) -> int:
        return len(self._writes)

    def __iter__(self) -> Iterator[ContactWrite]:
        return iter(self._writes)

    def __repr__(self) -> str:
        return (
            f"EncodedBatch({len(self._writes)} writes, {batch_bytes(map(len, self.items))} bytes)"
        )


class BatchPacker:
    """Packs writes one at a time into batches within the item and byte limits.

    The streaming core of :func:`split_batches`, for callers that receive
    writes one by one (the delivery pipeline): :meth:`pack` returns the
    previous batch when ``write`` does not fit in it, :meth:`flush_packed`
    returns the last, partial one; :meth:`add` and :meth:`flush` do the same
    with plain lists of writes. Each write is encoded once, here; an
    :class:`EncodedBatch` carries the bytes on to the client. Holds one batch
    at a time.
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
        self._writes: list[ContactWrite] = []
        self._items: list[bytes] = []
        self._bytes = ENVELOPE_BYTES

    def __len__(self) -> int:
        return len(self._writes)

    def pack(self, write: ContactWrite) -> EncodedBatch | None:
        """Add ``write``; return the full batch it did not fit in, if any.

        Raises :class:`ItemTooLarge` (naming the masked e-mail) when the
        write alone cannot fit in a batch, and :class:`InvalidContactWrite`
        from :func:`contact_body`.
        """
        item = encode_json(contact_body(write))
        size = len(item)
        if ENVELOPE_BYTES + size > self.max_bytes:
            raise ItemTooLarge(
                mask_email(write.email), size=ENVELOPE_BYTES + size, limit=self.max_bytes
            )
        added_bytes = size + (1 if self._writes else 0)
        full: EncodedBatch | None = None
        if len(self._writes) >= self.max_items or self._bytes + added_bytes > self.max_bytes:
            full = self.flush_packed()
            added_bytes = size
        self._writes.append(write)
        self._items.append(item)
        self._bytes += added_bytes
        return full

    def flush_packed(self) -> EncodedBatch | None:
        """Return the batch being packed (``None`` when empty) and start a new one."""
        if not self._writes:
            return None
        batch = EncodedBatch(self._writes, self._items)
        self._writes, self._items, self._bytes = [], [], ENVELOPE_BYTES
        return batch

    def add(self, write: ContactWrite) -> list[ContactWrite] | None:
        """:meth:`pack`, returning the full batch as a list of writes."""
        full = self.pack(write)
        return None if full is None else list(full)

    def flush(self) -> list[ContactWrite] | None:
        """:meth:`flush_packed`, as a list of writes."""
        last = self.flush_packed()
        return None if last is None else list(last)


def split_batches(
    writes: Iterable[ContactWrite],
    *,
    max_items: int = MAX_BATCH_ITEMS,
    max_bytes: int = MAX_BATCH_BYTES,
) -> Iterator[list[ContactWrite]]:
    """Yield ``writes`` in order, grouped into batches of at most ``max_items`` writes
    whose ``POST /batches`` body (envelope included) is at most ``max_bytes`` bytes.

    Streaming: consumes an iterator lazily and holds one batch at a time.
    Raises :class:`ItemTooLarge` for a write that alone exceeds ``max_bytes``.
    """
    packer = BatchPacker(max_items=max_items, max_bytes=max_bytes)
    for write in writes:
        full = packer.add(write)
        if full is not None:
            yield full
    last = packer.flush()
    if last is not None:
        yield last


def check_batch(items: Sequence[bytes], *, operation: str) -> bytes:
    """Assemble a batch body, refusing one over Omnisend's limits with :class:`BatchTooLarge`."""
    if not items:
        raise BatchTooLarge(f"{operation}: a batch needs at least one contact")
    if len(items) > MAX_BATCH_ITEMS:
        raise BatchTooLarge(
            f"{operation}: {len(items)} contacts in one batch, over Omnisend's limit of "
            f"{MAX_BATCH_ITEMS}; split them with split_batches()"
        )
    body = encode_batch(items)
    if len(body) > MAX_BATCH_BYTES:
        raise BatchTooLarge(
            f"{operation}: the batch body is {len(body):,} bytes, over Omnisend's limit of "
            f"{MAX_BATCH_BYTES:,}; split it with split_batches()"
        )
    return body


def tags_body(tag: str, emails: Sequence[str]) -> dict[str, Any]:
    """The body of ``POST``/``DELETE /contacts/tags`` for one tag and up to 250 e-mails."""
    return {"emails": list(emails), "tags": [tag]}
