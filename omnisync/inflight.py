"""What a batch in flight carries: one item per contact, and the items packed. Pure.

A contact sent in a batch is remembered until Omnisend has answered for it:
its e-mail, the fingerprint of what was sent and whether the export's tag
follows. The state store keeps a batch's items together, packed as one JSON
text (:class:`PackedItems`); a large run packs each batch where the batch is
made (a helper process), so the run's own threads hand the text on instead
of touching each contact.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import orjson


class InflightItem(NamedTuple):
    """One contact in a batch sent but not settled: what was sent and whether to tag it after.

    A named tuple: a run records one per contact it sends.
    """

    email: str
    fingerprint: int
    then_tag: bool


@dataclass(frozen=True, slots=True)
class PackedItems:
    """A batch's in-flight items packed once, by whoever made the batch.

    ``text`` is a JSON array with one ``[email, fingerprint, then_tag]`` array
    per item (``then_tag`` 0 or 1), one item per e-mail; ``count`` is how many
    items it holds. A run packs each batch where it is made (a helper process
    for a large export), so the run's own threads pass the text on instead of
    handling each contact; a store may keep the text as it is. Make one with
    :func:`pack_items` or :func:`pack_columns`, never by hand.
    """

    text: str
    count: int

    def items(self) -> tuple[InflightItem, ...]:
        """The items, in the order they were packed."""
        return unpack_items(self.text)


def unpack_items(text: str) -> tuple[InflightItem, ...]:
    """The items of a packed text (:attr:`PackedItems.text`), in their order."""
    return tuple(
        InflightItem(email, fingerprint, bool(then_tag))
        for email, fingerprint, then_tag in orjson.loads(text)
    )


def pack_items(items: Iterable[InflightItem]) -> PackedItems:
    """``items`` packed, one item per e-mail (a later item for an e-mail wins)."""
    unique = {item.email: (item.email, item.fingerprint, int(item.then_tag)) for item in items}
    return PackedItems(orjson.dumps(list(unique.values())).decode(), len(unique))


def pack_columns(
    emails: Sequence[str], fingerprints: Sequence[int], then_tag: Sequence[bool]
) -> PackedItems:
    """:func:`pack_items` of the items given column by column (same order in all three)."""
    if not len(emails) == len(fingerprints) == len(then_tag):
        raise ValueError("packing needs one fingerprint and one then_tag per e-mail")
    if len(set(emails)) != len(emails):
        return pack_items(map(InflightItem, emails, fingerprints, then_tag))
    # Distinct e-mails (a staged batch always has them): zipped straight into JSON.
    rows = list(zip(emails, fingerprints, map(int, then_tag), strict=True))
    return PackedItems(orjson.dumps(rows).decode(), len(rows))
