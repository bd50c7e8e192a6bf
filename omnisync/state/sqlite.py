"""The SQLite state store: the :class:`LedgerStore` contract on one file.

``<daemon.state_dir>/omnisync.sqlite3`` by default; the file itself (WAL,
locking, migrations, transactions) is :class:`~omnisync.state.database.SqliteDatabase`,
the SQL both stores share :mod:`omnisync.state.sql_store`.
Sets of e-mails travel as one JSON parameter and are unpacked by SQLite
(``json_each``), so a batch's worth of work is one statement; a batch's
intent and in-flight items are one row each (:mod:`omnisync.state.packed`).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Collection, Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path

import orjson

from omnisync.inflight import InflightItem
from omnisync.state import packed
from omnisync.state.database import SqliteDatabase
from omnisync.state.locks import make_private_directory
from omnisync.state.sql_store import SqlLedgerStore
from omnisync.state.store import InflightBatch, StateError, format_timestamp

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

    _inflight_table = "inflight_packed"
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

    def record_inflight(
        self, export: str, batch_id: str, items: Sequence[InflightItem], *, now: datetime
    ) -> None:
        text = packed.pack(items)
        with self._writing("record an in-flight batch") as connection:
            packed.put_inflight(connection, export, batch_id, text, format_timestamp(now))

    def record_created(self, export: str, token: str, batch_id: str, *, now: datetime) -> int:
        with self._writing("record a created batch") as connection:
            return packed.create(connection, export, token, batch_id, format_timestamp(now))

    def inflight_batches(self, export: str) -> list[InflightBatch]:
        with self._reading("read in-flight batches") as connection:
            return packed.inflight_batches(connection, export)

    def _acknowledge(
        self,
        connection: sqlite3.Connection,
        export: str,
        batch_id: str,
        emails: Collection[str] | None,
        stamp: str,
    ) -> int:
        return packed.acknowledge(connection, export, batch_id, emails, stamp)

    def release(self, export: str, batch_id: str, emails: Collection[str] | None = None) -> int:
        with self._writing("release in-flight contacts") as connection:
            return packed.release(connection, export, batch_id, emails)
