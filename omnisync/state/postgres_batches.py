"""In-flight batches in a PostgreSQL state store: one row per item, the SQL of
``record_inflight``, ``record_created`` and ``inflight_batches``, each on a
connection inside the caller's transaction
(:class:`~omnisync.state.postgres.PostgresLedgerStore` opens it, fenced or not)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import cast

from omnisync.inflight import InflightItem
from omnisync.state.postgres_database import PostgresConnection
from omnisync.state.store import InflightBatch, format_timestamp


def record_inflight(
    connection: PostgresConnection,
    export: str,
    batch_id: str,
    items: Sequence[InflightItem],
    *,
    now: datetime,
) -> None:
    """Items (one per e-mail) in flight under ``batch_id``; a batch recorded again keeps
    its first ``created_at``."""
    connection.execute(
        "INSERT INTO inflight_batches "
        "(export, batch_id, email, fingerprint, then_tag, created_at) "
        "SELECT %s, %s, email, fingerprint, then_tag, "
        "coalesce((SELECT min(created_at) FROM inflight_batches "
        "WHERE export = %s AND batch_id = %s), %s) "
        "FROM unnest(%s::text[], %s::bigint[], %s::boolean[]) "
        "AS t(email, fingerprint, then_tag) "
        "ON CONFLICT (export, batch_id, email) DO UPDATE SET "
        "fingerprint = excluded.fingerprint, then_tag = excluded.then_tag",
        (
            export,
            batch_id,
            export,
            batch_id,
            format_timestamp(now),
            [item.email for item in items],
            [item.fingerprint for item in items],
            [item.then_tag for item in items],
        ),
    )


def record_created(
    connection: PostgresConnection, export: str, token: str, batch_id: str, *, now: datetime
) -> int:
    """Move intent ``token``'s items in flight under ``batch_id``; returns how many moved."""
    cursor = connection.execute(
        "WITH intent AS (DELETE FROM batch_intents WHERE export = %(export)s "
        "AND token = %(token)s RETURNING items) "
        "INSERT INTO inflight_batches "
        "(export, batch_id, email, fingerprint, then_tag, created_at) "
        "SELECT %(export)s, %(batch)s, item->>0, (item->>1)::bigint, "
        "(item->>2)::int <> 0, %(stamp)s "
        "FROM intent, jsonb_array_elements(intent.items) AS item "
        "ON CONFLICT (export, batch_id, email) DO UPDATE SET "
        "fingerprint = excluded.fingerprint, then_tag = excluded.then_tag",
        {"export": export, "token": token, "batch": batch_id, "stamp": format_timestamp(now)},
    )
    return max(cursor.rowcount, 0)


def inflight_batches(connection: PostgresConnection, export: str) -> list[InflightBatch]:
    """The export's unsettled batches, oldest first, items sorted."""
    rows = connection.execute(
        "SELECT batch_id, created_at, email, fingerprint, then_tag FROM inflight_batches "
        'WHERE export = %s ORDER BY batch_id COLLATE "C", email COLLATE "C"',
        (export,),
    ).fetchall()
    grouped: dict[str, tuple[str, list[InflightItem]]] = {}
    for batch_id, created_at, email, fingerprint, then_tag in rows:
        first, batch_items = grouped.setdefault(str(batch_id), (str(created_at), []))
        if str(created_at) < first:
            grouped[str(batch_id)] = (str(created_at), batch_items)
        batch_items.append(InflightItem(str(email), cast(int, fingerprint), bool(then_tag)))
    batches = [
        InflightBatch(batch_id, created_at, tuple(sorted(batch_items)))
        for batch_id, (created_at, batch_items) in grouped.items()
    ]
    return sorted(batches, key=lambda batch: (batch.created_at, batch.batch_id))
