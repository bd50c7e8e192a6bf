"""The SQLite state store: the :class:`LedgerStore` contract on one file.

``<daemon.state_dir>/omnisync.sqlite3`` by default; the file itself (WAL,
locking, migrations, transactions) is :class:`~omnisync.state.database.SqliteDatabase`,
the SQL both stores share :mod:`omnisync.state.sql_store`.
Sets of e-mails travel as one JSON parameter and are unpacked by SQLite
(``json_each``), so a batch's worth of work is one statement. A batch's
intent and its in-flight items are one row each (``batch_intents``,
``inflight_packed``), holding the JSON array of
:func:`~omnisync.state.sql_store.pack_items`: recording, creating and settling
a batch of 100 contacts is a handful of row writes, not hundreds; the ledger
stays one row per contact. ``inflight_batches`` is a view with the older
one-row-per-item shape.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Collection, Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path

import orjson

from omnisync.state.database import SqliteDatabase
from omnisync.state.locks import make_private_directory
from omnisync.state.sql_store import SqlLedgerStore
from omnisync.state.store import StateError, format_timestamp

#: The state database's file name inside ``daemon.state_dir``.
STATE_FILENAME = "omnisync.sqlite3"


def state_path(state_dir: str | os.PathLike[str]) -> Path:
    """Where the state database of ``state_dir`` lives."""
    return Path(state_dir) / STATE_FILENAME


def open_state_store(state_dir: str | os.PathLike[str]) -> SqliteLedgerStore:
    """Open (creating as needed, mode 0700) the state store under ``state_dir``."""
    directory = Path(state_dir)
    try:
        make_private_directory(directory)
    except OSError as error:
        raise StateError(
            f"cannot create state directory {directory}: {error.strerror or error}"
        ) from None
    return SqliteLedgerStore(state_path(directory))


class SqliteLedgerStore(SqlLedgerStore[sqlite3.Connection]):
    """:class:`LedgerStore` on one SQLite file. Migrates on open; refuses a newer schema."""

    _inflight_table = _inflight_packed = "inflight_packed"
    #: E-mails passed as one JSON array parameter (one statement, any length).
    _in_emails = "IN (SELECT value FROM json_each(?))"

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self.ledger_file = self.path
        self._database = SqliteDatabase(self.path, busy_timeout=busy_timeout)

    def _emails_parameter(self, emails: Collection[str]) -> str:
        return orjson.dumps(list(emails)).decode()

    def _reading(self, action: str) -> AbstractContextManager[sqlite3.Connection]:
        return self._database.reading(action)

    def _writing(self, action: str) -> AbstractContextManager[sqlite3.Connection]:
        return self._database.transaction(action)

    def _write(self, action: str, sql: str, parameters: Sequence[object]) -> int:
        # A lone statement is atomic by itself in SQLite (no BEGIN and COMMIT round trips).
        return self._database.write(action, sql, parameters)

    @property
    def schema_version(self) -> int:
        return self._database.schema_version

    def close(self) -> None:
        self._database.close()

    def record_delivered(
        self, export: str, entries: Iterable[tuple[str, int, str | None]], *, now: datetime
    ) -> int:
        stamp = format_timestamp(now)
        with self._writing("write the ledger") as connection:
            before = connection.total_changes
            connection.executemany(
                "INSERT OR REPLACE INTO ledger_entries "
                "(export, email, fingerprint, tag, updated_at) VALUES (?, ?, ?, ?, ?)",
                ((export, email, fingerprint, tag, stamp) for email, fingerprint, tag in entries),
            )
            return connection.total_changes - before

    def record_created(self, export: str, token: str, batch_id: str, *, now: datetime) -> int:
        stamp = format_timestamp(now)
        with self._writing("record a created batch") as connection:
            # The common case in one statement, the items staying inside SQLite.
            moved = connection.execute(
                "INSERT INTO inflight_packed (export, batch_id, items, created_at) "
                "SELECT export, ?, items, ? FROM batch_intents WHERE export = ? AND token = ? "
                "ON CONFLICT (export, batch_id) DO NOTHING RETURNING json_array_length(items)",
                (batch_id, stamp, export, token),
            ).fetchone()
            if moved is None:
                row = connection.execute(
                    "SELECT items FROM batch_intents WHERE export = ? AND token = ?",
                    (export, token),
                ).fetchone()
                if row is None:
                    return 0
                # The batch id is in flight already: one item per e-mail, the newer winning.
                merged = {item[0]: item for item in _items(connection, export, batch_id) or []}
                merged.update((item[0], item) for item in orjson.loads(row[0]))
                _rewrite(connection, export, batch_id, list(merged.values()))
                moved = (len(merged),)
            connection.execute(
                "DELETE FROM batch_intents WHERE export = ? AND token = ?", (export, token)
            )
            return int(moved[0])

    def _acknowledge(
        self,
        connection: sqlite3.Connection,
        export: str,
        batch_id: str,
        emails: Collection[str] | None,
        stamp: str,
    ) -> int:
        # Each statement does a whole batch inside SQLite (one step, one GIL
        # release), rather than one step per item.
        row = connection.execute(
            "SELECT items FROM inflight_packed WHERE export = ? AND batch_id = ?",
            (export, batch_id),
        ).fetchone()
        if row is None:
            return 0
        text = str(row[0])
        # The common case, a batch accepted whole: its items go into the ledger as
        # they are and the batch is done, with no e-mail list to match.
        whole = emails is None or _names_every_item(emails, orjson.loads(text))
        listed = None if emails is None else self._emails_parameter(emails)
        accepted = "true" if whole else f"json_extract(value, '$[0]') {self._in_emails}"
        written = connection.execute(
            "INSERT INTO ledger_entries (export, email, fingerprint, tag, updated_at) "
            "SELECT ?, json_extract(value, '$[0]'), json_extract(value, '$[1]'), NULL, ? "
            f"FROM json_each(?) WHERE {accepted} "
            "ON CONFLICT (export, email) DO UPDATE SET "
            "fingerprint = excluded.fingerprint, updated_at = excluded.updated_at",
            (export, stamp, text) if whole else (export, stamp, text, listed),
        ).rowcount
        if whole:
            _rewrite(connection, export, batch_id, [])
            return int(written)
        if written:
            connection.execute(
                "UPDATE inflight_packed SET items = (SELECT json_group_array(json(j.value)) "
                "FROM json_each(inflight_packed.items) AS j "
                f"WHERE json_extract(j.value, '$[0]') NOT {self._in_emails}) "
                "WHERE export = ? AND batch_id = ?",
                (listed, export, batch_id),
            )
            connection.execute(
                "DELETE FROM inflight_packed WHERE export = ? AND batch_id = ? "
                "AND json_array_length(items) = 0",
                (export, batch_id),
            )
        return int(written)

    def release(self, export: str, batch_id: str, emails: Collection[str] | None = None) -> int:
        with self._writing("release in-flight contacts") as connection:
            items = _items(connection, export, batch_id)
            if not items:
                return 0
            wanted = None if emails is None else set(emails)
            kept = [] if wanted is None else [item for item in items if item[0] not in wanted]
            if len(kept) != len(items):
                _rewrite(connection, export, batch_id, kept)
            return len(items) - len(kept)


#: One packed item: e-mail, fingerprint, then_tag (0/1).
PackedItem = tuple[str, int, int]


def _names_every_item(emails: Collection[str], items: Sequence[PackedItem]) -> bool:
    wanted = emails if isinstance(emails, set | frozenset) else set(emails)
    return all(item[0] in wanted for item in items)


def _items(connection: sqlite3.Connection, export: str, batch_id: str) -> list[PackedItem] | None:
    """The packed items in flight under ``batch_id`` (trusted as :func:`pack_items` wrote
    them: a hot path, so not converted one by one), or ``None``."""
    row = connection.execute(
        "SELECT items FROM inflight_packed WHERE export = ? AND batch_id = ?", (export, batch_id)
    ).fetchone()
    if row is None:
        return None
    items: list[PackedItem] = orjson.loads(row[0])
    return items


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
