"""Batch intents and in-flight batches in SQL: one row per batch, its items packed.

A batch's items travel together from the moment before it is created until
Omnisend has answered for each of them, so the state database keeps them as
one row per batch — ``batch_intents`` (no id yet) and ``inflight_packed``
(under Omnisend's id) — holding one JSON array of ``[email, fingerprint,
then_tag]`` (``then_tag`` 0 or 1). Recording, creating and settling a batch
of 100 contacts is then a handful of row writes, not hundreds; the ledger
itself (``ledger_entries``) stays one row per contact. ``inflight_batches``
is a view with the older one-row-per-item shape, for readers of that seam.

Functions here run inside the caller's transaction (or read) on one
connection, so that each store method stays one transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterable, Sequence

import orjson

from omnisync.inflight import InflightItem
from omnisync.state.store import InflightBatch

#: One packed item: e-mail, fingerprint, then_tag (0/1).
PackedItem = tuple[str, int, int]

#: The e-mails of a JSON array parameter, for ``IN``.
_LISTED = "(SELECT value FROM json_each(?))"


def pack(items: Iterable[InflightItem]) -> str:
    """The JSON text of ``items``, one item per e-mail (a later item for an e-mail wins)."""
    unique = {item.email: (item.email, item.fingerprint, int(item.then_tag)) for item in items}
    return orjson.dumps(list(unique.values())).decode()


def unpack_items(text: str) -> tuple[InflightItem, ...]:
    """The items of a packed text, as :class:`InflightItem`, in their order."""
    return tuple(
        InflightItem(email, fingerprint, bool(then_tag))
        for email, fingerprint, then_tag in orjson.loads(text)
    )


def unpack(text: str) -> list[PackedItem]:
    """The items of a packed row, as ``[email, fingerprint, then_tag]``.

    Trusted as written by :func:`pack` (or migration 3): a hot path, one row
    per batch settled, so the items are not converted one by one.
    """
    items: list[PackedItem] = orjson.loads(text)
    return items


def as_batch(key: str, created_at: str, text: str) -> InflightBatch:
    """A packed row as the store's :class:`InflightBatch`, items ordered by e-mail."""
    return InflightBatch(
        key,
        created_at,
        tuple(sorted(unpack_items(text))),
    )


def put_inflight(
    connection: sqlite3.Connection, export: str, batch_id: str, text: str, stamp: str
) -> int:
    """Record packed items in flight under ``batch_id``; returns how many items it holds.

    A batch id already in flight (a batch recorded twice) keeps one item per
    e-mail, the newer one winning, and its first ``created_at``.
    """
    inserted = connection.execute(
        "INSERT INTO inflight_packed (export, batch_id, items, created_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (export, batch_id) DO NOTHING",
        (export, batch_id, text, stamp),
    ).rowcount
    if inserted:
        return len(orjson.loads(text))
    existing = _items(connection, export, batch_id) or []
    merged = {item[0]: item for item in existing}
    merged.update((item[0], item) for item in unpack(text))
    _rewrite(connection, export, batch_id, list(merged.values()))
    return len(merged)


def create(
    connection: sqlite3.Connection, export: str, token: str, batch_id: str, stamp: str
) -> int:
    """Move intent ``token`` in flight under ``batch_id``; returns the items moved (0: none)."""
    # The common case in one statement, the items staying inside SQLite.
    moved = connection.execute(
        "INSERT INTO inflight_packed (export, batch_id, items, created_at) "
        "SELECT export, ?, items, ? FROM batch_intents WHERE export = ? AND token = ? "
        "ON CONFLICT (export, batch_id) DO NOTHING RETURNING json_array_length(items)",
        (batch_id, stamp, export, token),
    ).fetchone()
    if moved is None:
        row = connection.execute(
            "SELECT items FROM batch_intents WHERE export = ? AND token = ?", (export, token)
        ).fetchone()
        if row is None:
            return 0
        moved = (put_inflight(connection, export, batch_id, str(row[0]), stamp),)
    connection.execute("DELETE FROM batch_intents WHERE export = ? AND token = ?", (export, token))
    return int(moved[0])


def acknowledge(
    connection: sqlite3.Connection,
    export: str,
    batch_id: str,
    emails: Collection[str] | None,
    stamp: str,
) -> int:
    """Move the in-flight items of ``batch_id`` named in ``emails`` (all: ``None``) into the ledger.

    New ledger entries have no tag; existing ones keep theirs and take the
    in-flight fingerprint. Returns how many entries were written. Each
    statement does a whole batch inside SQLite (one step, one GIL release),
    rather than one step per item.
    """
    row = connection.execute(
        "SELECT items FROM inflight_packed WHERE export = ? AND batch_id = ?", (export, batch_id)
    ).fetchone()
    if row is None:
        return 0
    text = str(row[0])
    if emails is None or _names_every_item(emails, text):
        # The common case, a batch accepted whole: its items go into the ledger
        # as they are and the batch is done, with no e-mail list to match.
        written = connection.execute(
            "INSERT INTO ledger_entries (export, email, fingerprint, tag, updated_at) "
            "SELECT ?, json_extract(value, '$[0]'), json_extract(value, '$[1]'), NULL, ? "
            "FROM json_each(?) WHERE true "
            "ON CONFLICT (export, email) DO UPDATE SET "
            "fingerprint = excluded.fingerprint, updated_at = excluded.updated_at",
            (export, stamp, text),
        ).rowcount
        connection.execute(
            "DELETE FROM inflight_packed WHERE export = ? AND batch_id = ?", (export, batch_id)
        )
        return int(written)
    listed = orjson.dumps(list(emails)).decode()
    written = connection.execute(
        "INSERT INTO ledger_entries (export, email, fingerprint, tag, updated_at) "
        "SELECT p.export, json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]'), NULL, ? "
        "FROM inflight_packed AS p, json_each(p.items) AS j "
        "WHERE p.export = ? AND p.batch_id = ? "
        f"AND json_extract(j.value, '$[0]') IN {_LISTED} "
        "ON CONFLICT (export, email) DO UPDATE SET "
        "fingerprint = excluded.fingerprint, updated_at = excluded.updated_at",
        (stamp, export, batch_id, listed),
    ).rowcount
    if written:
        _drop_items(connection, export, batch_id, listed)
    return int(written)


def _names_every_item(emails: Collection[str], text: str) -> bool:
    wanted = emails if isinstance(emails, set | frozenset) else set(emails)
    return all(item[0] in wanted for item in unpack(text))


def release(
    connection: sqlite3.Connection,
    export: str,
    batch_id: str,
    emails: Collection[str] | None,
) -> int:
    """Forget the items of ``batch_id`` named in ``emails`` (all when ``None``); returns them."""
    items = _items(connection, export, batch_id)
    if not items:
        return 0
    if emails is None:
        _rewrite(connection, export, batch_id, [])
        return len(items)
    wanted = set(emails)
    kept = [item for item in items if item[0] not in wanted]
    if len(kept) != len(items):
        _rewrite(connection, export, batch_id, kept)
    return len(items) - len(kept)


def _drop_items(connection: sqlite3.Connection, export: str, batch_id: str, listed: str) -> None:
    """Take the e-mails in ``listed`` (a JSON array) out of the batch; drop it once empty."""
    connection.execute(
        "UPDATE inflight_packed SET items = (SELECT json_group_array(json(j.value)) "
        "FROM json_each(inflight_packed.items) AS j "
        f"WHERE json_extract(j.value, '$[0]') NOT IN {_LISTED}) "
        "WHERE export = ? AND batch_id = ?",
        (listed, export, batch_id),
    )
    connection.execute(
        "DELETE FROM inflight_packed WHERE export = ? AND batch_id = ? "
        "AND json_array_length(items) = 0",
        (export, batch_id),
    )


def inflight_batches(connection: sqlite3.Connection, export: str) -> list[InflightBatch]:
    rows = connection.execute(
        "SELECT batch_id, created_at, items FROM inflight_packed WHERE export = ? "
        "ORDER BY created_at, batch_id",
        (export,),
    ).fetchall()
    return [as_batch(batch_id, created_at, items) for batch_id, created_at, items in rows]


def _items(connection: sqlite3.Connection, export: str, batch_id: str) -> list[PackedItem] | None:
    row = connection.execute(
        "SELECT items FROM inflight_packed WHERE export = ? AND batch_id = ?", (export, batch_id)
    ).fetchone()
    return None if row is None else unpack(str(row[0]))


def _rewrite(
    connection: sqlite3.Connection, export: str, batch_id: str, items: Sequence[PackedItem]
) -> None:
    """Keep ``items`` in flight under ``batch_id``; with none left the batch is done."""
    if items:
        connection.execute(
            "UPDATE inflight_packed SET items = ? WHERE export = ? AND batch_id = ?",
            (orjson.dumps(list(items)).decode(), export, batch_id),
        )
    else:
        connection.execute(
            "DELETE FROM inflight_packed WHERE export = ? AND batch_id = ?", (export, batch_id)
        )
